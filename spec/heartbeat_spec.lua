-- Heartbeat (--ping-interval / --pong-timeout, or the app's config) and the
-- handshake timeout.

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"

local now = wsclient.now

local function id_of(conn)
  assert(conn:send_text("id"))
  local op, msg = conn:read_message()
  local id = tostring(msg):match("^id=(%d+)$")
  assert(id, "unexpected reply to 'id': " .. tostring(op) .. " " .. tostring(msg))
  return id
end

-- A silent peer gets a ping, then (no pong) the close 1001 and a TCP drop.
-- Returns the connection's id when get_id is given.
local function silent_peer_is_dropped(srv, get_id)
  local conn = h.open(srv.port)
  local id = get_id and get_id(conn)
  local t0 = now()
  local ping = assert(conn:read_frame(3))
  assert.are.equal(9, ping.opcode, wsclient.describe(ping))
  assert.is_false(ping.masked)
  local code = conn:read_close(3)
  assert.are.equal(1001, code)
  local took = now() - t0
  assert.is_true(took >= 0.1, "closed before the pong timeout: " .. took)
  assert.is_true(took < 4, "closed too late: " .. took)
  -- dropped without waiting for our close reply
  assert(conn:expect_eof(1), "TCP not dropped after the pong timeout")
  conn:close()
  return id
end

-- A peer that answers every ping stays open across several intervals.
local function answering_peer_stays(srv)
  local conn = h.open(srv.port)
  -- Two intervals are enough; the window is wide so a loaded machine that
  -- delays a ping does not fail the spec.
  local pings, deadline = 0, now() + 3
  while pings < 2 and now() < deadline do
    local f, err = conn:read_frame(deadline - now())
    if not f then
      assert.are.equal("timeout", err)
      break
    end
    assert.are.equal(9, f.opcode, "unexpected frame: " .. wsclient.describe(f))
    pings = pings + 1
    assert(conn:send_pong(f.payload))
  end
  assert.is_true(pings >= 2, "expected at least 2 pings in 3 s, got " .. pings)
  -- still open and working (a ping may come in between)
  assert(conn:send_text("still here"))
  while true do
    local f = assert(conn:read_frame(2))
    if f.opcode == 9 then
      assert(conn:send_pong(f.payload))
    else
      assert.are.equal(1, f.opcode, wsclient.describe(f))
      assert.are.equal("still here", f.payload)
      break
    end
  end
  assert(conn:send_close(1000, ""))
  local code = conn:read_close(2, true)
  assert.are.equal(1000, code)
  conn:close()
end

-- A busy peer (sending messages) is not pinged while it talks: it sends
-- every 50 ms, far more often than the ping interval (0.4 s here).
local function busy_peer_not_pinged(srv)
  local conn = h.open(srv.port)
  local deadline = now() + 1.2
  local n = 0
  while now() < deadline do
    n = n + 1
    assert(conn:send_text("msg " .. n))
    local f = assert(conn:read_frame(1))
    if f.opcode == 9 then
      error("pinged although the peer was not idle (it sent a message every 50 ms)")
    end
    assert.are.equal("msg " .. n, f.payload)
    local t = now() + 0.05
    local g = conn:read_frame(t - now())
    if g then
      error("unexpected frame while busy: " .. wsclient.describe(g))
    end
  end
  h.close_cleanly(conn)
end

describe("heartbeat from the flags", function()
  local srv
  setup(function()
    srv = server.start("spec/fixtures/events.lua", { "--ping-interval", "0.4", "--pong-timeout", "0.4" })
  end)
  teardown(function() srv:stop() end)

  it("runs pong_timeout, then closes with 1001 and drops TCP", function()
    local id = silent_peer_is_dropped(srv, id_of)
    local log = srv:wait_log("event: close id=" .. id .. " code=", 3, true)
    assert(log, "close handler did not run:\n" .. srv:log())
    local pt = log:find("event: pong_timeout id=" .. id .. "\n", 1, true)
    local cl = log:find("event: close id=" .. id .. " code=", 1, true)
    assert(pt, "pong_timeout handler did not run:\n" .. log)
    assert.is_true(pt < cl, "pong_timeout must run before close")
    assert.are.equal(1, srv:count_log("event: pong_timeout id=" .. id .. "\n", true))
    assert.are.equal(1, srv:count_log("event: close id=" .. id .. " code=", true))
    h.assert_alive(srv.port)
  end)

  it("keeps a peer that answers pings", function()
    answering_peer_stays(srv)
  end)

  it("does not ping a peer that keeps sending", function()
    busy_peer_not_pinged(srv)
  end)
end)

describe("heartbeat from the app's config", function()
  local srv
  setup(function() srv = server.start("spec/fixtures/heartbeat.lua") end)
  teardown(function() srv:stop() end)

  it("runs pong_timeout, then closes with 1001", function()
    silent_peer_is_dropped(srv)
    assert(srv:wait_log("event: pong_timeout id=", 3, true), srv:log())
    assert(srv:wait_log("event: close id=", 3, true), srv:log())
  end)

  it("keeps a peer that answers pings", function()
    answering_peer_stays(srv)
  end)
end)

describe("handshake timeout", function()
  local srv
  setup(function()
    srv = server.start("spec/fixtures/echo.lua", { "--handshake-timeout", "0.2" })
  end)
  teardown(function() srv:stop() end)

  local function dropped_after_timeout(conn, t0)
    local eof, extra = conn:expect_eof(3)
    assert(eof, "silent client was not dropped")
    local took = now() - t0
    assert.is_true(took >= 0.15, "dropped before the timeout: " .. took)
    assert.is_true(took < 2, "dropped too late: " .. took)
    -- nothing, or an HTTP 408, may precede the drop
    assert.is_true(extra == "" or extra:sub(1, 12) == "HTTP/1.1 408", "unexpected bytes: " .. extra)
    conn:close()
  end

  it("drops a client that sends nothing", function()
    local t0 = now()
    local conn = assert(wsclient.tcp(srv.port))
    dropped_after_timeout(conn, t0)
    h.assert_alive(srv.port)
  end)

  it("drops a client that sends half a request", function()
    local t0 = now()
    local conn = assert(wsclient.tcp(srv.port))
    assert(conn:send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"))
    dropped_after_timeout(conn, t0)
    h.assert_alive(srv.port)
  end)

  it("drops a client that trickles a request byte by byte too slowly", function()
    local t0 = now()
    local conn = assert(wsclient.tcp(srv.port))
    local req = wsclient.request { port = srv.port }
    local i, dropped = 1, false
    while i <= #req and now() - t0 < 2 do
      if not conn:send(req:sub(i, i)) then dropped = true; break end
      i = i + 1
      local f = conn:expect_eof(0.05)
      if f then dropped = true; break end
    end
    assert.is_true(dropped, "a request trickled over more than the timeout was accepted")
    assert.is_true(now() - t0 < 2)
    conn:close()
  end)

  it("does not apply to an open connection", function()
    local conn = h.open(srv.port)
    assert.is_nil((conn:read_frame(0.4)))
    h.echo(conn, "still open after the handshake timeout")
    h.close_cleanly(conn)
  end)
end)

describe("idle timeout", function()
  local srv
  setup(function()
    srv = server.start("spec/fixtures/events.lua", { "--idle-timeout", "1", "--ping-interval", "0" })
  end)
  teardown(function() srv:stop() end)

  it("closes a connection silent for the timeout (1001), the close handler runs once", function()
    local conn = h.open(srv.port)
    local id = id_of(conn)
    local t0 = now()
    local code = conn:read_close(5)
    local took = now() - t0
    assert.are.equal(1001, code)
    assert.is_true(took >= 0.7, "closed before the idle timeout: " .. took)
    assert.is_true(took < 5, "closed too late: " .. took)
    assert(conn:send_close(1001, ""))
    assert(conn:expect_eof(2))
    conn:close()
    assert(srv:wait_log("event: close id=" .. id .. " code=", 3, true))
    assert.are.equal(1, srv:count_log("event: close id=" .. id .. " code=", true))
    h.assert_alive(srv.port)
  end)

  it("keeps a connection that keeps talking", function()
    local conn = h.open(srv.port)
    local deadline = now() + 2.5   -- well past the 1 s timeout
    local n = 0
    while now() < deadline do
      n = n + 1
      h.echo(conn, "tick " .. n)
      assert.is_nil((conn:read_frame(0.1)))
    end
    h.close_cleanly(conn)
  end)
end)
