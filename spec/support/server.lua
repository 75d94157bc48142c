-- spec/support/server.lua: start and stop a duplex server for a spec.
--
--   local server = require "spec.support.server"
--   local srv = server.start("spec/fixtures/echo.lua", { "--max-message", "1024" })
--   ... srv.port ...
--   srv:stop()     -- SIGTERM; asserts exit 0 and a clean stderr
--
-- The server runs under a small `sh` wrapper that prints its pid, waits for
-- it and writes "exit N" to a status file; stdout and stderr go to temporary
-- files that are polled with a deadline (no fixed sleeps, no fixed ports).

local socket = require "socket"

local M = {}

M.BIN = os.getenv("DUPLEX_BIN") or "build/lua5.4/duplex"
M.START_TIMEOUT = tonumber(os.getenv("DUPLEX_START_TIMEOUT") or "") or 10
-- Past the server's default shutdown_timeout (10 s), by which it exits
-- whatever its clients do.
M.STOP_TIMEOUT = tonumber(os.getenv("DUPLEX_STOP_TIMEOUT") or "") or 15

local POLL = 0.005 -- seconds between two looks at a file while waiting

-- Flags that turn off the limits meant for real clients (connections at
-- once and per address, messages a second): for a spec that loads a
-- server from one address, as `duplex bench` does.
M.UNLIMITED = { "--max-connections", "0", "--max-connections-per-ip", "0", "--max-message-rate", "0" }

local function now() return socket.gettime() end

-- Shell-quote one word.
local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = q

