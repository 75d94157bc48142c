-- The "drop" policy keeps the connection and skips what does not fit; every
-- drop is counted; drain runs once the queue that passed drain_mark empties.

local server = require "spec.support.server"
local h = require "spec.support.helpers"

describe("backpressure with the drop policy", function()
  local srv
  setup(function() srv = server.start("spec/fixtures/drain.lua") end)
  teardown(function() srv:stop() end)

  it("drops what does not fit, counts it, keeps the connection, then drains", function()
    local conn = h.open(srv.port)
    -- 40 x 8 KiB in one handler: past 64 KiB queued, sends are refused.
    assert(conn:send_text("flood 40 8192"))
    local line = assert(srv:wait_log("event: flood sent=%d+ dropped=%d+", 5), srv:log())
    local sent, dropped = line:match("sent=(%d+) dropped=(%d+)")
    sent, dropped = tonumber(sent), tonumber(dropped)
    assert.are.equal(40, sent + dropped)
    assert.are.equal(8, sent)          -- 7 frames (57372 bytes) fit under 64 KiB, the 8th passes it
    -- The client reads what was queued: exactly the messages that were sent.
    for _ = 1, sent do
      local op, data = conn:read_message(5)
      assert.are.equal(2, op)
      assert.are.equal(8192, #data)
    end
    -- The queue emptied after holding more than drain_mark: drain ran, with nothing buffered.
    assert(srv:wait_log("event: drain id=%d+ buffered=0", 5), srv:log())
    -- Still open, and the drops are counted.
    assert(conn:send_text("stats"))
    h.expect_message(conn, 1, ("dropped=%d closes=0"):format(dropped))
    h.close_cleanly(conn)
  end)

  it("does not run drain for a queue that stayed small", function()
    local before = srv:count_log("event: drain", true)
    local conn = h.open(srv.port)
    assert(conn:send_text("flood 2 1000"))
    for _ = 1, 2 do assert.are.equal(2, (conn:read_message(5))) end
    h.close_cleanly(conn)
    assert.are.equal(before, srv:count_log("event: drain", true))
  end)
end)
