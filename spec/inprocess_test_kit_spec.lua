-- duplex.test, the kit app authors write their specs with: apps started
-- in this process, real clients on the same loop, and failures that say
-- what came instead of what was awaited, at the spec's own line.
local dt = require "duplex.test"
local duplex = require "duplex"

local SPEC = "spec/inprocess_test_kit_spec.lua"

-- The failure fn raises, as text (busted's failures are tables with a
-- message).
local function failure_of(fn)
  local ok, err = pcall(fn)
  assert(not ok, "expected a failure, but it passed")
  return tostring(type(err) == "table" and err.message or err)
end

-- An echo that closes on request: "close CODE REASON".
local ECHO = {
  message = function(ws, data, binary)
    local code, reason = data:match("^close (%d+) ?(.*)$")
    if code then ws:close(tonumber(code), reason) return end
    ws:send(data, binary)
  end,
}

describe("duplex.test #inprocess", function()
  local srv
  before_each(function() srv = dt.start(ECHO) end)
  after_each(function() srv:stop() end)

  it("sends and receives text and binary messages, in order", function()
    local c = srv:client()
    c:send("hello")
    c:send("\0\1\2\255", true)
    c:send("")
    local data, binary = c:receive()
    assert.are.same({ "hello", false }, { data, binary })
    assert.are.same({ "\0\1\2\255", true }, { c:receive() })
    assert.are.same({ "", false }, { c:receive() })
    assert.is_true(c:is_open())
    assert.are.same({ 1000, "" }, { c:close() })
    assert.is_false(c:is_open())
    assert.are.same({ 1000, "" }, { c:close() })     -- again: how it closed
  end)

  it("fails a receive that times out at the spec's line, saying nothing came", function()
    local c = srv:client("/?room=x")
    local line, msg = debug.getinfo(1, "l").currentline, failure_of(function() c:receive(0.1) end)
    assert.are.equal(("%s:%d: client /?room=x: no message within 0.1 s (received nothing; the connection is open)")
      :format(SPEC, line), msg)
  end)

  it("fails a receive with the close code and reason that came instead", function()
    local c = srv:client()
    c:send("close 4001 as 'asked'")
    local msg = failure_of(function() c:receive() end)
    assert.matches(": client /: expected a message, received instead: close 4001 'as \\'asked\\''$", msg)
    assert.are.same({ 4001, "as 'asked'" }, { c:expect_close(4001) })
  end)

  it("expects a close: its code and reason, or a failure naming what came", function()
    local c = srv:client()
    c:send("close 4002 bye")
    local line, msg = debug.getinfo(1, "l").currentline, failure_of(function() c:expect_close(1000) end)
    assert.are.equal(("%s:%d: client /: expected close 1000, received instead: close 4002 'bye'"):format(SPEC, line), msg)

    local d = srv:client()
    d:send("one")
    d:send(string.rep("x", 200))
    d:send("\1\2", true)
    d:send("four")
    d:send("close 1000")
    assert.are.equal("client /: expected close 1000, received instead: message 'one', then message '"
      .. string.rep("x", 80) .. "'... (200 bytes), then binary message '\\x01\\x02', then 1 more message, then close 1000",
      (failure_of(function() d:expect_close(1000, 0.2) end):gsub("^[^:]*:%d+: ", "")))

    local e = srv:client()
    e:send("close 4003 done")
    assert.are.same({ 4003, "done" }, { e:expect_close(4003) })
    local f = srv:client()
    f:send("close 1001")
    assert.are.same({ 1001, "" }, { f:expect_close() })   -- any code
    local g = srv:client()
    assert.matches("client /: no close within 0.1 s %(received nothing; the connection is open%)$",
      failure_of(function() g:expect_close(1000, 0.1) end))
  end)

  it("expects nothing for a while, or fails with what came", function()
    local c = srv:client()
    c:expect_nothing(0.05)
    c:send("late")
    assert.matches("client /: expected nothing within 0.2 s, received: message 'late'$",
      failure_of(function() c:expect_nothing() end))
  end)

  it("fails a client the server refuses, with what it got; connect lets a spec expect it", function()
    local msg = failure_of(function() srv.app:ws("/only", ECHO) srv:client("/nowhere") end)
    assert.matches(": could not open /nowhere: close 1006 %(handshake: upgrade refused: HTTP 404%)$", msg)
    local code, reason = srv:connect("/nowhere"):expect_close(1006)
    assert.are.equal(1006, code)
    assert.matches("HTTP 404", reason)
  end)

  it("sends and receives JSON, and fails a message that is not JSON", function()
    local c = srv:client()
    c:send_json { type = "say", text = "hé" }
    local v, raw = c:receive_json()
    assert.are.same({ type = "say", text = "hé" }, v)
    assert.is_string(raw)
    c:send("{nope")
    assert.matches("client /: expected a JSON message, received message '{nope'$",
      failure_of(function() c:receive_json() end))
    c:send("[1]", true)
    assert.matches("received binary message '%[1%]'$", failure_of(function() c:receive_json() end))
  end)

  it("fails a send after the close, naming the close", function()
    local c = srv:client()
    c:send("close 4004 gone")
    assert.are.same({ 4004, "gone" }, { c:expect_close(4004) })
    assert.matches("client /: cannot send after close 4004 'gone'$", failure_of(function() c:send("x") end))
  end)

  it("waits for a condition on the loop until a deadline", function()
    local c = srv:client()
    local closes = 0
    srv.app:ws("/counted", { close = function() closes = closes + 1 end })
    local d = srv:client("/counted")
    d:close()
    assert.is_true(dt.wait(function() return closes == 1 end))
    assert.is_false(dt.wait(function() return closes == 2 end, 0.05))
    c:close()
  end)

  it("raises, naming the argument, when it is misused", function()
    assert.has_error(function() dt.start(42) end,
      "bad argument #1 to 'start' (script path, app or table of handlers expected, got number)")
    assert.has_error(function() dt.start({}) end,
      "bad argument #1 to 'start' (script path, app or table of handlers expected, got table)")
    assert.has_error(function() dt.start(ECHO, 1) end, "bad argument #2 to 'start' (table expected, got number)")
    assert.has_error(function() srv:client("chat") end,
      "bad argument #1 to 'client' (path starting with '/' expected, got 'chat')")
    local c = srv:client()
    assert.has_error(function() c:send(nil) end, "bad argument #1 to 'send' (string expected, got nil)")
    assert.has_error(function() c:send("x", 1) end, "bad argument #2 to 'send' (boolean expected, got number)")
    assert.has_error(function() c:receive("soon") end, "bad argument #1 to 'receive' (seconds expected, got string)")
    assert.has_error(function() c:expect_close("1000") end,
      "bad argument #1 to 'expect_close' (close code expected, got string)")
    assert.has_error(function() c:close(999) end, "bad argument #1 to 'close' (invalid close code)")
    assert.has_error(function() dt.wait(true) end, "bad argument #1 to 'wait' (function expected, got boolean)")
  end)
end)

