-- The broadcast app of `duplex bench` (every connection subscribed to one
-- topic, a message published to all the others) that ends the process
-- once DUPLEX_COUNT messages were published (checked ten times a second),
-- writing the exact count to stderr as "messages N". Used by
-- bench/instructions.sh (scenario P) under callgrind: instructions per
-- publication (framed once, written to every subscriber) come from two
-- runs of different counts.
local duplex = require "duplex"
local want = tonumber(os.getenv("DUPLEX_COUNT") or "") or 10000
-- (the limits meant for real clients off: the load comes from one address)
local app = duplex.app { max_connections = 0, max_connections_per_ip = 0, max_message_rate = 0 }
app:ws("/", {
  open = function(ws) ws:subscribe("bench") end,
  message = function(ws, data, binary) ws:publish("bench", data, binary) end,
})
app:every(0.1, function()
  local n = app:stats().messages_in
  if n >= want then
    io.stderr:write(("messages %d\n"):format(n))
    io.stderr:flush()
    os.exit(0)
  end
end)
return app
