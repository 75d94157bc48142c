-- spec/conformance/engine.lua: runs the case tables of spec/conformance/cases
-- as busted specs. One describe per group, one server per server profile the
-- group names (started on first use, stopped -- and checked for a clean exit
-- and no sanitizer report -- at the end of the group), one `it` per case.
--
-- A case:
--   name    what is sent, in a few words (the `it` label, after the case id)
--   rfc     the requirement: "RFC 6455 5.5: ..." (printed with any failure)
--   server  a key of the group's `servers` (default "default")
--   open    options for the opening handshake: { protocols = "a, b",
--           extensions = "permessage-deflate; ...", headers = {...},
--           deflate = true (the 101 must accept permessage-deflate) };
--           false: the case opens its own connections (with `run`)
--   send    list of steps to send (a string is raw bytes to send)
--   expect  list of steps to expect after that
--   steps   instead of send/expect: the steps interleaved, in order
--   run     instead of all that: function(t) doing the case by hand
--   alive   false: skip the check that a fresh connection still works
--
-- Steps (tables whose first element names them):
--   {"send", bytes}            one write
--   {"split", bytes, points}   writes cut after each offset in points
--   {"bytewise", bytes}        one write per byte
--   {"chop", bytes, size}      writes of `size` bytes
--   {"call", fn}               fn(t, conn): anything else (compressed sends)
--   {"message", op, data, o}   the next frames are exactly this message
--                              (o.compressed: true = RSV1 required, false =
--                              forbidden, nil = either; o.timeout)
--   {"frame", op, payload}     the next frame is exactly this one (FIN set)
--   {"pong", payload}          the next frame is a pong with this payload
--   {"close", code, o}         the next frame is a close with this code
--                              (o.reason); the client answers it (unless it
--                              sent a close already: o.no_reply) and the
--                              server must then drop TCP (o.timeout)
--   {"check", fn}              fn(t, conn)
-- When the steps leave the connection open, the client closes it and the
-- server must echo the close and drop TCP. Then, unless alive == false, a
-- fresh connection must get its echo (the server stayed healthy).

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"
local pmd = require "spec.conformance.pmd"
local luassert = require "luassert"

local M = {}

M.APP = "spec/conformance/echo.lua"
M.TIMEOUT = 3

local describe_frame = wsclient.describe

local function fail(msg, level) error(msg, (level or 1) + 1) end

local function minimal_form(n)
  if n <= 125 then return 7 elseif n <= 65535 then return 16 else return 64 end
end

---------------------------------------------------------------------------
-- Connections
---------------------------------------------------------------------------

local T = {}
T.__index = T

