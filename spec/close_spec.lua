-- The closing handshake (RFC 6455 5.5.1, 7.4) and the close handler.

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"

local frame = wsclient.frame

-- id_of(conn) -> the server's ws.id of this connection (events fixture).
local function id_of(conn)
  assert(conn:send_text("id"))
  local _, msg = conn:read_message()
  local id = tostring(msg):match("^id=(%d+)$")
  assert(id, "unexpected reply to 'id': " .. tostring(msg))
  return id
end

-- expect_one_close(srv, id, code [, reason]): the close handler ran once
-- for this connection, with this code.
local function expect_one_close(srv, id, code, reason)
  local pattern = "event: close id=" .. id .. " code="
  local log, seen = srv:wait_log(pattern, 3, true)
  assert(log, "close handler did not run for id " .. id .. "; stderr:\n" .. tostring(seen))
  local line = log:match("event: close id=" .. id .. " code=[^\n]*")
  local want = "event: close id=" .. id .. " code=" .. tostring(code)
  if reason then
    assert.are.equal(want .. " reason=" .. reason, line)
  else
    assert.are.equal(want, line:match("^event: close id=%d+ code=%S*"))
  end
  -- a later connection's events come after anything this one still had to log
  local probe = h.open(srv.port)
  local pid = id_of(probe)
  h.close_cleanly(probe)
  assert(srv:wait_log("event: close id=" .. pid .. " code=", 3, true))
  assert.are.equal(1, srv:count_log(pattern, true), "close handler ran more than once:\n" .. srv:log())
end

describe("close", function()
  local srv
  setup(function() srv = server.start("spec/fixtures/events.lua") end)
  teardown(function() srv:stop() end)

  describe("from the client", function()
    for _, case in ipairs {
      { 1000, "normal" }, { 1001, "going away" }, { 1003, "unsupported" }, { 1007, "" },
      { 1008, "policy" }, { 1011, "oops" }, { 3000, "registered" }, { 4000, "private" },
      { 4999, string.rep("r", 123) },
    } do
      it("echoes code " .. case[1] .. ", and the close handler sees it once", function()
        local conn = h.open(srv.port)
        local id = id_of(conn)
        assert(conn:send_close(case[1], case[2]))
        h.expect_close(conn, case[1], nil, { no_reply = true })
        expect_one_close(srv, id, case[1], case[2])
        h.assert_alive(srv.port)
      end)
    end

    it("answers an empty close frame with a close frame carrying a code (1000)", function()
      local conn = h.open(srv.port)
      local id = id_of(conn)
      assert(conn:send_frame { opcode = 8, payload = "" })
      h.expect_close(conn, 1000, nil, { no_reply = true })
      assert(srv:wait_log("event: close id=" .. id .. " code=", 3, true))
      h.assert_alive(srv.port)
    end)

    it("is answered even when cut one byte at a time", function()
      local conn = h.open(srv.port)
      assert(conn:send_bytewise(frame { opcode = 8, payload = wsclient.close_payload(1000, "bytewise") }))
      h.expect_close(conn, 1000, nil, { no_reply = true })
    end)

    it("ignores data frames after the close frame", function()
      local conn = h.open(srv.port)
      assert(conn:send(frame { opcode = 8, payload = wsclient.close_payload(1000) } .. frame { payload = "late" }))
      h.expect_close(conn, 1000, nil, { no_reply = true })
    end)

    describe("closes with 1002 on", function()
      local bad = { 0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535 }
      for _, code in ipairs(bad) do
        it("code " .. code, function()
          h.protocol_error(srv.port, frame { opcode = 8, payload = wsclient.close_payload(code, "x") }, 1002)
        end)
      end

      it("a 1-byte close payload", function()
        h.protocol_error(srv.port, frame { opcode = 8, payload = "\3" }, 1002)
      end)
    end)
  end)

  describe("from the app", function()
    it("ws:close(4000, 'bye') sends 4000 'bye'; the handler sees it once", function()
      local conn = h.open(srv.port)
      local id = id_of(conn)
      assert(conn:send_text("close 4000 bye"))
      h.expect_close(conn, 4000, "bye")
      expect_one_close(srv, id, 4000)
      h.assert_alive(srv.port)
    end)

    it("ws:close() sends a close frame with a code", function()
      local conn = h.open(srv.port)
      assert(conn:send_text("close"))
      local code = h.expect_close(conn, 1000)
      assert.are.equal(1000, code)
    end)

    it("flushes messages sent before the close", function()
      local conn = h.open(srv.port)
      assert(conn:send_text("send-then-close"))
      h.expect_message(conn, 1, "one")
      h.expect_message(conn, 1, "two")
      h.expect_close(conn, 4002, "after two")
    end)
  end)

  it("runs the close handler once (code 1006) when the peer drops TCP", function()
    local conn = h.open(srv.port)
    local id = id_of(conn)
    conn:close()
    expect_one_close(srv, id, 1006)
    h.assert_alive(srv.port)
  end)

  it("runs the close handler once when the peer drops TCP mid-message", function()
    local conn = h.open(srv.port)
    local id = id_of(conn)
    assert(conn:send(frame { opcode = 2, fin = false, payload = "half" } .. frame { payload = "x" }:sub(1, 3)))
    conn:close()
    expect_one_close(srv, id, 1006)
  end)
end)

describe("close timeout", function()
  local srv
  setup(function() srv = server.start("spec/fixtures/events.lua", { "--close-timeout", "0.3" }) end)
  teardown(function() srv:stop() end)

  it("drops a peer that does not answer the server's close within the timeout", function()
    local conn = h.open(srv.port)
    local t0 = wsclient.now()
    assert(conn:send_text("close 4000 bye"))
    assert.are.equal(4000, (conn:read_close(3)))
    assert(conn:expect_eof(3), "server never dropped the silent peer")
    local took = wsclient.now() - t0
    assert.is_true(took >= 0.2, "dropped too early: " .. took)
    assert.is_true(took < 1.5, "dropped too late: " .. took)
    conn:close()
    h.assert_alive(srv.port)
  end)
end)

describe("SIGTERM", function()
  it("sends 1001 to every client, runs close handlers, exits 0", function()
    local srv = server.start("spec/fixtures/events.lua")
    local ok, err = pcall(function()
      local a, b = h.open(srv.port), h.open(srv.port)
      local ida, idb = id_of(a), id_of(b)
      srv:signal("TERM")
      for _, conn in ipairs { a, b } do
        local code = conn:read_close(5)
        assert.are.equal(1001, code)
        conn:send_close(1001, "")
        assert(conn:expect_eof(5))
        conn:close()
      end
      local code = srv:wait_exit(10)
      assert.are.equal(0, code, srv:log())
      local log = srv:log()
      assert.are.equal(1, srv:count_log("event: close id=" .. ida .. " code=", true), log)
      assert.are.equal(1, srv:count_log("event: close id=" .. idb .. " code=", true), log)
      assert.is_nil(server.sanitizer_report(log), log)
    end)
    srv:kill()
    assert(ok, err)
  end)

  it("exits 0 with a client that never answers the close", function()
    local srv = server.start("spec/fixtures/events.lua", { "--shutdown-timeout", "0.3" })
    local ok, err = pcall(function()
      local a = h.open(srv.port)
      id_of(a)
      srv:signal("TERM")
      assert.are.equal(1001, (a:read_close(5)))
      assert.are.equal(0, srv:wait_exit(10), srv:log())
      assert(a:expect_eof(1))
      a:close()
      assert.is_nil(server.sanitizer_report(srv:log()), srv:log())
    end)
    srv:kill()
    assert(ok, err)
  end)
end)
