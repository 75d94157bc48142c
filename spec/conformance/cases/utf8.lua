-- Group 6 (Autobahn 6): UTF-8 in text messages, after Markus Kuhn's
-- "UTF-8 decoder capability and stress test": boundary code points,
-- malformed sequences (unexpected continuations, lonely start bytes,
-- truncated sequences), impossible bytes, overlong forms, surrogates, code
-- points past U+10FFFF and the old 5/6-byte forms.
--
-- Each sequence is sent (a) whole in one frame, (b) with every byte in its
-- own fragment and (c) cut in two fragments at every offset. Valid ones are
-- echoed unchanged; invalid ones fail with 1007, and fail fast: when the
-- first bad byte is in an earlier fragment than the last, the later
-- fragments are never sent -- the close must come without them.
--
-- Node ws checks a text message's UTF-8 only once the whole message is in,
-- so on ws every fail-fast case whose bad byte is not in the last fragment
-- fails (ws waits for the rest of the message; the case times out after
-- FAST s). Whole-message cases pass on ws.

local E = require "spec.conformance.engine"
local frame = E.frame
local fragments = E.fragments

local FAST = 1 -- seconds allowed for the 1007 once the bad byte is sent

local cases = {}
local function add(c) cases[#cases + 1] = c end

-- bytes(...) -> string of these byte values
local function b(...) return string.char(...) end
local function range(lo, hi, sep)
  local t = {}
  for i = lo, hi do t[#t + 1] = string.char(i) .. (sep or "") end
  return table.concat(t)
end

local KOSME = b(0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5)

-- fail_at(s) -> nil when s is valid UTF-8 (RFC 3629), else the position of
-- the first byte at which no valid sequence can continue, or #s + 1 when s
-- ends inside a sequence. (Unicode 3.9 table 3-7, the well-formed sequences.)
local function fail_at(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local need, lo, hi
    if c < 0x80 then need = 0
    elseif c >= 0xC2 and c <= 0xDF then need, lo, hi = 1, 0x80, 0xBF
    elseif c == 0xE0 then need, lo, hi = 2, 0xA0, 0xBF
    elseif c == 0xED then need, lo, hi = 2, 0x80, 0x9F
    elseif c >= 0xE1 and c <= 0xEF then need, lo, hi = 2, 0x80, 0xBF
    elseif c == 0xF0 then need, lo, hi = 3, 0x90, 0xBF
    elseif c == 0xF4 then need, lo, hi = 3, 0x80, 0x8F
    elseif c >= 0xF1 and c <= 0xF3 then need, lo, hi = 3, 0x80, 0xBF
    else return i end
    for k = 1, need do
      local d = s:byte(i + k)
      if not d then return n + 1 end
      if k == 1 then
        if d < lo or d > hi then return i + k end
      elseif d < 0x80 or d > 0xBF then
        return i + k
      end
    end
    i = i + need + 1
  end
  return nil
end

-- The table: { section, description, bytes }. Validity is computed by
-- fail_at and cross-checked against the section's own claim (valid = true).
local SEQ = {
  { "1", "Greek word kosme", KOSME, true },
  { "1", "Hello-mu@ss-oe-ae-ue-a`-a'-UTF-8!!",
    "Hello-" .. b(0xC2, 0xB5) .. "@" .. b(0xC3, 0x9F, 0xC3, 0xB6, 0xC3, 0xA4, 0xC3, 0xBC, 0xC3, 0xA0, 0xC3, 0xA1)
    .. "-UTF-8!!", true },
  { "2.1.1", "first 1-byte sequence U+0000", b(0x00), true },
  { "2.1.2", "first 2-byte sequence U+0080", b(0xC2, 0x80), true },
  { "2.1.3", "first 3-byte sequence U+0800", b(0xE0, 0xA0, 0x80), true },
  { "2.1.4", "first 4-byte sequence U+10000", b(0xF0, 0x90, 0x80, 0x80), true },
  { "2.1.5", "first 5-byte sequence U+200000", b(0xF8, 0x88, 0x80, 0x80, 0x80), false },
  { "2.1.6", "first 6-byte sequence U+4000000", b(0xFC, 0x84, 0x80, 0x80, 0x80, 0x80), false },
  { "2.2.1", "last 1-byte sequence U+007F", b(0x7F), true },
  { "2.2.2", "last 2-byte sequence U+07FF", b(0xDF, 0xBF), true },
  { "2.2.3", "last 3-byte sequence U+FFFF", b(0xEF, 0xBF, 0xBF), true },
  { "2.2.4", "last 4-byte sequence U+1FFFFF", b(0xF7, 0xBF, 0xBF, 0xBF), false },
  { "2.2.5", "last 5-byte sequence U+3FFFFFF", b(0xFB, 0xBF, 0xBF, 0xBF, 0xBF), false },
  { "2.2.6", "last 6-byte sequence U+7FFFFFFF", b(0xFD, 0xBF, 0xBF, 0xBF, 0xBF, 0xBF), false },
  { "2.3.1", "U+D7FF (before the surrogates)", b(0xED, 0x9F, 0xBF), true },
  { "2.3.2", "U+E000 (after the surrogates)", b(0xEE, 0x80, 0x80), true },
  { "2.3.3", "U+FFFD", b(0xEF, 0xBF, 0xBD), true },
  { "2.3.4", "U+10FFFF (the last code point)", b(0xF4, 0x8F, 0xBF, 0xBF), true },
  { "2.3.5", "U+110000 (past the last code point)", b(0xF4, 0x90, 0x80, 0x80), false },
  { "2.3.6", "F5 lead byte (U+140000)", b(0xF5, 0x80, 0x80, 0x80), false },
  { "3.1.1", "first continuation byte 0x80", b(0x80), false },
  { "3.1.2", "last continuation byte 0xBF", b(0xBF), false },
  { "3.1.3", "2 continuation bytes", b(0x80, 0xBF), false },
  { "3.1.4", "3 continuation bytes", b(0x80, 0xBF, 0x80), false },
  { "3.1.5", "4 continuation bytes", b(0x80, 0xBF, 0x80, 0xBF), false },
  { "3.1.6", "5 continuation bytes", b(0x80, 0xBF, 0x80, 0xBF, 0x80), false },
  { "3.1.7", "6 continuation bytes", b(0x80, 0xBF, 0x80, 0xBF, 0x80, 0xBF), false },
  { "3.1.8", "7 continuation bytes", b(0x80, 0xBF, 0x80, 0xBF, 0x80, 0xBF, 0x80), false },
  { "3.1.9", "all 64 continuation bytes 0x80-0xBF", range(0x80, 0xBF), false },
  { "3.1.10", "a continuation byte after valid text", KOSME .. b(0x80), false },
  { "3.2.1", "all 32 first bytes of 2-byte sequences, each followed by a space", range(0xC0, 0xDF, " "), false },
  { "3.2.1b", "0xC2 (a valid lead byte) followed by a space", b(0xC2) .. " ", false },
  { "3.2.2", "all 16 first bytes of 3-byte sequences, each followed by a space", range(0xE0, 0xEF, " "), false },
  { "3.2.2b", "0xE1 followed by a space", b(0xE1) .. " ", false },
  { "3.2.3", "all 8 first bytes of 4-byte sequences, each followed by a space", range(0xF0, 0xF7, " "), false },
  { "3.2.3b", "0xF1 followed by a space", b(0xF1) .. " ", false },
  { "3.2.4", "all 4 first bytes of 5-byte sequences, each followed by a space", range(0xF8, 0xFB, " "), false },
  { "3.2.5", "both first bytes of 6-byte sequences, each followed by a space", range(0xFC, 0xFD, " "), false },
  { "3.3.1", "2-byte sequence U+0000 without its last byte", b(0xC0), false },
  { "3.3.2", "3-byte sequence U+0000 without its last byte", b(0xE0, 0x80), false },
  { "3.3.3", "4-byte sequence U+0000 without its last byte", b(0xF0, 0x80, 0x80), false },
  { "3.3.4", "5-byte sequence U+0000 without its last byte", b(0xF8, 0x80, 0x80, 0x80), false },
  { "3.3.5", "6-byte sequence U+0000 without its last byte", b(0xFC, 0x80, 0x80, 0x80, 0x80), false },
  { "3.3.6", "2-byte sequence U+07FF without its last byte", b(0xDF), false },
  { "3.3.7", "3-byte sequence U+FFFF without its last byte", b(0xEF, 0xBF), false },
  { "3.3.8", "4-byte sequence U+1FFFFF without its last byte", b(0xF7, 0xBF, 0xBF), false },
  { "3.3.9", "5-byte sequence U+3FFFFFF without its last byte", b(0xFB, 0xBF, 0xBF, 0xBF), false },
  { "3.3.10", "6-byte sequence U+7FFFFFFF without its last byte", b(0xFD, 0xBF, 0xBF, 0xBF, 0xBF), false },
  { "3.3.11", "valid text ending in a truncated 2-byte sequence", KOSME .. b(0xCE), false },
  { "3.3.12", "valid text ending in a truncated 4-byte sequence (U+1F600)", "smile " .. b(0xF0, 0x9F, 0x98), false },
  { "3.3.13", "a 3-byte sequence cut short by ASCII", b(0xE2, 0x82) .. "a", false },
  { "3.4", "all of 3.3.1-3.3.10 concatenated",
    b(0xC0, 0xE0, 0x80, 0xF0, 0x80, 0x80, 0xF8, 0x80, 0x80, 0x80, 0xFC, 0x80, 0x80, 0x80, 0x80,
      0xDF, 0xEF, 0xBF, 0xF7, 0xBF, 0xBF, 0xFB, 0xBF, 0xBF, 0xBF, 0xFD, 0xBF, 0xBF, 0xBF, 0xBF), false },
  { "3.5.1", "impossible byte 0xFE", b(0xFE), false },
  { "3.5.2", "impossible byte 0xFF", b(0xFF), false },
  { "3.5.3", "impossible bytes FE FE FF FF", b(0xFE, 0xFE, 0xFF, 0xFF), false },
  { "3.5.4", "an impossible byte after valid text", KOSME .. b(0xFF) .. "tail", false },
  { "4.1.1", "overlong '/' in 2 bytes", b(0xC0, 0xAF), false },
  { "4.1.2", "overlong '/' in 3 bytes", b(0xE0, 0x80, 0xAF), false },
  { "4.1.3", "overlong '/' in 4 bytes", b(0xF0, 0x80, 0x80, 0xAF), false },
  { "4.1.4", "overlong '/' in 5 bytes", b(0xF8, 0x80, 0x80, 0x80, 0xAF), false },
  { "4.1.5", "overlong '/' in 6 bytes", b(0xFC, 0x80, 0x80, 0x80, 0x80, 0xAF), false },
  { "4.2.1", "largest overlong 2-byte sequence U+007F", b(0xC1, 0xBF), false },
  { "4.2.2", "largest overlong 3-byte sequence U+07FF", b(0xE0, 0x9F, 0xBF), false },
  { "4.2.3", "largest overlong 4-byte sequence U+FFFF", b(0xF0, 0x8F, 0xBF, 0xBF), false },
  { "4.2.4", "largest overlong 5-byte sequence U+1FFFFF", b(0xF8, 0x87, 0xBF, 0xBF, 0xBF), false },
  { "4.2.5", "largest overlong 6-byte sequence U+3FFFFFF", b(0xFC, 0x83, 0xBF, 0xBF, 0xBF, 0xBF), false },
  { "4.3.1", "overlong NUL in 2 bytes", b(0xC0, 0x80), false },
  { "4.3.2", "overlong NUL in 3 bytes", b(0xE0, 0x80, 0x80), false },
  { "4.3.3", "overlong NUL in 4 bytes", b(0xF0, 0x80, 0x80, 0x80), false },
  { "4.3.4", "overlong NUL in 5 bytes", b(0xF8, 0x80, 0x80, 0x80, 0x80), false },
  { "4.3.5", "overlong NUL in 6 bytes", b(0xFC, 0x80, 0x80, 0x80, 0x80, 0x80), false },
  { "5.1.1", "single surrogate U+D800", b(0xED, 0xA0, 0x80), false },
  { "5.1.2", "single surrogate U+DB7F", b(0xED, 0xAD, 0xBF), false },
  { "5.1.3", "single surrogate U+DB80", b(0xED, 0xAE, 0x80), false },
  { "5.1.4", "single surrogate U+DBFF", b(0xED, 0xAF, 0xBF), false },
  { "5.1.5", "single surrogate U+DC00", b(0xED, 0xB0, 0x80), false },
  { "5.1.6", "single surrogate U+DF80", b(0xED, 0xBE, 0x80), false },
  { "5.1.7", "single surrogate U+DFFF", b(0xED, 0xBF, 0xBF), false },
  { "5.1.8", "a surrogate between valid text (Autobahn 6.3)", KOSME .. b(0xED, 0xA0, 0x80) .. "edited", false },
  { "5.2.1", "paired surrogates U+D800 U+DC00", b(0xED, 0xA0, 0x80, 0xED, 0xB0, 0x80), false },
  { "5.2.2", "paired surrogates U+D800 U+DFFF", b(0xED, 0xA0, 0x80, 0xED, 0xBF, 0xBF), false },
  { "5.2.3", "paired surrogates U+DB7F U+DC00", b(0xED, 0xAD, 0xBF, 0xED, 0xB0, 0x80), false },
  { "5.2.4", "paired surrogates U+DB7F U+DFFF", b(0xED, 0xAD, 0xBF, 0xED, 0xBF, 0xBF), false },
  { "5.2.5", "paired surrogates U+DB80 U+DC00", b(0xED, 0xAE, 0x80, 0xED, 0xB0, 0x80), false },
  { "5.2.6", "paired surrogates U+DB80 U+DFFF", b(0xED, 0xAE, 0x80, 0xED, 0xBF, 0xBF), false },
  { "5.2.7", "paired surrogates U+DBFF U+DC00", b(0xED, 0xAF, 0xBF, 0xED, 0xB0, 0x80), false },
  { "5.2.8", "paired surrogates U+DBFF U+DFFF", b(0xED, 0xAF, 0xBF, 0xED, 0xBF, 0xBF), false },
  { "5.3.1", "noncharacter U+FFFE", b(0xEF, 0xBF, 0xBE), true },
  { "5.3.2", "noncharacter U+FFFF", b(0xEF, 0xBF, 0xBF), true },
  { "5.3.3", "noncharacters U+FDD0 and U+FDEF", b(0xEF, 0xB7, 0x90, 0xEF, 0xB7, 0xAF), true },
  { "5.3.4", "noncharacters U+1FFFE and U+10FFFE", b(0xF0, 0x9F, 0xBF, 0xBE, 0xF4, 0x8F, 0xBF, 0xBE), true },
  { "6.1", "the boundaries of every length, in one message",
    b(0x00, 0x7F, 0xC2, 0x80, 0xDF, 0xBF, 0xE0, 0xA0, 0x80, 0xED, 0x9F, 0xBF, 0xEE, 0x80, 0x80,
      0xEF, 0xBF, 0xBF, 0xF0, 0x90, 0x80, 0x80, 0xF3, 0xBF, 0xBF, 0xBF, 0xF4, 0x8F, 0xBF, 0xBF), true },
  { "6.2", "text in many scripts",
    "Ελληνικά Русский 日本語 한국어 עברית العربية हिन्दी ไทย 😀🎉 ∮ E⋅da = Q", true },
}

local function cut_points(s)
  local pts = {}
  for c = 1, #s - 1 do pts[#pts + 1] = c end
  return pts
end

for _, seq in ipairs(SEQ) do
  local sect, what, s, claimed = seq[1], seq[2], seq[3], seq[4]
  local fail = fail_at(s)
  assert((fail == nil) == claimed, "utf8 table: " .. sect .. " is " .. (fail and "invalid" or "valid")
    .. " by fail_at but marked otherwise")
  local label = sect .. " " .. what .. " (" .. #s .. " bytes)"

  if not fail then
    local RFC = "RFC 6455 5.6, 8.1: a text message of valid UTF-8 (RFC 3629) is delivered unchanged"
    add { name = label .. ", whole: echoed", rfc = RFC,
      send = { frame { payload = s } }, expect = { { "message", 1, s } } }
    if #s > 1 then
      local every = {}
      for i = 1, #s - 1 do every[i] = i end
      add { name = label .. ", one byte per fragment: echoed",
        rfc = RFC .. ", even when fragments split code points",
        send = { table.concat(fragments(1, s, every)) }, expect = { { "message", 1, s } } }
      local steps = {}
      for c = 1, #s - 1 do
        steps[#steps + 1] = table.concat(fragments(1, s, { c }))
        steps[#steps + 1] = { "message", 1, s }
      end
      add { name = label .. ", two fragments cut at every offset: echoed",
        rfc = RFC .. ", wherever a fragment boundary falls", steps = steps }
    end
  else
    local RFC = "RFC 6455 8.1: text that is not valid UTF-8 (RFC 3629) fails the connection with 1007"
    local FASTRFC = RFC .. ", as soon as the first bad byte (byte " .. fail .. ") arrives, "
      .. "without waiting for later fragments"
    add { name = label .. ", whole -> 1007", rfc = RFC,
      send = { frame { payload = s } }, expect = { { "close", 1007 } } }
    -- one byte per fragment: send up to the fragment holding the bad byte
    local frags = {}
    local every = {}
    for i = 1, #s - 1 do every[i] = i end
    frags = fragments(1, s, every)
    local upto = fail <= #s and fail or #s
    add { name = label .. ", one byte per fragment -> 1007"
        .. (upto < #s and " after fragment " .. upto .. " of " .. #s or ""),
      rfc = FASTRFC,
      send = { table.concat(frags, "", 1, upto) },
      expect = { { "close", 1007, { timeout = FAST } } } }
    if #s > 1 then
      local cuts = cut_points(s)
      add { name = label .. ", two fragments cut at " .. #cuts .. " offsets -> 1007 (fail fast)",
        rfc = FASTRFC,
        run = function(t)
          for _, c in ipairs(cuts) do
            local two = fragments(1, s, { c })
            local conn = t:open()
            -- the bad byte is in the first fragment: never send the second
            if fail <= c then assert(conn:send(two[1])) else assert(conn:send(two[1] .. two[2])) end
            local ok, err = pcall(E.expect_close, conn, 1007, { timeout = FAST })
            if not ok then
              error("cut after byte " .. c .. (fail <= c and " (only the first fragment sent)" or "")
                .. ": " .. tostring(type(err) == "table" and err.message or err), 0)
            end
          end
        end }
    end
  end
end

-- Autobahn 6.4: fail fast inside one frame. The frame's header announces the
-- whole payload, but only the bytes up to the bad one are sent; the server
-- must close without waiting for the rest of the frame.
-- (Node ws waits for the whole frame and then the whole message: fails.)
for _, c in ipairs {
  { "valid text, then U+110000 in the middle of a frame", KOSME .. b(0xF4, 0x90, 0x80, 0x80) .. "edited" },
  { "valid text, then 0xFF in the middle of a frame", KOSME .. b(0xFF) .. string.rep("x", 100) },
} do
  local s = c[2]
  local fail = fail_at(s)
  local bytes = frame { payload = s, key = "\0\0\0\0" }
  local hdr = #bytes - #s
  add {
    name = c[1] .. ", the frame's tail never sent -> 1007",
    rfc = "RFC 6455 8.1: invalid UTF-8 fails the connection with 1007; here as soon as the bad byte "
      .. fail .. " of a " .. #s .. "-byte frame arrives, before the frame ends",
    send = { bytes:sub(1, hdr + fail) },
    expect = { { "close", 1007, { timeout = FAST } } },
  }
end
do
  local frames = { frame { fin = false, payload = KOSME }, frame { opcode = 0, fin = false, payload = b(0xF4, 0x90, 0x80, 0x80) },
    frame { opcode = 0, payload = "edited" } }
  add {
    name = "Autobahn 6.4.1: three fragments, U+110000 in the second; the third never sent -> 1007",
    rfc = "RFC 6455 8.1: invalid UTF-8 fails the connection with 1007, without waiting for the message's end",
    send = { frames[1] .. frames[2] },
    expect = { { "close", 1007, { timeout = FAST } } },
  }
end

add {
  name = "empty text message",
  rfc = "RFC 6455 5.6: an empty text message is valid UTF-8",
  send = { frame { payload = "" } }, expect = { { "message", 1, "" } },
}
add {
  name = "empty text message in three empty fragments",
  rfc = "RFC 6455 5.4, 5.6: empty fragments join into an empty, valid text message",
  send = { table.concat(fragments(1, "", { 0, 0 })) }, expect = { { "message", 1, "" } },
}
add {
  name = "invalid UTF-8 in a binary message is delivered unchanged",
  rfc = "RFC 6455 5.6: binary data is not interpreted; only text must be UTF-8",
  send = { frame { opcode = 2, payload = b(0xC0, 0xAF, 0xED, 0xA0, 0x80, 0xFF) } },
  expect = { { "message", 2, b(0xC0, 0xAF, 0xED, 0xA0, 0x80, 0xFF) } },
}
add {
  name = "150000 bytes of euro signs (3-byte sequences) across frame boundaries",
  rfc = "RFC 6455 5.6: valid UTF-8 of any length, however fragmented, is delivered unchanged",
  send = { E.chunked(1, string.rep(b(0xE2, 0x82, 0xAC), 50000), 1000) },
  expect = { { "message", 1, string.rep(b(0xE2, 0x82, 0xAC), 50000) } },
}

return { id = "6", title = "UTF-8", cases = cases, fail_at = fail_at }
