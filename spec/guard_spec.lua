-- The guard against handlers that never return (handler_timeout): a
-- handler, timer or HTTP route running longer is stopped with an error an
-- app's pcall cannot swallow; its connection gets 1011, a timer ends, a
-- route answers 500, a shutdown hook is cut short while the shutdown goes
-- on; it is logged with its traceback and counted; the rest is served.
-- What the guard cannot reach (a loop LuaJIT compiled, a coroutine that
-- never yields on Lua 5.4) is shown as such: the process's last resort,
-- exit 70 after ten times the limit.

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"
local socket = require "socket"

local FIXTURE = "spec/fixtures/guard.lua"
local LIMIT = 0.3
local LUAJIT = jit ~= nil    -- busted runs on the VM the binary was built for

-- The answer to a plain GET of target: status code, whole response.
local function http_get(port, target)
  local c = assert(socket.connect("127.0.0.1", port))
  c:settimeout(5)
  assert(c:send("GET " .. target .. " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
  local resp = c:receive("*a") or ""
  c:close()
  return tonumber(resp:match("^HTTP/1%.1 (%d+)")), resp
end

local function ask(conn, what)
  assert(conn:send_text(what))
  local op, data = conn:read_message(5)
  assert(op == 1, "no answer to " .. what .. ": " .. tostring(data))
  return data
end

-- Sends what, expects that connection to be closed 1011 within a time
-- that shows the guard, not something else, stopped it.
local function expect_stopped(srv, conn, what)
  local t0 = wsclient.now()
  assert(conn:send_text(what))
  h.expect_close(conn, 1011, nil, { timeout = 10 })
  local took = wsclient.now() - t0
  assert.is_true(took >= LIMIT * 0.9, ("stopped after %.3f s, before the limit"):format(took))
  assert.is_true(took < LIMIT + 2, ("stopped only after %.3f s"):format(took))
  assert.is_nil(srv:exited(), "the server exited:\n" .. srv:log())
end

describe("handler_timeout", function()
  local srv
  setup(function() srv = server.start(FIXTURE, { "--handler-timeout", tostring(LIMIT) }) end)
  teardown(function() srv:stop() end)

  it("stops `while true do end` in a message handler: 1011, logged with a traceback, counted, others served", function()
    local other = h.open(srv.port)
    h.echo(other, "before")
    local before = tonumber(ask(other, "stats"))
    local conn = h.open(srv.port)
    assert(other:send_text("queued while it spins"))    -- answered once it is stopped
    expect_stopped(srv, conn, "spin")
    h.expect_message(other, 1, "queued while it spins")
    local log = srv:wait_log("stopped message handler (connection", 3, true)
    assert(log, "not logged:\n" .. srv:log())
    assert.truthy(log:find("handler ran past handler_timeout (0.3 s)", 1, true), log)
    assert.truthy(log:find("stack traceback", 1, true), log)
    assert.truthy(log:find("guard.lua:%d+: in function"), "the traceback names the handler:\n" .. log)
    assert.are.equal(before + 1, tonumber(ask(other, "stats")))
    h.echo(other, "after")
    h.assert_alive(srv.port)
    h.close_cleanly(other)
  end)

  it("is not swallowed by a pcall around the loop", function()
    local conn = h.open(srv.port)
    expect_stopped(srv, conn, "spin-pcall")      -- "after pcall" never comes
    h.assert_alive(srv.port)
  end)

  it("is not swallowed by `while true do pcall(function() while true do end end) end`", function()
    local conn = h.open(srv.port)
    expect_stopped(srv, conn, "spin-pcall-loop")
    h.assert_alive(srv.port)
  end)

  it("stops a timer that never returns: it runs no more, other timers go on", function()
    local conn = h.open(srv.port)
    assert.are.equal("started", ask(conn, "timer"))
    assert(srv:wait_log("stopped timer: handler ran past handler_timeout", 5, true), srv:log())
    local runs = ask(conn, "timer-runs")
    assert.are.equal("2 false", runs)
    local t1 = tonumber(ask(conn, "ticks"))
    socket.sleep(0.3)
    assert.is_true(tonumber(ask(conn, "ticks")) > t1, "the other timer stopped too")
    assert.are.equal("2 false", ask(conn, "timer-runs"))
    h.close_cleanly(conn)
  end)

  it("stops a history frame function that never returns, even one from a module on LuaJIT", function()
    local conn = h.open(srv.port)
    assert.are.equal("armed", ask(conn, "spin-frame"))
    assert(srv:wait_log("stopped timer: handler ran past handler_timeout", 5, true), srv:log())
    h.expect_message(conn, 1, "spin")              -- a frame that fails: the publication as it is
    h.expect_message(conn, 1, "spin:x after")
    h.close_cleanly(conn)
  end)

  it("answers 500 for an HTTP route that never returns, and serves the next request", function()
    local t0 = wsclient.now()
    local status = http_get(srv.port, "/spin")
    assert.are.equal(500, status)
    assert.is_true(wsclient.now() - t0 >= LIMIT * 0.9)
    assert(srv:wait_log("stopped http route: handler ran past handler_timeout", 3, true), srv:log())
    assert.are.equal(200, (http_get(srv.port, "/ok")))
    h.assert_alive(srv.port)
  end)

  -- On LuaJIT a function with no loop and no tail call is compiled under
  -- the guard (lua/duplex/jit_guard.lua); one with either is interpreted,
  -- where the hook reaches it, even when a compiled one calls it.
  describe("a handler with no loop of its own", function()
    local function hot_conn(path)
      local conn = h.open(srv.port, path or "/loop-free")
      for i = 1, 300 do
        assert(conn:send_text("m" .. i))
      end
      for i = 1, 300 do
        h.expect_message(conn, 1, "m" .. i)
      end
      return conn
    end

    it("is compiled on LuaJIT once hot", function()
      local conn = hot_conn()
      local traces = ask(conn, "traces")
      if LUAJIT then
        assert.is_true(tonumber(traces) >= 1, "no trace compiled in the handler: " .. traces)
      else
        assert.are.equal("none", traces)
      end
      h.close_cleanly(conn)
    end)

    for _, case in ipairs {
      { "spin-helper", "a loop in a function it calls" },
      { "spin-tail", "a function that tail-calls itself for good" },
      { "spin-goto", "a loop made by a backward goto" },
      { "spin-on-path", "the loop of a function it calls for every message", "/calls-loop" },
    } do
      it("is stopped, hot, in " .. case[2], function()
        local conn = hot_conn(case[3])
        expect_stopped(srv, conn, case[1])
        h.assert_alive(srv.port)
      end)
    end
  end)

  -- Lua 5.4: the hook is set on the event thread; a coroutine is a thread
  -- of its own. LuaJIT: hooks are the whole state's, and the script's own
  -- functions run in the interpreter.
  if LUAJIT then
    it("stops a loop inside a coroutine (LuaJIT: hooks reach every coroutine)", function()
      local conn = h.open(srv.port)
      expect_stopped(srv, conn, "spin-coroutine")
      h.assert_alive(srv.port)
    end)
  else
    it("stops a loop in a module the script requires (Lua 5.4: every Lua function checks hooks)", function()
      local conn = h.open(srv.port)
      expect_stopped(srv, conn, "spin-module")
      h.assert_alive(srv.port)
    end)
  end
end)

describe("handler_timeout's limits", function()
  it("is 1 s by default", function()
    local srv = server.start(FIXTURE)
    local ok, err = pcall(function()
      local conn = h.open(srv.port)
      local t0 = wsclient.now()
      assert(conn:send_text("slow"))                -- 1.5 s of work
      h.expect_close(conn, 1011, nil, { timeout = 10 })
      assert.is_true(wsclient.now() - t0 >= 0.9)
      assert(srv:wait_log("handler ran past handler_timeout (1 s)", 3, true), srv:log())
    end)
    srv:stop()
    assert(ok, err)
  end)

  it("0 turns the guard off: a handler busy for 1.5 s completes", function()
    local srv = server.start(FIXTURE, { "--handler-timeout", "0" })
    local ok, err = pcall(function()
      local conn = h.open(srv.port)
      assert.are.equal("done", ask(conn, "slow"))
      assert.are.equal("0", ask(conn, "stats"))
      h.close_cleanly(conn)
    end)
    srv:stop()
    assert(ok, err)
  end)

  it("cuts a shutdown hook short; the shutdown goes on and the process exits 0", function()
    local srv = server.start(FIXTURE, { "--handler-timeout", tostring(LIMIT) })
    local ok, err = pcall(function()
      local conn = h.open(srv.port)
      assert.are.equal("armed", ask(conn, "spin-on-shutdown"))
      srv:signal("TERM")
      local code = conn:read_close(10)
      assert.are.equal(1001, code)
      conn:send_close(1001, "")
      assert.are.equal(0, srv:wait_exit(10), srv:log())
      assert.truthy(srv:log():find("error in a shutdown hook: handler ran past handler_timeout (0.3 s)", 1, true),
        srv:log())
    end)
    srv:kill()
    assert(ok, err)
  end)

  -- Out of the guard's reach: the hook is never called. The process's
  -- last resort is to exit 70 after ten times the limit (logged), rather
  -- than hang for good.
  local unreachable = LUAJIT
    and { "spin-module", "a loop LuaJIT compiled (in a module: the script's own functions are interpreted)" }
    or { "spin-coroutine", "a loop in a coroutine that never yields (Lua 5.4: hooks are per thread)" }
  it("cannot stop " .. unreachable[2] .. ": the last resort exits 70", function()
    local srv = server.start(FIXTURE, { "--handler-timeout", "0.2" })
    local ok, err = pcall(function()
      local conn = h.open(srv.port)
      local t0 = wsclient.now()
      assert(conn:send_text(unreachable[1]))
      assert.are.equal(70, srv:wait_exit(10), srv:log())
      local took = wsclient.now() - t0
      assert.is_true(took >= 1.9 and took < 5, ("exited after %.3f s"):format(took))
      assert.truthy(srv:log():find("could not be stopped", 1, true), srv:log())
      assert.is_nil(srv:log():find("stopped message handler", 1, true), srv:log())
    end)
    srv:kill()
    assert(ok, err)
  end)
end)
