-- spec/support/wsclient.lua: a raw RFC 6455 client on luasocket, for specs.
--
-- It does only what a test needs: it can speak the protocol correctly, and it
-- can break every rule on purpose (unmasked frames, RSV bits, lying lengths,
-- bytes one at a time). Every read takes a timeout in seconds (default
-- M.TIMEOUT) and never blocks past it; nothing here sleeps.
--
-- Runs on Lua 5.4 and LuaJIT 2.1 (5.1 syntax only: no bit operators here).

local socket = require "socket"

local M = {}

M.TIMEOUT = 3

local unpack = table.unpack or unpack
local byte, char, sub, rep = string.byte, string.char, string.sub, string.rep
local concat = table.concat
local floor = math.floor

local function now() return socket.gettime() end
M.now = now

-- XOR of two bytes: LuaJIT's bit library, or Lua 5.3+'s operator (compiled at
-- run time so this file still parses under LuaJIT).
local bxor
if type(bit) == "table" and bit.bxor then
  bxor = bit.bxor
else
  local ok, bit32lib = pcall(require, "bit")
  if ok and type(bit32lib) == "table" and bit32lib.bxor then
    bxor = bit32lib.bxor
  else
    bxor = assert(load("return function(a, b) return a ~ b end"))()
  end
end
M.bxor = bxor

