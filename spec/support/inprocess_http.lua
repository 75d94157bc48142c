-- HTTP for the in-process specs: the server runs in this process, so a
-- response is read while duplex.test runs the loop, never by blocking on
-- the socket.
local dt = require "duplex.test"
local socket = require "socket"

local M = {}

-- get(port, path) -> status, headers (lower-case names), body: a GET of
-- path from 127.0.0.1:port on a plain socket, read while the loop runs.
function M.get(port, path)
  local tcp = assert(socket.tcp())
  tcp:settimeout(5)         -- connect and a short request: the kernel takes them, no accept needed
  assert(tcp:connect("127.0.0.1", port))
  assert(tcp:send("GET " .. path .. " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
  tcp:settimeout(0)
  local chunks = {}
  local ended = dt.wait(function()
    while true do
      local data, err, partial = tcp:receive(8192)
      local got = data or partial
      if got and #got > 0 then chunks[#chunks + 1] = got end
      if err == "closed" then return true end
      if not data then return false end
    end
  end)
  tcp:close()
  assert(ended, "the response did not end within the deadline")
  local raw = table.concat(chunks)
  local head, body = raw:match("^(.-)\r\n\r\n(.*)$")
  assert(head, "no complete response head: " .. raw:sub(1, 200))
  local status = tonumber(head:match("^HTTP/1%.1 (%d%d%d)"))
  local headers = {}
  for name, value in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do headers[name:lower()] = value end
  return status, headers, body
end

return M
