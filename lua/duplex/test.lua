--- duplex.test: start an app in this process and talk to it with real
-- clients, from busted specs (or any Lua code that may drive the loop).
--
--   local dt = require "duplex.test"
--   local srv = dt.start("scripts/chat.lua")      -- or an app, or a handlers table
--   local ada = srv:client("/chat?name=ada")      -- open, or the spec fails
--   ada:send('{"type":"say","text":"hi"}')
--   local data, binary = ada:receive()            -- the next message
--   ada:close()
--   srv:stop()                                    -- in after_each, say
--
-- The server listens on 127.0.0.1, port 0, and the clients (duplex.connect)
-- run on the same loop: every wait runs the loop until what it waits for
-- has come or its deadline (timeout seconds, default M.timeout) has
-- passed, and then fails saying what came instead. Failures of the app
-- (no message, the wrong close code, a refused handshake) are assertion
-- failures at the spec's line; misuse of the kit raises "bad argument".
local duplex = require "duplex"
local script = require "duplex.script"

local M = {
  timeout = 5,      -- seconds: the default deadline of every wait
  quiet = 0.2,      -- seconds: the default of expect_nothing
}

-- Fails the spec at `level` (as error's level, from the caller of fail's
-- caller's view: 2 is the line that called the kit). Under busted (whose
-- luassert is loaded) it is an assertion failure, not an error.
local function fail(msg, level)
  level = (level or 1) + 1
  local luassert = package.loaded.luassert
  if luassert and luassert.level then luassert(false, msg, luassert:level(level)) end
  error(msg, level)
end

local function check_timeout(v, n, fname)
  if v ~= nil and (type(v) ~= "number" or v < 0) then
    error(("bad argument #%d to '%s' (seconds expected, got %s)"):format(n, fname, type(v)), 3)
  end
  return v or M.timeout
end

-- Runs the loop until cond() holds or timeout seconds pass (a timer
-- wakes the loop then); returns whether cond() holds.
local function wait(cond, timeout)
  if cond() then return true end
  local expired = false
  local t = duplex.timer(timeout, 0, function() expired = true end)
  while not cond() and not expired do duplex.run("once") end
  t:stop()
  return cond() and true or false
end

--- M.wait(cond [, timeout]) -> boolean: runs the loop (the app and every
-- client) until cond() holds or timeout seconds pass; returns whether
-- cond() holds. For what the kit has no wait of its own for: a handler
-- having run, a count reached.
function M.wait(cond, timeout)
  if type(cond) ~= "function" then
    error("bad argument #1 to 'wait' (function expected, got " .. type(cond) .. ")", 2)
  end
  return wait(cond, check_timeout(timeout, 2, "wait"))
end

---------------------------------------------------------------------------
-- What a client got, in words
---------------------------------------------------------------------------

local SHOWN = 80            -- bytes of a message shown in a failure