-- t:open([o]) -> conn after a 101 (asserted, with the right accept). With
-- o.extensions, the negotiated permessage-deflate parameters (if any) are in
-- conn.pmd; conn.response holds the response.
function T:open(o)
  o = o or {}
  local headers = {}
  for k, v in pairs(o.headers or {}) do headers[k] = v end
  if o.protocols then headers["Sec-WebSocket-Protocol"] = o.protocols end
  if o.extensions then headers["Sec-WebSocket-Extensions"] = o.extensions end
  local conn = h.open(self.port, o.path or "/", headers, { extra = o.extra })
  local ext = conn.response.headers["sec-websocket-extensions"]
  if ext then
    local list = pmd.parse_extensions(ext)
    luassert.are.equal(1, #list, "more than one extension accepted: " .. ext)
    luassert.are.equal("permessage-deflate", list[1].name, "unexpected extension: " .. ext)
    luassert(o.extensions and o.extensions:find("permessage-deflate", 1, true),
      "extension accepted that was not offered: " .. ext)
    M.attach_pmd(conn, list[1].params)
  end
  if o.deflate == true and not conn.pmd then
    error("permessage-deflate was not accepted for the offer: " .. tostring(o.extensions)
      .. "\n" .. tostring(conn.response.raw))
  end
  self.conns[#self.conns + 1] = conn
  return conn
end

-- attach_pmd(conn, params): the client side of a negotiated
-- permessage-deflate (RFC 7692 7.1): inflate with the server's window,
-- deflate with the client's, keep context unless told not to.
function M.attach_pmd(conn, params)
  local sbits = tonumber(params.server_max_window_bits) or 15
  local cbits = tonumber(params.client_max_window_bits) or 15
  local p = {
    params = params,
    server_takeover = not params.server_no_context_takeover,
    client_takeover = not params.client_no_context_takeover,
    sbits = sbits, cbits = cbits,
  }
  p.inflate = pmd.inflater(sbits)
  p.deflate = pmd.deflater(cbits)
  conn.pmd = p
  return p
end

-- compress_for(conn, data) -> payload compressed as this client may: with
-- the connection's stream (context takeover) or a fresh one.
function M.compress_for(conn, data)
  local p = assert(conn.pmd, "permessage-deflate was not negotiated")
  if p.client_takeover then return p.deflate(data) end
  return pmd.compress(data, p.cbits)
end

-- read_frame(conn [, timeout]) -> frame, after checking what every server
-- frame must satisfy: unmasked, no RSV2/RSV3, RSV1 only with deflate and
-- only on a data frame, minimal length encoding.
function M.read_frame(conn, timeout)
  local f, err = conn:read_frame(timeout)
  if not f then return nil, err end
  if f.masked then fail("RFC 6455 5.1: a server must not mask its frames; got " .. describe_frame(f), 2) end
  if f.rsv2 or f.rsv3 then fail("RFC 6455 5.2: RSV2/RSV3 set by the server: " .. describe_frame(f), 2) end
  if f.rsv1 and not (conn.pmd and (f.opcode == 1 or f.opcode == 2)) then
    fail("RFC 7692 6: RSV1 only on the first frame of a compressed data message: "
      .. describe_frame(f), 2)
  end
  if f.len_form ~= minimal_form(f.len) then
    fail("RFC 6455 5.2: the minimal number of bytes must be used to encode the length ("
      .. f.len .. " bytes in the " .. f.len_form .. "-bit form)", 2)
  end
  if f.opcode >= 8 and not f.fin then fail("RFC 6455 5.5: fragmented control frame from the server", 2) end
  return f
end

-- read_message(conn [, timeout]) -> {opcode, data, compressed, wire, frames}
-- or nil, err (err names a close frame or a control frame seen first).
function M.read_message(conn, timeout)
  local deadline = wsclient.now() + (timeout or M.TIMEOUT)
  local parts, frames, msg = {}, {}, nil
  while true do
    local f, err = M.read_frame(conn, deadline - wsclient.now())
    if not f then return nil, err end
    if f.opcode >= 8 then
      return nil, "a control frame where a message was expected: " .. describe_frame(f), f
    end
    if not msg then
      if f.opcode == 0 then fail("RFC 6455 5.4: the server began a message with a continuation frame", 2) end
      if f.opcode ~= 1 and f.opcode ~= 2 then fail("server sent opcode " .. f.opcode, 2) end
      msg = { opcode = f.opcode, compressed = f.rsv1, wire = 0 }
    elseif f.opcode ~= 0 then
      fail("RFC 6455 5.4: a new data frame inside a fragmented message from the server", 2)
    elseif f.rsv1 then
      fail("RFC 7692 6.1: RSV1 set on a continuation frame from the server", 2)
    end
    parts[#parts + 1] = f.payload
    frames[#frames + 1] = f
    msg.wire = msg.wire + #f.payload
    if f.fin then break end
  end
  local data = table.concat(parts)
  if msg.compressed then
    local p = conn.pmd
    local inflate = p.server_takeover and p.inflate or pmd.inflater(p.sbits)
    local out, err = inflate(data)
    if not out then
      fail("RFC 7692 7.2.2: the server's compressed message does not inflate"
        .. (p.server_takeover and "" or " on its own (server_no_context_takeover)") .. ": " .. err, 2)
    end
    data = out
  end
  msg.data = data
  msg.frames = frames
  return msg
end

local function same_payload(want, got, what)
  if got == want then return end
  if #want > 200 or #got > 200 then
    local i = 1
    while i <= #want and want:sub(i, i) == got:sub(i, i) do i = i + 1 end
    fail(string.format("%s differs: expected %d bytes, got %d; first difference at byte %d",
      what, #want, #got, i), 3)
  end
  luassert.are.equal(want, got, what)
end

-- expect_message(conn, opcode, data [, o]) -> msg
function M.expect_message(conn, opcode, data, o)
  o = o or {}
  local msg, err = M.read_message(conn, o.timeout)
  if not msg then fail("expected a " .. (opcode == 1 and "text" or "binary") .. " message of "
    .. #data .. " bytes, got: " .. tostring(err), 2) end
  luassert.are.equal(opcode, msg.opcode, "message type")
  same_payload(data, msg.data, "message")
  if o.compressed == true and not msg.compressed then
    fail("RFC 7692: expected a compressed message (RSV1), got one without", 2)
  elseif o.compressed == false and msg.compressed then
    fail("expected an uncompressed message, got RSV1", 2)
  end
  return msg
end

-- expect_frame(conn, opcode, payload [, o])
function M.expect_frame(conn, opcode, payload, o)
  o = o or {}
  local f, err = M.read_frame(conn, o.timeout)
  if not f then fail("expected " .. (wsclient.OPNAMES[opcode] or opcode) .. " frame, got: " .. tostring(err), 2) end
  if f.opcode ~= opcode then
    fail("expected " .. (wsclient.OPNAMES[opcode] or opcode) .. " frame, got " .. describe_frame(f), 2)
  end
  luassert.is_true(f.fin, "FIN")
  luassert.is_false(f.rsv1, "RSV1")
  same_payload(payload, f.payload, "payload")
  return f
end

-- expect_close(conn, code [, o]): h.expect_close (close frame with this code,
-- answered unless o.no_reply, then the server drops TCP in time).
function M.expect_close(conn, code, o)
  o = o or {}
  return h.expect_close(conn, code, o.reason, o)
end

---------------------------------------------------------------------------
-- Steps
---------------------------------------------------------------------------

local STEPS = {}

function STEPS.send(t, conn, s) assert(conn:send(s[2])) end
function STEPS.split(t, conn, s) assert(conn:send_split(s[2], s[3])) end
function STEPS.bytewise(t, conn, s) assert(conn:send_bytewise(s[2])) end
function STEPS.chop(t, conn, s)
  local data, size = s[2], s[3]
  for i = 1, #data, size do assert(conn:send(data:sub(i, i + size - 1))) end
end
function STEPS.call(t, conn, s) s[2](t, conn) end
function STEPS.message(t, conn, s) t.last = M.expect_message(conn, s[2], s[3], s[4]) end
function STEPS.frame(t, conn, s) M.expect_frame(conn, s[2], s[3], s[4]) end
function STEPS.pong(t, conn, s) M.expect_frame(conn, 10, s[2], s[3]) end
function STEPS.close(t, conn, s)
  M.expect_close(conn, s[2], s[3])
  conn.done = true
end
function STEPS.check(t, conn, s) s[2](t, conn) end

function M.step(t, conn, s)
  if type(s) == "string" then s = { "send", s } end
  local f = STEPS[s[1]]
  if not f then error("unknown step " .. tostring(s[1])) end
  f(t, conn, s)
end

local function steps_of(case)
  if case.steps then return case.steps end
  local out = {}
  for _, s in ipairs(case.send or {}) do out[#out + 1] = s end
  for _, s in ipairs(case.expect or {}) do out[#out + 1] = s end
  return out
end

---------------------------------------------------------------------------
-- Groups
---------------------------------------------------------------------------

local function with_requirement(case, err)
  local prefix = "[" .. case.id .. "] " .. case.name .. "\n  requirement: " .. tostring(case.rfc) .. "\n  "
  if type(err) == "table" and err.message then
    err.message = prefix .. tostring(err.message)
    return err
  end
  return prefix .. tostring(err)
end

local function run_case(case, t)
  if case.run then
    case.run(t)
  else
    local conn = t:open(case.open)
    t.conn = conn
    for _, s in ipairs(steps_of(case)) do
      if conn.done then error("a step after the connection was closed") end
      M.step(t, conn, s)
    end
    if not conn.done then h.close_cleanly(conn) end
  end
  if case.alive ~= false then h.assert_alive(t.port) end
end

-- group(g, b): g = { id, title, servers = { name = {args...} }, cases = {...} };
-- b = busted's { describe, it, teardown } (they live in the spec file's
-- environment, not in _G). DUPLEX_CONFORMANCE_FILTER (a Lua pattern) runs
-- only the cases whose label matches.
function M.group(g, b)
  local describe, it, teardown = b.describe, b.it, b.teardown
  local filter = os.getenv("DUPLEX_CONFORMANCE_FILTER")
  describe(g.id .. " " .. g.title, function()
    local started = {}
    local function port_of(name)
      if not started[name] then
        local args = g.servers and g.servers[name]
        if not args then
          if name ~= "default" then error("group " .. g.title .. " has no server " .. name) end
          args = {}
        end
        started[name] = server.start(M.APP, args)
      end
      return started[name].port
    end
    teardown(function()
      local errs = {}
      for name, srv in pairs(started) do
        local ok, err = pcall(srv.stop, srv)
        if not ok then errs[#errs + 1] = name .. ": " .. tostring(err) end
      end
      if #errs > 0 then error(table.concat(errs, "\n")) end
    end)
    for i, case in ipairs(g.cases) do
      case.id = case.id or (g.id .. "." .. i)
      assert(case.name and case.rfc, "case " .. case.id .. " needs a name and an rfc requirement")
      local label = case.id .. " " .. case.name
      if not filter or label:find(filter) then
        it(label, function()
          local t = setmetatable({ case = case, conns = {}, port_of = port_of }, T)
          t.port = port_of(case.server or "default")
          local ok, err = xpcall(function() run_case(case, t) end, function(e)
            if type(e) == "string" then return debug.traceback(e, 2) end
            return e
          end)
          for _, c in ipairs(t.conns) do c:close() end
          if not ok then error(with_requirement(case, err), 0) end
        end)
      end
    end
  end)
end

-- Helpers shared by the case files.
M.frame = wsclient.frame
M.close_payload = wsclient.close_payload
M.fragments = wsclient.fragments
M.h = h
M.wsclient = wsclient
M.pmd = pmd

-- text(n) -> n bytes of ASCII text; binary(n) -> n bytes of every value.
function M.text(n)
  local block = "The quick brown fox jumps over the lazy dog 0123456789. "
  return string.rep(block, math.floor(n / #block) + 1):sub(1, n)
end

local BIN_BLOCK
function M.binary(n)
  if not BIN_BLOCK then
    local t = {}
    for i = 0, 255 do t[#t + 1] = string.char((i * 7 + 3) % 256) end
    BIN_BLOCK = table.concat(t)
  end
  return string.rep(BIN_BLOCK, math.floor(n / 256) + 1):sub(1, n)
end

-- random(n [, seed]) -> n pseudo-random bytes (incompressible), the same
-- for the same seed on every VM (a small LCG, 5.1-safe arithmetic).
function M.random(n, seed)
  local x = seed or 12345
  local t, parts = {}, {}
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    t[#t + 1] = string.char(math.floor(x / 65536) % 256)
    if #t == 4096 then parts[#parts + 1] = table.concat(t); t = {} end
  end
  parts[#parts + 1] = table.concat(t)
  return table.concat(parts)
end

-- frames(opcode, data, size [, o]) -> bytes of one message in fragments of
-- `size` bytes (o.key: masking key, e.g. "\0\0\0\0" for big payloads).
function M.chunked(opcode, data, size, o)
  o = o or {}
  local points = {}
  for p = size, #data - 1, size do points[#points + 1] = p end
  return table.concat(wsclient.fragments(opcode, data, points, { key = o.key }))
end

return M
