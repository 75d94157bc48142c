-- ws:send once it is hot. On LuaJIT it is a Lua function the JIT
-- compiles, with the message going through the FFI (core/binding/
-- lconn_ffi.c); on Lua 5.4 it stays a C function. Either way it answers
-- as before: true, binary or text, a number as its text, a large payload
-- held, a bad argument raised, a full queue's nil, message, name, a closed
-- connection raised; and the guard still stops a handler that sends
-- forever.

local server = require "spec.support.server"
local h = require "spec.support.helpers"

local LUAJIT = jit ~= nil    -- busted runs on the VM the binary was built for

local function ask(conn, command)
  assert(conn:send_text(command))
  local op, msg = conn:read_message(5)
  assert.are.equal(1, op, tostring(msg))
  return msg
end

-- Sends "warm <n>" and reads the n "w" and the "warm" after them.
local function warm(conn, n)
  assert(conn:send_text("warm " .. n))
  for _ = 1, n do h.expect_message(conn, 1, "w") end
  h.expect_message(conn, 1, "warm")
end

describe("ws:send once hot", function()
  local srv
  setup(function() srv = server.start("spec/fixtures/send_path.lua") end)
  teardown(function() srv:stop() end)

  it("is compiled on LuaJIT and a C function on Lua 5.4", function()
    local conn = h.open(srv.port)
    warm(conn, 500)
    assert(conn:send_text("kinds"))
    for _ = 1, 3 do conn:read_message(5) end
    local op, big = conn:read_message(5)
    assert.are.equal(2, op)
    assert.are.equal(20000, #big)
    local reply = select(2, conn:read_message(5))
    if LUAJIT then
      assert.truthy(reply:find("| Lua Lua$"), reply)
      local compiled, aborted = ask(conn, "traces"):match("^compiled=(%d+) aborted=(%d+)$")
      assert.is_true(tonumber(compiled) >= 2, "compiled " .. compiled .. ", aborted " .. aborted)
    else
      assert.truthy(reply:find("| C C$"), reply)
    end
    h.close_cleanly(conn)
  end)

  it("answers as the C send does", function()
    local conn = h.open(srv.port)
    warm(conn, 500)
    assert(conn:send_text("kinds"))
    h.expect_message(conn, 1, "text")
    h.expect_message(conn, 2, "bin")
    h.expect_message(conn, 1, "42")
    h.expect_message(conn, 2, string.rep("a", 20000))
    local reply = select(2, conn:read_message(5))
    local results, err = reply:match("^(.-) | (.-) | ")
    assert.are.equal("true true true true", results, reply)
    assert.truthy(err:find("^false .*bad argument #2 to 'send' %(boolean expected, got string%)"), reply)
    h.close_cleanly(conn)
  end)

  it("gives nil, message, 'backpressure' when the queue is full, and the connection stays", function()
    local conn = h.open(srv.port)
    warm(conn, 500)
    assert(conn:send_text("fill 100"))
    local got = 0
    while true do                        -- the 1 KiB ones that fit in the queue
      local op, msg = conn:read_message(1)
      if not op then break end
      assert.are.equal(1024, #msg)
      got = got + 1
    end
    local reply = ask(conn, "last")      -- asked once the queue is empty again
    assert.is_true(got >= 60 and got < 100, "sent " .. got)
    assert.are.equal("nil send queue full (max_backpressure): the message was dropped backpressure", reply)
    h.echo(conn, "still open")
    h.close_cleanly(conn)
  end)

  it("raises on a closed connection", function()
    local gone = h.open(srv.port)
    warm(gone, 500)
    h.close_cleanly(gone)
    local conn = h.open(srv.port)
    local reply
    for _ = 1, 50 do                     -- the close handler runs after our close
      reply = ask(conn, "send-to-closed")
      if reply ~= "none" then break end
    end
    assert.truthy(reply:find("^false .*attempt to use a closed connection"), reply)
    h.close_cleanly(conn)
  end)

  it("leaves a handler that sends forever to the guard (1011), and the server serves on", function()
    local conn = h.open(srv.port)
    warm(conn, 500)
    assert(conn:send_text("spin"))
    local t0 = os.time()
    local code, _, frame, skipped = conn:read_close(5, true)
    assert(frame, "no close: " .. tostring(_))
    assert.are.equal(1011, code)
    assert.is_true(#skipped >= 60, "sends before the stop: " .. #skipped)   -- the queue's 64 KiB were sent
    for _, f in ipairs(skipped) do assert.are.equal("s", f.payload) end
    assert.is_true(os.time() - t0 <= 3)
    assert(srv:wait_log("handler ran past handler_timeout", 3, true))
    conn:close()
    h.assert_alive(srv.port)
  end)
end)
