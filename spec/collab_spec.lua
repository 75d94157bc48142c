-- scripts/collab.lua: a shared plain-text document kept in step by
-- operational transformation around the server. Raw clients over real
-- sockets; each runs the client half of the scheme with the OT module the
-- server uses (scripts/collab/ot.lua): one op in flight, later edits
-- buffered, ops from the server transformed past both. The page runs the
-- same algorithm in scripts/collab/ot.js; the last test checks that it
-- answers exactly like the Lua module.

local server = require "spec.support.server"
local h = require "spec.support.helpers"
local wsclient = require "spec.support.wsclient"
local socket = require "socket"
local cjson = require "cjson"

local ot = dofile("scripts/collab/ot.lua")

local LOG_MAX = 1000               -- ops the server keeps (scripts/collab.lua)
local MAX_DOC_BYTES = 256 * 1024   -- the document's cap (scripts/collab.lua)

-- ---- a client of the collab protocol ----

local Client = {}
Client.__index = Client

-- open(srv, name [, query]) -> a client that got its snapshot; query adds
-- to the URL's query string.
local function open(srv, name, query)
  local self = setmetatable({ name = name, errors = {}, seen = {} }, Client)
  self.conn = h.open(srv.port, "/collab?" .. (name and "name=" .. name or "") .. (query or ""))
  local first = self:read()
  assert.are.equal("snapshot", first.type, "the first message is the snapshot")
  assert.are.equal("join", first.reason)
  return self
end

-- reconnect(srv, query): the client's connection is dropped (TCP closed,
-- no close handshake) and it connects again with this query string.
function Client:reconnect(srv, query)
  self.conn:close()
  self.conn = h.open(srv.port, "/collab?" .. query)
end

-- send_raw(msg): a table is sent as JSON, a string as it is.
function Client:send_raw(msg)
  assert(self.conn:send_text(type(msg) == "table" and cjson.encode(msg) or msg))
end

-- read([timeout]) -> the next message, decoded and handled.
function Client:read(timeout)
  local op, data = self.conn:read_message(timeout or 5)
  assert(op == 1, tostring(self.name) .. " expected a text message, got: " .. tostring(data))
  local msg = cjson.decode(data)
  self:handle(msg)
  return msg
end

-- read_until(type [, timeout]) -> the next message of that type; the ones
-- before it are handled too.
function Client:read_until(kind, timeout)
  local deadline = socket.gettime() + (timeout or 5)
  while true do
    local msg = self:read(math.max(deadline - socket.gettime(), 0.01))
    if msg.type == kind then return msg end
  end
end

-- poll(): handle every message already arriving, without waiting for more.
function Client:poll()
  while #self.conn.buf > 0 or (socket.select({ self.conn.sock }, nil, 0))[1] do
    self:read()
  end
end

function Client:send_op(op)
  self.inflight = op
  self:send_raw { type = "op", rev = self.rev, ops = op }
end

