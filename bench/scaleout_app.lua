-- The app of bench/scaleout.sh's memory scenario: three kinds of idle
-- connection, each opened by `duplex bench connect` on its own path, so
-- that the server's memory per connection says what a subscription, and
-- then presence, add to a plain connection of the same app.
--   /            plain: an echo, subscribed to nothing
--   /subscribed  subscribed to "room:K" (K = its number % DUPLEX_ROOMS,
--                default 100), a topic with history (the last 50, 10 min)
--   /presence    the same, with presence = { name = "user<number>" }
-- At start every room's history is filled (DUPLEX_HISTORY_FILL
-- publications of 32 B, default 50: the rule's size) and "history
-- filled R x F" goes to stderr: the topics exist, with a full history,
-- before the script reads the memory the connections start from, so the
-- growth per connection is the connection's and its subscription's, not
-- the topics'. When the DUPLEX_EXPECT-th connection has opened (default
-- 10000), "check opened N subscribed S presence P" goes to stderr (S: the
-- subscribers of all rooms, P: their presence members), for the script to
-- tell that every connection was subscribed as its kind says.
local duplex = require "duplex"
local rooms = tonumber(os.getenv("DUPLEX_ROOMS") or "") or 100
local fill = tonumber(os.getenv("DUPLEX_HISTORY_FILL") or "") or 50
local expect = tonumber(os.getenv("DUPLEX_EXPECT") or "") or 10000
-- (the limits meant for real clients off: the load comes from one address)
local app = duplex.app {
  max_connections = 0, max_connections_per_ip = 0, max_message_rate = 0,
  history = { ["room:"] = { size = 50, ttl = 600 } },
}

app:after(0, function()
  local msg = ("x"):rep(32)
  for k = 0, rooms - 1 do
    for _ = 1, fill do app:publish("room:" .. k, msg) end
  end
  io.stderr:write(("history filled %d x %d\n"):format(rooms, fill))
  io.stderr:flush()
end)

local n = 0
local function opened()
  n = n + 1
  if n ~= expect then return end
  app:after(0, function()
    local subs, members = 0, 0
    for k = 0, rooms - 1 do
      subs = subs + app:subscribers("room:" .. k)
      -- one process: the memory engine answers at once
      app:presence("room:" .. k, function(list) members = members + (list and #list or 0) end)
    end
    io.stderr:write(("check opened %d subscribed %d presence %d\n"):format(n, subs, members))
    io.stderr:flush()
  end)
end

app:ws("/", {
  open = opened,
  message = function(ws, data, binary) ws:send(data, binary) end,
})
app:ws("/subscribed", {
  open = function(ws)
    ws:subscribe("room:" .. n % rooms)
    opened()
  end,
})
app:ws("/presence", {
  open = function(ws)
    ws:subscribe("room:" .. n % rooms, { presence = { name = "user" .. n } })
    opened()
  end,
})
return app
