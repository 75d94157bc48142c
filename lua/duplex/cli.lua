--- The `duplex` command line.
local duplex = require "duplex"

local M = {}

local USAGE = [[
usage: duplex run APP.lua [options]
       duplex bench echo|broadcast|connect [options]   (duplex bench --help)
       duplex --help | --version

Serves the WebSocket app that APP.lua returns: a table of handlers
(open, message, close, pong_timeout, upgrade; optional path, default "/"),
or an app made with duplex.app.

options:
  --host HOST               address to listen on (default: every interface)
  --port N                  port (default 8080; 0 picks a free port, printed)
  --max-message BYTES       largest message accepted (default 16 MiB)
  --ping-interval SECONDS   ping a peer silent this long (default 30; 0 off)
  --pong-timeout SECONDS    close a peer that does not answer (default 10)
  --idle-timeout SECONDS    close a peer silent this long (default 0: off)
  --handshake-timeout SECONDS  (default 10)
  --close-timeout SECONDS      (default 5)
  --max-backpressure BYTES  bytes queued for one client before it is closed
                            with 1008 (default 1 MiB)
  --deflate MODE            permessage-deflate: off (default), shared, dedicated
  --tls-cert FILE           serve wss:// (and https://) with this PEM certificate
                            chain; needs --tls-key. Replaces the app's own
                            tls.cert and tls.key, keeps its other tls keys
  --tls-key FILE            the PEM private key of --tls-cert

With TLS on, SIGHUP reads the certificate and key files again: new
connections get the new ones, open connections keep going.

duplex bench loads a server with duplex's own C client: echo (throughput,
latency p50/p99/p99.9, every echo checked), broadcast (fan-out through
publish), connect (handshakes per second, server memory per connection).
]]

local NUMERIC = {
  ["--port"] = "port", ["--max-message"] = "max_message",
  ["--ping-interval"] = "ping_interval", ["--pong-timeout"] = "pong_timeout",
  ["--idle-timeout"] = "idle_timeout", ["--handshake-timeout"] = "handshake_timeout",
  ["--close-timeout"] = "close_timeout", ["--max-backpressure"] = "max_backpressure",
}

local DEFLATE_MODES = { off = true, shared = true, dedicated = true }

local function fail(msg)
  io.stderr:write("duplex: ", msg, "\n")
  return 2
end

local function first_line(s)
  s = tostring(s)
  return (s:match("^[^\n]*"))
end

-- Parses the words after "run". Returns script, options or nil, error.
local function parse_run(args)
  local script, opts = nil, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--host" then
      if not args[i + 1] then return nil, "--host needs a value" end
      opts.host = args[i + 1]
      i = i + 2
    elseif a == "--deflate" then
      if not DEFLATE_MODES[args[i + 1] or ""] then
        return nil, "--deflate needs off, shared or dedicated"
      end
      opts.deflate = args[i + 1]
      i = i + 2
    elseif a == "--tls-cert" or a == "--tls-key" then
      if not args[i + 1] or args[i + 1] == "" then return nil, a .. " needs a file name" end
      opts[a == "--tls-cert" and "tls_cert" or "tls_key"] = args[i + 1]
      i = i + 2
    elseif NUMERIC[a] then
      local v = tonumber(args[i + 1] or "")
      if not v or v < 0 then return nil, a .. " needs a non-negative number" end
      opts[NUMERIC[a]] = v
      i = i + 2
    elseif a:sub(1, 2) == "--" then
      return nil, "unknown option " .. a .. " (see duplex --help)"
    elseif script then
      return nil, "one app script only (got " .. script .. " and " .. a .. ")"
    else
      script = a
      i = i + 1
    end
  end
  if not script then return nil, "run needs an app script (see duplex --help)" end
  if (opts.tls_cert == nil) ~= (opts.tls_key == nil) then
    return nil, (opts.tls_cert and "--tls-cert needs --tls-key" or "--tls-key needs --tls-cert")
  end
  return script, opts
end

