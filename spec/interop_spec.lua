-- Real clients against duplex: Python's websockets and Node's ws.

local server = require "spec.support.server"

local function file_exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

describe("interop", function()
  local srv
  -- The clients pipeline 2000 messages at once: the rate limit is off.
  setup(function() srv = server.start("spec/fixtures/echo.lua", server.UNLIMITED) end)
  teardown(function() srv:stop() end)

  it("with Python websockets (/usr/bin/python3)", function()
    local code, out = server.sh("timeout -s KILL 90 /usr/bin/python3 spec/interop/python_client.py " .. srv.port)
    assert.are.equal(0, code, out .. "\nserver stderr:\n" .. srv:log())
  end)

  it("with Node ws", function()
    assert(file_exists("node_modules/ws/package.json"),
      "node_modules/ws is missing: run `npm ci` at the repo root")
    local code, out = server.sh("timeout -s KILL 90 node spec/interop/node_client.js " .. srv.port)
    assert.are.equal(0, code, out .. "\nserver stderr:\n" .. srv:log())
  end)
end)