-- env_prefix(env) -> "env 'A=1' 'B=2' " for { A = "1", B = "2" }, "" for nil:
-- words that run the command after them with those variables set.
local function env_prefix(env)
  if not env then return "" end
  local words = {}
  for k, v in pairs(env) do words[#words + 1] = q(k .. "=" .. v) end
  table.sort(words)
  return "env " .. table.concat(words, " ") .. " "
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a") or ""
  f:close()
  return s
end
M.read_file = read_file

local function exit_code_of(status_text)
  local n = status_text:match("exit (%d+)")
  return n and tonumber(n)
end

local SANITIZER_MARKERS = { "AddressSanitizer", "LeakSanitizer", "runtime error:", "ThreadSanitizer" }

-- sanitizer_report(text) -> the first marker found, or nil.
function M.sanitizer_report(text)
  for _, m in ipairs(SANITIZER_MARKERS) do
    if text:find(m, 1, true) then return m end
  end
end

local Server = {}
Server.__index = Server

-- log() -> everything the server wrote to stderr so far.
function Server:log() return read_file(self.stderr_path) end

-- stdout() -> everything the server wrote to stdout so far.
function Server:stdout() return read_file(self.stdout_path) end

-- exited() -> exit code if the server process has ended, else nil.
function Server:exited() return exit_code_of(read_file(self.status_path)) end

-- wait_log(pattern [, timeout [, plain]]) -> the log once `pattern` occurs in
-- it, or nil, log after the timeout (default 3 s).
function Server:wait_log(pattern, timeout, plain)
  local deadline = now() + (timeout or 3)
  while true do
    local log = self:log()
    if log:find(pattern, 1, plain) then return log end
    if now() >= deadline then return nil, log end
    socket.sleep(POLL)
  end
end

-- count_log(pattern [, plain]) -> number of occurrences in the log.
function Server:count_log(pattern, plain)
  local log, n, init = self:log(), 0, 1
  while true do
    local s, e = log:find(pattern, init, plain)
    if not s then return n end
    n = n + 1
    init = e + 1
  end
end

local function cleanup(self)
  for _, p in ipairs { self.stdout_path, self.stderr_path, self.status_path } do
    os.remove(p)
  end
end

-- signal(name): send a signal (e.g. "TERM", "KILL") to the server.
function Server:signal(name)
  os.execute("kill -" .. name .. " " .. self.pid .. " 2>/dev/null")
end

-- wait_exit([timeout]) -> exit code, or nil after the timeout.
function Server:wait_exit(timeout)
  local deadline = now() + (timeout or M.STOP_TIMEOUT)
  while true do
    local code = self:exited()
    if code then return code end
    if now() >= deadline then return nil end
    socket.sleep(POLL)
  end
end

-- stop(): SIGTERM, wait for the exit (with a deadline), then assert it was
-- clean: exit status 0 and no sanitizer report on stderr. Returns the log.
-- Safe to call twice (the second call does nothing).
function Server:stop()
  if self.stopped then return self.final_log end
  self.stopped = true
  local code = self:exited()
  local was_running = code == nil
  if was_running then
    self:signal("TERM")
    code = self:wait_exit()
  end
  local log = self:log()
  self.final_log = log
  if not code then
    self:signal("KILL")
    self:wait_exit(2)
    cleanup(self)
    error("duplex did not exit within " .. M.STOP_TIMEOUT .. " s of SIGTERM; stderr:\n" .. log, 2)
  end
  cleanup(self)
  self.exit_code = code
  if not was_running then
    error("duplex had already exited (status " .. code .. ") before stop(); stderr:\n" .. log, 2)
  end
  if code ~= 0 then
    error("duplex exited with status " .. code .. " after SIGTERM; stderr:\n" .. log, 2)
  end
  local marker = M.sanitizer_report(log)
  if marker then
    error("duplex stderr has a sanitizer report (" .. marker .. "):\n" .. log, 2)
  end
  return log
end

-- kill(): end the server without asserting anything (cleanup after errors).
function Server:kill()
  if self.stopped then return end
  self.stopped = true
  if not self:exited() then
    self:signal("KILL")
    self:wait_exit(2)
  end
  cleanup(self)
end

-- start(app_path [, extra_args [, o]]) -> server {port, pid, stderr_path,
-- stop(), log(), ...}. Raises (with the server's stderr) if the server does
-- not print its listening line within the start timeout. o.bin overrides
-- the binary; o.env sets environment variables for it ({ NAME = value });
-- o.host the --host value; o.nofile a soft limit on open files to start it
-- under (default: the caller's).
function M.start(app_path, extra_args, o)
  o = o or {}
  local self = setmetatable({
    stdout_path = os.tmpname(),
    stderr_path = os.tmpname(),
    status_path = os.tmpname(),
    app = app_path,
  }, Server)
  local argv = { env_prefix(o.env) .. q(o.bin or M.BIN), "run", q(app_path), "--host", q(o.host or "127.0.0.1"), "--port", "0" }
  for _, a in ipairs(extra_args or {}) do argv[#argv + 1] = q(a) end
  -- The server raises its own open-file limit to the hard one when it
  -- listens; o.nofile starts it under a lower soft limit to check that.
  local limit = o.nofile and ("ulimit -Sn " .. math.floor(o.nofile) .. "; ") or ""
  local inner = limit .. table.concat(argv, " ")
    .. " >" .. q(self.stdout_path) .. " 2>" .. q(self.stderr_path) .. " </dev/null & p=$!; echo $p; "
    .. "wait $p; echo \"exit $?\" >" .. q(self.status_path)
  -- The outer shell backgrounds the wrapper and returns at once; the wrapper
  -- keeps the pipe only to print the pid.
  local h = assert(io.popen("sh -c " .. q(inner) .. " &", "r"))
  local pid = h:read("*l")
  h:close()
  self.pid = tonumber(pid)
  if not self.pid then
    cleanup(self)
    error("could not start duplex (" .. M.BIN .. "): no pid from the wrapper", 2)
  end

  local deadline = now() + M.START_TIMEOUT
  while true do
    local out = self:stdout()
    local line = out:match("^([^\n]*)\n")
    if line then
      local scheme, port = line:match("^duplex: listening on (wss?)://127%.0%.0%.1:(%d+)$")
      if not port then
        local log = self:log()
        self:kill()
        error("unexpected first stdout line from duplex: " .. string.format("%q", line)
          .. "\nstderr:\n" .. log, 2)
      end
      self.port = tonumber(port)
      self.url = scheme .. "://127.0.0.1:" .. port
      return self
    end
    local code = self:exited()
    if code then
      local log = self:log()
      self.stopped = true
      cleanup(self)
      error("duplex exited (status " .. code .. ") before listening: " .. M.BIN .. " run "
        .. app_path .. "\nstderr:\n" .. log, 2)
    end
    if now() >= deadline then
      local log = self:log()
      self:kill()
      error("duplex printed no listening line within " .. M.START_TIMEOUT .. " s\nstderr:\n" .. log, 2)
    end
    socket.sleep(POLL)
  end
end

-- run(args [, timeout [, o]]) -> exit_code, stdout, stderr: run the binary
-- to its end (for CLI specs), killed after `timeout` seconds (default 10);
-- o.bin and o.env as for start().
function M.run(args, timeout, o)
  o = o or {}
  local out, err = os.tmpname(), os.tmpname()
  local argv = { env_prefix(o.env) .. q(o.bin or M.BIN) }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = q(a) end
  local cmd = "timeout -s KILL " .. tostring(timeout or 10) .. " " .. table.concat(argv, " ")
    .. " >" .. q(out) .. " 2>" .. q(err) .. " </dev/null; echo \"exit $?\""
  local h = assert(io.popen(cmd, "r"))
  local status = h:read("*a")
  h:close()
  local so, se = read_file(out), read_file(err)
  os.remove(out); os.remove(err)
  return exit_code_of(status), so, se
end

-- bench(args [, timeout]) -> exit_code, its JSON line (or nil), stdout,
-- stderr: `duplex bench ARGS...` run to its end (default bound 30 s); a
-- sanitizer report in its stderr raises.
function M.bench(args, timeout)
  local argv = { "bench" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local code, out, err = M.run(argv, timeout or 30)
  local line
  for l in out:gmatch("[^\n]+") do
    if l:sub(1, 1) == "{" then line = l end
  end
  local report = M.sanitizer_report(err)
  if report then error("duplex bench: " .. report .. "\n" .. err, 2) end
  return code, line, out, err
end

-- sh(cmd) -> exit_code, combined output: run a shell command to its end.
function M.sh(cmd)
  local h = assert(io.popen("( " .. cmd .. " ) 2>&1; echo \"exit $?\"", "r"))
  local s = h:read("*a")
  h:close()
  local body, code = s:match("^(.-)exit (%d+)%s*$")
  return tonumber(code), body or s
end

return M
