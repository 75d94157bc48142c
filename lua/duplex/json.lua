-- The JSON of duplex.1's controls (duplex.js's hello, sub, recovered,
-- unsub): flat objects whose values are strings, numbers, booleans and
-- null, and nothing else. Shared by the server side (lua/duplex/init.lua)
-- and the reconnecting client (lua/duplex/reconnect.lua); not a general
-- JSON library (an app wants lua-cjson).
local M = {}

-- JSON for the controls: flat objects of strings, numbers, booleans, null.
local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return escapes[c] or ("\\u%04x"):format(c:byte()) end) .. '"'
end

function M.encode(t)
  local out = {}
  for k, v in pairs(t) do
    local tv = type(v)
    local enc = tv == "string" and json_string(v) or tv == "boolean" and tostring(v)
      or tv == "number" and (v == math.floor(v) and ("%d"):format(v) or ("%.17g"):format(v)) or nil
    if enc then out[#out + 1] = json_string(k) .. ":" .. enc end
  end
  return "{" .. table.concat(out, ",") .. "}"
end

local unescapes = { b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function utf8_char(cp)
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then return string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64) end
  return string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
end

-- A flat JSON object (values: strings, numbers, booleans, null), or nil.
function M.decode(s)
  local i, t = 1, {}
  local function skip() i = s:find("[^ \t\r\n]", i) or #s + 1 end
  local function str()
    if s:sub(i, i) ~= '"' then return nil end
    local parts = {}
    i = i + 1
    while true do
      local j = s:find('["\\]', i)
      if not j then return nil end
      parts[#parts + 1] = s:sub(i, j - 1)
      if s:sub(j, j) == '"' then i = j + 1; return table.concat(parts) end
      local e = s:sub(j + 1, j + 1)
      if e == "u" then
        local cp = tonumber(s:sub(j + 2, j + 5), 16)
        if not cp then return nil end
        if cp >= 0xD800 and cp <= 0xDBFF and s:sub(j + 6, j + 7) == "\\u" then
          local lo = tonumber(s:sub(j + 8, j + 11), 16) or 0
          cp = 0x10000 + (cp - 0xD800) * 1024 + (lo - 0xDC00)
          parts[#parts + 1] = string.char(0xF0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
            0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
          i = j + 12
        else
          parts[#parts + 1] = utf8_char(cp)
          i = j + 6
        end
      else
        parts[#parts + 1] = unescapes[e] or e
        i = j + 2
      end
    end
  end
  skip()
  if s:sub(i, i) ~= "{" then return nil end
  i = i + 1
  skip()
  if s:sub(i, i) == "}" then return t end
  while true do
    skip()
    local k = str()
    if not k then return nil end
    skip()
    if s:sub(i, i) ~= ":" then return nil end
    i = i + 1
    skip()
    local c, v = s:sub(i, i), nil
    if c == '"' then v = str(); if v == nil then return nil end
    elseif s:find("^true", i) then v, i = true, i + 4
    elseif s:find("^false", i) then v, i = false, i + 5
    elseif s:find("^null", i) then i = i + 4
    else
      local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", i)
      if not num or not tonumber(num) then return nil end
      v, i = tonumber(num), i + #num
    end
    t[k] = v
    skip()
    c = s:sub(i, i)
    i = i + 1
    if c == "}" then return t end
    if c ~= "," then return nil end
  end
end

return M
