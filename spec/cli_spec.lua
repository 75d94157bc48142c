-- The command line: --help, --version, and clear failures (exit 2, one line
-- "duplex: ..." on stderr) for app scripts that cannot be used.

local server = require "spec.support.server"
local socket = require "socket"

local function lines(s)
  local t = {}
  for line in s:gmatch("[^\n]+") do t[#t + 1] = line end
  return t
end

local made = {}

-- write a temporary app script (removed after each test), return its path
local function script(text)
  local base = os.tmpname()
  os.remove(base)
  local path = base .. ".lua"
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  made[#made + 1] = path
  return path
end

-- expect_app_failure(path): `duplex run path` exits 2 with one line on
-- stderr starting "duplex: ", no traceback, no crash.
local function expect_app_failure(path, mention)
  local code, out, err = server.run({ "run", path, "--host", "127.0.0.1", "--port", "0" }, 10)
  assert.are.equal(2, code, "exit status; stdout:\n" .. out .. "\nstderr:\n" .. err)
  assert.is_nil(out:find("listening", 1, true), "it listened anyway:\n" .. out)
  local l = lines(err)
  assert.are.equal(1, #l, "expected one line on stderr, got:\n" .. err)
  assert.truthy(l[1]:find("^duplex: "), l[1])
  assert.is_nil(err:find("stack traceback", 1, true))
  assert.is_nil(server.sanitizer_report(err), err)
  if mention then assert.truthy(l[1]:find(mention, 1, true), "the message should name " .. mention .. ": " .. l[1]) end
  return l[1]
end

describe("duplex command line", function()
  after_each(function()
    for _, path in ipairs(made) do os.remove(path) end
    made = {}
  end)

  it("--help prints usage on stdout and exits 0", function()
    local code, out, err = server.run({ "--help" })
    assert.are.equal(0, code, err)
    assert.truthy(out:lower():find("usage", 1, true), out)
    assert.truthy(out:find("run", 1, true), out)
    assert.truthy(out:find("--port", 1, true), out)
  end)

  it("--version prints 'duplex X.Y.Z (VM)' and exits 0", function()
    local code, out, err = server.run({ "--version" })
    assert.are.equal(0, code, err)
    assert.truthy(out:find("^duplex %d+%.%d+%.%d+ %(.+%)\n$"), out)
  end)

  it("--version names the VM the command runs: the one these specs run in", function()
    -- make test runs the specs of each build in its own VM (busted --lua=...)
    local code, out, err = server.run({ "--version" })
    assert.are.equal(0, code, err)
    assert.are.equal(jit and jit.version or _VERSION, out:match("%((.-)%)\n$"))
  end)

  it("an unknown option fails with a message, not a crash", function()
    local code, out, err = server.run({ "run", "spec/fixtures/echo.lua", "--no-such-option" })
    assert.is_true(code ~= 0 and code < 128, "exit status " .. tostring(code))
    assert.truthy(err:find("duplex: ", 1, true), err)
    assert.is_nil(out:find("listening", 1, true))
    assert.is_nil(err:find("stack traceback", 1, true), err)
  end)

  it("a flag with a bad value: exit 2, one line naming the flag and what it needs", function()
    for _, case in ipairs {
      { { "--deflate", "fast" }, "duplex: --deflate needs off, shared or dedicated" },
      { { "--max-headers", "2" }, "duplex: --max-headers needs an integer from 8 to 128" },
      { { "--ping-interval", "-1" }, "duplex: --ping-interval needs a non-negative number of seconds" },
      { { "--backpressure" }, "duplex: --backpressure needs close or drop" },
      { { "--tls-key", "k.pem" }, "duplex: --tls-key needs --tls-cert" },
    } do
      local args = { "run", "spec/fixtures/echo.lua", "--port", "0" }
      for _, a in ipairs(case[1]) do args[#args + 1] = a end
      local code, out, err = server.run(args, 10)
      assert.are.equal(2, code, table.concat(case[1], " ") .. ": exit status; stderr:\n" .. err)
      assert.are.equal("", out)
      assert.are.equal(case[2] .. "\n", err)
    end
  end)

  it("options that had no flag have one: --static serves files, --max-head bounds a request head", function()
    local srv = server.start("spec/fixtures/echo.lua",
      { "--static", "spec/fixtures/www", "--backpressure", "drop", "--max-head", "1024" })
    assert.truthy(srv:stdout():find("pages from spec/fixtures/www", 1, true), srv:stdout())
    local c = assert(socket.connect("127.0.0.1", srv.port))
    c:settimeout(3)
    c:send("GET /notes.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    local reply = c:receive("*a")
    c:close()
    local f = assert(io.open("spec/fixtures/www/notes.txt", "rb"))
    local notes = f:read("*a")
    f:close()
    assert.truthy(reply:find("^HTTP/1.1 200"), reply)
    assert.are.equal(notes, reply:sub(-#notes))
    c = assert(socket.connect("127.0.0.1", srv.port))        -- a head over 1024 bytes: 431
    c:settimeout(3)
    c:send("GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " .. ("p"):rep(1100) .. "\r\n\r\n")
    reply = c:receive("*l")
    c:close()
    assert.truthy(reply and reply:find("^HTTP/1.1 431"), tostring(reply))
    srv:stop()
  end)

  it("a missing script: exit 2, one line", function()
    expect_app_failure("spec/fixtures/does-not-exist.lua", "does-not-exist.lua")
  end)

  it("a script with a syntax error: exit 2, one line", function()
    local path = script("return {\n  message = function(ws, data\n    ws:send(data)\n  end,\n")
    expect_app_failure(path)
  end)

  it("a script that raises while loading: exit 2, one line", function()
    local path = script("error('app failed to load')\n")
    local line = expect_app_failure(path)
    assert.truthy(line:find("app failed to load", 1, true), line)
  end)

  it("a script returning a non-table: exit 2, one line", function()
    for _, body in ipairs { "return 42\n", "return nil\n", "return 'handlers'\n", "-- returns nothing\n" } do
      expect_app_failure(script(body))
    end
  end)

  it("a port already in use: a clear error and a non-zero exit", function()
    local holder = assert(socket.bind("127.0.0.1", 0))
    local _, port = holder:getsockname()
    local code, out, err = server.run({ "run", "spec/fixtures/echo.lua", "--host", "127.0.0.1",
      "--port", tostring(port) }, 10)
    holder:close()
    assert.is_true(code ~= 0 and code < 128, "exit status " .. tostring(code) .. "\n" .. err)
    assert.is_nil(out:find("listening", 1, true), out)
    assert.truthy(err:find("duplex: ", 1, true), err)
    local lower = err:lower()
    assert.truthy(lower:find("in use", 1, true) or lower:find("eaddrinuse", 1, true), err)
    assert.is_nil(err:find("stack traceback", 1, true), err)
  end)
end)
