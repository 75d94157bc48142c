-- Opening handshake (RFC 6455 4.2): the 101 and its headers, subprotocol
-- selection (the first of the client's offers, in the client's order, that
-- the app lists -- the app here lists chat.v2 and chat.v1), extensions the
-- server does not know are ignored (never echoed), header names and tokens
-- in any case, Connection lists; and the HTTP answers to bad handshakes
-- (400 / 426 with Sec-WebSocket-Version: 13 / 404).

local E = require "spec.conformance.engine"
local wsclient = E.wsclient
local h = E.h
local assert = require "luassert"

local cases = {}
local function add(c) cases[#cases + 1] = c end

-- upgrade(t, headers [, o]) -> conn, resp after a 101 (accept checked), and
-- checks the echo works on it.
local function upgrade(t, headers, o)
  local conn = h.open(t.port, (o and o.path) or "/", headers, o)
  t.conns[#t.conns + 1] = conn
  local resp = conn.response
  assert.are.equal("websocket", (resp.headers["upgrade"] or ""):lower(), "Upgrade: websocket in the 101")
  local has_upgrade = false
  for tok in (resp.headers["connection"] or ""):gmatch("[^,%s]+") do
    if tok:lower() == "upgrade" then has_upgrade = true end
  end
  assert.is_true(has_upgrade, "Connection: Upgrade in the 101")
  h.echo(conn, "handshake ok")
  return conn, resp
end

local function finish(conn) h.close_cleanly(conn) end

-- status(t, raw_request [, o]) -> resp: the server answers with an HTTP error
-- and closes the connection.
local function status(t, raw, want, o)
  local conn = assert(wsclient.tcp(t.port))
  t.conns[#t.conns + 1] = conn
  if o and o.bytewise then assert(conn:send_bytewise(raw)) else assert(conn:send(raw)) end
  local resp, err = conn:read_http_response(3)
  assert(resp, "no HTTP response: " .. tostring(err))
  assert.are.equal(want, resp.status, resp.raw)
  assert.is_nil(resp.headers["sec-websocket-accept"], "an error response must not accept the upgrade")
  return resp, conn
end

local function req(t, o)
  o = o or {}
  o.port = t.port
  return wsclient.request(o)
end

---------------------------------------------------------------------------
-- 101
---------------------------------------------------------------------------

add {
  name = "101 with Upgrade, Connection and the Sec-WebSocket-Accept of each key",
  rfc = "RFC 6455 4.2.2: the 101 carries Upgrade: websocket, Connection: Upgrade and "
    .. "Sec-WebSocket-Accept = base64(SHA-1(key .. 258EAFA5-E914-47DA-95CA-C5AB0DC85B11))",
  run = function(t)
    for _ = 1, #wsclient.KEYS do
      local conn, resp = upgrade(t)
      assert.is_nil(resp.headers["sec-websocket-protocol"], "no subprotocol was offered")
      assert.is_nil(resp.headers["sec-websocket-extensions"], "no extension was offered")
      finish(conn)
    end
  end,
}

add {
  name = "request fed one byte at a time",
  rfc = "RFC 6455 4.2.1: the handshake is an HTTP request however TCP cuts it",
  run = function(t)
    local conn = upgrade(t, nil, { bytewise = true })
    finish(conn)
  end,
}

add {
  name = "request and first frame in one write",
  rfc = "RFC 6455 4.2.2, 5: frames may follow the request at once; they are read after the handshake",
  run = function(t)
    local conn = assert(wsclient.tcp(t.port))
    t.conns[#t.conns + 1] = conn
    local key = wsclient.KEYS[2]
    assert(conn:send(req(t, { key = key[1] }) .. wsclient.frame { payload = "early" }))
    local resp = assert(conn:read_http_response(3))
    assert.are.equal(101, resp.status)
    assert.are.equal(key[2], resp.headers["sec-websocket-accept"])
    E.expect_message(conn, 1, "early")
    finish(conn)
  end,
}

local SUB = "RFC 6455 4.2.2 /subprotocol/: the server selects one of the client's offered values "
  .. "(here: the first in the client's order that the app supports) or none, and names only that one"
for _, c in ipairs {
  { "chat.v1", "chat.v1" },
  { "chat.v2", "chat.v2" },
  { "chat.v1, chat.v2", "chat.v1" },
  { "chat.v2, chat.v1", "chat.v2" },
  { "foo, chat.v1", "chat.v1" },
  { "foo,chat.v2,chat.v1", "chat.v2" },
  { "  chat.v1  ,  foo", "chat.v1" },
  { "foo, bar", nil },
  { "chat.v3", nil },
  { "CHAT.V1", nil, "subprotocol tokens are compared exactly (case-sensitive)" },
} do
  add {
    name = "Sec-WebSocket-Protocol: " .. c[1] .. " -> " .. (c[2] or "no subprotocol"),
    rfc = SUB .. (c[3] and "; " .. c[3] or ""),
    run = function(t)
      local conn, resp = upgrade(t, { ["Sec-WebSocket-Protocol"] = c[1] })
      assert.are.equal(c[2], resp.headers["sec-websocket-protocol"])
      finish(conn)
    end,
  }
end
add {
  name = "offers in two Sec-WebSocket-Protocol lines -> the first listed one",
  rfc = SUB .. "; RFC 7230 3.2.2: repeated header lines form one list",
  run = function(t)
    local conn, resp = upgrade(t, nil, { extra = { "Sec-WebSocket-Protocol: foo", "Sec-WebSocket-Protocol: chat.v1, chat.v2" } })
    assert.are.equal("chat.v1", resp.headers["sec-websocket-protocol"])
    finish(conn)
  end,
}

local EXT = "RFC 6455 4.2.2, 9.1: the server answers only extensions it supports; unknown ones are "
  .. "ignored, never echoed"
for _, offer in ipairs {
  "x-unknown-extension",
  "x-foo; bar=1; baz, x-qux",
  "x-webkit-deflate-frame",
  "permessage-foo; client_max_window_bits",
} do
  add {
    name = "Sec-WebSocket-Extensions: " .. offer .. " -> no extension",
    rfc = EXT,
    run = function(t)
      local conn, resp = upgrade(t, { ["Sec-WebSocket-Extensions"] = offer })
      assert.is_nil(resp.headers["sec-websocket-extensions"])
      finish(conn)
    end,
  }
end
add {
  name = "permessage-deflate offered to a server without --deflate -> no extension",
  rfc = EXT .. " (compression is off by default)",
  run = function(t)
    local conn, resp = upgrade(t, { ["Sec-WebSocket-Extensions"] = "permessage-deflate; client_max_window_bits" })
    assert.is_nil(resp.headers["sec-websocket-extensions"])
    finish(conn)
  end,
}

local CASE = "RFC 7230 3.2: header names are case-insensitive; RFC 6455 4.2.1: the Upgrade and "
  .. "Connection tokens are matched case-insensitively, Connection is a list"
for _, c in ipairs {
  { "lower-case header names", { Upgrade = false, Connection = false, ["Sec-WebSocket-Version"] = false },
    { "upgrade: websocket", "connection: Upgrade", "sec-websocket-version: 13" } },
  { "upper-case header names", { Upgrade = false, Connection = false },
    { "UPGRADE: websocket", "CONNECTION: Upgrade" } },
  { "Upgrade: WebSocket, Connection: UPGRADE", { Upgrade = "WebSocket", Connection = "UPGRADE" } },
  { "Connection: keep-alive, Upgrade", { Connection = "keep-alive, Upgrade" } },
  { "Connection: Upgrade, HTTP2-Settings", { Connection = "Upgrade, HTTP2-Settings" } },
  { "Connection: keep-alive,upgrade (no space)", { Connection = "keep-alive,upgrade" } },
  { "Connection in two lines", { Connection = false }, { "Connection: keep-alive", "Connection: Upgrade" } },
  { "extra whitespace around values", { Upgrade = "  websocket  ", ["Sec-WebSocket-Version"] = " 13 " } },
  -- (an Origin of the request's own host: another site's is refused below)
  { "Origin and other headers present", { ["User-Agent"] = "conformance", Cookie = "a=b" }, nil, true },
} do
  add {
    name = c[1] .. " -> 101",
    rfc = CASE,
    run = function(t)
      local headers = c[2]
      if c[4] then
        headers = { Origin = "http://127.0.0.1:" .. t.port }
        for k, v in pairs(c[2]) do headers[k] = v end
      end
      local conn = upgrade(t, headers, { extra = c[3] })
      finish(conn)
    end,
  }
end

---------------------------------------------------------------------------
-- Refused
---------------------------------------------------------------------------

local BAD = "RFC 6455 4.2.1, 4.2.2: a handshake that does not match the requirements gets an HTTP error "
  .. "(400 Bad Request) and no upgrade"
for _, c in ipairs {
  { "no Sec-WebSocket-Key", { headers = { ["Sec-WebSocket-Key"] = false } } },
  { "an empty Sec-WebSocket-Key", { headers = { ["Sec-WebSocket-Key"] = "" } } },
  { "a Sec-WebSocket-Key that is not base64", { key = "not*base64*at*all*!" } },
  { "a Sec-WebSocket-Key of 15 bytes", { key = "YWJjZGVmZ2hpamtsbW5v" } },
  { "a Sec-WebSocket-Key of 17 bytes", { key = "YWJjZGVmZ2hpamtsbW5vcHE=" } },
  -- Fails on Node ws: 405 Method Not Allowed (also the bytewise case below).
  { "a POST", { method = "POST" } },
  -- Fails on Node ws: Node's HTTP parser takes HTTP/1.0 and ws upgrades it.
  { "HTTP/1.0", { http = "HTTP/1.0" } },
  -- Fails on Node ws: ws does not require Host.
  { "no Host", { headers = { Host = false } } },
  -- Fails on Node ws: it answers 426 when Connection lacks "upgrade".
  { "no Connection header", { headers = { Connection = false } } },
  -- Fails on Node ws: 426, as above.
  { "Connection: keep-alive (no upgrade token)", { headers = { Connection = "keep-alive" } } },
} do
  add {
    name = c[1] .. " -> 400",
    rfc = BAD,
    run = function(t) status(t, req(t, c[2]), 400) end,
  }
end
add {
  name = "a broken request fed one byte at a time -> 400",
  rfc = BAD,
  run = function(t) status(t, req(t, { method = "POST" }), 400, { bytewise = true }) end,
}

local VERSION = "RFC 6455 4.2.2, 4.4: a version the server does not speak gets 426 with "
  .. "Sec-WebSocket-Version naming the ones it does (13)"
for _, c in ipairs {
  -- Fails on Node ws: it still speaks version 8 (hybi-08) and upgrades.
  { "Sec-WebSocket-Version: 8", { ["Sec-WebSocket-Version"] = "8" } },
  -- These four fail on Node ws: it answers 400 to any version but 8 and 13,
  -- and to a missing one (RFC 6455 4.4 asks for 426 with the versions).
  { "Sec-WebSocket-Version: 12", { ["Sec-WebSocket-Version"] = "12" } },
  { "Sec-WebSocket-Version: 14", { ["Sec-WebSocket-Version"] = "14" } },
  { "no Sec-WebSocket-Version", { ["Sec-WebSocket-Version"] = false } },
  { "Sec-WebSocket-Version: abc", { ["Sec-WebSocket-Version"] = "abc" } },
  -- These two fail on Node ws: it answers 400 (not 426) to a missing Upgrade
  -- or another protocol.
  { "no Upgrade header", { Upgrade = false } },
  { "Upgrade: h2c", { Upgrade = "h2c" } },
} do
  add {
    name = c[1] .. " -> 426 with Sec-WebSocket-Version: 13",
    rfc = VERSION,
    run = function(t)
      local resp = status(t, req(t, { headers = c[2] }), 426)
      assert.are.equal("13", resp.headers["sec-websocket-version"])
    end,
  }
end

add {
  name = "an Origin of another site -> 403",
  rfc = "RFC 6455 4.2.2 (4), 10.2: a server that does not serve every web page answers an Origin it "
    .. "does not accept with 403 Forbidden (duplex serves the request's own host, and what `origins` lists)",
  -- Fails on Node ws: ws looks at Origin only through the app's verifyClient.
  run = function(t) status(t, req(t, { headers = { Origin = "http://example.com" } }), 403) end,
}

add {
  name = "a path no route serves -> 404",
  rfc = "RFC 6455 4.2.2: a resource the server does not serve gets an HTTP error (404 Not Found)",
  -- Fails on Node ws: the stand-in serves every path.
  run = function(t) status(t, req(t, { path = "/nowhere" }), 404) end,
}

add {
  name = "a syntactically broken Sec-WebSocket-Extensions (no --deflate) -> 101 or 400, never an extension",
  rfc = "RFC 6455 9.1: the header is an extension list; a server that negotiates nothing may ignore it",
  run = function(t)
    local conn = assert(wsclient.tcp(t.port))
    t.conns[#t.conns + 1] = conn
    assert(conn:send(req(t, { headers = { ["Sec-WebSocket-Extensions"] = "permessage-deflate;;=; ,," } })))
    local resp = assert(conn:read_http_response(3))
    assert.is_true(resp.status == 101 or resp.status == 400, resp.raw)
    assert.is_nil(resp.headers["sec-websocket-extensions"])
  end,
}

return { id = "H", title = "opening handshake", cases = cases }
