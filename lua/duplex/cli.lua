--- The `duplex` command line.
local duplex = require "duplex"
local options = require "duplex.options"
local script_loader = require "duplex.script"

local M = {}

local USAGE = [[
usage: duplex run APP.lua [options]
       duplex bench echo|broadcast|connect [options]   (duplex bench --help)
       duplex --help | --version

Serves the WebSocket app that APP.lua returns: a table of handlers
(open, message, close, pong_timeout, upgrade; optional path, default "/"),
or an app made with duplex.app. Each option below is also a key of
duplex.app{...}; a flag overrides the app's own value.

options:
]] .. options.help() .. [[

With TLS on, SIGHUP reads the certificate and key files again: new
connections get the new ones, open connections keep going.

duplex bench loads a server with duplex's own C client: echo (throughput,
latency p50/p99/p99.9, every echo checked), broadcast (fan-out through
publish), connect (handshakes per second, server memory per connection).
]]

-- Every flag of every option: "--max-message" -> { option =, key =, ... }.
local FLAGS = {}
for _, o in ipairs(options.list) do
  for _, f in ipairs(options.flags(o)) do FLAGS[f.flag] = f end
end

local function fail(msg)
  io.stderr:write("duplex: ", msg, "\n")
  return 2
end

-- Parses the words after "run". Returns script, options, tables (the
-- keys of table options that flags set: tables.tls.cert) or nil, error.
local function parse_run(args)
  local script, opts, tables = nil, {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local f = FLAGS[a]
    if f then
      local v, err = options.value(f, args[i + 1])
      if v == nil then return nil, err end
      if f.key then
        tables[f.option.name] = tables[f.option.name] or {}
        tables[f.option.name][f.key] = v
      else
        opts[f.option.name] = v
      end
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
  for name, given in pairs(tables) do      -- a table option's flags go together
    local fs = options.flags(options.by_name[name])
    for _, f in ipairs(fs) do
      if given[f.key] == nil then
        for _, g in ipairs(fs) do
          if given[g.key] ~= nil then return nil, g.flag .. " needs " .. f.flag end
        end
      end
    end
  end
  return script, opts, tables
end

local function run(args)
  local script, opts, tables = parse_run(args)
  if not script then return fail(opts) end
  local app, err = script_loader.load_app(script, opts, tables)
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
