--- The `duplex` command line.
local duplex = require "duplex"
local core = require "duplex.core"
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

  --watch                   reload the app when APP.lua changes
  --workers N|auto          serve with N worker processes sharing the port
                            (auto: one per CPU online; default 1, this process)

SIGHUP (or a change, with --watch) loads APP.lua again in the running
process: open connections keep their data and topics and run the new
handlers from their next event; a script that fails to load is refused
and the running code goes on. With TLS on, SIGHUP also reads the
certificate and key files again. SIGTERM or SIGINT shuts down gracefully
(shutdown_timeout); a second one exits at once.

With --workers N (N > 1) a supervisor starts N workers, each a process of
its own (its loop, its Lua state, its copy of the app) listening on the
same port; the kernel spreads connections among them. Signals go to the
supervisor, which passes them on to every worker; a worker that dies is
started again. duplex.worker() tells a worker's index. Publish, history
and presence reach every worker through the supervisor (and, with
--broker redis://..., every box that shares that Redis).

duplex bench loads a server with duplex's own C client: echo (throughput,
latency p50/p99/p99.9, every echo checked), broadcast (fan-out through
publish), connect (handshakes per second, server memory per connection).
]]

-- Every flag of every option: "--max-message" -> { option =, key =, ... }.
local FLAGS = {}
for _, o in ipairs(options.list) do
  for _, f in ipairs(options.flags(o)) do FLAGS[f.flag] = f end
end

local function first_line(s)
  return (tostring(s):match("^[^\n]*"))
end

local MAX_WORKERS = 1024     -- as core.supervise takes them

local function fail(msg)
  io.stderr:write("duplex: ", msg, "\n")
  return 2
end

-- The number of workers --workers asks for ("auto": the CPUs online),
-- or nil, error.
local function parse_workers(word)
  if word == "auto" then return core.cpus() end
  local n = word and word:match("^%d+$") and tonumber(word)
  if not n or n < 1 or n > MAX_WORKERS then
    return nil, ("--workers needs a number of workers from 1 to %d, or auto (got %s)")
      :format(MAX_WORKERS, word and "'" .. word .. "'" or "nothing")
  end
  return n
end

-- Parses the words after "run". Returns script, options, tables (the
-- keys of table options that flags set: tables.tls.cert), watch (--watch),
-- workers (--workers, default 1) or nil, error.
local function parse_run(args)
  local script, opts, tables, watch, workers = nil, {}, {}, false, 1
  local i = 1
  while i <= #args do
    local a = args[i]
    local f = FLAGS[a]
    if a == "--watch" then
      watch = true
      i = i + 1
    elseif a == "--workers" then
      local err
      workers, err = parse_workers(args[i + 1])
      if not workers then return nil, err end
      i = i + 2
    elseif f then
      local v, err = options.value(f, args[i + 1])
      if v == nil then return nil, err end
      if f.key then
        tables[f.option.name] = tables[f.option.name] or {}
        tables[f.option.name][f.key] = v
      else
        opts[f.option.name] = v
      end
      i = i + (f.switch and 1 or 2)
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
  return script, opts, tables, watch, workers
end

-- Loads script again to replace the serving app: its own modules are
-- loaded afresh, its reload hooks get what the old script returned, and it
-- takes over (App:take_over). Returns the new app, or nil and why the
-- reload was refused (then the old app goes on as it was: whatever the
-- attempt made is closed, its timers stopped).
local function reload_app(app, script, opts, tables, own_modules)
  for name in pairs(package.loaded) do
    if own_modules(name) then package.loaded[name] = nil end
  end
  local made = {}
  duplex.record_apps(made)
  local given = {}
  for k, v in pairs(opts) do given[k] = v end
  local new, err = script_loader.load_app(script, given, tables, true)
  duplex.record_apps(nil)
  local ok = new ~= nil
  if ok then
    ok, err = new:run_reload_hooks(app.returned)
    if not ok then err = "error in its reload hook: " .. tostring(err) end
  end
  if ok then
    ok, err = pcall(new.take_over, new, app)
  end
  for _, m in ipairs(made) do
    if m ~= new or not ok then m:close() end
  end
  if not ok then return nil, err end
  return new
