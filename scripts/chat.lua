-- Chat: rooms, nicknames, join and leave notices, a typing indicator, the
-- last 50 messages of a room for whoever joins it, and what a page missed
-- while it was away. Rooms, their history and their members live in
-- duplex (history, presence, publish), not in this script's tables, so the
-- chat works the same with --workers and across nodes joined by a broker.
--
--   duplex run scripts/chat.lua --port 8080
--   then open http://localhost:8080/?name=ada&room=lobby in two browser tabs
--   (the page: scripts/chat/index.html), or connect a WebSocket to
--   ws://localhost:8080/chat?name=ada&room=lobby
--
-- The query parameters are optional: without a valid name a client is
-- "guest<n>", without a valid room it starts in "lobby" (an invalid one
-- also earns it an error message, below). `since` is the position of the
-- last message a page got in that room (its "pos"): a page that reconnects
-- with it gets exactly what it missed. Each room is two topics:
-- "chat:<room>", what is said (with history: the last 50 messages, for an
-- hour), and "room:<room>", the notices (presence: who is in the room).
--
-- Names: 1 to 24 characters, each an ASCII letter, digit, "_", "-" or ".",
-- or any non-ASCII character (böb, 李). Names are labels, not accounts: two
-- clients may carry the same one (a tab that reconnects may briefly meet
-- its old self). Rooms: 1 to 32 ASCII letters, digits, "_", "-" or ".".
--
-- Protocol: every message, both ways, is one JSON object in a text message,
-- with a "type". `id` names a connection (a string, unique across workers
-- and nodes; welcome tells a client its own), `time` is milliseconds since
-- 1970 (server clock).
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
--   {"type":"welcome","id":"7.k3x9","name":"ada","room":"lobby",
--    "members":[{"id":"7.k3x9","name":"ada"},...],"resumed":false}
--        to a client entering a room (on connect and on each join): the
--        room's members (the client among them). Then come the room's
--        last 50 messages, oldest first ("replay":true), or, when resumed
--        is true (the URL's since was recovered), the messages it missed;
--        resumed false after a since means the page's log is stale: it
--        starts again from the 50 that follow
--   {"type":"message","room":"lobby","id":"7.k3x9","name":"ada","text":"hello","time":...,
--    "seq":12,"pos":"e5k2m0qa:12"[,"replay":true]}
--        something said in the room, to every member, the speaker
--        included; seq counts the room's messages from 1, pos is the
--        position to come back with
--   {"type":"join","room":"lobby","id":"7.k3x9","name":"ada"}
--        to every member, the newcomer included (after its welcome and
--        the history)
--   {"type":"leave","room":"lobby","id":"7.k3x9","name":"ada"}
--        to the members left behind (a close or a join elsewhere)
--   {"type":"nick","room":"lobby","id":"7.k3x9","old":"ada","name":"bob"}
--        to every member, the renamed one included
--   {"type":"typing","room":"lobby","id":"7.k3x9","name":"ada"}
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
--
-- A room's history is kept for an hour after its last message, so a page
-- reloaded in an empty room finds it again. Memory is bounded by the
-- message rate: at most 5 messages a second per client for an hour, 50
-- per room, 1000 characters each. A message over 64 KiB is not read at
-- all: the connection is closed with 1009.

local duplex = require "duplex"
local cjson = require "cjson.safe"

local HISTORY = 50            -- messages kept per room ...
local HISTORY_TTL = 3600      -- ... for an hour after the last
local MAX_TEXT = 1000         -- characters of a message
local MAX_NAME = 24           -- characters of a name
local MAX_ROOM_NAME = 32
local TYPING_INTERVAL = 1     -- seconds between two typing events passed on
local DEFAULT_ROOM = "lobby"

local concat = table.concat

local function said_topic(room) return "chat:" .. room end
local function notice_topic(room) return "room:" .. room end

-- A said message, as published (JSON), reaches a page with its position:
-- its seq and pos (and replay, when it is sent again to a page catching up).
local function with_position(_, data, pos, _, replay)
  return data:sub(1, -2) .. ',"seq":' .. pos:match(":(%d+)$") .. ',"pos":"' .. pos .. '"'
    .. (replay and ',"replay":true}' or "}")
end

-- The page lives beside this script: scripts/chat/index.html.
local here = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")) or "."
local app = duplex.app {
  static = here .. "/chat",
  max_message = 64 * 1024,
  max_message_rate = 5,             -- messages a client may send a second ...
  message_burst = 30,               -- ... after 30 at once;
  message_rate_policy = "drop",     -- past that, dropped unanswered
  history = { ["chat:"] = { size = HISTORY, ttl = HISTORY_TTL, frame = with_position } },
}

-- A connection's id in the chat: ws.id is unique in its process only, so
-- the process's name (hashed short) goes with it. A worker's name is known
-- once it listens, so it is asked each time (and the hash kept).
local tags = {}
local function tag_of(node)
  local tag = tags[node]
  if not tag then
    local h = 0
    for i = 1, #node do h = (h * 31 + node:byte(i)) % 4294967296 end
    tag = ("%06x"):format(h % 16777216)
    tags[node] = tag
  end
  return tag
end

local function chat_id(ws)
  return ws.id .. "." .. tag_of(app:node())
end
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

-- The members of a room (from its presence) as encoded {"id":..,"name":..}
-- objects, in the order they joined on each process.
local function member_list(members)
  table.sort(members, function(a, b)
    if a.node ~= b.node then return a.node < b.node end
    return a.id < b.id
  end)
  local list = {}
  for i, m in ipairs(members) do
    list[i] = cjson.encode { id = m.id .. "." .. tag_of(m.node), name = m.info.name }
  end
  return list
end

-- A notice (join, leave, nick) told to this process's members of the
-- room: every process gets the presence event and tells its own.
local function notice(room, kind, m, extra)
  local obj = { type = kind, room = room, id = m.id .. "." .. tag_of(m.node), name = m.info.name }
  for k, v in pairs(extra or {}) do obj[k] = v end
  app:publish_local(notice_topic(room), cjson.encode(obj))
end

app:on_join(function(topic, m)
  local room = topic:match("^room:(.*)$")
  if m.info.was then
    notice(room, "nick", m, { old = m.info.was })
  else
    notice(room, "join", m)
  end
end)

app:on_leave(function(topic, m)
  notice(topic:match("^room:(.*)$"), "leave", m)
end)

local function leave_room(ws)
  local room = ws.data.room
  if not room then return end
  ws.data.room = nil
  ws:unsubscribe(said_topic(room))
  ws:unsubscribe(notice_topic(room))      -- leaves its presence: the others hear "leave"
end

-- Enters room: welcome (with the members), then the room's last messages
-- or, with since, what the client missed, then its join notice. With a
-- broker the members list comes back later: the client may have gone or
-- moved on by then.
local function enter_room(ws, room, since)
  leave_room(ws)
  ws.data.room = room
  app:presence(notice_topic(room), function(members)
    if ws.data.gone or ws.data.room ~= room then return end
    members = members or {}
    members[#members + 1] = { id = ws.id, node = app:node(), info = { name = ws.data.name } }
    local function welcome(resumed)
      ws:send(encode_with_arrays({ type = "welcome", id = chat_id(ws), name = ws.data.name, room = room,
        resumed = resumed }, { { "members", member_list(members) } }))
    end
    local function recovered(_, _, result)
      welcome(since ~= nil and result.ok)
      if since and not result.ok then          -- the page's log is stale: the last 50 instead
        ws:subscribe(said_topic(room), { last = HISTORY })
      end
    end
    ws:subscribe(said_topic(room), since and { since = since, recovered = recovered }
      or { last = HISTORY, recovered = recovered })
    ws:subscribe(notice_topic(room), { presence = { name = ws.data.name } })
  end)
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
  ws.data.typed_at = nil       -- the next keystroke may show again at once
  app:publish(said_topic(room), cjson.encode { type = "message", room = room, id = chat_id(ws),
    name = ws.data.name, text = text, time = now_ms() })
end

function requests.typing(ws)
  local t = duplex.now()
  local last = ws.data.typed_at
  if last and t - last < TYPING_INTERVAL then return end
  ws.data.typed_at = t
  local room = ws.data.room
  ws:publish(notice_topic(room), cjson.encode { type = "typing", room = room, id = chat_id(ws),
    name = ws.data.name })
end

function requests.nick(ws, msg)
  local name, why = check_name(msg.name)
  if not name then return send_error(ws, "bad_name", why) end
  local old = ws.data.name
  if name == old then return end
  ws.data.name = name
  -- joining the presence again replaces the table: the room hears a join with "was"
  ws:subscribe(notice_topic(ws.data.room), { presence = { name = name, was = old } })
end

function requests.join(ws, msg)
  local room, why = check_room(msg.room)
  if not room then return send_error(ws, "bad_room", why) end
  if room == ws.data.room then
    return send_error(ws, "same_room", "you are in " .. room .. " already")
  end
  enter_room(ws, room)
end

---------------------------------------------------------------------------
-- The app
---------------------------------------------------------------------------

app:ws("/chat", {

  upgrade = function(req)
    local q = duplex.parse_query(req.query)
    req.data = { asked_name = q.name, asked_room = q.room, since = q.since }
  end,

  open = function(ws)
    local d = ws.data
    local complaints = {}
    local name, why = check_name(d.asked_name)
    if not name and d.asked_name and d.asked_name ~= "" then complaints[#complaints + 1] = { "bad_name", why } end
    d.name = name or ("guest" .. ws.id)
    local room
    room, why = check_room(d.asked_room)
    if not room and d.asked_room and d.asked_room ~= "" then complaints[#complaints + 1] = { "bad_room", why } end
    local since = d.since
    if since and not since:find("^[0-9a-z]+:%d+$") then since = nil end   -- not a position: ignored
    d.asked_name, d.asked_room, d.since = nil, nil, nil
    enter_room(ws, room or DEFAULT_ROOM, room and since)
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
    ws.data.gone = true       -- it left its topics and their presence with its close
  end,
})

return app
