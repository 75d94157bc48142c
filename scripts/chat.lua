-- Chat: rooms, nicknames, join and leave notices, a typing indicator, and
-- the last 50 messages of a room for whoever joins it.
--
--   duplex run scripts/chat.lua --port 8080
--   then open http://localhost:8080/?name=ada&room=lobby in two browser tabs
--   (the page: scripts/chat/index.html), or connect a WebSocket to
--   ws://localhost:8080/chat?name=ada&room=lobby
--
-- Both query parameters are optional: without a valid name a client is
-- "guest<id>", without a valid room it starts in "lobby" (an invalid one
-- also earns it an error message, below). Each room is a topic
-- ("chat:<room>"): what is said in a room is framed once and published to
-- its members.
--
-- Names: 1 to 24 characters, each an ASCII letter, digit, "_", "-" or ".",
-- or any non-ASCII character (böb, 李). Names are labels, not accounts: two
-- clients may carry the same one (a tab that reconnects may briefly meet
-- its old self). Rooms: 1 to 32 ASCII letters, digits, "_", "-" or ".".
--
-- Protocol: every message, both ways, is one JSON object in a text message,
-- with a "type". `id` is the sender's connection id (welcome tells a client
-- its own), `time` is milliseconds since 1970 (server clock).
--
-- client -> server
--   {"type":"say","text":"hello"}      say something in the current room
--                                      (1 to 1000 characters, not only blanks)
--   {"type":"typing"}                  "I am typing": passed on to the
--                                      others in the room at most once a
--                                      second per client (more are dropped
--                                      without a word; a page may send one
--                                      per keystroke)
--   {"type":"nick","name":"bob"}       rename yourself
--   {"type":"join","room":"games"}     leave the current room for another
--
-- A client may send a burst of 30 messages (of any type), then 5 a second:
-- the server drops the ones past that unanswered and counts them
-- (max_message_rate with the "drop" policy), so one flooding client cannot
-- drown a room; a person typing never comes near it.
--
-- server -> client
--   {"type":"welcome","id":7,"name":"ada","room":"lobby",
--    "members":[{"id":7,"name":"ada"},...],"history":[message,...]}
--        to a client entering a room (on connect and on each join): the
--        room's members (the client among them) and its last 50 messages,
--        oldest first, each in the "message" form below
--   {"type":"message","room":"lobby","id":7,"name":"ada","text":"hello","seq":12,"time":...}
--        something said in the room, to every member, the speaker included;
--        seq counts the room's messages from 1
--   {"type":"join","room":"lobby","id":7,"name":"ada"}
--        to every member, the newcomer included (after its welcome)
--   {"type":"leave","room":"lobby","id":7,"name":"ada"}
--        to the members left behind (a close or a join elsewhere)
--   {"type":"nick","room":"lobby","id":7,"old":"ada","name":"bob"}
--        to every member, the renamed one included
--   {"type":"typing","room":"lobby","id":7,"name":"ada"}
--        to the other members; a page shows it for about 3 s, or until a
--        message from that member arrives
--   {"type":"error","error":WORD,"message":"what was wrong"}
--        to the one client whose request was refused; nothing else happens
--        and the connection stays open. WORD is one of:
--        bad_json      not JSON
--        bad_message   JSON, but not an object with a string "type"
--        unknown_type  a "type" this protocol does not have
--        binary        a binary message (this protocol is text)
--        bad_text      "text" missing, not a string, or only blanks
--        too_long      "text" over 1000 characters
--        bad_name      a name outside the rules above
--        bad_room      a room name outside the rules above
--        same_room     a join to the room the client is already in
--        too_many_rooms  every room slot is taken by a room with members
--
-- Rooms outlive their members, so a page reloaded in an empty room finds
-- its history again: at most 100 rooms are kept, the lobby always among
-- them; when a new room is needed and all 100 exist, the empty room idle
-- the longest is forgotten, and when none is empty the join is refused
-- (too_many_rooms; a client that asked for such a room in its URL lands
-- in the lobby). Memory is
-- bounded by 100 rooms x 50 messages x 1000 characters. A message over
-- 64 KiB is not read at all: the connection is closed with 1009.

local duplex = require "duplex"
local cjson = require "cjson.safe"

local HISTORY = 50            -- messages kept per room
local MAX_ROOMS = 100
local MAX_TEXT = 1000         -- characters of a message
local MAX_NAME = 24           -- characters of a name
local MAX_ROOM_NAME = 32
local TYPING_INTERVAL = 1     -- seconds between two typing events passed on
local DEFAULT_ROOM = "lobby"

local concat = table.concat

-- The page lives beside this script: scripts/chat/index.html.
local here = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")) or "."
local app = duplex.app {
  static = here .. "/chat",
  max_message = 64 * 1024,
  max_message_rate = 5,             -- messages a client may send a second ...
  message_burst = 30,               -- ... after 30 at once;
  message_rate_policy = "drop",     -- past that, dropped unanswered
}

