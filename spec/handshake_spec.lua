-- The HTTP upgrade: RFC 6455 section 4 and the contract's answers
-- (400 / 426 / 431 / 404), byte-at-a-time requests, and upgrade(req).

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"

-- send_request(port, bytes [, o]) -> conn, resp: raw request, parsed response.
local function send_request(port, bytes, o)
  o = o or {}
  local conn = assert(wsclient.tcp(port))
  if o.bytewise then
    assert(conn:send_bytewise(bytes))
  else
    conn:send(bytes) -- may fail if the server answers and closes early
  end
  local resp, err, raw = conn:read_http_response(3)
  assert(resp, "no HTTP response (" .. tostring(err) .. "); got: " .. tostring(raw))
  return conn, resp
end

-- expect_status(port, bytes, status [, o]) -> resp: the server answers
-- `status`, then closes the connection, then still serves a good client.
local function expect_status(port, bytes, status, o)
  local conn, resp = send_request(port, bytes, o)
  assert.are.equal(status, resp.status, "response was:\n" .. resp.raw)
  assert.is_nil(resp.headers["sec-websocket-accept"], "a rejected request must not get an accept key")
  local eof = conn:expect_eof(3)
  assert(eof, "server kept the TCP connection open after answering " .. status)
  conn:close()
  h.assert_alive(port)
  return resp
end

local function req(o)
  return wsclient.request(o)
end