local function has_handler(t)
  for _, k in ipairs { "open", "message", "close", "pong_timeout", "upgrade", "drain" } do
    if type(t[k]) == "function" then return true end
  end
  return false
end

-- Loads the script and makes the app it describes. Returns app or nil, error.
local function load_app(script, opts)
  local chunk, err = loadfile(script)
  if not chunk then
    return nil, "cannot load " .. script .. ": " .. first_line(err:gsub("^" .. script:gsub("%p", "%%%0") .. ":", ""))
  end
  local ok, result = pcall(chunk)
  if not ok then return nil, "error in " .. script .. ": " .. first_line(result) end
  local tls_cert, tls_key = opts.tls_cert, opts.tls_key
  opts.tls_cert, opts.tls_key = nil, nil
  if tls_cert then
    local tls = {}
    if duplex.is_app(result) then
      for k, v in pairs(result.tls or {}) do tls[k] = v end
    end
    tls.cert, tls.key = tls_cert, tls_key
    opts.tls = tls
  end
  local app
  if duplex.is_app(result) then
    app = result
    ok, err = pcall(app.configure, app, opts)
  elseif type(result) == "table" and has_handler(result) then
    ok, app = pcall(duplex.app, opts)
    if ok then
      local path = result.path or "/"
      ok, err = pcall(app.ws, app, path, result)
    else
      err = app
    end
  else
    return nil, script .. " must return a table of handlers or an app (got " .. type(result) .. ")"
  end
  if not ok then return nil, script .. ": " .. first_line(err) end
  return app
end

local function run(args)
  local script, opts = parse_run(args)
  if not script then return fail(opts) end
  local app, err = load_app(script, opts)
  if not app then return fail(err) end
  local ok, lerr, name = app:listen()
  if not ok then
    app:close()
    return fail(lerr .. " (" .. name .. ")")
  end
  local tls = app:is_tls()
  local base = ((tls and "wss" or "ws") .. "://%s:%d"):format(app.host and app.host:find(":", 1, true) and "[" .. app.host .. "]"
    or app.host or "localhost", app:port())
  io.stdout:write("duplex: listening on ", base, "\n")
  for _, path in ipairs(app.paths) do
    io.stdout:write("duplex: ", script, " at ", base, path, "\n")
  end
  if app.static then
    io.stdout:write("duplex: pages from ", app.static, " at ", (base:gsub("^ws", "http")), "/\n")
  end
  io.stdout:flush()

  local stopping = false
  local function on_signal()
    if stopping then duplex.stop() return end   -- a second signal: stop now
    stopping = true
    app:shutdown("server shutting down")
  end
  local term = duplex.signal("TERM", on_signal)
  local int = duplex.signal("INT", on_signal)
  local hup = tls and duplex.signal("HUP", function()
    local reloaded, rerr = app:reload_tls()
    if reloaded then
      io.stderr:write("duplex: TLS certificates reloaded\n")
    else
      io.stderr:write("duplex: TLS reload failed, keeping the certificates in use: ", rerr, "\n")
    end
  end)
  duplex.run()
  term:stop()
  int:stop()
  if hup then hup:stop() end
  app:close()
  return 0
end

function M.main(argv)
  local cmd = argv[1]
  if cmd == "--help" or cmd == "-h" or cmd == "help" then
    io.stdout:write(USAGE)
    return 0
  elseif cmd == "--version" or cmd == "-v" then
    io.stdout:write("duplex ", duplex.version, " (", jit and jit.version or _VERSION, ")\n")
    return 0
  elseif cmd == "run" then
    local rest = {}
    for i = 2, #argv do rest[#rest + 1] = argv[i] end
    return run(rest)
  elseif cmd == "bench" then
    local rest = {}
    for i = 2, #argv do rest[#rest + 1] = argv[i] end
    return require("duplex.bench").main(rest)
  elseif cmd == nil then
    io.stderr:write(USAGE)
    return 2
  end
  return fail("unknown command '" .. tostring(cmd) .. "' (see duplex --help)")
end

return M
