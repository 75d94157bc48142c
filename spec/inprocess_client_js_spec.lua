-- In process (it loads duplex.core into busted's Lua): the duplex module
-- finds the browser client duplex.js beside itself, which is what every
-- app serves at /duplex.js (spec/client_js_spec.lua serves it from a real
-- server), and an app made with client_js = false is fine with it.
local duplex = require "duplex"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

describe("duplex.client_js()", function()
  it("finds duplex.js beside the duplex module", function()
    local path, text = duplex.client_js()
    assert.matches("duplex/duplex%.js$", path)
    assert.are.equal(read("lua/duplex/duplex.js"), text)
  end)

  it("is an option of every app, on by default", function()
    assert.are.equal(true, require("duplex.options").by_name.client_js.default)
    local app = duplex.app { port = 0, client_js = false }
    app:configure { client_js = true }
    app:close()
  end)
end)
