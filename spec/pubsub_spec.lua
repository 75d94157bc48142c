-- Topics: subscribe, unsubscribe, publish (sender left out unless asked),
-- app:publish from a timer, leaving topics on close, one framing for many
-- subscribers, compressed once for subscribers that negotiated it, and a
-- publish to 10 000 subscribers.

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"
local pmd = require "spec.conformance.pmd"
local socket = require "socket"

local function ask(conn, text)
  assert(conn:send_text(text))
  local op, reply = conn:read_message(5)
  assert(op == 1, "no reply to " .. text .. ": " .. tostring(reply))
  return reply
end

local function expect_nothing(conn, within)
  local f = conn:read_frame(within or 0.1)
  assert(f == nil, "unexpected frame: " .. (f and wsclient.describe(f) or ""))
end

describe("topics", function()
  local srv
  -- 10 000 subscribers from one address: the connection limits are off.
  setup(function()
    local args = { "--deflate", "shared" }
    for _, a in ipairs(server.UNLIMITED) do args[#args + 1] = a end
    srv = server.start("spec/fixtures/pubsub.lua", args)
  end)
  teardown(function() srv:stop() end)

  it("publishes to every subscriber but the sender; include_self adds it", function()
    local a, b, c = h.open(srv.port, "/?topic=t1"), h.open(srv.port, "/?topic=t1"), h.open(srv.port, "/")
    assert.are.equal("count 2", ask(c, "count t1"))
    assert.are.equal("pub 1", ask(a, "pub t1 hello"))   -- b only
    h.expect_message(b, 1, "hello")
    expect_nothing(c)
    assert(a:send_text("pubself t1 again"))
    h.expect_message(a, 1, "again")               -- queued by the publish, before the reply
    h.expect_message(a, 1, "pub 2")
    h.expect_message(b, 1, "again")
    for _, x in ipairs { a, b, c } do h.close_cleanly(x) end
  end)

  it("subscribe and unsubscribe say whether anything changed", function()
    local a = h.open(srv.port, "/")
    assert.are.equal("sub t2 true", ask(a, "sub t2"))
    assert.are.equal("sub t2 false", ask(a, "sub t2"))
    assert.are.equal("count 1", ask(a, "count t2"))
    assert.are.equal("unsub t2 true", ask(a, "unsub t2"))
    assert.are.equal("unsub t2 false", ask(a, "unsub t2"))
    assert.are.equal("count 0", ask(a, "count t2"))
    h.close_cleanly(a)
  end)

  it("a connection that closes leaves its topics", function()
    local a, b = h.open(srv.port, "/?topic=t3"), h.open(srv.port, "/")
    assert(ask(b, "sub t4"))
    assert(ask(a, "sub t4"))
    assert.are.equal("count 2", ask(b, "count t4"))
    h.close_cleanly(a)
    local deadline = wsclient.now() + 3
    local reply
    repeat reply = ask(b, "count t4") until reply == "count 1" or wsclient.now() > deadline
    assert.are.equal("count 1", reply)
    assert.are.equal("count 0", ask(b, "count t3"))
    h.close_cleanly(b)
  end)

  it("app:publish from a timer reaches everyone, sender or not", function()
    local a, b = h.open(srv.port, "/?topic=t5"), h.open(srv.port, "/?topic=t5")
    assert(a:send_text("tick t5 20"))
    h.expect_message(a, 1, "tick")
    h.expect_message(b, 1, "tick")
    h.close_cleanly(a)
    h.close_cleanly(b)
  end)

  it("a large binary message reaches every subscriber intact (one shared buffer)", function()
    local subs = {}
    for i = 1, 5 do subs[i] = h.open(srv.port, "/?topic=t6") end
    local sender = h.open(srv.port, "/")
    assert.are.equal("pub 5", ask(sender, "pubbin t6 100000"))
    local bytes = {}
    for i = 1, 100000 do bytes[i] = string.char((i * 31) % 256) end
    local want = table.concat(bytes)
    for i = 1, 5 do h.expect_message(subs[i], 2, want) end
    for i = 1, 5 do h.close_cleanly(subs[i]) end
    h.close_cleanly(sender)
  end)

  it("compresses once for subscribers that negotiated permessage-deflate", function()
    local ext = { ["Sec-WebSocket-Extensions"] = "permessage-deflate" }
    local z1, z2 = h.open(srv.port, "/?topic=t7", ext), h.open(srv.port, "/?topic=t7", ext)
    local plain = h.open(srv.port, "/?topic=t7")
    local sender = h.open(srv.port, "/")
    local text = string.rep("compress me please ", 100)
    assert.are.equal("pub 3", ask(sender, "pub t7 " .. text))
    for _, z in ipairs { z1, z2 } do
      local f = assert(z:read_frame(5))
      assert.is_true(f.rsv1, "expected a compressed frame")
      assert.is_true(#f.payload < #text / 4)
      assert.are.equal(text, pmd.inflate(f.payload))
    end
    local f = assert(plain:read_frame(5))
    assert.is_false(f.rsv1)
    assert.are.equal(text, f.payload)
    for _, x in ipairs { z1, z2, plain, sender } do x:close() end
  end)

  it("reaches 10 000 subscribers with one publish", function()
    -- The crowd is Node ws clients (luasocket's select stops at 1024 sockets).
    local n = 10000
    -- 10 000 sockets on each side: the system must allow that many files.
    local hard = io.popen("sh -c 'ulimit -Hn'"):read("*l")
    assert(hard == "unlimited" or tonumber(hard) > n + 100,
      "this spec needs an open-file limit above " .. (n + 100) .. " (ulimit -Hn is " .. tostring(hard) .. ")")
    local cmd = ("sh -c 'ulimit -n $(ulimit -Hn); exec node spec/interop/crowd.js "
      .. "ws://127.0.0.1:%d/?topic=crowd %d \"to all of you\" 60'"):format(srv.port, n)
    local crowd = assert(io.popen(cmd))
    assert.are.equal("ready", crowd:read("*l"))
    local sender = h.open(srv.port, "/")
    assert.are.equal("count " .. n, ask(sender, "count crowd"))
    assert.are.equal("pub " .. n, ask(sender, "pub crowd to all of you"))
    assert.are.equal("got " .. n, crowd:read("*l"))
    crowd:close()
    local deadline = wsclient.now() + 20
    local reply
    repeat
      reply = ask(sender, "count crowd")
      if reply ~= "count 0" then socket.sleep(0.05) end
    until reply == "count 0" or wsclient.now() > deadline
    assert.are.equal("count 0", reply)           -- they all left the topic
    h.close_cleanly(sender)
  end)
end)
