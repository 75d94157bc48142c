-- spec/support/sseclient.lua: a client of duplex's fallback transport
-- (core/transport/sse.c) on luasocket, for specs: the event stream on one
-- GET, read and parsed as an EventSource would (lines ended by LF, CR or
-- CRLF, "data:" lines joined with LF, a blank line dispatches, comments
-- and other fields ignored), and client frames going up in POSTs with
-- their seq over a keep-alive connection of their own.
--
--   local sse = require "spec.support.sseclient"
--   local s = assert(sse.open(port, "/", { protocols = "duplex.1" }))
--   s.id, s.protocol, s.max, s.ping         -- from the first event, 'o'
--   s:send_text("hi")                       -- POST seq 0: 204
--   local ev = s:next_event()               -- { kind = "t", data = "hi" }
--
-- Event kinds as the server writes them: 'o' open (data: the decoded
-- JSON table), 't' and 'T' text, 'b' binary, 'p' ping, 'q' pong (data:
-- the payload), 'c' close (data: the payload; code and reason decoded).
-- o.tls = { cafile = ... } speaks TLS (luasec) instead. Every read takes a
-- timeout (default M.TIMEOUT seconds) and nothing here sleeps.
--
-- Runs on Lua 5.4 and LuaJIT 2.1.

local socket = require "socket"
local mime = require "mime"
local cjson = require "cjson"
local wsclient = require "spec.support.wsclient"

local M = {}

M.TIMEOUT = 5

local now = socket.gettime
local sub, byte, find, concat = string.sub, string.byte, string.find, table.concat

local ZERO_KEY = "\0\0\0\0"

-- b64decode(s) -> bytes ("" for "").
local function unb64(s)
  if s == "" then return "" end
  return (mime.unb64(s))
end
M.unb64 = unb64

-- frame(opcode, payload [, key]) -> bytes of one masked client frame (the
-- zero key unless key is given: masking with it costs nothing).
function M.frame(opcode, payload, key)
  return wsclient.frame { opcode = opcode, payload = payload or "", key = key or ZERO_KEY }
end

---------------------------------------------------------------------------
-- A byte stream over a plain or TLS socket, read with deadlines.
---------------------------------------------------------------------------

local Stream = {}
Stream.__index = Stream

-- connect(port, o) -> stream or nil, err. o.tls: { cafile = path } (TLS,
-- the peer verified against it); o.recv_buffer: SO_RCVBUF set before
-- connecting (a reader that advertises a small window).
local function connect(port, o)
  o = o or {}
  local sock = o.recv_buffer and socket.tcp4() or socket.tcp()
  if o.recv_buffer then assert(sock:setoption("recv-buffer-size", o.recv_buffer)) end
  sock:settimeout(M.TIMEOUT)
  local ok, err = sock:connect("127.0.0.1", port)
  if not ok then sock:close(); return nil, err end
  sock:setoption("tcp-nodelay", true)
  local tls = false
  if o.tls then
    local ssl = require "ssl"
    local s2
    s2, err = ssl.wrap(sock, { mode = "client", protocol = "any", verify = "peer",
      cafile = o.tls.cafile, options = { "all" } })
    if not s2 then sock:close(); return nil, "tls: " .. tostring(err) end
    s2:sni("localhost")
    s2:settimeout(M.TIMEOUT)
    ok, err = s2:dohandshake()
    if not ok then s2:close(); return nil, "tls handshake: " .. tostring(err) end
    sock, tls = s2, true
  end
  return setmetatable({ sock = sock, tls = tls, buf = "", eof = false }, Stream)
end
M.connect = connect

local function idle_error(err)
  return err == "timeout" or err == "wantread" or err == "wantwrite"
end

