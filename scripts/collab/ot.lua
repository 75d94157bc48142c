-- scripts/collab/ot.lua: operational transformation for plain text, shared by
-- scripts/collab.lua (the server) and spec/collab_spec.lua (its clients).
-- scripts/collab/ot.js is the same algorithm for the page; the spec checks
-- that both give the same answers.
--
-- Positions and counts are Unicode code points (not bytes, not UTF-16
-- units): a position can never fall inside a character, so no edit can
-- corrupt the UTF-8 of the document, whatever the characters ("é", "中",
-- emoji). Lua strings here are UTF-8 bytes; code points are counted by
-- their lead bytes.
--
-- An operation is a list of components applied in order, each one of
--   { pos = P, insert = "text" }   insert text before code point P (0-based)
--   { pos = P, delete = N }        delete N code points starting at P
-- This is also their JSON form on the wire. Lists are needed because a
-- delete transformed past an insert that landed inside its range becomes
-- two deletes.
--
-- Tie-break: when two inserts land at the same position, the one of the
-- second argument of transform (the op the server committed first) goes
-- first. The server calls transform(client_op, committed_op); a client
-- calls transform(own_pending_op, op_from_server): both sides order the
-- same pair the same way, so they converge.
--
-- Works on Lua 5.4 and LuaJIT (no utf8 library, no bit operators).

local M = {}

local byte, find, sub, gsub = string.byte, string.find, string.sub, string.gsub

-- length(s) -> number of code points of the valid UTF-8 string s.
function M.length(s)
  local _, n = gsub(s, "[^\128-\191]", "")
  return n
end

-- offset(s, cp) -> the byte index (1-based) at which code point number cp
-- (0-based) starts; #s + 1 when cp is the length. cp must be in range.
-- Skips whole chunks in C: a chunk of k bytes holds at most k code points.
function M.offset(s, cp)
  local i, n = 1, #s
  while cp > 0 do
    local chunk = sub(s, i, i + cp - 1)
    if chunk == "" then return n + 1 end
    local _, leads = gsub(chunk, "[^\128-\191]", "")
    -- move past the chunk and the continuation bytes of its last character
    i = find(s, "[^\128-\191]", i + #chunk) or n + 1
    cp = cp - leads
  end
  return i
end

-- valid_utf8(s) -> true, or nil, message for the first bad byte. Strict:
-- no overlong forms, no surrogates, nothing past U+10FFFF.
function M.valid_utf8(s)
  local i, n = 1, #s
  while true do
    i = find(s, "[\128-\255]", i)
    if not i then return true end
    local c = byte(s, i)
    local need, lo, hi = 0, 0x80, 0xBF
    if c >= 0xC2 and c <= 0xDF then need = 1
    elseif c == 0xE0 then need, lo = 2, 0xA0
    elseif c == 0xED then need, hi = 2, 0x9F
    elseif c >= 0xE1 and c <= 0xEF then need = 2
    elseif c == 0xF0 then need, lo = 3, 0x90
    elseif c >= 0xF1 and c <= 0xF3 then need = 3
    elseif c == 0xF4 then need, hi = 3, 0x8F
    else return nil, "invalid UTF-8 at byte " .. i end
    if i + need > n then return nil, "truncated UTF-8 at byte " .. i end
    local c2 = byte(s, i + 1)
    if c2 < lo or c2 > hi then return nil, "invalid UTF-8 at byte " .. i + 1 end
    for k = 2, need do
      local ck = byte(s, i + k)
      if ck < 0x80 or ck > 0xBF then return nil, "invalid UTF-8 at byte " .. i + k end
    end
    i = i + need + 1
  end
end

local function ins(pos, text) return { pos = pos, insert = text } end
local function del(pos, count) return { pos = pos, delete = count } end

-- Where position x goes once delete d has been applied.
local function past_delete(x, d)
  if x <= d.pos then return x end
  if x >= d.pos + d.delete then return x - d.delete end
  return d.pos
end

-- Two single components a and b made on the same text -> a' (a to apply
-- after b) and b' (b to apply after a), each a list; b's insert goes first
-- at a tie.
local function transform_one(a, b)
  if a.insert then
    local la = M.length(a.insert)
    if b.insert then
      if a.pos < b.pos then return { a }, { ins(b.pos + la, b.insert) } end
      return { ins(a.pos + M.length(b.insert), a.insert) }, { b }
    end
    local b_end = b.pos + b.delete
    if a.pos <= b.pos then return { a }, { del(b.pos + la, b.delete) } end
    if a.pos >= b_end then return { ins(a.pos - b.delete, a.insert) }, { b } end
    -- a's insert lands inside b's range: it survives, b goes around it
    return { ins(b.pos, a.insert) }, { del(b.pos, a.pos - b.pos), del(b.pos + la, b_end - a.pos) }
  end
  if b.insert then
    local bb, aa = transform_one(b, a)
    return aa, bb
  end
  -- two deletes: each loses the part the other already deleted
  local a_end, b_end = a.pos + a.delete, b.pos + b.delete
  local lo, hi = math.max(a.pos, b.pos), math.min(a_end, b_end)
  local overlap = hi > lo and hi - lo or 0
  local a2, b2 = {}, {}
  if a.delete > overlap then a2[1] = del(past_delete(a.pos, b), a.delete - overlap) end
  if b.delete > overlap then b2[1] = del(past_delete(b.pos, a), b.delete - overlap) end
  return a2, b2
