-- Group 3 (Autobahn 3): reserved bits. With no extension negotiated, a frame
-- with RSV1, RSV2 or RSV3 set fails the connection with 1002 -- also when it
-- follows a good message in the same write, and whatever the frame type.

local E = require "spec.conformance.engine"
local frame = E.frame

local cases = {}
local function add(c) cases[#cases + 1] = c end

local RFC = "RFC 6455 5.2: RSV1-3 MUST be 0 unless an extension defining them is negotiated; "
  .. "otherwise the receiving endpoint MUST fail the connection (1002)"

local function bits(v) return { rsv1 = v >= 4, rsv2 = v % 4 >= 2, rsv3 = v % 2 == 1 } end
local function with(o, v)
  local b = bits(v)
  o.rsv1, o.rsv2, o.rsv3 = b.rsv1, b.rsv2, b.rsv3
  return frame(o)
end

for v = 1, 7 do
  add {
    name = "text frame with RSV = " .. v .. " -> 1002",
    rfc = RFC,
    send = { with({ payload = "Hello, World!" }, v) },
    expect = { { "close", 1002 } },
  }
end

add {
  name = "echo, then a text frame with RSV2, then a ping (one write): echo, then 1002",
  rfc = RFC .. "; frames before the bad one are processed, nothing after it",
  send = { frame { payload = "good" } .. with({ payload = "bad" }, 2) .. frame { opcode = 9, payload = "late" } },
  expect = { { "message", 1, "good" }, { "close", 1002 } },
}
add {
  name = "the same, written one byte at a time",
  rfc = RFC .. "; frames before the bad one are processed, nothing after it",
  send = { { "bytewise", frame { payload = "good" } .. with({ payload = "bad" }, 3)
    .. frame { opcode = 9, payload = "late" } } },
  expect = { { "message", 1, "good" }, { "close", 1002 } },
}
add {
  name = "binary frame with RSV = 4 (RSV1) -> 1002",
  rfc = RFC .. " (RSV1 means nothing without permessage-deflate)",
  send = { with({ opcode = 2, payload = "\0\255\1\254" }, 4) },
  expect = { { "close", 1002 } },
}
add {
  name = "ping with RSV = 5 -> 1002",
  rfc = RFC,
  send = { with({ opcode = 9, payload = "ping" }, 5) },
  expect = { { "close", 1002 } },
}
add {
  name = "pong with RSV = 2 -> 1002",
  rfc = RFC,
  send = { with({ opcode = 10, payload = "pong" }, 2) },
  expect = { { "close", 1002 } },
}
add {
  name = "close with RSV = 6 -> 1002",
  rfc = RFC,
  send = { with({ opcode = 8, payload = E.close_payload(1000) }, 6) },
  expect = { { "close", 1002 } },
}
add {
  name = "continuation frame with RSV = 1 -> 1002",
  rfc = RFC,
  send = { frame { fin = false, payload = "frag" } .. with({ opcode = 0, payload = "ment" }, 1) },
  expect = { { "close", 1002 } },
}
add {
  name = "empty text frame with RSV = 7 -> 1002",
  rfc = RFC .. " (also without a payload)",
  send = { with({ payload = "" }, 7) },
  expect = { { "close", 1002 } },
}

return { id = "3", title = "reserved bits", cases = cases }
