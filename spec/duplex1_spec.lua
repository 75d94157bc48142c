-- The duplex.1 subprotocol (duplex.js's): offered by the client, spoken by
-- every route whose own protocols do not leave it out. Text messages are
-- the app's as they are; binary ones carry a tag byte: 0x00 the app's,
-- 0x01 a control (JSON), 0x02 a heartbeat, 0x03 a publication of a page's
-- topic (u16 topic length, topic, u8 position length, position, u8 flags,
-- data as published). Pages subscribe with the app's consent and resume
-- from a position.

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local json = require "cjson"
local socket = require "socket"
local redis = require "spec.support.redis"

local function open(port, path, offer)
  local conn, resp = wsclient.connect(port, path or "/", { ["Sec-WebSocket-Protocol"] = offer or "duplex.1" })
  assert(conn, "connect failed: " .. tostring(resp))
  assert.are.equal(101, resp.status)
  return conn, resp
end

-- The next message, decoded: { kind = "text"|"app"|"control"|"heartbeat"|"pub", ... };
-- pings are answered (the app pings every second).
local function next_msg(conn, timeout)
  while true do
    local op, data, controls = conn:read_message(timeout or 5)
    for _, f in ipairs(controls or {}) do
      if f.opcode == 9 then conn:send_pong(f.payload) end
    end
    assert(op, "no message: " .. tostring(data))
    if op == 1 then return { kind = "text", data = data } end
    local tag = data:byte(1)
    if tag == 0 then return { kind = "app", data = data:sub(2) } end
    if tag == 1 then local m = json.decode(data:sub(2)); m.kind = "control"; return m end
    if tag == 2 then return { kind = "heartbeat", raw = data } end
    assert.are.equal(3, tag)
    local tlen = data:byte(2) * 256 + data:byte(3)
    local topic = data:sub(4, 3 + tlen)
    local plen = data:byte(4 + tlen)
    local pos = data:sub(5 + tlen, 4 + tlen + plen)
    local flags = data:byte(5 + tlen + plen)
    return { kind = "pub", topic = topic, position = pos, binary = flags % 2 == 1, data = data:sub(6 + tlen + plen) }
  end
end

-- The next message that is not a heartbeat, within timeout (5 s) in all.
local function next_of(conn, timeout)
  local deadline = socket.gettime() + (timeout or 5)
  while true do
    local left = deadline - socket.gettime()
    assert(left > 0, "no message but heartbeats")
    local m = next_msg(conn, left)
    if m.kind ~= "heartbeat" then return m end
  end
end

local function control(conn, t)
  assert(conn:send_binary("\1" .. json.encode(t)))
end

-- A page's connection: hello and the app's first message.
local function page(port, path)
  local conn = open(port, path)
  local hello = next_of(conn)
  assert.are.same({ kind = "control", t = "hello", ping = 1, id = hello.id }, hello)
  assert.are.same({ kind = "text", data = "protocol duplex.1" }, next_of(conn))
  return conn
end

local function subscribe(conn, topic, since)
  control(conn, { t = "sub", topic = topic, since = since })
  return next_of(conn)
end

describe("duplex.1", function()
  local srv
  setup(function() srv = server.start("spec/fixtures/duplex1.lua") end)
  teardown(function() srv:stop() end)

  it("is agreed on when offered, and left out by a route whose protocols do not name it", function()
    local c, resp = open(srv.port, "/", "duplex.1")
    assert.are.equal("duplex.1", resp.headers["sec-websocket-protocol"])
    c:close()
    local plain = wsclient.connect(srv.port, "/")
    assert.are.same({ kind = "text", data = "protocol nil" }, next_of(plain))   -- not offered: no hello
    plain:close()
    local chat, resp2 = open(srv.port, "/chat", "duplex.1")
    assert.is_nil(resp2.headers["sec-websocket-protocol"])
    assert.are.same({ kind = "text", data = "protocol nil" }, next_of(chat))
    chat:close()
  end)

  it("tags the app's binary messages both ways and leaves text alone", function()
    local c = page(srv.port)
    assert(c:send_binary("\0caf\0e"))
    assert.are.same({ kind = "text", data = "bin caf\0e" }, next_of(c))
    assert.are.same({ kind = "app", data = "back caf\0e" }, next_of(c))
    c:close()
  end)

  it("asks the app's consent: a refusal says why, no handler refuses", function()
    local c = page(srv.port)
    assert.are.same({ kind = "control", t = "sub", topic = "secret:x", ok = false, reason = "no secrets" },
      subscribe(c, "secret:x"))
    assert.are.same({ kind = "control", t = "sub", topic = "room", ok = true }, subscribe(c, "room"))
    assert.are.same({ kind = "control", t = "sub", topic = "\1room", ok = false, reason = "bad topic" },
      subscribe(c, "\1room"))                     -- a shadow's name is not a page's topic
    c:close()
    local n = page(srv.port, "/nosub")
    assert.are.same({ kind = "control", t = "sub", topic = "room", ok = false, reason = "not allowed" },
      subscribe(n, "room"))
    n:close()
  end)

  it("delivers publications once each in the envelope, text and binary, beside plain subscribers", function()
    local c = page(srv.port)
    local plain = page(srv.port)
    assert.are.equal(true, subscribe(c, "room").ok)
    assert.are.equal(true, subscribe(c, "news:e").ok)
    assert(plain:send_text("plain news:e"))
    assert(plain:send_text("pub room hello"))
    assert.are.same({ kind = "pub", topic = "room", position = "", binary = false, data = "hello" }, next_of(c))
    assert(plain:send_text("pubbin room \0\1\2"))
    assert.are.same({ kind = "pub", topic = "room", position = "", binary = true, data = "\0\1\2" }, next_of(c))
    assert(plain:send_text("pub news:e first"))
    local m = next_of(c)
    assert.are.same({ "news:e", false, "first" }, { m.topic, m.binary, m.data })   -- as published
    assert.matches("^[0-9a-z]+:1$", m.position)
    assert.are.same({ kind = "text", data = "@" .. m.position .. " first" }, next_of(plain))  -- framed
    control(c, { t = "unsub", topic = "room" })
    assert.are.same({ kind = "text", data = "unsubscribed room" }, next_of(c))
    assert(plain:send_text("pub room gone"))
    assert(plain:send_text("pub news:e second"))
    assert.are.equal("second", next_of(c).data)                  -- nothing of room came before it
    c:close()
    plain:close()
  end)

  it("resumes from a position: the missed ones in order with their positions, then new ones", function()
    local pub = page(srv.port)
    local c = page(srv.port)
    assert.are.equal(true, subscribe(c, "news:r").ok)
    assert(pub:send_text("pub news:r 1"))
    local last = next_of(c).position
    c:close()
    for i = 2, 6 do assert(pub:send_text("pub news:r " .. i)) end
    local back = page(srv.port)
    assert.are.equal(true, subscribe(back, "news:r", last).ok)
    local rec = next_of(back)
    local epoch, offset = last:match("^(.*):(%d+)$")
    assert.are.same({ kind = "control", t = "recovered", topic = "news:r", ok = true, missed = 5,
      position = epoch .. ":" .. (offset + 5) }, rec)
    for i = 2, 6 do
      local m = next_of(back)
      assert.are.same({ "news:r", epoch .. ":" .. (offset + i - 1), tostring(i) }, { m.topic, m.position, m.data })
    end
    assert(pub:send_text("pub news:r 7"))
    local new = next_of(back)
    assert.are.same({ "7", epoch .. ":" .. (offset + 6) }, { new.data, new.position })
    pub:close()
    back:close()
  end)

  it("says the position is lost when its epoch is not the topic's, and goes on with new ones", function()
    local pub = page(srv.port)
    local c = page(srv.port)
    assert.are.equal(true, subscribe(c, "news:l", "zzzz:3").ok)
    local rec = next_of(c)
    assert.are.same({ "recovered", false, "epoch", 0 }, { rec.t, rec.ok, rec.reason, rec.missed })
    assert(pub:send_text("pub news:l after"))
    assert.are.equal("after", next_of(c).data)
    pub:close()
    c:close()
  end)

  it("sends a heartbeat with each ping", function()
    local c = page(srv.port)
    local t0 = socket.gettime()
    local m = next_msg(c, 4)
    assert.are.same({ kind = "heartbeat", raw = "\2" }, m)
    assert.is_true(socket.gettime() - t0 < 3)
    c:close()
  end)
end)

describe("duplex.1 across nodes (--broker redis://...)", function()
  teardown(function() redis.stop_all() end)

  -- Publishes "<prefix><i>" on topic from pub until page hears one (the
  -- other node's interest reaches Redis asynchronously); returns i.
  local function until_heard(pub, page_conn, topic, prefix)
    local deadline = socket.gettime() + 10
    local i = 0
    while socket.gettime() < deadline do
      i = i + 1
      assert(pub:send_text(("pub %s %s%d"):format(topic, prefix, i)))
      local op, data = page_conn:read_message(0.1)
      if op == 2 and data:byte(1) == 3 then return i end
    end
    error("the page on the other node never heard " .. topic)
  end

  local running = {}
  after_each(function()
    for _, srv in ipairs(running) do if not srv:exited() then srv:signal("KILL") end end
    running = {}
  end)

  it("a page on one node gets the other node's publications, kept when its node's plain subscriber leaves", function()
    local r = redis.start()
    local args = { "--broker", r:url() }
    local a, b = server.start("spec/fixtures/duplex1.lua", args), server.start("spec/fixtures/duplex1.lua", args)
    running = { a, b }
    local pub = page(a.port)
    local plain = page(b.port)
    assert(plain:send_text("plain room"))           -- node b's plain subscriber of room first
    local c = page(b.port)
    assert.are.equal(true, subscribe(c, "room").ok)
    assert.are.equal(true, subscribe(c, "news:n").ok)
    until_heard(pub, c, "room", "sync")
    plain:close()                                   -- room's plain topic goes on node b: the page keeps it
    socket.sleep(0.2)
    for i = 1, 5 do assert(pub:send_text("pub room m" .. i)) end
    assert(pub:send_text("pub news:n first"))
    local got = {}
    while #got < 6 do
      local m = next_of(c)
      if not (m.topic == "room" and m.data:match("^sync")) then got[#got + 1] = m end
    end
    for i = 1, 5 do assert.are.same({ "room", "m" .. i, "" }, { got[i].topic, got[i].data, got[i].position }) end
    assert.are.same({ "news:n", "first" }, { got[6].topic, got[6].data })
    assert.matches("^[0-9a-z]+:1$", got[6].position)
    pub:close()
    c:close()
    a:stop()
    b:stop()
  end)
end)