describe("handshake", function()
  local srv
  setup(function() srv = server.start("spec/fixtures/echo.lua") end)
  teardown(function() srv:stop() end)

  describe("a valid request", function()
    it("gets 101 with the right Sec-WebSocket-Accept for each key", function()
      for _, pair in ipairs(wsclient.KEYS) do
        local conn, resp = send_request(srv.port, req { port = srv.port, key = pair[1] })
        assert.are.equal(101, resp.status, resp.raw)
        assert.are.equal(pair[2], resp.headers["sec-websocket-accept"])
        assert.are.equal("websocket", (resp.headers["upgrade"] or ""):lower())
        assert.truthy((resp.headers["connection"] or ""):lower():find("upgrade", 1, true))
        h.echo(conn, "after handshake")
        h.close_cleanly(conn)
      end
    end)

    it("works when fed one byte at a time", function()
      local conn = h.open(srv.port, "/", nil, { bytewise = true })
      h.echo(conn, "bytewise handshake")
      h.close_cleanly(conn)
    end)

    it("works when the first frame arrives in the same packet as the request", function()
      local key = wsclient.KEYS[1]
      local conn = assert(wsclient.tcp(srv.port))
      assert(conn:send(req { port = srv.port, key = key[1] } .. wsclient.frame { payload = "early" }))
      local resp = assert(conn:read_http_response(3))
      assert.are.equal(101, resp.status)
      h.expect_message(conn, 1, "early")
      h.close_cleanly(conn)
    end)

    it("accepts header names and tokens in any case, and Connection lists", function()
      local conn = h.open(srv.port, "/", {
        Upgrade = "WebSocket", Connection = "keep-alive, Upgrade",
      })
      h.echo(conn, "case-insensitive")
      h.close_cleanly(conn)
      local bytes = "GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\nconnection: upgrade\r\n"
        .. "sec-websocket-key: " .. wsclient.KEYS[2][1] .. "\r\nsec-websocket-version: 13\r\n\r\n"
      local c2, resp = send_request(srv.port, bytes)
      assert.are.equal(101, resp.status, resp.raw)
      assert.are.equal(wsclient.KEYS[2][2], resp.headers["sec-websocket-accept"])
      h.echo(c2, "lower-case headers")
      h.close_cleanly(c2)
    end)

    it("routes a path with a query string by its path", function()
      local conn = h.open(srv.port, "/?a=1&b=2")
      h.echo(conn, "query ok")
      h.close_cleanly(conn)
    end)

    it("accepts a head just under 8 KiB", function()
      local base = req { port = srv.port }
      local pad = 8000 - #base - #"X-Pad: \r\n"
      local conn = h.open(srv.port, "/", { ["X-Pad"] = string.rep("p", pad) })
      h.echo(conn, "big head ok")
      h.close_cleanly(conn)
    end)

    it("accepts exactly 64 header fields", function()
      local extra = {}
      for i = 1, 64 - 5 do extra[#extra + 1] = "X-H" .. i .. ": v" end
      local conn = h.open(srv.port, "/", nil, { extra = extra })
      h.echo(conn, "64 fields ok")
      h.close_cleanly(conn)
    end)
  end)

  describe("answers 400 to", function()
    local cases = {
      { "a request that is not HTTP", function() return "HELLO THERE\r\n\r\n" end },
      { "a request line without a version", function(p)
          return (req { port = p }):gsub("^GET / HTTP/1%.1", "GET /")
        end },
      { "a header line without a colon", function(p) return req { port = p, extra = { "NoColonHere" } } end },
      { "a POST", function(p) return req { port = p, method = "POST" } end },
      { "a PUT", function(p) return req { port = p, method = "PUT" } end },
      { "a request without Host", function(p) return req { port = p, headers = { Host = false } } end },
      { "a request without Sec-WebSocket-Key", function(p)
          return req { port = p, headers = { ["Sec-WebSocket-Key"] = false } }
        end },
      { "a Sec-WebSocket-Key that is not base64", function(p)
          return req { port = p, key = "not*base64*at*all*!" }
        end },
      { "a Sec-WebSocket-Key of 15 bytes", function(p)
          return req { port = p, key = "YWJjZGVmZ2hpamtsbW5v" }
        end },
      { "a Sec-WebSocket-Key of 17 bytes", function(p)
          return req { port = p, key = "YWJjZGVmZ2hpamtsbW5vcHE=" }
        end },
      { "an empty Sec-WebSocket-Key", function(p)
          return req { port = p, headers = { ["Sec-WebSocket-Key"] = "" } }
        end },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        expect_status(srv.port, case[2](srv.port), 400)
      end)
    end

    it("a bad request fed one byte at a time", function()
      expect_status(srv.port, req { port = srv.port, method = "POST" }, 400, { bytewise = true })
    end)
  end)

  describe("answers 426 with Sec-WebSocket-Version: 13 to", function()
    local cases = {
      { "a request without Upgrade", { Upgrade = false } },
      { "version 8", { ["Sec-WebSocket-Version"] = "8" } },
      { "version 14", { ["Sec-WebSocket-Version"] = "14" } },
      { "a request without a version", { ["Sec-WebSocket-Version"] = false } },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        local resp = expect_status(srv.port, req { port = srv.port, headers = case[2] }, 426)
        assert.are.equal("13", resp.headers["sec-websocket-version"])
      end)
    end
  end)

  describe("answers 431 to", function()
    it("a head larger than 8 KiB, without waiting for its end", function()
      local head = req { port = srv.port, headers = { ["X-Big"] = string.rep("b", 9000) } }
      local conn = assert(wsclient.tcp(srv.port))
      -- send 8300 bytes, no end of head: a bounded parser answers now
      conn:send(head:sub(1, 8300))
      local resp, err = conn:read_http_response(2)
      if not resp and err == "timeout" then
        conn:send(head:sub(8301))
        resp, err = conn:read_http_response(2)
      end
      assert(resp, "no HTTP response: " .. tostring(err))
      assert.are.equal(431, resp.status, resp.raw)
      assert(conn:expect_eof(3), "connection left open after 431")
      conn:close()
      h.assert_alive(srv.port)
    end)

    it("more than 64 header fields", function()
      local extra = {}
      for i = 1, 65 - 5 do extra[#extra + 1] = "X-H" .. i .. ": v" end
      expect_status(srv.port, req { port = srv.port, extra = extra }, 431)
    end)

    it("many more header fields", function()
      local extra = {}
      for i = 1, 500 do extra[#extra + 1] = "X-" .. i .. ":" end
      expect_status(srv.port, req { port = srv.port, extra = extra }, 431)
    end)
  end)

  describe("answers 404 to", function()
    it("an unknown path", function()
      expect_status(srv.port, req { port = srv.port, path = "/nope" }, 404)
    end)

    it("an unknown path that prefixes no route", function()
      expect_status(srv.port, req { port = srv.port, path = "/nope?x=1" }, 404)
    end)
  end)

  it("never answers a rejected connection with frames", function()
    local conn, resp = send_request(srv.port, req { port = srv.port, path = "/nope" })
    assert.are.equal(404, resp.status)
    local f = conn:read_frame(0.3)
    assert.is_nil(f)
    conn:close()
  end)
end)

describe("upgrade(req)", function()
  local srv
  setup(function() srv = server.start("spec/fixtures/upgrade.lua") end)
  teardown(function()
    local log = srv:stop()
    assert.is_nil(log:find("open must not run", 1, true), "open ran for a rejected upgrade:\n" .. log)
  end)

  local function lines_of(s)
    local t = {}
    for line in (s .. "\n"):gmatch("(.-)\n") do
      local k, v = line:match("^([^=]+)=(.*)$")
      if k then t[k] = v end
    end
    return t
  end

  it("sees method, path, query, remote and lower-case headers", function()
    local conn = h.open(srv.port, "/inspect?a=1&b=two", { ["X-Custom"] = "Hello World" })
    local _, lport = conn.sock:getsockname()
    local op, msg = conn:read_message()
    assert.are.equal(1, op, msg)
    local seen = lines_of(msg)
    assert.are.equal("GET", seen.method)
    assert.are.equal("/inspect", seen.path)
    assert.are.equal("a=1&b=two", seen.query)
    assert.are.equal("127.0.0.1:" .. tostring(lport), seen.remote)
    assert.are.equal("table", seen.headers_type)
    assert.are.equal("Hello World", seen["header.x-custom"])
    assert.are.equal("127.0.0.1:" .. srv.port, seen["header.host"])
    assert.are.equal("13", seen["header.sec-websocket-version"])
    assert.is_nil(seen["header.X-Custom"])
    h.close_cleanly(conn)
  end)

  it("has query nil without a query string", function()
    local conn = h.open(srv.port, "/inspect")
    local _, msg = conn:read_message()
    assert.are.equal("nil", lines_of(msg).query)
    h.close_cleanly(conn)
  end)

  it("passes req.data on as ws.data", function()
    local conn = h.open(srv.port, "/inspect")
    conn:read_message()
    assert(conn:send_text("data"))
    h.expect_message(conn, 1, "marker=from-upgrade same=true opened=true")
    h.close_cleanly(conn)
  end)

  it("rejects with 403 when it returns false", function()
    local resp = expect_status(srv.port, req { port = srv.port, path = "/reject" }, 403)
    assert.is_nil(resp.headers["upgrade"])
  end)

  it("rejects with the status and body it returns", function()
    local resp = expect_status(srv.port, req { port = srv.port, path = "/status" }, 401)
    assert.are.equal("go away", resp.body)
    expect_status(srv.port, req { port = srv.port, path = "/status-nobody" }, 503)
  end)

  it("accepts when it returns true", function()
    local conn = h.open(srv.port, "/true")
    h.echo(conn, "accepted")
    h.close_cleanly(conn)
  end)

  it("can decide on a header", function()
    expect_status(srv.port, req { port = srv.port, path = "/gate" }, 403)
    local conn = h.open(srv.port, "/gate", { ["X-Token"] = "secret" })
    h.echo(conn, "let in")
    h.close_cleanly(conn)
  end)

  it("is not consulted for unknown paths", function()
    expect_status(srv.port, req { port = srv.port, path = "/unknown" }, 404)
  end)
end)
