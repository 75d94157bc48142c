-- Plain HTTP on the WebSocket port: static files (duplex.app { static = DIR }),
-- app:get routes, keep-alive and pipelining, path traversal, and the
-- WebSocket routes still working next to them. Fixture: fixtures/http_app.lua
-- serving fixtures/www; fixtures/secret.txt sits outside the root and must
-- never come back.

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"

local WWW = "spec/fixtures/www"
local SECRET_MARK = "TOP-SECRET-7f3a9c"
local TIMEOUT = 3

local now = wsclient.now

local function read_file(path)
  local f = assert(io.open(path, "rb"), "cannot open " .. path)
  local s = f:read("*a")
  f:close()
  return s
end

local write_file = require("spec.support.helpers").write_file

---------------------------------------------------------------------------
-- A small HTTP/1.x client on top of wsclient's Conn (its own response
-- reader: HEAD and 304 answers have no body whatever Content-Length says,
-- and HTTP/1.0 status lines are accepted).
---------------------------------------------------------------------------

-- request(method, target [, headers [, o]]) -> bytes. headers: list of
-- "Name: value" lines, appended after Host. o.version ("HTTP/1.1"),
-- o.no_host, o.body (appended after the head, no Content-Length added).
local function request(method, target, headers, o)
  o = o or {}
  local lines = { method .. " " .. target .. " " .. (o.version or "HTTP/1.1") }
  if not o.no_host then lines[#lines + 1] = "Host: 127.0.0.1" end
  for _, line in ipairs(headers or {}) do lines[#lines + 1] = line end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (o.body or "")
end

-- read_response(conn [, o]) -> resp or nil, err, raw.
-- resp = {status, reason, version, headers (lower-case names; repeats
-- joined with ", "), header_list, body (nil when there is none), raw (the
-- head)}. o.head: the request was HEAD (no body). o.timeout.
local function read_response(conn, o)
  o = o or {}
  local deadline = now() + (o.timeout or TIMEOUT)
  while not conn.buf:find("\r\n\r\n", 1, true) do
    local ok, err = conn:fill(deadline)
    if not ok then return nil, err, conn.buf end
  end
  local e = conn.buf:find("\r\n\r\n", 1, true)
  local head = conn.buf:sub(1, e - 1)
  conn.buf = conn.buf:sub(e + 4)
  local resp = { headers = {}, header_list = {}, raw = head }
  local first = true
  for line in (head .. "\r\n"):gmatch("(.-)\r\n") do
    if first then
      local version, st, reason = line:match("^(HTTP/1%.[01]) (%d%d%d) ?(.*)$")
      if not st then return nil, "bad status line: " .. line, head end
      resp.version, resp.status, resp.reason = version, tonumber(st), reason
      first = false
    else
      local name, value = line:match("^([^:]+):%s*(.-)%s*$")
      if not name then return nil, "bad header line: " .. line, head end
      name = name:lower()
      resp.header_list[#resp.header_list + 1] = { name, value }
      if resp.headers[name] then
        resp.headers[name] = resp.headers[name] .. ", " .. value
      else
        resp.headers[name] = value
      end
    end
  end
  local st = resp.status
  if o.head or st == 304 or st == 204 or (st >= 100 and st < 200) then
    return resp
  end
  local te = (resp.headers["transfer-encoding"] or ""):lower()
  local cl = resp.headers["content-length"]
  if te:find("chunked", 1, true) then
    local parts = {}
    while true do
      while not conn.buf:find("\r\n", 1, true) do
        local ok, err = conn:fill(deadline)
        if not ok then return nil, "chunk size: " .. tostring(err), head end
      end
      local le = conn.buf:find("\r\n", 1, true)
      local size = tonumber(conn.buf:sub(1, le - 1):match("^%x+"), 16)
      if not size then return nil, "bad chunk size line", head end
      conn.buf = conn.buf:sub(le + 2)
      local data, err = conn:read_exact(size + 2, deadline)
      if not data then return nil, "chunk: " .. tostring(err), head end
      if size == 0 then break end -- (no trailers expected)
      parts[#parts + 1] = data:sub(1, size)
    end
    resp.body = table.concat(parts)
  elseif cl then
    local n = tonumber(cl)
    if not n then return nil, "bad Content-Length: " .. cl, head end
    local body, err, partial = conn:read_exact(n, deadline)
    if not body then
      return nil, "body: " .. tostring(err) .. " after " .. #(partial or "") .. " of " .. n .. " bytes", head
    end
    resp.body = body
  else
    -- close-delimited body
    local ok, extra = conn:expect_eof(o.timeout or TIMEOUT)
    if not ok then return nil, "no Content-Length and the connection stayed open", head end
    resp.body = extra
  end
  return resp
end

-- describe_resp(resp) -> text for assertion messages.
local function describe_resp(resp)
  if not resp then return "(no response)" end
  return resp.raw .. "\n\n" .. tostring(resp.body)
end

local function no_secret(resp)
  local all = resp.raw .. "\n" .. (resp.body or "")
  assert(not all:find(SECRET_MARK, 1, true), "the secret file leaked:\n" .. all)
  assert(not all:find("OUTSIDE-ROOT-", 1, true), "a file outside the root leaked:\n" .. all)
end

-- exchange(port, bytes [, o]) -> resp, conn: a fresh connection sends the
-- bytes and reads one response (o.head for HEAD). The connection is
-- returned open; callers close it.
local function exchange(port, bytes, o)
  local conn = assert(wsclient.tcp(port))
  conn:send(bytes) -- may fail if the server answers and closes early
  local resp, err, raw = read_response(conn, o)
  assert(resp, "no HTTP response (" .. tostring(err) .. "); got:\n" .. tostring(raw))
  no_secret(resp)
  return resp, conn
end

-- fetch(port, method, target [, headers [, o]]) -> resp
local function fetch(port, method, target, headers, o)
  o = o or {}
  local resp, conn = exchange(port, request(method, target, headers, o),
    { head = method == "HEAD", timeout = o.timeout })
  conn:close()
  return resp
end

local function expect(resp, status)
  assert(resp, "no response")
  if resp.status ~= status then
    error("expected status " .. status .. ", got " .. tostring(resp.status) .. ":\n" .. describe_resp(resp), 2)
  end
end

local HTTP_DATE = "^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$"

-- expect_eof_clean(conn, what): the server closes with no further bytes.
local function expect_eof_clean(conn, what)
  local eof, extra = conn:expect_eof(TIMEOUT)
  assert(eof, "server kept the connection open " .. what .. "; extra bytes: " .. tostring(extra))
  assert.are.equal("", extra, "bytes after the response " .. what)
end

-- expect_open(conn, what): the connection is still usable (a follow-up
-- GET /health on it is answered).
local function expect_open(conn, what)
  assert(conn:send(request("GET", "/health")), "send failed on a kept-alive connection " .. what)
  local resp, err, raw = read_response(conn)
  assert(resp, "no answer on a kept-alive connection " .. what .. " (" .. tostring(err) .. "): "
    .. tostring(raw))
  expect(resp, 200)
  assert.are.equal('{"ok":true}', resp.body)
end

---------------------------------------------------------------------------

local STATIC_TYPES = {
  { "/index.html", "index.html", "text/html; charset=utf-8" },
  { "/app.js", "app.js", "text/javascript; charset=utf-8" },
  { "/style.css", "style.css", "text/css; charset=utf-8" },
  { "/data.json", "data.json", "application/json" },
  { "/img.png", "img.png", "image/png" },
  { "/logo.svg", "logo.svg", "image/svg+xml" },
  { "/notes.txt", "notes.txt", "text/plain; charset=utf-8" },
  { "/blob.bin", "blob.bin", "application/octet-stream" },
  { "/sub/index.html", "sub/index.html", "text/html; charset=utf-8" },
}

-- Symlinks made inside the root for the duration of the spec (never
-- committed: www/.gitignore lists them). Their names carry a per-run
-- suffix so two runs at once do not trip over each other. Targets outside
-- the root live in a temporary directory.
local LINK_NAMES = {
  out_file = "_link_out",      -- .txt -> $tmp/outside.txt
  out_dir = "_link_out_dir",   -- -> $tmp (a directory)
  secret = "_link_secret",     -- .txt -> ../secret.txt (relative, outside)
  in_file = "_link_in",        -- .txt -> notes.txt (relative, inside)
  in_dir = "_link_in_dir",     -- -> sub (relative, inside)
}
local LINK_EXT = { out_file = ".txt", secret = ".txt", in_file = ".txt" }

describe("plain HTTP", function()
  local srv, tmpdir
  local L = {}     -- URL path of each link
  local LINKS = {} -- file name of each link (and of the big file)
  local BIG        -- content of the big file

  local function remove_links()
    for _, p in pairs(LINKS) do os.remove(p) end
  end

  setup(function()
    local code, out = server.sh("mktemp -d")
    assert.are.equal(0, code, out)
    tmpdir = out:match("^%s*(.-)%s*$")
    local suffix = "_" .. tmpdir:match("([%w]+)$")
    for k, name in pairs(LINK_NAMES) do
      L[k] = "/" .. name .. suffix .. (LINK_EXT[k] or "")
      LINKS[k] = WWW .. L[k]
    end
    write_file(tmpdir .. "/outside.txt", "OUTSIDE-ROOT-c41d: a file in a temporary directory\n")
    write_file(tmpdir .. "/index.html", "OUTSIDE-ROOT-c41d: index outside the root\n")
    local q = server.quote
    local cmds = {
      "ln -s " .. q(tmpdir .. "/outside.txt") .. " " .. q(LINKS.out_file),
      "ln -s " .. q(tmpdir) .. " " .. q(LINKS.out_dir),
      "ln -s ../secret.txt " .. q(LINKS.secret),
      "ln -s notes.txt " .. q(LINKS.in_file),
      "ln -s sub " .. q(LINKS.in_dir),
    }
    for _, cmd in ipairs(cmds) do
      local c, o = server.sh(cmd)
      assert.are.equal(0, c, cmd .. ": " .. o)
    end
    -- a file larger than any socket buffer (the server must send it in pieces)
    local chunk = {}
    for i = 1, 1024 do chunk[i] = string.char(i % 251) end
    chunk = table.concat(chunk)
    BIG = string.rep(chunk, 3 * 1024 + 7) .. "end"
    L.big = "/_tmp_big" .. suffix .. ".bin"
    LINKS.big = WWW .. L.big
    write_file(LINKS.big, BIG)
    srv = server.start("spec/fixtures/http_app.lua")
  end)

  teardown(function()
    remove_links()
    if tmpdir then server.sh("rm -rf " .. server.quote(tmpdir)) end
    if srv then srv:stop() end
  end)

  describe("static files", function()
    for _, case in ipairs(STATIC_TYPES) do
      local target, file, ctype = case[1], case[2], case[3]
      it("GET " .. target .. " -> 200, " .. ctype .. ", the file's bytes", function()
        local want = read_file(WWW .. "/" .. file)
        local resp = fetch(srv.port, "GET", target)
        expect(resp, 200)
        assert.are.equal(ctype, resp.headers["content-type"])
        assert.are.equal(tostring(#want), resp.headers["content-length"])
        assert.are.equal(want, resp.body)
      end)
    end

    it("GET / serves index.html", function()
      local resp = fetch(srv.port, "GET", "/")
      expect(resp, 200)
      assert.are.equal("text/html; charset=utf-8", resp.headers["content-type"])
      assert.are.equal(read_file(WWW .. "/index.html"), resp.body)
      assert.are.equal(tostring(#resp.body), resp.headers["content-length"])
    end)

    it("GET /sub/ serves sub/index.html", function()
      local resp = fetch(srv.port, "GET", "/sub/")
      expect(resp, 200)
      assert.are.equal("text/html; charset=utf-8", resp.headers["content-type"])
      assert.are.equal(read_file(WWW .. "/sub/index.html"), resp.body)
    end)

    it("ignores the query string", function()
      local resp = fetch(srv.port, "GET", "/notes.txt?v=3&x=y")
      expect(resp, 200)
      assert.are.equal(read_file(WWW .. "/notes.txt"), resp.body)
    end)

    it("sends a quoted ETag and an HTTP-date Last-Modified, the same each time", function()
      local a = fetch(srv.port, "GET", "/app.js")
      local b = fetch(srv.port, "GET", "/app.js")
      expect(a, 200)
      local etag = a.headers["etag"]
      assert(etag, "no ETag:\n" .. a.raw)
      assert(etag:match('^W/"[^"]+"$') or etag:match('^"[^"]+"$'), "ETag not quoted: " .. etag)
      assert.are.equal(etag, b.headers["etag"])
      local lm = a.headers["last-modified"]
      assert(lm, "no Last-Modified:\n" .. a.raw)
      assert(lm:match(HTTP_DATE), "Last-Modified is not an IMF-fixdate: " .. lm)
      assert.are.equal(lm, b.headers["last-modified"])
      -- another file, another tag
      local c = fetch(srv.port, "GET", "/style.css")
      assert.are_not.equal(etag, c.headers["etag"])
    end)

    it("If-None-Match with the ETag -> 304 without a body", function()
      local first = fetch(srv.port, "GET", "/style.css")
      expect(first, 200)
      local etag = assert(first.headers["etag"], "no ETag")
      -- pipelined behind a second request: a body after the 304 head would
      -- be read as the next response's status line
      local conn = assert(wsclient.tcp(srv.port))
      assert(conn:send(request("GET", "/style.css", { "If-None-Match: " .. etag })
        .. request("GET", "/health")))
      local r304, err, raw = read_response(conn)
      assert(r304, "no response: " .. tostring(err) .. " " .. tostring(raw))
      expect(r304, 304)
      no_secret(r304)
      local nxt; nxt, err, raw = read_response(conn)
      assert(nxt, "the response after the 304 did not parse (a body after the 304?): "
        .. tostring(err) .. "\n" .. tostring(raw))
      expect(nxt, 200)
      assert.are.equal('{"ok":true}', nxt.body)
      conn:close()
    end)

    it("If-None-Match with the ETag and Connection: close -> 304, then only the close", function()
      local first = fetch(srv.port, "GET", "/data.json")
      local etag = assert(first.headers["etag"], "no ETag")
      local resp, conn = exchange(srv.port, request("GET", "/data.json",
        { "If-None-Match: " .. etag, "Connection: close" }))
      expect(resp, 304)
      expect_eof_clean(conn, "after a 304 (Connection: close)")
      conn:close()
    end)

    it("If-None-Match with another tag -> 200 with the body", function()
      local resp = fetch(srv.port, "GET", "/style.css", { 'If-None-Match: "not-the-tag"' })
      expect(resp, 200)
      assert.are.equal(read_file(WWW .. "/style.css"), resp.body)
    end)

    it("HEAD -> the GET's headers, Content-Length of the file, no body", function()
      local want = read_file(WWW .. "/app.js")
      local get = fetch(srv.port, "GET", "/app.js")
      local resp, conn = exchange(srv.port, request("HEAD", "/app.js", { "Connection: close" }),
        { head = true })
      expect(resp, 200)
      assert.are.equal("text/javascript; charset=utf-8", resp.headers["content-type"])
      assert.are.equal(tostring(#want), resp.headers["content-length"])
      assert.are.equal(get.headers["etag"], resp.headers["etag"])
      assert.are.equal(get.headers["last-modified"], resp.headers["last-modified"])
      expect_eof_clean(conn, "after a HEAD response (no body expected)")
      conn:close()
    end)

    it("HEAD / -> index.html's headers, no body (pipelined before a GET)", function()
      local conn = assert(wsclient.tcp(srv.port))
      assert(conn:send(request("HEAD", "/") .. request("GET", "/notes.txt")))
      local head, err, raw = read_response(conn, { head = true })
      assert(head, tostring(err) .. " " .. tostring(raw))
      expect(head, 200)
      assert.are.equal("text/html; charset=utf-8", head.headers["content-type"])
      assert.are.equal(tostring(#read_file(WWW .. "/index.html")), head.headers["content-length"])
      local get; get, err, raw = read_response(conn)
      assert(get, "the GET after the HEAD did not parse (a body after HEAD?): " .. tostring(err)
        .. "\n" .. tostring(raw))
      expect(get, 200)
      assert.are.equal(read_file(WWW .. "/notes.txt"), get.body)
      conn:close()
    end)

    it("a 3 MiB file arrives whole, and the connection goes on after it", function()
      local conn = assert(wsclient.tcp(srv.port))
      assert(conn:send(request("GET", L.big) .. request("HEAD", L.big) .. request("GET", "/notes.txt")))
      local resp, err, raw = read_response(conn, { timeout = 20 })
      assert(resp, tostring(err) .. " " .. tostring(raw))
      expect(resp, 200)
      assert.are.equal("application/octet-stream", resp.headers["content-type"])
      assert.are.equal(tostring(#BIG), resp.headers["content-length"])
      assert(resp.body == BIG, "the big file's bytes differ (" .. #resp.body .. " of " .. #BIG .. " bytes)")
      local head; head, err, raw = read_response(conn, { head = true })
      assert(head, tostring(err) .. " " .. tostring(raw))
      expect(head, 200)
      assert.are.equal(tostring(#BIG), head.headers["content-length"])
      local nxt; nxt, err, raw = read_response(conn)
      assert(nxt, tostring(err) .. " " .. tostring(raw))
      expect(nxt, 200)
      assert.are.equal(read_file(WWW .. "/notes.txt"), nxt.body)
      conn:close()
    end)

    it("a client that stops reading a big file does not stall the others", function()
      local slow = assert(wsclient.tcp(srv.port))
      assert(slow:send(request("GET", L.big)))
      local resp = fetch(srv.port, "GET", "/health")
      expect(resp, 200)
      local ws = h.open(srv.port, "/ws")
      h.echo(ws, "not stalled")
      h.close_cleanly(ws)
      slow:close()
    end)

    describe("missing files -> 404", function()
      for _, target in ipairs { "/missing.txt", "/sub/nope.html", "/nope/", "/sub/index.html/x" } do
        it("GET " .. target, function()
          expect(fetch(srv.port, "GET", target), 404)
        end)
      end
      it("HEAD /missing.txt", function()
        expect(fetch(srv.port, "HEAD", "/missing.txt"), 404)
      end)
    end)

    describe("other methods -> 405 with Allow: GET, HEAD", function()
      local cases = {
        { "POST", "/index.html" }, { "PUT", "/app.js" }, { "DELETE", "/notes.txt" },
        { "PATCH", "/style.css" }, { "POST", "/" }, { "OPTIONS", "/sub/" },
      }
      for _, case in ipairs(cases) do
        it(case[1] .. " " .. case[2], function()
          local resp = fetch(srv.port, case[1], case[2], { "Content-Length: 0" })
          expect(resp, 405)
          assert.are.equal("GET, HEAD", resp.headers["allow"])
        end)
      end

      it("POST with a body", function()
        local resp = fetch(srv.port, "POST", "/notes.txt",
          { "Content-Type: text/plain", "Content-Length: 5", "Connection: close" }, { body = "hello" })
        expect(resp, 405)
        assert.are.equal("GET, HEAD", resp.headers["allow"])
      end)
    end)
  end)

  describe("path traversal", function()
    local refused_404 = {
      "/../secret.txt",
      "/../x",
      "/a/../../secret.txt",
      "/a/../../x",
      "/sub/../../secret.txt",
      "/%2e%2e/secret.txt",
      "/%2e%2e/x",
      "/%2E%2E%2Fsecret.txt",
      "/%2E%2E%2Fsecret",
      "/..%2fsecret.txt",
      "/..%2fsecret",
      "/sub/%2e%2e/%2e%2e/secret.txt",
      "/.%2e/secret.txt",
      "/%2e./secret.txt",
    }
    for _, target in ipairs(refused_404) do
      it("GET " .. target .. " -> 404", function()
        local resp = fetch(srv.port, "GET", target)
        expect(resp, 404)
      end)
    end

    local refused_400 = {
      "/secret.txt%00",
      "/notes.txt%00.html",
      "/%00../secret.txt",
      "/%zz",
      "/notes%2",
      "/notes.txt%",
      "/%g0/x",
    }
    for _, target in ipairs(refused_400) do
      it("GET " .. target .. " -> 400", function()
        local resp = fetch(srv.port, "GET", target)
        expect(resp, 400)
      end)
    end

    it("HEAD /../secret.txt -> 404", function()
      expect(fetch(srv.port, "HEAD", "/../secret.txt"), 404)
    end)

    it("the server still serves after the attempts", function()
      local resp = fetch(srv.port, "GET", "/notes.txt")
      expect(resp, 200)
      assert.are.equal(read_file(WWW .. "/notes.txt"), resp.body)
    end)
  end)

  describe("symlinks", function()
    it("a link to a file outside the root -> 404", function()
      expect(fetch(srv.port, "GET", L.out_file), 404)
      expect(fetch(srv.port, "HEAD", L.out_file), 404)
    end)

    it("a relative link to ../secret.txt -> 404", function()
      expect(fetch(srv.port, "GET", L.secret), 404)
    end)

    it("a link to a directory outside the root -> 404 for its files and its index", function()
      expect(fetch(srv.port, "GET", L.out_dir .. "/outside.txt"), 404)
      expect(fetch(srv.port, "GET", L.out_dir .. "/index.html"), 404)
      expect(fetch(srv.port, "GET", L.out_dir .. "/"), 404)
    end)

    it("a link to a file inside the root is served (type from the link's name)", function()
      local resp = fetch(srv.port, "GET", L.in_file)
      expect(resp, 200)
      assert.are.equal("text/plain; charset=utf-8", resp.headers["content-type"])
      assert.are.equal(read_file(WWW .. "/notes.txt"), resp.body)
    end)

    it("a link to a directory inside the root is served", function()
      local resp = fetch(srv.port, "GET", L.in_dir .. "/index.html")
      expect(resp, 200)
      assert.are.equal(read_file(WWW .. "/sub/index.html"), resp.body)
      local idx = fetch(srv.port, "GET", L.in_dir .. "/")
      expect(idx, 200)
      assert.are.equal(read_file(WWW .. "/sub/index.html"), idx.body)
    end)
  end)

  describe("app:get routes", function()
    it("GET /health -> 200 with the route's content type and body", function()
      local resp = fetch(srv.port, "GET", "/health")
      expect(resp, 200)
      assert.are.equal("application/json", resp.headers["content-type"])
      assert.are.equal("11", resp.headers["content-length"])
      assert.are.equal('{"ok":true}', resp.body)
    end)

    it("matches the path without the query", function()
      local resp = fetch(srv.port, "GET", "/health?verbose=1")
      expect(resp, 200)
      assert.are.equal('{"ok":true}', resp.body)
    end)

    it("matches the exact path only", function()
      expect(fetch(srv.port, "GET", "/health/"), 404)
      expect(fetch(srv.port, "GET", "/health/x"), 404)
      expect(fetch(srv.port, "GET", "/healthz"), 404)
    end)

    it("passes req.query; plain text is the default content type", function()
      local resp = fetch(srv.port, "GET", "/echo-query?a=1&b=two")
      expect(resp, 200)
      assert.are.equal("a=1&b=two", resp.body)
      assert.are.equal("text/plain; charset=utf-8", resp.headers["content-type"])
      assert.are.equal("9", resp.headers["content-length"])
    end)

    it("req.query is nil without a query", function()
      local resp = fetch(srv.port, "GET", "/echo-query")
      expect(resp, 200)
      assert.are.equal("none", resp.body)
    end)

    it("passes req.method, req.path and req.headers with lower-case names", function()
      local resp = fetch(srv.port, "GET", "/inspect?k=v", { "X-Test: Hello There" })
      expect(resp, 200)
      assert.are.equal("method=GET path=/inspect query=k=v x-test=Hello There host=127.0.0.1", resp.body)
    end)

    it("a returned status and extra headers", function()
      local resp = fetch(srv.port, "GET", "/created")
      expect(resp, 201)
      assert.are.equal("made", resp.body)
      assert.are.equal("yes", resp.headers["x-extra"])
      assert.are.equal("text/plain; charset=utf-8", resp.headers["content-type"])
      assert.are.equal("4", resp.headers["content-length"])
    end)

    it("HEAD -> the GET's headers, no body", function()
      local get = fetch(srv.port, "GET", "/health")
      local conn = assert(wsclient.tcp(srv.port))
      assert(conn:send(request("HEAD", "/health") .. request("GET", "/echo-query?after-head")))
      local resp, err, raw = read_response(conn, { head = true })
      assert(resp, tostring(err) .. " " .. tostring(raw))
      expect(resp, 200)
      assert.are.equal(get.headers["content-type"], resp.headers["content-type"])
      assert.are.equal(get.headers["content-length"], resp.headers["content-length"])
      local nxt; nxt, err, raw = read_response(conn)
      assert(nxt, "the GET after the HEAD did not parse (a body after HEAD?): " .. tostring(err)
        .. "\n" .. tostring(raw))
      expect(nxt, 200)
      assert.are.equal("after-head", nxt.body)
      conn:close()
    end)

    it("HEAD calls the route with req.method HEAD", function()
      local resp, conn = exchange(srv.port, request("HEAD", "/inspect", { "Connection: close" }),
        { head = true })
      expect(resp, 200)
      local n = #"method=HEAD path=/inspect query=nil x-test=nil host=127.0.0.1"
      assert.are.equal(tostring(n), resp.headers["content-length"])
      expect_eof_clean(conn, "after HEAD /inspect")
      conn:close()
    end)

    for _, method in ipairs { "POST", "PUT", "DELETE" } do
      it(method .. " /health -> 405 with Allow: GET, HEAD", function()
        local resp = fetch(srv.port, method, "/health", { "Content-Length: 0" })
        expect(resp, 405)
        assert.are.equal("GET, HEAD", resp.headers["allow"])
      end)
    end

    it("an error in the route -> 500, logged with its traceback; the server goes on", function()
      local resp = fetch(srv.port, "GET", "/boom")
      expect(resp, 500)
      local log = srv:wait_log("boom in route", TIMEOUT, true)
      assert(log, "the error was not logged:\n" .. srv:log())
      assert(log:lower():find("traceback", 1, true), "no traceback in the log:\n" .. log)
      assert(not (resp.body or ""):find("traceback", 1, true), "the traceback went to the client")
      local ok = fetch(srv.port, "GET", "/health")
      expect(ok, 200)
      -- and on the same connection, when the 500 keeps it open
      local conn = assert(wsclient.tcp(srv.port))
      assert(conn:send(request("GET", "/boom")))
      local r500 = assert(read_response(conn))
      expect(r500, 500)
      if not (r500.headers["connection"] or ""):lower():find("close", 1, true) then
        expect_open(conn, "after a 500")
      end
      conn:close()
    end)
  end)

  describe("keep-alive", function()
    it("100 requests one after the other on one connection", function()
      local conn = assert(wsclient.tcp(srv.port))
      for i = 1, 100 do
        local target = (i % 2 == 0) and ("/echo-query?i=" .. i) or "/style.css"
        assert(conn:send(request("GET", target)), "send " .. i)
        local resp, err, raw = read_response(conn)
        assert(resp, "request " .. i .. ": " .. tostring(err) .. " " .. tostring(raw))
        expect(resp, 200)
        if i % 2 == 0 then assert.are.equal("i=" .. i, resp.body) end
      end
      conn:close()
    end)

    it("HTTP/1.1 keeps the connection open after a response", function()
      local resp, conn = exchange(srv.port, request("GET", "/notes.txt"))
      expect(resp, 200)
      assert.is_falsy((resp.headers["connection"] or ""):lower():find("close", 1, true),
        "HTTP/1.1 response says Connection: close")
      local eof, _, extra = conn:expect_eof(0.2)
      assert.is_falsy(eof, "server closed an HTTP/1.1 keep-alive connection")
      assert.are.equal("", extra, "bytes after the response")
      expect_open(conn, "after a static file")
      expect_open(conn, "after an app:get route")
      conn:close()
    end)

    it("keeps it open after a 404 and a 304", function()
      local etag = assert(fetch(srv.port, "GET", "/notes.txt").headers["etag"])
      local conn = assert(wsclient.tcp(srv.port))
      assert(conn:send(request("GET", "/missing.txt")))
      local r404 = assert(read_response(conn))
      expect(r404, 404)
      if not (r404.headers["connection"] or ""):lower():find("close", 1, true) then
        expect_open(conn, "after a 404")
      end
      conn:close()
      conn = assert(wsclient.tcp(srv.port))
      assert(conn:send(request("GET", "/notes.txt", { "If-None-Match: " .. etag })))
      local r304 = assert(read_response(conn))
      expect(r304, 304)
      expect_open(conn, "after a 304")
      conn:close()
    end)

    it("Connection: close -> the server closes after the response", function()
      local resp, conn = exchange(srv.port, request("GET", "/notes.txt", { "Connection: close" }))
      expect(resp, 200)
      assert.are.equal(read_file(WWW .. "/notes.txt"), resp.body)
      expect_eof_clean(conn, "after Connection: close")
      conn:close()
    end)

    it("Connection: close on an app:get route", function()
      local resp, conn = exchange(srv.port, request("GET", "/health", { "Connection: close" }))
      expect(resp, 200)
      assert.are.equal('{"ok":true}', resp.body)
      expect_eof_clean(conn, "after Connection: close")
      conn:close()
    end)

    it("two pipelined requests are answered in order", function()
      local conn = assert(wsclient.tcp(srv.port))
      assert(conn:send(request("GET", "/notes.txt") .. request("GET", "/health")))
      local a, err, raw = read_response(conn)
      assert(a, tostring(err) .. " " .. tostring(raw))
      expect(a, 200)
      assert.are.equal(read_file(WWW .. "/notes.txt"), a.body)
      local b; b, err, raw = read_response(conn)
      assert(b, "no answer to the second pipelined request: " .. tostring(err) .. " " .. tostring(raw))
      expect(b, 200)
      assert.are.equal('{"ok":true}', b.body)
      expect_open(conn, "after two pipelined requests")
      conn:close()
    end)

    it("five pipelined requests (route, static, HEAD, route, static with Connection: close) in order", function()
      local conn = assert(wsclient.tcp(srv.port))
      assert(conn:send(request("GET", "/echo-query?1") .. request("GET", "/app.js")
        .. request("HEAD", "/style.css") .. request("GET", "/echo-query?4")
        .. request("GET", "/data.json", { "Connection: close" })))
      local want = {
        { 200, "1" },
        { 200, read_file(WWW .. "/app.js") },
        { 200, nil, true },
        { 200, "4" },
        { 200, read_file(WWW .. "/data.json") },
      }
      for i, w in ipairs(want) do
        local resp, err, raw = read_response(conn, { head = w[3] })
        assert(resp, "response " .. i .. ": " .. tostring(err) .. " " .. tostring(raw))
        expect(resp, w[1])
        assert.are.equal(w[2], resp.body, "body of response " .. i)
      end
      expect_eof_clean(conn, "after the last pipelined request said Connection: close")
      conn:close()
    end)

    it("a request fed one byte at a time", function()
      local conn = assert(wsclient.tcp(srv.port))
      assert(conn:send_bytewise(request("GET", "/echo-query?slow=1")))
      local resp = assert(read_response(conn))
      expect(resp, 200)
      assert.are.equal("slow=1", resp.body)
      conn:close()
    end)

    it("HTTP/1.0 -> the server closes after the response", function()
      local resp, conn = exchange(srv.port, request("GET", "/notes.txt", nil, { version = "HTTP/1.0" }))
      expect(resp, 200)
      assert.are.equal(read_file(WWW .. "/notes.txt"), resp.body)
      expect_eof_clean(conn, "after an HTTP/1.0 request")
      conn:close()
    end)

    it("HTTP/1.0 on an app:get route closes too", function()
      local resp, conn = exchange(srv.port, request("GET", "/health", nil, { version = "HTTP/1.0" }))
      expect(resp, 200)
      assert.are.equal('{"ok":true}', resp.body)
      expect_eof_clean(conn, "after an HTTP/1.0 request")
      conn:close()
    end)
  end)

  describe("WebSocket routes on the same port", function()
    it("/ws still upgrades and echoes", function()
      local conn = h.open(srv.port, "/ws")
      h.echo(conn, "hello over ws")
      h.echo(conn, "\0\1\2", true)
      h.close_cleanly(conn)
    end)

    it("a plain GET to /ws (no Upgrade) -> 426", function()
      local resp = fetch(srv.port, "GET", "/ws")
      expect(resp, 426)
      assert.are.equal("13", resp.headers["sec-websocket-version"])
    end)

    it("a WebSocket route and an app:get route on one path: each request goes to its side", function()
      assert.is_nil(srv:log():find("fixture: app:[a-z]+%('/both'%) failed"), srv:log())
      local resp = fetch(srv.port, "GET", "/both")
      expect(resp, 200)
      assert.are.equal("http side of /both", resp.body)
      local conn = h.open(srv.port, "/both")
      h.echo(conn, "ws side of /both")
      h.close_cleanly(conn)
    end)

    it("a WebSocket route on a path the static dir has a file for: the file, or the upgrade", function()
      assert.is_nil(srv:log():find("fixture: app:ws('/wsfile.txt') failed", 1, true), srv:log())
      local resp = fetch(srv.port, "GET", "/wsfile.txt")
      expect(resp, 200)
      assert.are.equal(read_file(WWW .. "/wsfile.txt"), resp.body)
      local conn = h.open(srv.port, "/wsfile.txt")
      h.echo(conn, "ws side of /wsfile.txt")
      h.close_cleanly(conn)
    end)

    it("an upgrade after plain requests on other connections, and HTTP after it", function()
      local ws = h.open(srv.port, "/ws")
      local resp = fetch(srv.port, "GET", "/index.html")
      expect(resp, 200)
      h.echo(ws, "still here")
      h.close_cleanly(ws)
    end)
  end)
end)

describe("plain HTTP without static", function()
  local srv
  setup(function() srv = server.start("spec/fixtures/echo.lua") end)
  teardown(function() srv:stop() end)

  it("a plain GET / (a WebSocket route, no Upgrade) -> 426", function()
    local resp = fetch(srv.port, "GET", "/")
    expect(resp, 426)
    assert.are.equal("13", resp.headers["sec-websocket-version"])
  end)

  it("a plain GET to an unknown path -> 404", function()
    expect(fetch(srv.port, "GET", "/nope"), 404)
    expect(fetch(srv.port, "GET", "/index.html"), 404)
  end)

  it("the WebSocket route still works", function()
    h.assert_alive(srv.port)
  end)
end)
