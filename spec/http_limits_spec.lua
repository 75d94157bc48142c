-- Plain HTTP against peers that do not read: pipelined requests stop being
-- read while more than max_backpressure of responses wait (the server's
-- memory stays flat), and a slow download goes on past the keep-alive
-- timeout as long as the peer keeps taking bytes.

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"
local socket = require "socket"

local WWW = "spec/fixtures/www"
local SIZE = 2 * 1024 * 1024
local SLOW_SIZE = 16 * 1024 * 1024  -- well over the kernel buffers between us

local function get(name, extra)
  return "GET /" .. name .. " HTTP/1.1\r\nHost: x\r\n" .. (extra or "") .. "\r\n"
end

describe("HTTP and peers that do not read", function()
  local srv, name, slow
  setup(function()
    local tag = math.random(1, 1e9)
    name, slow = ("_tmp_big_%d.bin"):format(tag), ("_tmp_slow_%d.bin"):format(tag)
    local f = assert(io.open(WWW .. "/" .. name, "wb"))
    f:write(string.rep("0123456789abcdef", SIZE / 16))
    f:close()
    f = assert(io.open(WWW .. "/" .. slow, "wb"))
    f:write(string.rep("0123456789abcdef", SLOW_SIZE / 16))
    f:close()
    srv = server.start("spec/fixtures/http_app.lua",
      { "--max-backpressure", "1048576", "--handshake-timeout", "0.5" })
  end)
  teardown(function()
    srv:stop()
    os.remove(WWW .. "/" .. name)
    os.remove(WWW .. "/" .. slow)
  end)

  it("stops reading pipelined requests while their responses wait", function()
    local conn = assert(wsclient.tcp(srv.port))
    local before = h.proc_kib(srv.pid, "VmRSS")
    -- 100 requests for a 2 MiB file, sent at once, none of the answers read:
    -- 200 MiB if every one were answered into memory.
    local burst = string.rep(get(name), 100)
    assert(conn:send(burst))
    -- Give the server time to do whatever it will with them: a second
    -- connection's answer comes after it has read and handled the burst.
    local other = assert(wsclient.tcp(srv.port))
    assert(other:send(get("notes.txt", "Connection: close\r\n")))
    local resp = assert(other:read_http_response(5))
    assert.are.equal(200, resp.status)
    other:close()
    local grown = h.proc_kib(srv.pid, "VmRSS") - before
    assert.is_true(grown < 16 * 1024, ("RSS grew by %d KiB"):format(grown))
    conn:close()
  end)

  it("answers every pipelined request once the peer reads", function()
    local conn = assert(wsclient.tcp(srv.port))
    assert(conn:send(string.rep(get(name), 5) .. get("notes.txt")))
    for _ = 1, 5 do
      local resp = assert(conn:read_http_response(10))
      assert.are.equal(200, resp.status)
      assert.are.equal(SIZE, #resp.body)
    end
    local last = assert(conn:read_http_response(5))
    assert.are.equal(200, last.status)
    assert.truthy(last.body:find("notes.txt", 1, true))
    conn:close()
  end)

  it("lets a slow download run past the keep-alive timeout while it progresses", function()
    local c = assert(socket.tcp())
    c:setoption("recv-buffer-size", 65536)
    assert(c:connect("127.0.0.1", srv.port))
    assert(c:send(get(slow)))
    -- Take 512 KiB every 50 ms: 16 MiB needs well over the 0.5 s timeout.
    local got, started = 0, socket.gettime()
    c:settimeout(2)
    while got < SLOW_SIZE + 100 do
      local data, err, partial = c:receive(524288)
      local piece = data or partial or ""
      got = got + #piece
      if err == "closed" then break end
      assert(err == nil or err == "timeout", err)
      socket.sleep(0.05)                         -- pacing a slow reader, not waiting for an event
    end
    assert.is_true(socket.gettime() - started > 0.5, "the download was not slow enough to test")
    assert.is_true(got >= SLOW_SIZE, ("the download stopped after %d bytes"):format(got))
    c:close()
  end)
end)
