-- Collaborative editing of one shared plain-text document, with operational
-- transformation around this server (the Jupiter scheme): every client sends
-- an operation made on the revision it last saw; the server transforms it
-- past the operations committed since, applies it, bumps the revision, acks
-- the sender and broadcasts the transformed operation to everyone else.
--
--   duplex run scripts/collab.lua --port 8080
--   then open http://localhost:8080/?name=ada in two browser tabs (the page:
--   scripts/collab/index.html), or connect to ws://localhost:8080/collab?name=ada
--
-- Operations, positions in Unicode code points and the transform are in
-- scripts/collab/ot.lua (and, for the page, scripts/collab/ot.js).
--
-- Messages are JSON text.
--   client -> server
--     {"type":"op","rev":R,"ops":[{"pos":P,"insert":"text"},{"pos":P,"delete":N}]}
--         an operation (a list of components, applied in order) made on revision R
--     {"type":"resync"}      asks for a fresh snapshot
--   server -> client
--     {"type":"snapshot","rev":R,"text":"...","peers":N,"epoch":"...","reason":"join"|"resync"|"behind"}
--         the whole document at revision R: on open, on request, and instead
--         of applying an op made on a revision older than the op log keeps,
--         or too costly to transform past all that came since ("behind":
--         that op is dropped); epoch names this run of the server
--     {"type":"ack","rev":R}  your op is committed; with it the document is at
--         revision R (an op that the transform emptied commits nothing and is
--         acked with the current revision)
--     {"type":"op","rev":R,"ops":[...]}   another client's op, transformed;
--         it turns revision R-1 into revision R
--     {"type":"peers","count":N,"names":["ada","bob"]}   on every join and leave
--     {"type":"error","name":NAME,"message":"..."}   the message was refused and
--         nothing changed; NAME is one of bad_json, bad_message, bad_op,
--         out_of_range, bad_rev, too_large
--     {"type":"resumed","rev":R,"peers":N}   see below
--
-- Resuming after a drop: a client that reconnects with
-- ?client=ID&epoch=E&since=R (ID: letters, digits, - and _, the same on
-- every connection of that client; E: the epoch of its snapshot; R: the
-- revision it had reached) gets, instead of a snapshot, every op committed
-- after R as it would have had them: its own op (at most one, the one it
-- had in flight) as an ack, the others' as ops; then "resumed". It then
-- sends again the op still in flight if no ack came for it. When the log no
-- longer reaches back to R, or the server has restarted since (another
-- epoch), it gets a snapshot as a new client does.
-- A client keeps one op in flight (sent, not yet acked) and buffers later
-- edits; ops from the server are transformed past both (see the page).
local duplex = require "duplex"
local cjson = require "cjson.safe"

-- The page and the OT module live beside this script: scripts/collab/.
local here = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")) or "."
local ot = dofile(here .. "/collab/ot.lua")

local MAX_DOC_BYTES = 256 * 1024   -- the document's UTF-8 size, at most
local MAX_COMPONENTS = 100         -- per op (the page sends one or two, a few when it buffers)
-- An op is transformed component by component past every component
-- committed since its revision: more pairs than this and the client gets a
-- snapshot instead, as when it is behind the log (bounds the CPU one
-- message can take).
local MAX_TRANSFORM_PAIRS = 50000
local LOG_MAX = 1000               -- committed ops kept for transforming late ops,
local LOG_MAX_BYTES = 1024 * 1024  -- and the text they insert, at most

local app = duplex.app { static = here .. "/collab", max_message = 1024 * 1024 }

