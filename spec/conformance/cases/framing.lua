-- Group 1 (Autobahn 1): framing. Text and binary messages of every length
-- encoding are echoed in one unmasked, minimal-length frame; input is
-- accepted however TCP cuts it; broken frame headers are protocol errors.

local E = require "spec.conformance.engine"
local frame = E.frame

local cases = {}
local function add(c) cases[#cases + 1] = c end

local SIZES = { 0, 1, 125, 126, 127, 128, 65535, 65536, 100000 }

for _, kind in ipairs { { 1, "text", E.text }, { 2, "binary", E.binary } } do
  local op, what, make = kind[1], kind[2], kind[3]
  for _, n in ipairs(SIZES) do
    local data = make(n)
    add {
      name = what .. " message, " .. n .. " bytes",
      rfc = "RFC 6455 5.2, 5.6: a " .. what .. " message of " .. n .. " bytes ("
        .. (n <= 125 and "7-bit" or n <= 65535 and "16-bit" or "64-bit")
        .. " length) is delivered unchanged; the echo is one unmasked frame with the minimal length form",
      send = { frame { opcode = op, payload = data } },
      expect = { { "message", op, data } },
    }
  end
  add {
    name = what .. " message, 65536 bytes, written in 997-byte chops",
    rfc = "RFC 6455 5.2: a frame is the same frame however the transport cuts it",
    send = { { "chop", frame { opcode = op, payload = make(65536) }, 997 } },
    expect = { { "message", op, make(65536) } },
  }
  add {
    name = what .. " message, 200 bytes, written one byte at a time",
    rfc = "RFC 6455 5.2: a frame is the same frame however the transport cuts it",
    send = { { "bytewise", frame { opcode = op, payload = make(200) } } },
    expect = { { "message", op, make(200) } },
  }
end

for _, form in ipairs { 7, 16, 64 } do
  local data = E.text(form == 7 and 100 or form == 16 and 300 or 70000)
  local bytes = frame { payload = data }
  local hdr = form == 7 and 6 or form == 16 and 8 or 14
  local points = {}
  for i = 1, hdr do points[#points + 1] = i end
  add {
    name = "frame header (" .. form .. "-bit length) cut after every byte",
    rfc = "RFC 6455 5.2: the header may arrive in pieces (one write per header byte)",
    send = { { "split", bytes, points } },
    expect = { { "message", 1, data } },
  }
end

add {
  name = "three frames in one write",
  rfc = "RFC 6455 5.2: frames follow each other with no delimiter; each is parsed from its header",
  send = { frame { payload = "one" } .. frame { opcode = 2, payload = "two" } .. frame { payload = "three" } },
  expect = { { "message", 1, "one" }, { "message", 2, "two" }, { "message", 1, "three" } },
}

add {
  name = "frames cut at odd places across their boundaries",
  rfc = "RFC 6455 5.2: frame boundaries need not match transport boundaries",
  send = { { "split", frame { payload = E.text(10) } .. frame { opcode = 2, payload = E.binary(1000) }
    .. frame { payload = E.text(70000) }, { 3, 17, 18, 19, 1021, 1030, 40000 } } },
  expect = { { "message", 1, E.text(10) }, { "message", 2, E.binary(1000) }, { "message", 1, E.text(70000) } },
}

for _, key in ipairs { "\0\0\0\0", "\255\255\255\255", "\1\2\3\4" } do
  add {
    name = string.format("masking key %02x%02x%02x%02x", key:byte(1, 4)),
    rfc = "RFC 6455 5.3: any 32-bit masking key unmasks the payload by XOR, octet i with key octet i mod 4",
    send = { frame { payload = E.text(77), key = key } },
    expect = { { "message", 1, E.text(77) } },
  }
end

add {
  name = "a non-minimal 16-bit length for a 5-byte payload is still the same frame",
  rfc = "RFC 6455 5.2: the sender MUST use the minimal length form; a receiver here accepts the "
    .. "longer form and echoes the payload (the server's own frame uses the minimal form)",
  -- Informational in Autobahn; duplex and ws both accept it.
  send = { frame { payload = "short", len_form = 16 } },
  expect = { { "message", 1, "short" } },
}

for _, c in ipairs {
  { "an unmasked text frame", frame { payload = "x", mask = false } },
  { "an unmasked binary frame", frame { opcode = 2, payload = "x", mask = false } },
  { "an unmasked empty frame", frame { payload = "", mask = false } },
  { "an unmasked ping", frame { opcode = 9, payload = "x", mask = false } },
} do
  add {
    name = c[1] .. " -> 1002",
    rfc = "RFC 6455 5.1: a server MUST close the connection upon receiving a frame that is not masked (1002)",
    send = { c[2] }, expect = { { "close", 1002 } },
  }
end

add {
  name = "a 64-bit length with its most significant bit set -> 1002",
  rfc = "RFC 6455 5.2: the most significant bit of the 64-bit length MUST be 0",
  -- Fails on Node ws: it checks the length against 2^53 - 1 and its
  -- maxPayload before anything else and answers 1009 (too big) instead.
  send = { frame { opcode = 2, len_form = 64, len_bytes = "\128\0\0\0\0\0\0\1", payload = "" } },
  expect = { { "close", 1002 } },
}

return { id = "1", title = "framing", cases = cases }
