-- duplex loaded as a Lua module in the busted process itself: apps started
-- from Lua, the loop driven by the spec (busted has no async mode), and two
-- servers in one process that must not share state.
local duplex = require "duplex"   -- the in-process build: LUA_CPATH set by the Makefile
local socket = require "socket"

local bxor = bit and bit.bxor or load("return function(a, b) return a ~ b end")()

local DEADLINE = 5

-- Runs the loop without blocking until cond() holds or the deadline passes.
local function pump_until(cond, what)
  local limit = socket.gettime() + DEADLINE
  while not cond() do
    duplex.run("nowait")
    if socket.gettime() > limit then error("timed out waiting for " .. what, 2) end
    socket.select(nil, nil, 0.002)
  end
end

-- A minimal non-blocking client: enough to open, send one masked text
-- frame, and read frames back, while this same process serves it.
local function client(port, path, host)
  host = host or "127.0.0.1"
  local c = assert(host:find(":", 1, true) and socket.tcp6() or socket.tcp())
  c:settimeout(0)
  c:connect(host, port)
  local inbuf = ""
  local self = {}
  local function pull()
    local data, err, partial = c:receive(65536)
    local got = data or partial
    if got and #got > 0 then inbuf = inbuf .. got end
    return err
  end
  local function push(s)
    local i = 1
    pump_until(function()
      local n, _, last = c:send(s, i)
      i = (n or last or i - 1) + 1
      return i > #s
    end, "send")
  end
  push("GET " .. path .. " HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n" ..
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" ..
    "Sec-WebSocket-Version: 13\r\n\r\n")
  pump_until(function() pull() return inbuf:find("\r\n\r\n", 1, true) end, "101")
  local head_end = inbuf:find("\r\n\r\n", 1, true)
  self.status = tonumber(inbuf:match("^HTTP/1%.1 (%d+)"))
  self.accept = inbuf:match("Sec%-WebSocket%-Accept: ([^\r]+)")
  inbuf = inbuf:sub(head_end + 4)

  function self.send_text(s)
    assert(#s < 126)
    local key = { 0x37, 0xfa, 0x21, 0x3d }
    local out = { string.char(0x81, 0x80 + #s), string.char(key[1], key[2], key[3], key[4]) }
    for i = 1, #s do
      out[#out + 1] = string.char(bxor(s:byte(i), key[(i - 1) % 4 + 1]))
    end
    push(table.concat(out))
  end
  function self.read_frame()
    pump_until(function()
      pull()
      if #inbuf < 2 then return false end
      local len = inbuf:byte(2) % 128
      assert(len < 126, "short frames only")
      return #inbuf >= 2 + len
    end, "a frame")
    local op, len = inbuf:byte(1) % 16, inbuf:byte(2) % 128
    local payload = inbuf:sub(3, 2 + len)
    inbuf = inbuf:sub(3 + len)
    return op, payload
  end
  function self.eof()
    local err = pull()
    return err == "closed"
  end
  function self.close() c:close() end
  return self
end

describe("duplex as a module #inprocess", function()
  it("serves an app started from Lua, handlers running in this process", function()
    local events = {}
    local app = duplex.app { host = "127.0.0.1", port = 0 }
    app:ws("/up", {
      open = function(ws) events[#events + 1] = "open " .. ws.id end,
      message = function(ws, data) ws:send(data:upper()) end,
      close = function(ws, code) events[#events + 1] = "close " .. code end,
    })
    assert.is_true(app:listen())
    assert.is_true(app:port() > 0)

    local c = client(app:port(), "/up")
    assert.are.equal(101, c.status)
    assert.are.equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", c.accept)
    c.send_text("hello")
    local op, payload = c.read_frame()
    assert.are.equal(1, op)
    assert.are.equal("HELLO", payload)

    app:shutdown()
    op, payload = c.read_frame()
    assert.are.equal(8, op)
    assert.are.equal(1001, payload:byte(1) * 256 + payload:byte(2))
    c.close()
    pump_until(function() return app:connections() == 0 end, "the connection to go")
    -- The client dropped TCP without a close frame: the code duplex sent.
    assert.are.same({ "open 1", "close 1001" }, events)
    app:close()
  end)

  it("keeps two servers in one process apart", function()
    local a = duplex.app { host = "127.0.0.1", port = 0, max_message = 8 }
    local b = duplex.app { host = "127.0.0.1", port = 0 }
    a:ws("/", { message = function(ws, d) ws:send("a:" .. d) end })
    b:ws("/", { message = function(ws, d) ws:send("b:" .. d) end })
    assert(a:listen())
    assert(b:listen())
    assert.are_not.equal(a:port(), b:port())
    local ca, cb = client(a:port(), "/"), client(b:port(), "/")
    cb.send_text("0123456789")             -- over a's limit, within b's
    local op, payload = cb.read_frame()
    assert.are.same({ 1, "b:0123456789" }, { op, payload })
    ca.send_text("0123456789")
    op, payload = ca.read_frame()
    assert.are.equal(8, op)
    assert.are.equal(1009, payload:byte(1) * 256 + payload:byte(2))
    ca.close()
    cb.close()
    a:close()
    b:close()
  end)

  it("listens on IPv6 and IPv4 alike when no host is given", function()
    local app = duplex.app { port = 0 }
    app:ws("/", { message = function(ws, d) ws:send(ws.remote:sub(1, 1) .. d) end })
    assert(app:listen())
    local probe = socket.tcp6()
    local has_v6 = probe and probe:bind("::1", 0)
    if probe then probe:close() end
    local v6 = has_v6 and client(app:port(), "/", "::1")
    if v6 then                                          -- a machine without IPv6 tests IPv4 only
      v6.send_text("x")
      assert.are.same({ 1, "[x" }, { v6.read_frame() })   -- remote "[::1]:port"
      v6.close()
    end
    local v4 = client(app:port(), "/", "127.0.0.1")
    v4.send_text("x")
    assert.are.same({ 1, "1x" }, { v4.read_frame() })   -- remote "127.0.0.1:port"
    v4.close()
    app:close()
  end)

  it("reports a port in use as nil, message, name", function()
    local a = duplex.app { host = "127.0.0.1", port = 0 }
    a:ws("/", {})
    assert(a:listen())
    local b = duplex.app { host = "127.0.0.1", port = a:port() }
    local ok, msg, name = b:listen()
    assert.is_nil(ok)
    assert.matches("in use", msg)
    assert.are.equal("EADDRINUSE", name)
    a:close()
    b:close()
  end)

  it("parse_query decodes a query string's parameters", function()
    assert.are.same({}, duplex.parse_query(nil))
    assert.are.same({}, duplex.parse_query(""))
    assert.are.same({ name = "ada lovelace", room = "den", flag = "", ["a b"] = "é&=" },
      duplex.parse_query("name=ada+lovelace&room=den&flag&a%20b=%C3%A9%26%3D&room=attic"))
    assert.has_error(function() duplex.parse_query(42) end,
      "bad argument #1 to 'parse_query' (string expected, got number)")
  end)

  it("raises on misuse, naming the argument", function()
    assert.has_error(function() duplex.app { nonsense = 1 } end, "unknown option 'nonsense'")
    assert.has_error(function() duplex.app { port = "x" } end)
    local app = duplex.app { port = 0 }
    assert.has_error(function() app:ws("/", { mesage = print }) end, "unknown handler 'mesage'")
    assert.has_error(function() app:ws("nope", {}) end)
    app:close()
  end)

  it("app:stats() has exactly the counters README.md names, each a number", function()
    local f = assert(io.open("README.md"))
    local readme = f:read("*a")
    f:close()
    local para = assert(readme:match("`app:stats%(%)` returns counters:(.-)\n\n"), "README names no counters")
    local named = {}
    for k in para:gmatch("`([%a_]+)`") do
      if k:match("^[a-z_]+$") and not k:match("^max_") then named[k] = true end
    end
    local app = duplex.app { host = "127.0.0.1", port = 0 }
    local st = app:stats()
    app:close()
    for k, v in pairs(st) do
      assert.is_true(named[k] == true, "README.md does not name the counter " .. k)
      assert.are.equal("number", type(v), k)
    end
    for k in pairs(named) do assert.is_not_nil(st[k], "README.md names " .. k .. ", which stats() lacks") end
  end)
end)

