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
--   }, { reconnect = { min = 0.5, max = 10, stable = 5, queue = 100 } })
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
local M = {}

local Client = {}
Client.__index = Client

local DEFAULTS = { min = 0.5, max = 10, stable = 5, queue = 100 }

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

local function finish(c, code, reason)
  if c.done then return end
  c.done = true
  c.queue = {}
  set_state(c, "closed", { code = code, reason = reason })
  call(c, "close", code, reason)
end

function dial(c)
  if c.done then return end
  local wrapped = {
    open = function(conn)
      c.conn, c.opened_at = conn, c.core.now()
      local queued, sent = c.queue, 0
      for i, m in ipairs(queued) do                -- what this connection refuses stays for the next
        if not conn:send(m[1], m[2]) then break end
        sent = i
      end
      c.queue = {}
      for i = sent + 1, #queued do c.queue[#c.queue + 1] = queued[i] end
      set_state(c, "open", { attempt = c.attempt })
      call(c, "open")
    end,
    message = function(_, data, binary) call(c, "message", data, binary) end,
    close = function(_, code, reason)
      local was_open = c.opened_at
      c.conn, c.opened_at = nil, nil
      if c.done then return end
      if c.closing or for_good(code, reason) then return finish(c, code, reason) end
      if was_open and c.core.now() - was_open >= c.policy.stable then c.attempt = 0 end
      schedule(c, { code = code, reason = reason })
    end,
  }
  local conn, err = c.connect(c.url, wrapped, c.options)
  if not conn then                               -- the host did not resolve, no socket: later
    schedule(c, { code = 1006, reason = err })
  end
end

--- Sends data (queued while no connection is open). Returns true, or
-- false when the queue is full or the client is closed for good, or
-- false, message, name when the open connection refused it (its send
-- queue past max_backpressure).
function Client:send(data, binary)
  if self.done then return false end
  if self.conn and self.conn:is_open() then
    local ok, err, name = self.conn:send(data, binary)
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
  if self.timer then self.timer:stop() self.timer = nil end
  if self.conn then
    self.conn:close(code or 1000)
  else
    finish(self, code or 1000, "closed by the client")
  end
end

function Client:is_open() return self.conn ~= nil and self.conn:is_open() end
function Client:state() return self.state_name end
function Client:queued() return #self.queue end

-- connect: the plain duplex.connect (url, handlers, options).
function M.connect(core, connect, url, handlers, options, policy)
  local c = setmetatable({ core = core, connect = connect, url = url, handlers = handlers, options = options,
    policy = policy, queue = {}, attempt = 0, state_name = "connecting" }, Client)
  set_state(c, "connecting", {})
  dial(c)
  return c
end

return M
