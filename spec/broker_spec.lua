-- The broker end to end, with real processes: `duplex run --workers N`
-- (the supervisor's hub), `duplex run --broker redis://...` nodes joined
-- by a real redis-server (spec/support/redis.lua: a free port, a temporary
-- directory, killed and restarted at will), and clients on every worker
-- and node. The app is spec/fixtures/broker.lua: it says which node and
-- worker serve a connection, subscribes it from its URL, publishes what
-- it is asked to, puts positions in "feed:" publications, tells presence
-- events to its subscribers and serves app:stats() at /stats.
--
-- What is checked: pub/sub across workers and nodes (every message to
-- every subscriber exactly once, in order, the same history order
-- everywhere); Redis killed under steady publishing (local delivery never
-- pauses, delivery across nodes comes back, the stats say so); a worker
-- killed and replaced; a node killed (its presence members expire);
-- resume from a position in one process, across workers and across nodes,
-- and "epoch" after the history was flushed; presence across workers and
-- nodes.

local server = require "spec.support.server"
local redis = require "spec.support.redis"
local h = require "spec.support.helpers"
local socket = require "socket"
local http = require "socket.http"

local FIXTURE = "spec/fixtures/broker.lua"
local N = 300                 -- numbered messages per stream

local function now() return socket.gettime() end

---------------------------------------------------------------------------
-- Processes
---------------------------------------------------------------------------

local started = {}            -- every duplex of the running test, killed at its end
local clients = {}            -- every client of the running test

-- start { broker =, workers =, args = } -> a running duplex serving the fixture.
local function start(o)
  o = o or {}
  local args = {}
  for _, a in ipairs(server.UNLIMITED) do args[#args + 1] = a end
  if o.broker then args[#args + 1] = "--broker"; args[#args + 1] = o.broker end
  if o.workers then args[#args + 1] = "--workers"; args[#args + 1] = tostring(o.workers) end
  for _, a in ipairs(o.args or {}) do args[#args + 1] = a end
  local srv = server.start(FIXTURE, args)
  started[#started + 1] = srv
  return srv
end

-- stop(...): the clients closed, then each server given stopped: SIGTERM,
-- exit 0, a clean stderr (server.lua's stop).
local function stop(...)
  for _, c in ipairs(clients) do c:close() end
  for _, srv in ipairs { ... } do srv:stop() end
end

-- logs() -> the stderr of every duplex of the running test (for a failure's message).
local function logs()
  local out = {}
  for i, srv in ipairs(started) do out[#out + 1] = ("--- duplex %d (pid %s):\n%s"):format(i, tostring(srv.pid), srv:log()) end
  return table.concat(out, "\n")
end

-- stats(srv) -> app:stats() of the process (or one worker) serving srv's port.
local function stats(srv)
  local body, code = http.request(srv.url:gsub("^ws", "http") .. "/stats")
  assert(code == 200, "GET /stats: " .. tostring(code))
  local t = {}
  for k, v in body:gmatch("(%S+) (%S+)\n") do t[k] = tonumber(v) or v end
  return t
end

---------------------------------------------------------------------------
-- Clients
---------------------------------------------------------------------------

local Client = {}
Client.__index = Client

-- connect(srv [, query]) -> a client that got its "hi": c.node, c.worker
-- (a number, or "none"), c.id, c.pid. Every message it reads is kept
-- parsed: c.pos (the last position seen), c.events ("join ...", "leave ...").
local function connect(srv, query)
  local conn = h.open(srv.port, "/" .. (query and "?" .. query or ""))
  local op, data = conn:read_message(10)
  assert(op == 1, "expected the fixture's hi, got " .. tostring(data))
  local node, worker, id, pid = data:match("^hi (%S+) (%S+) (%d+) (%d+)$")
  assert(node, "unexpected hi: " .. data)
  local c = setmetatable({ conn = conn, node = node, worker = tonumber(worker) or worker, id = tonumber(id),
    pid = tonumber(pid), events = {}, query = query }, Client)
  clients[#clients + 1] = c
  return c
end

-- connect_on(srv, query, want [, timeout]) -> a client for which want(c)
-- holds (the kernel spreads connections over the workers: others are
-- closed), trying until the deadline (a worker may be starting again).
local function connect_on(srv, query, want, timeout)
  local deadline = now() + (timeout or 10)
  local tries = 0
  while true do
    local c = connect(srv, query)
    if want(c) then return c end
    c:close()
    tries = tries + 1
    assert(now() < deadline, "no connection reached the worker wanted in " .. tries .. " tries")
    if tries > 20 then socket.sleep(0.02) end
  end
end

local function on_worker(index) return function(c) return c.worker == index end end

function Client:send(text)
  assert(self.conn:send_text(text))
end

function Client:close()
  self.conn:close()
end

-- next([timeout]) -> the next message { body =, pos = } (pos: the "@"
-- prefix of a positioned publication), or nil, why.
function Client:next(timeout)
  local op, data = self.conn:read_message(timeout or 5)
  if not op then return nil, data end
  assert(op == 1, "unexpected opcode " .. tostring(op))
  local pos, body = data:match("^@([0-9a-z]+:%d+) (.*)$")
  if pos then self.pos = pos else body = data end
  if body:find("^join ") or body:find("^leave ") then self.events[#self.events + 1] = body end
  return { body = body, pos = pos }
end

-- expect(fn [, timeout [, what]]) -> the first message (read from now)
-- for which fn(msg) holds; raises after the timeout.
function Client:expect(fn, timeout, what)
  local deadline = now() + (timeout or 10)
  while true do
    local left = deadline - now()
    if left <= 0 then error("timed out waiting for " .. (what or "a message") .. "\n" .. logs()) end
    local m, why = self:next(math.min(left, 1))
    if m and fn(m) then return m end
    if not m and why ~= "timeout" then error("while waiting for " .. (what or "a message") .. ": " .. tostring(why)) end
  end
end

-- event(pattern [, timeout]): the join/leave event matching pattern (plain
-- text), among those read so far or coming; returns it.
function Client:event(text, timeout)
  for _, e in ipairs(self.events) do
    if e:find(text, 1, true) then return e end
  end
  self:expect(function(m) return m.body:find(text, 1, true) ~= nil end, timeout, "event " .. text)
  return text
end

-- quiet([seconds]) -> the messages that arrive within seconds (none expected).
function Client:quiet(seconds)
  local got, deadline = {}, now() + (seconds or 0.2)
  while now() < deadline do
    local m = self:next(deadline - now())
    if not m then break end
    got[#got + 1] = m.body
  end
  return got
end

-- presence(topic) -> the members app:presence lists, sorted
-- "<node>/<id>/<name>/<worker>" strings (asked through this client).
function Client:presence(topic)
  self:send("presence " .. topic)
  local m = self:expect(function(x) return x.body:find("^members ") ~= nil end, 10, "the members of " .. topic)
  local n, rest = m.body:match("^members (%S+) ?(.*)$")
  assert(n ~= "nil", m.body)
  local list = {}
  for w in rest:gmatch("%S+") do list[#list + 1] = w end
  assert.are.equal(tonumber(n), #list)
  return list
end

-- member(c, name) -> how c appears in a presence list.
local function member(c, name)
  return ("%s/%d/%s/%s"):format(c.node, c.id, name, tostring(c.worker))
end

-- joined(c, name, topic): until c hears its own join (its process is
-- subscribed to topic's presence events then, through every hop).
local function joined(c, name, topic)
  c:event(("join %s %s %d %s"):format(topic, c.node, c.id, name))
end

-- sync(pub, topic, subs): pub publishes "sync <k>" on topic until every
-- client of subs got one (its process's subscription reaches the
-- publisher's, wherever each is); the syncs are read and dropped.
local function sync(pub, topic, subs)
  local pending = {}
  for _, s in ipairs(subs) do pending[s] = true end
  local deadline = now() + 15
  for k = 1, math.huge do
    pub:send(("pub %s sync %d"):format(topic, k))
    for s in pairs(pending) do
      while true do
        local m = s:next(0.03)
        if not m then break end
        if m.body:find("^sync ") then pending[s] = nil break end
      end
    end
    if next(pending) == nil then return end
    assert(now() < deadline, "the subscribers of " .. topic .. " never heard the publisher")
  end
end

-- publish(pub, topic, tag, from, to): pub publishes "<tag> <i>" on topic, i from..to.
local function publish(pub, topic, tag, from, to)
  local frames = {}
  for i = from, to do frames[#frames + 1] = ("pub %s %s %d"):format(topic, tag, i) end
  for _, f in ipairs(frames) do pub:send(f) end
end

-- streams(c, want [, timeout]) -> what c got of each tag of want ({ tag =
-- count }): asserts every tag's numbers came exactly once, in order, 1 to
-- count, whatever else came between (syncs, events, other tags); returns
-- the positions of the positioned ones: got[tag][i] = pos.
local function streams(c, want, timeout)
  local seen, positions, left = {}, {}, 0
  for tag, n in pairs(want) do seen[tag], positions[tag], left = 0, {}, left + n end
  local deadline = now() + (timeout or 20)
  while left > 0 do
    if now() >= deadline then
      local got = {}
      for tag, n in pairs(seen) do got[#got + 1] = tag .. " " .. n end
      table.sort(got)
      error(("client %d (node %s): timed out with %s"):format(c.id, c.node, table.concat(got, ", ")))
    end
    local m = c:next(math.max(0.01, math.min(1, deadline - now())))
    if m then
      local tag, i = m.body:match("^(%S+) (%d+)$")
      if tag and seen[tag] then
        i = tonumber(i)
        if i ~= seen[tag] + 1 then
          error(("client %d (node %s): %s %d after %s %d: not every message once and in order")
            :format(c.id, c.node, tag, i, tag, seen[tag]))
        end
        seen[tag] = i
        positions[tag][i] = m.pos
        if i <= want[tag] then left = left - 1 end
      end
    end
  end
  return positions
end

local function offset(pos) return tonumber(pos:match(":(%d+)$")) end
local function epoch(pos) return pos:match("^([0-9a-z]+):") end

-- The positions of one history topic, as every subscriber saw them: one
-- epoch, and the same position for the same message everywhere (one order).
local function same_history(all, tags)
  local first = all[1]
  local e = epoch(first[tags[1]][1])
  for _, got in ipairs(all) do
    for _, tag in ipairs(tags) do
      for i, pos in ipairs(got[tag]) do
        assert.are.equal(first[tag][i], pos)
        assert.are.equal(e, epoch(pos))
      end
    end
  end
end

-- fan_out(pubs, subs): every publisher ({ client, tag }) publishes N
-- numbered messages on feed:x (history) and on plain:x, interleaved; every
-- subscriber gets every stream whole, in order, exactly once.
local function fan_out(pubs, subs)
  for _, s in ipairs(subs) do s:quiet(0.05) end
  for _, p in ipairs(pubs) do
    sync(p[1], "feed:x", subs)
    sync(p[1], "plain:x", subs)
  end
  for i = 1, N, 50 do               -- the publishers in turns of 50, so their streams mix
    for _, p in ipairs(pubs) do
      for j = i, math.min(N, i + 49) do
        p[1]:send(("pub feed:x %sf %d"):format(p[2], j))
        p[1]:send(("pub plain:x %sp %d"):format(p[2], j))
      end
    end
  end
  local want, ftags = {}, {}
  for _, p in ipairs(pubs) do
    want[p[2] .. "f"], want[p[2] .. "p"] = N, N
    ftags[#ftags + 1] = p[2] .. "f"
  end
  local all = {}
  for k, s in ipairs(subs) do all[k] = streams(s, want) end
  for _, s in ipairs(subs) do
    local extra = s:quiet(0.2)
    assert.are.same({}, extra)
  end
  same_history(all, ftags)
  for _, got in ipairs(all) do       -- no gap between the positions of one topic, here
    local offsets = {}
    for _, tag in ipairs(ftags) do
      for _, pos in ipairs(got[tag]) do offsets[#offsets + 1] = offset(pos) end
    end
    table.sort(offsets)
    for k = 2, #offsets do assert.are.equal(offsets[k - 1] + 1, offsets[k]) end
  end
end

local function worker_set(clients)
  local set = {}
  for _, c in ipairs(clients) do set[c.node .. "#" .. tostring(c.worker)] = true end
  local n = 0
  for _ in pairs(set) do n = n + 1 end
  return n
end


-- wait_presence(c, topic, want [, timeout]): until app:presence(topic),
-- asked through c, lists exactly want (member strings, any order).
local function wait_presence(c, topic, want, timeout)
  local sorted = {}
  for i, w in ipairs(want) do sorted[i] = w end
  table.sort(sorted)
  local deadline, got = now() + (timeout or 10), nil
  while now() < deadline do
    got = c:presence(topic)
    if table.concat(got, " ") == table.concat(sorted, " ") then return end
    socket.sleep(0.05)
  end
  assert.are.same(sorted, got)
end

-- exactly(c, tag, from, to [, newest]): the next messages c gets are
-- "<tag> from" .. "<tag> to", nothing between, at consecutive positions
-- after newest (when given); returns the last position.
local function exactly(c, tag, from, to, after)
  local last = after
  for i = from, to do
    local m, why = c:next(10)
    assert(m, ("client %d: waiting for %s %d: %s"):format(c.id, tag, i, tostring(why)))
    assert.are.equal(tag .. " " .. i, m.body)
    if last then
      assert.are.equal(epoch(last), epoch(m.pos))
      assert.are.equal(offset(last) + 1, offset(m.pos))
    end
    last = m.pos
  end
  return last
end

-- recovered(c) -> ok, reason, missed, position: c's next message, the
-- fixture's answer to a catch-up.
local function recovered(c)
  local m, why = c:next(10)
  assert(m, "no recovered answer: " .. tostring(why) .. "\n" .. logs())
  local ok, reason, missed, position = m.body:match("^recovered (%S+) (%S+) (%d+) (%S+)$")
  assert(ok, "expected the recovered answer, got " .. m.body)
  return ok == "true", reason, tonumber(missed), position
end

-- resume(o): o.first (subscribed to feed:r) goes away, o.pub publishes
-- 100 (o.witness, another subscriber, gets them all: they are in the
-- history), o.again(query) reconnects from first's last position: it gets
-- a recovered answer with 100 missed, exactly those 100 in order at the
-- next positions, then new ones, and nothing more. Returns that position.
local function resume(o)
  local first, pub, witness = o.first, o.pub, o.witness
  sync(pub, "feed:r", { first, witness })
  pub:send("pub feed:r seen 1")
  first:expect(function(m) return m.body == "seen 1" end, 10, "seen 1")
  witness:expect(function(m) return m.body == "seen 1" end, 10, "seen 1")
  local pos = assert(first.pos)
  first:close()
  publish(pub, "feed:r", "m", 1, 100)
  streams(witness, { m = 100 })
  local back = o.again("t=feed:r&since=" .. pos)
  local ok, reason, missed, newest = recovered(back)
  assert.are.same({ true, "-", 100 }, { ok, reason, missed })
  local last = exactly(back, "m", 1, 100, pos)
  assert.are.equal(last, newest)
  publish(pub, "feed:r", "n", 1, 5)
  exactly(back, "n", 1, 5, last)
  assert.are.same({}, back:quiet(0.2))
  return pos
end

-- record(list, c, into): reads what the clients have now (a few ms each),
-- appending every "tick <n> <ms>" each gets to into[c] as { n =, at = }
-- (the time it arrived here); a connection that ends fails the test.
local function record(list, into)
  for _, c in ipairs(list) do
    while true do
      local m, why = c:next(0.005)
      if not m then
        assert(why == "timeout", ("client %d (node %s, worker %s) lost its connection: %s")
          :format(c.id, c.node, tostring(c.worker), tostring(why)))
        break
      end
      local n = m.body:match("^tick (%d+) %d+$")
      if n then
        local l = into[c]
        l[#l + 1] = { n = tonumber(n), at = now() }
      end
    end
  end
end

-- pump(list, into, seconds [, done]): record for seconds, or until done() holds (true then).
local function pump(list, into, seconds, done)
  local deadline = now() + seconds
  while now() < deadline do
    record(list, into)
    if done and done() then return true end
  end
  return false
end

-- consecutive(l, what [, max_gap]): the ticks of l follow each other
-- without a hole, and (max_gap) none arrived more than max_gap s after the one before.
local function consecutive(l, what, max_gap)
  assert(#l > 0, what .. ": no tick at all")
  for i = 2, #l do
    if l[i].n ~= l[i - 1].n + 1 then
      error(("%s: tick %d after tick %d"):format(what, l[i].n, l[i - 1].n))
    end
    if max_gap and l[i].at - l[i - 1].at > max_gap then
      error(("%s: %.2f s between tick %d and tick %d"):format(what, l[i].at - l[i - 1].at, l[i - 1].n, l[i].n))
    end
  end
end

-- wait_stats(srv, fn, what): until fn(stats(srv)) holds (10 s); returns those stats.
local function wait_stats(srv, fn, what)
  local deadline, st = now() + 10, nil
  while now() < deadline do
    st = stats(srv)
    if fn(st) then return st end
    socket.sleep(0.05)
  end
  local lines = {}
  for k, v in pairs(st) do if k:find("^broker_") or k:find("^worker_") then lines[#lines + 1] = k .. "=" .. v end end
  table.sort(lines)
  error("the stats never said " .. what .. ": " .. table.concat(lines, " "))
end

---------------------------------------------------------------------------

describe("the broker, end to end", function()
  after_each(function()
    for _, c in ipairs(clients) do c:close() end
    for _, srv in ipairs(started) do srv:kill() end
    started, clients = {}, {}
    redis.stop_all()
  end)

  describe("across workers (--workers 2, no other service)", function()
    it("delivers every message to every subscriber on every worker, once, in order", function()
      local srv = start { workers = 2 }
      local subs = {}
      for _, w in ipairs { 1, 1, 2, 2 } do
        subs[#subs + 1] = connect_on(srv, "t=feed:x,plain:x", on_worker(w))
      end
      local pub = connect(srv)
      assert.are.equal(2, worker_set(subs))
      fan_out({ { pub, "a" } }, subs)
      stop(srv)
    end)
  end)

  describe("across nodes (--broker redis://...)", function()
    it("delivers every message to every subscriber on both nodes, once, in order", function()
      local r = redis.start()
      local a, b = start { broker = r:url() }, start { broker = r:url() }
      local subs = { connect(a, "t=feed:x,plain:x"), connect(a, "t=feed:x,plain:x"),
        connect(b, "t=feed:x,plain:x"), connect(b, "t=feed:x,plain:x") }
      assert.are_not.equal(subs[1].node, subs[3].node)
      fan_out({ { connect(a), "a" }, { connect(b), "b" } }, subs)
      stop(a, b)
    end)

    it("and with one node of two workers, whose hub reaches Redis for both", function()
      local r = redis.start()
      local a, b = start { broker = r:url() }, start { broker = r:url(), workers = 2 }
      local subs = { connect(a, "t=feed:x,plain:x"),
        connect_on(b, "t=feed:x,plain:x", on_worker(1)), connect_on(b, "t=feed:x,plain:x", on_worker(2)) }
      assert.are.equal(3, worker_set(subs))
      fan_out({ { connect(a), "a" }, { connect_on(b, nil, on_worker(1)), "b" } }, subs)
      stop(a, b)
    end)
  end)
  describe("when something dies", function()
    it("Redis killed under steady publishing: local delivery never pauses, delivery across nodes comes back", function()
      local r = redis.start()
      local a, b = start { broker = r:url() }, start { broker = r:url() }
      local sa, sb = connect(a, "t=plain:f"), connect(b, "t=plain:f")
      local pub = connect(a)
      sync(pub, "plain:f", { sa, sb })
      local got, list = { [sa] = {}, [sb] = {} }, { sa, sb }
      pub:send("tick plain:f 20")               -- node a publishes every 20 ms
      assert(pump(list, got, 10, function() return #got[sb] >= 10 end), "node b never heard node a")
      r:kill()
      pump(list, got, 1.5)                       -- Redis is gone for 1.5 s
      local during = #got[sb]
      r:restart()
      local at_restart = got[sa][#got[sa]].n
      assert(pump(list, got, 15, function() local l = got[sb]; return l[#l].n > at_restart + 10 end),
        "node b never heard node a again once Redis was back (its subscription not restored?)")
      pub:send("untick")
      pump(list, got, 0.2)
      consecutive(got[sa], "the subscriber on the publisher's node", 1.0)
      local lb = got[sb]
      for i = 2, #lb do
        assert(lb[i].n > lb[i - 1].n, ("node b: tick %d after tick %d"):format(lb[i].n, lb[i - 1].n))
      end
      -- the outage was real: node b missed the ticks made while Redis was away
      assert(lb[#lb].n - lb[1].n + 1 > #lb, "node b missed nothing: was Redis really away?")
      assert(#got[sb] >= during)
      local st = wait_stats(a, function(t)
        return t.broker_link_up == 1 and t.broker_reconnects >= 1 and t.broker_lost >= 1
      end, "node a's link came back after losing publications")
      local published = got[sa][#got[sa]].n      -- every tick node a made (it stopped before this)
      assert(st.broker_lost <= published, ("%d lost of %d published"):format(st.broker_lost, published))
      wait_stats(b, function(t) return t.broker_link_up == 1 and t.broker_reconnects >= 1 end,
        "node b's link came back")
      stop(a, b)
    end)

    it("a worker killed with SIGKILL is replaced, and the other worker's connections never notice", function()
      local srv = start { workers = 2 }
      local c1 = connect_on(srv, "t=plain:w", on_worker(1))
      local c2 = connect_on(srv, "t=plain:w", on_worker(2))
      local pub = connect_on(srv, nil, on_worker(1))
      sync(pub, "plain:w", { c1, c2 })
      local got = { [c1] = {} }
      pub:send("tick plain:w 20")
      assert(pump({ c1 }, got, 10, function() return #got[c1] >= 5 end), "no tick on worker 1")
      assert(os.execute("kill -KILL " .. c2.pid))
      local _, why = c2.conn:read_message(10)
      while why == nil or why == "timeout" do
        if why == "timeout" then error("the connection on the killed worker did not end") end
        _, why = c2.conn:read_message(10)
      end
      -- a new worker 2 (another pid) serves, and hears worker 1's publications
      local fresh
      local deadline = now() + 15
      while not fresh do
        assert(now() < deadline, "no connection reached a new worker 2")
        record({ c1 }, got)
        -- A connection the kernel gave the killed worker's listener just
        -- before it went is reset: it is not the server's answer, try again.
        local ok, c = pcall(connect, srv, "t=plain:w")
        if ok and c.worker == 2 and c.pid ~= c2.pid then
          fresh = c
        else
          if ok then c:close() end
          socket.sleep(0.02)
        end
      end
      got[fresh] = {}
      assert(pump({ c1, fresh }, got, 10, function() return #got[fresh] >= 5 end),
        "the new worker 2 never heard worker 1's publications")
      pub:send("untick")
      pump({ c1, fresh }, got, 0.2)
      consecutive(got[c1], "the subscriber on worker 1")
      consecutive(got[fresh], "the subscriber on the new worker 2")
      assert(got[c1][#got[c1]].n >= got[fresh][#got[fresh]].n)
      wait_stats(srv, function(t) return t.worker_restarts >= 1 end, "a worker restart")
      stop(srv)
    end)

    it("a node killed with SIGKILL: its presence members leave everywhere within presence_ttl * 4/3", function()
      local ttl = 2
      local r = redis.start()
      local url = r:url { presence_ttl = ttl }
      local a, b = start { broker = url }, start { broker = url }
      local ca, cb = connect(a, "t=room:k&name=alice"), connect(b, "t=room:k&name=bob")
      joined(ca, "alice", "room:k")
      joined(cb, "bob", "room:k")
      wait_presence(cb, "room:k", { member(ca, "alice"), member(cb, "bob") })
      wait_presence(ca, "room:k", { member(ca, "alice"), member(cb, "bob") })
      a:kill()
      local killed = now()
      cb:event(("leave room:k %s %d alice"):format(ca.node, ca.id), ttl * 4 / 3 + 5)
      local took = now() - killed
      assert(took <= ttl * 4 / 3 + 1.5, ("the killed node's member left after %.2f s"):format(took))
      assert.are.same({ member(cb, "bob") }, cb:presence("room:k"))
      stop(b)
    end)
  end)

  describe("when a node stops", function()
    it("with SIGTERM, its members leave everywhere at once, not by expiry", function()
      local ttl = 30              -- an expiry far beyond the wait below
      local r = redis.start()
      local url = r:url { presence_ttl = ttl }
      local a = start { broker = url, args = { "--close-timeout", "1" } }   -- its client never answers 1001
      local b = start { broker = url }
      local ca, cb = connect(a, "t=room:s&name=alice"), connect(b, "t=room:s&name=bob")
      joined(ca, "alice", "room:s")
      joined(cb, "bob", "room:s")
      wait_presence(cb, "room:s", { member(ca, "alice"), member(cb, "bob") })
      local t0 = now()
      a:stop()                    -- SIGTERM, exit 0, clean stderr
      cb:event(("leave room:s %s %d alice"):format(ca.node, ca.id), 12)
      local took = now() - t0     -- the shutdown's own wait for its clients included
      assert(took < 12, ("the stopped node's member left after %.1f s: by expiry"):format(took))
      assert.are.same({ member(cb, "bob") }, cb:presence("room:s"))
      stop(b)
    end)
  end)

  describe("resuming from a position", function()
    it("in one process", function()
      local srv = start {}
      local pub = connect(srv)
      resume { first = connect(srv, "t=feed:r"), witness = connect(srv, "t=feed:r"), pub = pub,
        again = function(query) return connect(srv, query) end }
      stop(srv)
    end)

    it("across workers: the client comes back on the other worker", function()
      local srv = start { workers = 2 }
      resume { first = connect_on(srv, "t=feed:r", on_worker(1)), witness = connect_on(srv, "t=feed:r", on_worker(1)),
        pub = connect_on(srv, nil, on_worker(1)),
        again = function(query) return connect_on(srv, query, on_worker(2)) end }
      stop(srv)
    end)

    it("across nodes through Redis, and refused with reason epoch once Redis was flushed", function()
      local r = redis.start()
      local a, b = start { broker = r:url() }, start { broker = r:url() }
      local pos = resume { first = connect(a, "t=feed:r"), witness = connect(a, "t=feed:r"), pub = connect(a),
        again = function(query) return connect(b, query) end }
      assert.are.equal("OK", r:command("FLUSHALL"))
      local late = connect(b, "t=feed:r&since=" .. pos)
      local ok, reason = recovered(late)
      assert.are.same({ false, "epoch" }, { ok, reason })
      assert.are.same({}, late:quiet(0.2))    -- nothing of the past passed off as whole
      stop(a, b)
    end)
  end)

  describe("presence", function()
    it("across workers: every worker lists every member; joins and leaves reach the others", function()
      local srv = start { workers = 2 }
      local c1 = connect_on(srv, "t=room:p&name=alice", on_worker(1))
      -- worker 1's subscription reaches the hub through its own socket:
      -- until c1 hears its own join, the hub may not count worker 1 among
      -- the topic's workers yet, and a join meanwhile is not told there
      joined(c1, "alice", "room:p")
      local c2 = connect_on(srv, "t=room:p&name=bob", on_worker(2))
      local all = { member(c1, "alice"), member(c2, "bob") }
      c1:event(("join room:p %s %d bob"):format(c2.node, c2.id))
      wait_presence(c1, "room:p", all)
      wait_presence(c2, "room:p", all)
      c2:close()
      c1:event(("leave room:p %s %d bob"):format(c2.node, c2.id))
      wait_presence(c1, "room:p", { member(c1, "alice") })
      stop(srv)
    end)

    it("across nodes, one of two workers: everyone everywhere, with node, id and info", function()
      local r = redis.start()
      local a, b = start { broker = r:url(), workers = 2 }, start { broker = r:url() }
      local c1 = connect_on(a, "t=room:p&name=alice", on_worker(1))
      joined(c1, "alice", "room:p")
      local c2 = connect_on(a, "t=room:p&name=bob", on_worker(2))
      joined(c2, "bob", "room:p")
      local c3 = connect(b, "t=room:p&name=carol")
      local all = { member(c1, "alice"), member(c2, "bob"), member(c3, "carol") }
      assert.are.equal(3, worker_set { c1, c2, c3 })
      for _, c in ipairs { c1, c2 } do c:event(("join room:p %s %d carol"):format(c3.node, c3.id)) end
      c1:event(("join room:p %s %d bob"):format(c2.node, c2.id))
      for _, c in ipairs { c1, c2, c3 } do wait_presence(c, "room:p", all) end
      c3:close()
      for _, c in ipairs { c1, c2 } do c:event(("leave room:p %s %d carol"):format(c3.node, c3.id)) end
      c1:close()
      c2:event(("leave room:p %s %d alice"):format(c1.node, c1.id))
      wait_presence(c2, "room:p", { member(c2, "bob") })
      local c4 = connect(b)
      wait_presence(c4, "room:p", { member(c2, "bob") })
      stop(a, b)
    end)
  end)
end)
