-- One place for each option: the core's list (core.options(), the rows of
-- core/binding/server_options.c) is what the README's options table says,
-- what the command line's flags and --help are made from, and what
-- duplex.app checks. In process: it loads duplex.core into busted's Lua.
--
-- When the README's table and the list part, the failure prints the table
-- the list makes: paste it over the README's (or fix the row).

local duplex = require "duplex"
local options = require "duplex.options"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- The README's options table: its lines, from its header to the first
-- line that is not a row.
local function readme_table()
  local lines, inside = {}, false
  for line in (read("README.md") .. "\n"):gmatch("([^\n]*)\n") do
    if line == "| option | flag | default | meaning |" then inside = true end
    if inside and line:sub(1, 1) ~= "|" then break end
    if inside then lines[#lines + 1] = line end
  end
  return lines
end

-- A row's cells, trimmed: { "`max_message`", "`--max-message`", "16 MiB", "..." }.
local function cells(line)
  local t = {}
  for cell in line:sub(2):gmatch("([^|]*)|") do
    t[#t + 1] = (cell:gsub("^%s+", ""):gsub("%s+$", ""))
  end
  return t
end

-- name -> { flag =, default =, meaning = } from Markdown lines of the table.
local function rows_by_name(lines)
  local t = {}
  for i = 3, #lines do
    local c = cells(lines[i])
    local name = c[1]:match("^`(.-)`$") or c[1]
    t[name] = { flag = c[2], default = c[3], meaning = c[4], line = lines[i] }
  end
  return t
end

local function lines_of(s)
  local t = {}
  for line in s:gmatch("([^\n]*)\n") do t[#t + 1] = line end
  return t
end

describe("the options", function()
  local readme = readme_table()
  local wanted = lines_of(options.markdown())

  it("are listed by the core: unique names and flags, known kinds, defaults in range", function()
    local names, flags = {}, {}
    assert.is_true(#options.list >= 19, "rows: " .. #options.list)
    for _, o in ipairs(options.list) do
      assert.is_nil(names[o.name], "two rows named " .. o.name)
      names[o.name] = true
      assert.truthy(({ seconds = 1, bytes = 1, integer = 1, enum = 1, string = 1, boolean = 1, table = 1, list = 1 })[o.kind],
        o.name .. ": kind " .. tostring(o.kind))
      assert.are.equal("string", type(o.doc), o.name .. " has no doc")
      assert.is_nil(o.doc:find("\n"), o.name .. ": its doc is one line")
      for _, f in ipairs(options.flags(o)) do
        assert.truthy(f.flag:find("^%-%-[a-z][a-z-]*$"), f.flag)
        assert.is_nil(flags[f.flag], "two options with the flag " .. f.flag)
        flags[f.flag] = true
      end
      if o.kind == "bytes" or o.kind == "integer" then
        assert.is_true(o.min <= o.default and o.default <= o.max, o.name .. ": default out of its range")
      elseif o.kind == "enum" then
        local found = false
        for _, w in ipairs(o.values) do found = found or w == o.default end
        assert.is_true(found, o.name .. ": default is not one of its words")
      elseif o.default == nil then
        assert.are.equal("string", type(o.unset), o.name .. ": no default and no words for leaving it out")
      end
    end
  end)

  it("the README's table has every option, and only those, with its flag and default", function()
    assert.is_true(#readme > 2, "README.md has no options table ('| option | flag | default | meaning |')")
    local have, want = rows_by_name(readme), rows_by_name(wanted)
    for name, w in pairs(want) do
      local h = have[name]
      assert.is_not_nil(h, "README.md's options table has no row for `" .. name .. "`; the core's row:\n" .. w.line)
      assert.are.equal(w.flag, h.flag, "the flag of `" .. name .. "` in README.md")
      assert.are.equal(w.default, h.default, "the default of `" .. name .. "` in README.md")
      assert.are.equal(w.meaning, h.meaning, "the meaning of `" .. name .. "` in README.md")
    end
    for name, h in pairs(have) do
      assert.is_not_nil(want[name], "README.md lists `" .. name .. "`, which is no option of the core:\n" .. h.line)
    end
  end)

  it("the README's table is the one the core's list makes, row for row", function()
    assert.are.equal(table.concat(wanted, "\n"), table.concat(readme, "\n"),
      "README.md's options table should read:\n" .. table.concat(wanted, "\n"))
  end)

  it("--help shows every flag with its default", function()
    local help = options.help()
    for _, o in ipairs(options.list) do
      for _, f in ipairs(options.flags(o)) do
        assert.truthy(help:find(" " .. f.flag .. " " .. f.arg, 1, true), f.flag .. " is not in --help:\n" .. help)
      end
    end
    assert.truthy(help:gsub("%s+", " "):find("(default 16 MiB)", 1, true), help)
    assert.truthy(help:find("--deflate off|shared|dedicated", 1, true), help)
  end)

  it("a flag's word becomes the option's value, or a message naming the flag", function()
    local function flag(name) return options.flags(options.by_name[name])[1] end
    assert.are.equal(4096, options.value(flag("max_message"), "4096"))
    assert.are.equal(0.5, options.value(flag("ping_interval"), "0.5"))
    assert.are.equal("shared", options.value(flag("deflate"), "shared"))
    assert.are.equal("drop", options.value(flag("backpressure"), "drop"))
    assert.are.same({ nil, "--deflate needs off, shared or dedicated" }, { options.value(flag("deflate"), "fast") })
    assert.are.same({ nil, "--max-message needs an integer from 1 to 1099511627776" },
      { options.value(flag("max_message"), "0") })
    assert.are.same({ nil, "--port needs an integer from 0 to 65535" }, { options.value(flag("port"), "1.5") })
    assert.are.same({ nil, "--idle-timeout needs a non-negative number of seconds" },
      { options.value(flag("idle_timeout"), nil) })
    assert.are.same({ nil, "--host needs a host name or address" }, { options.value(flag("host"), "") })
    assert.are.equal("*", options.value(flag("origins"), "*"))
    assert.are.same({ "https://a.example", "http://b:3000" }, options.value(flag("origins"), "https://a.example,http://b:3000"))
    assert.are.same({ nil, '--origins needs "*" or origins separated by commas' },
      { options.value(flag("origins"), "https://a.example,") })
    local cert = options.flags(options.by_name.tls)[1]
    assert.are.same({ "--tls-cert", "cert" }, { cert.flag, cert.key })
    assert.are.same({ nil, "--tls-cert needs a file name" }, { options.value(cert, nil) })
  end)

  it("duplex.app checks every kind of option against its row, naming it", function()
    local function app_error(opts)
      local ok, err = pcall(duplex.app, opts)
      assert.is_false(ok)
      return err
    end
    assert.matches("bad option 'max_message' %(integer from 1 to 1099511627776 expected, got 0%)",
      app_error { max_message = 0 })
    assert.matches("bad option 'max_head' %(integer from 256 to 65536 expected, got string%)",
      app_error { max_head = "8k" })
    assert.matches("bad option 'ping_interval' %(non%-negative number of seconds expected, got %-1%)",
      app_error { ping_interval = -1 })
    assert.matches("bad option 'backpressure' %(\"close\" or \"drop\" expected, got \"fast\"%)",
      app_error { backpressure = "fast" })
    assert.matches("bad option 'deflate' %(\"off\", \"shared\" or \"dedicated\" expected, got boolean%)",
      app_error { deflate = true })
    assert.matches("bad option 'port' %(integer from 0 to 65535 expected, got 70000%)", app_error { port = 70000 })
    assert.matches("bad option 'host' %(host name or address expected, got number%)", app_error { host = 1 })
    assert.matches("bad option 'static' %(directory name expected, got table%)", app_error { static = {} })
    assert.matches("unknown option 'max_mesage'", app_error { max_mesage = 1 })
    assert.matches("bad option 'origins' %(\"%*\" or a table of origins expected, got \"https://a.example\"%)",
      app_error { origins = "https://a.example" })
    assert.matches("bad option 'origins' %(entry 2 is not an origin: \"https://b.example/\"%)",
      app_error { origins = { "https://a.example", "https://b.example/" } })
    assert.matches("bad option 'origins' %(entry 1 is not an origin: number%)", app_error { origins = { 1 } })
    assert.matches("bad option 'origins' %(a list of origins expected: keys 1 to 0 and no others%)",
      app_error { origins = { app = "https://a.example" } })
    assert.matches("bad option 'origins' %(at most 1023 bytes of origins in all, got %d+%)",
      app_error { origins = (function()
        local t = {}
        for i = 1, 60 do t[i] = ("https://host-%03d.example"):format(i) end
        return t
      end)() })
    assert.matches("bad option 'message_rate_policy' %(\"close\" or \"drop\" expected, got \"slow\"%)",
      app_error { message_rate_policy = "slow" })
    assert.matches("bad option 'max_connections' %(integer from 0 to 100000000 expected, got %-1%)",
      app_error { max_connections = -1 })
  end)

  it("a route's deflate is checked by the server's row", function()
    local app = duplex.app { host = "127.0.0.1", port = 0 }
    local ok, err = pcall(app.ws, app, "/", { deflate = "fast", message = print })
    assert.is_false(ok)
    assert.matches("bad route option 'deflate' %(\"off\", \"shared\" or \"dedicated\" expected, got \"fast\"%)", err)
    app:ws("/d", { deflate = "dedicated", message = print })
    app:close()
  end)

  it("lists origins as the core keeps them, and takes them back", function()
    assert.is_nil(options.by_name.origins.default)
    assert.are.same({ "*" }, options.by_name.origins.values)
    local app = duplex.app { host = "127.0.0.1", port = 0, origins = { "https://a.example" } }
    app:configure { origins = "*" }
    app:configure { origins = {} }
    app:close()
  end)

  it("app.options keeps what the app was given; configure adds to it and serves static", function()
    local app = duplex.app { host = "127.0.0.1", port = 0, max_message = 1024 }
    assert.are.equal(1024, app.options.max_message)
    app:configure { static = "spec/fixtures/www", backpressure = "drop" }
    assert.are.equal("spec/fixtures/www", app.static)
    assert.are.equal("drop", app.options.backpressure)
    assert.has_error(function() app:configure { static = "spec/fixtures/nowhere" } end)
    app:close()
  end)
end)
