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

-- The options (core/binding/server_options.c, through duplex.options).
-- The core checks every key; host, port and static it leaves to this
-- layer, which listens and serves the files.
local server_options = require "duplex.options"
local reconnect = require "duplex.reconnect"
local json = require "duplex.json"
local jit_guard = require "duplex.jit_guard"
local DEFAULT_PORT = server_options.by_name.port.default

-- History rules' frame functions run on every publication, so under the
-- guard (see interpreted below) their loops run in LuaJIT's interpreter too.
local function interpret_frames(history)
  if not jit or type(history) ~= "table" then return end
  for _, rule in pairs(history) do
    if type(rule) == "function" then jit_guard.interpret_loops(rule)                 -- history.frame
    elseif type(rule) == "table" then jit_guard.interpret_loops(rule.frame) end
  end
end

-- Applies the options the core checks but this layer carries out (static
-- files, the metrics path, the log's format) to server; an error is
-- raised at level.
local function apply_layer_options(server, opts, level, guarded)
  if opts.static ~= nil then
    local served, err = server:static(opts.static)
    if not served then error("bad option 'static' (" .. err .. ")", level + 1) end
  end
  if opts.metrics ~= nil then server:metrics(opts.metrics) end
  if opts.history ~= nil then
    if guarded then interpret_frames(opts.history) end
    local ok, err = pcall(server.history, server, opts.history)
    if not ok then error(err, level + 1) end
  end
  if opts.node ~= nil then server:node(opts.node) end
  if opts.broker ~= nil and not core.worker() then      -- a worker's broker is its supervisor's (listen)
    local ok, made, err = pcall(server.broker, server, opts.broker)
    if not ok then error(made, level + 1) end
    if not made then error("bad option 'broker' (" .. err .. ")", level + 1) end
  end
  if opts.log_format ~= nil then core.log_format(opts.log_format) end
  -- Lua 5.4 on has both collectors; LuaJIT (and PUC 5.1 to 5.3) one, kept
  if opts.gc ~= nil and _VERSION >= "Lua 5.4" then
    collectgarbage(opts.gc)
    if opts.gc == "generational" then core.gc_pace(false) end   -- it has no use for a pause
  end
end

local recording = nil   -- see record_apps

-- The browser client every app serves at /duplex.js (option client_js):
-- the file beside this module (lua/duplex/duplex.js in the clone, and
-- where `make install` and the rock put the Lua layer), read once, when
-- the first app is made. nil when it is missing: nothing is served then.
local client_js_path = (debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./") .. "duplex.js"
local client_js_source = nil

local function client_js()
  if client_js_source == nil then
    local f = io.open(client_js_path, "rb")
    client_js_source = f and f:read("*a") or false
    if f then f:close() end
  end
  return client_js_source
end

--- The path of the browser client served at /duplex.js, and its text
-- (nil when the file is missing).
function M.client_js()
  return client_js_path, client_js() or nil
end

--- Creates an app. opts: the options of README.md's table (a key each,
-- listed by require("duplex.options").list with their kinds, ranges and defaults):
-- host and port (default every interface, 8080; 0 picks a free port),
-- tls (wss:// and https://: { cert =, key = [, ca =] [, ciphers =] [,
-- min_version = "1.2"|"1.3"] [, sni = { { names =, cert =, key = }, ...
-- }] }, files read at listen), static (a directory served over HTTP), and
-- the core's limits, timeouts and compression.
function M.app(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("bad argument #1 to 'app' (table expected, got " .. type(opts) .. ")", 2)
  end
  local ok, server = pcall(core.server, opts)
  if not ok then error(server, 2) end
  if client_js() then server:client_js(client_js()) end
  apply_layer_options(server, opts, 2, (opts.handler_timeout or server_options.by_name.handler_timeout.default) ~= 0)
  local given = {}
  for k, v in pairs(opts) do given[k] = v end
  local app = setmetatable({ host = opts.host, port_wanted = opts.port or DEFAULT_PORT, server = server,
    paths = {}, routes = {}, gets = {}, static = opts.static, options = given,
    shutdown_hooks = {}, reload_hooks = {}, timers = setmetatable({}, { __mode = "k" }) }, App)
  if recording then recording[#recording + 1] = app end
  return app
end

--- While list is a table, every app made is appended to it (a reload
-- loading its script: on failure, the apps it made are closed and their
-- timers stopped); nil stops recording.
function M.record_apps(list)
  recording = list
end

-- The guard (handler_timeout) stops a running handler with a hook, and
-- LuaJIT's compiled code checks no hooks (Debian's LuaJIT is built
-- without LUAJIT_ENABLE_CHECKHOOK). So on LuaJIT, while the app's
-- handler_timeout is not 0, those of the functions it gives duplex
-- (handlers, timers, routes, hooks, and the functions defined inside
-- them) that have a loop or a tail call run in LuaJIT's interpreter,
-- where the hook reaches them (duplex.jit_guard); code they call from
-- modules stays compiled (see README.md, "Handlers that never return").
local function guard_on(app)
  local t = app.options.handler_timeout
  if t == nil then t = server_options.by_name.handler_timeout.default end
  return t ~= 0
end

local function interpreted(app, fn)
  if guard_on(app) then jit_guard.interpret_loops(fn) end
  return fn
end

--- True when the app's handlers are guarded (handler_timeout is not 0).
function App:guarded()
  return guard_on(self)
end

--- True when v is an app made by duplex.app.
function M.is_app(v)
  return getmetatable(v) == App
end

-- ---- duplex.1: the subprotocol of duplex.js ----
--
-- Every route speaks it when offered, unless its own `protocols` leave it
-- out. Text messages are the app's, as they are. Binary ones carry a tag
-- byte: 0x00 the app's (the core adds it to ws:send(data, true) and takes
-- it off before `message`), 0x01 a control in JSON (below), 0x02 a
-- heartbeat (the core sends one with each ping), 0x03 a publication of a
-- page's topic (the core's envelope, see core/binding/lbroker.c). A page's
-- topic T is the core's shadow topic "\1" .. T: publications to T reach
-- it once each, enveloped, with their position, and a resume (since) is
-- the node's own.
local DUPLEX1 = "duplex.1"
local SHADOW = "\1"

