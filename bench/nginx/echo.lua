-- WebSocket echo for nginx + lua-resty-websocket (bench/nginx/nginx.conf.in).
-- One request handler per connection: a recv_frame loop that echoes text as
-- text and binary as binary, gathers fragmented messages whole before the
-- echo, answers ping with pong, and answers close with close.
local ok, server = pcall(require, "resty.websocket.server")
if not ok then
  server = require "nginx.websocket.server" -- Debian's name for the same
end
local concat = table.concat

local M = {}

local MAX = 16 * 1024 * 1024 -- per frame and per message, as duplex's default

function M.run()
  local wb, err = server:new { timeout = 60000, max_payload_len = MAX }
  if not wb then
    ngx.log(ngx.ERR, "websocket handshake: ", err)
    return ngx.exit(400)
  end
  local parts, ptype, plen -- a fragmented message being gathered
  while true do
    local data, typ, e = wb:recv_frame()
    if not data then
      -- peer gone, timeout or protocol error: nothing more to do here
      if e and not e:find("closed", 1, true) then
        ngx.log(ngx.INFO, "recv_frame: ", e)
      end
      return ngx.exit(ngx.OK)
    end
    if typ == "close" then
      -- echo the status code back (1000 when none was given)
      wb:send_close(tonumber(e) or 1000, "")
      return ngx.exit(ngx.OK)
    elseif typ == "ping" then
      local _, se = wb:send_pong(data)
      if se then return ngx.exit(ngx.OK) end
    elseif typ == "pong" then
      -- unsolicited or late pong: ignored
    else
      local whole
      if typ == "continuation" then
        if not parts then
          wb:send_close(1002, "continuation without a start")
          return ngx.exit(ngx.OK)
        end
        parts[#parts + 1] = data
        plen = plen + #data
        if plen > MAX then
          wb:send_close(1009, "message too big")
          return ngx.exit(ngx.OK)
        end
        if e ~= "again" then
          whole, typ = concat(parts), ptype
          parts, ptype, plen = nil, nil, nil
        end
      elseif parts then
        wb:send_close(1002, "new message inside a fragmented one")
        return ngx.exit(ngx.OK)
      elseif e == "again" then -- first fragment of several
        parts, ptype, plen = { data }, typ, #data
      else
        whole = data
      end
      if whole then
        local bytes, se
        if typ == "binary" then
          bytes, se = wb:send_binary(whole)
        else
          bytes, se = wb:send_text(whole)
        end
        if not bytes then
          ngx.log(ngx.INFO, "send: ", se)
          return ngx.exit(ngx.OK)
        end
      end
    end
  end
end

return M
