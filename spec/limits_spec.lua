-- Limits that bound memory, each crossed: request head and header count
-- (431), message size (1009, also in fragments), bytes queued for a peer
-- that does not read (max_backpressure: the message is refused, the peer
-- closed with 1008, the server's memory stays flat).

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"
local socket = require "socket"

describe("the send queue limit (max_backpressure)", function()
  local srv
  setup(function()
    srv = server.start("spec/fixtures/flood.lua",
      { "--max-backpressure", "262144", "--close-timeout", "0.5" })
  end)
  teardown(function() srv:stop() end)

  it("refuses a send past the limit, closes that peer 1008, and serves others", function()
    local conn = h.open(srv.port)
    -- 64 x 16 KiB = 1 MiB asked for in one handler; the socket takes some,
    -- but nothing is flushed during the handler: the queue passes 256 KiB.
    assert(conn:send_text("flood 64 16384"))
    local line = srv:wait_log("event: flood sent=%d+ failed=%S+", 5)
    assert(line, srv:log())
    local sent, failed = line:match("sent=(%d+) failed=(%S+)")
    assert.are.equal("backpressure", failed)
    assert.truthy(line:find("message=send queue full (max_backpressure): the connection is being closed", 1, true),
      line)
    -- 16 frames of 16 KiB + 4 bytes pass 256 KiB: the 17th send is refused
    assert.are.equal(16, tonumber(sent))
    assert(srv:wait_log("event: close id=%d+ code=1008 reason=send queue full", 5), srv:log())
    h.assert_alive(srv.port)
    conn:close()
  end)

  it("keeps a peer that never reads from growing the server's memory", function()
    local pid = assert(srv.pid)
    local conns = {}
    for i = 1, 8 do
      local c = h.open(srv.port)
      conns[i] = c
    end
    local before = h.proc_kib(pid, "VmRSS")
    -- Each peer asks for 16 MiB of output and reads none of it.
    for i = 1, 8 do assert(conns[i]:send_text("flood 256 65536")) end
    local deadline = wsclient.now() + 10
    while srv:count_log("failed=backpressure", true) < 9 and wsclient.now() < deadline do
      socket.sleep(0.01)
    end
    assert.are.equal(9, srv:count_log("failed=backpressure", true), srv:log()) -- 1 from the test above
    local after = h.proc_kib(pid, "VmRSS")
    -- 8 x 16 MiB was asked for; at most the cap (+ one message and the
    -- kernel's share) each may stay queued. Allow 16 MiB in all.
    assert.is_true(after - before < 16 * 1024,
      ("RSS grew by %d KiB"):format(after - before))
    -- Each was closed with 1008 and dropped after the close timeout.
    deadline = wsclient.now() + 10
    while srv:count_log("code=1008", true) < 9 and wsclient.now() < deadline do socket.sleep(0.01) end
    assert.are.equal(9, srv:count_log("code=1008", true), srv:log())
    for i = 1, 8 do conns[i]:close() end
    h.assert_alive(srv.port)
  end)
end)

describe("the message size limit (max_message)", function()
  local srv
  setup(function() srv = server.start("spec/fixtures/echo.lua", { "--max-message", "4096" }) end)
  teardown(function() srv:stop() end)

  it("takes a message of exactly the limit in many fragments", function()
    local conn = h.open(srv.port)
    local data = string.rep("a", 4096)
    local points = {}
    for i = 100, 4000, 100 do points[#points + 1] = i end
    assert(conn:send_fragmented(1, data, points))
    h.expect_message(conn, 1, data)
    h.close_cleanly(conn)
  end)

  it("closes 1009 at the fragment header that passes the limit, before its payload", function()
    local conn = h.open(srv.port)
    assert(conn:send(wsclient.frame { fin = false, opcode = 1, payload = string.rep("a", 4000) }))
    -- the header of a 97-byte continuation: 4000 + 97 > 4096; no payload sent
    local f = wsclient.frame { fin = true, opcode = 0, payload = string.rep("b", 97) }
    assert(conn:send(f:sub(1, 6)))     -- 2-byte header + 4-byte mask key
    h.expect_close(conn, 1009)
    h.assert_alive(srv.port)
  end)
end)

describe("a frame header announcing a large payload", function()
  local srv
  setup(function() srv = server.start("spec/fixtures/echo.lua") end)   -- max_message 16 MiB
  teardown(function() srv:stop() end)

  it("makes the server reserve little more than the bytes that really came", function()
    local pid = srv.pid
    local n = 200
    local conns = {}
    for i = 1, n do conns[i] = h.open(srv.port) end
    h.echo(conns[1], "warm")
    local before = h.proc_kib(pid, "VmData")
    -- 8 MiB announced (under max_message), 20 KiB sent, then silence.
    local lie = wsclient.frame { opcode = 2, len = 8 * 1024 * 1024, payload = string.rep("x", 20 * 1024) }
    for i = 1, n do assert(conns[i]:send(lie)) end
    h.assert_alive(srv.port)
    if not os.getenv("DUPLEX_ASAN") then     -- the sanitizer's allocator reserves its own way
      -- 64 KiB each at most, with room for the allocator's slack; a
      -- megabyte reserved per announced frame would be 200 MiB. Watched
      -- for a while, as the server reads the connections in its own time.
      local limit, grown, deadline = n * 160, 0, socket.gettime() + 2
      repeat
        grown = h.proc_kib(pid, "VmData") - before
        socket.sleep(0.1)
      until grown >= limit or socket.gettime() > deadline
      assert.is_true(grown < limit, ("the data segment grew by %d KiB for %d connections"):format(grown, n))
    end
    for i = 1, n do conns[i]:close() end
  end)
end)