local json_encode, json_decode = json.encode, json.decode

local function control(ws, t)
  ws:_send_raw("\1" .. json_encode(t), true)
end

-- What a duplex.1 page asks (binary messages whose tag is not 0x00).
local function duplex_control(handlers)
  return function(ws, data)
    if data:byte(1) ~= 1 then return end       -- a heartbeat, or a tag of a later version
    local m = json_decode(data:sub(2))
    if not m or type(m.topic) ~= "string" or #m.topic > 0xFFFF then return end
    local topic = m.topic
    if m.t == "sub" then
      local ok, reason = false, "not allowed"
      if topic == "" or topic:byte(1) == 1 then reason = "bad topic"      -- byte 1 starts the shadows
      elseif handlers.subscribe then ok, reason = handlers.subscribe(ws, topic) end
      if not ok then
        control(ws, { t = "sub", topic = topic, ok = false, reason = type(reason) == "string" and reason or "refused" })
        return
      end
      control(ws, { t = "sub", topic = topic, ok = true })
      local since = m.since
      if type(since) == "string" and since:match("^[0-9a-z]+:%d+$") then
        ws:subscribe(SHADOW .. topic, { since = since, recovered = function(w, _, res)
          control(w, { t = "recovered", topic = topic, ok = res.ok, reason = res.reason, missed = res.missed,
            position = res.position })
        end })
      else
        if since ~= nil then control(ws, { t = "recovered", topic = topic, ok = false, reason = "bad_position", missed = 0 }) end
        ws:subscribe(SHADOW .. topic)
      end
    elseif m.t == "unsub" then
      if ws:unsubscribe(SHADOW .. topic) and handlers.unsubscribe then handlers.unsubscribe(ws, topic) end
    end
  end
end

