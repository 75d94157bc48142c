-- Groups 12 and 13 (Autobahn 12/13): permessage-deflate (RFC 7692) with
-- --deflate shared (no context takeover either way, always announced) and
-- --deflate dedicated (per-connection context takeover).
--
-- Negotiation: every parameter combination offered, bad offers declined
-- (the next offer is tried), broken headers refused with 400. Data:
-- compressed messages of 0 bytes to 1 MiB both ways, fragmented compressed
-- messages cut at every offset, uncompressed messages on a deflate
-- connection, context takeover kept (dedicated) or reset (shared) by both
-- sides, window sizes honoured; RSV1 on control or continuation frames ->
-- 1002, bad deflate data -> 1007, a decompression bomb -> 1009 quickly.
--
-- The server leaves messages under 64 bytes uncompressed; the cases accept
-- either for small ones and require RSV1 for large compressible ones.

local E = require "spec.conformance.engine"
local pmd = E.pmd
local frame = E.frame
local assert = require "luassert"

local KiB, MiB = 1024, 1024 * 1024
local Z = "\0\0\0\0"
local THRESHOLD = 64

local cases = {}
local function add(c) cases[#cases + 1] = c end

local MODES = { shared = { "--deflate", "shared" }, dedicated = { "--deflate", "dedicated" } }

---------------------------------------------------------------------------
-- Negotiation
---------------------------------------------------------------------------

local function offer_params(offer)
  return pmd.parse_extensions(offer)[1].params
end

-- check_response(mode, offer, resp_params): what RFC 7692 7.1 and the
-- server's rules allow in the answer to this (acceptable) offer.
local function check_response(mode, offered, got)
  local known = { server_no_context_takeover = true, client_no_context_takeover = true,
    server_max_window_bits = true, client_max_window_bits = true }
  for k in pairs(got) do
    assert(known[k], "RFC 7692 7.1: unknown parameter in the response: " .. k)
  end
  local snct, cnct = got.server_no_context_takeover, got.client_no_context_takeover
  if mode == "shared" then
    assert.are.equal(true, snct, "shared: the response must carry server_no_context_takeover")
    assert.are.equal(true, cnct, "shared: the response must carry client_no_context_takeover")
  else
    assert.are.equal(offered.server_no_context_takeover ~= nil, snct ~= nil,
      "RFC 7692 7.1.1.1: server_no_context_takeover in the response exactly when offered")
    assert.are.equal(offered.client_no_context_takeover ~= nil, cnct ~= nil,
      "dedicated: client_no_context_takeover in the response exactly when offered")
  end
  if snct ~= nil then assert.are.equal(true, snct, "server_no_context_takeover takes no value") end
  if cnct ~= nil then assert.are.equal(true, cnct, "client_no_context_takeover takes no value") end
  if offered.server_max_window_bits then
    assert.are.equal(tostring(offered.server_max_window_bits), got.server_max_window_bits,
      "RFC 7692 7.1.2.1: an accepted server_max_window_bits=N offer is answered with it (N <= 15)")
  else
    assert.is_nil(got.server_max_window_bits, "server_max_window_bits only when offered (duplex's rule)")
  end
  if offered.client_max_window_bits == nil then
    assert.is_nil(got.client_max_window_bits,
      "RFC 7692 7.1.2.2: client_max_window_bits MUST NOT be in the response unless offered")
  elseif got.client_max_window_bits ~= nil then
    local n = tonumber(got.client_max_window_bits)
    local cap = tonumber(offered.client_max_window_bits) or 15
    assert(n and n >= 8 and n <= cap and tostring(n) == got.client_max_window_bits,
      "RFC 7692 7.1.2.2: client_max_window_bits in the response must be 8.." .. cap .. ", got "
      .. tostring(got.client_max_window_bits))
  end
end

-- every combination of the four parameters, with a few window sizes
local combos = {}
for mask = 0, 15 do
  local parts = { "permessage-deflate" }
  if mask % 2 == 1 then parts[#parts + 1] = "server_no_context_takeover" end
  if math.floor(mask / 2) % 2 == 1 then parts[#parts + 1] = "client_no_context_takeover" end
  if math.floor(mask / 4) % 2 == 1 then parts[#parts + 1] = "server_max_window_bits=" .. (9 + mask % 7) end
  if math.floor(mask / 8) % 2 == 1 then
    parts[#parts + 1] = mask % 3 == 0 and "client_max_window_bits" or "client_max_window_bits=" .. (8 + mask % 8)
  end
  combos[#combos + 1] = table.concat(parts, "; ")
end
for _, extra in ipairs {
  "permessage-deflate; server_max_window_bits=15; client_max_window_bits=15",
  "permessage-deflate; server_max_window_bits=9",
  "permessage-deflate; client_max_window_bits=8",
  "permessage-deflate;client_max_window_bits;server_no_context_takeover",
  "permessage-deflate; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits",
  "permessage-deflate; client_max_window_bits=\"10\"",
  "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits",
} do combos[#combos + 1] = extra end

local NEG = "RFC 7692 5, 7.1: the server accepts a valid permessage-deflate offer with a response that "
  .. "names only parameters it may"

for _, mode in ipairs { "shared", "dedicated" } do
  for _, offer in ipairs(combos) do
    add {
      name = mode .. ": offer '" .. offer .. "' accepted, then a compressed echo",
      rfc = NEG .. "; " .. mode .. " mode rules; the agreed parameters then work both ways",
      server = mode,
      run = function(t)
        local conn = t:open { extensions = offer, deflate = true }
        -- the offer the server took is the permessage-deflate one
        local offered
        for _, ext in ipairs(pmd.parse_extensions(offer)) do
          if ext.name == "permessage-deflate" then offered = ext.params; break end
        end
        check_response(mode, offered, conn.pmd.params)
        local data = E.text(2000)
        for _ = 1, 2 do
          assert(conn:send(frame { payload = E.compress_for(conn, data), rsv1 = true }))
          E.expect_message(conn, 1, data, { compressed = true })
        end
        E.h.close_cleanly(conn)
      end,
    }
  end

  -- declined offers: the answer has no extension (or the next offer's)
  for _, c in ipairs {
    -- All of these fail on Node ws: it refuses the whole handshake with 400
    -- when any offer has a bad, unknown or repeated parameter, instead of
    -- declining that offer and trying the next; and it accepts
    -- server_max_window_bits=8 (see below).
    { "permessage-deflate; foo=1", nil },
    { "permessage-deflate; server_no_context_takeover; server_no_context_takeover", nil },
    { "permessage-deflate; client_max_window_bits=10; client_max_window_bits=11", nil },
    { "permessage-deflate; server_max_window_bits=7", nil },
    { "permessage-deflate; server_max_window_bits=16", nil },
    { "permessage-deflate; server_max_window_bits", nil },
    { "permessage-deflate; server_max_window_bits=abc", nil },
    { "permessage-deflate; server_max_window_bits=010", nil },
    { "permessage-deflate; client_max_window_bits=16", nil },
    { "permessage-deflate; client_max_window_bits=7", nil },
    { "permessage-deflate; server_no_context_takeover=1", nil },
    -- Fails on Node ws: it accepts server_max_window_bits=8 (zlib then uses
    -- 9 bits, which RFC 7692 7.1.2.1 does not allow); duplex declines it.
    { "permessage-deflate; server_max_window_bits=8", nil },
    { "permessage-deflate; foo, permessage-deflate; server_no_context_takeover",
      { server_no_context_takeover = true } },
    { "permessage-deflate; server_max_window_bits=8, permessage-deflate; client_max_window_bits",
      { client_max_window_bits = true } },
    { "permessage-deflate; server_max_window_bits=20, x-foo, permessage-deflate", {} },
  } do
    add {
      name = mode .. ": offer '" .. c[1] .. "' -> " .. (c[2] and "the next offer" or "no extension"),
      rfc = "RFC 7692 5.1, 7.1: an offer with an unknown, repeated or invalid parameter (or a "
        .. "window the server cannot use) is declined; the next offer is tried; none: no extension",
      server = mode,
      run = function(t)
        local conn = t:open { extensions = c[1] }
        if c[2] then
          assert(conn.pmd, "the second offer should be accepted:\n" .. conn.response.raw)
          check_response(mode, c[2], conn.pmd.params)
        else
          assert.is_nil(conn.response.headers["sec-websocket-extensions"], conn.response.raw)
        end
        assert(conn:send(frame { payload = E.text(500) }))
        E.expect_message(conn, 1, E.text(500), { compressed = c[2] and true or false })
        E.h.close_cleanly(conn)
      end,
    }
  end

  for _, bad in ipairs {
    "permessage-deflate;",
    "; permessage-deflate",
    "permessage-deflate x",
    "permessage-deflate; =10",
    "permessage-deflate; client_max_window_bits=\"10",
    "permessage-deflate; client_max_window_bits=1 0",
  } do
    add {
      name = mode .. ": Sec-WebSocket-Extensions: " .. bad .. " -> 400",
      rfc = "RFC 6455 9.1, 4.2.2: a header that is not a valid extension list is a bad request (400)",
      server = mode,
      run = function(t)
        local conn = assert(E.wsclient.tcp(t.port))
        t.conns[#t.conns + 1] = conn
        assert(conn:send(E.wsclient.request { port = t.port, headers = { ["Sec-WebSocket-Extensions"] = bad } }))
        local resp = assert(conn:read_http_response(3))
        assert.are.equal(400, resp.status, resp.raw)
      end,
    }
  end

  add {
    name = mode .. ": no offer -> no extension, plain frames",
    rfc = "RFC 7692 5: without an offer nothing is negotiated and RSV1 stays forbidden",
    server = mode,
    send = { frame { payload = E.text(1000) }, frame { payload = "x", rsv1 = true } },
    expect = { { "message", 1, E.text(1000), { compressed = false } }, { "close", 1002 } },
  }
end

---------------------------------------------------------------------------
-- Data
---------------------------------------------------------------------------

-- csend(op, data [, o]) -> a step sending data compressed (RSV1), as one
-- frame or cut after o.points / in fragments of o.size compressed bytes.
local function csend(op, data, o)
  o = o or {}
  return { "call", function(t, conn)
    local payload = o.payload or E.compress_for(conn, data)
    local points = o.points
    if o.size then
      points = {}
      for p = o.size, #payload - 1, o.size do points[#points + 1] = p end
    end
    if not points or #points == 0 then
      assert(conn:send(frame { opcode = op, payload = payload, rsv1 = true, key = #payload > 4096 and Z or nil }))
      return
    end
    local parts, prev = {}, 0
    points[#points + 1] = #payload
    for i, p in ipairs(points) do
      parts[#parts + 1] = frame { opcode = i == 1 and op or 0, rsv1 = i == 1, fin = i == #points,
        payload = payload:sub(prev + 1, p) }
      prev = p
    end
    assert(conn:send(table.concat(parts)))
  end }
end

local function want_compressed(n, compressible)
  if n >= THRESHOLD and compressible then return true end
  return nil
end

local DATA = "RFC 7692 6, 7.2: a message compressed by the client (RSV1 on its first frame) is inflated; "
  .. "the server's echo is the same message, compressed when it is big enough"

local cache = {}
local function text(n) cache["t" .. n] = cache["t" .. n] or E.text(n); return cache["t" .. n] end
local function rand(n) cache["r" .. n] = cache["r" .. n] or E.random(n, n); return cache["r" .. n] end

for _, mode in ipairs { "shared", "dedicated" } do
  local OPEN = { extensions = "permessage-deflate; client_max_window_bits", deflate = true }

  for _, n in ipairs { 0, 1, 63, 64, 65, 125, 126, 1000, 4096, 65535, 65536, 262144, MiB } do
    add {
      name = mode .. ": compressed text message of " .. n .. " bytes",
      rfc = DATA, server = mode, open = OPEN,
      steps = { csend(1, text(n)), { "message", 1, text(n), { compressed = want_compressed(n, true), timeout = 10 } } },
    }
  end
  for _, n in ipairs { 0, 63, 64, 1000, 65536, MiB } do
    add {
      name = mode .. ": compressed binary message of " .. n .. " random bytes",
      rfc = DATA .. " (incompressible data may come back either way)",
      server = mode, open = OPEN,
      steps = { csend(2, rand(n)), { "message", 2, rand(n), { timeout = 10 } } },
    }
  end
  for _, n in ipairs { 0, 10, 63, 64, 1000, 65536 } do
    add {
      name = mode .. ": uncompressed text message of " .. n .. " bytes on a deflate connection",
      rfc = "RFC 7692 6: a message without RSV1 is not compressed; it is delivered as is",
      server = mode, open = OPEN,
      steps = { frame { payload = text(n) }, { "message", 1, text(n), { compressed = want_compressed(n, true) } } },
    }
  end

  add {
    name = mode .. ": an empty message compressed as the single byte 0x00",
    rfc = "RFC 7692 7.2.3.6: an empty message may be sent as one 0x00 byte (an empty stored block)",
    server = mode, open = OPEN,
    steps = { csend(1, "", { payload = "\0" }), { "message", 1, "" } },
  }
  add {
    name = mode .. ": a message compressed into a final (BFINAL) block",
    rfc = "RFC 7692 7.2.3.4: the payload may end in a DEFLATE block with BFINAL set",
    server = mode, open = OPEN,
    steps = { { "call", function(t, conn)
      local z = require "zlib"
      local out = z.deflate(6, -15)(text(1000), "finish")
      assert(conn:send(frame { payload = out, rsv1 = true }))
    end }, { "message", 1, text(1000), { compressed = true } } },
  }

  -- fragmented compressed messages
  do
    local data = text(1000)
    local plen = #pmd.compress(data)
    local steps = {}
    for cut = 1, plen - 1 do
      steps[#steps + 1] = csend(1, data, { points = { cut } })
      steps[#steps + 1] = { "message", 1, data, { compressed = true } }
    end
    add {
      name = mode .. ": compressed 1000-byte message in two fragments, cut at every offset",
      rfc = "RFC 7692 6.1: RSV1 goes on the first frame only; the compressed payload is the "
        .. "concatenation of the fragments, cut anywhere",
      server = mode, open = OPEN, steps = steps,
    }
  end
  add {
    name = mode .. ": compressed 1000-byte message in one-byte fragments",
    rfc = "RFC 7692 6.1: a compressed message may be fragmented at any size",
    server = mode, open = OPEN,
    steps = { csend(1, text(1000), { size = 1 }), { "message", 1, text(1000), { compressed = true } } },
  }
  add {
    name = mode .. ": compressed 1000-byte message with an empty first fragment",
    rfc = "RFC 7692 6.1: the first frame (RSV1) may carry no payload",
    server = mode, open = OPEN,
    steps = { csend(1, text(1000), { points = { 0 } }), { "message", 1, text(1000), { compressed = true } } },
  }
  for _, size in ipairs { 100, 4096 } do
    add {
      name = mode .. ": compressed 1 MiB of random bytes in fragments of " .. size .. " bytes",
      rfc = "RFC 7692 6.1: a compressed message may be fragmented at any size",
      server = mode, open = OPEN,
      steps = { csend(2, rand(MiB), { size = size }), { "message", 2, rand(MiB), { timeout = 10 } } },
    }
  end
  add {
    name = mode .. ": a ping between the fragments of a compressed message",
    rfc = "RFC 6455 5.4 with RFC 7692: control frames may come between compressed fragments; answered at once",
    server = mode, open = OPEN,
    steps = {
      { "call", function(t, conn)
        local p = E.compress_for(conn, text(3000))
        local half = math.floor(#p / 2)
        assert(conn:send(frame { payload = p:sub(1, half), rsv1 = true, fin = false }
          .. frame { opcode = 9, payload = "mid" }))
        E.expect_frame(conn, 10, "mid")
        assert(conn:send(frame { opcode = 0, payload = p:sub(half + 1) }))
      end },
      { "message", 1, text(3000), { compressed = true } },
    },
  }
  add {
    name = mode .. ": compressed and uncompressed messages alternating",
    rfc = "RFC 7692 6: each message says by RSV1 whether it is compressed",
    server = mode, open = OPEN,
    steps = {
      csend(1, text(500)), { "message", 1, text(500), { compressed = true } },
      frame { payload = text(600) }, { "message", 1, text(600), { compressed = true } },
      csend(2, rand(300)), { "message", 2, rand(300) },
      frame { opcode = 2, payload = rand(70) }, { "message", 2, rand(70) },
      csend(1, text(700)), { "message", 1, text(700), { compressed = true } },
    },
  }

  -- context takeover
  local letters = {}
  do
    local r = E.random(1024, 99)
    for i = 1, #r do letters[i] = string.char(97 + r:byte(i) % 26) end
    letters = table.concat(letters) -- 1 KiB of random letters: compresses by ~40% alone
  end
  if mode == "dedicated" then
    add {
      name = "dedicated: the server keeps its context: a repeated message compresses much smaller",
      rfc = "RFC 7692 7.2.3.2 (context takeover): without server_no_context_takeover the server may "
        .. "refer to earlier messages; in dedicated mode it does, so the second copy is tiny",
      server = mode, open = OPEN,
      steps = {
        frame { payload = letters }, { "message", 1, letters, { compressed = true } },
        { "check", function(t) t.first = t.last.wire end },
        frame { payload = letters }, { "message", 1, letters, { compressed = true } },
        { "check", function(t)
          assert(t.last.wire * 4 < t.first, "second copy is " .. t.last.wire .. " bytes on the wire, first "
            .. t.first .. ": no context takeover")
        end },
      },
    }
    add {
      name = "dedicated: server_no_context_takeover offered: every message compresses alone",
      rfc = "RFC 7692 7.1.1.1: with server_no_context_takeover agreed, the server resets its window each message",
      server = mode, open = { extensions = "permessage-deflate; server_no_context_takeover", deflate = true },
      steps = {
        frame { payload = letters }, { "message", 1, letters, { compressed = true } },
        { "check", function(t) t.first = t.last.wire end },
        frame { payload = letters }, { "message", 1, letters, { compressed = true } },
        { "check", function(t) assert.are.equal(t.first, t.last.wire, "same message, same compressed size") end },
      },
    }
    add {
      name = "dedicated: the client keeps its context: messages that refer to earlier ones inflate",
      rfc = "RFC 7692 7.2.3.2: without client_no_context_takeover the client may refer to earlier "
        .. "messages; the server keeps its inflate window per connection",
      server = mode, open = { extensions = "permessage-deflate", deflate = true },
      steps = {
        { "check", function(t, conn) assert.is_true(conn.pmd.client_takeover) end },
        csend(1, letters), { "message", 1, letters, { compressed = true } },
        csend(1, letters), { "message", 1, letters, { compressed = true } },
        csend(1, letters .. "!"), { "message", 1, letters .. "!", { compressed = true } },
        csend(2, rand(5000)), { "message", 2, rand(5000) },
        csend(2, rand(5000)), { "message", 2, rand(5000) },
      },
    }
    add {
      name = "dedicated: server_max_window_bits=9: the server's output fits a 512-byte window",
      rfc = "RFC 7692 7.1.2.1: with server_max_window_bits=9 agreed the server MUST NOT use a larger "
        .. "LZ77 window (the client inflates with 9 bits)",
      server = mode, open = { extensions = "permessage-deflate; server_max_window_bits=9", deflate = true },
      steps = { frame { opcode = 2, payload = rand(2000) .. rand(2000) },
        { "message", 2, rand(2000) .. rand(2000) } },
    }
    add {
      name = "dedicated: client_max_window_bits=9: a client using 9 bits is understood",
      rfc = "RFC 7692 7.1.2.2: the client compresses with at most the agreed window",
      server = mode, open = { extensions = "permessage-deflate; client_max_window_bits=9", deflate = true },
      steps = { csend(1, text(3000)), { "message", 1, text(3000), { compressed = true } },
        csend(1, text(3000)), { "message", 1, text(3000), { compressed = true } } },
    }
  else
    add {
      name = "shared: the server resets its context: a repeated message compresses the same, alone",
      rfc = "RFC 7692 7.1.1.1: with server_no_context_takeover (always, in shared mode) each message "
        .. "inflates on its own (the client checks with a fresh inflater)",
      server = mode, open = OPEN,
      steps = {
        frame { payload = letters }, { "message", 1, letters, { compressed = true } },
        { "check", function(t) t.first = t.last.wire end },
        frame { payload = letters }, { "message", 1, letters, { compressed = true } },
        { "check", function(t) assert.are.equal(t.first, t.last.wire, "same message, same compressed size") end },
      },
    }
    add {
      name = "shared: the client resets its context as told",
      rfc = "RFC 7692 7.1.1.2: with client_no_context_takeover agreed the client compresses each message alone",
      server = mode, open = OPEN,
      steps = {
        { "check", function(t, conn) assert.is_false(conn.pmd.client_takeover) end },
        csend(1, letters), { "message", 1, letters, { compressed = true } },
        csend(1, letters), { "message", 1, letters, { compressed = true } },
      },
    }
  end

  -- errors
  for _, c in ipairs {
    { "ping", frame { opcode = 9, payload = "x", rsv1 = true } },
    { "pong", frame { opcode = 10, payload = "x", rsv1 = true } },
    { "close", frame { opcode = 8, payload = E.close_payload(1000), rsv1 = true } },
  } do
    add {
      name = mode .. ": RSV1 on a " .. c[1] .. " -> 1002",
      rfc = "RFC 7692 6: RSV1 means 'compressed' on the first frame of a data message only; on a "
        .. "control frame it is a protocol error",
      server = mode, open = OPEN, send = { c[2] }, expect = { { "close", 1002 } },
    }
  end
  add {
    name = mode .. ": RSV1 on a continuation frame -> 1002",
    rfc = "RFC 7692 6.1: RSV1 is set on the first frame of a message only; on a continuation it is an error",
    server = mode, open = OPEN,
    steps = { { "call", function(t, conn)
      local p = E.compress_for(conn, text(1000))
      assert(conn:send(frame { payload = p:sub(1, 10), rsv1 = true, fin = false }
        .. frame { opcode = 0, payload = p:sub(11), rsv1 = true }))
    end }, { "close", 1002 } },
  }
  add {
    name = mode .. ": RSV1 on a continuation of an uncompressed message -> 1002",
    rfc = "RFC 7692 6.1: RSV1 is set on the first frame of a message only",
    server = mode, open = OPEN,
    send = { frame { payload = "abc", fin = false } .. frame { opcode = 0, payload = "def", rsv1 = true } },
    expect = { { "close", 1002 } },
  }
  for _, c in ipairs { { "RSV2", { rsv2 = true } }, { "RSV3", { rsv3 = true } } } do
    local o = { payload = "x" }
    for k, v in pairs(c[2]) do o[k] = v end
    add {
      name = mode .. ": " .. c[1] .. " on a text frame -> 1002",
      rfc = "RFC 7692 6 and RFC 6455 5.2: permessage-deflate defines RSV1 only",
      server = mode, open = OPEN, send = { frame(o) }, expect = { { "close", 1002 } },
    }
  end
  for _, c in ipairs {
    { "bytes that are not deflate data", "\255\255\255\255\255" },
    { "a stored block whose LEN and NLEN disagree", "\0\5\0\5\0hello" },
    { "valid deflate followed by garbage", nil },
  } do
    add {
      name = mode .. ": compressed message of " .. c[1] .. " -> 1007",
      rfc = "RFC 7692 8 and RFC 6455 7.4.1: data that cannot be inflated fails the connection (1007)",
      server = mode, open = OPEN,
      steps = { { "call", function(t, conn)
        local p = c[2] or (pmd.compress(text(200)) .. "\255\255\255")
        assert(conn:send(frame { payload = p, rsv1 = true }))
      end }, { "close", 1007 } },
    }
  end
  add {
    name = mode .. ": compressed text that inflates to invalid UTF-8 -> 1007",
    rfc = "RFC 6455 8.1: the inflated text must be UTF-8 (1007 otherwise)",
    server = mode, open = OPEN,
    steps = { csend(1, text(100) .. "\237\160\128" .. text(100)), { "close", 1007 } },
  }
end

---------------------------------------------------------------------------
-- Limits: decompression bombs
---------------------------------------------------------------------------

local BOMB
local function bomb()
  BOMB = BOMB or pmd.bomb(64 * MiB)
  return BOMB
end

for _, mode in ipairs { "shared", "dedicated" } do
  local server = mode .. "_1m"
  local OPEN = { extensions = "permessage-deflate", deflate = true }
  add {
    name = mode .. ", --max-message 1 MiB: 64 MiB of zeros compressed (a bomb) -> 1009 at once",
    rfc = "RFC 6455 7.4.1 (1009) with RFC 7692: a compressed message inflating past the limit is "
      .. "refused as soon as it passes it, without inflating the rest",
    server = server, open = OPEN,
    steps = { { "call", function(t, conn)
      local p = bomb()
      local t0 = E.wsclient.now()
      assert(conn:send(frame { opcode = 2, payload = p, rsv1 = true, key = Z }))
      E.expect_close(conn, 1009, { timeout = 3 })
      local took = E.wsclient.now() - t0
      assert(took < 2, "the bomb took " .. took .. " s to refuse")
      conn.done = true
    end } },
  }
  add {
    name = mode .. ", --max-message 1 MiB: the bomb in 4 KiB fragments -> 1009",
    rfc = "RFC 6455 7.4.1 (1009) with RFC 7692: the limit is on the inflated message, across fragments",
    server = server, open = OPEN,
    steps = { csend(2, nil, { payload = bomb(), size = 4096 }), { "close", 1009 } },
  }
  add {
    name = mode .. ", --max-message 1 MiB: a compressed message of exactly 1 MiB is echoed",
    rfc = "RFC 7692 with --max-message: the limit counts inflated bytes, and is inclusive",
    server = server, open = OPEN,
    steps = { csend(2, E.binary(MiB)), { "message", 2, E.binary(MiB), { compressed = true, timeout = 10 } } },
  }
  add {
    name = mode .. ", --max-message 1 MiB: a compressed message of 1 MiB + 1 -> 1009",
    rfc = "RFC 6455 7.4.1 (1009) with RFC 7692: one inflated byte over the limit is refused",
    server = server, open = OPEN,
    steps = { csend(2, E.binary(MiB + 1)), { "close", 1009 } },
  }
end

return {
  id = "12", title = "permessage-deflate",
  servers = {
    shared = MODES.shared, dedicated = MODES.dedicated,
    shared_1m = { "--deflate", "shared", "--max-message", tostring(MiB) },
    dedicated_1m = { "--deflate", "dedicated", "--max-message", tostring(MiB) },
  },
  cases = cases,
}
