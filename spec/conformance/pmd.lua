-- spec/conformance/pmd.lua: the client side of permessage-deflate (RFC 7692)
-- for the conformance suite, on lua-zlib (Debian lua-zlib; Lua 5.4 and
-- LuaJIT). Raw deflate (negative windowBits); each message ends with a sync
-- flush whose 00 00 FF FF tail is stripped on send and appended on receive.

local zlib = require "zlib"

local M = {}

M.TAIL = "\0\0\255\255"

-- parse_extensions(value) -> list of { name = ..., params = { k = v|true }, order = {k...} }
-- for a Sec-WebSocket-Extensions value as the server sent it (a response
-- holds at most one extension here; quoted values are unquoted).
function M.parse_extensions(value)
  local out = {}
  if not value then return out end
  for item in (value .. ","):gmatch("([^,]*),") do
    local parts = {}
    for p in (item .. ";"):gmatch("([^;]*);") do
      parts[#parts + 1] = p:match("^%s*(.-)%s*$")
    end
    if parts[1] and parts[1] ~= "" then
      local ext = { name = parts[1], params = {}, order = {}, dup = false }
      for i = 2, #parts do
        local k, v = parts[i]:match("^([^=]+)=(.*)$")
        if not k then k, v = parts[i], true end
        k = k:match("^%s*(.-)%s*$")
        if type(v) == "string" then v = v:match("^%s*\"?(.-)\"?%s*$") end
        if ext.params[k] ~= nil then ext.dup = true end
        ext.params[k] = v
        ext.order[#ext.order + 1] = k
      end
      out[#out + 1] = ext
    end
  end
  return out
end

-- deflater(bits [, level]) -> a stream function f(data) -> payload (tail
-- stripped). The same stream keeps its window (context takeover). zlib
-- cannot make raw deflate with an 8-bit window: for bits 8 the stream uses
-- level 0 (stored blocks, which refer to nothing) -- valid for any window.
function M.deflater(bits, level)
  bits = bits or 15
  if bits < 9 then bits, level = 9, 0 end
  local d = zlib.deflate(level or 6, -bits)
  return function(data)
    local out = d(data, "sync")
    assert(out:sub(-4) == M.TAIL, "sync flush did not end in 00 00 FF FF")
    return out:sub(1, -5)
  end
end

-- compress(data [, bits [, level]]) -> payload of one message from a fresh
-- stream (no context takeover).
function M.compress(data, bits, level)
  return M.deflater(bits, level)(data)
end

-- inflater([bits]) -> f(payload) -> data or nil, err: inflates one message's
-- payload (the tail appended). The same inflater keeps its window.
function M.inflater(bits)
  local i = zlib.inflate(-(bits or 15))
  return function(payload)
    local ok, out = pcall(i, payload .. M.TAIL)
    if not ok then return nil, tostring(out) end
    return out
  end
end

-- inflate(payload) -> data or nil, err with a fresh 15-bit window.
function M.inflate(payload)
  return M.inflater(15)(payload)
end

-- bomb(n [, chunk]) -> compressed payload (tail stripped) of n zero bytes,
-- built without holding the n bytes at once.
function M.bomb(n, chunk)
  chunk = chunk or 1024 * 1024
  local d = zlib.deflate(9, -15)
  local zeros = string.rep("\0", chunk)
  local parts, left = {}, n
  while left > 0 do
    local c = left < chunk and zeros:sub(1, left) or zeros
    left = left - #c
    parts[#parts + 1] = d(c, left > 0 and "none" or "sync")
  end
  local out = table.concat(parts)
  assert(out:sub(-4) == M.TAIL)
  return out:sub(1, -5)
end

return M
