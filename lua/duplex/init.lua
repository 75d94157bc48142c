--- duplex: WebSocket apps in Lua on a C core.
--
--   local duplex = require "duplex"
--   local app = duplex.app { port = 8080, max_message = 1024 * 1024 }
--   app:ws("/chat", { open = ..., message = ..., close = ..., pong_timeout = ... })
--   app:run()
local core = require "duplex.core"

local M = { version = core.version, core = core }

local App = {}
App.__index = App

-- Options handled here; every other key goes to the core, which rejects
-- the ones it does not know.
local LOCAL_OPTIONS = { host = true, port = true, static = true }

local function split_options(opts)
  local mine, for_core = {}, {}
  for k, v in pairs(opts) do
    if LOCAL_OPTIONS[k] then mine[k] = v else for_core[k] = v end
  end
  return mine, for_core
end

local function check_local(mine, level)
  if mine.host ~= nil and type(mine.host) ~= "string" then
    error("bad option 'host' (string expected, got " .. type(mine.host) .. ")", level + 1)
  end
  local port = mine.port
  if port ~= nil and (type(port) ~= "number" or port < 0 or port > 65535 or port % 1 ~= 0) then
    error("bad option 'port' (integer from 0 to 65535 expected)", level + 1)
  end
end

--- Creates an app. Options: host (default every interface), port (default
-- 8080; 0 picks a free one), tls (wss:// and https://: { cert =, key =
-- [, ca =] [, ciphers =] [, min_version = "1.2"|"1.3"] [, sni = { { names
-- =, cert =, key = }, ... }] }, files read at listen), and the core's
-- limits and timeouts: max_message, max_head, max_headers,
-- handshake_timeout, close_timeout, idle_timeout, ping_interval,
-- pong_timeout (see README.md).
function M.app(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("bad argument #1 to 'app' (table expected, got " .. type(opts) .. ")", 2)
  end
  local mine, for_core = split_options(opts)
  check_local(mine, 2)
  local ok, server = pcall(core.server, for_core)
  if not ok then error(server, 2) end
  if mine.static ~= nil then
    if type(mine.static) ~= "string" then
      error("bad option 'static' (directory name expected, got " .. type(mine.static) .. ")", 2)
    end
    local served, err = server:static(mine.static)
    if not served then error("bad option 'static' (" .. err .. ")", 2) end
  end
  return setmetatable({ host = mine.host, port_wanted = mine.port or 8080, server = server, paths = {}, static = mine.static,
    tls = for_core.tls or nil, timers = setmetatable({}, { __mode = "k" }) }, App)
end

--- True when v is an app made by duplex.app.
function M.is_app(v)
  return getmetatable(v) == App
end

--- Serves WebSocket connections to path with the given handlers:
-- upgrade(req), open(ws), message(ws, data, binary), close(ws, code,
-- reason), pong_timeout(ws). Returns the app.
function App:ws(path, handlers)
  local ok, err = pcall(self.server.route, self.server, path, handlers)
  if not ok then error(err, 2) end
  self.paths[#self.paths + 1] = path
  return self
end

--- Answers plain HTTP GET and HEAD requests for path (query stripped):
-- fn(req) gets req.method, req.path, req.query, req.headers, req.remote
-- and returns body [, status [, headers]] (status 200 and text/plain by
-- default). An error in fn answers 500 and is logged. Returns the app.
function App:get(path, fn)
  local ok, err = pcall(self.server.get, self.server, path, fn)
  if not ok then error(err, 2) end
  return self
end

--- Changes options after creation (host, port before listen; core
-- options at any time).
function App:configure(opts)
  local mine, for_core = split_options(opts)
  check_local(mine, 2)
  if mine.host ~= nil then self.host = mine.host end
  if mine.port ~= nil then self.port_wanted = mine.port end
  local ok, err = pcall(self.server.configure, self.server, for_core)
  if not ok then error(err, 2) end
  if for_core.tls ~= nil then self.tls = for_core.tls or nil end
  return self
end

--- True when the app speaks TLS (wss://, https://).
function App:is_tls()
  return self.server:tls()
end

--- Reads the TLS certificate and key files again (on SIGHUP, say): new
-- connections get the new certificates, open ones keep theirs. Returns
-- true, or nil, message, "ETLS" (the certificates in use stay).
function App:reload_tls()
  return self.server:reload_tls()
end

--- Starts listening. Returns true, or nil, message, name (e.g.
-- "EADDRINUSE", or "ETLS" for a TLS file that cannot be read or a key that
-- does not match its certificate).
function App:listen()
  if self.listening then return true end
  local ok, err, name = self.server:listen(self.host, self.port_wanted)
  if not ok then return nil, err, name end
  self.listening = true
  return true
end

--- The port listened on (useful with port 0).
function App:port()
  return self.server:port()
end

--- Open connections, in any state.
function App:connections()
  return self.server:connections()
end

--- Sends data to every subscriber of topic (framed once). Returns how
-- many it was queued for.
function App:publish(topic, data, binary)
  return self.server:publish(topic, data, binary)
end

--- Open connections subscribed to topic.
function App:subscribers(topic)
  return self.server:subscribers(topic)
end

--- Counters since start: connections (now), accepted, messages_in,
-- published, deliveries, dropped (max_backpressure, policy "drop", or any
-- refused send), backpressure_closes (policy "close").
function App:stats()
  return self.server:stats()
end

local function check_timer_args(seconds, fn, name)
  if type(seconds) ~= "number" or seconds < 0 then
    error("bad argument #1 to '" .. name .. "' (non-negative number of seconds expected, got "
      .. type(seconds) .. ")", 3)
  end
  if type(fn) ~= "function" then
    error("bad argument #2 to '" .. name .. "' (function expected, got " .. type(fn) .. ")", 3)
  end
end

--- Runs fn(timer) every `seconds` on the loop (a game tick:
-- app:every(1 / 30, tick)). Returns the timer; timer:stop() ends it. An
-- error in fn is logged with its traceback and the timer goes on.
function App:every(seconds, fn)
  check_timer_args(seconds, fn, "every")
  if seconds == 0 then error("bad argument #1 to 'every' (seconds must be above 0)", 2) end
  local t = core.timer(seconds, seconds, fn)
  self.timers[t] = true
  return t
end

--- Runs fn(timer) once, `seconds` from now. Returns the timer (stop() cancels it).
function App:after(seconds, fn)
  check_timer_args(seconds, fn, "after")
  local t = core.timer(seconds, 0, fn)
  self.timers[t] = true
  return t
end

--- Stops accepting, stops the app's timers, and closes every connection
-- with 1001; run() returns once they are gone.
function App:shutdown(reason)
  for t in pairs(self.timers) do t:stop() end
  self.server:shutdown(reason)
end

--- Frees the server at once (no close events) and stops the app's timers.
function App:close()
  for t in pairs(self.timers) do t:stop() end
  self.server:close()
end

--- Listens (if not yet) and runs the loop until shutdown. Returns true, or
-- nil, message, name when it could not listen.
function App:run()
  local ok, err, name = self:listen()
  if not ok then return nil, err, name end
  core.run()
  return true
end

--- Connects to a WebSocket server on the same loop (bots, tests, bridges):
--   local c = duplex.connect("ws://127.0.0.1:8080/chat?name=bot", {
--     open = function(c) c:send("hi") end,
--     message = function(c, data, binary) end,
--     close = function(c, code, reason) end,   -- once, whatever ended it
--   })
-- Returns the client (c:send(data [, binary]), c:close([code]),
-- c:is_open(), c:buffered()), or nil, message, name when the host does not
-- resolve or no socket could be made; a refused connection or handshake
-- arrives as close(c, 1006, reason). wss:// URLs go over TLS; options (for
-- wss://): ca (PEM file of the CAs to trust; default the system's),
-- servername (the name the certificate must carry; default the URL's
-- host), insecure (true: no certificate check).
local CONNECT_OPTIONS = { ca = "string", servername = "string", insecure = "boolean" }

function M.connect(url, handlers, options)
  if type(url) ~= "string" then
    error("bad argument #1 to 'connect' (string expected, got " .. type(url) .. ")", 2)
  end
  if type(handlers) ~= "table" then
    error("bad argument #2 to 'connect' (table expected, got " .. type(handlers) .. ")", 2)
  end
  if options ~= nil and type(options) ~= "table" then
    error("bad argument #3 to 'connect' (table expected, got " .. type(options) .. ")", 2)
  end
  for k, v in pairs(options or {}) do
    if not CONNECT_OPTIONS[k] then error("bad argument #3 to 'connect' (unknown option '" .. tostring(k) .. "')", 2) end
    if type(v) ~= CONNECT_OPTIONS[k] then
      error("bad argument #3 to 'connect' (option '" .. k .. "': " .. CONNECT_OPTIONS[k] .. " expected, got "
        .. type(v) .. ")", 2)
    end
  end
  local scheme, rest = url:match("^(wss?)://(.+)$")
  if not rest then error("bad argument #1 to 'connect' (ws://host[:port]/path or wss://... expected)", 2) end
  local hostport, target = rest:match("^([^/?]+)([/?].*)$")
  if not hostport then hostport, target = rest, "/" end
  if target:sub(1, 1) == "?" then target = "/" .. target end
  local host, port = hostport:match("^%[(.+)%]:(%d+)$")
  if not host then host = hostport:match("^%[(.+)%]$") end
  if not host then host, port = hostport:match("^([^:]+):(%d+)$") end
  if not host then host = hostport end
  port = tonumber(port or (scheme == "wss" and "443" or "80"))
  local tls = scheme == "wss" and (options or {}) or nil
  local ok, c, err, name = pcall(core.connect, host, port, target, handlers, tls)
  if not ok then error(c, 2) end
  return c, err, name
end

-- duplex.parse_query(q) -> table: the parameters of a query string (as in
-- req.query), names and values with "+" and %XX decoded; the first of a
-- repeated name wins; nil or "" gives an empty table. Decoded bytes are
-- not checked: an app validates what it uses.
local function unescape(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

function M.parse_query(q)
  if q ~= nil and type(q) ~= "string" then
    error("bad argument #1 to 'parse_query' (string expected, got " .. type(q) .. ")", 2)
  end
  local t = {}
  for pair in (q or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k = unescape(k)
    if t[k] == nil then t[k] = unescape(v) end
  end
  return t
end

M.run = core.run
M.stop = core.stop
M.now = core.now
M.signal = core.signal
M.timer = core.timer

return M
