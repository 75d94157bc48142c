-- Echo app that ends the process once DUPLEX_COUNT connections have
-- closed (checked ten times a second), writing the count to stderr as
-- "connections N". Used by bench/instructions.sh (scenario H) under
-- callgrind: instructions per connection (handshake, open, close) come
-- from two runs of different counts.
local duplex = require "duplex"
local want = tonumber(os.getenv("DUPLEX_COUNT") or "") or 1000
local closed = 0
-- (the limits meant for real clients off: the load comes from one address)
local app = duplex.app { max_connections = 0, max_connections_per_ip = 0, max_message_rate = 0 }
app:ws("/", {
  message = function(ws, data, binary) ws:send(data, binary) end,
  close = function() closed = closed + 1 end,
})
app:every(0.1, function()
  if closed >= want then
    io.stderr:write(("connections %d\n"):format(closed))
    io.stderr:flush()
    os.exit(0)
  end
end)
return app
