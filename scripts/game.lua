-- A small authoritative real-time game: every player is a dot in an
-- 800 x 600 world, steered with the arrow keys. Clients send their keys;
-- the server moves everyone 30 times a second and broadcasts the state.
--
--   duplex run scripts/game.lua --port 8080
--   then open http://localhost:8080/?name=ada (the page: scripts/game/index.html),
--   or connect to ws://localhost:8080/game?name=ada
--
-- Messages are JSON.
--   client -> server  {"type":"input","left":true,"right":false,"up":false,"down":false}
--   server -> client  {"type":"welcome","id":7,"world":{"w":800,"h":600},"tick_rate":30}
--                     {"type":"state","tick":1234,"players":[{"id":7,"name":"ada","x":..,"y":..,"color":".."}]}
local duplex = require "duplex"
local cjson = require "cjson.safe"

local WORLD_W, WORLD_H = 800, 600
local SPEED = 200            -- pixels per second
local TICK_RATE = 30
local COLORS = { "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c" }

-- The page lives beside this script: scripts/game/index.html.
local here = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")) or "."
local app = duplex.app { static = here .. "/game" }
local players = {}           -- ws -> player
local count = 0
local tick = 0

-- A name is drawn on the canvas: ASCII letters, digits, space, '_', '-'
-- and '.' are kept (a decoded query could hold any bytes, and a cut
-- multi-byte character would make the state invalid UTF-8).
local function clean_name(s)
  s = (s or ""):gsub("[^%w _%-%.]", ""):sub(1, 24)
  return s ~= "" and s or nil
end

local function snapshot()
  local list = {}
  for _, p in pairs(players) do
    list[#list + 1] = { id = p.id, name = p.name, x = math.floor(p.x + 0.5),
                        y = math.floor(p.y + 0.5), color = p.color }
  end
  table.sort(list, function(a, b) return a.id < b.id end)
  return cjson.encode { type = "state", tick = tick, players = list }
end

local function clamp(v, lo, hi)
  if v < lo then return lo elseif v > hi then return hi end
  return v
end

-- The game loop: move everyone by their keys, then one publish to all.
app:every(1 / TICK_RATE, function()
  if count == 0 then return end
  tick = tick + 1
  local step = SPEED / TICK_RATE
  for _, p in pairs(players) do
    local k = p.keys
    local dx = (k.right and 1 or 0) - (k.left and 1 or 0)
    local dy = (k.down and 1 or 0) - (k.up and 1 or 0)
    p.x = clamp(p.x + dx * step, 0, WORLD_W)
    p.y = clamp(p.y + dy * step, 0, WORLD_H)
  end
  app:publish("game", snapshot())
end)

app:ws("/game", {
  upgrade = function(req)
    req.data = { name = clean_name(duplex.parse_query(req.query).name) }
  end,

  open = function(ws)
    local p = {
      id = ws.id,
      name = ws.data.name or ("player" .. ws.id),
      x = math.random(50, WORLD_W - 50), y = math.random(50, WORLD_H - 50),
      color = COLORS[ws.id % #COLORS + 1],
      keys = {},
    }
    players[ws] = p
    count = count + 1
    ws:subscribe("game")
    ws:send(cjson.encode { type = "welcome", id = ws.id, world = { w = WORLD_W, h = WORLD_H },
                           tick_rate = TICK_RATE })
  end,

  message = function(ws, data, binary)
    local msg = not binary and cjson.decode(data)
    if type(msg) ~= "table" or msg.type ~= "input" then
      ws:close(1003, "expected a JSON input message")
      return
    end
    local keys = players[ws].keys
    keys.left, keys.right = msg.left == true, msg.right == true
    keys.up, keys.down = msg.up == true, msg.down == true
  end,

  close = function(ws)
    if players[ws] then
      players[ws] = nil
      count = count - 1
    end
  end,
})

return app
