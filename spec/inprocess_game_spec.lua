-- scripts/game.lua: the 30 Hz authoritative game loop, seen from two raw
-- clients: a welcome, then state broadcasts in which the player holding
-- "right" moves right and the idle one stays put.

local server = require "spec.support.server"
local h = require "spec.support.helpers"
local cjson = require "cjson"

local function next_state(conn)
  while true do
    local op, data = conn:read_message(5)
    assert.are.equal(1, op, "no state message: " .. tostring(data))
    local msg = cjson.decode(data)
    if msg.type == "state" then return msg end
  end
end

-- A client-initiated close while states keep streaming in.
local function leave(conn)
  assert(conn:send_close(1000, "bye"))
  h.expect_close(conn, 1000, nil, { no_reply = true, skip_other = true })
end

local function find(state, id)
  for _, p in ipairs(state.players) do if p.id == id then return p end end
end

describe("the game app", function()
  local srv
  setup(function() srv = server.start("scripts/game.lua") end)
  teardown(function() srv:stop() end)

  it("welcomes players, moves the one holding a key, broadcasts every tick", function()
    local ada = h.open(srv.port, "/game?name=ada")
    local welcome = cjson.decode((select(2, ada:read_message(5))))
    assert.are.equal("welcome", welcome.type)
    assert.are.equal(30, welcome.tick_rate)
    local bob = h.open(srv.port, "/game?name=bob")
    local bob_id = cjson.decode((select(2, bob:read_message(5)))).id

    -- States already queued for ada may predate bob's arrival.
    local first = next_state(ada)
    while not find(first, bob_id) do first = next_state(ada) end
    local a0, b0 = find(first, welcome.id), find(first, bob_id)
    assert.are.equal("ada", a0.name)
    assert.are.equal("bob", b0.name)

    assert(ada:send_text(cjson.encode { type = "input", right = true }))
    -- A dozen ticks later ada has moved right (unless already at the edge);
    -- bob, pressing nothing, has not moved.
    local state, last_tick = first, first.tick
    for _ = 1, 12 do
      state = next_state(ada)
      assert.is_true(state.tick > last_tick, "ticks must increase")
      last_tick = state.tick
    end
    local a1, b1 = find(state, welcome.id), find(state, bob_id)
    assert.is_true(a1.x > a0.x or a0.x == 800, ("ada did not move: %d -> %d"):format(a0.x, a1.x))
    assert.are.equal(a0.y, a1.y)
    assert.are.same({ b0.x, b0.y }, { b1.x, b1.y })
    -- bob saw the same world
    local seen = next_state(bob)
    assert.is_truthy(find(seen, welcome.id))

    leave(bob)
    local gone
    for _ = 1, 30 do
      gone = next_state(ada)
      if not find(gone, bob_id) then break end
    end
    assert.is_nil(find(gone, bob_id), "bob still in the game after leaving")
    leave(ada)
  end)

  it("serves its canvas page on the same port", function()
    local wsclient = require "spec.support.wsclient"
    local conn = assert(wsclient.tcp(srv.port))
    assert(conn:send("GET /?name=ada HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
    local resp = assert(conn:read_http_response(5))
    assert.are.equal(200, resp.status)
    assert.are.equal("text/html; charset=utf-8", resp.headers["content-type"])
    assert.truthy(resp.body:find('getContext("2d")', 1, true), "not the game page")
    conn:close()
  end)

  it("closes a client that sends something other than input (1003)", function()
    local conn = h.open(srv.port, "/game")
    conn:read_message(5)                       -- welcome
    assert(conn:send_text("not json"))
    h.expect_close(conn, 1003, nil, { skip_other = true })
  end)
end)
