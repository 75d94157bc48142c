-- Group 7 (Autobahn 7): the closing handshake. The server answers a close
-- frame with a close frame carrying the same code (1000 for an empty one)
-- and then drops TCP; it ignores everything after the peer's close; close
-- payloads that break the rules (1-byte payload, invalid or reserved code,
-- a reason that is not UTF-8, more than 125 bytes) fail with 1002 / 1007.

local E = require "spec.conformance.engine"
local frame = E.frame
local cp = E.close_payload
local assert = require "luassert"

local cases = {}
local function add(c) cases[#cases + 1] = c end

local ECHO = "RFC 6455 5.5.1: an endpoint that receives a close frame MUST send a close frame in response, "
  .. "typically echoing the status code it received; the server then closes TCP (7.1.1)"
local IGNORE = "RFC 6455 5.5.1: after sending a close frame the peer sends no more data; "
  .. "the server processes nothing after it"

local function close(code, reason) return frame { opcode = 8, payload = cp(code, reason) } end

add {
  name = "echo, then close 1000",
  rfc = ECHO,
  steps = { frame { payload = "Hello World!" }, { "message", 1, "Hello World!" },
    close(1000), { "close", 1000, { no_reply = true } } },
}
add {
  name = "close, then close again (one write): one close back, TCP closed",
  rfc = IGNORE .. "; a second close frame is not answered",
  send = { close(1000) .. close(1001) }, expect = { { "close", 1000, { no_reply = true } } },
}
add {
  name = "close, then ping (one write): no pong",
  rfc = IGNORE .. " (no pong)",
  send = { close(1000) .. frame { opcode = 9, payload = "late" } },
  expect = { { "close", 1000, { no_reply = true } } },
}
add {
  name = "close, then a text message (one write): no echo",
  rfc = IGNORE .. " (no echo)",
  send = { close(1000) .. frame { payload = "late" } },
  expect = { { "close", 1000, { no_reply = true } } },
}
add {
  name = "first fragment, close, last fragment (one write): no echo",
  rfc = IGNORE .. " (a message left unfinished by the close is dropped)",
  send = { frame { fin = false, payload = "frag" } .. close(1000) .. frame { opcode = 0, payload = "ment" } },
  expect = { { "close", 1000, { no_reply = true } } },
}
add {
  name = "256 KiB message, close, ping (one write): the echo, then the close, no pong",
  rfc = ECHO .. "; a message completed before the close is still delivered and answered",
  send = { frame { payload = E.text(262144), key = "\0\0\0\0" } .. close(1000) .. frame { opcode = 9 } },
  expect = { { "message", 1, E.text(262144) }, { "close", 1000, { no_reply = true } } },
}
add {
  name = "close written one byte at a time",
  rfc = ECHO,
  send = { { "bytewise", close(1000, "bytewise") } },
  expect = { { "close", 1000, { no_reply = true } } },
}
add {
  name = "empty close -> close 1000",
  rfc = ECHO .. "; a close without a status code (1005 locally) is answered with 1000 by this server",
  -- Fails on Node ws: it answers an empty close with an empty close frame
  -- (RFC 6455 5.5.1 allows that too; duplex's rule is to send 1000).
  send = { frame { opcode = 8, payload = "" } },
  expect = { { "close", 1000, { no_reply = true } } },
}
add {
  name = "close with a 1-byte payload -> 1002",
  rfc = "RFC 6455 5.5.1: a close body, if any, starts with a 2-byte status code; 1 byte is a protocol error",
  send = { frame { opcode = 8, payload = "\3" } },
  expect = { { "close", 1002 } },
}
add {
  name = "close 1000 with a reason",
  rfc = ECHO,
  send = { close(1000, "Hello World!") }, expect = { { "close", 1000, { no_reply = true } } },
}
add {
  name = "close 1000 with a 123-byte reason (125-byte payload)",
  rfc = ECHO .. "; a 123-byte reason fills the 125-byte control frame limit exactly",
  send = { close(1000, string.rep("*", 123)) }, expect = { { "close", 1000, { no_reply = true } } },
}
add {
  name = "close 1000 with a 124-byte reason (126-byte payload) -> 1002",
  rfc = "RFC 6455 5.5: control frames MUST have a payload of 125 bytes or less",
  send = { close(1000, string.rep("*", 124)) }, expect = { { "close", 1002 } },
}
add {
  name = "close 1000 with a multi-byte UTF-8 reason",
  rfc = ECHO .. "; the reason is UTF-8 (5.5.1)",
  send = { close(1000, "\206\186\225\189\185\207\131\206\188\206\181 \240\159\152\128") },
  expect = { { "close", 1000, { no_reply = true } } },
}
for _, c in ipairs {
  { "a surrogate", "\237\160\128" },
  { "an overlong '/'", "\192\175" },
  { "0xFF", "ok \255" },
  { "a truncated sequence", "ok \206" },
} do
  add {
    name = "close 1000 with a reason holding " .. c[1] .. " -> 1007",
    rfc = "RFC 6455 5.5.1, 8.1: the close reason is UTF-8; invalid UTF-8 fails the connection with 1007",
    send = { close(1000, c[2]) }, expect = { { "close", 1007 } },
  }
end

for _, code in ipairs { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
  3000, 3999, 4000, 4999 } do
  add {
    name = "close " .. code .. " is echoed",
    rfc = ECHO .. "; " .. code .. (code >= 4000 and " is a private-use code (7.4.2)"
      or code >= 3000 and " is in the registered range (7.4.2)" or " is a defined status code (7.4.1, IANA)"),
    send = { close(code, "reason") }, expect = { { "close", code, { no_reply = true } } },
  }
end
add {
  name = "close 1000 without a reason, same code back",
  rfc = ECHO,
  send = { close(1000) }, expect = { { "close", 1000, { no_reply = true } } },
}

for _, code in ipairs { 0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535 } do
  local why = code < 1000 and "0-999 are not used"
    or code == 1004 and "1004 is reserved"
    or (code == 1005 or code == 1006 or code == 1015) and code .. " MUST NOT be sent in a close frame"
    or code < 3000 and "1016-2999 are reserved for this and future RFCs, none assigned"
    or "codes above 4999 are not defined"
  add {
    name = "close " .. code .. " -> 1002",
    rfc = "RFC 6455 7.4: " .. why .. "; an invalid close code is a protocol error (1002)",
    send = { close(code, "x") }, expect = { { "close", 1002 } },
  }
end

add {
  name = "the client closes, does not wait: the server still closes TCP",
  rfc = "RFC 6455 7.1.1: after both close frames, the server closes the TCP connection first",
  run = function(t)
    local conn = t:open()
    assert(conn:send(close(1000)))
    local code = conn:read_close(3)
    assert.are.equal(1000, code)
    local eof, extra = conn:expect_eof(3)
    assert(eof, "the server did not close TCP")
    assert.are.equal("", extra)
  end,
}

return { id = "7", title = "close", cases = cases }
