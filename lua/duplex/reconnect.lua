-- duplex.connect(url, handlers, { reconnect = true | { ... } }): a client
-- that outlives its connections, for bots and bridges (the Lua side of
-- duplex.js's behaviour). One object for the app to hold; behind it, one
-- connection after another:
--
--   local c = duplex.connect("ws://10.0.0.7:8080/feed", {
--     open = function(c) end,                 -- each time a connection opens
--     message = function(c, data, binary) end,
--     state = function(c, state, detail) end, -- "connecting", "open", "reconnecting", "closed"
--     close = function(c, code, reason) end,  -- once, when it is closed for good
--   }, { reconnect = { min = 0.5, max = 10, stable = 5, queue = 100, grace = 2 } })
--   c:subscribe("news", {                     -- duplex.1: a topic, with the route's consent
--     message = function(c, data, position, binary) end,  -- a publication, in order
--     recovered = function(c, info) end,      -- after a reconnect: info.missed came again
--     lost = function(c, reason) end,         -- what was missed cannot be had ("epoch", ...)
--     refused = function(c, reason) end,      -- the app said no (without it: lost)
--   })
--
-- After a drop it connects again after a delay drawn between min and a
-- ceiling that doubles from min to max at each failed attempt (full
-- jitter, so a server that restarts is not hit by every client at once),
-- back to min once a connection stayed open `stable` seconds. c:send
-- queues while no connection is open (at most `queue` messages; past it,
-- and once closed for good, it returns false) and the queue goes out in
-- order, before `open`, when one opens. It stops for good on c:close(),
-- on a close code 4000-4999 from the server (the app's "do not come
-- back"), and on an upgrade refused with an HTTP 4xx other than 408 and
-- 429; anything else (a network error, 1001 from a server shutting
-- down, 1006, a 5xx) is retried.
--
-- It offers the subprotocol duplex.1 unless the `protocols` option
-- leaves it out, and speaks it as duplex.js does (README, "duplex.js"):
-- the app's binary messages tagged 0x00 both ways (the app sees its own
-- bytes), controls 0x01 in JSON, heartbeats 0x02 counted as traffic,
-- publications 0x03 in their envelope. Each topic's last position is
-- kept, and every connection subscribes to every topic again from it
-- before the queue goes out, so the server sends what was missed, in
-- order, before new publications (recovered), or says it cannot (lost).
-- After the server's hello a connection that brings nothing for twice
-- its ping interval and `grace` seconds is dropped as dead (reason
-- "dead") and the next one made.
local M = {}

local Client = {}
Client.__index = Client

local json = require "duplex.json"

local DEFAULTS = { min = 0.5, max = 10, stable = 5, queue = 100, grace = 2 }
local DUPLEX1 = "duplex.1"
M.PROTOCOL = DUPLEX1

-- The HTTP status of a refused upgrade, from the core client's reason
-- ("handshake: upgrade refused: HTTP 403"), or nil.
local function refused_status(reason)
  return tonumber(type(reason) == "string" and reason:match("upgrade refused: HTTP (%d+)") or nil)
end

local function for_good(code, reason)
  if code >= 4000 and code <= 4999 then return true end
  local status = refused_status(reason)
  return status ~= nil and status >= 400 and status < 500 and status ~= 408 and status ~= 429
end

-- policy: true or a table of the keys of DEFAULTS (checked here, raised
-- at level).
function M.policy(given, level)
  local p = {}
  for k, v in pairs(DEFAULTS) do p[k] = v end
  if given == true then return p end
  if type(given) ~= "table" then
    error("bad argument #3 to 'connect' (option 'reconnect': true or a table expected, got " .. type(given) .. ")",
      level + 1)
  end
  for k, v in pairs(given) do
    if DEFAULTS[k] == nil then
      error("bad argument #3 to 'connect' (reconnect: unknown key '" .. tostring(k) .. "')", level + 1)
    end
    if type(v) ~= "number" or v ~= v or v < 0 or v == math.huge or (k == "min" and v == 0) then
      error("bad argument #3 to 'connect' (reconnect." .. k .. " must be a " .. (k == "min" and "positive" or
        "non-negative") .. " number)", level + 1)
    end
    p[k] = v
  end
  if p.max < p.min then error("bad argument #3 to 'connect' (reconnect.max is below reconnect.min)", level + 1) end
  return p
end

local function call(c, name, ...)
  local fn = c.handlers[name]
  if fn then fn(c, ...) end
end

local function set_state(c, state, detail)
  c.state_name = state
  call(c, "state", state, detail or {})
end

local dial

local function schedule(c, detail)
  local ceiling = math.min(c.policy.max, c.policy.min * 2 ^ c.attempt)
  local delay = c.policy.min + math.random() * (ceiling - c.policy.min)
  c.attempt = c.attempt + 1
  detail.attempt, detail.delay = c.attempt, delay
  set_state(c, "reconnecting", detail)
  c.timer = c.core.timer(delay, 0, function()
    c.timer = nil
    dial(c)
  end)
end

local function stop_watch(c)
  if c.dead then c.dead:stop() c.dead = nil end
end

local function finish(c, code, reason)
  if c.done then return end
  c.done = true
  c.queue = {}
  stop_watch(c)
  set_state(c, "closed", { code = code, reason = reason })
  call(c, "close", code, reason)
end

-- The connection that was open since opened_at (nil: it never opened)
-- ended with code and reason without the app asking: closed for good, or
-- the next attempt.
local function dropped(c, code, reason, opened_at)
  if c.done then return end
  if c.closing or for_good(code, reason) then return finish(c, code, reason) end
  if opened_at and c.core.now() - opened_at >= c.policy.stable then c.attempt = 0 end
  schedule(c, { code = code, reason = reason })
end

-- ---- duplex.1 (duplex.js's subprotocol; see README "duplex.js") ----

-- A control (0x01, JSON) on the open duplex.1 connection.
local function control(c, m)
  if c.conn and c.duplex1 and c.conn:is_open() then c.conn:send("\1" .. json.encode(m), true) end
end

-- What goes on the wire for a send: the app's binary message tagged 0x00 on duplex.1.
local function wire(c, data, binary)
  if c.duplex1 and binary then return "\0" .. data end
  return data
end

-- Subscribes topic on the open connection from its last position; a
-- server that does not speak duplex.1 cannot: refused ("unsupported").
local function ask(c, topic)
  local t = c.topics[topic]
  if c.duplex1 then return control(c, { t = "sub", topic = topic, since = t.pos }) end
  c.topics[topic] = nil
  local fn = t.h.refused or t.h.lost
  if fn then fn(c, "unsupported") end
end

-- The dead-connection watch: nothing received for dead_span seconds (twice
-- the server's ping interval and the grace) drops conn and reconnects.
local watch

local function drop(c, why)
  stop_watch(c)
  local conn, opened_at = c.conn, c.opened_at
  if c.done or not conn then return end
  c.conn, c.opened_at, c.current = nil, nil, nil   -- its close event, later, is not ours
  conn:close(1000)
  dropped(c, 1006, why, opened_at)
end

function watch(c, conn)
  c.dead = nil
  if c.conn ~= conn then return end
  local left = c.last_rx + c.dead_span - c.core.now()
  if left <= 0 then return drop(c, "dead") end
  c.dead = c.core.timer(left, 0, function() watch(c, conn) end)
end

-- A binary message of the duplex.1 connection: the tag byte says whose.
local function tagged(c, conn, data)
  local tag = data:byte(1)
  if tag == 0 then return call(c, "message", data:sub(2), true) end
  if tag == 1 then
    local m = json.decode(data:sub(2))
    if not m then return end
    local t = type(m.topic) == "string" and c.topics[m.topic] or nil
    if m.t == "hello" then
      c.dead_span = type(m.ping) == "number" and m.ping > 0 and m.ping * 2 + c.policy.grace or 0
      if c.dead_span > 0 and not c.dead then watch(c, conn) end
    elseif t and m.t == "sub" and not m.ok then
      c.topics[m.topic] = nil
      local fn = t.h.refused or t.h.lost
      if fn then fn(c, m.reason) end
    elseif t and m.t == "recovered" then
      if m.ok then
        if t.h.recovered then t.h.recovered(c, m) end
        return
      end
      t.pos = m.position ~= "" and m.position or nil     -- the app reloads its state as of now
      if t.h.lost then t.h.lost(c, m.reason) end
    end
  elseif tag == 3 and #data >= 4 then
    local n = data:byte(2) * 256 + data:byte(3)
    local plen = data:byte(4 + n)
    local flags = plen and data:byte(5 + n + plen)
    if not flags then return end                        -- cut short: not ours to guess
    local t = c.topics[data:sub(4, 3 + n)]
    if not t then return end
    local pos = data:sub(5 + n, 4 + n + plen)
    if pos == "" then pos = nil else t.pos = pos end
    if t.h.message then t.h.message(c, data:sub(6 + n + plen), pos, flags % 2 == 1) end
  end                                                   -- 0x02 a heartbeat: traffic, nothing more
end

function dial(c)
  if c.done then return end
  local conn_of_dial
  local wrapped = {
    open = function(conn)
      if c.current ~= conn_of_dial then return end
      c.conn, c.opened_at = conn, c.core.now()
      c.duplex1, c.dead_span, c.last_rx = conn:protocol() == DUPLEX1, 0, c.core.now()
      -- Every topic again, from its position, before the queue (the
      -- server answers in order).
      local names = {}
      for topic in pairs(c.topics) do names[#names + 1] = topic end
      for _, topic in ipairs(names) do
        if c.conn == conn and c.topics[topic] then ask(c, topic) end
      end
      local queued, sent = c.queue, 0
      for i, m in ipairs(queued) do                -- what this connection refuses stays for the next
        if not conn:send(wire(c, m[1], m[2]), m[2]) then break end
        sent = i
      end
      c.queue = {}
      for i = sent + 1, #queued do c.queue[#c.queue + 1] = queued[i] end
      if c.conn ~= conn then return end
      set_state(c, "open", { attempt = c.attempt, protocol = conn:protocol() })
      call(c, "open")
    end,
    message = function(conn, data, binary)
      if c.conn ~= conn then return end
      c.last_rx = c.core.now()
      if c.duplex1 and binary then return tagged(c, conn, data) end
      call(c, "message", data, binary)
    end,
    close = function(conn, code, reason)
      if c.current ~= conn_of_dial then return end     -- dropped as dead already
      local was_open = c.opened_at
      c.conn, c.opened_at, c.current = nil, nil, nil
      stop_watch(c)
      dropped(c, code, reason, was_open)
    end,
  }
  local conn, err = c.connect(c.url, wrapped, c.options)
  if not conn then                               -- the host did not resolve, no socket: later
    schedule(c, { code = 1006, reason = err })
    return
  end
  conn_of_dial, c.current = conn, conn
end

--- Sends data (queued while no connection is open). Returns true, or
-- false when the queue is full or the client is closed for good, or
-- false, message, name when the open connection refused it (its send
-- queue past max_backpressure).
function Client:send(data, binary)
  if self.done or self.closing then return false end
  if self.conn and self.conn:is_open() then
    local ok, err, name = self.conn:send(wire(self, data, binary), binary)
    if ok then return true end
    return false, err, name
  end
  if #self.queue >= self.policy.queue then return false end
  self.queue[#self.queue + 1] = { data, binary }
  return true
end

--- Closes for good: the open connection with code (default 1000), or the
-- wait for the next attempt.
function Client:close(code)
  if self.done or self.closing then return end
  self.closing = true
  stop_watch(self)
  if self.timer then self.timer:stop() self.timer = nil end
  if self.conn then
    self.conn:close(code or 1000)                -- its close event finishes
  else
    local pending = self.current                 -- a connection not yet open: dropped unheard
    self.current = nil
    if pending then pending:close() end
    finish(self, code or 1000, "closed by the client")
  end
end

--- Subscribes to topic's publications (duplex.1), with the consent of
-- the route's subscribe(ws, topic) handler, and after every reconnect
-- again from the last position heard. handlers (all optional):
-- message(c, data, position, binary), recovered(c, info),
-- lost(c, reason), refused(c, reason) (without it: lost). Subscribing
-- again replaces the handlers and keeps the position. Returns true, or
-- false once closed for good.
function Client:subscribe(topic, handlers)
  if type(topic) ~= "string" then
    error("bad argument #1 to 'subscribe' (string expected, got " .. type(topic) .. ")", 2)
  end
  if handlers ~= nil and type(handlers) ~= "table" then
    error("bad argument #2 to 'subscribe' (table expected, got " .. type(handlers) .. ")", 2)
  end
  for k, v in pairs(handlers or {}) do
    if k ~= "message" and k ~= "recovered" and k ~= "lost" and k ~= "refused" then
      error("bad argument #2 to 'subscribe' (unknown handler '" .. tostring(k) .. "')", 2)
    end
    if type(v) ~= "function" then
      error("bad argument #2 to 'subscribe' (handler '" .. k .. "': function expected, got " .. type(v) .. ")", 2)
    end
  end
  if self.done or self.closing then return false end
  local old = self.topics[topic]
  self.topics[topic] = { h = handlers or {}, pos = old and old.pos }
  if self.conn and self.conn:is_open() then ask(self, topic) end
  return true
end

--- Leaves topic (the route's unsubscribe(ws, topic) hears it). Returns
-- false when it was not subscribed.
function Client:unsubscribe(topic)
  if not self.topics[topic] then return false end
  self.topics[topic] = nil
  control(self, { t = "unsub", topic = topic })
  return true
end

--- The last position heard on topic, or nil.
function Client:position(topic)
  local t = self.topics[topic]
  return t and t.pos
end

--- The subprotocol of the open connection ("duplex.1"), or nil.
function Client:protocol()
  return self.conn and self.conn:protocol()
end

function Client:is_open() return self.conn ~= nil and self.conn:is_open() end
function Client:state() return self.state_name end
function Client:queued() return #self.queue end

-- connect: the plain duplex.connect (url, handlers, options).
function M.connect(core, connect, url, handlers, options, policy)
  local c = setmetatable({ core = core, connect = connect, url = url, handlers = handlers, options = options,
    policy = policy, queue = {}, attempt = 0, state_name = "connecting", topics = {} }, Client)
  set_state(c, "connecting", {})
  dial(c)
  return c
end

return M
