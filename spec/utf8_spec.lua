-- UTF-8 in text messages and close reasons (RFC 6455 5.6, 7.1.6, 8.1):
-- valid text in any fragmentation is echoed; invalid text is closed with
-- 1007 as soon as the first bad byte arrives.

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"

local frame = wsclient.frame

-- 1, 2, 3 and 4-byte sequences, incl. the edges of each range
local VALID = "ascii \194\128 \223\191 h\195\169llo w\195\182rld \224\160\128 \226\130\172 \226\152\131 "
  .. "\237\159\191 \238\128\128 \239\191\191 \240\144\128\128 \240\157\132\158 \244\143\191\191 end"

local INVALID = {
  { "a lone continuation byte", "\128" },
  { "0xFF", "\255" },
  { "0xFE", "\254" },
  { "an overlong 2-byte '/'", "\192\175" },
  { "an overlong 2-byte NUL", "\193\128" },
  { "an overlong 3-byte sequence", "\224\128\175" },
  { "an overlong 4-byte sequence", "\240\128\128\175" },
  { "a UTF-16 high surrogate", "\237\160\128" },
  { "a UTF-16 low surrogate", "\237\191\191" },
  { "a code point above U+10FFFF", "\244\144\128\128" },
  { "a 5-byte sequence", "\248\136\128\128\128" },
  { "a lead byte followed by ASCII", "\226\130a" },
}

describe("UTF-8", function()
  local srv
  setup(function() srv = server.start("spec/fixtures/echo.lua") end)
  teardown(function() srv:stop() end)

  it("echoes valid multi-byte text", function()
    local conn = h.open(srv.port)
    h.echo(conn, VALID)
    h.echo(conn, string.rep("\226\130\172", 50000)) -- 150000 bytes of euro signs
    h.close_cleanly(conn)
  end)

  it("echoes valid text fragmented at every byte offset", function()
    local conn = h.open(srv.port)
    for cut = 1, #VALID - 1 do
      assert(conn:send_fragmented(1, VALID, { cut }))
      h.expect_message(conn, 1, VALID)
    end
    h.close_cleanly(conn)
  end)

  it("echoes valid text with every byte in its own fragment", function()
    local conn = h.open(srv.port)
    local cuts = {}
    for i = 1, #VALID - 1 do cuts[i] = i end
    assert(conn:send_fragmented(1, VALID, cuts))
    h.expect_message(conn, 1, VALID)
    h.close_cleanly(conn)
  end)

  it("echoes valid text sent one byte at a time", function()
    local conn = h.open(srv.port)
    assert(conn:send_bytewise(frame { payload = VALID }))
    h.expect_message(conn, 1, VALID)
    h.close_cleanly(conn)
  end)

  it("does not check binary messages", function()
    local conn = h.open(srv.port)
    h.echo(conn, "\255\254\192\175\237\160\128", true)
    h.close_cleanly(conn)
  end)

  describe("closes with 1007 on", function()
    for _, case in ipairs(INVALID) do
      it(case[1] .. " in a text message", function()
        h.protocol_error(srv.port, frame { payload = "ok " .. case[2] .. " tail" }, 1007)
      end)
    end

    it("a sequence cut off at the end of the message", function()
      h.protocol_error(srv.port, frame { payload = "ends with \226\130" }, 1007)
      h.protocol_error(srv.port, table.concat(wsclient.fragments(1, "ends with \240\157\132", { 11 })), 1007)
    end)

    it("a bad byte in a middle fragment, before the last fragment is sent", function()
      local frames = wsclient.fragments(1, "good start, bad \255 middle, never sent end", { 11, 28 })
      h.protocol_error(srv.port, frames[1] .. frames[2], 1007)
    end)

    it("a bad byte split over fragments (lead byte, then a non-continuation)", function()
      local frames = wsclient.fragments(1, "abc\226\130Xyz", { 5 })
      h.protocol_error(srv.port, frames[1] .. frames[2], 1007)
    end)

    it("the first bad byte, before the rest of the frame arrives", function()
      -- header announces 100 bytes; only the first 8 (bad at the 5th) are sent
      local data = "good\255" .. string.rep("x", 95)
      local bytes = frame { payload = data }
      local header = 2 + 4 -- 7-bit length + mask key
      h.protocol_error(srv.port, bytes:sub(1, header + 8), 1007)
    end)

    it("an invalid close reason", function()
      h.protocol_error(srv.port, frame { opcode = 8, payload = wsclient.close_payload(1000, "bad \255 reason") }, 1007)
      h.protocol_error(srv.port, frame { opcode = 8, payload = wsclient.close_payload(1000, "\237\160\128") }, 1007)
    end)
  end)

  it("accepts a valid multi-byte close reason", function()
    local conn = h.open(srv.port)
    assert(conn:send_close(1000, "bye \226\152\131"))
    h.expect_close(conn, 1000, nil, { no_reply = true })
    h.assert_alive(srv.port)
  end)
end)