-- edit(op): a local edit, made on self.text: applied at once, then sent,
-- or buffered while another op is in flight.
function Client:edit(op)
  assert(ot.check(op, ot.length(self.text)), "the test made a bad op")
  self.text = ot.apply(self.text, op)
  if self.inflight then
    local buffer = self.buffer or {}
    for _, c in ipairs(op) do buffer[#buffer + 1] = c end
    self.buffer = buffer
  else
    self:send_op(op)
  end
end

function Client:handle(msg)
  self.seen[#self.seen + 1] = msg
  if msg.type == "snapshot" then
    self.rev, self.text, self.peers = msg.rev, msg.text, msg.peers
    self.inflight, self.buffer = nil, nil
  elseif msg.type == "ack" then
    assert(self.inflight, "an ack with nothing in flight")
    assert(msg.rev >= self.rev, "the ack's revision went back")
    self.rev, self.inflight = msg.rev, nil
    local buffer = self.buffer
    self.buffer = nil
    if buffer and #buffer > 0 then self:send_op(buffer) end   -- the transform may have emptied it
  elseif msg.type == "op" then
    -- Ops come in server order: each one makes the next revision.
    assert.are.equal(self.rev + 1, msg.rev, "ops arrive in revision order, without gaps")
    local op = msg.ops
    if self.inflight then self.inflight, op = ot.transform(self.inflight, op) end
    if self.buffer then self.buffer, op = ot.transform(self.buffer, op) end
    self.text = ot.apply(self.text, op)
    self.rev = msg.rev
  elseif msg.type == "resumed" then
    assert.are.equal(self.rev, msg.rev, "resumed at the revision the ops before it reached")
  elseif msg.type == "peers" then
    self.peers, self.names = msg.count, msg.names
  elseif msg.type == "error" then
    self.errors[#self.errors + 1] = msg
  end
end

function Client:settled() return not self.inflight and not self.buffer end

-- close(): a clean close while peers messages may still be arriving.
function Client:close()
  assert(self.conn:send_close(1000, "done"))
  h.expect_close(self.conn, 1000, nil, { no_reply = true, skip_other = true })
end

-- snapshot(srv) -> the server's current revision and text, as a late
-- joiner sees them.
local function snapshot(srv)
  local c = open(srv, "late")
  local rev, text = c.rev, c.text
  c:close()
  return rev, text
end

-- settle(clients): read until nothing is in flight and everybody is at the
-- same revision.
local function settle(clients, seed)
  local deadline = socket.gettime() + 20
  while true do
    local top, done = 0, true
    for _, c in ipairs(clients) do
      c:poll()
      if c.rev > top then top = c.rev end
      if not c:settled() then done = false end
    end
    for _, c in ipairs(clients) do
      if c.rev ~= top then done = false end
    end
    if done then return top end
    if socket.gettime() > deadline then
      local state = {}
      for i, c in ipairs(clients) do
        state[i] = ("client %d: rev %d, in flight %s, buffer %s, errors %s"):format(i, c.rev,
          cjson.encode(c.inflight), cjson.encode(c.buffer), cjson.encode(c.errors))
      end
      error("clients did not settle (seed " .. tostring(seed) .. ")\n" .. table.concat(state, "\n"))
    end
    socket.sleep(0.002)
  end
end

-- ---- the specs ----

describe("the collab app", function()
  local srv
  -- One case pipelines LOG_MAX + 5 ops in one write, past the default
  -- burst of the message rate limit (1000): the burst is raised, the rate stays.
  before_each(function() srv = server.start("scripts/collab.lua", { "--message-burst", "2000" }) end)
  after_each(function() srv:stop() end)

  it("serves its page and the page's OT script on the same port", function()
    for path, want in pairs {
      ["/?name=ada"] = { "text/html; charset=utf-8", '<textarea id="doc"' },
      ["/ot.js"] = { "text/javascript; charset=utf-8", "function transform(a, b)" },
    } do
      local conn = assert(wsclient.tcp(srv.port))
      assert(conn:send("GET " .. path .. " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
      local resp = assert(conn:read_http_response(5))
      assert.are.equal(200, resp.status)
      assert.are.equal(want[1], resp.headers["content-type"])
      assert.truthy(resp.body:find(want[2], 1, true), path .. " is not what the page needs")
      conn:close()
    end
  end)

  it("gives a joiner the snapshot, and tells everyone how many are connected", function()
    local ada = open(srv, "ada")
    assert.are.same({ 0, "", 1 }, { ada.rev, ada.text, ada.peers })
    ada:edit { { pos = 0, insert = "hello" } }
    assert.are.same({ type = "ack", rev = 1 }, ada:read_until("ack"))
    ada:edit { { pos = 5, insert = " world" } }
    ada:read_until("ack")

    local bob = open(srv, "b%C3%B6b")
    assert.are.same({ 2, "hello world", 2 }, { bob.rev, bob.text, bob.peers })
    local peers = ada:read_until("peers")
    assert.are.same({ type = "peers", count = 2, names = { "ada", "böb" } }, peers)

    bob:close()
    assert.are.same({ type = "peers", count = 1, names = { "ada" } }, ada:read_until("peers"))
    ada:close()
  end)

  it("acks the sender and broadcasts each op to the others in server order", function()
    local ada, bob = open(srv, "ada"), open(srv, "bob")
    ada:read_until("peers")
    for i = 1, 5 do
      local who = i % 2 == 1 and ada or bob
      who:edit { { pos = ot.length(who.text), insert = tostring(i) } }
      assert.are.equal(i, who:read_until("ack").rev)
      local other = who == ada and bob or ada
      local op = other:read_until("op")
      assert.are.same({ type = "op", rev = i, ops = { { pos = i - 1, insert = tostring(i) } } }, op)
    end
    assert.are.same({ "12345", "12345" }, { ada.text, bob.text })
    assert.are.same({ 5, "12345" }, { snapshot(srv) })
    ada:close(); bob:close()
  end)

  -- Two clients make one op each on the same revision; the first to reach
  -- the server commits as is, the second is transformed past it. Run in
  -- both orders; the text both end with (and the server's) is `want`.
  local CONCURRENT = {
    { "inserts at the same position (the first committed goes first)", "abc",
      { { pos = 1, insert = "X" } }, { { pos = 1, insert = "YZ" } }, "aXYZbc", "aYZXbc" },
    { "an insert inside a range another deletes (the insert survives)", "abcdef",
      { { pos = 1, delete = 4 } }, { { pos = 3, insert = "XY" } }, "aXYf" },
    { "an insert at each end of a deleted range", "abcdef",
      { { pos = 1, delete = 4 } }, { { pos = 1, insert = "<" }, { pos = 6, insert = ">" } }, "a<>f" },
    { "overlapping deletes", "abcdef",
      { { pos = 1, delete = 3 } }, { { pos = 2, delete = 3 } }, "af" },
    { "one delete inside another", "abcdef",
      { { pos = 0, delete = 6 } }, { { pos = 2, delete = 2 } }, "" },
    { "the same delete twice (the second commits nothing)", "abcdef",
      { { pos = 1, delete = 2 } }, { { pos = 1, delete = 2 } }, "adef" },
    { "non-ASCII text: positions are code points", "héllo 😀 wörld",
      { { pos = 6, delete = 1 }, { pos = 6, insert = "🎉" } }, { { pos = 9, delete = 1 }, { pos = 1, insert = "中" } },
      "h中éllo 🎉 wrld" },
  }

  for _, case in ipairs(CONCURRENT) do
    local title, start, op_a, op_b, want_ab, want_ba = case[1], case[2], case[3], case[4], case[5], case[6]
    for _, order in ipairs { "ada first", "bob first" } do
      it("converges with concurrent ops: " .. title .. ", " .. order, function()
        local ada, bob = open(srv, "ada"), open(srv, "bob")
        ada:edit { { pos = 0, insert = start } }
        ada:read_until("ack")
        bob:read_until("op")
        local base = ada.rev
        assert.are.same({ base, start }, { bob.rev, bob.text })

        local first, second, first_op, second_op = ada, bob, op_a, op_b
        if order == "bob first" then first, second, first_op, second_op = bob, ada, op_b, op_a end
        -- Both ops are made on revision `base`; the first is committed
        -- before the second is sent, so the order is known.
        first:edit(first_op)
        first:read_until("ack")
        assert.are.equal(base, second.rev)
        second:edit(second_op)
        -- The second, still in flight, gets the first's op and transforms
        -- it past its own; the server transforms the second one likewise.
        local crossing = second:read_until("op")
        assert.are.equal(base + 1, crossing.rev)
        local ack = second:read_until("ack")
        local want = (order == "bob first" and want_ba) or want_ab
        if #ot.transform(second_op, first_op) == 0 then
          assert.are.equal(base + 1, ack.rev, "an op emptied by the transform commits nothing")
        else
          assert.are.equal(base + 2, ack.rev)
          first:read_until("op")
        end
        assert.are.same({ want, want }, { ada.text, bob.text })
        assert.are.same({ ack.rev, want }, { snapshot(srv) })
        assert.are.same({}, ada.errors)
        assert.are.same({}, bob.errors)
        ada:close(); bob:close()
      end)
    end
  end

  it("converges with several clients making random concurrent edits", function()
    local seed = tonumber(os.getenv("COLLAB_SEED") or "") or os.time()
    math.randomseed(seed)
    local ALPHABET = { "a", "b", "c", " ", "\n", "é", "中", "😀", "ß" }
    local function random_text()
      local t = {}
      for i = 1, math.random(1, 4) do t[i] = ALPHABET[math.random(#ALPHABET)] end
      return table.concat(t)
    end
    local function random_op(text)
      local len = ot.length(text)
      if len > 0 and math.random() < 0.4 then
        local pos = math.random(0, len - 1)
        return { { pos = pos, delete = math.random(1, math.min(len - pos, 5)) } }
      end
      return { { pos = math.random(0, len), insert = random_text() } }
    end

    local clients = {}
    for i = 1, 4 do clients[i] = open(srv, "c" .. i) end
    for _ = 1, 60 do
      for _, c in ipairs(clients) do
        if math.random() < 0.7 then c:edit(random_op(c.text)) end
        if math.random() < 0.5 then c:poll() end
      end
    end
    local rev = settle(clients, seed)
    local server_rev, server_text = snapshot(srv)
    assert.are.equal(server_rev, rev, "seed " .. seed)
    assert.is_true(ot.valid_utf8(server_text))
    for i, c in ipairs(clients) do
      assert.are.equal(server_text, c.text, ("client %d differs from the server (seed %d)"):format(i, seed))
      assert.are.same({}, c.errors)
    end
    for _, c in ipairs(clients) do c:close() end
  end)

  it("counts positions in code points, whatever the characters", function()
    local ada = open(srv, "ada")
    -- "😀" sent as a JSON surrogate-pair escape, "é" as raw UTF-8
    ada:send_raw('{"type":"op","rev":0,"ops":[{"pos":0,"insert":"\\ud83d\\ude00\\u00e9"},{"pos":1,"insert":"中"}]}')
    ada.inflight = {}
    ada:read_until("ack")
    assert.are.same({ 1, "😀中é" }, { snapshot(srv) })
    ada:send_raw { type = "op", rev = 1, ops = { { pos = 1, delete = 1 }, { pos = 2, insert = "!" } } }
    ada.inflight = {}
    ada:read_until("ack")
    assert.are.same({ 2, "😀é!" }, { snapshot(srv) })
    -- a lone surrogate is not a character
    ada:send_raw('{"type":"op","rev":2,"ops":[{"pos":0,"insert":"\\ud83d"}]}')
    assert.are.equal("bad_json", ada:read_until("error").name)
    ada:close()
  end)

  it("refuses bad messages with an error that names the problem, and changes nothing", function()
    local ada = open(srv, "ada")
    ada:edit { { pos = 0, insert = "abc" } }
    ada:read_until("ack")
    local BAD = {
      { "not json", "bad_json", "not JSON" },
      { "42", "bad_json", "JSON object" },
      { { type = "paint" }, "bad_message", "unknown message type" },
      { { type = "op", ops = { { pos = 0, insert = "x" } } }, "bad_rev", "rev must be an integer" },
      { { type = "op", rev = 0.5, ops = { { pos = 0, insert = "x" } } }, "bad_rev", "rev must be an integer" },
      { { type = "op", rev = 7, ops = { { pos = 0, insert = "x" } } }, "bad_rev", "rev 7 is not a revision" },
      { { type = "op", rev = -1, ops = { { pos = 0, insert = "x" } } }, "bad_rev", "not a revision" },
      { '{"type":"op","rev":1e300,"ops":[{"pos":0,"insert":"x"}]}', "bad_rev", "not a revision" },
      { { type = "op", rev = "1", ops = { { pos = 0, insert = "x" } } }, "bad_rev", "rev must be an integer" },
      { { type = "op", rev = 1 }, "bad_op", "op must be a list" },
      { { type = "op", rev = 1, ops = "x" }, "bad_op", "op must be a list" },
      { '{"type":"op","rev":1,"ops":[]}', "bad_op", "non-empty list" },
      { { type = "op", rev = 1, ops = { pos = 0, insert = "x" } }, "bad_op", "not an object" },
      { { type = "op", rev = 1, ops = { 7 } }, "bad_op", "component 1: must be an object" },
      { { type = "op", rev = 1, ops = { { pos = -1, insert = "x" } } }, "bad_op", "pos must be a non-negative integer" },
      { { type = "op", rev = 1, ops = { { pos = 1.5, insert = "x" } } }, "bad_op", "pos must be" },
      { { type = "op", rev = 1, ops = { { pos = "1", insert = "x" } } }, "bad_op", "pos must be" },
      { { type = "op", rev = 1, ops = { { pos = 0 } } }, "bad_op", "exactly one of insert" },
      { { type = "op", rev = 1, ops = { { pos = 0, insert = "x", delete = 1 } } }, "bad_op", "exactly one of insert" },
      { { type = "op", rev = 1, ops = { { pos = 0, insert = "" } } }, "bad_op", "non-empty string" },
      { { type = "op", rev = 1, ops = { { pos = 0, insert = 5 } } }, "bad_op", "non-empty string" },
      { { type = "op", rev = 1, ops = { { pos = 0, insert = "a\r\nb" } } }, "bad_op", "carriage returns" },
      { { type = "op", rev = 1, ops = { { pos = 0, delete = 0 } } }, "bad_op", "positive integer" },
      { { type = "op", rev = 1, ops = { { pos = 0, delete = 1, color = "red" } } }, "bad_op", "unknown key color" },
      { { type = "op", rev = 1, ops = { { pos = 4, insert = "x" } } }, "out_of_range", "insert at 4 past the end (length 3)" },
      { { type = "op", rev = 1, ops = { { pos = 1, delete = 3 } } }, "out_of_range", "delete 3 at 1 past the end" },
      -- the first component fits, the second does not: neither is applied
      { { type = "op", rev = 1, ops = { { pos = 0, delete = 1 }, { pos = 2, delete = 1 } } }, "out_of_range",
        "component 2: delete 1 at 2 past the end (length 2)" },
      { { type = "op", rev = 1, ops = { { pos = 0, insert = string.rep("x", MAX_DOC_BYTES + 1) } } }, "too_large",
        "the document holds at most" },
    }
    local many = {}
    for i = 1, 101 do many[i] = { pos = 0, insert = "x" } end
    BAD[#BAD + 1] = { { type = "op", rev = 1, ops = many }, "bad_op", "101 components, at most 100" }
    for _, case in ipairs(BAD) do
      ada:send_raw(case[1])
      local err = ada:read_until("error")
      local what = type(case[1]) == "string" and case[1] or cjson.encode(case[1]):sub(1, 80)
      assert.are.equal(case[2], err.name, what)
      assert.truthy(err.message:find(case[3], 1, true), what .. " -> " .. err.message)
    end
    assert(ada.conn:send_binary("\1\2"))
    assert.are.equal("bad_message", ada:read_until("error").name)
    assert.are.same({ 1, "abc" }, { snapshot(srv) })

    -- the cap holds for a document grown by several ops too
    local half = string.rep("é", MAX_DOC_BYTES / 4)   -- 2 bytes each: half the cap
    ada:edit { { pos = 0, insert = half } }
    ada:read_until("ack")
    ada:send_raw { type = "op", rev = 2, ops = { { pos = 0, insert = half } } }
    local err = ada:read_until("error")
    assert.are.equal("too_large", err.name)
    assert.truthy(err.message:find("the document would be " .. (MAX_DOC_BYTES + 3) .. " bytes", 1, true), err.message)
    local rev, text = snapshot(srv)
    assert.are.same({ 2, #half + 3 }, { rev, #text })
    ada:close()
  end)

  it("sends a fresh snapshot to a client too far behind for the op log", function()
    local ada, bob = open(srv, "ada"), open(srv, "bob")
    -- ada commits LOG_MAX + 5 ops, pipelined (op k is made on revision
    -- k - 1); bob reads none of them meanwhile.
    local n = LOG_MAX + 5
    local frames = {}
    for k = 1, n do
      frames[k] = wsclient.frame { opcode = 1, payload = cjson.encode {
        type = "op", rev = k - 1, ops = { { pos = k - 1, insert = string.char(97 + k % 26) } } } }
    end
    assert(ada.conn:send(table.concat(frames)))
    ada.inflight = {}
    for k = 1, n do
      ada.inflight = {}
      assert.are.equal(k, ada:read_until("ack").rev)
    end
    local _, text = snapshot(srv)
    assert.are.equal(n, #text)

    -- An op made on revision n - LOG_MAX is still transformed: the log
    -- holds every op since.
    local oldest = n - LOG_MAX
    bob.conn:send_text(cjson.encode { type = "op", rev = oldest, ops = { { pos = 0, insert = "<" } } })
    -- An op made on the revision before is too old: bob gets a snapshot
    -- instead and the op is dropped.
    bob.conn:send_text(cjson.encode { type = "op", rev = oldest - 1, ops = { { pos = 0, insert = "!" } } })
    local got
    repeat
      local _, data = bob.conn:read_message(5)
      got = cjson.decode(data)
    until got.type == "ack" or got.type == "snapshot"
    assert.are.same({ type = "ack", rev = n + 1 }, got)
    repeat
      local _, data = bob.conn:read_message(5)
      got = cjson.decode(data)
    until got.type ~= "op" and got.type ~= "peers"
    assert.are.equal("snapshot", got.type)
    assert.are.equal("behind", got.reason)
    assert.are.same({ n + 1, "<" .. text }, { got.rev, got.text })
    assert.are.same({ n + 1, "<" .. text }, { snapshot(srv) })
    ada:close(); bob:close()
  end)

  it("bounds the op log by the bytes it holds too", function()
    local ada, bob = open(srv, "ada"), open(srv, "bob")
    -- Six ops insert 200 000 bytes each (deleted again in between, so the
    -- document stays small): 1.2 MB, more than the log's 1 MiB, so the
    -- first op leaves the log. bob reads the broadcasts (more than the
    -- server queues for a client that does not read) but stays on
    -- revision 0.
    local chunk = string.rep("x", 200000)
    local function bob_skips_op()
      local got
      repeat
        local _, data = bob.conn:read_message(5)
        got = cjson.decode((assert(data, "bob got no op")))
      until got.type == "op"
    end
    for i = 1, 6 do
      if i > 1 then
        ada:edit { { pos = 0, delete = 200000 } }
        ada:read_until("ack")
        bob_skips_op()
      end
      ada:edit { { pos = 0, insert = chunk } }
      ada:read_until("ack")
      bob_skips_op()
    end
    assert.are.equal(11, ada.rev)
    bob.conn:send_text(cjson.encode { type = "op", rev = 1, ops = { { pos = 0, insert = "<" } } })
    bob.conn:send_text(cjson.encode { type = "op", rev = 0, ops = { { pos = 0, insert = "!" } } })
    local kinds = {}
    repeat
      local _, data = bob.conn:read_message(5)
      local got = cjson.decode((assert(data, "no snapshot for the op made on revision 0")))
      if got.type ~= "op" and got.type ~= "peers" then kinds[#kinds + 1] = ("%s %d"):format(got.type, got.rev) end
    until got.type == "snapshot"
    assert.are.same({ "ack 12", "snapshot 12" }, kinds)
    local rev, text = snapshot(srv)
    assert.are.equal(12, rev)
    -- bob's "<" at 0 went after each chunk ada inserted at 0 (her inserts
    -- were committed first), so it ends after the last one
    assert.is_true(text == chunk .. "<", "the snapshot is not ada's last chunk and bob's insert")
    ada:close(); bob:close()
  end)

  it("sends a snapshot instead of transforming an op past too many components", function()
    local ada, bob = open(srv, "ada"), open(srv, "bob")
    -- 10 ops of 100 components each: 1000 components since revision 0
    local function op_of(n, text)
      local op = {}
      for i = 1, n do op[i] = { pos = i - 1, insert = text } end
      return op
    end
    for _ = 1, 10 do
      ada:edit(op_of(100, "x"))
      ada:read_until("ack")
    end
    -- 50 components x 1000 is within the server's 50 000 pairs ...
    -- (generous deadlines: this is the costliest op the server takes)
    assert.are.equal(0, bob.rev)
    bob:edit(op_of(50, "<"))
    assert.are.same({ type = "ack", rev = 11 }, bob:read_until("ack", 30))
    local _, text = snapshot(srv)
    assert.are.equal(1050, #text)
    assert.is_true(bob.text == text, "bob's text is not the server's")
    -- ... 51 x 1000 is not: bob starts over from a snapshot
    bob.inflight = {}
    bob:send_raw { type = "op", rev = 0, ops = op_of(51, "!") }
    local got = bob:read_until("snapshot", 30)
    assert.are.same({ "behind", 11 }, { got.reason, got.rev })
    assert.is_true(got.text == text, "the op was not dropped")
    ada:close(); bob:close()
  end)

  it("resumes a client that comes back: its committed op arrives as an ack, the others' as ops", function()
    local ada = open(srv, "ada", "&client=ada-1")
    local epoch = ada.seen[1].epoch
    ada:edit { { pos = 0, insert = "hello" } }
    ada:read_until("ack")
    local bob = open(srv, "bob")
    -- ada's op is committed (bob sees it) but the connection drops before
    -- ada reads the ack
    ada:edit { { pos = 5, insert = " world" } }
    assert.are.equal(2, bob:read_until("op").rev)
    bob:edit { { pos = 0, insert = ">" } }
    bob:read_until("ack")
    ada:reconnect(srv, "name=ada&client=ada-1&epoch=" .. epoch .. "&since=1")
    local kinds = {}
    repeat
      local msg = ada:read()
      if msg.type ~= "peers" then kinds[#kinds + 1] = ("%s %d"):format(msg.type, msg.rev) end
    until msg.type == "resumed"
    assert.are.same({ "ack 2", "op 3", "resumed 3" }, kinds)
    assert.is_true(ada:settled())
    assert.are.same({ 3, ">hello world" }, { snapshot(srv) })
    assert.are.same({ ">hello world", ">hello world" }, { ada.text, bob.text })
    ada:close(); bob:close()
  end)

  it("resumes a client whose op never arrived, which then sends it again", function()
    local ada = open(srv, "ada", "&client=ada-2")
    local epoch = ada.seen[1].epoch
    ada:edit { { pos = 0, insert = "hello" } }
    ada:read_until("ack")
    local bob = open(srv, "bob")
    bob:edit { { pos = 5, insert = "!" } }
    bob:read_until("ack")
    -- ada's edit is lost with the connection: in flight, never received
    ada.text = ot.apply(ada.text, { { pos = 0, insert = "oh, " } })
    ada.inflight = { { pos = 0, insert = "oh, " } }
    ada:reconnect(srv, "name=ada&client=ada-2&epoch=" .. epoch .. "&since=1")
    assert.are.equal(2, ada:read_until("op").rev)
    ada:read_until("resumed")
    assert.is_false(ada:settled())
    ada:send_op(ada.inflight)
    assert.are.equal(3, ada:read_until("ack").rev)
    bob:read_until("op")
    assert.are.same({ 3, "oh, hello!" }, { snapshot(srv) })
    assert.are.same({ "oh, hello!", "oh, hello!" }, { ada.text, bob.text })
    ada:close(); bob:close()
  end)

  it("closes the old connection of a client that resumes on a new one", function()
    local ada = open(srv, "ada", "&client=ada-3")
    local epoch = ada.seen[1].epoch
    local again = h.open(srv.port, "/collab?name=ada2&client=ada-3&since=0&epoch=" .. epoch)
    h.expect_close(ada.conn, 4000, "replaced by a new connection", { skip_other = true })
    local _, data = again:read_message(5)
    assert.are.same({ type = "resumed", rev = 0, peers = 1 }, cjson.decode(data))
    _, data = again:read_message(5)
    assert.are.same({ type = "peers", count = 1, names = { "ada2" } }, cjson.decode(data))
    h.close_cleanly(again)
  end)

  it("sends a snapshot instead when it cannot resume", function()
    local ada = open(srv, "ada", "&client=ada-4")
    local epoch = ada.seen[1].epoch
    ada:edit { { pos = 0, insert = "text" } }
    ada:read_until("ack")
    for _, query in ipairs {
      "client=ada-4&since=0&epoch=another-run",   -- the server restarted since
      "client=ada-4&since=5&epoch=" .. epoch,     -- a revision it never had
      "since=0&epoch=" .. epoch,                  -- no client id
      "client=a%20b&since=0&epoch=" .. epoch,     -- a client id that is not one
    } do
      ada:reconnect(srv, query)
      local msg = ada:read_until("snapshot")
      assert.are.same({ "join", 1, "text" }, { msg.reason, msg.rev, msg.text }, query)
    end
    ada:close()
  end)

  it("answers a resync with a snapshot", function()
    local ada = open(srv, "ada")
    ada:edit { { pos = 0, insert = "one" } }
    ada:read_until("ack")
    ada:send_raw { type = "resync" }
    local snap = ada:read_until("snapshot")
    assert.are.equal("string", type(snap.epoch))
    snap.epoch = nil
    assert.are.same({ type = "snapshot", reason = "resync", rev = 1, text = "one", peers = 1 }, snap)
    ada:close()
  end)
end)

describe("scripts/collab/ot.js", function()
  it("transforms and applies exactly like scripts/collab/ot.lua", function()
    local seed = os.time()
    math.randomseed(seed)
    local CHARS = { "a", "b", "\n", "é", "中", "😀" }
    local function random_text(max)
      local t = {}
      for i = 1, math.random(0, max) do t[i] = CHARS[math.random(#CHARS)] end
      return table.concat(t)
    end
    local function random_op(text)
      local op, len = {}, ot.length(text)
      for i = 1, math.random(1, 3) do
        if len > 0 and math.random() < 0.5 then
          local pos = math.random(0, len - 1)
          op[i] = { pos = pos, delete = math.random(1, len - pos) }
          len = len - op[i].delete
        else
          op[i] = { pos = math.random(0, len), insert = random_text(3) .. "x" }
          len = len + ot.length(op[i].insert)
        end
      end
      return op
    end

    local cases = {}
    for i = 1, 500 do
      local text = random_text(10)
      local a, b = random_op(text), random_op(text)
      local a2, b2 = ot.transform(a, b)
      -- both orders give the same text (the property the scheme rests on)
      local ab, ba = ot.apply(ot.apply(text, a), b2), ot.apply(ot.apply(text, b), a2)
      assert.are.equal(ab, ba, ("case %d (seed %d): %s, %s on %q"):format(i, seed, cjson.encode(a), cjson.encode(b), text))
      cases[i] = { text = text, a = a, b = b, want = { a2 = a2, b2 = b2, text = ab } }
    end
    local input = os.tmpname()
    local f = assert(io.open(input, "wb"))
    f:write(cjson.encode(cases))
    f:close()
    local script = [[
      const OT = require(process.cwd() + "/scripts/collab/ot.js");
      const cases = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      const out = cases.map((c) => {
        const [a2, b2] = OT.transform(c.a, c.b);
        return { a2, b2, text: OT.apply(OT.apply(c.text, c.a), b2), other: OT.apply(OT.apply(c.text, c.b), a2) };
      });
      process.stdout.write(JSON.stringify(out));
    ]]
    local code, out = server.sh("node -e " .. server.quote(script) .. " " .. server.quote(input))
    os.remove(input)
    assert.are.equal(0, code, out)
    local got = cjson.decode(out)
    assert.are.equal(#cases, #got)
    for i, c in ipairs(cases) do
      local what = ("case %d (seed %d): %s, %s on %q"):format(i, seed, cjson.encode(c.a), cjson.encode(c.b), c.text)
      assert.are.same(c.want.a2, got[i].a2, what)
      assert.are.same(c.want.b2, got[i].b2, what)
      assert.are.equal(c.want.text, got[i].text, what)
      assert.are.equal(c.want.text, got[i].other, what)
    end
  end)

  it("diffs an edit of the textarea into code point ops that rebuild it", function()
    local script = [==[
      const OT = require(process.cwd() + "/scripts/collab/ot.js");
      const pairs = [["", "abc"], ["abc", ""], ["héllo", "hello"], ["a😀b", "a😁b"], ["a😀b", "ab"],
                     ["😀😀", "😀x😀"], ["x\n中y", "x\n中中y"], ["aaaa", "aaa"], ["abc", "abc"]];
      process.stdout.write(JSON.stringify(pairs.map(([a, b]) => {
        const op = OT.diff(a, b);
        return { before: a, after: b, op, rebuilt: OT.apply(a, op) };
      })));
    ]==]
    local code, out = server.sh("node -e " .. server.quote(script))
    assert.are.equal(0, code, out)
    for _, r in ipairs(cjson.decode(out)) do
      assert.are.equal(r.after, r.rebuilt)
      -- the same op in Lua on the UTF-8 text gives the same result
      if #r.op > 0 then assert.truthy(ot.check(r.op, ot.length(r.before))) end
      assert.are.equal(r.after, ot.apply(r.before, r.op))
    end
    local emoji = cjson.decode(out)[4]
    assert.are.same({ { pos = 1, delete = 1 }, { pos = 1, insert = "😁" } }, emoji.op)
  end)
end)
