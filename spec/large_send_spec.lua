-- ws:send of a large payload queues the string itself, not a copy: it must
-- reach the peer intact even when the app dropped it and the collector ran
-- before the write, keep its place among other sends, and be let go of
-- once written or once its connection is gone.

local server = require "spec.support.server"
local h = require "spec.support.helpers"
local socket = require "socket"

local MiB = 1024 * 1024

local function lua_kib(port)
  local conn = h.open(port)
  assert(conn:send_text("mem"))
  local op, data = conn:read_message(5)
  assert.are.equal(1, op)
  h.close_cleanly(conn)
  return assert(tonumber(data))
end

describe("large sends", function()
  local srv
  setup(function() srv = server.start("spec/fixtures/large_send.lua") end)
  teardown(function() srv:stop() end)

  it("arrive intact after a full collection while queued", function()
    local conn = h.open(srv.port)
    assert(conn:send_text("send 6 " .. 2 * MiB))
    for i = 1, 6 do
      h.expect_message(conn, 2, string.rep(string.char(97 + i % 26), 2 * MiB), 10)
    end
    h.close_cleanly(conn)
  end)

  it("keep their order among small sends", function()
    local conn = h.open(srv.port)
    assert(conn:send_text("mixed"))
    h.expect_message(conn, 1, "s1")
    h.expect_message(conn, 1, string.rep("L", 100 * 1024))
    h.expect_message(conn, 1, "s2")
    h.expect_message(conn, 2, string.rep("M", 20 * 1024))
    h.expect_message(conn, 1, "s3")
    h.close_cleanly(conn)
  end)

  it("are let go of when written, and when the peer leaves without reading", function()
    local before = lua_kib(srv.port)
    local reader = h.open(srv.port)
    assert(reader:send_text("send 8 " .. MiB))
    for i = 1, 8 do
      h.expect_message(reader, 2, string.rep(string.char(97 + i % 26), MiB), 10)
    end
    h.close_cleanly(reader)
    local quitter = h.open(srv.port)
    assert(quitter:send_text("send 32 " .. MiB))   -- 32 MiB queued, far more than the socket takes
    socket.sleep(0.2)
    quitter:close()
    -- The server notices the peer left when it next writes or reads.
    local after
    local deadline = socket.gettime() + 5
    repeat
      socket.sleep(0.05)
      after = lua_kib(srv.port)
    until after - before < 2048 or socket.gettime() > deadline
    assert.is_true(after - before < 2048,
      ("Lua memory grew by %.0f KiB and stayed"):format(after - before))
  end)
end)
