-- Group 2 (Autobahn 2): pings and pongs. A ping is answered by a pong with
-- the identical payload, as soon as it can be (also between the fragments
-- of a message); unsolicited pongs are ignored; control frames are at most
-- 125 bytes and never fragmented.

local E = require "spec.conformance.engine"
local frame = E.frame

local cases = {}
local function add(c) cases[#cases + 1] = c end

local ANSWER = "RFC 6455 5.5.2, 5.5.3: a ping is answered with a pong whose application data is identical"

for _, c in ipairs {
  { "ping without payload", "" },
  { "ping with a text payload", "Hello, World!" },
  { "ping with a binary payload", "\0\255\254\253\252\251\0\255" },
  { "ping with 125 bytes of payload", E.binary(125) },
} do
  add { name = c[1], rfc = ANSWER, send = { frame { opcode = 9, payload = c[2] } }, expect = { { "pong", c[2] } } }
end

add {
  name = "ping with 125 bytes, written one byte at a time",
  rfc = ANSWER .. ", however the transport cuts the ping",
  send = { { "bytewise", frame { opcode = 9, payload = E.binary(125) } } },
  expect = { { "pong", E.binary(125) } },
}

for _, n in ipairs { 126, 65535 } do
  add {
    name = "ping with " .. n .. " bytes of payload -> 1002",
    rfc = "RFC 6455 5.5: all control frames MUST have a payload length of 125 bytes or less",
    send = { frame { opcode = 9, payload = E.binary(n) } },
    expect = { { "close", 1002 } },
  }
end

add {
  name = "unsolicited pong without payload is ignored",
  rfc = "RFC 6455 5.5.3: a pong may be sent unsolicited; no response is expected",
  send = { frame { opcode = 10 }, frame { payload = "after" } },
  expect = { { "message", 1, "after" } },
}

add {
  name = "unsolicited pong with payload is ignored",
  rfc = "RFC 6455 5.5.3: a pong may be sent unsolicited; no response is expected",
  send = { frame { opcode = 10, payload = "unsolicited pong payload" }, frame { payload = "after" } },
  expect = { { "message", 1, "after" } },
}

add {
  name = "unsolicited pong, then a ping: only the ping is answered",
  rfc = "RFC 6455 5.5.3: an unsolicited pong gets no answer; the ping that follows does",
  send = { frame { opcode = 10, payload = "unsolicited" } .. frame { opcode = 9, payload = "solicited" } },
  expect = { { "pong", "solicited" } },
}

local ten, ten_pongs = {}, {}
for i = 1, 10 do
  ten[#ten + 1] = frame { opcode = 9, payload = "payload-" .. i }
  ten_pongs[#ten_pongs + 1] = { "pong", "payload-" .. i }
end
add {
  name = "ten pings in one write: ten pongs in order",
  rfc = ANSWER .. "; every ping is answered, in order",
  send = { table.concat(ten) }, expect = ten_pongs,
}
add {
  name = "ten pings written one byte at a time: ten pongs in order",
  rfc = ANSWER .. "; every ping is answered, in order",
  send = { { "bytewise", table.concat(ten) } }, expect = ten_pongs,
}

add {
  name = "ping between the fragments of a text message, answered before it ends",
  rfc = "RFC 6455 5.4, 5.5: control frames MAY be injected in the middle of a fragmented message; "
    .. "the pong is sent as soon as practical",
  steps = {
    frame { opcode = 1, fin = false, payload = "Hello, " },
    frame { opcode = 9, payload = "in between" },
    { "pong", "in between" },
    frame { opcode = 0, payload = "World!" },
    { "message", 1, "Hello, World!" },
  },
}

add {
  name = "ping with a payload of every byte value",
  rfc = ANSWER .. " (a ping's payload is binary, not text)",
  send = { frame { opcode = 9, payload = "\128\192\255\0\237\160\128" } },
  expect = { { "pong", "\128\192\255\0\237\160\128" } },
}

add {
  name = "fragmented ping -> 1002",
  rfc = "RFC 6455 5.5: control frames MUST NOT be fragmented",
  send = { frame { opcode = 9, fin = false, payload = "frag" } .. frame { opcode = 0, payload = "ment" } },
  expect = { { "close", 1002 } },
}

add {
  name = "ping in the 16-bit length form -> 1002",
  rfc = "RFC 6455 5.5: control frames have a payload of at most 125 bytes (the 7-bit length form)",
  send = { frame { opcode = 9, payload = "x", len_form = 16 } },
  expect = { { "close", 1002 } },
}

add {
  name = "pong of 126 bytes -> 1002",
  rfc = "RFC 6455 5.5: all control frames MUST have a payload length of 125 bytes or less",
  send = { frame { opcode = 10, payload = E.binary(126) } },
  expect = { { "close", 1002 } },
}

return { id = "2", title = "pings", cases = cases }