end

-- The script's contents, or nil when it cannot be read.
local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- With workers > 1, starts the supervisor (core.supervise) before
-- anything else runs. Returns nil in a process that goes on to serve the
-- app (a worker, or the only process, workers == 1), with what the
-- supervisor told the worker; else the exit status to end with (the
-- supervisor's, once its workers are gone).
local function supervise(workers, opts)
  if workers == 1 then return nil end
  if opts.log_format then core.log_format(opts.log_format) end
  local made, hooks = pcall(core.hub_hooks, opts.broker, opts.node)
  if not made then return fail(first_line(hooks):gsub("^[^:]*:%d+: ", "")) end
  local role, err = core.supervise { workers = workers, hooks = hooks }
  if role == nil then return fail(err) end
  if type(role) == "number" then return role end
  if role.port > 0 then opts.port = role.port end   -- the port the first worker got
  duplex.box_broker = opts.broker            -- what the supervisor's hub reaches (App:listen)
  return nil, role
end

local function run(args)
  local script, opts, tables, watch, workers = parse_run(args)
  if not script then return fail(opts) end
  local status, worker = supervise(workers, opts)
  if status then return status end
  local before = {}                          -- the modules that are not the app's own
  for name in pairs(package.loaded) do before[name] = true end
  local function own_module(name)
    return not before[name] and name ~= "duplex" and not name:find("^duplex%.")
  end
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
  local banner = { "duplex: listening on ", base, "\n" }
  for _, path in ipairs(app.paths) do
    banner[#banner + 1] = ("duplex: %s at %s%s\n"):format(script, base, path)
  end
  if app.static then
    banner[#banner + 1] = ("duplex: pages from %s at %s/\n"):format(app.static, (base:gsub("^ws", "http")))
  end

  local function reload(why)
    local new, rerr = reload_app(app, script, opts, tables, own_module)
    if new then
      app = new
      duplex.log("info", "reloaded", ("reloaded %s (%s)"):format(script, why))
    else
      duplex.log("error", "reload_refused", ("reload of %s (%s) refused, the running code goes on: %s")
        :format(script, why, first_line(rerr)))
    end
  end
  local seen = watch and read_file(script)
  local watcher = watch and duplex.timer(0.25, 0.25, function()
    local now = read_file(script)
    if now and now ~= seen then
      seen = now
      reload("changed")
    end
  end)

  local stopping = false
  local function on_signal()
    if stopping then duplex.stop() return end   -- a second signal: stop now
    stopping = true
    if watcher then watcher:stop() end
    app:shutdown("server shutting down")
  end
  local term = duplex.signal("TERM", on_signal)
  local int = duplex.signal("INT", on_signal)
  local hup = duplex.signal("HUP", function()
    if stopping then return end
    if watch then seen = read_file(script) end
    reload("SIGHUP")
    if not tls then return end
    local reloaded, rerr = app:reload_tls()
    if reloaded then
      duplex.log("info", "tls_reloaded", "TLS certificates reloaded")
    else
      duplex.log("error", "tls_reload_failed", "TLS reload failed, keeping the certificates in use: " .. rerr)
    end
  end)
  -- Listening, and its signals handled: a SIGTERM sent on seeing the
  -- banner is a graceful stop, never the default action (death).
  if worker then                     -- a worker's lines are the supervisor's to print
    local reported, rerr = core.worker_ready(app:port(), table.concat(banner))
    if not reported then duplex.log("error", "worker_report", rerr) end
  else
    io.stdout:write(table.concat(banner))
    io.stdout:flush()
  end
  duplex.run()
  term:stop()
  int:stop()
  hup:stop()
  if watcher then watcher:stop() end
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
