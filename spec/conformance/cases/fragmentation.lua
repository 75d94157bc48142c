-- Group 5 (Autobahn 5): fragmentation. Fragments are joined into one
-- message whatever their number and sizes (empty ones included); control
-- frames may come between them and are answered at once; a continuation
-- without a message, a new message inside one, or a fragmented control
-- frame fails the connection with 1002.

local E = require "spec.conformance.engine"
local frame = E.frame
local fragments = E.fragments

local cases = {}
local function add(c) cases[#cases + 1] = c end

local JOIN = "RFC 6455 5.4: a fragmented message is the concatenation of its fragments' payloads, "
  .. "delivered as one message of the first frame's type"
local BAD = "RFC 6455 5.4: fragments of one message come in order, with no other data frame between "
  .. "them; a continuation frame needs a message to continue (fail with 1002)"

for _, kind in ipairs { { 1, "text" }, { 2, "binary" } } do
  local op, what = kind[1], kind[2]
  add {
    name = what .. " message in two fragments",
    rfc = JOIN,
    send = { table.concat(fragments(op, "fragment1fragment2", { 9 })) },
    expect = { { "message", op, "fragment1fragment2" } },
  }
  add {
    name = what .. " message in two fragments, written one byte at a time",
    rfc = JOIN,
    send = { { "bytewise", table.concat(fragments(op, "fragment1fragment2", { 9 })) } },
    expect = { { "message", op, "fragment1fragment2" } },
  }
end

local every = {}
for i = 1, 99 do every[i] = i end
add {
  name = "text message of 100 bytes in 100 one-byte fragments",
  rfc = JOIN,
  send = { table.concat(fragments(1, E.text(100), every)) },
  expect = { { "message", 1, E.text(100) } },
}

add {
  name = "empty fragments first, in the middle and last",
  rfc = JOIN .. " (a fragment may be empty)",
  send = { table.concat(fragments(1, "abc", { 0, 0, 1, 1, 3 })) },
  expect = { { "message", 1, "abc" } },
}

add {
  name = "a message of only empty fragments",
  rfc = JOIN .. " (an empty message may be fragmented)",
  send = { table.concat(fragments(2, "", { 0, 0, 0 })) },
  expect = { { "message", 2, "" } },
}

for _, size in ipairs { 64, 1000, 65536 } do
  add {
    name = "binary message of 256 KiB in fragments of " .. size .. " bytes",
    rfc = JOIN,
    send = { E.chunked(2, E.binary(262144), size, { key = "\0\0\0\0" }) },
    expect = { { "message", 2, E.binary(262144) } },
  }
end

add {
  name = "ping between two fragments: pong first, then the message",
  rfc = JOIN .. "; RFC 6455 5.5: control frames may be injected between fragments",
  send = { frame { fin = false, payload = "fragment1" } .. frame { opcode = 9, payload = "ping" }
    .. frame { opcode = 0, payload = "fragment2" } },
  expect = { { "pong", "ping" }, { "message", 1, "fragment1fragment2" } },
}
add {
  name = "the same, written one byte at a time",
  rfc = JOIN .. "; RFC 6455 5.5: control frames may be injected between fragments",
  send = { { "bytewise", frame { fin = false, payload = "fragment1" } .. frame { opcode = 9, payload = "ping" }
    .. frame { opcode = 0, payload = "fragment2" } } },
  expect = { { "pong", "ping" }, { "message", 1, "fragment1fragment2" } },
}
add {
  name = "pong between two fragments is ignored",
  rfc = JOIN .. "; an unsolicited pong between fragments changes nothing",
  send = { frame { fin = false, payload = "fragment1" } .. frame { opcode = 10, payload = "pong" }
    .. frame { opcode = 0, payload = "fragment2" } },
  expect = { { "message", 1, "fragment1fragment2" } },
}
local many, pongs = { frame { opcode = 2, fin = false, payload = "0" } }, {}
for i = 1, 9 do
  many[#many + 1] = frame { opcode = 9, payload = "p" .. i }
  many[#many + 1] = frame { opcode = 0, fin = i == 9, payload = tostring(i) }
  pongs[#pongs + 1] = { "pong", "p" .. i }
end
pongs[#pongs + 1] = { "message", 2, "0123456789" }
add {
  name = "ten fragments with a ping after each but the last",
  rfc = JOIN .. "; every ping between fragments is answered, in order, before the message",
  send = { table.concat(many) }, expect = pongs,
}

for _, c in ipairs {
  { "continuation (FIN) without a message", frame { opcode = 0, payload = "fragment" } },
  { "continuation (no FIN) without a message", frame { opcode = 0, fin = false, payload = "fragment" } },
  { "continuation without a message, then a message",
    frame { opcode = 0, fin = false, payload = "fragment1" } .. frame { payload = "fragment2" } },
  { "continuation after a whole message", frame { payload = "whole" } .. frame { opcode = 0, payload = "more" },
    { "message", 1, "whole" } },
  { "text frame inside a fragmented text message",
    frame { fin = false, payload = "a" } .. frame { payload = "b" } },
  { "binary frame inside a fragmented text message",
    frame { fin = false, payload = "a" } .. frame { opcode = 2, payload = "b" } },
  { "text frame (no FIN) inside a fragmented binary message",
    frame { opcode = 2, fin = false, payload = "a" } .. frame { fin = false, payload = "b" } },
} do
  local expect = { { "close", 1002 } }
  if c[3] then expect = { c[3], { "close", 1002 } } end
  add { name = c[1] .. " -> 1002", rfc = BAD, send = { c[2] }, expect = expect }
  add { name = c[1] .. ", one byte at a time -> 1002", rfc = BAD, send = { { "bytewise", c[2] } }, expect = expect }
end

for _, c in ipairs { { 9, "ping" }, { 10, "pong" }, { 8, "close" } } do
  local p = c[1] == 8 and E.close_payload(1000) or "frag"
  add {
    name = "fragmented " .. c[2] .. " -> 1002",
    rfc = "RFC 6455 5.5: control frames MUST NOT be fragmented (FIN clear on a control frame: fail with 1002)",
    send = { frame { opcode = c[1], fin = false, payload = p } .. frame { opcode = 0, payload = "ment" } },
    expect = { { "close", 1002 } },
  }
end

return { id = "5", title = "fragmentation", cases = cases }
