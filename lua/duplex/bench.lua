--- `duplex bench`: load scenarios against a duplex (or any WebSocket)
-- server, run by the C client core (core/bench): a table for people, one
-- JSON line for scripts.
local core = require "duplex.core"

local M = {}

M.USAGE = [[
usage: duplex bench SCENARIO [options]

Scenarios:
  echo        N connections, each keeping D messages of S bytes in flight;
              every echo is checked (order, length, content)
  broadcast   N subscribers and one publisher on an app that publishes
              what it receives to every other connection (closed loop:
              D messages in flight); every delivery is checked
  connect     opens N connections (at most --concurrency at a time):
              handshakes per second, server memory per connection

Without --url or --server, bench starts its own app (echo at /,
broadcast at /broadcast) with this duplex binary. A server bench starts
runs with --max-connections 0 --max-connections-per-ip 0
--max-message-rate 0: the load comes from one address, faster than any
client; give a server loaded with --url the same.

options:
  --url ws://HOST:PORT/PATH  the server to load (or wss://: over TLS, any
                             certificate accepted: a bench measures)
  --server APP.lua           start `duplex run APP.lua` on a free port and load it
  --publish-url URL          broadcast: the publisher connects here, the
                             subscribers to --url (or the started server):
                             another node of the same broker, to measure
                             delivery across nodes
  --pin CPU                  run the started server on CPU (taskset -c CPU)
  --server-pid PID           read this server's memory (connect)
  --connections N            connections (subscribers for broadcast);
                             default 100 (connect: 1000)
  --depth D                  messages in flight per connection (broadcast:
                             in total); default 16 (broadcast: 1)
  --size S                   message size in bytes, at least 16 (default 32)
  --binary                   binary messages (default text)
  --seconds T                measured window (default 5)
  --warmup T                 traffic before the window (default 2)
  --timeout T                bound on connecting and on draining (default 10)
  --concurrency N            connects in progress at once (default 256)
  --json                     print only the JSON line

Exit status: 0 when every message came back right, 1 when some did not
(errors or lost) or the run failed, 2 for bad usage.
]]

local function fail(msg)
  io.stderr:write("duplex: bench: ", msg, "\n")
  return 2
end

local NUMERIC = {
  ["--connections"] = "connections", ["--depth"] = "depth", ["--size"] = "size",
  ["--seconds"] = "seconds", ["--warmup"] = "warmup", ["--timeout"] = "timeout",
  ["--concurrency"] = "concurrency", ["--server-pid"] = "server_pid", ["--pin"] = "pin",
}
local INTEGER = { connections = true, depth = true, size = true, concurrency = true,
  server_pid = true, pin = true }
local SCENARIOS = { echo = true, broadcast = true, connect = true }

