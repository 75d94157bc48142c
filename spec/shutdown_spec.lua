-- Graceful shutdown (SIGTERM, SIGINT): accepting stops at once, the app's
-- shutdown hook runs, every client gets what was queued for it and then
-- 1001, the server waits for close replies up to shutdown_timeout and
-- exits 0; a second signal exits at once.

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"
local socket = require "socket"

local FIXTURE = "spec/fixtures/shutdown.lua"

-- Reads from conn the n messages "1:..." to "n:..." of size bytes each (as
-- the fixture's "fill" sends them), then "bye", then a close 1001; answers
-- the close. Returns the messages that arrived as they should.
local function take_all(conn, n, size)
  local good = 0
  for i = 1, n do
    local op, data = conn:read_message(10)
    assert(op == 1, ("message %d: %s"):format(i, tostring(data)))
    assert(data:match("^(%d+):") == tostring(i) and #data == size,
      ("message %d arrived as %q..."):format(i, data:sub(1, 16)))
    good = good + 1
  end
  local op, data = conn:read_message(10)
  assert(op == 1 and data == "bye", "expected the shutdown hook's bye, got " .. tostring(data))
  local code = conn:read_close(10)
  assert.are.equal(1001, code)
  conn:send_close(1001, "")
  return good
end

describe("graceful shutdown", function()
  it("gives 200 clients every queued message, the hook's last word, then 1001; exits 0", function()
    local srv = server.start(FIXTURE)
    local ok, err = pcall(function()
      local clients, N, SIZE = {}, 32, 4096
      for i = 1, 200 do
        clients[i] = h.open(srv.port, "/", nil, { recv_buffer = 4096 })
        assert(clients[i]:send_text(("fill %d %d"):format(N, SIZE)))
      end
      local deadline = wsclient.now() + 10
      while srv:count_log("event: filled", true) < 200 and wsclient.now() < deadline do socket.sleep(0.01) end
      assert.are.equal(200, srv:count_log("event: filled", true), srv:log())
      -- Their small receive windows leave most of the 25 MiB queued in the server.
      local queued = 0
      for b in srv:log():gmatch("event: filled id=%d+ buffered=(%d+)") do queued = queued + tonumber(b) end
      assert.is_true(queued > 200 * N * SIZE / 2, ("only %d bytes were queued"):format(queued))

      local started = wsclient.now()
      srv:signal("TERM")
      -- Accepting stops at once.
      assert(srv:wait_log("event: shutdown hook reason=server shutting down", 5, true), srv:log())
      assert.is_nil(wsclient.tcp(srv.port))
      local got = 0
      for i = 1, 200 do
        got = got + take_all(clients[i], N, SIZE)
      end
      assert.are.equal(200 * N, got)             -- none lost
      assert.are.equal(0, srv:wait_exit(10), srv:log())
      local took = wsclient.now() - started
      assert.is_true(took < 10, ("shutdown took %.2f s"):format(took))
      assert.are.equal(200, srv:count_log("code=1001", true), srv:log())
      assert.are.equal(1, srv:count_log("event: shutdown hook", true))
      for i = 1, 200 do clients[i]:close() end
    end)
    srv:kill()
    assert(ok, err)
  end)

  it("does not wait for a client that never reads nor answers past shutdown_timeout", function()
    local srv = server.start(FIXTURE, { "--shutdown-timeout", "1" })
    local ok, err = pcall(function()
      local silent = h.open(srv.port, "/", nil, { recv_buffer = 4096 })
      assert(silent:send_text("fill 15 65536"))        -- near 1 MiB it will never read
      assert(srv:wait_log("event: filled", 5, true), srv:log())
      local idle = h.open(srv.port)                    -- reads, but never answers the close
      local started = wsclient.now()
      srv:signal("TERM")
      local _, bye = idle:read_message(5)
      assert.are.equal("bye", bye)
      assert.are.equal(1001, (idle:read_close(5)))
      assert.are.equal(0, srv:wait_exit(10), srv:log())
      local took = wsclient.now() - started
      assert.is_true(took >= 0.9 and took < 3, ("exited after %.2f s, with a deadline of 1 s"):format(took))
      -- Each still got its close event, with the code the server sent.
      assert.are.equal(2, srv:count_log("code=1001", true), srv:log())
      silent:close()
      idle:close()
    end)
    srv:kill()
    assert(ok, err)
  end)

  it("exits at once on a second signal", function()
    local srv = server.start(FIXTURE, { "--shutdown-timeout", "30" })
    local ok, err = pcall(function()
      local idle = h.open(srv.port)
      local started = wsclient.now()
      srv:signal("INT")
      assert.are.equal(1001, (idle:read_close(5, true)))
      srv:signal("INT")
      assert.are.equal(0, srv:wait_exit(5), srv:log())
      assert.is_true(wsclient.now() - started < 3)
      idle:close()
    end)
    srv:kill()
    assert(ok, err)
  end)

  it("logs a shutdown hook that raises, with its traceback, and shuts down all the same", function()
    local srv = server.start(FIXTURE, nil, { env = { SHUTDOWN_HOOK_FAILS = "1" } })
    local ok, err = pcall(function()
      local conn = h.open(srv.port)
      srv:signal("TERM")
      assert.are.equal(0, take_all(conn, 0, 0))
      assert.are.equal(0, srv:wait_exit(10), srv:log())
      local log = srv:log()
      assert.matches("error in a shutdown hook: [^\n]*the hook failed on purpose", log)
      assert.matches("stack traceback", log)
      conn:close()
    end)
    srv:kill()
    assert(ok, err)
  end)

  it("lets a static download under way finish, then closes it", function()
    local name = ("_tmp_shutdown_%d.bin"):format(math.random(1, 1e9))
    local path = "spec/fixtures/www/" .. name
    local f = assert(io.open(path, "wb"))
    f:write(string.rep("0123456789abcdef", 4 * 1024 * 1024 / 16))
    f:close()
    local srv = server.start("spec/fixtures/http_app.lua")
    local ok, err = pcall(function()
      local conn = assert(wsclient.tcp(srv.port, nil, { recv_buffer = 4096 }))
      assert(conn:send("GET /" .. name .. " HTTP/1.1\r\nHost: x\r\n\r\n"))
      local idle = assert(wsclient.tcp(srv.port))           -- a kept-alive connection with nothing under way
      assert(idle:send("GET /notes.txt HTTP/1.1\r\nHost: x\r\n\r\n"))
      assert.are.equal(200, assert(idle:read_http_response(5)).status)
      srv:signal("TERM")
      assert(idle:expect_eof(3))                               -- dropped at once
      local resp = assert(conn:read_http_response(10))
      assert.are.equal(200, resp.status)
      assert.are.equal(4 * 1024 * 1024, #resp.body)            -- the whole file, then the end
      assert(conn:expect_eof(3))
      assert.are.equal(0, srv:wait_exit(10), srv:log())
      conn:close()
      idle:close()
    end)
    srv:kill()
    os.remove(path)
    assert(ok, err)
  end)
end)