-- fill(deadline) -> true when bytes were added to self.buf, or nil,
-- "timeout" | "closed".
function Stream:fill(deadline)
  if self.eof then return nil, "closed" end
  while true do
    local remaining = deadline - now()
    if remaining < 0 then remaining = 0 end
    if not (self.tls and self.sock:dirty()) then
      local r = socket.select({ self.sock }, nil, remaining)
      if not (r and r[1]) and now() >= deadline then return nil, "timeout" end
    end
    self.sock:settimeout(0)
    local data, err, partial = self.sock:receive(65536)
    data = data or partial
    if err and not idle_error(err) then
      self.eof, self.eof_err = true, err
    end
    if data and #data > 0 then
      self.buf = self.buf .. data
      return true
    end
    if self.eof then return nil, "closed" end
    if now() >= deadline then return nil, "timeout" end
  end
end

-- send(bytes [, timeout]) -> true or nil, err (partial sends resumed).
function Stream:send(data, timeout)
  local deadline = now() + (timeout or 30)
  local i = 1
  while i <= #data do
    local remaining = deadline - now()
    if remaining <= 0 then return nil, "timeout" end
    self.sock:settimeout(remaining)
    local last, err, partial = self.sock:send(data, i)
    if last then return true end
    if not idle_error(err) then return nil, err end
    i = (partial or i - 1) + 1
  end
  return true
end

-- read_head(deadline) -> { status, reason, headers (lower-case names) }
-- or nil, err: the response head; the bytes behind it stay in self.buf.
function Stream:read_head(deadline)
  while not find(self.buf, "\r\n\r\n", 1, true) do
    local ok, err = self:fill(deadline)
    if not ok then return nil, "response head: " .. tostring(err) .. " after " .. string.format("%q", self.buf) end
  end
  local e = find(self.buf, "\r\n\r\n", 1, true)
  local head = sub(self.buf, 1, e - 1)
  self.buf = sub(self.buf, e + 4)
  local status, reason = head:match("^HTTP/1%.1 (%d%d%d) ([^\r]*)")
  if not status then return nil, "bad status line: " .. head end
  local resp = { status = tonumber(status), reason = reason, headers = {}, raw = head }
  for name, value in head:gmatch("\r\n([^:\r]+):[ \t]*([^\r]*)") do
    resp.headers[name:lower()] = value
  end
  return resp
end

-- read_response([timeout]) -> resp (with body: Content-Length bytes) or
-- nil, err.
function Stream:read_response(timeout)
  local deadline = now() + (timeout or M.TIMEOUT)
  local resp, err = self:read_head(deadline)
  if not resp then return nil, err end
  local len = tonumber(resp.headers["content-length"] or "0")
  while #self.buf < len do
    local ok; ok, err = self:fill(deadline)
    if not ok then return nil, "body: " .. tostring(err) end
  end
  resp.body = sub(self.buf, 1, len)
  self.buf = sub(self.buf, len + 1)
  return resp
end

-- wait_eof([timeout]) -> true when the peer closed in time (bytes still
-- arriving are discarded), nil otherwise.
function Stream:wait_eof(timeout)
  local deadline = now() + (timeout or M.TIMEOUT)
  while true do
    self.buf = ""
    local ok, err = self:fill(deadline)
    if not ok then return err == "closed" end
  end
end

function Stream:close()
  if self.sock then self.sock:close() end
  self.eof = true
end

---------------------------------------------------------------------------
-- Requests
---------------------------------------------------------------------------

