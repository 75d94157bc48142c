-- scripts/chat.lua, the app `make run` serves: names, join and leave
-- notices, every message to every member with its sender's name.

local server = require "spec.support.server"
local h = require "spec.support.helpers"

local function expect_text(conn, text)
  return h.expect_message(conn, 1, text)
end

describe("the chat app", function()
  local srv
  setup(function() srv = server.start("scripts/chat.lua") end)
  teardown(function() srv:stop() end)

  it("announces joins, relays messages with names, announces leaves", function()
    local ada = h.open(srv.port, "/chat?name=ada")
    expect_text(ada, "* ada joined")
    local bob = h.open(srv.port, "/chat?name=b%C3%B6b")   -- percent-encoded UTF-8
    expect_text(ada, "* böb joined")
    expect_text(bob, "* böb joined")

    assert(ada:send_text("hello"))
    expect_text(ada, "ada: hello")
    expect_text(bob, "ada: hello")

    assert(bob:send_text("/nick bob"))
    expect_text(ada, "* böb is now bob")
    expect_text(bob, "* böb is now bob")

    h.close_cleanly(bob)
    expect_text(ada, "* bob left")
    h.close_cleanly(ada)
  end)

  it("names a client without a name guest<id>", function()
    local anon = h.open(srv.port, "/chat")
    local _, text = anon:read_message(3)
    assert.matches("^%* guest%d+ joined$", text)
    h.close_cleanly(anon)
  end)

  it("refuses binary messages with 1003, and tells the others it left", function()
    local ada = h.open(srv.port, "/chat?name=ada")
    expect_text(ada, "* ada joined")
    local eve = h.open(srv.port, "/chat?name=eve")
    expect_text(ada, "* eve joined")
    expect_text(eve, "* eve joined")
    assert(eve:send_binary("\0\1"))
    h.expect_close(eve, 1003)
    expect_text(ada, "* eve left")
    h.close_cleanly(ada)
  end)

  it("takes WebSockets on /chat only", function()
    local conn, resp = require("spec.support.wsclient").connect(srv.port, "/")
    assert.are.equal(404, resp.status)
    if conn then conn:close() end
  end)

  it("serves its page on the same port", function()
    local wsclient = require "spec.support.wsclient"
    local conn = assert(wsclient.tcp(srv.port))
    assert(conn:send("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
    local resp = assert(conn:read_http_response(5))
    assert.are.equal(200, resp.status)
    assert.are.equal("text/html; charset=utf-8", resp.headers["content-type"])
    assert.truthy(resp.body:find("new WebSocket(url)", 1, true), "not the chat page")
    conn:close()
  end)
end)