-- mask(payload, key): payload XOR the 4-byte key, repeated (RFC 6455 5.3).
-- The same function unmasks.
function M.mask(payload, key)
  if key == "\0\0\0\0" or payload == "" then return payload end
  local k = { byte(key, 1, 4) }
  local out, n = {}, #payload
  local CH = 4096 -- a multiple of 4, so the key index restarts at 1 each chunk
  local t = {}
  for start = 1, n, CH do
    local stop = start + CH - 1
    if stop > n then stop = n end
    local bytes = { byte(payload, start, stop) }
    for i = 1, #bytes do
      t[i] = bxor(bytes[i], k[(i - 1) % 4 + 1])
    end
    for i = #bytes + 1, #t do t[i] = nil end
    out[#out + 1] = char(unpack(t, 1, #bytes))
  end
  return concat(out)
end

local function random_key()
  return char(math.random(0, 255), math.random(0, 255), math.random(0, 255), math.random(0, 255))
end

-- Big-endian unsigned integer of `width` bytes (width 2 or 8), 5.1-safe.
local function be(n, width)
  local t = {}
  for i = width, 1, -1 do
    local b = n % 256
    t[i] = b
    n = (n - b) / 256
  end
  return char(unpack(t, 1, width))
end
M.be = be

local function be_decode(s)
  local n = 0
  for i = 1, #s do n = n * 256 + byte(s, i) end
  return n
end

-- frame(o) -> bytes of one frame. Options (all optional):
--   payload  string ("")
--   opcode   number (1 = text)
--   fin      boolean (true)
--   rsv1, rsv2, rsv3  booleans (false)
--   mask     boolean (true); key: 4-byte string (random when masked)
--   len      the length to announce (default #payload; may lie)
--   len_form 7 | 16 | 64: force a length encoding (default: minimal)
--   len_bytes raw bytes to put after the 7-bit length (with len_form 16/64)
function M.frame(o)
  o = o or {}
  local payload = o.payload or ""
  local opcode = o.opcode or 1
  local fin = o.fin ~= false
  local b1 = (fin and 128 or 0) + (o.rsv1 and 64 or 0) + (o.rsv2 and 32 or 0)
    + (o.rsv3 and 16 or 0) + opcode
  local masked = o.mask ~= false
  local len = o.len or #payload
  local form = o.len_form
  if not form then
    if len <= 125 then form = 7 elseif len <= 65535 then form = 16 else form = 64 end
  end
  local head
  local mbit = masked and 128 or 0
  if form == 7 then
    head = char(b1, mbit + len)
  elseif form == 16 then
    head = char(b1, mbit + 126) .. (o.len_bytes or be(len, 2))
  else
    head = char(b1, mbit + 127) .. (o.len_bytes or be(len, 8))
  end
  if masked then
    local key = o.key or random_key()
    return head .. key .. M.mask(payload, key)
  end
  return head .. payload
end

function M.close_payload(code, reason)
  if not code then return "" end
  return be(code, 2) .. (reason or "")
end

-- Precomputed Sec-WebSocket-Key / Sec-WebSocket-Accept pairs (the first is
-- the RFC 6455 example); connections cycle through them.
M.KEYS = {
  { "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" },
  { "BwgJCgsMDQ4PEBESExQVFg==", "4jhHfanzxIWYFlKIfYtyF3IjEtI=" },
  { "Dg8QERITFBUWFxgZGhscHQ==", "cDoYzWrMF/Ws00ucR6UNiVQcAns=" },
  { "FRYXGBkaGxwdHh8gISIjJA==", "qZ2xXQIZepyQ/R/C9MqX/lEzKPk=" },
  { "HB0eHyAhIiMkJSYnKCkqKw==", "Ux9VaHoX6Dw4kY9dFlsi++z8+/c=" },
  { "IyQlJicoKSorLC0uLzAxMg==", "luwpD8rAf+7QlAoEtZQ5PiGQGTY=" },
}
local key_index = 0
local function next_key()
  key_index = key_index % #M.KEYS + 1
  return M.KEYS[key_index][1], M.KEYS[key_index][2]
end

-- request(o) -> raw HTTP upgrade request. o.path ("/"), o.method ("GET"),
-- o.http ("HTTP/1.1"), o.port, o.key, o.headers: map of header name ->
-- value, or false to leave a default header out; names match the defaults
-- case-insensitively. o.extra: list of raw "Name: value" lines appended.
function M.request(o)
  o = o or {}
  local defaults = {
    { "Host", "127.0.0.1:" .. tostring(o.port or 80) },
    { "Upgrade", "websocket" },
    { "Connection", "Upgrade" },
    { "Sec-WebSocket-Key", o.key or "dGhlIHNhbXBsZSBub25jZQ==" },
    { "Sec-WebSocket-Version", "13" },
  }
  local over = {}
  local order = {}
  for name, value in pairs(o.headers or {}) do
    over[name:lower()] = value
    order[#order + 1] = name
  end
  table.sort(order)
  local lines = { (o.method or "GET") .. " " .. (o.path or "/") .. " " .. (o.http or "HTTP/1.1") }
  local used = {}
  for _, h in ipairs(defaults) do
    local lname = h[1]:lower()
    local v = over[lname]
    used[lname] = true
    if v == nil then
      lines[#lines + 1] = h[1] .. ": " .. h[2]
    elseif v then
      lines[#lines + 1] = h[1] .. ": " .. v
    end
  end
  for _, name in ipairs(order) do
    local v = over[name:lower()]
    if not used[name:lower()] and v then
      lines[#lines + 1] = name .. ": " .. v
    end
  end
  for _, line in ipairs(o.extra or {}) do lines[#lines + 1] = line end
  return concat(lines, "\r\n") .. "\r\n\r\n"
end

---------------------------------------------------------------------------
-- Connection
---------------------------------------------------------------------------

local Conn = {}
Conn.__index = Conn

-- tcp(port [, host [, o]]) -> raw connection (no handshake) or nil, err.
-- o.recv_buffer sets SO_RCVBUF before connecting (a peer that reads little
-- and advertises a small window, as an attacker would); o.from binds the
-- local address first ("127.0.0.2": another host, as the server sees it).
function M.tcp(port, host, o)
  -- socket.tcp() has no descriptor before connect; tcp4() has one to set.
  local s = o and (o.recv_buffer or o.from) and socket.tcp4() or socket.tcp()
  if o and o.recv_buffer then assert(s:setoption("recv-buffer-size", o.recv_buffer)) end
  if o and o.from then assert(s:bind(o.from, 0)) end
  s:settimeout(M.TIMEOUT)
  local ok, err = s:connect(host or "127.0.0.1", port)
  if not ok then s:close(); return nil, err end
  s:setoption("tcp-nodelay", true)
  return setmetatable({ sock = s, buf = "", eof = false }, Conn)
end

local function deadline_of(timeout)
  return now() + (timeout or M.TIMEOUT)
end

-- Pull whatever is available (waiting until `deadline`) into self.buf.
-- Returns true if bytes arrived, or nil, "timeout" | "closed".
function Conn:fill(deadline)
  if self.eof then return nil, "closed" end
  local remaining = deadline - now()
  if remaining < 0 then remaining = 0 end
  local r = socket.select({ self.sock }, nil, remaining)
  if not r or not r[1] then
    if remaining <= 0 or now() >= deadline then return nil, "timeout" end
  end
  self.sock:settimeout(0)
  local data, err, partial = self.sock:receive(65536)
  data = data or partial
  if data and #data > 0 then
    self.buf = self.buf .. data
    if err == "closed" or (err and err ~= "timeout") then self.eof = true end
    return true
  end
  if err == "timeout" then
    if now() >= deadline then return nil, "timeout" end
    return self:fill(deadline)
  end
  self.eof = true
  self.eof_err = err
  return nil, "closed"
end

-- read_exact(n, deadline) -> string or nil, err ("timeout"/"closed"), partial
function Conn:read_exact(n, deadline)
  if #self.buf >= n then
    local s = sub(self.buf, 1, n)
    self.buf = sub(self.buf, n + 1)
    return s
  end
  local parts, have = { self.buf }, #self.buf
  self.buf = ""
  while have < n do
    if self.eof then
      local got = concat(parts); self.buf = got
      return nil, "closed", got
    end
    local remaining = deadline - now()
    if remaining < 0 then remaining = 0 end
    local r = socket.select({ self.sock }, nil, remaining)
    if not (r and r[1]) and now() >= deadline then
      local got = concat(parts); self.buf = got
      return nil, "timeout", got
    end
    self.sock:settimeout(0)
    local data, err, partial = self.sock:receive(n - have)
    data = data or partial
    if data and #data > 0 then
      parts[#parts + 1] = data
      have = have + #data
    end
    if err and err ~= "timeout" then self.eof = true; self.eof_err = err end
  end
  return concat(parts)
end

-- send(bytes [, timeout]) -> true or nil, err. Partial sends are resumed.
function Conn:send(data, timeout)
  local deadline = deadline_of(timeout or 30)
  local i = 1
  while i <= #data do
    local remaining = deadline - now()
    if remaining <= 0 then return nil, "timeout" end
    self.sock:settimeout(remaining)
    local last, err, partial_last = self.sock:send(data, i)
    if last then return true end
    if err ~= "timeout" then return nil, err end
    i = partial_last + 1
  end
  return true
end

-- send_bytewise(bytes): one send() per byte (TCP_NODELAY is on, so most go
-- out as separate segments).
function Conn:send_bytewise(data)
  for i = 1, #data do
    local ok, err = self:send(sub(data, i, i))
    if not ok then return nil, err end
  end
  return true
end

-- send_split(bytes, points): send in pieces cut after each offset in `points`.
function Conn:send_split(data, points)
  local prev = 0
  for _, p in ipairs(points) do
    local ok, err = self:send(sub(data, prev + 1, p))
    if not ok then return nil, err end
    prev = p
  end
  return self:send(sub(data, prev + 1))
end

function Conn:send_frame(o) return self:send(M.frame(o)) end

function Conn:send_text(s, o)
  o = o or {}; o.payload = s; o.opcode = 1
  return self:send_frame(o)
end

function Conn:send_binary(s, o)
  o = o or {}; o.payload = s; o.opcode = 2
  return self:send_frame(o)
end

function Conn:send_ping(s) return self:send_frame { opcode = 9, payload = s or "" } end
function Conn:send_pong(s) return self:send_frame { opcode = 10, payload = s or "" } end

function Conn:send_close(code, reason)
  return self:send_frame { opcode = 8, payload = M.close_payload(code, reason) }
end

-- fragments(opcode, data, points [, o]) -> list of frame byte strings for one
-- message cut after each offset in `points` (sorted, within 0..#data).
function M.fragments(opcode, data, points, o)
  o = o or {}
  local frames, prev = {}, 0
  local cuts = {}
  for _, p in ipairs(points) do cuts[#cuts + 1] = p end
  cuts[#cuts + 1] = #data
  for i, p in ipairs(cuts) do
    frames[#frames + 1] = M.frame {
      opcode = (i == 1) and opcode or 0,
      fin = (i == #cuts),
      payload = sub(data, prev + 1, p),
      key = o.key,
    }
    prev = p
  end
  return frames
end

-- send_fragmented(opcode, data, points): one message, fragmented at points.
function Conn:send_fragmented(opcode, data, points, o)
  return self:send(concat(M.fragments(opcode, data, points, o)))
end

-- read_frame([timeout]) -> frame or nil, err. frame = {fin, rsv1, rsv2,
-- rsv3, opcode, masked, payload, len_form}
function Conn:read_frame(timeout)
  local deadline = deadline_of(timeout)
  local h, err = self:read_exact(2, deadline)
  if not h then return nil, err end
  local b1, b2 = byte(h, 1, 2)
  local f = {
    fin = b1 >= 128,
    rsv1 = floor(b1 / 64) % 2 == 1,
    rsv2 = floor(b1 / 32) % 2 == 1,
    rsv3 = floor(b1 / 16) % 2 == 1,
    opcode = b1 % 16,
    masked = b2 >= 128,
  }
  local len = b2 % 128
  f.len_form = 7
  if len == 126 then
    local e; e, err = self:read_exact(2, deadline)
    if not e then return nil, err end
    len = be_decode(e); f.len_form = 16
  elseif len == 127 then
    local e; e, err = self:read_exact(8, deadline)
    if not e then return nil, err end
    len = be_decode(e); f.len_form = 64
  end
  f.len = len
  local key
  if f.masked then
    key, err = self:read_exact(4, deadline)
    if not key then return nil, err end
  end
  local payload; payload, err = self:read_exact(len, deadline)
  if not payload then return nil, err end
  if key then payload = M.mask(payload, key) end
  f.payload = payload
  return f
end

local OPNAMES = { [0] = "cont", "text", "binary", [8] = "close", [9] = "ping", [10] = "pong" }
M.OPNAMES = OPNAMES

function M.describe(f)
  if not f then return "nil" end
  local p = f.payload or ""
  if f.opcode == 8 and #p >= 2 then
    p = tostring(be_decode(sub(p, 1, 2))) .. " " .. sub(p, 3)
  elseif #p > 60 then
    p = sub(p, 1, 60) .. "...(" .. #f.payload .. " bytes)"
  end
  return string.format("%s(%d)%s%s %q", OPNAMES[f.opcode] or "op", f.opcode,
    f.fin and "" or " fin=0", f.masked and " masked" or "", p)
end

-- read_message([timeout]) -> opcode, data, controls: reassembles one data
-- message; control frames seen before its end are returned in `controls`
-- (pings are not answered). On a close frame or error: nil, err, controls.
function Conn:read_message(timeout)
  local deadline = deadline_of(timeout)
  local parts, opcode, controls = {}, nil, {}
  while true do
    local f, err = self:read_frame(deadline - now())
    if not f then return nil, err, controls end
    if f.opcode >= 8 then
      controls[#controls + 1] = f
      if f.opcode == 8 then
        return nil, "close frame: " .. M.describe(f), controls
      end
    else
      if not opcode then opcode = f.opcode end
      parts[#parts + 1] = f.payload
      if f.fin then return opcode, concat(parts), controls end
    end
  end
end

-- read_close([timeout [, skip_other]]) -> code, reason, frame or nil, err.
-- By default the next frame must be a close frame; with skip_other, other
-- frames before it are skipped (and returned as a 4th value list).
function Conn:read_close(timeout, skip_other)
  local deadline = deadline_of(timeout)
  local skipped = {}
  while true do
    local f, err = self:read_frame(deadline - now())
    if not f then return nil, err end
    if f.opcode == 8 then
      local p = f.payload
      local code
      if #p >= 2 then code = be_decode(sub(p, 1, 2)) end
      return code, sub(p, 3), f, skipped
    end
    if not skip_other then
      return nil, "expected a close frame, got " .. M.describe(f)
    end
    skipped[#skipped + 1] = f
  end
end

-- expect_eof([timeout]) -> true, extra_bytes when the peer closed TCP (FIN or
-- reset) in time; nil, "timeout", extra_bytes otherwise. Bytes still
-- buffered or arriving before the end are returned, not interpreted.
function Conn:expect_eof(timeout)
  local deadline = deadline_of(timeout)
  local extra = {}
  while true do
    if #self.buf > 0 then extra[#extra + 1] = self.buf; self.buf = "" end
    if self.eof then return true, concat(extra) end
    local ok, err = self:fill(deadline)
    if not ok and err == "timeout" then
      if #self.buf > 0 then extra[#extra + 1] = self.buf; self.buf = "" end
      return nil, "timeout", concat(extra)
    end
  end
end

-- read_http_response([timeout]) -> resp or nil, err, raw.
-- resp = {status, reason, headers (lower-case names), header_list, body, raw}.
-- The body is read when Content-Length is given, unless o.head (the answer
-- to a HEAD request has none); bytes after the head are kept for read_frame.
function Conn:read_http_response(timeout, o)
  local deadline = deadline_of(timeout)
  while not self.buf:find("\r\n\r\n", 1, true) do
    local ok, err = self:fill(deadline)
    if not ok then return nil, err, self.buf end
  end
  local e = self.buf:find("\r\n\r\n", 1, true)
  local head = sub(self.buf, 1, e - 1)
  self.buf = sub(self.buf, e + 4)
  local resp = { headers = {}, header_list = {}, raw = head }
  local first = true
  for line in (head .. "\r\n"):gmatch("(.-)\r\n") do
    if first then
      local st, reason = line:match("^HTTP/1%.1 (%d%d%d) ?(.*)$")
      if not st then return nil, "bad status line: " .. line, head end
      resp.status, resp.reason = tonumber(st), reason
      first = false
    else
      local name, value = line:match("^([^:]+):%s*(.-)%s*$")
      if name then
        name = name:lower()
        resp.header_list[#resp.header_list + 1] = { name, value }
        if resp.headers[name] then
          resp.headers[name] = resp.headers[name] .. ", " .. value
        else
          resp.headers[name] = value
        end
      end
    end
  end
  local cl = tonumber(resp.headers["content-length"] or "")
  if cl and resp.status ~= 101 and not (o and o.head) then
    local body, err = self:read_exact(cl, deadline)
    resp.body = body or ""
    resp.body_err = err
  end
  return resp
end

function Conn:close()
  if self.sock then self.sock:close() end
  self.eof = true
end

-- connect(port, path, headers, o) -> conn, resp (or nil, err).
-- Sends a valid upgrade request (headers/o as in M.request; o.bytewise feeds
-- it one byte at a time; o.recv_buffer and o.from as in M.tcp) and reads the response head. conn.expected_accept
-- holds the Sec-WebSocket-Accept a correct server returns.
function M.connect(port, path, headers, o)
  o = o or {}
  local conn, err = M.tcp(port, nil, o)
  if not conn then return nil, err end
  local key, accept = next_key()
  if o.key then key, accept = o.key, nil end
  local req = M.request {
    path = path or "/", port = port, key = key, headers = headers,
    extra = o.extra, method = o.method,
  }
  local ok
  if o.bytewise then ok, err = conn:send_bytewise(req) else ok, err = conn:send(req) end
  if not ok then conn:close(); return nil, "send: " .. tostring(err) end
  local resp; resp, err = conn:read_http_response(o.timeout)
  if not resp then conn:close(); return nil, "response: " .. tostring(err) end
  conn.expected_accept = accept
  conn.response = resp
  return conn, resp
end

return M