local rooms = {}              -- room name -> room (see new_room); the lobby is never forgotten
local room_count = 0

---------------------------------------------------------------------------
-- Names and rooms
---------------------------------------------------------------------------

-- True when s is well-formed UTF-8 (no overlongs, no surrogates, nothing
-- past U+10FFFF): names may come percent-decoded from a query string.
local function valid_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len, lo, hi = 1, 0x80, 0xBF
    if c < 0x80 then len = 1
    elseif c >= 0xC2 and c <= 0xDF then len = 2
    elseif c == 0xE0 then len, lo = 3, 0xA0
    elseif c >= 0xE1 and c <= 0xEC then len = 3
    elseif c == 0xED then len, hi = 3, 0x9F
    elseif c >= 0xEE and c <= 0xEF then len = 3
    elseif c == 0xF0 then len, lo = 4, 0x90
    elseif c >= 0xF1 and c <= 0xF3 then len = 4
    elseif c == 0xF4 then len, hi = 4, 0x8F
    else return false end
    for j = i + 1, i + len - 1 do
      local b = s:byte(j)
      if not b then return false end
      if j == i + 1 then
        if b < lo or b > hi then return false end
      elseif b < 0x80 or b > 0xBF then
        return false
      end
    end
    i = i + len
  end
  return true
end

-- Characters (code points) of a valid UTF-8 string.
local function chars(s)
  local _, n = s:gsub("[^\128-\191]", "")
  return n
end

-- name, or nil and why not.
local function check_name(s)
  if type(s) ~= "string" or s == "" then return nil, "a name needs 1 to " .. MAX_NAME .. " characters" end
  if not valid_utf8(s) then return nil, "a name must be UTF-8" end
  if s:find("[^%w_%-%.\128-\255]") then
    return nil, "a name may hold letters, digits, '_', '-' and '.' only"
  end
  if chars(s) > MAX_NAME then return nil, "a name needs 1 to " .. MAX_NAME .. " characters" end
  return s
end

local function check_room(s)
  if type(s) ~= "string" or s == "" or #s > MAX_ROOM_NAME or s:find("[^%w_%-%.]") then
    return nil, "a room name needs 1 to " .. MAX_ROOM_NAME .. " ASCII letters, digits, '_', '-' or '.'"
  end
  return s
end

---------------------------------------------------------------------------
-- Sending
---------------------------------------------------------------------------

local function send_error(ws, word, message)
  ws:send(cjson.encode { type = "error", error = word, message = message })
end

