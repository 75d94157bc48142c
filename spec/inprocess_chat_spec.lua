-- scripts/chat.lua, the app `make run` serves: rooms as topics, names,
-- join and leave notices, a rate-limited typing indicator, the last 50
-- messages for a newcomer, and an error (never a lost connection) for bad
-- requests. The app runs in this process under duplex.test, and every
-- client speaks the JSON protocol documented at the top of scripts/chat.lua.

local dt = require "duplex.test"
local socket = require "socket"
local http_get = require("spec.support.inprocess_http").get

local json = require "spec.support.json"
local recv, expect, send = json.recv, json.expect, json.send

local function expect_nothing(c, within)
  c:expect_nothing(within or 0.2)
end

-- A client entering `room` as `name`: it gets its welcome, then its own
-- join notice. Returns the client, welcome.
local function enter(srv, name, room)
  local c = srv:client("/chat?name=" .. name .. "&room=" .. room)
  local welcome = expect(c, "welcome", { name = name, room = room })
  expect(c, "join", { name = name, room = room, id = welcome.id })
  return c, welcome
end

-- Closes c (what it has not read is dropped); the server answers 1000.
local function bye(c)
  assert.are.equal(1000, (c:close(1000)))
end

describe("the chat app #inprocess", function()
  local srv
  setup(function() srv = dt.start("scripts/chat.lua") end)
  teardown(function() srv:stop() end)

  it("welcomes a client with its id, name, room and members, and no history in a new room", function()
    local ada = srv:client("/chat?name=ada&room=welcome")
    local welcome = expect(ada, "welcome", { name = "ada", room = "welcome", resumed = false })
    assert.matches("^%d+%.%x+$", welcome.id)
    assert.are.same({ { id = welcome.id, name = "ada" } }, welcome.members)
    expect(ada, "join", { name = "ada", room = "welcome", id = welcome.id })

    local bob, bw = enter(srv, "bob", "welcome")
    assert.are.same({ { id = welcome.id, name = "ada" }, { id = bw.id, name = "bob" } }, bw.members)
    expect(ada, "join", { name = "bob", id = bw.id })
    bye(bob)
    bye(ada)
  end)

  it("starts in the lobby, with a guest name, when the URL names neither", function()
    local anon = srv:client("/chat")
    local welcome = expect(anon, "welcome", { room = "lobby" })
    assert.are.equal("guest" .. welcome.id:match("^%d+"), welcome.name)
    expect(anon, "join", { name = welcome.name, room = "lobby" })
    bye(anon)
  end)

  it("decodes a percent-encoded UTF-8 name", function()
    local bob = srv:client("/chat?room=utf8&name=b%C3%B6b")
    expect(bob, "welcome", { name = "böb" })
    bye(bob)
  end)

  it("keeps rooms apart: what is said in one reaches its members only", function()
    local ada = enter(srv, "ada", "red")
    local bob = enter(srv, "bob", "red")
    expect(ada, "join", { name = "bob", room = "red" })
    local cyd = enter(srv, "cyd", "blue")

    send(ada, { type = "say", text = "hello red" })
    for _, c in ipairs { ada, bob } do
      local m = expect(c, "message", { room = "red", name = "ada", text = "hello red", seq = 1 })
      assert.is_number(m.time)
    end
    send(cyd, { type = "say", text = "hello blue" })
    expect(cyd, "message", { room = "blue", name = "cyd", text = "hello blue", seq = 1 })
    expect_nothing(ada)
    expect_nothing(bob)
    expect_nothing(cyd)
    for _, c in ipairs { ada, bob, cyd } do bye(c) end
  end)

  it("tells a room who joins and who leaves, by close or by joining elsewhere", function()
    local ada, aw = enter(srv, "ada", "hall")
    local bob, bw = enter(srv, "bob", "hall")
    expect(ada, "join", { room = "hall", name = "bob", id = bw.id })

    send(bob, { type = "join", room = "kitchen" })
    expect(ada, "leave", { room = "hall", name = "bob", id = bw.id })
    expect(bob, "welcome", { room = "kitchen", name = "bob", id = bw.id })
    expect(bob, "join", { room = "kitchen", name = "bob", id = bw.id })

    send(ada, { type = "say", text = "anyone?" })       -- bob is not in the hall any more
    expect(ada, "message", { text = "anyone?" })
    expect_nothing(bob)

    send(ada, { type = "join", room = "kitchen" })
    expect(ada, "welcome", { room = "kitchen" })
    expect(ada, "join", { room = "kitchen", name = "ada", id = aw.id })
    expect(bob, "join", { room = "kitchen", name = "ada", id = aw.id })

    bye(bob)
    expect(ada, "leave", { room = "kitchen", name = "bob", id = bw.id })
    expect_nothing(ada)
    bye(ada)
  end)

  it("renames a member, tells the room, and refuses a bad name", function()
    local ada, aw = enter(srv, "ada", "names")
    local bob, bw = enter(srv, "bob", "names")
    expect(ada, "join", { name = "bob" })

    send(bob, { type = "nick", name = "robert" })
    for _, c in ipairs { ada, bob } do
      expect(c, "nick", { room = "names", id = bw.id, old = "bob", name = "robert" })
    end
    send(bob, { type = "say", text = "call me robert" })
    for _, c in ipairs { ada, bob } do expect(c, "message", { name = "robert", id = bw.id }) end

    for _, bad in ipairs { "", "two words", string.rep("x", 25), "<b>", 42 } do
      send(ada, { type = "nick", name = bad })
      expect(ada, "error", { error = "bad_name" })
    end
    send(ada, { type = "nick", name = "Ada_Lovelace-1.0" })
    for _, c in ipairs { ada, bob } do
      expect(c, "nick", { id = aw.id, old = "ada", name = "Ada_Lovelace-1.0" })
    end
    expect_nothing(bob)
    bye(bob)
    bye(ada)
  end)

  it("passes typing on to the others in the room, at most once a second per client", function()
    local ada, aw = enter(srv, "ada", "typing")
    local bob = enter(srv, "bob", "typing")
    expect(ada, "join", { name = "bob" })
    local cyd = enter(srv, "cyd", "elsewhere")

    -- A burst of typing events, a message, another burst: sent in one
    -- loop iteration, they leave in one write.
    for _ = 1, 20 do send(ada, { type = "typing" }) end
    send(ada, { type = "say", text = "done" })
    for _ = 1, 5 do send(ada, { type = "typing" }) end

    expect(bob, "typing", { room = "typing", id = aw.id, name = "ada" })
    expect(bob, "message", { text = "done" })
    expect(bob, "typing", { id = aw.id })               -- a message resets the limit
    expect_nothing(bob, 0.3)
    expect(ada, "message", { text = "done" })           -- never her own typing
    expect_nothing(ada)
    expect_nothing(cyd)
    for _, c in ipairs { ada, bob, cyd } do bye(c) end
  end)

  it("gives a newcomer the room's last 50 messages, oldest first", function()
    -- Two speakers of 30 each: one alone may say only 30 at once.
    local ada = enter(srv, "ada", "history")
    local eve, ew = enter(srv, "eve", "history")
    expect(ada, "join", { name = "eve", id = ew.id })
    for i = 1, 30 do send(ada, { type = "say", text = "m" .. i }) end
    for i = 1, 30 do expect(ada, "message", { text = "m" .. i, seq = i }) end
    for i = 31, 60 do send(eve, { type = "say", text = "m" .. i }) end
    for i = 1, 60 do expect(eve, "message", { text = "m" .. i, seq = i }) end
    for i = 31, 60 do expect(ada, "message", { text = "m" .. i, seq = i }) end
    bye(eve)

    -- welcome, then the last 50 (m11 to m60) marked replay, then its join
    local function check(c, room)
      expect(c, "welcome", { room = room, resumed = false })
      for seq = 11, 60 do
        local m = expect(c, "message", { room = "history", text = "m" .. seq, seq = seq, replay = true })
        assert.are.equal(seq <= 30 and "ada" or "eve", m.name)
        assert.matches("^[0-9a-z]+:" .. seq .. "$", m.pos)
      end
      expect(c, "join", { room = "history" })
    end
    local bob = srv:client("/chat?name=bob&room=history")
    check(bob, "history")
    -- The same for a member who comes over from another room.
    local cyd = enter(srv, "cyd", "other")
    send(cyd, { type = "join", room = "history" })
    check(cyd, "history")

    -- A room nobody is left in keeps its history.
    for _, c in ipairs { ada, bob, cyd } do bye(c) end
    local dan = srv:client("/chat?name=dan&room=history")
    check(dan, "history")
    bye(dan)
  end)

  it("gives a page that comes back with its last position exactly what it missed", function()
    local ada = enter(srv, "ada", "resume")
    local bob = enter(srv, "bob", "resume")
    expect(ada, "join", { name = "bob" })
    send(ada, { type = "say", text = "before" })
    local last = expect(bob, "message", { text = "before" }).pos
    expect(ada, "message", { text = "before" })
    bye(bob)
    expect(ada, "leave", { name = "bob" })
    for i = 1, 20 do send(ada, { type = "say", text = "missed" .. i }) end
    for i = 1, 20 do expect(ada, "message", { text = "missed" .. i }) end

    local back = srv:client("/chat?name=bob&room=resume&since=" .. last)
    expect(back, "welcome", { room = "resume", resumed = true })
    for i = 1, 20 do expect(back, "message", { text = "missed" .. i, replay = true }) end
    expect(back, "join", { name = "bob" })
    send(ada, { type = "say", text = "after" })
    local m = expect(back, "message", { text = "after" })
    assert.is_nil(m.replay)

    -- A position this server never gave: told so, and given the last 50 instead.
    local stale = srv:client("/chat?name=eve&room=resume&since=zz0:3")
    expect(stale, "welcome", { room = "resume", resumed = false })
    expect(stale, "message", { text = "before", replay = true })
    for _, c in ipairs { ada, back, stale } do bye(c) end
  end)

  it("lets a client send 30 at once, then 5 a second; the rest are dropped and reach nobody", function()
    local ada = enter(srv, "ada", "flood")
    local bob, bw = enter(srv, "bob", "flood")
    expect(ada, "join", { name = "bob", id = bw.id })
    -- 40 in one write, read by the server at once: the core's rate limit
    -- (max_message_rate, policy drop) passes 30 on, in order, and drops
    -- the rest before the app sees them; nobody hears of those.
    for i = 1, 40 do send(bob, { type = "say", text = "f" .. i }) end
    for i = 1, 30 do expect(bob, "message", { text = "f" .. i }) end
    expect_nothing(bob, 0.3)
    for i = 1, 30 do expect(ada, "message", { text = "f" .. i }) end
    expect_nothing(ada)
    -- The bucket fills again with time (the loop ran those 0.3 s): bob is heard.
    send(bob, { type = "say", text = "again" })
    expect(bob, "message", { text = "again" })
    expect(ada, "message", { text = "again" })
    bye(bob)
    bye(ada)
  end)

  it("answers bad requests with an error and goes on, for the sender and the others", function()
    local ada = enter(srv, "ada", "errors")
    local bob = enter(srv, "bob", "errors")
    expect(ada, "join", { name = "bob" })

    local cases = {
      { "not json", "bad_json" },
      { "{\"type\":", "bad_json" },
      { "[1,2,3]", "bad_message" },
      { "\"say\"", "bad_message" },
      { "null", "bad_message" },
      { "{\"text\":\"no type\"}", "bad_message" },
      { "{\"type\":42}", "bad_message" },
      { "{\"type\":\"dance\"}", "unknown_type" },
      { "{\"type\":\"say\"}", "bad_text" },
      { "{\"type\":\"say\",\"text\":7}", "bad_text" },
      { "{\"type\":\"say\",\"text\":\" \\n \"}", "bad_text" },
      { '{"type":"say","text":"' .. string.rep("x", 1001) .. '"}', "too_long" },
      { "{\"type\":\"join\"}", "bad_room" },
      { "{\"type\":\"join\",\"room\":\"a b\"}", "bad_room" },
      { "{\"type\":\"join\",\"room\":\"errors\"}", "same_room" },
      { "{\"type\":\"nick\"}", "bad_name" },
    }
    for _, c in ipairs(cases) do
      send(ada, c[1])
      local e = expect(ada, "error", { error = c[2] })
      assert.is_string(e.message)
      assert.truthy(#e.message > 0)
    end
    ada:send("\0\1\2", true)
    expect(ada, "error", { error = "binary" })

    -- 1000 characters is the cap, not 1000 bytes: 1000 two-byte ones pass.
    local long = string.rep("é", 1000)
    send(ada, { type = "say", text = long })
    for _, c in ipairs { ada, bob } do expect(c, "message", { text = long }) end
    send(ada, { type = "say", text = "still here" })
    for _, c in ipairs { ada, bob } do expect(c, "message", { text = "still here" }) end
    expect_nothing(bob)
    bye(bob)
    bye(ada)
  end)

  it("refuses a bad name or room in the URL with an error, and lets the client in", function()
    local c = srv:client("/chat?name=a%20b&room=no%20spaces")
    local w = expect(c, "welcome", { room = "lobby" })
    assert.are.equal("guest" .. w.id:match("^%d+"), w.name)
    expect(c, "join", { room = "lobby" })
    expect(c, "error", { error = "bad_name" })
    expect(c, "error", { error = "bad_room" })
    bye(c)
    local d = srv:client("/chat?name=%FF%FE&room=utf8")   -- not UTF-8
    expect(d, "welcome", { room = "utf8" })
    expect(d, "join")
    expect(d, "error", { error = "bad_name" })
    bye(d)
  end)

  it("closes a client that sends more than 64 KiB in one message (1009); the room goes on", function()
    local ada = enter(srv, "ada", "big")
    local bob = enter(srv, "bob", "big")
    expect(ada, "join", { name = "bob" })
    send(bob, string.rep("x", 70 * 1024))
    bob:expect_close(1009)
    expect(ada, "leave", { name = "bob" })
    send(ada, { type = "say", text = "ok" })
    expect(ada, "message", { text = "ok" })
    bye(ada)
  end)

  it("takes WebSockets on /chat only", function()
    local _, why = srv:connect("/"):expect_close(1006)
    assert.matches("HTTP 404$", why)
  end)

  it("serves its page on the same port", function()
    local status, headers, body = http_get(srv.port, "/?name=ada&room=lobby")
    assert.are.equal(200, status)
    assert.are.equal("text/html; charset=utf-8", headers["content-type"])
    for _, needle in ipairs { 'id="log"', 'id="typing"', 'id="room"', 'id="status"', 'duplex.connect(' } do
      assert.truthy(body:find(needle, 1, true), "not the chat page: no " .. needle)
    end
  end)
end)
