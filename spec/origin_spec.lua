-- The Origin of an upgrade (cross-site WebSocket hijacking: any page can
-- open a WebSocket to any server with its visitor's cookies). By default
-- only the request's own host may: another Origin gets 403, a request
-- without one (a bot, a server) is served. `origins` lists more, or "*"
-- opens it to all.

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"

-- The response to an upgrade carrying origin (nil: no Origin header); a
-- 101 is checked with an echo and closed cleanly.
local function upgrade(port, origin)
  local conn, resp = wsclient.connect(port, "/", { Origin = origin or false })
  assert(conn, "connect failed: " .. tostring(resp))
  if resp.status == 101 then
    h.echo(conn, "from " .. tostring(origin))
    h.close_cleanly(conn)
  else
    local eof = conn:expect_eof(3)
    assert(eof, "the server kept a refused connection open")
    conn:close()
  end
  return resp
end

local function served(port, origin)
  local resp = upgrade(port, origin)
  assert.are.equal(101, resp.status, tostring(origin) .. ":\n" .. resp.raw .. "\n" .. tostring(resp.body))
end

local function refused(port, origin)
  local resp = upgrade(port, origin)
  assert.are.equal(403, resp.status, tostring(origin) .. ":\n" .. resp.raw)
  assert.matches("Origin", resp.body)
end

describe("origins, by default", function()
  local srv
  setup(function() srv = server.start("spec/fixtures/events.lua") end)
  teardown(function() srv:stop() end)

  it("serves a page of the request's own host (a demo page on the same port)", function()
    served(srv.port, "http://127.0.0.1:" .. srv.port)
    served(srv.port, "HTTP://127.0.0.1:" .. srv.port)
  end)

  it("serves a client that sends no Origin", function()
    served(srv.port, nil)
  end)

  it("refuses another site's page with 403, before the app hears of it", function()
    local opens = srv:count_log("event: open", true)
    refused(srv.port, "https://evil.example")
    refused(srv.port, "http://127.0.0.1:" .. (srv.port == 65535 and 1 or srv.port + 1))
    refused(srv.port, "http://localhost:" .. srv.port)    -- another name is another origin
    refused(srv.port, "null")                              -- a sandboxed frame, a file
    refused(srv.port, "http://127.0.0.1:" .. srv.port .. "/")
    assert.are.equal(opens, srv:count_log("event: open", true))
    h.assert_alive(srv.port)
  end)
end)

describe("origins listed", function()
  local srv
  setup(function()
    srv = server.start("spec/fixtures/limits_app.lua", { "--origins", "https://app.example,http://localhost:3000" })
  end)
  teardown(function() srv:stop() end)

  it("serves the listed ones and the own host, refuses others, and counts them", function()
    served(srv.port, "https://app.example")
    served(srv.port, "https://APP.example:443")
    served(srv.port, "http://localhost:3000")
    served(srv.port, "http://127.0.0.1:" .. srv.port)
    served(srv.port, nil)
    refused(srv.port, "http://app.example")
    refused(srv.port, "http://localhost:3001")
    refused(srv.port, "https://evil.example")
    local conn = assert(wsclient.tcp(srv.port))
    assert(conn:send("GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"))
    local resp = assert(conn:read_http_response())
    conn:close()
    assert.matches("refused_origin 3\n", resp.body)
  end)
end)

describe("origins = \"*\"", function()
  local srv
  setup(function() srv = server.start("spec/fixtures/events.lua", { "--origins", "*" }) end)
  teardown(function() srv:stop() end)

  it("serves any Origin", function()
    served(srv.port, "https://evil.example")
    served(srv.port, "null")
    served(srv.port, nil)
  end)
end)
