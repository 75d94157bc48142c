-- The connection object seen by handlers: ws.id, ws.data, ws.remote,
-- ws:send, ws:ping and errors on misuse.

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"

-- ask(conn, command) -> the text reply
local function ask(conn, command)
  assert(conn:send_text(command))
  local op, msg = conn:read_message()
  assert.are.equal(1, op, tostring(msg))
  return msg
end

describe("ws", function()
  local srv
  setup(function() srv = server.start("spec/fixtures/api.lua") end)
  teardown(function() srv:stop() end)

  it("has an integer ws.id, distinct per connection and stable", function()
    local seen = {}
    local conns = {}
    for i = 1, 5 do
      conns[i] = h.open(srv.port)
      local reply = ask(conns[i], "id")
      local id, ty, int = reply:match("^id=(%S+) type=(%S+) integer=(%S+)$")
      assert(id, reply)
      assert.are.equal("number", ty)
      assert.are.equal("true", int)
      assert.is_nil(seen[id], "ws.id " .. id .. " given twice")
      seen[id] = true
      assert.are.equal(reply, ask(conns[i], "id"))
    end
    for _, c in ipairs(conns) do h.close_cleanly(c) end
  end)

  it("keeps ws.data across messages, per connection, the same table", function()
    local a, b = h.open(srv.port), h.open(srv.port)
    assert.are.equal("true", ask(a, "same-data"))
    assert.are.equal("ok", ask(a, "set colour blue"))
    assert.are.equal("ok", ask(b, "set colour red"))
    assert.are.equal("blue", ask(a, "get colour"))
    assert.are.equal("red", ask(b, "get colour"))
    assert.are.equal("nil", ask(a, "get other"))
    assert.are.equal("true", ask(a, "same-data"))
    assert.are.equal("true", ask(b, "same-data"))
    h.close_cleanly(a)
    h.close_cleanly(b)
  end)

  it("has ws.remote as ip:port of the peer", function()
    local conn = h.open(srv.port)
    local _, lport = conn.sock:getsockname()
    assert.are.equal("127.0.0.1:" .. tostring(lport), ask(conn, "remote"))
    h.close_cleanly(conn)
  end)

  it("ws:send returns true", function()
    local conn = h.open(srv.port)
    assert(conn:send_text("send-returns"))
    h.expect_message(conn, 1, "x")
    h.expect_message(conn, 1, "returned true")
    h.close_cleanly(conn)
  end)

  it("ws:send(nil) raises a bad argument error", function()
    local conn = h.open(srv.port)
    local reply = ask(conn, "send-nil")
    assert.truthy(reply:find("^ok=false err="), reply)
    assert.truthy(reply:find("bad argument #1 to 'send' (string expected, got nil)", 1, true), reply)
    reply = ask(conn, "send-table")
    assert.truthy(reply:find("bad argument #1 to 'send'", 1, true), reply)
    h.echo(conn, "still open") -- a caught error leaves the connection alone
    h.close_cleanly(conn)
  end)

  it("ws.send called on anything but a connection raises a bad argument error", function()
    local conn = h.open(srv.port)
    local reply = ask(conn, "wrong-self")
    local n = 0
    for line in reply:gmatch("[^\n]+") do
      n = n + 1
      assert.truthy(line:find("^ok=false err=.*duplex%.connection expected"), line)
    end
    assert.are.equal(3, n, reply)
    h.echo(conn, "still open")
    h.close_cleanly(conn)
  end)

  it("ws:send on a connection whose close has run raises 'closed connection'", function()
    local gone = h.open(srv.port)
    local gone_id = ask(gone, "id"):match("^id=(%d+)")
    local _, gone_port = gone.sock:getsockname()
    h.close_cleanly(gone)
    assert(srv:wait_log("event: close id=" .. gone_id .. "\n", 3, true))
    local conn = h.open(srv.port)
    local reply = ask(conn, "send-to-closed")
    assert.truthy(reply:find("^ok=false err=.*closed connection"), reply)
    -- its read-only fields still work
    assert.are.equal("ok=true id=" .. gone_id, ask(conn, "closed-id"))
    local remote = "127.0.0.1:" .. tostring(gone_port)
    assert.are.equal("ok=true remote=" .. remote .. " str=duplex.connection " .. gone_id
      .. " (" .. remote .. ", closed)", ask(conn, "closed-remote"))
    h.close_cleanly(conn)
  end)

  it("in the close handler, publish still reaches the topic; send raises; unsubscribe is false", function()
    local stay = h.open(srv.port)
    assert.are.equal("subbed", ask(stay, "sub room"))
    local gone = h.open(srv.port)
    local gone_id = ask(gone, "id"):match("^id=(%d+)")
    assert.are.equal("subbed", ask(gone, "sub room"))
    h.close_cleanly(gone)
    h.expect_message(stay, 1, "left " .. gone_id)
    local line = srv:wait_log("event: in-close id=" .. gone_id .. " ", 3, true)
    assert(line, srv:log())
    assert.truthy(srv:log():find("event: in-close id=" .. gone_id .. " send=false unsub=false published=1\n", 1, true), srv:log())
    -- after the close handler, publish raises like every other method
    local reply = ask(stay, "publish-closed")
    assert.truthy(reply:find("^ok=false err=.*closed connection"), reply)
    h.close_cleanly(stay)
  end)

  it("ws:ping sends a ping the client can answer", function()
    local conn = h.open(srv.port)
    assert(conn:send_text("ping-me"))
    local f = assert(conn:read_frame())
    assert.are.equal(9, f.opcode, wsclient.describe(f))
    assert.are.equal("hello", f.payload)
    assert.is_false(f.masked)
    h.expect_message(conn, 1, "pinged")
    assert(conn:send_pong("hello"))
    assert(conn:send_text("ping-empty"))
    f = assert(conn:read_frame())
    assert.are.equal(9, f.opcode)
    assert.are.equal("", f.payload)
    h.expect_message(conn, 1, "pinged")
    h.close_cleanly(conn)
  end)
end)
