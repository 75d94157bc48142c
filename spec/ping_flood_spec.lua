-- A peer that pings as fast as it can and never reads, run as an attacker
-- runs it: a small receive buffer, seconds of 125-byte pings, the
-- server's RSS watched throughout. Every pong is output the peer makes the
-- server hold, so it counts against max_backpressure like a send: past
-- it, the policy applies ("close": 1008; "drop": the pong is not queued,
-- and counted), and the server's memory stays flat while another client
-- is served.

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"
local socket = require "socket"

local FLOOD_SECONDS = 3
-- Before the cap, 3 s of pings grew RSS by over 1 GiB. Under ASan, whose
-- allocator keeps freed blocks in quarantine, RSS says less of duplex:
-- the bound is looser there (still far below an uncapped pong queue).
local GROWTH_KIB = (os.getenv("DUPLEX_ASAN") and 64 or 16) * 1024

-- Sends masked 125-byte pings for `seconds` as fast as the socket takes
-- them, never reading; calls tick() every 0.25 s. Returns the pings the
-- kernel took and the error that ended the flood early (nil when it ran
-- its time: the server kept reading).
local function ping_flood(conn, seconds, tick)
  local frame = wsclient.frame { opcode = 9, payload = string.rep("p", 125) }
  local batch = string.rep(frame, 256)
  local sock = conn.sock
  sock:settimeout(0)
  local i, sent, ended = 1, 0, nil
  local stop, next_tick = wsclient.now() + seconds, wsclient.now()
  while wsclient.now() < stop do
    local last, err, partial = sock:send(batch, i)
    local upto = last or partial or (i - 1)
    sent = sent + (upto - i + 1)
    i = upto + 1
    if i > #batch then i = 1 end
    if err and err ~= "timeout" then
      ended = err
      break
    end
    if err then socket.select(nil, { sock }, 0.01) end
    if wsclient.now() >= next_tick then
      tick()
      next_tick = wsclient.now() + 0.25
    end
  end
  tick()
  return math.floor(sent / #frame), ended
end

-- Tracks the largest RSS of pid seen since it was made.
local function rss_watch(pid)
  local w = { before = h.proc_kib(pid, "VmRSS") }
  w.max = w.before
  function w.sample()
    local now = h.proc_kib(pid, "VmRSS")
    if now and now > w.max then w.max = now end
  end
  return w
end

describe("a peer that pings and never reads, under backpressure 'close'", function()
  local srv
  setup(function()
    srv = server.start("spec/fixtures/flood.lua",
      { "--max-backpressure", "262144", "--close-timeout", "1" })
  end)
  teardown(function() srv:stop() end)

  it("is closed 1008 once its pongs pass the cap, and the server's memory stays flat", function()
    local attacker = h.open(srv.port, "/", nil, { recv_buffer = 4096 })
    local other = h.open(srv.port)
    local rss = rss_watch(srv.pid)
    local pings = ping_flood(attacker, FLOOD_SECONDS, rss.sample)
    assert.is_true(pings > 262144 / 127, ("only %d pings went out: no flood"):format(pings))
    assert(srv:wait_log("event: close id=%d+ code=1008 reason=send queue full", 5), srv:log())
    local grown = rss.max - rss.before
    assert.is_true(grown < GROWTH_KIB, ("RSS grew by %d KiB under %d pings"):format(grown, pings))
    h.echo(other, "still served")
    attacker:close()
    other:close()
  end)
end)

describe("a peer that pings and never reads, under backpressure 'drop'", function()
  local srv
  -- drain.lua's policy is "drop" and its cap 64 KiB; a drain mark past
  -- any queue keeps its drain handler (a log line each) out of the flood.
  setup(function() srv = server.start("spec/fixtures/drain.lua", { "--drain-mark", "1073741824" }) end)
  teardown(function() srv:stop() end)

  local function dropped(conn)
    assert(conn:send_text("stats"))
    local _, reply = conn:read_message(5)
    local n = tostring(reply):match("^dropped=(%d+)")
    assert(n, "stats reply: " .. tostring(reply))
    return tonumber(n)
  end

  it("gets no pong past the cap, stays open, and the server's memory stays flat", function()
    local attacker = h.open(srv.port, "/", nil, { recv_buffer = 4096 })
    local other = h.open(srv.port)
    local rss = rss_watch(srv.pid)
    local served = 0
    local pings, ended = ping_flood(attacker, FLOOD_SECONDS, function()
      rss.sample()
      dropped(other)                 -- another client is answered during the flood
      served = served + 1
    end)
    assert.is_nil(ended)             -- the server read the whole flood
    assert.is_true(served >= FLOOD_SECONDS * 2, ("served %d times during the flood"):format(served))
    local refused = dropped(other)
    -- 64 KiB of pongs fit under the cap; every later ping's pong was refused.
    assert.is_true(refused > pings / 2, ("%d of %d pongs refused"):format(refused, pings))
    local grown = rss.max - rss.before
    assert.is_true(grown < GROWTH_KIB, ("RSS grew by %d KiB under %d pings"):format(grown, pings))
    attacker:close()
    other:close()
  end)
end)