-- JSON of the (non-empty) object obj with more fields, each an array of
-- already encoded JSON values: arrays = { {key, items}, ... }. (lua-cjson
-- 2.1 would encode an empty table as {}, and the history is kept encoded.)
local function encode_with_arrays(obj, arrays)
  local parts = { (cjson.encode(obj):sub(1, -2)) }
  for _, a in ipairs(arrays) do
    parts[#parts + 1] = ',"' .. a[1] .. '":[' .. concat(a[2], ",") .. "]"
  end
  parts[#parts + 1] = "}"
  return concat(parts)
end

local function now_ms()
  return math.floor(duplex.now() * 1000)
end

---------------------------------------------------------------------------
-- Rooms
---------------------------------------------------------------------------

local function new_room(name)
  return {
    name = name,
    topic = "chat:" .. name,
    members = {},          -- ws -> true
    count = 0,
    history = {},          -- ring of encoded "message" objects
    seq = 0,               -- messages said so far; the newest is history[(seq - 1) % HISTORY + 1]
    idle_since = duplex.now(),
  }
end

-- room or nil, word, message: the room named `name`, made if needed.
local function get_room(name)
  local room = rooms[name]
  if room then return room end
  if room_count >= MAX_ROOMS then
    local oldest
    for _, r in pairs(rooms) do
      if r.count == 0 and r.name ~= DEFAULT_ROOM and (not oldest or r.idle_since < oldest.idle_since) then oldest = r end
    end
    if not oldest then
      return nil, "too_many_rooms", "all " .. MAX_ROOMS .. " rooms are in use; join one of them"
    end
    rooms[oldest.name] = nil
    room_count = room_count - 1
  end
  room = new_room(name)
  rooms[name] = room
  room_count = room_count + 1
  return room
end

get_room(DEFAULT_ROOM)         -- made now, so there is always a room to fall back to

-- The room's last messages, oldest first, as encoded JSON.
local function history_of(room)
  local list = {}
  for s = math.max(1, room.seq - HISTORY + 1), room.seq do
    list[#list + 1] = room.history[(s - 1) % HISTORY + 1]
  end
  return list
end

-- The room's members as encoded {"id":..,"name":..} objects, by id.
local function member_list(room)
  local sorted = {}
  for ws in pairs(room.members) do sorted[#sorted + 1] = ws end
  table.sort(sorted, function(a, b) return a.id < b.id end)
  local list = {}
  for i, ws in ipairs(sorted) do list[i] = cjson.encode { id = ws.id, name = ws.data.name } end
  return list
end

-- closing: the connection is gone (it has left its topics, and its
-- methods raise by now).
local function leave_room(ws, closing)
  local room = ws.data.room
  if not room then return end
  ws.data.room = nil
  if not closing then ws:unsubscribe(room.topic) end
  room.members[ws] = nil
  room.count = room.count - 1
  if room.count == 0 then room.idle_since = duplex.now() end
  app:publish(room.topic, cjson.encode { type = "leave", room = room.name, id = ws.id, name = ws.data.name })
end

local function enter_room(ws, room)
  leave_room(ws)
  ws.data.room = room
  room.members[ws] = true
  room.count = room.count + 1
  ws:subscribe(room.topic)
  ws:send(encode_with_arrays({ type = "welcome", id = ws.id, name = ws.data.name, room = room.name },
    { { "members", member_list(room) }, { "history", history_of(room) } }))
  app:publish(room.topic, cjson.encode { type = "join", room = room.name, id = ws.id, name = ws.data.name })
end

---------------------------------------------------------------------------
-- Requests
---------------------------------------------------------------------------

local requests = {}

function requests.say(ws, msg)
  local text = msg.text
  if type(text) ~= "string" or not text:find("%S") then
    return send_error(ws, "bad_text", '"text" must be a string that is not only blanks')
  end
  if chars(text) > MAX_TEXT then
    return send_error(ws, "too_long", "a message may hold at most " .. MAX_TEXT .. " characters")
  end
  local room = ws.data.room
  room.seq = room.seq + 1
  local line = cjson.encode { type = "message", room = room.name, id = ws.id, name = ws.data.name,
                              text = text, seq = room.seq, time = now_ms() }
  room.history[(room.seq - 1) % HISTORY + 1] = line
  ws.data.typed_at = nil       -- the next keystroke may show again at once
  app:publish(room.topic, line)
end

function requests.typing(ws)
  local t = duplex.now()
  local last = ws.data.typed_at
  if last and t - last < TYPING_INTERVAL then return end
  ws.data.typed_at = t
  local room = ws.data.room
  ws:publish(room.topic, cjson.encode { type = "typing", room = room.name, id = ws.id, name = ws.data.name })
end

function requests.nick(ws, msg)
  local name, why = check_name(msg.name)
  if not name then return send_error(ws, "bad_name", why) end
  local old = ws.data.name
  if name == old then return end
  ws.data.name = name
  local room = ws.data.room
  app:publish(room.topic, cjson.encode { type = "nick", room = room.name, id = ws.id, old = old, name = name })
end

function requests.join(ws, msg)
  local name, why = check_room(msg.room)
  if not name then return send_error(ws, "bad_room", why) end
  if name == ws.data.room.name then
    return send_error(ws, "same_room", "you are in " .. name .. " already")
  end
  local room, word, message = get_room(name)
  if not room then return send_error(ws, word, message) end
  enter_room(ws, room)
end

---------------------------------------------------------------------------
-- The app
---------------------------------------------------------------------------

app:ws("/chat", {

  upgrade = function(req)
    local q = duplex.parse_query(req.query)
    req.data = { asked_name = q.name, asked_room = q.room }
  end,

  open = function(ws)
    local d = ws.data
    local complaints = {}
    local name, why = check_name(d.asked_name)
    if not name and d.asked_name and d.asked_name ~= "" then complaints[#complaints + 1] = { "bad_name", why } end
    d.name = name or ("guest" .. ws.id)
    local room_name
    room_name, why = check_room(d.asked_room)
    if not room_name and d.asked_room and d.asked_room ~= "" then complaints[#complaints + 1] = { "bad_room", why } end
    d.asked_name, d.asked_room = nil, nil
    local room, word, message = get_room(room_name or DEFAULT_ROOM)
    if not room then
      complaints[#complaints + 1] = { word, message }
      room = rooms[DEFAULT_ROOM]
    end
    enter_room(ws, room)
    for _, c in ipairs(complaints) do send_error(ws, c[1], c[2]) end
  end,

  message = function(ws, data, binary)
    if binary then return send_error(ws, "binary", "messages are JSON text") end
    local msg = cjson.decode(data)
    if msg == nil then return send_error(ws, "bad_json", "not JSON") end
    if type(msg) ~= "table" or type(msg.type) ~= "string" then
      return send_error(ws, "bad_message", 'expected a JSON object with a string "type"')
    end
    local handle = requests[msg.type]
    if not handle then
      return send_error(ws, "unknown_type", "unknown type (the types are say, typing, nick and join)")
    end
    handle(ws, msg)
  end,

  close = function(ws)
    leave_room(ws, true)
  end,
})

return app
