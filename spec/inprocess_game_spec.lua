-- scripts/game.lua: the 30 Hz authoritative game loop, seen from two
-- clients (the app runs in this process under duplex.test): a welcome,
-- then state broadcasts in which the player holding "right" moves right
-- and the idle one stays put.

local dt = require "duplex.test"
local http_get = require("spec.support.inprocess_http").get

-- The next state message of c (other messages are passed over).
local function next_state(c)
  while true do
    local msg = c:receive_json()
    if msg.type == "state" then return msg end
  end
end

-- A client-initiated close while states keep streaming in.
local function leave(c)
  assert.are.equal(1000, (c:close(1000)))
end

local function find(state, id)
  for _, p in ipairs(state.players) do if p.id == id then return p end end
end

describe("the game app #inprocess", function()
  local srv
  setup(function() srv = dt.start("scripts/game.lua") end)
  teardown(function() srv:stop() end)

  it("welcomes players, moves the one holding a key, broadcasts every tick", function()
    local ada = srv:client("/game?name=ada")
    local welcome = ada:receive_json()
    assert.are.equal("welcome", welcome.type)
    assert.are.equal(30, welcome.tick_rate)
    local bob = srv:client("/game?name=bob")
    local bob_id = bob:receive_json().id

    -- States already queued for ada may predate bob's arrival.
    local first = next_state(ada)
    while not find(first, bob_id) do first = next_state(ada) end
    local a0, b0 = find(first, welcome.id), find(first, bob_id)
    assert.are.equal("ada", a0.name)
    assert.are.equal("bob", b0.name)

    ada:send_json { type = "input", right = true }
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
    local status, headers, body = http_get(srv.port, "/?name=ada")
    assert.are.equal(200, status)
    assert.are.equal("text/html; charset=utf-8", headers["content-type"])
    assert.truthy(body:find('getContext("2d")', 1, true), "not the game page")
  end)

  it("closes a client that sends something other than input (1003)", function()
    local c = srv:client("/game")
    assert.are.equal("welcome", c:receive_json().type)
    c:send("not json")
    c:skip_to_close(1003)                    -- states stream in until the close
  end)
end)