end

local function append(to, list)
  for i = 1, #list do to[#to + 1] = list[i] end
  return to
end

-- The pieces one component has become, past one component b (which may
-- itself split): a' pieces, b' pieces. Short lists; by recursion.
local function pieces_past(pieces, b)
  if #pieces == 0 then return pieces, { b } end
  if #pieces == 1 then return transform_one(pieces[1], b) end
  local head, b1 = transform_one(pieces[1], b)
  local tail = {}
  for i = 2, #pieces do tail[#tail + 1] = pieces[i] end
  local out_b = {}
  for _, bb in ipairs(b1) do
    tail, bb = pieces_past(tail, bb)
    append(out_b, bb)
  end
  return append(head, tail), out_b
end

-- transform(a, b) -> a', b': a and b are operations (lists) made on the same
-- text; a' applies after b, b' applies after a, and both orders give the
-- same text. b's inserts go first at a tie. Neither argument is modified.
-- Component by component (a grid of |a| x |b| pairs): a's i-th component
-- goes past b as it stands after a's first i-1.
function M.transform(a, b)
  local out = {}
  for i = 1, #a do
    local pieces, b_next = { a[i] }, {}
    for j = 1, #b do
      local b_pieces
      pieces, b_pieces = pieces_past(pieces, b[j])
      append(b_next, b_pieces)
    end
    append(out, pieces)
    b = b_next
  end
  return out, b
end

-- apply(text, op) -> the text with op applied. op must be valid for text
-- (see check); text is UTF-8, positions are code points.
function M.apply(text, op)
  for _, c in ipairs(op) do
    local at = M.offset(text, c.pos)
    if c.insert then
      text = sub(text, 1, at - 1) .. c.insert .. sub(text, at)
    else
      local stop = M.offset(sub(text, at), c.delete) + at - 1
      text = sub(text, 1, at - 1) .. sub(text, stop)
    end
  end
  return text
end

local function is_count(v)
  return type(v) == "number" and v == math.floor(v) and v >= 0 and v < 2 ^ 31
end

-- check(op, length [, max_components]) -> the length after op, or nil,
-- message, name. Checks that op is a non-empty list of well-formed
-- components whose positions fit a text of `length` code points. name is
-- "bad_op" (shape, types, text) or "out_of_range". Integers arriving as
-- floats (JSON numbers) are replaced by integers in place.
function M.check(op, length, max_components)
  if type(op) ~= "table" then return nil, "op must be a list of components", "bad_op" end
  local n = #op
  for k in pairs(op) do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then
      return nil, "op must be a list of components, not an object", "bad_op"
    end
  end
  if n == 0 then return nil, "op must be a non-empty list of components", "bad_op" end
  if max_components and n > max_components then
    return nil, ("op has %d components, at most %d allowed"):format(n, max_components), "bad_op"
  end
  for i = 1, n do
    local c = op[i]
    local where = "component " .. i .. ": "
    if type(c) ~= "table" then return nil, where .. "must be an object", "bad_op" end
    for k in pairs(c) do
      if k ~= "pos" and k ~= "insert" and k ~= "delete" then
        return nil, where .. "unknown key " .. tostring(k), "bad_op"
      end
    end
    if not is_count(c.pos) then return nil, where .. "pos must be a non-negative integer", "bad_op" end
    c.pos = math.floor(c.pos)
    if (c.insert == nil) == (c.delete == nil) then
      return nil, where .. "needs exactly one of insert (text) or delete (count)", "bad_op"
    end
    if c.insert ~= nil then
      if type(c.insert) ~= "string" or c.insert == "" then
        return nil, where .. "insert must be a non-empty string", "bad_op"
      end
      local ok, err = M.valid_utf8(c.insert)
      if not ok then return nil, where .. err, "bad_op" end
      if find(c.insert, "\r", 1, true) then
        return nil, where .. "text must not contain carriage returns (lines end with \\n)", "bad_op"
      end
      if c.pos > length then
        return nil, ("%sinsert at %d past the end (length %d)"):format(where, c.pos, length), "out_of_range"
      end
      length = length + M.length(c.insert)
    else
      if not is_count(c.delete) or c.delete == 0 then
        return nil, where .. "delete must be a positive integer", "bad_op"
      end
      c.delete = math.floor(c.delete)
      if c.pos + c.delete > length then
        return nil, ("%sdelete %d at %d past the end (length %d)"):format(where, c.delete, c.pos, length),
          "out_of_range"
      end
      length = length - c.delete
    end
  end
  return length
end

return M
