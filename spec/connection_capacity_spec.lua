-- How many connections a server can hold, and what each costs at rest:
-- the soft limit on open files is raised to the hard limit (or else about
-- a thousand connections would fill it), and an idle connection, its Lua
-- handle and a ws.data table included, costs at most 1 KiB of resident
-- memory, measured as the growth over 10 000 of them.

local server = require "spec.support.server"
local cjson = require "cjson"

-- `duplex bench connect` of n connections against srv: exit code, its
-- JSON line (or a description of what came instead) and that line decoded.
local function connect(srv, n)
  local code, line, out, err = server.bench({ "connect", "--url", srv.url .. "/",
    "--connections", tostring(n), "--server-pid", tostring(srv.pid), "--timeout", "60",
    "--json" }, 120)
  if not line then
    return code, "no JSON line; stdout: " .. out .. "\nstderr: " .. err, {}
  end
  return code, line, cjson.decode(line)
end

-- Soft and hard limits on open files of process pid, from /proc.
local function nofile(pid)
  local f = assert(io.open("/proc/" .. pid .. "/limits"))
  local s = f:read("*a")
  f:close()
  local soft, hard = s:match("Max open files%s+(%S+)%s+(%S+)")
  return soft, hard
end

local function hard_limit()
  local _, out = server.sh("ulimit -Hn")
  return tonumber(out:match("%d+")) or math.huge     -- "unlimited"
end

describe("connection capacity", function()
  local srv
  after_each(function()
    if srv then srv:stop() end
    srv = nil
  end)

  it("raises a low soft limit on open files and serves past it", function()
    assert.is_true(hard_limit() >= 1024, "this machine's hard limit on open files is below 1024")
    srv = server.start("scripts/echo.lua", server.UNLIMITED, { nofile = 64 })
    local soft, hard = nofile(srv.pid)
    assert.are.equal(hard, soft)
    -- five times what the limit it was started under allows
    local code, line, r = connect(srv, 320)
    assert.are.equal(0, code, line)
    assert.are.equal(320, r.opened, line)
    assert.are.equal(0, r.errors, line)
    assert.is_nil(srv:log():find("cannot accept", 1, true), srv:log())
  end)

  it("holds 10 000 idle connections with ws.data at most 1 KiB each", function()
    if os.getenv("DUPLEX_ASAN") then
      -- the sanitizer's allocator pads and quarantines every block: its
      -- figure says nothing of the server's own; the count still holds
      srv = server.start("spec/fixtures/named_idle.lua", server.UNLIMITED)
      local code, line, r = connect(srv, 2000)
      assert.are.equal(0, code, line)
      assert.are.equal(2000, r.opened, line)
      return
    end
    assert.is_true(hard_limit() >= 10100, "10 000 connections need a hard limit on open files above 10 100")
    srv = server.start("spec/fixtures/named_idle.lua", server.UNLIMITED)
    local code, line, r = connect(srv, 10000)
    assert.are.equal(0, code, line)
    assert.are.equal(10000, r.opened, line)
    assert.are.equal(0, r.errors, line)
    local per_conn = r.rss_per_conn
    assert.are.equal("number", type(per_conn), line)
    assert.is_true(per_conn <= 1024, ("%.0f bytes of RSS per idle connection"):format(per_conn))
  end)
end)
