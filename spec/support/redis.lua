-- spec/support/redis.lua: a real redis-server for a spec.
--
--   local redis = require "spec.support.redis"
--   local r = redis.start()          -- a free port, a temporary directory, nothing saved
--   r:url { presence_ttl = 1 }       -- "redis://127.0.0.1:P/0?presence_ttl=1"
--   r:command("FLUSHALL")            -- "OK" (a raw RESP client on luasocket)
--   r:kill()                         -- SIGKILL, and wait until it is gone
--   r:restart()                      -- again on the same port, empty
--   r:stop()                         -- killed, its directory removed; safe twice
--
-- Like spec/support/server.lua, redis-server runs under a small `sh` wrapper
-- that prints its pid and writes "exit N" to a status file when it ends;
-- every wait has a deadline. redis.stop_all() stops every server this module
-- started and has not stopped yet (a spec's teardown, so none is left behind
-- whatever failed).

local socket = require "socket"
local server = require "spec.support.server"

local M = {}

M.BIN = os.getenv("REDIS_SERVER") or "redis-server"
M.START_TIMEOUT = 10

local q = server.quote
local read_file = server.read_file
local function now() return socket.gettime() end

local running = {}          -- every Redis started and not stopped yet

-- A port nobody listens on now: bound to port 0, read back, let go.
local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local Redis = {}
Redis.__index = Redis

-- exited() -> the exit status once the process has ended, else nil.
function Redis:exited()
  local n = read_file(self.status_path):match("exit (%d+)")
  return n and tonumber(n)
end

-- log() -> what redis-server wrote so far.
function Redis:log() return read_file(self.log_path) end

-- Starts redis-server on self.port (the wrapper, as server.lua's); nil,
-- why when it did not come up.
function Redis:spawn()
  os.remove(self.status_path)
  local argv = { q(M.BIN), "--port", self.port, "--bind", "127.0.0.1", "--save", "''", "--appendonly", "no",
    "--dir", q(self.dir), "--daemonize", "no", "--protected-mode", "no", "--logfile", "''" }
  -- The wrapper (bash: dash cannot name a descriptor past 9) first closes
  -- every descriptor it inherited past stderr: a Redis restarted in the
  -- middle of a test would otherwise hold the spec's client sockets open,
  -- and a server waits for those clients to go until its shutdown_timeout.
  local inner = "for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ \"$fd\" -gt 2 ] && eval \"exec $fd>&-\"; done 2>/dev/null; "
    .. "exec </dev/null; " .. table.concat(argv, " ") .. " >>" .. q(self.log_path) .. " 2>&1 & p=$!; echo $p; "
    .. "wait $p; echo \"exit $?\" >" .. q(self.status_path)
  local h = assert(io.popen("bash -c " .. q(inner) .. " 2>/dev/null &", "r"))
  self.pid = tonumber(h:read("*l"))
  h:close()
  if not self.pid then return nil, "no pid from the wrapper" end
  local deadline = now() + M.START_TIMEOUT
  while true do
    if self:exited() then return nil, "redis-server exited: " .. self:log() end
    local ok, reply = pcall(self.command, self, "PING")
    if ok and reply == "PONG" then return true end
    if now() >= deadline then return nil, "redis-server did not answer PING in time: " .. self:log() end
    socket.sleep(0.01)
  end
end

-- start() -> a running Redis on a free port, in a directory of its own.
function M.start()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. q(dir)), "cannot make " .. dir)
  local self = setmetatable({ dir = dir, log_path = dir .. "/redis.log", status_path = dir .. "/status" }, Redis)
  running[self] = true
  for _ = 1, 5 do                  -- a port taken between our look and redis' bind: another one
    self.port = free_port()
    local ok, why = self:spawn()
    if ok then return self end
    self:kill()
    self.why = why
  end
  self:stop()
  error("could not start redis-server: " .. tostring(self.why), 2)
end

-- url([query]) -> "redis://127.0.0.1:PORT/0" with query's settings
-- (sorted, so the URL is the same every time).
function Redis:url(query)
  local parts = {}
  for k, v in pairs(query or {}) do parts[#parts + 1] = k .. "=" .. tostring(v) end
  table.sort(parts)
  return ("redis://127.0.0.1:%d/0"):format(self.port) .. (#parts > 0 and "?" .. table.concat(parts, "&") or "")
end

-- Reads one RESP reply from c: a string, number, nil, or a table; an error
-- reply raises.
local function read_reply(c)
  local line = assert(c:receive("*l"))
  local kind, rest = line:sub(1, 1), line:sub(2)
  if kind == "+" then return rest
  elseif kind == "-" then error("redis: " .. rest, 0)
  elseif kind == ":" then return tonumber(rest)
  elseif kind == "$" then
    local n = tonumber(rest)
    if n < 0 then return nil end
    local s = assert(c:receive(n + 2))
    return s:sub(1, n)
  elseif kind == "*" then
    local n = tonumber(rest)
    if n < 0 then return nil end
    local t = {}
    for i = 1, n do t[i] = read_reply(c) end
    return t
  end
  error("redis: unexpected reply " .. line, 0)
end

-- command(...) -> the reply to one command (words as given), over a
-- connection of its own; raises when Redis is not there or answers an error.
function Redis:command(...)
  local c = assert(socket.tcp())
  c:settimeout(5)
  local ok, err = c:connect("127.0.0.1", self.port)
  if not ok then
    c:close()
    error("redis: " .. tostring(err), 0)
  end
  local words = { ... }
  local out = { "*" .. #words .. "\r\n" }
  for _, w in ipairs(words) do
    w = tostring(w)
    out[#out + 1] = "$" .. #w .. "\r\n" .. w .. "\r\n"
  end
  assert(c:send(table.concat(out)))
  local done, reply = pcall(read_reply, c)
  c:close()
  if not done then error(reply, 0) end
  return reply
end

-- Waits up to timeout for the wrapper to report the exit; true once it did.
function Redis:wait_exit(timeout)
  local deadline = now() + (timeout or 5)
  while not self:exited() do
    if now() >= deadline then return false end
    socket.sleep(0.01)
  end
  return true
end

-- kill(): SIGKILL, as a crash would; returns once the process is gone.
function Redis:kill()
  if self.pid and not self:exited() then
    os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
    assert(self:wait_exit(5), "redis-server (pid " .. self.pid .. ") outlived SIGKILL")
  end
end

-- restart(): again on the same port (nothing saved: it comes back empty).
function Redis:restart()
  self:kill()
  local deadline = now() + 5
  while true do                    -- the port may take a moment to be free again
    local ok, why = self:spawn()
    if ok then return end
    self:kill()
    if now() >= deadline then error("could not restart redis-server: " .. tostring(why), 2) end
    socket.sleep(0.05)
  end
end

-- stop(): killed, its directory removed. Safe to call twice.
function Redis:stop()
  if not running[self] then return end
  running[self] = nil
  pcall(self.kill, self)
  os.execute("rm -rf " .. q(self.dir))
end

-- stop_all(): every Redis this module started and did not stop yet.
function M.stop_all()
  for r in pairs(running) do r:stop() end
end

return M
