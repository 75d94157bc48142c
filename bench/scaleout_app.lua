-- The app of bench/scaleout.sh's memory scenario: three kinds of idle
-- connection, each opened by `duplex bench connect` on its own path, so
-- that the server's memory per connection says what a subscription, and
-- then presence, add to a plain connection of the same app.
--   /            plain: an echo, subscribed to nothing
--   /subscribed  subscribed to "room:K" (K = its number % DUPLEX_ROOMS,
--                default 100), a topic with history (the last 50, 10 min)
--   /presence    the same, with presence = { name = "user<number>" }
local duplex = require "duplex"
local rooms = tonumber(os.getenv("DUPLEX_ROOMS") or "") or 100
-- (the limits meant for real clients off: the load comes from one address)
local app = duplex.app {
  max_connections = 0, max_connections_per_ip = 0, max_message_rate = 0,
  history = { ["room:"] = { size = 50, ttl = 600 } },
}
local n = 0
app:ws("/", {
  message = function(ws, data, binary) ws:send(data, binary) end,
})
app:ws("/subscribed", {
  open = function(ws)
    n = n + 1
    ws:subscribe("room:" .. n % rooms)
  end,
})
app:ws("/presence", {
  open = function(ws)
    n = n + 1
    ws:subscribe("room:" .. n % rooms, { presence = { name = "user" .. n } })
  end,
})
return app
