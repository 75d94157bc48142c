--- The server's options as the core lists them (core.options(): one row
-- per option, from core/binding/server_options.c), and the ways people see
-- them: defaults in words, the command line's flags and --help, the
-- README's table (spec/inprocess_options_spec.lua checks it).
--
-- A row: name, kind ("seconds", "bytes", "integer", "enum", "string",
-- "boolean", "table", "list"), min and max (bytes, integer), values (enum:
-- its words; table: the keys its flags set; list: the words it takes in
-- place of a table, "*"), noun (string, table, list: what the value, or an
-- item, names), default (nil: see unset), unset (what leaving it out
-- means), flag (nil for none), doc (one line, Markdown). A boolean's
-- flag takes no word: it sets the opposite of the default (--no-client-js).
local core = require "duplex.core"

local M = { list = core.options(), by_name = {} }
for _, o in ipairs(M.list) do M.by_name[o.name] = o end

local KiB, MiB = 1024, 1024 * 1024

-- "a, b or c"
local function words(list, quote)
  local q = {}
  for i, w in ipairs(list) do q[i] = quote and '"' .. w .. '"' or w end
  if #q < 2 then return q[1] or "" end
  return table.concat(q, ", ", 1, #q - 1) .. " or " .. q[#q]
end

local function whole(v)
  return ("%d"):format(v)
end

--- default_text(o [, markdown]) -> the default as people read it: "16 MiB",
-- "10 s", "0 (off)", "8080", `"close"` (code-quoted in Markdown), or what
-- leaving the option out means.
function M.default_text(o, markdown)
  local v = o.default
  if v == nil then return o.unset or "none" end
  if o.kind == "seconds" then
    return v == 0 and "0 (off)" or ("%s s"):format(v % 1 == 0 and whole(v) or tostring(v))
  elseif o.kind == "bytes" and v > 0 and v % MiB == 0 then
    return whole(v / MiB) .. " MiB"
  elseif o.kind == "bytes" and v > 0 and v % KiB == 0 then
    return whole(v / KiB) .. " KiB"
  elseif o.kind == "enum" then
    return markdown and '`"' .. v .. '"`' or v
  end
  return type(v) == "number" and whole(v) or tostring(v)
end

--- range_text(o) -> "9–15" for a count (integer), else nil.
function M.range_text(o)
  if o.kind == "integer" then return ("%d–%d"):format(o.min, o.max) end
end

-- What a flag's value is called in --help.
local function metavar(o)
  if o.kind == "seconds" then return "SECONDS" end
  if o.kind == "bytes" then return "BYTES" end
  if o.kind == "integer" then return "N" end
  if o.kind == "enum" then return table.concat(o.values, "|") end
  local noun = (o.noun or o.name):match("^%S+"):upper()
  if o.kind == "list" then return table.concat(o.values, "|") .. "|" .. noun .. ",..." end
  return noun
end

--- flags(o) -> the command line's flags of o: a list of { flag =, arg =,
-- option = o, key = } (key: the key of a table option that the flag
-- sets, --tls-cert for tls.cert; nil for a plain value). Empty when o has
-- no flag.
function M.flags(o)
  if not o.flag then return {} end
  if o.kind == "boolean" then return { { flag = o.flag, arg = "", option = o, switch = true } } end
  if o.kind ~= "table" then return { { flag = o.flag, arg = metavar(o), option = o } } end
  local t = {}
  for i, key in ipairs(o.values) do
    t[i] = { flag = o.flag .. "-" .. key, arg = metavar(o), option = o, key = key }
  end
  return t
end

--- value(f, word) -> the value the command line's word gives flag f, or
-- nil, message ("--deflate needs off, shared or dedicated"). A switch
-- (f.switch: a boolean's flag) takes no word.
function M.value(f, word)
  local o = f.option
  local need
  if f.switch then
    return not o.default
  elseif o.kind == "seconds" then
    local v = tonumber(word or "")
    if v and v >= 0 then return v end
    need = "a non-negative number of seconds"
  elseif o.kind == "bytes" or o.kind == "integer" then
    local v = tonumber(word or "")
    if v and v % 1 == 0 and v >= o.min and v <= o.max then
      return math.tointeger and math.tointeger(v) or v
    end
    need = ("an integer from %d to %d"):format(o.min, o.max)
  elseif o.kind == "enum" then
    for _, w in ipairs(o.values) do
      if w == word then return w end
    end
    need = words(o.values)
  elseif o.kind == "list" then
    for _, w in ipairs(o.values) do
      if w == word then return w end
    end
    local items = {}
    for item in ((word or "") .. ","):gmatch("([^,]*),") do items[#items + 1] = item end
    local ok = word ~= nil and word ~= ""
    for _, item in ipairs(items) do ok = ok and item ~= "" end
    if ok then return items end
    need = words(o.values, true) .. " or " .. o.noun .. "s separated by commas"
  else
    if word and word ~= "" then return word end
    local noun = o.noun or "value"
    need = (noun:match("^[aeiou]") and "an " or "a ") .. noun
  end
  return nil, f.flag .. " needs " .. need
end

-- Wraps text into lines of at most width columns after indent.
local function wrap(text, indent, width)
  local lines, line = {}, ""
  for word in text:gmatch("%S+") do
    if line ~= "" and #indent + #line + 1 + #word > width then
      lines[#lines + 1] = indent .. line
      line = word
    else
      line = line == "" and word or line .. " " .. word
    end
  end
  if line ~= "" then lines[#lines + 1] = indent .. line end
  return lines
end

--- help() -> the options part of `duplex --help`: every flag, its doc and
-- its default, wrapped at 78 columns.
function M.help()
  local out, col = {}, 28
  for _, o in ipairs(M.list) do
    local fs = M.flags(o)
    if #fs > 0 then
      local head = {}
      for i, f in ipairs(fs) do head[i] = f.arg == "" and f.flag or f.flag .. " " .. f.arg end
      local range = M.range_text(o)
      local text = o.doc:gsub("`", "") .. " (" .. (range and range .. ", " or "") .. "default "
        .. M.default_text(o) .. ")"
      if o.kind == "table" then
        local keys = {}
        for i, f in ipairs(fs) do keys[i] = o.name .. "." .. f.key end
        text = text .. "; " .. (#fs > 1 and "together they set " or "sets ") .. table.concat(keys, " and ")
          .. ", keeping the app's other " .. o.name .. " keys"
      end
      local lead = "  " .. table.concat(head, " ")
      local body = wrap(text, (" "):rep(col), 78)
      if #lead < col - 1 then
        body[1] = lead .. (" "):rep(col - #lead) .. body[1]:sub(col + 1)
      else
        table.insert(body, 1, lead)
      end
      out[#out + 1] = table.concat(body, "\n")
    end
  end
  return table.concat(out, "\n") .. "\n"
end

--- markdown() -> the README's options table: its header and one row per
-- option, "| `name` | `--flag` | default | doc |".
function M.markdown()
  local rows = { "| option | flag | default | meaning |", "|---|---|---|---|" }
  for _, o in ipairs(M.list) do
    local flags = {}
    for i, f in ipairs(M.flags(o)) do flags[i] = "`" .. f.flag .. "`" end
    local range = M.range_text(o)
    local meaning = range and o.doc .. " (" .. range .. ")" or o.doc
    local cells = { "`" .. o.name .. "`", table.concat(flags, ", "), M.default_text(o, true), meaning }
    rows[#rows + 1] = ("| " .. table.concat(cells, " | ") .. " |"):gsub("|  |", "| |")
  end
  return table.concat(rows, "\n") .. "\n"
end

return M
