-- The app `duplex bench` starts when it is given no --url and no --server
-- (duplex run <this file>):
--   /           echo: every message goes back to its sender, same type
--   /broadcast  every connection is subscribed to "bench"; a message from
--               one is published to all the others (framed once)
return (function()
  local duplex = require "duplex"
  local app = duplex.app {}
  app:ws("/", {
    message = function(ws, data, binary) ws:send(data, binary) end,
  })
  app:ws("/broadcast", {
    open = function(ws) ws:subscribe("bench") end,
    message = function(ws, data, binary) ws:publish("bench", data, binary) end,
  })
  return app
end)()
