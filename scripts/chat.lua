-- Chat: every message goes to every connected client with its sender's
-- name; joins and leaves are announced.
--
--   duplex run scripts/chat.lua --port 8080
--   then open http://localhost:8080/?name=ada in two browser tabs, or
--   connect to ws://localhost:8080/chat?name=ada (the name is optional)
--
-- Lines sent to clients are plain text:
--   "ada: hello"            a message
--   "* ada joined"          a join notice
--   "* ada left"            a leave notice
-- A client renames itself by sending "/nick NEWNAME".

local members = {}   -- ws -> true, every open connection of this chat
local count = 0

local function broadcast(line)
  for ws in pairs(members) do
    ws:send(line)
  end
end

local function clean_name(s)
  s = (s or ""):gsub("[%c]", ""):sub(1, 32)
  if s == "" then return nil end
  return s
end

-- Decodes %XX escapes of a query value.
local function unescape(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local duplex = require "duplex"

-- The page lives beside this script: scripts/chat/index.html.
local here = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")) or "."
local app = duplex.app { static = here .. "/chat" }

app:ws("/chat", {

  upgrade = function(req)
    local name = req.query and req.query:match("name=([^&]*)")
    req.data = { name = clean_name(name and unescape(name)) }
  end,

  open = function(ws)
    count = count + 1
    ws.data.name = ws.data.name or ("guest" .. ws.id)
    members[ws] = true
    broadcast("* " .. ws.data.name .. " joined")
  end,

  message = function(ws, data, binary)
    if binary then
      ws:close(1003, "text messages only")
      return
    end
    local nick = data:match("^/nick%s+(.+)$")
    if nick then
      local new = clean_name(nick)
      if new then
        broadcast("* " .. ws.data.name .. " is now " .. new)
        ws.data.name = new
      end
      return
    end
    broadcast(ws.data.name .. ": " .. data)
  end,

  close = function(ws, code, reason)
    members[ws] = nil
    count = count - 1
    broadcast("* " .. ws.data.name .. " left")
  end,
})

return app
