-- A handler that raises: logged with its traceback, that connection closed
-- with 1011, every other connection goes on.

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"
local socket = require "socket"

describe("a handler that raises", function()
  local srv
  setup(function() srv = server.start("spec/fixtures/erroring.lua") end)
  teardown(function() srv:stop() end)

  it("in message: 1011 for that connection, logged with a traceback, others go on", function()
    local other = h.open(srv.port)
    h.echo(other, "before")
    local conn = h.open(srv.port)
    h.echo(conn, "fine so far")
    assert(conn:send_text("boom"))
    h.expect_close(conn, 1011)
    local log = srv:wait_log("boom in message handler", 3, true)
    assert(log, "error not logged:\n" .. srv:log())
    assert.truthy(log:find("stack traceback", 1, true), "no traceback in:\n" .. log)
    h.echo(other, "after")                -- an open connection keeps working
    h.assert_alive(srv.port)              -- and new ones are served
    h.close_cleanly(other)
  end)

  it("in message with a non-string error value: still 1011", function()
    local conn = h.open(srv.port)
    assert(conn:send_text("boom-table"))
    h.expect_close(conn, 1011)
    h.assert_alive(srv.port)
  end)

  it("runs the close handler once for the connection it closed", function()
    local before = srv:count_log("event: close id=", true)
    local before_1011 = srv:count_log(" code=1011\n", true)
    local conn = h.open(srv.port)
    assert(conn:send_text("boom"))
    h.expect_close(conn, 1011)
    h.assert_alive(srv.port) -- its close event comes after the one we count
    local deadline = wsclient.now() + 3
    while srv:count_log("event: close id=", true) < before + 2 and wsclient.now() < deadline do
      socket.sleep(0.005)
    end
    assert.are.equal(before + 2, srv:count_log("event: close id=", true), srv:log())
    assert.are.equal(before_1011 + 1, srv:count_log(" code=1011\n", true), srv:log())
  end)

  it("in open: 1011 right after the handshake, logged, others go on", function()
    local other = h.open(srv.port)
    local conn = h.open(srv.port, "/open-error")
    h.expect_close(conn, 1011)
    local log = srv:wait_log("boom in open handler", 3, true)
    assert(log, "error not logged:\n" .. srv:log())
    assert.truthy(log:find("stack traceback", 1, true))
    h.echo(other, "after open error")
    h.close_cleanly(other)
    h.assert_alive(srv.port)
  end)

  it("in close: logged, the closing handshake still completes, others go on", function()
    local other = h.open(srv.port)
    local conn = h.open(srv.port, "/close-error")
    h.echo(conn, "echo on /close-error")
    assert(conn:send_close(1000, "bye"))
    h.expect_close(conn, 1000, nil, { no_reply = true })
    local log = srv:wait_log("boom in close handler", 3, true)
    assert(log, "error not logged:\n" .. srv:log())
    h.echo(other, "after close error")
    h.close_cleanly(other)
    h.assert_alive(srv.port)
    h.assert_alive(srv.port, "/close-error")
  end)

  it("many times in a row does not wear the server down", function()
    for _ = 1, 50 do
      local conn = h.open(srv.port)
      assert(conn:send_text("boom"))
      h.expect_close(conn, 1011)
    end
    h.assert_alive(srv.port)
  end)
end)
