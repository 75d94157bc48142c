-- `duplex bench`: the load generator's JSON line, its content check (a
-- server that corrupts echoes must be caught), the connect scenario, and
-- clear failures for an unreachable server and a refused upgrade.

local server = require "spec.support.server"

local function json_number(line, key)
  return tonumber(line:match('"' .. key .. '":(%-?[%d%.eE+]+)'))
end

local bench = server.bench

local QUICK = { "--connections", "4", "--depth", "4", "--seconds", "1", "--warmup", "0.2", "--json" }

local function with(args, extra)
  local t = {}
  for _, a in ipairs(extra) do t[#t + 1] = a end
  for _, a in ipairs(args) do t[#t + 1] = a end
  return t
end

describe("duplex bench", function()
  local srv
  after_each(function()
    if srv then srv:stop() end
    srv = nil
  end)

  it("echo against scripts/echo.lua: throughput, no errors, nothing lost", function()
    srv = server.start("scripts/echo.lua", server.UNLIMITED)
    local code, line, out, err = bench(with(QUICK, { "echo", "--url", srv.url .. "/" }))
    assert.is_truthy(line, "no JSON line; stdout:\n" .. out .. "\nstderr:\n" .. err)
    assert.are.equal(0, code, line .. "\n" .. err)
    assert.is_true(json_number(line, "throughput") > 0, line)
    assert.are.equal(0, json_number(line, "errors"), line)
    assert.are.equal(0, json_number(line, "lost"), line)
    assert.is_true(json_number(line, "p99_us") > 0, line)
    assert.is_truthy(line:find('"scenario":"echo"', 1, true), line)
  end)

  -- The option gc: Lua 5.4's generational collector carries the load
  -- like the incremental one (every echo checked), in a process whose
  -- connections come and go.
  it("echo and connects under --gc generational: every echo right", function()
    srv = server.start("spec/fixtures/gc_mode.lua", with(server.UNLIMITED, { "--gc", "generational" }))
    local c = assert(require("spec.support.helpers").open(srv.port))
    assert(c:send_text("gc?"))
    local _, mode = c:read_message()
    assert.are.equal(_VERSION == "Lua 5.1" and "incremental" or "generational", mode)
    for _, args in ipairs({ { "--size", "32" }, { "--size", "1024", "--binary" }, { "--size", "70000" } }) do
      local code, line = bench(with(QUICK, with({ "echo", "--url", srv.url }, args)))
      assert.are.equal(0, code, line)
      assert.are.equal(0, json_number(line, "errors"), line)
      assert.is_true(json_number(line, "throughput") > 0, line)
    end
    local code, line = bench { "connect", "--url", srv.url, "--connections", "500", "--json" }
    assert.are.equal(0, code, line)
    local other = require("spec.support.helpers").open(srv.port)
    assert(other:send_text("shout"))             -- to every other subscriber of "all"
    local op, got = c:read_message()
    assert.are.equal(1, op)
    assert.are.equal(("x"):rep(100), got)
    c:close()
    other:close()
  end)

  it("echo with binary messages of 1000 bytes", function()
    srv = server.start("scripts/echo.lua", server.UNLIMITED)
    local code, line = bench(with(QUICK, { "echo", "--url", srv.url, "--binary", "--size", "1000" }))
    assert.are.equal(0, code, line)
    assert.are.equal(0, json_number(line, "errors"), line)
    assert.is_true(json_number(line, "throughput") > 0, line)
  end)

  it("echo against a server that corrupts echoes reports errors", function()
    srv = server.start("spec/fixtures/corrupt_echo.lua", server.UNLIMITED)
    local code, line, out, err = bench(with(QUICK, { "echo", "--url", srv.url }))
    assert.is_truthy(line, "no JSON line; stdout:\n" .. out .. "\nstderr:\n" .. err)
    assert.are.equal(1, code, line)
    assert.is_true(json_number(line, "errors") > 0, line)
    assert.is_true(json_number(line, "content_errors") > 0, line)
  end)

  it("connect reports handshakes per second and the server's memory", function()
    srv = server.start("scripts/echo.lua", server.UNLIMITED)
    local code, line = bench { "connect", "--url", srv.url, "--connections", "200",
      "--server-pid", tostring(srv.pid), "--json" }
    assert.are.equal(0, code, line)
    assert.are.equal(200, json_number(line, "opened"), line)
    assert.is_true(json_number(line, "handshakes_per_s") > 0, line)
    assert.are.equal(0, json_number(line, "errors"), line)
  end)

  it("broadcast through the built-in app: every delivery checked", function()
    local code, line = bench { "broadcast", "--connections", "20", "--seconds", "1",
      "--warmup", "0.2", "--json" }
    assert.are.equal(0, code, line)
    assert.is_true(json_number(line, "throughput") > 0, line)
    assert.are.equal(0, json_number(line, "errors"), line)
    assert.are.equal(0, json_number(line, "lost"), line)
  end)

  it("broadcast with --publish-url: the publisher connects there, the subscribers to --url", function()
    -- /pub publishes and subscribes to nothing, /sub subscribes and publishes nothing
    srv = server.start("spec/fixtures/bench_split.lua", server.UNLIMITED)
    local code, line = bench(with(QUICK, { "broadcast", "--url", srv.url .. "/sub",
      "--publish-url", srv.url .. "/pub" }))
    assert.are.equal(0, code, line)
    assert.is_true(json_number(line, "throughput") > 0, line)
    assert.are.equal(0, json_number(line, "errors"), line)
    assert.are.equal(0, json_number(line, "lost"), line)
    assert.truthy(line:find('"publish_url":"' .. srv.url .. '/pub"', 1, true), line)
    -- without it the publisher is one more subscriber of /sub: nothing is delivered
    code, line = bench(with(QUICK, { "broadcast", "--url", srv.url .. "/sub", "--timeout", "1" }), 20)
    assert.are.equal(1, code, line)
    assert.are.equal(0, json_number(line, "messages"), line)
    assert.is_true(json_number(line, "lost") > 0, line)
  end)

  it("an unreachable server: one line on stderr, exit 1, no hang", function()
    -- a port nobody listens on: bind one, close it
    local socket = require "socket"
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    local code, line, out, err = bench({ "echo", "--url", "ws://127.0.0.1:" .. port .. "/" }, 20)
    assert.are.equal(1, code, out .. err)
    assert.is_nil(line)
    assert.truthy(err:find("^duplex: bench: .*refused"), err)
    assert.are.equal(1, select(2, err:gsub("\n", "")))
  end)

  it("a refused upgrade (404): one line naming the status", function()
    srv = server.start("scripts/echo.lua", server.UNLIMITED)
    local code, _, out, err = bench({ "echo", "--url", srv.url .. "/nowhere" }, 20)
    assert.are.equal(1, code, out .. err)
    assert.truthy(err:find("HTTP 404", 1, true), err)
  end)

  it("a server that closes every connection: errors, no hang", function()
    srv = server.start("spec/fixtures/bench_closing.lua")
    local code, line, out, err = bench(with(QUICK, { "echo", "--url", srv.url }), 20)
    assert.are.equal(1, code, out .. err)
    assert.truthy(err:find("closed by the server", 1, true) or (line and json_number(line, "errors") > 0),
      out .. err)
  end)

  it("bad usage: exit 2 with one line", function()
    local code, _, _, err = bench { "nonsense" }
    assert.are.equal(2, code)
    assert.truthy(err:find("^duplex: bench: unknown scenario"), err)
    code, _, _, err = bench { "echo", "--size", "8" }
    assert.are.equal(2, code)
    assert.truthy(err:find("at least 16", 1, true), err)
    code, _, _, err = bench { "echo", "--publish-url", "ws://127.0.0.1:1/" }
    assert.are.equal(2, code)
    assert.truthy(err:find("--publish-url is for broadcast only", 1, true), err)
    code, _, _, err = bench { "broadcast", "--publish-url", "http://127.0.0.1:1/" }
    assert.are.equal(2, code)
    assert.truthy(err:find("^duplex: bench: %-%-publish%-url must be ws://"), err)
  end)
end)