local doc, doc_len = "", 0         -- the text (UTF-8) and its length in code points
local rev = 0                      -- revision: number of ops committed
-- history[r] = { ops = the op that made revision r, len_before = the length
-- at r - 1, bytes = the bytes it inserts, client = its sender's client id
-- or nil }, for r in [first, rev]
local history, first, history_bytes = {}, 1, 0
local peers = {}                   -- ws -> name
local by_client = {}               -- client id -> its current connection
-- Names this run of the server, so that a revision number from another run
-- is never taken for one of this run.
local function new_epoch()
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(8)
  if f then f:close() end
  if bytes and #bytes == 8 then
    return (bytes:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
  end
  return ("%x-%x-%s"):format(os.time(), math.random(0, 0x7fffffff), tostring({}):match("%x+$") or "")
end
local epoch = new_epoch()
local peer_count = 0

local function send(ws, msg)
  ws:send(cjson.encode(msg))
end

local function fail(ws, name, message)
  send(ws, { type = "error", name = name, message = message })
end

local function snapshot(ws, reason)
  send(ws, { type = "snapshot", rev = rev, text = doc, peers = peer_count, epoch = epoch, reason = reason })
end

local function announce_peers()
  local names = {}
  for _, name in pairs(peers) do names[#names + 1] = name end
  table.sort(names)
  app:publish("collab", cjson.encode { type = "peers", count = peer_count, names = names })
end

-- Length of the document at revision r, which must be in [first - 1, rev].
local function length_at(r)
  if r == rev then return doc_len end
  return history[r + 1].len_before
end

local function inserted_bytes(op)
  local n = 0
  for _, c in ipairs(op) do n = n + (c.insert and #c.insert or 0) end
  return n
end

local function commit(op, client)
  rev = rev + 1
  local bytes = inserted_bytes(op)
  history[rev] = { ops = op, len_before = doc_len, bytes = bytes, client = client }
  history_bytes = history_bytes + bytes
  while rev - first + 1 > LOG_MAX or (history_bytes > LOG_MAX_BYTES and first < rev) do
    history_bytes = history_bytes - history[first].bytes
    history[first] = nil
    first = first + 1
  end
end

local function receive_op(ws, msg)
  local base = msg.rev
  if type(base) ~= "number" or base ~= math.floor(base) then
    return fail(ws, "bad_rev", "rev must be an integer (the revision the op was made on)")
  end
  if base < 0 or base > rev then
    return fail(ws, "bad_rev", ("rev %s is not a revision of this document (it is at %d)"):format(
      cjson.encode(base), rev))
  end
  base = math.floor(base)
  if base < first - 1 then
    -- Too old to transform: the client starts over from the current text.
    return snapshot(ws, "behind")
  end
  local op = msg.ops
  local _, err, name = ot.check(op, length_at(base), MAX_COMPONENTS)
  if err then return fail(ws, name, err) end
  local pairs_to_transform = 0
  for r = base + 1, rev do pairs_to_transform = pairs_to_transform + #history[r].ops end
  if pairs_to_transform * #op > MAX_TRANSFORM_PAIRS then return snapshot(ws, "behind") end
  local added = inserted_bytes(op)
  if added > MAX_DOC_BYTES then
    return fail(ws, "too_large", ("op inserts %d bytes; the document holds at most %d"):format(added, MAX_DOC_BYTES))
  end
  for r = base + 1, rev do
    op = ot.transform(op, history[r].ops)
  end
  if #op == 0 then
    -- Everything it did was already done (e.g. a delete of deleted text).
    return send(ws, { type = "ack", rev = rev })
  end
  local text = ot.apply(doc, op)
  if #text > MAX_DOC_BYTES then
    return fail(ws, "too_large", ("the document would be %d bytes; it holds at most %d"):format(#text, MAX_DOC_BYTES))
  end
  local len = doc_len
  for _, c in ipairs(op) do
    len = len + (c.insert and ot.length(c.insert) or -(c.delete or 0))
  end
  commit(op, ws.data.client)
  doc, doc_len = text, len
  send(ws, { type = "ack", rev = rev })
  ws:publish("collab", cjson.encode { type = "op", rev = rev, ops = op })
end

-- A display name from the query's name: valid UTF-8, no control
-- characters, at most 32 code points; nil when nothing is left.
local function clean_name(s)
  if not s then return nil end
  if not ot.valid_utf8(s) then return nil end
  s = s:gsub("%c", "")
  s = s:sub(1, ot.offset(s, math.min(ot.length(s), 32)) - 1)
  return s ~= "" and s or nil
end

-- Sends what a client coming back from revision `since` missed, if the log
-- still holds it; returns whether it did.
local function resume(ws, since)
  if not since or since < first - 1 or since > rev then return false end
  local client = ws.data.client
  for r = since + 1, rev do
    local entry = history[r]
    if entry.client == client then
      send(ws, { type = "ack", rev = r })
    else
      send(ws, { type = "op", rev = r, ops = entry.ops })
    end
  end
  send(ws, { type = "resumed", rev = rev, peers = peer_count })
  return true
end

app:ws("/collab", {
  upgrade = function(req)
    local q = duplex.parse_query(req.query)
    local client = q.client
    client = client and client:match("^[%w_%-]+$") and #client <= 64 and client or nil
    local since
    if client and q.epoch == epoch then
      since = tonumber(q.since or "")
      since = since and since == math.floor(since) and math.floor(since) or nil
    end
    req.data = { name = clean_name(q.name), client = client, since = since }
  end,

  open = function(ws)
    local client = ws.data.client
    if client then
      -- A client that comes back while its old connection still looks open
      -- to us: nothing more is taken from the old one, so an op it carried
      -- is either in the log already or will be sent again, never twice.
      local old = by_client[client]
      if old then
        old.data.replaced = true
        old:unsubscribe("collab")
        peers[old] = nil
        peer_count = peer_count - 1
        old:close(4000, "replaced by a new connection")
      end
      by_client[client] = ws
    end
    ws.data.name = ws.data.name or ("guest" .. ws.id)
    peers[ws] = ws.data.name
    peer_count = peer_count + 1
    ws:subscribe("collab")
    if not resume(ws, ws.data.since) then snapshot(ws, "join") end
    announce_peers()
  end,

  message = function(ws, data, binary)
    if ws.data.replaced then return end
    if binary then return fail(ws, "bad_message", "messages are JSON text, not binary") end
    local msg, err = cjson.decode(data)
    if msg == nil then return fail(ws, "bad_json", "not JSON: " .. tostring(err)) end
    if type(msg) ~= "table" then return fail(ws, "bad_json", "a message must be a JSON object") end
    if msg.type == "op" then
      receive_op(ws, msg)
    elseif msg.type == "resync" then
      snapshot(ws, "resync")
    else
      fail(ws, "bad_message", "unknown message type " .. tostring(cjson.encode(msg.type)) .. " (expected op or resync)")
    end
  end,

  close = function(ws)
    if ws.data.client and by_client[ws.data.client] == ws then by_client[ws.data.client] = nil end
    if peers[ws] then
      peers[ws] = nil
      peer_count = peer_count - 1
      announce_peers()
    end
  end,
})

return app
