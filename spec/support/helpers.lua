-- spec/support/helpers.lua: assertions shared by the specs.

local wsclient = require "spec.support.wsclient"
local assert = require "luassert"

local M = {}

local describe_frame = wsclient.describe

-- open(port [, path [, headers [, o]]]) -> conn: a connection that completed
-- the handshake (asserts 101 and the right Sec-WebSocket-Accept).
function M.open(port, path, headers, o)
  local conn, resp = wsclient.connect(port, path or "/", headers, o)
  assert(conn, "connect failed: " .. tostring(resp))
  assert(resp.status == 101, "expected 101, got " .. tostring(resp.status) .. "\n" .. tostring(resp.raw)
    .. "\n" .. tostring(resp.body))
  if conn.expected_accept then
    assert.are.equal(conn.expected_accept, resp.headers["sec-websocket-accept"])
  end
  return conn
end

-- expect_message(conn, opcode, data [, timeout]): the next message is exactly this.
function M.expect_message(conn, opcode, data, timeout)
  local op, got, controls = conn:read_message(timeout)
  assert(op, "expected a message, got: " .. tostring(got))
  for _, f in ipairs(controls) do
    error("unexpected control frame before the message: " .. describe_frame(f))
  end
  assert.are.equal(opcode, op)
  if got ~= data then
    -- keep the failure message readable for big payloads
    if #data > 200 or #got > 200 then
      local i = 1
      while i <= #data and data:sub(i, i) == got:sub(i, i) do i = i + 1 end
      error(string.format("payload differs: expected %d bytes, got %d; first difference at byte %d",
        #data, #got, i), 2)
    end
    assert.are.equal(data, got)
  end
  return got
end

-- echo(conn, data [, binary [, timeout]]): send one message, expect it back.
function M.echo(conn, data, binary, timeout)
  local ok, err
  if binary then ok, err = conn:send_binary(data) else ok, err = conn:send_text(data) end
  assert(ok, "send failed: " .. tostring(err))
  return M.expect_message(conn, binary and 2 or 1, data, timeout)
end

-- expect_close(conn, code [, reason [, o]]): the next frame is a close with
-- this code (and reason, when given); reply with a close frame, then the
-- server must drop TCP. o.timeout (default 3), o.no_reply, o.skip_other.
function M.expect_close(conn, code, reason, o)
  o = o or {}
  local got, r, frame = conn:read_close(o.timeout, o.skip_other)
  if not frame then
    error("expected close " .. tostring(code) .. ", got: " .. tostring(r), 2)
  end
  assert.are.equal(code, got)
  assert.is_false(frame.masked, "server frames must not be masked")
  assert.is_true(frame.fin, "close frame must have FIN")
  if reason then assert.are.equal(reason, r) end
  if not o.no_reply then conn:send_close(got, "") end
  local eof, extra = conn:expect_eof(o.eof_timeout or 3)
  assert(eof, "server did not close TCP after the close handshake: " .. tostring(extra))
  assert.are.equal("", extra, "bytes after the close frame")
  conn:close()
  return got, r
end

-- close_cleanly(conn [, code]): client-initiated close handshake.
function M.close_cleanly(conn, code)
  assert(conn:send_close(code or 1000, "done"))
  M.expect_close(conn, code or 1000, nil, { no_reply = true })
end

-- assert_alive(port [, path]): a fresh, well-behaved connection still gets
-- its echo and a clean close (the server survived what came before).
function M.assert_alive(port, path)
  local conn = M.open(port, path or "/")
  M.echo(conn, "still alive?")
  M.echo(conn, "\0\1\2binary", true)
  M.close_cleanly(conn)
end

-- protocol_error(port, bytes, code [, o]): a fresh connection sends `bytes`
-- (after the handshake), the server must answer close `code`, drop TCP, and
-- keep serving others.
function M.protocol_error(port, bytes, code, o)
  o = o or {}
  local conn = M.open(port, o.path or "/")
  assert(conn:send(bytes))
  M.expect_close(conn, code, nil, o)
  M.assert_alive(port, o.path)
end

-- tmpdir() -> a fresh empty directory for a spec's files; remove_dir(dir)
-- takes it and everything in it away.
function M.tmpdir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p '" .. dir .. "'"), "cannot make " .. dir)
  return dir
end

function M.remove_dir(dir)
  if dir then os.execute("rm -rf '" .. dir .. "'") end
end

-- write_file(path, text): path holds exactly text (a fixture a spec makes).
function M.write_file(path, text)
  local f = assert(io.open(path, "wb"), "cannot write " .. path)
  f:write(text)
  f:close()
end

-- proc_kib(pid, field) -> a "kB" field of /proc/PID/status ("VmRSS": resident
-- memory; "VmData": the data segment, touched or not), or nil when the
-- process is gone.
function M.proc_kib(pid, field)
  local f = io.open("/proc/" .. pid .. "/status")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return tonumber(s:match(field .. ":%s*(%d+)"))
end

return M