describe("duplex.test's servers #inprocess", function()
  it("start from a script path, an app, or handlers, with options over the app's own", function()
    local from_script = dt.start("scripts/echo.lua", { max_message = 1024 })
    local app = duplex.app { port = 8080, max_message = 1 }   -- the kit listens on port 0 all the same
    app:ws("/echo", ECHO)
    local from_app = dt.start(app, { max_message = 1024 })
    local from_handlers = dt.start({ path = "/h", message = ECHO.message }, { max_message = 1024 })
    assert.are.equal(app, from_app.app)
    for _, case in ipairs { { from_script, "/" }, { from_app, "/echo" }, { from_handlers, "/h" } } do
      local srv, path = case[1], case[2]
      assert.is_true(srv.port > 0 and srv.port ~= 8080)
      assert.are.equal(("ws://127.0.0.1:%d%s"):format(srv.port, path), srv:url(path))
      local c = srv:client(path)
      c:send(string.rep("a", 1024))
      assert.are.equal(1024, #c:receive())
      c:send(string.rep("a", 1025))
      c:expect_close(1009)
      srv:stop()
    end
  end)

  it("raise when the script cannot be loaded", function()
    local ok, err = pcall(dt.start, "spec/fixtures/no-such-app.lua")
    assert.is_false(ok)
    assert.matches("cannot load spec/fixtures/no-such-app.lua: cannot open spec/fixtures/no-such-app.lua", err, 1, true)
  end)

  it("run two at once, apart", function()
    local a = dt.start { message = function(ws, data) ws:send("a:" .. data) end }
    local b = dt.start { message = function(ws, data) ws:send("b:" .. data) end }
    assert.are_not.equal(a.port, b.port)
    local ca, cb = a:client(), b:client()
    ca:send("1")
    cb:send("2")
    assert.are.equal("a:1", ca:receive())
    assert.are.equal("b:2", cb:receive())
    a:stop()
    ca:expect_close(1001)
    cb:send("3")                              -- b goes on
    assert.are.equal("b:3", cb:receive())
    cb:expect_nothing(0.05)
    b:stop()
    cb:expect_close(1001)
  end)

  it("skip what an app streams on the way to a close", function()
    local app = duplex.app()
    app:ws("/", {
      open = function(ws) ws:subscribe("ticks") end,
      message = function(ws, data) ws:close(4000, data) end,
    })
    app:every(0.005, function() app:publish("ticks", "tick") end)
    local srv = dt.start(app)
    local c = srv:client()
    assert.are.equal("tick", c:receive())
    assert.matches("client /: no close within 0.05 s %(skipped %d+ messages, the last message 'tick'; the connection is open%)$",
      failure_of(function() c:skip_to_close(4000, 0.05) end))
    assert.matches("expected close 4000, received instead: message 'tick'", failure_of(function() c:expect_close(4000) end))
    c:send("enough")
    local code, reason, skipped = c:skip_to_close(4000)
    assert.are.same({ 4000, "enough" }, { code, reason })
    assert.is_number(skipped)
    srv:stop()
  end)

  it("stop as SIGTERM does: shutdown hook, last words, 1001 to every client; nothing is left", function()
    local closed = 0
    local srv = dt.start {
      message = function(ws, data) ws:subscribe(data) end,
      close = function() closed = closed + 1 end,
      shutdown = function(app) app:publish("news", "last word") end,
    }
    local clients = {}
    for i = 1, 5 do
      clients[i] = srv:client()
      clients[i]:send("news")
    end
    assert.is_true(dt.wait(function() return srv.app:subscribers("news") == 5 end))
    local app = srv.app
    srv:stop()
    assert.are.equal(5, closed)
    assert.are.equal(0, app:connections())
    for _, c in ipairs(clients) do
      assert.is_false(c:is_open())
      assert.are.equal("last word", c:receive())
      assert.are.same({ 1001, "server shutting down" }, { c:expect_close(1001) })
    end
    srv:stop()                               -- again: nothing to do
    assert.has_error(function() srv:client() end, "attempt to use a stopped server")
    -- Nothing listens on its port any more.
    local refused
    assert(duplex.connect(srv:url(), { close = function(_, code, why) refused = code .. " " .. why end }))
    assert.is_true(dt.wait(function() return refused ~= nil end))
    assert.matches("^1006 connect:", refused)
  end)
end)
