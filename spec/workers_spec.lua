-- duplex run APP --workers N: a supervisor and N worker processes sharing
-- the port (SO_REUSEPORT). Connections spread over the workers; a worker
-- that dies is replaced while the others serve on; SIGTERM, SIGINT and
-- SIGHUP keep their meaning on every worker; a first start that fails
-- stops the whole; the supervisor's death takes the workers with it.

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"
local socket = require "socket"

local FIXTURE = "spec/fixtures/workers.lua"

local function start(script, n, extra)
  local args = { "--workers", tostring(n) }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  return server.start(script, args)
end

-- The pids of the workers line ("duplex: N workers (pids P1 P2)"), by index.
local function worker_pids(srv, n)
  local deadline = wsclient.now() + 5
  while true do
    local pids = srv:stdout():match("\nduplex: " .. n .. " workers %(pids ([%d ]+)%)\n")
    if pids then
      local t = {}
      for p in pids:gmatch("%d+") do t[#t + 1] = tonumber(p) end
      return t
    end
    assert(wsclient.now() < deadline, "no workers line on stdout:\n" .. srv:stdout())
    socket.sleep(0.01)
  end
end

-- Opens a connection; returns it with the index and pid of the worker that
-- took it (as the fixture says on open).
local function open(port)
  local conn = h.open(port)
  local op, data = conn:read_message(5)
  assert(op == 1, "expected the fixture's hello, got " .. tostring(data))
  local index, pid = data:match("^worker (%S+) (%d+)$")
  assert(index, "unexpected hello: " .. data)
  return conn, tonumber(index) or index, tonumber(pid)
end

-- Opens connections until want(index, pid) has said yes to one; returns
-- that one (with its index and pid). The others are closed.
local function open_on(port, want)
  for _ = 1, 60 do
    local conn, index, pid = open(port)
    if want(index, pid) then return conn, index, pid end
    conn:close()
  end
  error("no connection reached the worker wanted in 60 tries")
end

local function open_on_worker(port, index)
  return open_on(port, function(i) return i == index end)
end

local function echo(conn, text, expected)
  assert(conn:send_text(text))
  local op, data = conn:read_message(5)
  assert(op == 1, "expected " .. expected .. ", got " .. tostring(data))
  assert.are.equal(expected, data)
end

-- Whether pid is gone (a zombie no one reaped yet counts as gone).
local function gone(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return true end
  local stat = f:read("*l") or ""
  f:close()
  return stat:match("^%d+ %b() (%a)") == "Z"
end

local function wait_gone(pids, timeout)
  local deadline = wsclient.now() + timeout
  while true do
    local left = {}
    for _, p in ipairs(pids) do
      if not gone(p) then left[#left + 1] = p end
    end
    if #left == 0 then return true end
    if wsclient.now() >= deadline then return nil, left end
    socket.sleep(0.01)
  end
end

describe("--workers", function()
  it("spreads connections over the workers, each a process of its own", function()
    local srv = start(FIXTURE, 2)
    finally(function() srv:kill() end)
    local pids = worker_pids(srv, 2)
    assert.are.equal(2, #pids)
    local seen, conns = {}, {}
    for i = 1, 40 do
      local conn, index, pid = open(srv.port)
      conns[i] = conn
      assert.are.equal(pids[index], pid)             -- worker i is the pid the supervisor named
      assert.are_not.equal(srv.pid, pid)             -- not the supervisor
      seen[index] = (seen[index] or 0) + 1
      echo(conn, "hi", "v1:" .. index .. ":hi")
      if seen[1] and seen[2] and i >= 4 then break end
    end
    assert.is_truthy(seen[1], "no connection reached worker 1")
    assert.is_truthy(seen[2], "no connection reached worker 2")
    for _, c in ipairs(conns) do h.close_cleanly(c) end
    srv:stop()
  end)

  it("is one process of its own by default: no supervisor, duplex.worker() is nil", function()
    local srv = server.start(FIXTURE)
    finally(function() srv:kill() end)
    local conn, index, pid = open(srv.port)
    assert.are.equal("none", index)
    assert.are.equal(srv.pid, pid)
    assert.is_nil(srv:stdout():find("duplex: %d+ workers"), srv:stdout())
    h.close_cleanly(conn)
    srv:stop()
  end)

  it("replaces a worker killed with SIGKILL while the other serves on, and counts it", function()
    local srv = start(FIXTURE, 2, { "--metrics", "/metrics" })
    finally(function() srv:kill() end)
    local a = open_on_worker(srv.port, 1)
    local b, _, old = open_on_worker(srv.port, 2)
    echo(a, "before", "v1:1:before")
    os.execute("kill -KILL " .. old)
    assert(b:expect_eof(5))
    b:close()
    -- Worker 1's connection goes on as if nothing happened.
    for i = 1, 5 do echo(a, "during " .. i, "v1:1:during " .. i) end
    assert(srv:wait_log("worker 2 %(pid " .. old .. "%) was killed by signal 9[^\n]*restart 1%)", 5), srv:log())
    assert(srv:wait_log("worker 2 serves again %(pid %d+, restart 1%)", 5), srv:log())
    local new = tonumber(srv:log():match("worker 2 serves again %(pid (%d+)"))
    assert.are_not.equal(old, new)
    local c, _, pid = open_on_worker(srv.port, 2)
    assert.are.equal(new, pid)
    echo(c, "after", "v1:2:after")
    echo(a, "after", "v1:1:after")
    -- Dying again soon, it waits twice as long (backoff).
    os.execute("kill -KILL " .. new)
    assert(c:expect_eof(5))
    c:close()
    assert(srv:wait_log("worker 2 %(pid " .. new .. "%) was killed by signal 9[^\n]*again in 0%.2 s %(restart 2%)", 5),
      srv:log())
    assert(srv:wait_log("worker 2 serves again %(pid %d+, restart 2%)", 5), srv:log())
    echo(a, "still", "v1:1:still")
    -- Counted where an operator looks: the metrics (and app:stats()) of
    -- every worker, whichever answers.
    for _ = 1, 4 do
      local c = assert(socket.connect("127.0.0.1", srv.port))
      c:settimeout(5)
      assert(c:send("GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
      local resp = c:receive("*a") or ""
      c:close()
      assert.matches("^HTTP/1%.1 200", resp)
      assert.matches("\nduplex_worker_restarts_total 2\n", resp)
    end
    h.close_cleanly(a)
    srv:stop()
  end)

  it("on SIGTERM closes every client of every worker with 1001 and exits 0", function()
    local srv = start(FIXTURE, 2, { "--shutdown-timeout", "5" })
    finally(function() srv:kill() end)
    local a = open_on_worker(srv.port, 1)
    local b = open_on_worker(srv.port, 2)
    local started = wsclient.now()
    srv:signal("TERM")
    for _, c in ipairs { a, b } do
      assert.are.equal(1001, (c:read_close(5, true)))
      c:send_close(1001, "")
    end
    assert.are.equal(0, srv:wait_exit(5), srv:log())
    assert.is_true(wsclient.now() - started < 3, "took " .. (wsclient.now() - started) .. " s")
    assert.is_nil(server.sanitizer_report(srv:log()), srv:log())
    a:close()
    b:close()
  end)

  it("exits at once on a second signal", function()
    local srv = start(FIXTURE, 2, { "--shutdown-timeout", "30" })
    finally(function() srv:kill() end)
    local a = open_on_worker(srv.port, 1)
    local b = open_on_worker(srv.port, 2)
    local started = wsclient.now()
    srv:signal("INT")
    assert.are.equal(1001, (a:read_close(5, true)))   -- nobody answers the close
    assert.are.equal(1001, (b:read_close(5, true)))
    srv:signal("INT")
    assert.are.equal(0, srv:wait_exit(5), srv:log())
    assert.is_true(wsclient.now() - started < 3, "took " .. (wsclient.now() - started) .. " s")
    a:close()
    b:close()
  end)

  it("takes a ^C to its process group as one signal: each worker shuts down gracefully", function()
    local dir = h.tmpdir()
    finally(function() h.remove_dir(dir) end)
    -- A session of its own, as a terminal's foreground job has, its pid
    -- the group's id (setsid execs without forking here).
    local bin = dir .. "/duplex"
    h.write_file(bin, "#!/bin/sh\nexec setsid " .. server.quote(server.BIN) .. ' "$@"\n')
    assert(os.execute("chmod +x " .. server.quote(bin)))
    local srv = server.start(FIXTURE, { "--workers", "2", "--shutdown-timeout", "30" }, { bin = bin })
    finally(function() srv:kill() end)
    local pids = worker_pids(srv, 2)
    local a = open_on_worker(srv.port, 1)
    local b = open_on_worker(srv.port, 2)
    os.execute("kill -INT -" .. srv.pid)
    assert.are.equal(1001, (a:read_close(5, true)))
    assert.are.equal(1001, (b:read_close(5, true)))
    -- Had a worker seen the signal twice, it would have exited at once.
    socket.sleep(0.3)
    assert.is_nil(srv:exited(), srv:log())
    assert.is_false(gone(pids[1]) or gone(pids[2]))
    a:send_close(1001, "")
    b:send_close(1001, "")
    assert.are.equal(0, srv:wait_exit(5), srv:log())
    a:close()
    b:close()
  end)

  it("on SIGHUP reloads the script in every worker, open connections kept", function()
    local dir = h.tmpdir()
    finally(function() h.remove_dir(dir) end)
    local script = dir .. "/app.lua"
    local text = server.read_file(FIXTURE)
    h.write_file(script, text)
    local srv = start(script, 2)
    finally(function() srv:kill() end)
    local a = open_on_worker(srv.port, 1)
    local b = open_on_worker(srv.port, 2)
    echo(a, "x", "v1:1:x")
    h.write_file(script, (text:gsub('local VERSION = "v1"', 'local VERSION = "v2"')))
    srv:signal("HUP")
    local deadline = wsclient.now() + 5
    while srv:count_log("duplex: reloaded " .. script .. " (SIGHUP)", true) < 2 and wsclient.now() < deadline do
      socket.sleep(0.01)
    end
    assert.are.equal(2, srv:count_log("duplex: reloaded " .. script .. " (SIGHUP)", true), srv:log())
    echo(a, "y", "v2:1:y")
    echo(b, "y", "v2:2:y")
    for index = 1, 2 do
      local c = open_on_worker(srv.port, index)
      echo(c, "z", "v2:" .. index .. ":z")
      h.close_cleanly(c)
    end
    h.close_cleanly(a)
    h.close_cleanly(b)
    srv:stop()
  end)

  it("exits non-zero with the error, quickly, when the script does not load", function()
    local dir = h.tmpdir()
    finally(function() h.remove_dir(dir) end)
    local bad = dir .. "/bad.lua"
    h.write_file(bad, "return { open = function(ws) end, error('broken on purpose') }\n")
    local started = wsclient.now()
    local code, out, err = server.run({ "run", bad, "--host", "127.0.0.1", "--port", "0", "--workers", "2" }, 10)
    assert.are_not.equal(0, code, err)
    assert.is_true(wsclient.now() - started < 3, "took " .. (wsclient.now() - started) .. " s")
    assert.matches("broken on purpose", err)
    assert.matches("worker 1 %(pid %d+%) exited with status %d+ before it listened", err)
    assert.is_nil(out:find("listening", 1, true), out)
    assert.is_nil(server.sanitizer_report(err), err)
  end)

  it("shares its port only among its workers: a port in use is an error either way", function()
    local plain = server.start(FIXTURE)
    finally(function() plain:kill() end)
    local code, _, err = server.run({ "run", FIXTURE, "--host", "127.0.0.1", "--port", tostring(plain.port),
      "--workers", "2" }, 10)
    assert.are_not.equal(0, code, err)
    assert.matches("EADDRINUSE", err)
    plain:stop()

    local srv = start(FIXTURE, 2)
    finally(function() srv:kill() end)
    code, _, err = server.run({ "run", FIXTURE, "--host", "127.0.0.1", "--port", tostring(srv.port) }, 10)
    assert.are.equal(2, code, err)
    assert.matches("EADDRINUSE", err)
    srv:stop()
  end)

  it("--workers auto starts one worker per CPU online; 0 and words are refused", function()
    local cpus = tonumber(select(2, server.sh("getconf _NPROCESSORS_ONLN")):match("%d+"))
    local srv = start(FIXTURE, "auto")
    finally(function() srv:kill() end)
    if cpus > 1 then
      assert.are.equal(cpus, #worker_pids(srv, cpus))
    else
      assert.is_nil(srv:stdout():find("duplex: %d+ workers"), srv:stdout())
    end
    srv:stop()
    for _, word in ipairs { "0", "two", "-1", "1.5", "1025" } do
      local code, out, err = server.run({ "run", FIXTURE, "--port", "0", "--workers", word }, 10)
      assert.are.equal(2, code, out .. err)
      assert.are.equal("duplex: --workers needs a number of workers from 1 to 1024, or auto (got '"
        .. word .. "')\n", err)
    end
    local code, _, err = server.run({ "run", FIXTURE, "--workers" }, 10)
    assert.are.equal(2, code)
    assert.matches("%-%-workers needs", err)
  end)

  it("leaves no worker behind when the supervisor is killed with SIGKILL", function()
    local srv = start(FIXTURE, 2)
    finally(function() srv:kill() end)
    local pids = worker_pids(srv, 2)
    local a = open_on_worker(srv.port, 1)
    srv:signal("KILL")
    -- The workers get SIGTERM: a graceful shutdown, so the client hears 1001.
    assert.are.equal(1001, (a:read_close(5, true)))
    a:send_close(1001, "")
    local ok, left = wait_gone(pids, 5)
    assert(ok, "workers left behind: " .. table.concat(left or {}, " "))
    a:close()
  end)
end)