-- Parses the words after "bench". Returns options or nil, error.
local function parse(args)
  local o = {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--url" or a == "--server" or a == "--publish-url" then
      if not args[i + 1] then return nil, a .. " needs a value" end
      o[a:sub(3):gsub("-", "_")] = args[i + 1]
      i = i + 2
    elseif a == "--binary" then
      o.binary = true
      i = i + 1
    elseif a == "--json" then
      o.json = true
      i = i + 1
    elseif NUMERIC[a] then
      local k, v = NUMERIC[a], tonumber(args[i + 1] or "")
      if not v or v < 0 or (INTEGER[k] and v % 1 ~= 0) then
        return nil, a .. " needs a non-negative " .. (INTEGER[k] and "integer" or "number")
      end
      o[k] = v
      i = i + 2
    elseif a:sub(1, 2) == "--" then
      return nil, "unknown option " .. a .. " (see duplex bench --help)"
    elseif o.scenario then
      return nil, "one scenario only (got " .. o.scenario .. " and " .. a .. ")"
    else
      o.scenario = a
      i = i + 1
    end
  end
  if not o.scenario then return nil, "bench needs a scenario: echo, broadcast or connect" end
  if not SCENARIOS[o.scenario] then
    return nil, "unknown scenario '" .. o.scenario .. "' (echo, broadcast or connect)"
  end
  if o.url and o.server then return nil, "--url and --server exclude each other" end
  if o.publish_url and o.scenario ~= "broadcast" then return nil, "--publish-url is for broadcast only" end
  if o.size and o.size < 16 then return nil, "--size must be at least 16" end
  for _, k in ipairs { "connections", "depth", "concurrency" } do
    if o[k] == 0 then return nil, "--" .. k .. " must be at least 1" end
  end
  return o
end

-- "ws[s]://host:port/path?query" -> host, port, path, tls or nil, error
local function parse_url(url)
  local scheme, rest = url:match("^(wss?)://(.+)$")
  if not rest then
    return nil, "--url must be ws://HOST:PORT/PATH or wss://HOST:PORT/PATH"
  end
  local hostport, path = rest:match("^([^/]+)(/.*)$")
  if not hostport then hostport, path = rest, "/" end
  local host, port = hostport:match("^%[(.+)%]:(%d+)$")
  if not host then host, port = hostport:match("^([^:]+):(%d+)$") end
  if not host then host, port = hostport:match("^%[(.+)%]$") or hostport, scheme == "wss" and "443" or "80" end
  port = tonumber(port)
  if not port or port < 1 or port > 65535 then return nil, "bad port in " .. url end
  return host, port, path, scheme == "wss"
end

-- Finds the built-in bench app on package.path.
local function builtin_app()
  local searchpath = package.searchpath or function(name, path)
    for pat in path:gmatch("[^;]+") do
      local f = pat:gsub("%?", (name:gsub("%.", "/")))
      local h = io.open(f, "r")
      if h then h:close() return f end
    end
  end
  return searchpath("duplex.bench_app", package.path)
end

-- The limits meant for real clients (connections per address, messages a
-- second) would measure the refusals of a load that comes from one address
-- at rates no client makes: a server bench starts runs with them off.
local UNLIMITED = { "--max-connections", "0", "--max-connections-per-ip", "0", "--max-message-rate", "0" }

-- Starts the app; returns server {pid, port, errpath} or nil, error.
local function start_server(app, pin)
  local exe = core.exe()
  if not exe then return nil, "cannot find the duplex binary (/proc/self/exe)" end
  local argv = {}
  if pin then
    argv = { "taskset", "-c", tostring(pin) }
  end
  argv[#argv + 1] = exe
  -- Run by a Lua interpreter (the launcher LuaRocks installs), the command
  -- is that interpreter plus the launcher script; the C `duplex` is alone.
  if arg and arg[-1] and arg[0] then argv[#argv + 1] = arg[0] end
  for _, w in ipairs { "run", app, "--host", "127.0.0.1", "--port", "0" } do
    argv[#argv + 1] = w
  end
  for _, w in ipairs(UNLIMITED) do argv[#argv + 1] = w end
  local errpath = os.tmpname()
  local pid, line = core.spawn(argv, errpath, 10)
  if not pid then
    local f = io.open(errpath, "r")
    local log = f and f:read("*a") or ""
    if f then f:close() end
    os.remove(errpath)
    local last = log:match("([^\n]+)\n?$")
    return nil, "cannot start " .. app .. ": " .. (last or line)
  end
  local scheme, port = line:match("listening on (wss?)://[^:]+:(%d+)")
  if not port then
    core.stop_process(pid, "KILL")
    os.remove(errpath)
    return nil, "cannot start " .. app .. ": unexpected first line: " .. line
  end
  return { pid = pid, port = tonumber(port), errpath = errpath, tls = scheme == "wss" }
end

local function stop_server(srv)
  local status = core.stop_process(srv.pid, "TERM", 5)
  os.remove(srv.errpath)
  return status
end

-- ---- output ----

local function json_value(v)
  local t = type(v)
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    if v % 1 == 0 and math.abs(v) < 2 ^ 53 then return ("%d"):format(v) end
    return ("%.6g"):format(v)
  elseif t == "boolean" then
    return tostring(v)
  elseif t == "nil" then
    return "null"
  end
  return '"' .. tostring(v):gsub('[%c"\\]', function(c)
    return ({ ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\t"] = "\\t" })[c]
      or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

-- One JSON object with keys in the given order.
local function json(fields)
  local out = {}
  for _, kv in ipairs(fields) do
    out[#out + 1] = json_value(kv[1]) .. ":" .. json_value(kv[2])
  end
  return "{" .. table.concat(out, ",") .. "}"
end

local function us(v)
  if v >= 10000 then return ("%.1f ms"):format(v / 1000) end
  return ("%.0f us"):format(v)
end

local function table_lines(o, r, url)
  local lines = {}
  local function add(k, v) lines[#lines + 1] = ("  %-12s %s"):format(k, v) end
  local head
  if o.scenario == "connect" then
    head = ("duplex bench connect: %s, %d connections, %d at a time"):format(url, o.connections, o.concurrency)
    add("opened", ("%d in %.3f s"):format(r.opened, r.connect_seconds))
    add("handshakes", ("%.0f /s"):format(r.handshakes_per_s))
    if r.rss_per_conn then
      add("server rss", ("%.1f MiB before, %.1f MiB after: %.0f bytes per connection"):format(
        r.rss_before / 1048576, r.rss_after / 1048576, r.rss_per_conn))
    end
  else
    local what = o.scenario == "echo" and ("%d conns x %d in flight"):format(o.connections, o.depth)
      or ("%d subscribers, 1 publisher, %d in flight"):format(o.connections, o.depth)
    head = ("duplex bench %s: %s%s, %s, %d B %s, %gs after %gs warm-up"):format(o.scenario, url,
      o.publish_url and (" (publisher: " .. o.publish_url .. ")") or "", what,
      o.size, o.binary and "binary" or "text", o.seconds, o.warmup)
    local unit = o.scenario == "echo" and "echoes" or "deliveries"
    add("throughput", ("%.0f %s/s (%.2f MB/s of payload)"):format(r.rate, unit, r.mbytes_per_s))
    add("latency", ("p50 %s  p99 %s  p99.9 %s  max %s  mean %s"):format(
      us(r.p50_us), us(r.p99_us), us(r.p999_us), us(r.max_us), us(r.mean_us)))
    add("messages", ("sent %d  received %d  lost %d"):format(r.sent, r.received, r.lost))
  end
  add("errors", ("%d (content %d, connections %d)%s"):format(r.errors, r.content_errors, r.conn_errors,
    r.first_error and ("; first: " .. r.first_error) or ""))
  table.insert(lines, 1, head)
  return lines
end

local function json_line(o, r, url)
  return json {
    { "scenario", o.scenario }, { "url", url }, { "publish_url", o.publish_url },
    { "connections", o.connections },
    { "depth", o.depth }, { "size", o.size }, { "binary", o.binary and true or false },
    { "seconds", r.seconds }, { "throughput", r.rate }, { "messages", r.messages },
    { "mbytes_per_s", r.mbytes_per_s },
    { "p50_us", r.p50_us }, { "p99_us", r.p99_us }, { "p999_us", r.p999_us },
    { "max_us", r.max_us }, { "mean_us", r.mean_us },
    { "sent", r.sent }, { "received", r.received }, { "lost", r.lost },
    { "errors", r.errors }, { "content_errors", r.content_errors }, { "conn_errors", r.conn_errors },
    { "opened", r.opened }, { "handshakes_per_s", r.handshakes_per_s },
    { "rss_before", r.rss_before }, { "rss_after", r.rss_after },
    { "rss_per_conn", r.rss_per_conn }, { "first_error", r.first_error },
  }
end

-- ---- the command ----

function M.main(args)
  if args[1] == "--help" or args[1] == "-h" then
    io.stdout:write(M.USAGE)
    return 0
  end
  local o, err = parse(args)
  if not o then return fail(err) end
  o.connections = o.connections or (o.scenario == "connect" and 1000 or 100)
  o.depth = o.depth or (o.scenario == "broadcast" and 1 or 16)
  o.size = o.size or 32
  o.seconds = o.seconds or 5
  o.warmup = o.warmup or 2
  o.timeout = o.timeout or 10
  o.concurrency = o.concurrency or 256

  local publish
  if o.publish_url then
    local ph, pp, ppath, ptls = parse_url(o.publish_url)
    if not ph then return fail((pp:gsub("^%-%-url", "--publish-url"))) end
    publish = { host = ph, port = pp, path = ppath, tls = ptls }
  end

  local srv, host, port, path, tls
  if o.url then
    host, port, path, tls = parse_url(o.url)
    if not host then return fail(port) end
  else
    local app = o.server or builtin_app()
    if not app then return fail("cannot find duplex/bench_app.lua on package.path") end
    srv, err = start_server(app, o.pin)
    if not srv then return fail(err) end
    host, port, tls = "127.0.0.1", srv.port, srv.tls
    path = (not o.server and o.scenario == "broadcast") and "/broadcast" or "/"
    o.server_pid = o.server_pid or srv.pid
  end
  local url = ("%s://%s:%d%s"):format(tls and "wss" or "ws", host:find(":", 1, true) and "[" .. host .. "]" or host,
    port, path)

  local ok, r, rerr = pcall(core.bench, {
    scenario = o.scenario, host = host, port = port, path = path,
    connections = o.connections, depth = o.depth, size = o.size, binary = o.binary,
    seconds = o.seconds, warmup = o.warmup, timeout = o.timeout,
    concurrency = o.concurrency, server_pid = o.server_pid, tls = tls, publish = publish,
  })
  if srv then stop_server(srv) end
  if not ok then return fail(tostring(r):match("^[^\n]*")) end
  if not r then
    io.stderr:write("duplex: bench: ", url, ": ", rerr, "\n")
    return 1
  end
  if not o.json then
    io.stdout:write(table.concat(table_lines(o, r, url), "\n"), "\n")
  end
  io.stdout:write(json_line(o, r, url), "\n")
  io.stdout:flush()
  return (r.errors > 0 or r.lost > 0) and 1 or 0
end

return M
