-- Echo: every message goes back to its sender, text as text, binary as binary.
--   duplex run scripts/echo.lua --port 9001
return {
  open = function(ws) end,
  message = function(ws, data, binary) ws:send(data, binary) end,
  close = function(ws, code, reason) end,
  pong_timeout = function(ws) end,
}
