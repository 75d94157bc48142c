-- Static files are sent from their descriptor as the peer takes them, never
-- read whole into memory: a large file arrives whole and in order (also
-- with a request pipelined behind it), and slow concurrent downloads of it
-- leave the server's memory flat. Before, 20 clients taking a 50 MB file
-- at 100 KB/s each grew the server from 5 to 682 MiB within 5 seconds.

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"
local socket = require "socket"

local MIB = 1024 * 1024
local BIG = 50 * MIB
local SLOW_CLIENTS, SLOW_RATE, SLOW_SECONDS = 20, 100 * 1024, 5

-- The byte content of the big file: block b (of 1 MiB) repeats "%07x|"
-- of b, so a block sent out of place or shifted shows.
local function block(b) return string.rep(("%07x|"):format(b), MIB / 8) end

local function get(name, extra)
  return "GET /" .. name .. " HTTP/1.1\r\nHost: x\r\n" .. (extra or "") .. "\r\n"
end

describe("static files", function()
  local dir, srv
  setup(function()
    dir = h.tmpdir()
    assert(os.execute("mkdir '" .. dir .. "/www'"))
    local f = assert(io.open(dir .. "/www/big.bin", "wb"))
    for b = 0, BIG / MIB - 1 do f:write(block(b)) end
    f:close()
    f = assert(io.open(dir .. "/www/small.txt", "wb"))
    f:write("small file\n")
    f:close()
    f = assert(io.open(dir .. "/app.lua", "wb"))
    f:write(("local app = require('duplex').app { static = %q }\n"):format(dir .. "/www"),
      "app:ws('/', { message = function(ws, data, binary) ws:send(data, binary) end })\n",
      "return app\n")
    f:close()
    srv = server.start(dir .. "/app.lua", { "--max-backpressure", "1048576" })
  end)
  teardown(function()
    srv:stop()
    h.remove_dir(dir)
  end)

  it("sends a 50 MiB file whole and in order, then answers the request behind it", function()
    local conn = assert(wsclient.tcp(srv.port))
    assert(conn:send(get("big.bin") .. get("small.txt")))
    local resp = assert(conn:read_http_response(30))
    assert.are.equal(200, resp.status)
    assert.are.equal(tostring(BIG), resp.headers["content-length"])
    assert.are.equal(BIG, #resp.body)
    for b = 0, BIG / MIB - 1 do
      local got = resp.body:sub(b * MIB + 1, (b + 1) * MIB)
      if got ~= block(b) then error(("block %d of the file arrived wrong"):format(b)) end
    end
    local small = assert(conn:read_http_response(5))
    assert.are.equal(200, small.status)
    assert.are.equal("small file\n", small.body)
    conn:close()
  end)

  it("answers HEAD and a matching If-None-Match without a body", function()
    local conn = assert(wsclient.tcp(srv.port))
    assert(conn:send("HEAD /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"))
    local head = assert(conn:read_http_response(5, { head = true }))
    assert.are.equal(200, head.status)
    assert.are.equal(tostring(BIG), head.headers["content-length"])
    local etag = assert(head.headers["etag"])
    assert(conn:send(get("big.bin", "If-None-Match: " .. etag .. "\r\n") .. get("small.txt")))
    local nm = assert(conn:read_http_response(5))
    assert.are.equal(304, nm.status)
    assert.are.equal("", nm.body)
    local small = assert(conn:read_http_response(5))
    assert.are.equal("small file\n", small.body)
    conn:close()
  end)

  it("keeps the server's memory flat under 20 slow downloads of the file", function()
    local before = h.proc_kib(srv.pid, "VmRSS")
    local clients, got = {}, {}
    for i = 1, SLOW_CLIENTS do
      local c = assert(socket.tcp4())
      assert(c:setoption("recv-buffer-size", 65536))
      assert(c:connect("127.0.0.1", srv.port))
      assert(c:send(get("big.bin")))
      c:settimeout(0)
      clients[i], got[i] = c, 0
    end
    -- Each client takes SLOW_RATE bytes a second, in 10 steps a second.
    local max, started = before, wsclient.now()
    local step = 0
    while wsclient.now() - started < SLOW_SECONDS do
      step = step + 1
      for i, c in ipairs(clients) do
        local want = math.floor(SLOW_RATE * step / 10) - got[i]
        if want > 0 then
          local data, err, partial = c:receive(want)
          local piece = data or partial or ""
          got[i] = got[i] + #piece
          assert(err == nil or err == "timeout", ("client %d: %s after %d bytes"):format(i, tostring(err), got[i]))
        end
      end
      max = math.max(max, h.proc_kib(srv.pid, "VmRSS"))
      socket.sleep(0.1)                -- pacing slow readers, not waiting for an event
    end
    h.assert_alive(srv.port, "/")      -- another client is served meanwhile
    for i, c in ipairs(clients) do
      -- every download made progress at about the rate its reader allowed
      assert.is_true(got[i] > SLOW_RATE * SLOW_SECONDS / 2, ("client %d got %d bytes"):format(i, got[i]))
      c:close()
    end
    local grown = max - before
    -- Each download may cost about max_backpressure (1 MiB); sending from
    -- the descriptor makes it cost almost nothing.
    assert.is_true(grown < SLOW_CLIENTS * 1024, ("RSS grew by %d KiB under %d slow downloads"):format(grown, SLOW_CLIENTS))
  end)
end)
