-- Echo that ends the process once it has echoed DUPLEX_COUNT messages
-- (checked ten times a second, outside the message path), writing the
-- exact count it handled to stderr as "messages N". Used by
-- bench/instructions.sh, which runs it under callgrind: the process
-- exits normally, so the profile is written, and instructions per
-- message come from two runs of different counts.
local duplex = require "duplex"
local want = tonumber(os.getenv("DUPLEX_COUNT") or "") or 100000
-- (the limits meant for real clients off: the load comes from one address)
local app = duplex.app { max_connections = 0, max_connections_per_ip = 0, max_message_rate = 0 }
app:ws("/", {
  message = function(ws, data, binary) ws:send(data, binary) end,
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