-- The table given to the core for a route: the app's handlers, but
-- subscribe and unsubscribe (this layer's), speaking duplex.1 unless
-- the route's protocols leave it out.
local function route_table(handlers)
  for _, k in ipairs { "subscribe", "unsubscribe" } do
    if handlers[k] ~= nil and type(handlers[k]) ~= "function" then
      error("bad handler '" .. k .. "' (function expected, got " .. type(handlers[k]) .. ")", 3)
    end
  end
  local t = {}
  for k, v in pairs(handlers) do
    if k ~= "subscribe" and k ~= "unsubscribe" then t[k] = v end
  end
  if t.protocols == nil then t.protocols = { DUPLEX1 } end
  local speaks = false
  for _, p in ipairs(type(t.protocols) == "table" and t.protocols or {}) do speaks = speaks or p == DUPLEX1 end
  if speaks then t._duplex = duplex_control(handlers) end   -- the hello goes from the core (ev_open)
  return t
end

M._json = { encode = json_encode, decode = json_decode }   -- for the specs

--- Serves WebSocket connections to path with the given handlers:
-- upgrade(req), open(ws), message(ws, data, binary), close(ws, code,
-- reason), pong_timeout(ws); subscribe(ws, topic) -> true | false,
-- reason (a page's topic, duplex.js) and unsubscribe(ws, topic). Returns
-- the app.
function App:ws(path, handlers)
  if type(handlers) ~= "table" then
    error("bad argument #2 to 'ws' (table expected, got " .. type(handlers) .. ")", 2)
  end
  local ok, err = pcall(self.server.route, self.server, path, route_table(handlers))
  if not ok then error(err, 2) end
  for _, fn in pairs(handlers) do interpreted(self, fn) end
  self.paths[#self.paths + 1] = path
  self.routes[path] = handlers
  return self
end

--- Answers plain HTTP GET and HEAD requests for path (query stripped):
-- fn(req) gets req.method, req.path, req.query, req.headers, req.remote
-- and returns body [, status [, headers]] (status 200 and text/plain by
-- default). An error in fn answers 500 and is logged. Returns the app.
function App:get(path, fn)
  local ok, err = pcall(self.server.get, self.server, path, fn)
  if not ok then error(err, 2) end
  interpreted(self, fn)
  self.gets[#self.gets + 1] = { path = path, fn = fn }
  return self
end

--- Registers fn(previous) to run when this app, made by loading its script
-- again (SIGHUP, --watch), is about to take over from the app that was
-- serving: previous is what the old script returned (its app, or its
-- table of handlers), so the new code can take its state (a game's world,
-- a chat's history). An error in fn refuses the reload. Returns the app.
function App:on_reload(fn)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'on_reload' (function expected, got " .. type(fn) .. ")", 2)
  end
  self.reload_hooks[#self.reload_hooks + 1] = interpreted(self, fn)
  return self
end

-- Runs the reload hooks with previous; returns true, or nil, the error
-- with its traceback.
function App:run_reload_hooks(previous)
  for _, fn in ipairs(self.reload_hooks) do
    local ok, err = core.guarded(fn, previous)   -- stopped by the guard: refused, the rest goes on
    if not ok then return nil, err end
  end
  return true
end

--- Makes this app, just made from the script loaded again (not
-- listening), the one serving in place of old: on old's server, routes
-- of the same path take the new handlers (their open connections run them
-- from their next event, keeping ws.data and topics), new paths are
-- served, paths the new script dropped refuse new upgrades (open
-- connections on them keep the old handlers), app:get routes are the new
-- script's, and the limits, timeouts, compression and static files are
-- the new app's. host, port and tls stay as they are (a restart changes
-- them; SIGHUP re-reads the TLS files). old's timers stop; the new app's
-- run. Afterwards self.server is old's, and old should not be used.
function App:take_over(old)
  local server = old.server
  for _, path in ipairs(self.paths) do server:route(path, route_table(self.routes[path]), true) end
  for _, path in ipairs(old.paths) do
    if not self.routes[path] then server:unroute(path) end
  end
  server:ungets()
  for _, g in ipairs(self.gets) do server:get(g.path, g.fn) end
  server:take_config(self.server)
  server:static(self.static or false)
  server:metrics(self.options.metrics or false)
  if self.options.history ~= nil or old.options.history ~= nil then
    server:history(self.options.history or false)
  end
  if self.join_fn or self.leave_fn or old.join_fn or old.leave_fn then
    server:presence_events(self.join_fn, self.leave_fn)
  end
  for t in pairs(old.timers) do t:stop() end
  self.server:close()
  self.server = server
  self.host, self.port_wanted, self.listening = old.host, old.port_wanted, old.listening
end

--- Changes options after creation (host and port take effect at listen,
-- static and the core's options at once). app.options holds every option
-- given so far.
function App:configure(opts)
  local ok, err = pcall(self.server.configure, self.server, opts)
  if not ok then error(err, 2) end
  local timeout = opts.handler_timeout
  if timeout == nil then timeout = self.options.handler_timeout end
  apply_layer_options(self.server, opts, 2, (timeout or server_options.by_name.handler_timeout.default) ~= 0)
  if opts.static ~= nil then self.static = opts.static end
  if opts.host ~= nil then self.host = opts.host end
  if opts.port ~= nil then self.port_wanted = opts.port end
  for k, v in pairs(opts) do self.options[k] = v end
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
-- does not match its certificate). In a worker of --workers N the port is
-- shared with the other workers (SO_REUSEPORT).
function App:listen()
  if self.listening then return true end
  if core.worker() then
    local box = M.box_broker or "memory"
    if (self.options.broker or "memory") ~= box then
      return nil, ("with --workers the supervisor reaches the broker for every worker: give it on the "
        .. "command line (--broker %s), not in the app (the supervisor has %s)"):format(self.options.broker, box),
        "EBROKER"
    end
    self.server:reuse_port(true)               -- its siblings listen on the same port
    if not M.took_bus then                     -- the first app to listen is the one serving
      local ok, err, name = self.server:broker("bus")
      if not ok then return nil, err, name end
      M.took_bus = true
    end
  end
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

--- Sends data to this process's subscribers of topic alone (a join or
-- leave event told to a room: every node gets the event and tells its
-- own). Returns how many it was queued for.
function App:publish_local(topic, data, binary)
  return self.server:publish_local(topic, data, binary)
end

--- Calls fn(members) with who is in topic's presence, on every worker
-- and node: a list of { id =, node =, info = } (id: the connection's
-- ws.id on its node; info: the table given to ws:subscribe's presence),
-- or fn(nil, message) when the broker cannot tell. fn may run before
-- this returns (without a broker to ask).
function App:presence(topic, fn)
  if type(fn) ~= "function" then
    error("bad argument #2 to 'presence' (function expected, got " .. type(fn) .. ")", 2)
  end
  self.server:presence(topic, interpreted(self, fn))
end

local function set_presence_events(app)
  app.server:presence_events(app.join_fn, app.leave_fn)
end

--- Registers fn(topic, member) to run when someone joins the presence of
-- a topic this process has subscribers of (member as app:presence gives
-- it), on whichever worker or node they joined. Returns the app.
function App:on_join(fn)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'on_join' (function expected, got " .. type(fn) .. ")", 2)
  end
  self.join_fn = interpreted(self, fn)
  set_presence_events(self)
  return self
end

--- Registers fn(topic, member) for someone leaving a topic's presence
-- (unsubscribed, closed, or gone with its node). Returns the app.
function App:on_leave(fn)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'on_leave' (function expected, got " .. type(fn) .. ")", 2)
  end
  self.leave_fn = interpreted(self, fn)
  set_presence_events(self)
  return self
end

--- This process's name in presence (the `node` option; host:pid by default).
function App:node()
  return self.server:node()
end

--- Open connections subscribed to topic.
function App:subscribers(topic)
  return self.server:subscribers(topic)
end

--- Counters since start: connections (now), accepted, messages_in,
-- published, deliveries, dropped (max_backpressure, policy "drop", or any
-- refused send), backpressure_closes (policy "close"), handler_timeouts
-- (handlers the guard stopped in this process, whichever app's: they
-- share the loop).
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
-- error in fn is logged with its traceback and the timer goes on; fn
-- stopped by the guard (handler_timeout) ends it.
function App:every(seconds, fn)
  check_timer_args(seconds, fn, "every")
  if seconds == 0 then error("bad argument #1 to 'every' (seconds must be above 0)", 2) end
  local t = core.timer(seconds, seconds, interpreted(self, fn))
  self.timers[t] = true
  return t
end

--- Runs fn(timer) once, `seconds` from now. Returns the timer (stop() cancels it).
function App:after(seconds, fn)
  check_timer_args(seconds, fn, "after")
  local t = core.timer(seconds, 0, interpreted(self, fn))
  self.timers[t] = true
  return t
end

--- Registers fn(app, reason) to run when the app shuts down, before the
-- connections are told: what it sends (a last word, a saved state) goes
-- out ahead of the 1001. Several run in the order registered. Returns the app.
function App:on_shutdown(fn)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'on_shutdown' (function expected, got " .. type(fn) .. ")", 2)
  end
  self.shutdown_hooks[#self.shutdown_hooks + 1] = interpreted(self, fn)
  return self
end

--- Shuts the app down, once: runs the on_shutdown hooks (an error in one
-- is logged with its traceback, and the others still run), stops the
-- app's timers and accepting, sends 1001 to every connection behind what
-- is queued for it, and waits up to shutdown_timeout for the queues to
-- go and the close replies to come; run() returns once every connection
-- is gone, at the latest then.
function App:shutdown(reason)
  if self.shutting_down then return end
  self.shutting_down = true
  for _, fn in ipairs(self.shutdown_hooks) do
    local ok, err = core.guarded(fn, self, reason)   -- stopped by the guard: the shutdown goes on
    if not ok then
      core.log("error", "hook_error", "error in a shutdown hook: " .. tostring(err))
    end
  end
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

--- In a worker of `duplex run --workers N`: its index (1..N) and N; nil
-- in a process of its own.
function M.worker()
  return core.worker()
end

--- How many workers serve the app: N under --workers N, else 1.
function M.workers()
  local _, n = core.worker()
  return n or 1
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
-- host), insecure (true: no certificate check); protocols (a list of
-- subprotocols to offer, most wanted first; c:protocol() says which the
-- server chose); and reconnect (true or { min =, max =, stable =, queue
-- =, grace = }): one client that connects again after each drop, and
-- speaks duplex.1 (topics resumed from their positions) unless its
-- protocols leave it out, see lua/duplex/reconnect.lua.
local CONNECT_OPTIONS = { ca = "string", servername = "string", insecure = "boolean", protocols = "table" }

-- The protocols option as the core takes it ("a, b"), or nil; raises at level.
local function offer(list, level)
  if list == nil or #list == 0 then return nil end
  for i, p in ipairs(list) do
    if type(p) ~= "string" or not p:match("^[%w!#$%%&'*+%-.^_`|~]+$") then
      error("bad argument #3 to 'connect' (protocols[" .. i .. "]: a token expected, got " ..
        (type(p) == "string" and ("'" .. p .. "'") or type(p)) .. ")", level + 1)
    end
  end
  return table.concat(list, ", ")
end

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
  local policy, plain = nil, {}          -- plain: the options of each connection
  for k, v in pairs(options or {}) do
    if k == "reconnect" then
      if v ~= false then policy = reconnect.policy(v, 2) end
      v = nil
    end
    plain[k] = v
    if v ~= nil and not CONNECT_OPTIONS[k] then error("bad argument #3 to 'connect' (unknown option '" .. tostring(k) .. "')", 2) end
    if v ~= nil and type(v) ~= CONNECT_OPTIONS[k] then
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
  local protocols = offer(plain.protocols, 2)
  if policy then
    if plain.protocols == nil then plain.protocols = { reconnect.PROTOCOL } end
    return reconnect.connect(core, M.connect, url, handlers, plain, policy)
  end
  local tls = scheme == "wss" and plain or nil
  local ok, c, err, name = pcall(core.connect, host, port, target, handlers, tls, protocols)
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
M.log = core.log
M.timer = core.timer

return M
