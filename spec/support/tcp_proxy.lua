-- spec/support/tcp_proxy.lua: a TCP proxy on the duplex loop, for specs
-- that must break a connection the way networks do, which neither end
-- can do politely:
--
--   local proxy = require "spec.support.tcp_proxy"
--   local p = proxy.start(upstream_port)   -- listens on 127.0.0.1, p.port
--   p:cut()      -- every connection through it ends at once: TCP closed, no close frame
--   p:freeze()   -- the connections through it carry nothing more (both ways),
--                -- their sockets open: a dead path; new connections pass
--   p:stop()
--
-- luasocket, non-blocking, pumped by a duplex timer every few
-- milliseconds: it runs while the spec runs the loop (dt.wait). A
-- connection whose upstream refuses is closed at once.
local socket = require "socket"
local duplex = require "duplex"

local M = {}

local Proxy = {}
Proxy.__index = Proxy

local function shut(pair)
  pair.a:close()
  pair.b:close()
  pair.closed = true
end

-- Moves what src has to dst (through the bytes pending in pair[key]);
-- false once either end has closed.
local function move(pair, src, dst, key)
  local data, err, partial = src:receive(65536)
  data = data or partial
  if data and #data > 0 then pair[key] = pair[key] .. data end
  if #pair[key] > 0 then
    local i, serr, j = dst:send(pair[key])
    pair[key] = pair[key]:sub((i or j or 0) + 1)
    if serr == "closed" then return false end
  end
  return err ~= "closed"
end

function Proxy:pump()
  while true do
    local a = self.listener:accept()
    if not a then break end
    a:settimeout(0)
    local b = socket.tcp()
    b:settimeout(1)                              -- loopback: the kernel answers at once
    if b:connect("127.0.0.1", self.upstream) then
      b:settimeout(0)
      self.pairs[#self.pairs + 1] = { a = a, b = b, ab = "", ba = "" }
      self.accepted = self.accepted + 1
    else
      a:close()
      b:close()
    end
  end
  local live = {}
  for _, pair in ipairs(self.pairs) do
    if not pair.closed and not pair.frozen then
      if not (move(pair, pair.a, pair.b, "ab") and move(pair, pair.b, pair.a, "ba")) then shut(pair) end
    end
    if not pair.closed then live[#live + 1] = pair end
  end
  self.pairs = live
end

function Proxy:cut()
  for _, pair in ipairs(self.pairs) do if not pair.closed then shut(pair) end end
  self.pairs = {}
end

function Proxy:freeze()
  for _, pair in ipairs(self.pairs) do pair.frozen = true end
end

function Proxy:stop()
  self.timer:stop()
  self:cut()
  self.listener:close()
end

--- Starts a proxy to 127.0.0.1:upstream on a free port (p.port).
function M.start(upstream)
  local listener = assert(socket.bind("127.0.0.1", 0))
  listener:settimeout(0)
  local _, port = listener:getsockname()
  local p = setmetatable({ listener = listener, port = tonumber(port), upstream = upstream, pairs = {},
    accepted = 0 }, Proxy)
  p.timer = duplex.timer(0.002, 0.002, function() p:pump() end)
  return p
end

return M
