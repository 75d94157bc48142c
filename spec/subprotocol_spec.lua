-- Sec-WebSocket-Protocol (RFC 6455 4.2.2): the server answers with exactly
-- one of the client's offers, or with none; ws.protocol tells the handler.

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"

local function open_with(port, path, offer)
  local conn, resp = wsclient.connect(port, path, offer and { ["Sec-WebSocket-Protocol"] = offer } or nil)
  assert(conn, "connect failed: " .. tostring(resp))
  return conn, resp
end

describe("subprotocols", function()
  local srv
  setup(function() srv = server.start("spec/fixtures/protocols.lua") end)
  teardown(function() srv:stop() end)

  local cases = {
    { "/", "chat.v1, chat.v2", "chat.v1", "the client's first offer the route speaks" },
    { "/", "chat.v2,chat.v1", "chat.v2", "without spaces" },
    { "/", "mqtt, chat.v2", "chat.v2", "skipping one it does not speak" },
    { "/", "mqtt, soap", nil, "none in common: no header at all" },
    { "/", nil, nil, "no offer: no header" },
    { "/last", "a, b, c", "c", "upgrade(req) choosing among req.protocols" },
    { "/plain", "chat.v1", nil, "a route that speaks none" },
  }
  for _, case in ipairs(cases) do
    local path, offer, want, what = case[1], case[2], case[3], case[4]
    it(what .. " (" .. path .. ", " .. tostring(offer) .. ")", function()
      local conn, resp = open_with(srv.port, path, offer)
      assert.are.equal(101, resp.status)
      assert.are.equal(want, resp.headers["sec-websocket-protocol"])
      assert(conn:send_text("?"))
      h.expect_message(conn, 1, want or "none")     -- ws.protocol in the handler
      h.close_cleanly(conn)
    end)
  end

  it("answers 500 when upgrade(req) picks a protocol the client did not offer", function()
    local conn, resp = open_with(srv.port, "/bogus", "chat.v1")
    assert.are.equal(500, resp.status)
    if conn then conn:close() end
    assert(srv:wait_log("did not offer", 3, true), srv:log())
    local other = open_with(srv.port, "/plain", "chat.v1")   -- the server goes on
    assert(other:send_text("?"))
    h.expect_message(other, 1, "none")
    h.close_cleanly(other)
  end)
end)
