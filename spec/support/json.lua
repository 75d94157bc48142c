-- JSON messages over a spec/support/wsclient connection, for the specs of
-- the demo apps (every message one JSON object with a "type").
local cjson = require "cjson"
local assert = require "luassert"

local M = {}

-- The next message of conn, decoded; it must be a JSON object in a text
-- message. Returns the table and the raw text.
function M.recv(conn, timeout)
  local op, data = conn:read_message(timeout or 5)
  assert(op == 1, "expected a text message, got: " .. tostring(data))
  local ok, msg = pcall(cjson.decode, data)
  assert(ok, "not JSON: " .. tostring(data))
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
  assert(conn:send_text(type(t) == "string" and t or cjson.encode(t)))
end

return M