-- 'text' with quotes, backslashes and control bytes escaped (and, for
-- binary data, every byte outside printable ASCII), cut at SHOWN bytes.
local function quote(s, binary)
  local cut = #s > SHOWN
  local shown = (cut and s:sub(1, SHOWN) or s):gsub(binary and "[^\32-\126]" or "%c", function(c)
    return ("\\x%02x"):format(c:byte())
  end)
  shown = shown:gsub("'", "\\'")
  return "'" .. shown .. "'" .. (cut and ("... (%d bytes)"):format(#s) or "")
end

local function show_message(m)
  return (m[2] and "binary message " or "message ") .. quote(m[1], m[2])
end

local function show_close(cl)
  if cl.from_server then
    return "close " .. cl.code .. (cl.reason ~= "" and " " .. quote(cl.reason) or "")
  end
  return "close " .. cl.code .. " (" .. cl.why .. ")"
end

---------------------------------------------------------------------------
-- Clients
---------------------------------------------------------------------------

local Client = {}
Client.__index = Client

-- What is queued and not yet taken, in words: "message '...', then close 1000".
local function pending(self)
  local parts = {}
  local n = self.last - self.first + 1
  for i = self.first, math.min(self.last, self.first + 2) do parts[#parts + 1] = show_message(self.inbox[i]) end
  if n > 3 then parts[#parts + 1] = ("%d more message%s"):format(n - 3, n > 4 and "s" or "") end
  if self.closed and not self.close_taken then parts[#parts + 1] = show_close(self.closed) end
  if #parts == 0 then return nil end
  return table.concat(parts, ", then ")
end

local function has_message(self) return self.first <= self.last end

local function take(self)
  local m = self.inbox[self.first]
  self.inbox[self.first] = nil
  self.first = self.first + 1
  return m
end

local function new_client(srv, path)
  local self = setmetatable({ server = srv, path = path, name = "client " .. path, inbox = {}, first = 1, last = 0,
    opened = false, closed = nil, close_taken = false }, Client)
  local conn, err = duplex.connect(srv:url(path), {
    open = function() self.opened = true end,
    message = function(_, data, binary)
      self.last = self.last + 1
      self.inbox[self.last] = { data, binary }
    end,
    close = function(_, code, why)
      local reason = why:match("^closed by the server %(%d+: (.*)%)$")
      local from_server = reason ~= nil or why:match("^closed by the server %(%d+%)$") ~= nil
      self.closed = { code = code, why = why, reason = reason or (from_server and "" or why),
        from_server = from_server }
    end,
  }, srv.tls and { insecure = true } or nil)
  if not conn then fail("cannot connect to " .. path .. ": " .. tostring(err), 3) end
  self.conn = conn
  srv.clients[#srv.clients + 1] = self
  return self
end

-- Queues data, or fails at the caller's caller's line.
local function push(self, data, binary)
  if self.closed then fail(self.name .. ": cannot send after " .. show_close(self.closed), 3) end
  local ok, err = self.conn:send(data, binary)
  if not ok then fail(self.name .. ": cannot send: " .. tostring(err), 3) end
end

--- c:send(data [, binary]): queues one message (text unless binary). Fails
-- when the connection is not open, saying how it closed.
function Client:send(data, binary)
  if type(data) ~= "string" then
    error("bad argument #1 to 'send' (string expected, got " .. type(data) .. ")", 2)
  end
  if binary ~= nil and type(binary) ~= "boolean" then
    error("bad argument #2 to 'send' (boolean expected, got " .. type(binary) .. ")", 2)
  end
  push(self, data, binary or false)
end

-- The next message ({ data, binary }) within timeout, or a failure at
-- the caller's caller's line that says what came instead.
local function next_message(self, timeout, what)
  wait(function() return has_message(self) or self.closed ~= nil end, timeout)
  if has_message(self) then return take(self) end
  if self.closed then
    fail(("%s: expected %s, received instead: %s"):format(self.name, what, show_close(self.closed)), 3)
  end
  fail(("%s: no message within %g s (received nothing; the connection is open)"):format(self.name, timeout), 3)
end

--- c:receive([timeout]) -> data, binary: the next message, waiting up to
-- timeout seconds. Fails when none comes in time, or the connection
-- closes first (saying with what code and reason).
function Client:receive(timeout)
  local m = next_message(self, check_timeout(timeout, 1, "receive"), "a message")
  return m[1], m[2]
end

local cjson
local function json()
  if not cjson then
    local ok, m = pcall(require, "cjson")
    if not ok then error("receive_json and send_json need lua-cjson (luarocks install lua-cjson)", 3) end
    cjson = m
  end
  return cjson
end

--- c:receive_json([timeout]) -> value, text: the next message, a JSON
-- text, decoded (with lua-cjson). Fails as receive does, or when the
-- message is binary or not JSON.
function Client:receive_json(timeout)
  local j = json()
  local m = next_message(self, check_timeout(timeout, 1, "receive_json"), "a JSON message")
  local ok, v = pcall(j.decode, m[1])
  if m[2] or not ok then fail(self.name .. ": expected a JSON message, received " .. show_message(m), 2) end
  return v, m[1]
end

--- c:send_json(value): sends value as JSON text (lua-cjson).
function Client:send_json(value)
  push(self, json().encode(value), false)
end

local function check_code(code, fname)
  if code ~= nil and (type(code) ~= "number" or code % 1 ~= 0) then
    error("bad argument #1 to '" .. fname .. "' (close code expected, got " .. type(code) .. ")", 3)
  end
end

-- Takes the close that came (the connection has closed), failing at the
-- caller's caller's line when it was taken before or its code is not code.
local function take_close(self, code, want)
  if self.close_taken then fail(self.name .. ": expected " .. want .. ", but its close was taken already", 3) end
  self.close_taken = true
  if code and self.closed.code ~= code then
    fail(self.name .. ": expected " .. want .. ", received instead: " .. show_close(self.closed), 3)
  end
end

--- c:expect_close([code [, timeout]]) -> code, reason: the connection
-- ends (with code, when given) before any other message comes. reason is
-- the server's close reason, or for a connection that ended without a
-- close frame (1006) what ended it ("handshake: upgrade refused: HTTP
-- 404", ...). Fails when a message is (or was) received first, nothing
-- comes in time, or the code differs.
function Client:expect_close(code, timeout)
  check_code(code, "expect_close")
  timeout = check_timeout(timeout, 2, "expect_close")
  local want = code and ("close " .. code) or "a close"
  wait(function() return has_message(self) or self.closed ~= nil end, timeout)
  if has_message(self) then
    fail(self.name .. ": expected " .. want .. ", received instead: " .. pending(self), 2)
  end
  if not self.closed then
    fail(("%s: no close within %g s (received nothing; the connection is open)"):format(self.name, timeout), 2)
  end
  take_close(self, code, want)
  return self.closed.code, self.closed.reason
end

--- c:skip_to_close([code [, timeout]]) -> code, reason, skipped: as
-- expect_close, for an app that streams: the messages before the close
-- (skipped counts them) are dropped, not failed on.
function Client:skip_to_close(code, timeout)
  check_code(code, "skip_to_close")
  timeout = check_timeout(timeout, 2, "skip_to_close")
  local want = code and ("close " .. code) or "a close"
  local skipped, last = 0, nil
  wait(function()
    while has_message(self) do
      last = take(self)
      skipped = skipped + 1
    end
    return self.closed ~= nil
  end, timeout)
  if not self.closed then
    fail(("%s: no close within %g s (skipped %d messages%s; the connection is open)"):format(self.name, timeout,
      skipped, last and ", the last " .. show_message(last) or ""), 2)
  end
  take_close(self, code, want)
  return self.closed.code, self.closed.reason, skipped
end

--- c:expect_nothing([seconds]): nothing comes for seconds (default
-- M.quiet): no message, no close. Fails with what came.
function Client:expect_nothing(seconds)
  if seconds ~= nil and (type(seconds) ~= "number" or seconds < 0) then
    error("bad argument #1 to 'expect_nothing' (seconds expected, got " .. type(seconds) .. ")", 2)
  end
  seconds = seconds or M.quiet
  local function got() return has_message(self) or (self.closed ~= nil and not self.close_taken) end
  wait(got, seconds)
  if got() then fail(("%s: expected nothing within %g s, received: %s"):format(self.name, seconds, pending(self)), 2) end
end

--- c:close([code [, timeout]]) -> code, reason: closes the connection
-- (code default 1000) and waits until the server has answered (or the
-- connection has ended); messages not yet received are dropped. Returns
-- the code and reason it ended with. Closing a closed client returns how
-- it closed.
function Client:close(code, timeout)
  check_code(code, "close")
  timeout = check_timeout(timeout, 2, "close")
  if not self.closed then
    -- The core checks the code, and raises for nothing else.
    if not pcall(self.conn.close, self.conn, code) then
      error("bad argument #1 to 'close' (invalid close code)", 2)
    end
    if not wait(function() return self.closed ~= nil end, timeout) then
      fail(("%s: the close got no answer within %g s"):format(self.name, timeout), 2)
    end
  end
  self.inbox, self.first, self.last = {}, 1, 0
  self.close_taken = true
  return self.closed.code, self.closed.reason
end

--- c:is_open() -> true while messages may be sent.
function Client:is_open()
  return self.closed == nil and self.conn:is_open()
end

---------------------------------------------------------------------------
-- Servers
---------------------------------------------------------------------------

local Server = {}
Server.__index = Server

--- M.start(app [, opts]) -> server: starts app in this process and listens
-- on 127.0.0.1, port 0 (opts.host and opts.port, when given, win). app is
-- the path of an app script (loaded as `duplex run` loads it: a handlers
-- table or an app), an app made with duplex.app, or a table of handlers
-- served at its path (default "/"). opts are duplex.app's options, given
-- over the app's own (max_message = 1024, ...). server.app is the app,
-- server.port its port; server:stop() ends it.
function M.start(app, opts)
  if type(app) ~= "string" and not duplex.is_app(app) and not script.is_handlers(app) then
    error("bad argument #1 to 'start' (script path, app or table of handlers expected, got " .. type(app) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'start' (table expected, got " .. type(opts) .. ")", 2)
  end
  local o = { host = "127.0.0.1", port = 0 }
  for k, v in pairs(opts or {}) do o[k] = v end
  local made, err
  if type(app) == "string" then
    made, err = script.load_app(app, o)
  else
    made, err = script.make_app(app, o)
  end
  if not made then error(err, 2) end
  local ok, lerr, name = made:listen()
  if not ok then
    made:close()
    fail("cannot listen: " .. tostring(lerr) .. " (" .. tostring(name) .. ")", 2)
  end
  return setmetatable({ app = made, host = o.host, port = made:port(), tls = made:is_tls(),
    clients = {} }, Server)
end

--- srv:url([path]) -> "ws://127.0.0.1:PORT/path" (wss:// for a TLS app).
function Server:url(path)
  path = path or "/"
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
    error("bad argument #1 to 'url' (path starting with '/' expected)", 2)
  end
  local host = self.host
  if host == "0.0.0.0" then host = "127.0.0.1" elseif host == "::" then host = "::1" end   -- every interface
  if host:find(":", 1, true) then host = "[" .. host .. "]" end
  return ("%s://%s:%d%s"):format(self.tls and "wss" or "ws", host, self.port, path)
end

local function check_path(path, fname)
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
    error("bad argument #1 to '" .. fname .. "' (path starting with '/' expected, got "
      .. (type(path) == "string" and ("'" .. path .. "'") or type(path)) .. ")", 3)
  end
end

--- srv:client([path [, timeout]]) -> client: connects to path (default
-- "/", with its query: "/chat?name=ada") and waits until it is open.
-- Fails, with the code and reason it got, when the server refuses it or
-- it does not open in time. (A wss:// client trusts the app's certificate
-- whatever it is.)
function Server:client(path, timeout)
  path = path or "/"
  check_path(path, "client")
  timeout = check_timeout(timeout, 2, "client")
  if self.stopped then error("attempt to use a stopped server", 2) end
  local c = new_client(self, path)
  wait(function() return c.opened or c.closed ~= nil end, timeout)
  if not c.opened then
    if c.closed then fail("could not open " .. path .. ": " .. show_close(c.closed), 2) end
    c.conn:close()
    fail(("could not open %s within %g s"):format(path, timeout), 2)
  end
  return c
end

--- srv:connect([path]) -> client: starts connecting and returns at once,
-- for a spec that expects the handshake refused (c:expect_close(1006)
-- then returns 1006 and "handshake: upgrade refused: HTTP 403").
function Server:connect(path)
  path = path or "/"
  check_path(path, "connect")
  if self.stopped then error("attempt to use a stopped server", 2) end
  return new_client(self, path)
end

--- srv:stop([timeout]): shuts the app down as SIGTERM does (its shutdown
-- hooks run, every connection gets 1001 behind what is queued for it),
-- runs the loop until every connection has gone, then frees the server;
-- every client this server made is closed by then (what they received,
-- the 1001 too, can still be read). Fails when the connections are not
-- gone within timeout (the server is freed all the same). Stopping a
-- stopped server does nothing, so after_each may always call it.
function Server:stop(timeout)
  timeout = check_timeout(timeout, 1, "stop")
  if self.stopped then return end
  self.stopped = true
  local app = self.app
  app:shutdown("server shutting down")
  local gone = wait(function() return app:connections() == 0 end, timeout)
  local left = app:connections()
  app:close()
  -- The server's sockets are closed now: its clients see them end.
  local clients = self.clients
  for _, c in ipairs(clients) do
    if not c.closed then c.conn:close() end
  end
  wait(function()
    for _, c in ipairs(clients) do
      if not c.closed then return false end
    end
    return true
  end, timeout)
  if not gone then
    fail(("the server did not shut down within %g s: %d connections left"):format(timeout, left), 2)
  end
end

return M
