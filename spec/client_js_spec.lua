-- Every app serves the browser client lua/duplex/duplex.js at /duplex.js
-- (option client_js): a real server, real sockets. The file's ETag is a
-- hash of its bytes (304 on If-None-Match), Cache-Control: no-cache makes
-- browsers ask again each load; --no-client-js turns it off (404, as any
-- unknown path), and an app's own /duplex.js (an app:get route, a static
-- file) wins over it.
local socket = require "socket"
local server = require "spec.support.server"
local h = require "spec.support.helpers"

local SOURCE = server.read_file("lua/duplex/duplex.js")

-- get(port, method, target [, headers]) -> { status, headers, body }: one
-- request on its own connection (Connection: close), read to the end.
local function get(port, method, target, headers)
  local c = assert(socket.connect("127.0.0.1", port))
  c:settimeout(5)
  local lines = { method .. " " .. target .. " HTTP/1.1", "Host: 127.0.0.1:" .. port, "Connection: close" }
  for _, line in ipairs(headers or {}) do lines[#lines + 1] = line end
  assert(c:send(table.concat(lines, "\r\n") .. "\r\n\r\n"))
  local raw, err, partial = c:receive("*a")
  c:close()
  raw = raw or partial
  assert(raw and raw ~= "", "no answer: " .. tostring(err))
  local head, body = raw:match("^(.-)\r\n\r\n(.*)$")
  assert(head, "no complete head in:\n" .. raw)
  local resp = { status = tonumber(head:match("^HTTP/1%.1 (%d+)")), headers = {}, body = body, head = head }
  for name, value in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do resp.headers[name:lower()] = value end
  return resp
end

describe("GET /duplex.js", function()
  local srv
  after_each(function() if srv then srv:stop() end srv = nil end)

  it("answers the client with its type, a hash ETag and no-cache; 304 when it matches; HEAD; a query", function()
    srv = server.start("spec/fixtures/duplex_js_app.lua")
    local r = get(srv.port, "GET", "/duplex.js")
    assert.are.equal(200, r.status, r.head)
    assert.are.equal("application/javascript; charset=utf-8", r.headers["content-type"])
    assert.are.equal("no-cache", r.headers["cache-control"])
    assert.are.equal(tostring(#SOURCE), r.headers["content-length"])
    assert.are.equal(SOURCE, r.body)
    local etag = r.headers.etag
    assert.matches('^"%x+"$', etag)

    local again = get(srv.port, "GET", "/duplex.js", { "If-None-Match: " .. etag })
    assert.are.equal(304, again.status, again.head)
    assert.are.equal("", again.body)
    assert.are.equal(etag, again.headers.etag)

    local other = get(srv.port, "GET", "/duplex.js", { 'If-None-Match: "0000000000000000"' })
    assert.are.equal(200, other.status)
    assert.are.equal(SOURCE, other.body)

    local head = get(srv.port, "HEAD", "/duplex.js")
    assert.are.equal(200, head.status, head.head)
    assert.are.equal(tostring(#SOURCE), head.headers["content-length"])
    assert.are.equal(etag, head.headers.etag)
    assert.are.equal("", head.body)

    assert.are.equal(SOURCE, get(srv.port, "GET", "/duplex.js?v=2").body)
    assert.are.equal(404, get(srv.port, "GET", "/duplex.jsx").status)
    assert.are.equal(405, get(srv.port, "POST", "/duplex.js").status)
    -- the app's own routes go on beside it
    assert.are.equal("0", get(srv.port, "GET", "/count").body)
  end)

  it("is turned off by --no-client-js: 404 like any unknown path", function()
    srv = server.start("spec/fixtures/duplex_js_app.lua", { "--no-client-js" })
    local r = get(srv.port, "GET", "/duplex.js")
    assert.are.equal(404, r.status, r.head)
    assert.are.equal(404, get(srv.port, "HEAD", "/duplex.js").status)
    assert.are.equal(200, get(srv.port, "GET", "/").status)
  end)

  it("is the app's own when it has an app:get route of that path", function()
    srv = server.start("spec/fixtures/duplex_js_own.lua")
    local r = get(srv.port, "GET", "/duplex.js")
    assert.are.equal(200, r.status)
    assert.are.equal("// the app's own", r.body)
    assert.are.equal("application/javascript", r.headers["content-type"])
    assert.is_nil(r.headers.etag)
  end)

  it("is the app's own when its static directory has a duplex.js", function()
    local dir = h.tmpdir()
    h.write_file(dir .. "/duplex.js", "// a static duplex.js\n")
    local ok, err = pcall(function()
      srv = server.start("spec/fixtures/duplex_js_app.lua", { "--static", dir })
      local r = get(srv.port, "GET", "/duplex.js")
      assert.are.equal(200, r.status)
      assert.are.equal("// a static duplex.js\n", r.body)
      assert.are.equal("text/javascript; charset=utf-8", r.headers["content-type"])
    end)
    h.remove_dir(dir)
    assert(ok, err)
  end)
end)

describe("README.md", function()
  -- "11 084" for 11084: the README's way of writing a number.
  local function spaced(n)
    local s = tostring(n)
    while true do
      local t = s:gsub("^(%d+)(%d%d%d)", "%1 %2")
      if t == s then return s end
      s = t
    end
  end

  it("states the size of duplex.js, and gzipped (gzip -9)", function()
    local p = assert(io.popen("gzip -9c lua/duplex/duplex.js | wc -c"))
    local gz = tonumber(p:read("*a"))
    p:close()
    local want = ("%s bytes, %s gzipped"):format(spaced(#SOURCE), spaced(gz))
    assert.truthy(server.read_file("README.md"):find(want, 1, true),
      "README.md's duplex.js section should say: " .. want)
  end)
end)
