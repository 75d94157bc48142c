-- duplex.connect(url, handlers, { reconnect = ... }): a Lua client that
-- outlives its connections, against a real server (in this process, on
-- the same loop) that stops and starts again on the same port.

local duplex = require "duplex"
local dt = require "duplex.test"
local tcp_proxy = require "spec.support.tcp_proxy"

-- An echo app that closes with 4001 on "go away" and counts opens.
local function echo_app(counter)
  local app = duplex.app {}
  app:ws("/", {
    open = function() counter.opens = counter.opens + 1 end,
    message = function(ws, data, binary)
      if data == "go away" then ws:close(4001, "not welcome") return end
      ws:send(data, binary)
    end,
  })
  return app
end

-- A client recording what it heard.
local function recorder()
  local r = { got = {}, binary = {}, states = {}, opens = 0, closes = {} }
  r.handlers = {
    open = function() r.opens = r.opens + 1 end,
    message = function(_, data, binary) r.got[#r.got + 1] = data; r.binary[#r.binary + 1] = binary end,
    state = function(_, state, detail) r.states[#r.states + 1] = { state, detail } end,
    close = function(_, code, reason) r.closes[#r.closes + 1] = { code, reason } end,
  }
  return r
end

local function last_state(r) return r.states[#r.states][1] end

describe("duplex.connect with reconnect #inprocess", function()
  local srv, c
  after_each(function()
    if c then c:close() c = nil end
    if srv then srv:stop() srv = nil end
  end)

  it("comes back after the server restarts, sends made meanwhile go out in order", function()
    local counter = { opens = 0 }
    srv = dt.start(echo_app(counter))
    local port = srv.port
    local r = recorder()
    c = duplex.connect(srv:url("/"), r.handlers, { reconnect = { min = 0.05, max = 0.2 } })
    assert.is_true(dt.wait(function() return r.opens == 1 end))
    assert.are.equal("open", c:state())
    assert.is_true(c:send("one"))
    assert.is_true(dt.wait(function() return #r.got == 1 end))

    srv:stop()
    srv = nil
    assert.is_true(dt.wait(function() return last_state(r) == "reconnecting" end))
    assert.is_false(c:is_open())
    for i = 1, 3 do assert.is_true(c:send("queued " .. i)) end
    assert.are.equal(3, c:queued())
    dt.wait(function() return false end, 0.3)          -- attempts fail meanwhile: nothing listens

    srv = dt.start(echo_app(counter), { port = port })
    assert.is_true(dt.wait(function() return r.opens == 2 end, 5))
    assert.is_true(dt.wait(function() return #r.got == 4 end))
    assert.are.same({ "one", "queued 1", "queued 2", "queued 3" }, r.got)
    assert.are.equal(0, c:queued())
    assert.are.same({}, r.closes)                      -- not closed for good
    local attempts = 0
    for _, s in ipairs(r.states) do if s[1] == "reconnecting" then attempts = attempts + 1 end end
    assert.is_true(attempts >= 2, "it tried while the server was down")
  end)

  it("stops for good on a 4xxx close: close once, no other attempt, sends refused", function()
    local counter = { opens = 0 }
    srv = dt.start(echo_app(counter))
    local r = recorder()
    c = duplex.connect(srv:url("/"), r.handlers, { reconnect = { min = 0.05, max = 0.1 } })
    assert.is_true(dt.wait(function() return r.opens == 1 end))
    c:send("go away")
    assert.is_true(dt.wait(function() return #r.closes == 1 end))
    assert.are.equal(4001, r.closes[1][1])
    assert.are.equal("closed", c:state())
    dt.wait(function() return false end, 0.4)
    assert.are.equal(1, counter.opens)
    assert.are.equal(1, #r.closes)
    assert.is_false(c:send("anything"))
  end)

  it("stops for good when the upgrade is refused with a 4xx, retries a missing server", function()
    local counter = { opens = 0 }
    srv = dt.start(echo_app(counter))
    local r = recorder()
    c = duplex.connect(srv:url("/nowhere"), r.handlers, { reconnect = { min = 0.05, max = 0.1 } })
    assert.is_true(dt.wait(function() return #r.closes == 1 end))
    assert.truthy(r.closes[1][2]:find("HTTP 404", 1, true), r.closes[1][2])
    c = nil

    local port = srv.port
    srv:stop()
    srv = nil
    local r2 = recorder()
    c = duplex.connect("ws://127.0.0.1:" .. port .. "/", r2.handlers, { reconnect = { min = 0.05, max = 0.1 } })
    assert.is_true(dt.wait(function()
      local n = 0
      for _, s in ipairs(r2.states) do if s[1] == "reconnecting" then n = n + 1 end end
      return n >= 3
    end))
    assert.are.same({}, r2.closes)
  end)

  it("bounds its queue, and c:close() while waiting ends it at once", function()
    local r = recorder()
    c = duplex.connect("ws://127.0.0.1:1/", r.handlers, { reconnect = { min = 1, max = 1, queue = 2 } })
    assert.is_true(c:send("a"))
    assert.is_true(c:send("b"))
    assert.is_false(c:send("c"))
    assert.is_true(dt.wait(function() return last_state(r) == "reconnecting" end))
    c:close()
    assert.are.equal("closed", c:state())
    assert.are.equal(1, #r.closes)
    c = nil
  end)

  it("c:close() while a connection is being made: it never opens", function()
    local counter = { opens = 0 }
    srv = dt.start(echo_app(counter))
    local r = recorder()
    c = duplex.connect(srv:url("/"), r.handlers, { reconnect = true })
    c:close()
    dt.wait(function() return false end, 0.2)
    assert.are.equal(0, r.opens)
    assert.are.equal(0, counter.opens)
    assert.are.same({ { 1000, "closed by the client" } }, r.closes)
    c = nil
  end)

  it("refuses bad reconnect settings with an error naming them", function()
    local h = {}
    assert.has_error(function() duplex.connect("ws://127.0.0.1:1/", h, { reconnect = "yes" }) end,
      "bad argument #3 to 'connect' (option 'reconnect': true or a table expected, got string)")
    assert.has_error(function() duplex.connect("ws://127.0.0.1:1/", h, { reconnect = { tries = 3 } }) end,
      "bad argument #3 to 'connect' (reconnect: unknown key 'tries')")
    assert.has_error(function() duplex.connect("ws://127.0.0.1:1/", h, { reconnect = { min = 0 } }) end,
      "bad argument #3 to 'connect' (reconnect.min must be a positive number)")
    assert.has_error(function() duplex.connect("ws://127.0.0.1:1/", h, { reconnect = { min = 5, max = 1 } }) end,
      "bad argument #3 to 'connect' (reconnect.max is below reconnect.min)")
    assert.has_error(function() duplex.connect("nope", h, { reconnect = true }) end)
  end)
end)

-- ---- topics over duplex.1 (duplex.js's subprotocol), resumed after a drop ----

-- An app with history on "t:" topics whose route consents to every topic
-- but "secret:..." and echoes "back " .. data, text or binary; log holds
-- its connections (newest last), the topics asked for and left, and what
-- it received. /chat does not speak duplex.1.
local function topics_app(log, opts)
  local o = { history = { ["t:"] = { size = 1000 } } }
  for k, v in pairs(opts or {}) do o[k] = v end
  local app = duplex.app(o)
  local route = {
    open = function(ws) log.conns[#log.conns + 1] = ws end,
    subscribe = function(_, topic)
      log.subs[#log.subs + 1] = topic
      if topic:find("^secret:") then return false, "no secrets" end
      return true
    end,
    unsubscribe = function(_, topic) log.unsubs[#log.unsubs + 1] = topic end,
    message = function(ws, data, binary)
      log.got[#log.got + 1] = { data, binary }
      ws:send("back " .. data, binary)
    end,
  }
  app:ws("/", route)
  app:ws("/chat", { protocols = { "chat" }, message = route.message })
  return app
end

local function new_log() return { conns = {}, subs = {}, unsubs = {}, got = {} } end

-- A topic's handlers recording what they heard.
local function topic_recorder()
  local t = { msgs = {}, recovered = {}, lost = {}, refused = {} }
  t.h = {
    message = function(_, data, position, binary) t.msgs[#t.msgs + 1] = { data, position, binary } end,
    recovered = function(_, info) t.recovered[#t.recovered + 1] = info end,
    lost = function(_, reason) t.lost[#t.lost + 1] = reason end,
    refused = function(_, reason) t.refused[#t.refused + 1] = reason end,
  }
  return t
end

local function offset(position) return tonumber(position:match(":(%d+)$")) end

describe("duplex.connect with reconnect: topics over duplex.1 #inprocess", function()
  local srv, c, proxy, log
  before_each(function() log = new_log() end)
  after_each(function()
    if c then c:close() c = nil end
    if proxy then proxy:stop() proxy = nil end
    if srv then srv:stop() srv = nil end
  end)

  it("speaks duplex.1: the app's binary messages keep their bytes both ways, text stays text", function()
    srv = dt.start(topics_app(log))
    local r = recorder()
    c = duplex.connect(srv:url("/"), r.handlers, { reconnect = { min = 0.05, max = 0.2 } })
    assert.is_true(dt.wait(function() return r.opens == 1 end))
    assert.are.equal("duplex.1", c:protocol())
    assert.are.equal("duplex.1", log.conns[1].protocol)
    assert.are.equal("duplex.1", r.states[#r.states][2].protocol)
    assert.is_true(c:send("\0\1bin\0", true))
    assert.is_true(c:send("text"))
    assert.is_true(dt.wait(function() return #r.got == 2 end))
    assert.are.same({ { "\0\1bin\0", true }, { "text", false } }, log.got)
    assert.are.same({ "back \0\1bin\0", "back text" }, r.got)
    assert.are.same({ true, false }, r.binary)
    c:close()

    -- a route that does not speak it: messages as they are, topics refused
    local r2, t = recorder(), topic_recorder()
    c = duplex.connect(srv:url("/chat"), r2.handlers, { reconnect = { min = 0.05, max = 0.2 } })
    assert.is_true(c:subscribe("t:a", t.h))          -- asked at open
    assert.is_true(dt.wait(function() return r2.opens == 1 end))
    assert.is_nil(c:protocol())
    assert.are.same({ "unsupported" }, t.refused)
    c:send("\0x", true)
    assert.is_true(dt.wait(function() return #r2.got == 1 end))
    assert.are.same({ "back \0x" }, r2.got)
    assert.is_true(c:send("\0x", true))

    -- a plain client offers what it is told, and leaves the tags to its app
    local heard, plain = {}, nil
    plain = duplex.connect(srv:url("/"), { message = function(_, data, binary) heard[#heard + 1] = { data, binary } end },
      { protocols = { "duplex.1" } })
    assert.is_true(dt.wait(function() return #heard == 1 end))
    assert.are.equal("duplex.1", plain:protocol())
    assert.are.equal("\1", heard[1][1]:sub(1, 1))
    assert.truthy(heard[1][1]:find('"t":"hello"', 1, true))
    plain:close()
    assert.has_error(function() duplex.connect(srv:url("/"), {}, { protocols = { "a b" } }) end,
      "bad argument #3 to 'connect' (protocols[1]: a token expected, got 'a b')")
    assert.has_error(function() c:subscribe(1) end, "bad argument #1 to 'subscribe' (string expected, got number)")
    assert.has_error(function() c:subscribe("t:a", { mesage = print }) end,
      "bad argument #2 to 'subscribe' (unknown handler 'mesage')")
  end)

  it("subscribes with the route's consent: refused says why (lost without refused), unsubscribe is heard", function()
    srv = dt.start(topics_app(log))
    local r, a, s1, s2 = recorder(), topic_recorder(), topic_recorder(), topic_recorder()
    c = duplex.connect(srv:url("/"), r.handlers, { reconnect = { min = 0.05, max = 0.2 } })
    assert.is_true(dt.wait(function() return r.opens == 1 end))
    assert.is_true(c:subscribe("t:a", a.h))
    assert.is_true(c:subscribe("secret:x", s1.h))
    assert.is_true(c:subscribe("secret:y", { lost = s2.h.lost }))
    assert.is_true(dt.wait(function() return #s1.refused == 1 and #s2.lost == 1 end))
    assert.are.same({ "no secrets" }, s1.refused)
    assert.are.same({}, s1.lost)
    assert.are.same({ "no secrets" }, s2.lost)
    assert.are.same({ "t:a", "secret:x", "secret:y" }, log.subs)

    srv.app:publish("t:a", "one")
    srv.app:publish("t:a", "\0\255two", true)
    assert.is_true(dt.wait(function() return #a.msgs == 2 end))
    assert.are.same({ "one", false }, { a.msgs[1][1], a.msgs[1][3] })
    assert.are.same({ "\0\255two", true }, { a.msgs[2][1], a.msgs[2][3] })
    assert.are.equal(offset(a.msgs[1][2]) + 1, offset(a.msgs[2][2]))
    assert.are.equal(a.msgs[2][2], c:position("t:a"))
    assert.are.same({}, r.got)                        -- publications are not the app's messages

    assert.is_true(c:unsubscribe("t:a"))
    assert.is_false(c:unsubscribe("t:a"))
    assert.is_true(dt.wait(function() return #log.unsubs == 1 end))
    assert.are.same({ "t:a" }, log.unsubs)
    srv.app:publish("t:a", "three")
    dt.wait(function() return false end, 0.1)
    assert.are.equal(2, #a.msgs)
    assert.is_nil(c:position("t:a"))
    c:close()
    assert.is_false(c:subscribe("t:a", a.h))
  end)

  it("after drops without a restart (1011, a cut socket, 1001) gets every publication once, in order", function()
    srv = dt.start(topics_app(log))
    local n = 0
    local ticker = srv.app:every(0.01, function()
      n = n + 1
      srv.app:publish("t:tick", tostring(n))
    end)
    proxy = tcp_proxy.start(srv.port)
    local r, t = recorder(), topic_recorder()
    c = duplex.connect("ws://127.0.0.1:" .. proxy.port .. "/", r.handlers, { reconnect = { min = 0.05, max = 0.1 } })
    c:subscribe("t:tick", t.h)
    local function more(k)
      local want = #t.msgs + k
      assert.is_true(dt.wait(function() return #t.msgs >= want end), "publications go on")
    end
    more(5)
    local drops = {
      function() log.conns[#log.conns]:close(1011, "internal error") end,
      function() proxy:cut() end,
      function() log.conns[#log.conns]:close(1001, "going away") end,
    }
    for i, drop in ipairs(drops) do
      drop()
      assert.is_true(dt.wait(function() return #t.recovered == i end), "recovered after drop " .. i)
      more(5)
    end
    ticker:stop()
    assert.is_true(dt.wait(function() return t.msgs[#t.msgs][1] == tostring(n) end))
    dt.wait(function() return false end, 0.05)

    local first = tonumber(t.msgs[1][1])
    assert.are.equal(n - first + 1, #t.msgs, "no gap, no duplicate")
    for i, m in ipairs(t.msgs) do
      assert.are.equal(tostring(first + i - 1), m[1])
      if i > 1 then assert.are.equal(offset(t.msgs[i - 1][2]) + 1, offset(m[2])) end
    end
    assert.are.same({}, t.lost)
    for i, info in ipairs(t.recovered) do
      assert.is_true(info.ok, "recovered " .. i)
      assert.is_true(info.missed > 0, "publications were missed during drop " .. i)
    end
    assert.are.equal(4, r.opens)
    assert.are.equal(4, #log.conns)
  end)

  it("hears lost('epoch') when the server restarted (memory engine), and the new publications after", function()
    srv = dt.start(topics_app(log))
    local port = srv.port
    local r, t = recorder(), topic_recorder()
    c = duplex.connect(srv:url("/"), r.handlers, { reconnect = { min = 0.05, max = 0.1 } })
    c:subscribe("t:a", t.h)
    assert.is_true(dt.wait(function() return #log.subs == 1 end))
    srv.app:publish("t:a", "one")
    srv.app:publish("t:a", "two")
    assert.is_true(dt.wait(function() return #t.msgs == 2 end))
    local before = t.msgs[2][2]

    srv:stop()
    srv = dt.start(topics_app(log), { port = port })
    assert.is_true(dt.wait(function() return #t.lost == 1 end))
    assert.are.same({ "epoch" }, t.lost)
    assert.are.same({}, t.recovered)
    srv.app:publish("t:a", "fresh")
    assert.is_true(dt.wait(function() return #t.msgs == 3 end))
    assert.are.equal("fresh", t.msgs[3][1])
    assert.are_not.equal(before:match("^(.*):"), t.msgs[3][2]:match("^(.*):"))
    assert.are.equal(2, r.opens)
  end)

  it("drops a connection that brings nothing for twice the ping interval and the grace, and resumes", function()
    srv = dt.start(topics_app(log, { ping_interval = 0.1, pong_timeout = 5 }))
    proxy = tcp_proxy.start(srv.port)
    local r, t = recorder(), topic_recorder()
    c = duplex.connect("ws://127.0.0.1:" .. proxy.port .. "/", r.handlers,
      { reconnect = { min = 0.05, max = 0.1, grace = 0.1 } })
    c:subscribe("t:a", t.h)
    assert.is_true(dt.wait(function() return #log.subs == 1 end))
    srv.app:publish("t:a", "1")
    assert.is_true(dt.wait(function() return #t.msgs == 1 end))
    dt.wait(function() return false end, 0.4)        -- heartbeats keep it alive past 2 x ping + grace
    assert.are.equal(1, r.opens)

    proxy:freeze()
    local frozen_at = duplex.now()
    srv.app:publish("t:a", "2")
    srv.app:publish("t:a", "3")
    assert.is_true(dt.wait(function() return last_state(r) == "reconnecting" end, 3))
    local took = duplex.now() - frozen_at
    assert.are.equal("dead", r.states[#r.states][2].reason)
    -- silence counts from the last heartbeat, up to one ping interval before the freeze
    assert.is_true(took >= 0.15 and took < 1.5, "dropped after " .. took .. " s")
    assert.is_true(dt.wait(function() return #t.recovered == 1 and #t.msgs == 3 end))
    assert.are.same({ "1", "2", "3" }, { t.msgs[1][1], t.msgs[2][1], t.msgs[3][1] })
    assert.are.equal(2, t.recovered[1].missed)
    assert.are.equal(2, r.opens)
  end)
end)
