-- Group 4 (Autobahn 4): opcodes. The reserved non-control opcodes 3-7 and
-- control opcodes 11-15 fail the connection with 1002, with or without a
-- payload, after a good message, and before anything that follows.

local E = require "spec.conformance.engine"
local frame = E.frame

local cases = {}
local function add(c) cases[#cases + 1] = c end

local RFC = "RFC 6455 5.2: opcodes %x3-7 and %xB-F are reserved; an endpoint receiving an unknown "
  .. "opcode MUST fail the connection (1002)"

for _, op in ipairs { 3, 4, 5, 6, 7, 11, 12, 13, 14, 15 } do
  local kind = op < 8 and "non-control" or "control"
  add {
    name = "reserved " .. kind .. " opcode " .. op .. " -> 1002",
    rfc = RFC, send = { frame { opcode = op } }, expect = { { "close", 1002 } },
  }
  add {
    name = "reserved " .. kind .. " opcode " .. op .. " with a payload -> 1002",
    rfc = RFC, send = { frame { opcode = op, payload = "reserved opcode payload" } },
    expect = { { "close", 1002 } },
  }
  add {
    name = "echo, reserved opcode " .. op .. ", ping (one write): echo, then 1002",
    rfc = RFC .. "; the frame after it is not processed (no pong)",
    send = { frame { payload = "good" } .. frame { opcode = op, payload = "x" } .. frame { opcode = 9 } },
    expect = { { "message", 1, "good" }, { "close", 1002 } },
  }
end

add {
  name = "reserved opcode 5 between fragments of a message -> 1002",
  rfc = RFC .. " (also inside a fragmented message)",
  send = { frame { fin = false, payload = "a" } .. frame { opcode = 5, payload = "b" } },
  expect = { { "close", 1002 } },
}

add {
  name = "reserved opcode 11 written one byte at a time -> 1002",
  rfc = RFC,
  send = { { "bytewise", frame { opcode = 11, payload = "bytewise" } } },
  expect = { { "close", 1002 } },
}

return { id = "4", title = "opcodes", cases = cases }
