-- RFC 6455 section 5: the frame codec as seen on the wire.

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"

local frame = wsclient.frame
local MiB = 1024 * 1024

-- payload(n, binary) -> n bytes: ASCII text, or every byte value in turn.
local function payload(n, binary)
  if binary then
    local t = {}
    for i = 0, 255 do t[#t + 1] = string.char((i * 7 + 3) % 256) end
    local block = table.concat(t)
    return string.rep(block, math.floor(n / 256) + 1):sub(1, n)
  end
  local block = "The quick brown fox jumps over the lazy dog 0123456789. "
  return string.rep(block, math.floor(n / #block) + 1):sub(1, n)
end

local function minimal_form(n)
  if n <= 125 then return 7 elseif n <= 65535 then return 16 else return 64 end
end

-- expect_frame(conn, opcode, data): the next frame is one unfragmented,
-- unmasked frame with the minimal length encoding.
local function expect_frame(conn, opcode, data, timeout)
  local f, err = conn:read_frame(timeout or 5)
  assert(f, "no frame: " .. tostring(err))
  assert.are.equal(opcode, f.opcode, wsclient.describe(f))
  assert.is_true(f.fin, "server frame without FIN")
  assert.is_false(f.masked, "server frames must not be masked")
  assert.is_false(f.rsv1 or f.rsv2 or f.rsv3, "server frame with RSV bits")
  assert.are.equal(minimal_form(#data), f.len_form, "length not in its minimal form")
  if f.payload ~= data then
    error(string.format("payload differs (%d bytes expected, %d got)", #data, #f.payload), 2)
  end
end

describe("framing", function()
  local srv
  setup(function() srv = server.start("spec/fixtures/echo.lua") end)
  teardown(function() srv:stop() end)

  describe("echoes messages of every length form", function()
    local sizes = { 0, 1, 125, 126, 127, 65535, 65536, MiB }
    for _, binary in ipairs { false, true } do
      for _, n in ipairs(sizes) do
        it(string.format("%s, %d bytes", binary and "binary" or "text", n), function()
          local conn = h.open(srv.port)
          local data = payload(n, binary)
          assert(conn:send_frame { opcode = binary and 2 or 1, payload = data })
          expect_frame(conn, binary and 2 or 1, data)
          h.close_cleanly(conn)
        end)
      end
    end

    it("a 16 MiB binary message (the default limit)", function()
      local conn = h.open(srv.port)
      local data = string.rep("0123456789abcdef", MiB) -- 16 MiB
      assert(conn:send_frame { opcode = 2, payload = data, key = "\0\0\0\0" })
      expect_frame(conn, 2, data, 20)
      h.close_cleanly(conn)
    end)
  end)

  describe("reassembles input however it is cut", function()
    it("a frame sent one byte at a time, for each length form", function()
      local conn = h.open(srv.port)
      for _, n in ipairs { 5, 200 } do
        local data = payload(n)
        assert(conn:send_bytewise(frame { payload = data }))
        expect_frame(conn, 1, data)
      end
      local data = payload(70000, true)
      local bytes = frame { opcode = 2, payload = data }
      assert(conn:send_bytewise(bytes:sub(1, 14)))
      assert(conn:send(bytes:sub(15)))
      expect_frame(conn, 2, data)
      h.close_cleanly(conn)
    end)

    it("a frame split in two at every offset of its header", function()
      local conn = h.open(srv.port)
      local data = payload(300)
      local bytes = frame { payload = data } -- 2 + 2 + 4 header bytes
      for cut = 1, 12 do
        assert(conn:send_split(bytes, { cut }))
        expect_frame(conn, 1, data)
      end
      h.close_cleanly(conn)
    end)

    it("frames cut at odd places, several frames in one write", function()
      local conn = h.open(srv.port)
      local a, b, c = payload(10), payload(1000, true), payload(70000)
      local bytes = frame { payload = a } .. frame { opcode = 2, payload = b } .. frame { payload = c }
      assert(conn:send_split(bytes, { 3, 17, 18, 19, 1021, 1030, 40000 }))
      expect_frame(conn, 1, a)
      expect_frame(conn, 2, b)
      expect_frame(conn, 1, c)
      -- three whole frames in one write
      assert(conn:send(frame { payload = "x" } .. frame { payload = "y" } .. frame { payload = "z" }))
      expect_frame(conn, 1, "x")
      expect_frame(conn, 1, "y")
      expect_frame(conn, 1, "z")
      h.close_cleanly(conn)
    end)

    it("fragmented text and binary messages, including empty fragments", function()
      local conn = h.open(srv.port)
      local text = payload(1000)
      assert(conn:send_fragmented(1, text, { 1, 500, 999 }))
      h.expect_message(conn, 1, text)
      local bin = payload(70000, true)
      assert(conn:send_fragmented(2, bin, { 65536 }))
      h.expect_message(conn, 2, bin)
      assert(conn:send_fragmented(1, "abc", { 0, 0, 3 })) -- empty first, middle, last
      h.expect_message(conn, 1, "abc")
      assert(conn:send_fragmented(2, "", { 0 }))
      h.expect_message(conn, 2, "")
      h.close_cleanly(conn)
    end)

    it("a fragmented message sent one byte at a time", function()
      local conn = h.open(srv.port)
      local frames = wsclient.fragments(1, "fragmented bytewise", { 4, 9 })
      assert(conn:send_bytewise(table.concat(frames)))
      h.expect_message(conn, 1, "fragmented bytewise")
      h.close_cleanly(conn)
    end)
  end)

  -- Pieces sent with a pause between them arrive in separate reads: the
  -- rest of a large frame is then read straight into its message buffer.
  describe("large frames arriving in pieces", function()
    local socket = require "socket"
    local function send_paused(conn, bytes, points)
      local prev = 0
      points[#points + 1] = #bytes
      for _, p in ipairs(points) do
        assert(conn:send(bytes:sub(prev + 1, p)))
        prev = p
        socket.sleep(0.05)
      end
    end
    -- 3 bytes of UTF-8 each ("€"), so cuts fall inside characters.
    local euros = string.rep("\226\130\172", 100000)

    it("text with characters and mask words cut across reads", function()
      local conn = h.open(srv.port)
      local bytes = frame { payload = euros }
      send_paused(conn, bytes, { 1, 9, 20001, 150002, 200003 })
      expect_frame(conn, 1, euros, 10)
      h.close_cleanly(conn)
    end)

    it("a fragmented message whose large continuation comes in pieces", function()
      local conn = h.open(srv.port)
      local frames = wsclient.fragments(1, euros, { 5, 250001 })
      local bytes = table.concat(frames)
      send_paused(conn, bytes, { 40000, 40001, 123457, #frames[1] + #frames[2] + 70000 })
      h.expect_message(conn, 1, euros, 10)
      h.close_cleanly(conn)
    end)

    it("invalid UTF-8 late in a large frame: 1007", function()
      local conn = h.open(srv.port)
      local bad = euros:sub(1, 200000) .. "\255" .. euros:sub(1, 30000)
      send_paused(conn, frame { payload = bad }, { 14, 100000 })
      h.expect_close(conn, 1007)
      h.assert_alive(srv.port)
    end)

    it("a header alone, then a large binary payload in pieces", function()
      local conn = h.open(srv.port)
      local data = payload(300000, true)
      local bytes = frame { opcode = 2, payload = data }
      send_paused(conn, bytes, { 14, 17, 65550, 262158 })
      expect_frame(conn, 2, data, 10)
      h.close_cleanly(conn)
    end)

    -- After a message past 128 KiB the server reserves a frame up to that
    -- size whole from its header: the messages after it, smaller, larger
    -- or in fragments, each in pieces, are still whole and in order.
    it("messages of every size after a large one, in pieces", function()
      local conn = h.open(srv.port)
      local sizes = { 300000, 200000, 262144, 1100000, 70000, 5 }
      for i, n in ipairs(sizes) do
        local data = payload(n, true):reverse() .. string.char(i)
        local bytes = frame { opcode = 2, payload = data }
        local points = {}
        for _, p in ipairs { 14, 17, 65550, math.floor(#bytes * 3 / 4) } do
          if p > (points[#points] or 0) and p < #bytes then points[#points + 1] = p end
        end
        send_paused(conn, bytes, points)
        expect_frame(conn, 2, data, 10)
      end
      local frames = wsclient.fragments(1, euros, { 100000, 150000 })   -- 300 000 bytes in three
      send_paused(conn, table.concat(frames), { 9, 50000, #frames[1] + 6, #frames[1] + #frames[2] + 3 })
      h.expect_message(conn, 1, euros, 10)
      h.close_cleanly(conn)
    end)
  end)

  describe("control frames", function()
    it("answers a ping with a pong carrying the same payload", function()
      local conn = h.open(srv.port)
      for _, p in ipairs { "", "abc", payload(125, true) } do
        assert(conn:send_ping(p))
        expect_frame(conn, 10, p)
      end
      assert(conn:send_bytewise(frame { opcode = 9, payload = "bytewise ping" }))
      expect_frame(conn, 10, "bytewise ping")
      h.close_cleanly(conn)
    end)

    it("answers pings sent between the fragments of a message, at once", function()
      local conn = h.open(srv.port)
      local frames = wsclient.fragments(1, "Hello, fragmented world", { 5, 12 })
      assert(conn:send(frames[1]))
      assert(conn:send_ping("p1"))
      expect_frame(conn, 10, "p1") -- before the message is complete
      assert(conn:send(frames[2] .. frame { opcode = 9, payload = "p2" } .. frames[3]))
      expect_frame(conn, 10, "p2")
      expect_frame(conn, 1, "Hello, fragmented world")
      h.close_cleanly(conn)
    end)

    it("ignores an unsolicited pong, also between fragments", function()
      local conn = h.open(srv.port)
      assert(conn:send_pong("unsolicited"))
      h.echo(conn, "after pong")
      local frames = wsclient.fragments(2, "abcdef", { 3 })
      assert(conn:send(frames[1] .. frame { opcode = 10, payload = "x" } .. frames[2]))
      h.expect_message(conn, 2, "abcdef")
      h.close_cleanly(conn)
    end)
  end)

  describe("closes with 1002 on", function()
    local cases = {
      { "an unmasked text frame", frame { payload = "x", mask = false } },
      { "an unmasked binary frame", frame { opcode = 2, payload = "x", mask = false } },
      { "an unmasked ping", frame { opcode = 9, payload = "x", mask = false } },
      { "an unmasked close", frame { opcode = 8, payload = wsclient.close_payload(1000), mask = false } },
      { "an unmasked continuation", frame { opcode = 1, fin = false, payload = "a" }
          .. frame { opcode = 0, payload = "b", mask = false } },
      { "RSV1 on a text frame", frame { payload = "x", rsv1 = true } },
      { "RSV2 on a text frame", frame { payload = "x", rsv2 = true } },
      { "RSV3 on a binary frame", frame { opcode = 2, payload = "x", rsv3 = true } },
      { "RSV1 on a ping", frame { opcode = 9, payload = "x", rsv1 = true } },
      { "RSV2 on a continuation", frame { opcode = 1, fin = false, payload = "a" }
          .. frame { opcode = 0, payload = "b", rsv2 = true } },
      { "a ping of 126 bytes", frame { opcode = 9, payload = payload(126) } },
      { "a pong of 126 bytes", frame { opcode = 10, payload = payload(126) } },
      { "a close of 126 bytes", frame { opcode = 8, payload = wsclient.close_payload(1000, payload(124)) } },
      { "a ping in the 16-bit length form", frame { opcode = 9, payload = "x", len_form = 16 } },
      { "a fragmented ping", frame { opcode = 9, payload = "x", fin = false } },
      { "a fragmented close", frame { opcode = 8, payload = wsclient.close_payload(1000), fin = false } },
      { "a continuation without a message", frame { opcode = 0, payload = "x" } },
      { "a final continuation without a message", frame { opcode = 0, payload = "x", fin = true } },
      { "a text frame inside a fragmented message", frame { opcode = 1, fin = false, payload = "a" }
          .. frame { opcode = 1, payload = "b" } },
      { "a binary frame inside a fragmented message", frame { opcode = 2, fin = false, payload = "a" }
          .. frame { opcode = 2, payload = "b" } },
      { "a 64-bit length with its top bit set", frame { opcode = 2, len_form = 64,
          len_bytes = "\128\0\0\0\0\0\0\1", payload = "" } },
    }
    for _, op in ipairs { 3, 4, 5, 6, 7, 11, 12, 13, 14, 15 } do
      cases[#cases + 1] = { "reserved opcode " .. op, frame { opcode = op, payload = "x" } }
    end
    for _, case in ipairs(cases) do
      it(case[1], function()
        h.protocol_error(srv.port, case[2], 1002)
      end)
    end
  end)

  it("closes with 1009 on a header announcing more than 16 MiB", function()
    h.protocol_error(srv.port, frame { opcode = 2, len = 16 * MiB + 1, payload = "" }, 1009)
  end)
end)

describe("max_message", function()
  local function limit_cases(get_port)
    it("echoes a message of exactly the limit", function()
      local conn = h.open(get_port())
      h.echo(conn, payload(1024, true), true)
      h.echo(conn, payload(1024), false)
      assert(conn:send_fragmented(1, payload(1024), { 1000 }))
      h.expect_message(conn, 1, payload(1024))
      h.close_cleanly(conn)
    end)

    it("closes with 1009 when a header announces one byte more, before the payload", function()
      -- only the header (and mask key) is sent
      h.protocol_error(get_port(), frame { opcode = 2, len = 1025, payload = "" }, 1009)
      h.protocol_error(get_port(), frame { opcode = 1, len = 65536, payload = "" }, 1009)
    end)

    it("closes with 1009 when a header announces one byte more, after a message of the limit", function()
      local conn = h.open(get_port())
      h.echo(conn, payload(1024, true), true)
      assert(conn:send(frame { opcode = 2, len = 1025, payload = "" }))
      h.expect_close(conn, 1009)
    end)

    it("closes with 1009 when a fragment takes the message over the limit", function()
      local bytes = frame { opcode = 2, fin = false, payload = payload(1000, true) }
        .. frame { opcode = 0, len = 25, payload = "" }
      h.protocol_error(get_port(), bytes, 1009)
    end)

    it("is not fooled by many small fragments", function()
      local parts = {}
      for i = 1, 1025 do
        parts[#parts + 1] = frame { opcode = i == 1 and 2 or 0, fin = false, payload = "x" }
      end
      h.protocol_error(get_port(), table.concat(parts), 1009)
    end)
  end

  describe("from --max-message", function()
    local srv
    setup(function() srv = server.start("spec/fixtures/echo.lua", { "--max-message", "1024" }) end)
    teardown(function() srv:stop() end)
    limit_cases(function() return srv.port end)
  end)

  describe("from the app's config", function()
    local srv
    setup(function() srv = server.start("spec/fixtures/limits.lua") end)
    teardown(function() srv:stop() end)
    limit_cases(function() return srv.port end)
  end)
end)