-- request(method, target, port [, headers [, body]]) -> bytes of one
-- HTTP/1.1 request. headers: list of "Name: value" lines; body: appended
-- as it is (no Content-Length is added).
function M.request(method, target, port, headers, body)
  local lines = { method .. " " .. target .. " HTTP/1.1", "Host: 127.0.0.1:" .. port }
  for _, l in ipairs(headers or {}) do lines[#lines + 1] = l end
  return concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

-- post_request(port, target, body [, headers]) -> bytes of a POST of body
-- with its Content-Length.
function M.post_request(port, target, body, headers)
  local h = { "Content-Length: " .. #body }
  for _, l in ipairs(headers or {}) do h[#h + 1] = l end
  return M.request("POST", target, port, h, body)
end

---------------------------------------------------------------------------
-- A session
---------------------------------------------------------------------------

local Session = {}
Session.__index = Session

local function decode(data)
  local kind, rest = sub(data, 1, 1), sub(data, 2)
  local ev = { kind = kind, raw = data }
  if kind == "t" then
    ev.data = rest
  elseif kind == "o" then
    ev.data = cjson.decode(rest)
  elseif kind == "T" or kind == "b" or kind == "p" or kind == "q" or kind == "c" then
    ev.data = unb64(rest)
    if kind == "c" and #ev.data >= 2 then
      ev.code = byte(ev.data, 1) * 256 + byte(ev.data, 2)
      ev.reason = sub(ev.data, 3)
    end
  else
    error("unknown event kind: " .. string.format("%q", sub(data, 1, 80)))
  end
  return ev
end
M.decode = decode

-- next_line(deadline) -> the next line of the stream (without its end), or
-- nil, "timeout" | "closed". A CR at the end of what came so far may be
-- the first half of a CRLF: it waits for the next byte (or the end).
function Session:next_line(deadline)
  local st = self.stream
  while true do
    local buf = st.buf
    local i = find(buf, "[\r\n]", self.scan)
    if i and (byte(buf, i) == 10 or i < #buf or st.eof) then
      local line = sub(buf, 1, i - 1)
      local stop = i
      if byte(buf, i) == 13 and byte(buf, i + 1) == 10 then stop = i + 1 end
      st.buf = sub(buf, stop + 1)
      self.scan = 1
      return line
    end
    self.scan = i or (#buf + 1)
    local ok, err = st:fill(deadline)
    if not ok then
      if err == "closed" and #st.buf > 0 and not find(st.buf, "[\r\n]") then
        st.buf = ""                 -- an unfinished line at the end is dropped
      end
      return nil, err
    end
  end
end

-- next_event([timeout]) -> event or nil, "timeout" | "closed". Pings are
-- returned like every other event (see o.answer_pings of open).
function Session:next_event(timeout)
  local deadline = now() + (timeout or M.TIMEOUT)
  local data = self.data_lines
  while true do
    local line, err = self:next_line(deadline)
    if not line then return nil, err end
    if line == "" then
      if #data > 0 then
        local text = concat(data, "\n")
        self.data_lines = {}
        data = self.data_lines
        local ev = decode(text)
        self.events = self.events + 1
        if ev.kind == "p" and self.answer_pings then
          local ok, perr = self:send_pong(ev.data)
          assert(ok, "pong: " .. tostring(perr))
          self.pongs = self.pongs + 1
        else
          return ev
        end
      end
    elseif byte(line, 1) ~= 58 then          -- ":" starts a comment
      local field, value = line:match("^([^:]*):(.*)$")
      if not field then field, value = line, "" end
      if sub(value, 1, 1) == " " then value = sub(value, 2) end
      if field == "data" then data[#data + 1] = value end
      -- "event", "id", "retry" and unknown fields: nothing the protocol uses
    end
  end
end

-- message([timeout]) -> kind ("text" | "binary"), data of the next data
-- event; raises on anything else.
function Session:message(timeout)
  local ev, err = self:next_event(timeout)
  assert(ev, "no event: " .. tostring(err))
  if ev.kind == "t" or ev.kind == "T" then return "text", ev.data end
  if ev.kind == "b" then return "binary", ev.data end
  error("expected a message, got event " .. ev.kind .. " " .. string.format("%q", sub(ev.raw, 1, 80)))
end

-- The POST target for seq.
function Session:target(seq)
  return "/?duplex_session=" .. self.id .. "&seq=" .. tostring(seq)
end

-- post_raw(body [, o]) -> resp or nil, err: one POST of body (client
-- frames) on the session's keep-alive connection (opened, or opened again
-- when the server closed it). o.seq (default the next: self.seq, moved on
-- by a 204 answer), o.target.
function Session:post_raw(body, o)
  o = o or {}
  local seq = o.seq or self.seq
  for attempt = 1, 2 do
    if not self.post_conn or self.post_conn.eof then
      local c, err = connect(self.port, self.o)
      if not c then return nil, "post connect: " .. tostring(err) end
      self.post_conn = c
    end
    local ok, err = self.post_conn:send(M.post_request(self.port, o.target or self:target(seq), body))
    local resp
    if ok then resp, err = self.post_conn:read_response(o.timeout) end
    if resp then
      if resp.headers.connection == "close" then self.post_conn:close() end
      if resp.status == 204 and not o.seq then self.seq = seq + 1 end
      return resp
    end
    -- A keep-alive connection the server closed meanwhile: once more on a new one.
    self.post_conn:close()
    if attempt == 2 then return nil, err end
  end
end

-- post(frames [, o]) -> status, resp: post_raw that asserts an answer.
function Session:post(body, o)
  local resp, err = self:post_raw(body, o)
  assert(resp, "POST: " .. tostring(err))
  return resp.status, resp
end

local function expect_204(self, body)
  local resp, err = self:post_raw(body)
  if not resp then return nil, err end
  if resp.status ~= 204 then return nil, "POST answered " .. resp.status .. ": " .. tostring(resp.body) end
  return true
end

-- send_text / send_binary / send_ping / send_pong / send_close: one frame
-- in one POST; true when answered 204, else nil, why.
function Session:send_text(s) return expect_204(self, M.frame(1, s)) end
function Session:send_binary(s) return expect_204(self, M.frame(2, s)) end
function Session:send_ping(s) return expect_204(self, M.frame(9, s)) end
function Session:send_pong(s) return expect_204(self, M.frame(10, s)) end
function Session:send_close(code, reason)
  return expect_204(self, M.frame(8, code and wsclient.close_payload(code, reason) or ""))
end

-- close(): the GET and the POST connection are closed.
function Session:close()
  self.stream:close()
  if self.post_conn then self.post_conn:close() end
end

-- open(port [, path [, o]]) -> session or nil, err, resp. o.protocols:
-- the duplex_protocols query value; o.query: more of the query; o.headers:
-- more request lines; o.tls, o.recv_buffer: as for connect;
-- o.answer_pings: a ping event is answered with a pong POST (counted in
-- session.pongs), not returned;
-- o.pipelined: requests (bytes) sent before the GET in the same write,
-- their responses (with a Content-Length) read into session.pipelined.
-- A refusal (not 200) returns nil, "status N", resp (resp.body: the bytes
-- after the head that came within the timeout).
function M.open(port, path, o)
  o = o or {}
  local st, err = connect(port, o)
  if not st then return nil, err end
  local q = {}
  if o.protocols then q[#q + 1] = "duplex_protocols=" .. o.protocols end
  if o.query then q[#q + 1] = o.query end
  local target = (path or "/") .. (#q > 0 and ("?" .. concat(q, "&")) or "")
  local headers = { "Accept: text/event-stream", "Cache-Control: no-cache" }
  for _, l in ipairs(o.headers or {}) do headers[#headers + 1] = l end
  local ok; ok, err = st:send(table.concat(o.pipelined or {}) .. M.request("GET", target, port, headers))
  if not ok then st:close(); return nil, "send: " .. tostring(err) end
  local deadline = now() + (o.timeout or M.TIMEOUT)
  local before = {}
  for i = 1, #(o.pipelined or {}) do
    before[i], err = st:read_response(o.timeout)
    if not before[i] then st:close(); return nil, "pipelined response " .. i .. ": " .. tostring(err) end
  end
  local resp; resp, err = st:read_head(deadline)
  if not resp then st:close(); return nil, err end
  if resp.status ~= 200 then
    local len = tonumber(resp.headers["content-length"] or "")
    while len and #st.buf < len and st:fill(deadline) do end
    resp.body = st.buf
    st:close()
    return nil, "status " .. resp.status, resp
  end
  local self = setmetatable({
    stream = st, port = port, o = o, response = resp, pipelined = before, seq = 0, scan = 1,
    data_lines = {}, events = 0, pongs = 0, answer_pings = o.answer_pings,
  }, Session)
  local ev; ev, err = self:next_event(o.timeout)
  if not ev then st:close(); return nil, "no open event: " .. tostring(err) end
  if ev.kind ~= "o" then st:close(); return nil, "first event is not 'o': " .. ev.raw end
  self.open_event = ev
  self.id, self.protocol, self.max, self.ping = ev.data.session, ev.data.protocol, ev.data.max, ev.data.ping
  return self
end

return M
