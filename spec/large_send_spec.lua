-- ws:send of a large payload queues the string itself, not a copy: it must
-- reach the peer intact even when the app dropped it and the collector ran
-- before the write, keep its place among other sends, and be let go of
-- once written or once its connection is gone.

local server = require "spec.support.server"
local h = require "spec.support.helpers"
local socket = require "socket"

local MiB = 1024 * 1024

local function lua_kib(port)
  local conn = h.open(port)
  assert(conn:send_text("mem"))
  local op, data = conn:read_message(5)
  assert.are.equal(1, op)
  h.close_cleanly(conn)
  return assert(tonumber(data))
end

describe("large sends", function()
  local srv
  setup(function() srv = server.start("spec/fixtures/large_send.lua") end)
  teardown(function() srv:stop() end)

  it("arrive intact after a full collection while queued", function()
    local conn = h.open(srv.port)
    assert(conn:send_text("send 6 " .. 2 * MiB))
    for i = 1, 6 do
      h.expect_message(conn, 2, string.rep(string.char(97 + i % 26), 2 * MiB), 10)
    end
    h.close_cleanly(conn)
  end)

  it("keep their order among small sends", function()
    local conn = h.open(srv.port)
    assert(conn:send_text("mixed"))
    h.expect_message(conn, 1, "s1")
    h.expect_message(conn, 1, string.rep("L", 100 * 1024))
    h.expect_message(conn, 1, "s2")
    h.expect_message(conn, 2, string.rep("M", 20 * 1024))
    h.expect_message(conn, 1, "s3")
    h.close_cleanly(conn)
  end)

  it("are let go of when written, and when the peer leaves without reading", function()
    local before = lua_kib(srv.port)
    local reader = h.open(srv.port)
    assert(reader:send_text("send 8 " .. MiB))
    for i = 1, 8 do
      h.expect_message(reader, 2, string.rep(string.char(97 + i % 26), MiB), 10)
    end
    h.close_cleanly(reader)
    local quitter = h.open(srv.port)
    assert(quitter:send_text("send 32 " .. MiB))   -- 32 MiB queued, far more than the socket takes
    socket.sleep(0.2)
    quitter:close()
    -- The server notices the peer left when it next writes or reads.
    local after
    local deadline = socket.gettime() + 5
    repeat
      socket.sleep(0.05)
      after = lua_kib(srv.port)
    until after - before < 2048 or socket.gettime() > deadline
    assert.is_true(after - before < 2048,
      ("Lua memory grew by %.0f KiB and stayed"):format(after - before))
  end)
end)

-- /proc/PID/stat's minflt: the pages the process has touched for the first
-- time (or again after giving them back), as the kernel counts them.
local function minor_faults(pid)
  local f = assert(io.open("/proc/" .. pid .. "/stat"))
  local s = f:read("*a")
  f:close()
  local fields = {}
  for w in s:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = w end
  return assert(tonumber(fields[8]))          -- field 10 of the line, counted from the pid
end

describe("large messages echoed again and again", function()
  -- Each message becomes a Lua string of its size. A VM allocator that
  -- maps such a block for itself and unmaps it once collected (LuaJIT's
  -- own does so from 128 KiB) makes the kernel find and zero 64 fresh
  -- pages for every 256 KiB message: that echo ran ten times slower. The
  -- command gives both VMs an allocator over the process heap, which
  -- keeps its pages (core/cli/alloc.c, core/cli/main.c).
  local srv
  setup(function()
    srv = server.start("spec/fixtures/echo.lua", server.UNLIMITED)
  end)
  teardown(function() srv:stop() end)

  it("reuse the server's pages instead of faulting in new ones", function()
    local load = { "echo", "--url", srv.url .. "/", "--connections", "4", "--depth", "1",
      "--size", tostring(256 * 1024), "--binary", "--json" }
    local function run(seconds)
      local args = { "--seconds", seconds, "--warmup", "0" }
      for _, a in ipairs(load) do args[#args + 1] = a end
      local code, line, out, err = server.bench(args)
      assert.are.equal(0, code, tostring(line) .. "\n" .. out .. "\n" .. err)
      return assert(tonumber(line:match('"received":(%d+)')), line)
    end
    run("0.5")                                   -- the heap grows to what the echo needs
    local before = minor_faults(srv.pid)
    local messages = run("1")
    local per_message = (minor_faults(srv.pid) - before) / messages
    if os.getenv("DUPLEX_ASAN") then
      -- the sanitizer's allocator quarantines freed blocks, so new ones are
      -- new pages, and the command keeps the VM's allocator: the echo holds
      assert.is_true(messages > 0)
      return
    end
    -- 65 a message when every string is mapped anew
    assert.is_true(messages >= 100 and per_message < 8,
      ("%d messages, %.1f minor page faults each"):format(messages, per_message))
  end)
end)
