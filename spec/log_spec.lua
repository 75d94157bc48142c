-- The log on stderr: readable "duplex: ..." lines by default, or with
-- --log-format json one JSON object a line (time, level, event, conn,
-- remote, message) that a log collector can parse, from the core's C and
-- from its Lua alike.

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local cjson = require "cjson"

local APP = [[
local app = require("duplex").app {}
app:get("/bad", function() return {}, 200 end)     -- not a response: logged, answered 500
app:ws("/", { message = function(ws, data) ws:send(data) end })
return app
]]

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

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
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p '" .. dir .. "'"))
    script = dir .. "/app.lua"
    write(script, APP)
  end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

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
end)
