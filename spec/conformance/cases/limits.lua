-- Group 9 (Autobahn 9): limits and performance. Big text and binary
-- messages up to the 16 MiB default limit come back intact, whole,
-- fragmented or written in small pieces; many messages in a row come back
-- in order; --max-message N accepts exactly N bytes and refuses N + 1 with
-- 1009 as soon as a frame header announces it.

local E = require "spec.conformance.engine"
local frame = E.frame

local KiB, MiB = 1024, 1024 * 1024
local Z = "\0\0\0\0" -- a zero masking key: big payloads need no masking work in Lua

local cases = {}
local function add(c) cases[#cases + 1] = c end

local BIG = "RFC 6455 5.2, 5.6: a message of any length up to the server's limit (16 MiB by default) "
  .. "is delivered unchanged"
local TOO_BIG = "RFC 6455 7.4.1: 1009 -- a message too big to process; the server refuses it at the "
  .. "frame header, before its payload is buffered"

-- Payloads are built once and shared by the cases (keeps memory flat).
local cache = {}
local function data(kind, n)
  local k = kind .. n
  if not cache[k] then cache[k] = kind == "text" and E.text(n) or E.binary(n) end
  return cache[k]
end

for _, kind in ipairs { { 1, "text" }, { 2, "binary" } } do
  local op, what = kind[1], kind[2]
  for _, n in ipairs { 64 * KiB, 256 * KiB, MiB, 4 * MiB, 16 * MiB } do
    add {
      name = what .. " message of " .. (n >= MiB and (n / MiB) .. " MiB" or (n / KiB) .. " KiB"),
      rfc = BIG,
      steps = {
        { "call", function(t, conn) assert(conn:send(frame { opcode = op, payload = data(what, n), key = Z })) end },
        { "call", function(t, conn) E.expect_message(conn, op, data(what, n), { timeout = 30 }) end },
      },
    }
  end
  for _, size in ipairs { 64 * KiB, MiB } do
    add {
      name = what .. " message of 4 MiB in fragments of " .. (size / KiB) .. " KiB",
      rfc = BIG .. "; RFC 6455 5.4: fragments join into one message",
      steps = {
        { "call", function(t, conn) assert(conn:send(E.chunked(op, data(what, 4 * MiB), size, { key = Z }))) end },
        { "call", function(t, conn) E.expect_message(conn, op, data(what, 4 * MiB), { timeout = 30 }) end },
      },
    }
  end
  for _, size in ipairs { 64, 256, 1024, 4096 } do
    add {
      name = what .. " message of 1 MiB in fragments of " .. size .. " bytes",
      rfc = BIG .. "; RFC 6455 5.4: fragments join into one message",
      steps = {
        { "call", function(t, conn) assert(conn:send(E.chunked(op, data(what, MiB), size, { key = Z }))) end },
        { "call", function(t, conn) E.expect_message(conn, op, data(what, MiB), { timeout = 30 }) end },
      },
    }
  end
  for _, size in ipairs { 64, 4096, 65536 } do
    add {
      name = what .. " message of 1 MiB, one frame written in chops of " .. size .. " bytes",
      rfc = BIG .. ", however the transport cuts the frame",
      steps = {
        { "call", function(t, conn)
          local bytes = frame { opcode = op, payload = data(what, MiB), key = Z }
          for i = 1, #bytes, size do assert(conn:send(bytes:sub(i, i + size - 1))) end
        end },
        { "call", function(t, conn) E.expect_message(conn, op, data(what, MiB), { timeout = 30 }) end },
      },
    }
  end
end

for _, c in ipairs { { 1000, 16 }, { 100, 4 * KiB }, { 20, 64 * KiB } } do
  local count, size = c[1], c[2]
  add {
    name = count .. " binary messages of " .. size .. " bytes in one write, echoed in order",
    rfc = BIG .. "; messages are answered in the order they came",
    steps = {
      { "call", function(t, conn)
        local parts = {}
        for i = 1, count do
          parts[i] = frame { opcode = 2, payload = string.format("%08d", i) .. data("binary", size - 8), key = Z }
        end
        assert(conn:send(table.concat(parts)))
        for i = 1, count do
          E.expect_message(conn, 2, string.format("%08d", i) .. data("binary", size - 8), { timeout = 10 })
        end
      end },
    },
  }
end

add {
  name = "a header announcing 16 MiB + 1 (default limit) -> 1009 without the payload",
  rfc = TOO_BIG,
  send = { frame { opcode = 2, len = 16 * MiB + 1, payload = "" } },
  expect = { { "close", 1009 } },
}
add {
  name = "a header announcing 2^62 bytes -> 1009 without the payload",
  rfc = TOO_BIG,
  send = { frame { opcode = 2, len_form = 64, len_bytes = "\64\0\0\0\0\0\0\0", payload = "" } },
  expect = { { "close", 1009 } },
}

-- --max-message 1024
local N = 1024
for _, kind in ipairs { { 1, "text" }, { 2, "binary" } } do
  local op, what = kind[1], kind[2]
  add {
    name = "max_message " .. N .. ": a " .. what .. " message of exactly " .. N .. " bytes is echoed",
    rfc = BIG .. " (--max-message " .. N .. ")",
    server = "small",
    send = { frame { opcode = op, payload = data(what, N) } },
    expect = { { "message", op, data(what, N) } },
  }
  add {
    name = "max_message " .. N .. ": a " .. what .. " message of exactly " .. N .. " bytes in 4 fragments is echoed",
    rfc = BIG .. " (--max-message " .. N .. "); the limit is on the message, not the frame",
    server = "small",
    send = { E.chunked(op, data(what, N), 256) },
    expect = { { "message", op, data(what, N) } },
  }
  add {
    name = "max_message " .. N .. ": a " .. what .. " header announcing " .. (N + 1) .. " bytes -> 1009",
    rfc = TOO_BIG .. " (--max-message " .. N .. ")",
    server = "small",
    send = { frame { opcode = op, len = N + 1, payload = "" } },
    expect = { { "close", 1009 } },
  }
end
add {
  name = "max_message 1024: fragments adding up to 1025 bytes -> 1009 at the last header",
  rfc = TOO_BIG .. " (--max-message 1024): the message's total counts",
  server = "small",
  send = { frame { opcode = 2, fin = false, payload = data("binary", 1000) }
    .. frame { opcode = 0, len = 25, payload = "" } },
  expect = { { "close", 1009 } },
}
do
  local parts = {}
  for i = 1, N + 1 do parts[i] = frame { opcode = i == 1 and 1 or 0, fin = false, payload = "x" } end
  add {
    name = "max_message 1024: 1025 one-byte fragments -> 1009",
    rfc = TOO_BIG .. " (--max-message 1024): many small fragments count together",
    server = "small",
    send = { table.concat(parts) },
    expect = { { "close", 1009 } },
  }
end
do
  local parts = {}
  for i = 1, N do parts[i] = frame { opcode = i == 1 and 1 or 0, fin = i == N, payload = "y" } end
  add {
    name = "max_message 1024: 1024 one-byte fragments are echoed",
    rfc = BIG .. " (--max-message 1024), in any number of fragments",
    server = "small",
    send = { table.concat(parts) },
    expect = { { "message", 1, string.rep("y", N) } },
  }
end
add {
  name = "max_message 1024: a 125-byte ping is still answered",
  rfc = "RFC 6455 5.5.2: control frames are not messages; the message limit does not apply to them",
  server = "small",
  send = { frame { opcode = 9, payload = data("binary", 125) } },
  expect = { { "pong", data("binary", 125) } },
}

return {
  id = "9", title = "limits",
  servers = { default = {}, small = { "--max-message", tostring(N) } },
  cases = cases,
}
