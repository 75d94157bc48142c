-- The app of bench/sse.sh: one route, "/", that a WebSocket client and a
-- Server-Sent Events client (core/transport/sse.c) reach alike, so that
-- the two transports are measured with the same handlers and messages.
--
--   DUPLEX_MODE=down  every connection subscribes to "bench"; once the
--                     DUPLEX_CONNS-th has opened, a timer (every 0.1 ms,
--                     i.e. once per loop iteration while the loop is busy)
--                     publishes DUPLEX_BATCH 32 B text messages (one write
--                     per subscriber per tick), but only while the first
--                     subscriber's queue is empty: a reader that lags
--                     holds the publisher back instead of growing queues.
--   DUPLEX_MODE=up    the message handler counts what the clients send
--                     and answers nothing.
--
-- The run ends (DUPLEX_COUNT, for callgrind) once DUPLEX_COUNT messages
-- were published (down: then every queue is written out) or counted (up),
-- or (DUPLEX_WINDOW=S, for the CPU time) S seconds after a warm-up of
-- DUPLEX_WARMUP seconds (default 0.5) from the DUPLEX_CONNS-th open. It
-- then writes to stderr
--   messages N          messages delivered (down: publications x
--                       subscribers) or received (up) since start
--   window M TICKS      of them, M in the measured window, and the
--                       process's utime+stime (/proc/self/stat, clock
--                       ticks) over it
-- and exits 0, so that callgrind writes its profile.
local duplex = require "duplex"

local mode = os.getenv("DUPLEX_MODE") or "down"
local conns = tonumber(os.getenv("DUPLEX_CONNS") or "") or 100
local batch = tonumber(os.getenv("DUPLEX_BATCH") or "") or 1
local count = tonumber(os.getenv("DUPLEX_COUNT") or "")
local window = tonumber(os.getenv("DUPLEX_WINDOW") or "")
local warmup = tonumber(os.getenv("DUPLEX_WARMUP") or "") or 0.5
assert(mode == "down" or mode == "up", "DUPLEX_MODE: down or up")
assert(count or window, "DUPLEX_COUNT or DUPLEX_WINDOW")

-- the limits meant for real clients off (the load comes from one
-- address, faster than any client), and no pings: an SSE client would
-- have to answer them with a POST
local app = duplex.app {
  max_connections = 0, max_connections_per_ip = 0, max_message_rate = 0,
  ping_interval = 0, max_backpressure = 64 * 1024 * 1024,
}

local function cpu_ticks()
  local f = assert(io.open("/proc/self/stat"))
  local s = f:read("a")
  f:close()
  -- fields after the command's closing parenthesis: state is field 3
  local rest = s:match("%) (.*)$")
  local fields = {}
  for v in rest:gmatch("%S+") do fields[#fields + 1] = v end
  return tonumber(fields[12]) + tonumber(fields[13])   -- utime (14), stime (15)
end

local msg = ("0123456789abcdef"):rep(2)               -- 32 B, no CR or LF
local subs, opened, received, published = {}, 0, 0, 0
local stopping = false
local mark                                            -- { messages, ticks } at the window's start

local function done()
  return mode == "down" and published * conns or received
end

local function finish()
  local ticks, m = cpu_ticks(), done()
  mark = mark or { m, ticks }
  io.stderr:write(("messages %d\nwindow %d %d\n"):format(m, m - mark[1], ticks - mark[2]))
  io.stderr:flush()
  os.exit(0)
end

local publish                                         -- down: the publisher's tick

local function start()
  -- (from now on only: its ticks before would be counted as instructions
  -- that vary with how long the clients take to connect)
  if mode == "down" then app:every(0.0001, publish) end
  if window then
    app:after(warmup, function()
      mark = { done(), cpu_ticks() }
      app:after(window, function() stopping = true end)
    end)
  end
end

app:ws("/", {
  open = function(ws)
    if mode == "down" then ws:subscribe("bench") end
    subs[#subs + 1] = ws
    opened = opened + 1
    if opened == conns then start() end
  end,
  message = function() received = received + 1 end,
})

function publish()
  if stopping or subs[1]:buffered() > 0 then return end
  for _ = 1, batch do app:publish("bench", msg) end
  published = published + batch
  if count and published >= count then stopping = true end
end

-- the end: counted, or the window over; down, once every queue is written
app:every(0.01, function()
  if mode == "up" and count and received >= count then stopping = true end
  if not stopping then return end
  if mode == "down" then
    for _, ws in ipairs(subs) do
      if ws:buffered() > 0 then return end
    end
  end
  finish()
end)

return app
