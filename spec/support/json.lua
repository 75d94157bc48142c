-- JSON messages over a spec/support/wsclient connection or a duplex.test
-- client, for the specs of the demo apps (every message one JSON object
-- with a "type").
local cjson = require "cjson"
local assert = require "luassert"

local M = {}

-- The next message of conn, decoded; it must be a JSON object in a text
-- message. Returns the table and the raw text.
function M.recv(conn, timeout)
  local msg, data
  if conn.receive_json then           -- duplex.test fails for a close, a binary message, bad JSON
    msg, data = conn:receive_json(timeout)
  else
    local op, ok
    op, data = conn:read_message(timeout or 5)
    assert(op == 1, "expected a text message, got: " .. tostring(data))
    ok, msg = pcall(cjson.decode, data)
    assert(ok, "not JSON: " .. tostring(data))
  end
  assert.are.equal("table", type(msg), data)
  return msg, data
end

-- The next message must be of this type and carry these fields.
function M.expect(conn, kind, fields)
  local msg, raw = M.recv(conn)
  assert.are.equal(kind, msg.type, raw)
  for k, v in pairs(fields or {}) do
    assert.are.same(v, msg[k], k .. " in " .. raw)
  end
  return msg, raw
end

-- Sends t encoded (a string goes as it is: a spec may send broken JSON).
function M.send(conn, t)
  local text = type(t) == "string" and t or cjson.encode(t)
  if conn.receive_json then conn:send(text) else assert(conn:send_text(text)) end
end

return M
