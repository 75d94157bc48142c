-- The app `duplex bench` starts when it is given no --url and no --server
-- (duplex run <this file>):
--   /           echo: every message goes back to its sender, same type
--   /broadcast  every connection is subscribed to "bench"; a message from
--               one is published to all the others (framed once)
return (function()
  local duplex = require "duplex"
  -- a load from one address, faster than any client: no limits meant for clients
  local app = duplex.app { max_connections = 0, max_connections_per_ip = 0, max_message_rate = 0 }
  app:ws("/", {
    message = function(ws, data, binary) ws:send(data, binary) end,
  })
  app:ws("/broadcast", {
    open = function(ws) ws:subscribe("bench") end,
    message = function(ws, data, binary) ws:publish("bench", data, binary) end,
  })
  return app
end)()
