-- duplex.connect: a client on the same loop as the server, in this process.
local duplex = require "duplex"   -- the in-process build: LUA_CPATH set by the Makefile
local socket = require "socket"

local function run_until(cond, seconds)
  local limit = socket.gettime() + (seconds or 5)
  while not cond() and socket.gettime() < limit do duplex.run("once") end
  return cond()
end

describe("duplex.connect #inprocess", function()
  local app
  before_each(function()
    app = duplex.app { host = "127.0.0.1", port = 0 }
    app:ws("/echo", {
      upgrade = function(req) req.data = { query = req.query } end,
      message = function(ws, data, binary)
        if data == "bye" then ws:close(4000, "as asked") return end
        ws:send((ws.data.query or "") .. ":" .. data, binary)
      end,
    })
    assert(app:listen())
  end)
  after_each(function() app:close() end)

  it("opens, exchanges text and binary, and sees the server's close code", function()
    local got, closed = {}, nil
    local c = assert(duplex.connect(("ws://127.0.0.1:%d/echo?x=1"):format(app:port()), {
      open = function(cl)
        assert(cl:send("hello"))
        assert(cl:send("\0\1\2", true))
      end,
      message = function(_, data, binary) got[#got + 1] = { data, binary } end,
      close = function(_, code, reason) closed = { code, reason } end,
    }))
    assert.is_true(run_until(function() return #got == 2 end))
    assert.are.same({ { "x=1:hello", false }, { "x=1:\0\1\2", true } }, got)
    assert.is_true(c:is_open())
    assert(c:send("bye"))
    assert.is_true(run_until(function() return closed ~= nil end))
    assert.are.equal(4000, closed[1])
    assert.is_false(c:is_open())
    assert.has_error(function() c:send("late") end, "attempt to use a closed connection")
  end)

  it("reports a refused handshake (404) through close, once", function()
    local closes = {}
    local opened = false
    assert(duplex.connect(("ws://127.0.0.1:%d/nowhere"):format(app:port()), {
      open = function() opened = true end,
      close = function(_, code, reason) closes[#closes + 1] = { code, reason } end,
    }))
    assert.is_true(run_until(function() return #closes > 0 end))
    duplex.run("nowait")
    assert.is_false(opened)
    assert.are.equal(1, #closes)
    assert.are.equal(1006, closes[1][1])
    assert.matches("404", closes[1][2])
  end)

  it("reports a refused connection through close", function()
    local probe = socket.bind("127.0.0.1", 0)      -- a port nobody listens on
    local _, port = probe:getsockname()
    probe:close()
    local reason
    assert(duplex.connect(("ws://127.0.0.1:%d/"):format(port), {
      close = function(_, code, why) reason = code .. " " .. why end,
    }))
    assert.is_true(run_until(function() return reason ~= nil end))
    assert.matches("^1006 connect:", reason)
  end)

  it("returns nil, message, name for a host that does not resolve; raises on misuse", function()
    local c, msg, name = duplex.connect("ws://no-such-host.invalid:80/", {})
    assert.is_nil(c)
    assert.matches("cannot resolve", msg)
    assert.are.equal("EAI_NONAME", name)
    assert.has_error(function() duplex.connect("http://x/", {}) end)
    assert.has_error(function() duplex.connect("ws://127.0.0.1:1/", { open = 1 }) end,
      "bad handler 'open' (function expected, got number)")
  end)
end)

describe("duplex.connect against a server that pings and never reads #inprocess", function()
  local function rss_kib()
    local f = assert(io.open("/proc/self/status"))
    local kib = tonumber(f:read("*a"):match("VmRSS:%s*(%d+)"))
    f:close()
    return kib
  end

  it("stops answering past 1 MiB unsent: this process's memory stays flat", function()
    local seconds = 3
    local srv = assert(io.popen("exec /usr/bin/python3 spec/interop/ping_flood_server.py " .. seconds))
    local port = assert(tonumber(srv:read("*l")), "the flooding server did not start")
    local before, max = rss_kib(), 0
    local opened, closed = false, false
    assert(duplex.connect(("ws://127.0.0.1:%d/"):format(port), {
      open = function() opened = true end,
      close = function() closed = true end,
    }))
    run_until(function()
      max = math.max(max, rss_kib())
      return closed
    end, seconds + 10)
    local report = srv:read("*a")
    srv:close()
    assert.is_true(opened)
    assert.is_true(closed)                     -- the server went away at the end of the flood
    local pings = tonumber(report:match("pings (%d+)"))
    assert(pings and pings > 100000, "no flood: " .. report)
    -- Before the cap, every pong was queued: hundreds of MiB in 3 s. (Not
    -- under ASan, whose quarantine keeps every freed block a while.)
    if not os.getenv("DUPLEX_ASAN") then
      assert.is_true(max - before < 16 * 1024, ("RSS grew by %d KiB under %d pings"):format(max - before, pings))
    end
  end)
end)
