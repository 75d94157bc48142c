-- The log on stderr: readable "duplex: ..." lines by default, or with
-- --log-format json one JSON object a line (time, level, event, conn,
-- remote, message) that a log collector can parse, from the core's C and
-- from its Lua alike.

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"
local cjson = require "cjson"
local socket = require "socket"

local APP = [[
local app = require("duplex").app {}
app:get("/bad", function() return {}, 200 end)     -- not a response: logged, answered 500
app:ws("/", { message = function(ws, data) ws:send(data) end })
return app
]]

local write = h.write_file

local function get(port, path)
  local conn = assert(wsclient.tcp(port))
  assert(conn:send("GET " .. path .. " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
  local resp = assert(conn:read_http_response(5))
  conn:close()
  return resp
end

describe("the log", function()
  local dir, script
  before_each(function()
    dir = h.tmpdir()
    script = dir .. "/app.lua"
    write(script, APP)
  end)
  after_each(function() h.remove_dir(dir) end)

  it("with --log-format json writes one JSON object a line, from C and from Lua", function()
    local srv = server.start(script, { "--log-format", "json" })
    finally(function() srv:kill() end)
    assert.are.equal(500, get(srv.port, "/bad").status)         -- a line from the C core
    write(script, "return {")
    srv:signal("HUP")                                           -- a line from the command line's Lua
    assert(srv:wait_log('"event":"reload_refused"', 5, true), srv:log())
    local events = {}
    for line in srv:log():gmatch("[^\n]+") do
      local ok, obj = pcall(cjson.decode, line)
      assert(ok and type(obj) == "table", "not a JSON object: " .. line)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", obj.time)
      assert.is_truthy(({ info = true, warn = true, error = true })[obj.level], line)
      assert.is_string(obj.event)
      assert.is_string(obj.message)
      events[obj.event] = obj
    end
    assert.are.equal("error", events.handler_error.level)
    assert.matches("http route /bad returned a bad response", events.handler_error.message)
    assert.matches("reload of .* refused, the running code goes on: cannot load", events.reload_refused.message)
    srv:stop()
  end)

  it("is readable text by default", function()
    local srv = server.start(script)
    finally(function() srv:kill() end)
    assert.are.equal(500, get(srv.port, "/bad").status)
    assert(srv:wait_log("duplex: http route /bad returned a bad response", 5, true), srv:log())
    assert.is_nil(srv:log():find("{", 1, true))
    srv:stop()
  end)

  it("writes at most a burst of handler errors a peer sets off, and counts the rest", function()
    write(script, [[
return { message = function(ws, data) error("bad input: " .. data) end }
]])
    local srv = server.start(script)
    finally(function() srv:kill() end)
    -- 300 connections each make the handler raise once (each is closed 1011)
    for i = 1, 300 do
      local conn = assert(wsclient.connect(srv.port, "/"))
      assert(conn:send_text("m" .. i))
      conn:read_close(5)
      conn:close()
    end
    local deadline = wsclient.now() + 5
    while srv:count_log("duplex: error in message handler", true) < 20 and wsclient.now() < deadline do
      socket.sleep(0.01)
    end
    local lines = srv:count_log("duplex: error in message handler", true)
    assert.is_true(lines >= 20 and lines < 300, ("%d lines for 300 errors"):format(lines))
    -- a second later, the next one says how many were not written
    socket.sleep(0.2)                         -- let the budget refill a line (10 a second)
    local conn = assert(wsclient.connect(srv.port, "/"))
    assert(conn:send_text("late"))
    conn:read_close(5)
    conn:close()
    assert(srv:wait_log("more handler_error lines not logged before this one", 5, true), srv:log())
    srv:stop()
  end)
end)
