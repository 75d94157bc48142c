-- duplex.connect(url, handlers, { reconnect = ... }): a Lua client that
-- outlives its connections, against a real server (in this process, on
-- the same loop) that stops and starts again on the same port.

local duplex = require "duplex"
local dt = require "duplex.test"

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
  local r = { got = {}, states = {}, opens = 0, closes = {} }
  r.handlers = {
    open = function() r.opens = r.opens + 1 end,
    message = function(_, data) r.got[#r.got + 1] = data end,
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
