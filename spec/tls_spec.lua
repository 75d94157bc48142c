-- wss:// end to end: a test CA and certificates made here with the openssl
-- command, duplex serving TLS, and independent clients (Python websockets,
-- Node ws, openssl s_client) checking what it serves.

local server = require "spec.support.server"
local socket = require "socket"

local q = server.quote

local function sh_ok(cmd)
  local code, out = server.sh(cmd)
  assert(code == 0, "command failed (" .. tostring(code) .. "): " .. cmd .. "\n" .. out)
  return out
end

local function file_exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

local write_file = require("spec.support.helpers").write_file

-- A CA and certificates signed by it, in a fresh directory: NAME.pem and
-- NAME.key for each of server (localhost, 127.0.0.1), a (a.test), wild
-- (*.b.test) and renewed (localhost, 127.0.0.1 again, another subject).
local function make_pki()
  local dir = os.tmpname()
  os.remove(dir)
  sh_ok("mkdir -p " .. q(dir))
  local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  sh_ok(("cd %s && openssl req -x509 %s -keyout ca.key -out ca.pem -days 2 -subj '/CN=duplex test CA'")
    :format(q(dir), ec))
  local function cert(name, cn, san)
    sh_ok(("cd %s && openssl req %s -keyout %s.key -out %s.csr -subj '/CN=%s' && "
      .. "printf 'subjectAltName=%s\\n' > %s.ext && "
      .. "openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
      .. "-extfile %s.ext -out %s.pem"):format(q(dir), ec, name, name, cn, san, name, name, name, name))
  end
  cert("server", "localhost", "DNS:localhost,IP:127.0.0.1")
  cert("a", "a.test", "DNS:a.test")
  cert("wild", "wild.b.test", "DNS:*.b.test")
  cert("renewed", "renewed", "DNS:localhost,IP:127.0.0.1")
  cert("client", "a client", "DNS:client.test")
  return dir
end

-- The subject CN of the certificate served for servername (nil: no SNI),
-- and whether it verified against the test CA.
local function served_cert(dir, port, servername)
  local cmd = ("openssl s_client -connect 127.0.0.1:%d -CAfile %s %s </dev/null 2>&1")
    :format(port, q(dir .. "/ca.pem"), servername and ("-servername " .. q(servername)) or "-noservername")
  local _, out = server.sh("timeout -s KILL 20 " .. cmd)
  return out:match("subject=[^\n]-CN%s*=%s*([^,\n/]+)"), out:find("Verify return code: 0 (ok)", 1, true) ~= nil, out
end

-- Reads from sock until the peer closes or deadline seconds pass. Returns
-- what arrived and whether it closed.
local function read_to_close(sock, deadline)
  sock:settimeout(0.1)
  local got, t_end = {}, socket.gettime() + deadline
  while socket.gettime() < t_end do
    local data, err, partial = sock:receive(4096)
    data = data or partial
    if data and #data > 0 then got[#got + 1] = data end
    if err == "closed" then return table.concat(got), true end
  end
  return table.concat(got), false
end

describe("wss", function()
  local dir
  setup(function() dir = make_pki() end)
  teardown(function() if dir then os.execute("rm -rf " .. q(dir)) end end)

  local function tls_args(name)
    return { "--tls-cert", dir .. "/" .. (name or "server") .. ".pem", "--tls-key", dir .. "/" .. (name or "server") .. ".key" }
  end

  local function with_args(base, more)
    local out = {}
    for _, a in ipairs(base) do out[#out + 1] = a end
    for _, a in ipairs(more or {}) do out[#out + 1] = a end
    return out
  end

  describe("echo server with --tls-cert and --tls-key", function()
    local srv
    setup(function()
      srv = server.start("spec/fixtures/echo.lua", with_args(with_args(tls_args(), { "--deflate", "shared" }), server.UNLIMITED))
    end)
    teardown(function() if srv then srv:stop() end end)

    it("prints a wss:// URL", function()
      assert.matches("^wss://127%.0%.0%.1:%d+$", srv.url)
    end)

    it("serves Python websockets: sizes to 1 MiB, fragments, many small messages, deflate", function()
      local code, out = server.sh(("timeout -s KILL 90 /usr/bin/python3 spec/interop/python_client.py %d %s --deflate")
        :format(srv.port, q(dir .. "/ca.pem")))
      assert.are.equal(0, code, out .. "\nserver stderr:\n" .. srv:log())
    end)

    it("serves Node ws: sizes to 1 MiB, fragments, many small messages, deflate", function()
      assert(file_exists("node_modules/ws/package.json"), "node_modules/ws is missing: run `npm ci` at the repo root")
      local code, out = server.sh(("timeout -s KILL 90 node spec/interop/node_client.js %d %s --deflate")
        :format(srv.port, q(dir .. "/ca.pem")))
      assert.are.equal(0, code, out .. "\nserver stderr:\n" .. srv:log())
    end)

    it("answers plain HTTP on the TLS port with a plain 400, logs it once and goes on", function()
      local before = srv:count_log("TLS handshake failed", true)
      local sock = assert(socket.connect("127.0.0.1", srv.port))
      assert(sock:send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
      local reply, closed = read_to_close(sock, 5)
      sock:close()
      assert.is_true(closed, "the server did not close the plain HTTP connection")
      assert.matches("^HTTP/1%.1 400 ", reply)
      assert.matches("speaks TLS", reply)
      assert(srv:wait_log("plain HTTP request on the TLS port", 3, true))
      assert.are.equal(before + 1, srv:count_log("TLS handshake failed", true))
      local _, verified = served_cert(dir, srv.port, "localhost")
      assert.is_true(verified, "a TLS client after the plain one was not served")
    end)

    it("is loaded by duplex bench over wss://, every echo checked", function()
      local code, out, err = server.run({ "bench", "echo", "--url", srv.url .. "/", "--connections", "4",
        "--depth", "4", "--seconds", "1", "--warmup", "0.2", "--json" }, 60)
      assert.are.equal(0, code, out .. err)
      assert.is_nil(server.sanitizer_report(err), err)
      assert.matches('"url":"wss://127%.0%.0%.1:%d+/"', out)
      assert.matches('"errors":0,', out)
      assert.matches('"lost":0,', out)
      local received = tonumber(out:match('"received":(%d+)'))
      assert.is_true(received and received > 0, out)
    end)

    it("drops a client that sends garbage, with at most one log line for it", function()
      local before = srv:count_log("TLS ", true)
      local sock = assert(socket.connect("127.0.0.1", srv.port))
      sock:send(string.rep("\1\2\3 not TLS at all ", 200))
      local _, closed = read_to_close(sock, 5)
      sock:close()
      assert.is_true(closed, "the server kept a connection that sent garbage")
      assert.is_true(srv:count_log("TLS ", true) - before <= 1, "more than one log line:\n" .. srv:log())
      local _, verified = served_cert(dir, srv.port, "localhost")
      assert.is_true(verified)
    end)
  end)

  it("logs a burst of failed handshakes in a few lines, not one per connection", function()
    local srv = server.start("spec/fixtures/echo.lua", tls_args())
    local socks = {}
    for i = 1, 30 do
      socks[i] = assert(socket.connect("127.0.0.1", srv.port))
      socks[i]:send(string.rep("\22\3\1\0\5garbage", 4))
    end
    for i = 1, 30 do
      local _, closed = read_to_close(socks[i], 5)
      socks[i]:close()
      assert.is_true(closed, "garbage connection " .. i .. " was kept")
    end
    local _, verified = served_cert(dir, srv.port, "localhost")
    local log = srv:stop()
    assert.is_true(verified, "a good client after the burst was not served")
    local _, lines = log:gsub("duplex: TLS handshake failed", "")
    assert.is_true(lines >= 1, "no log line for the failed handshakes")
    assert.is_true(lines < 30 / 2, lines .. " log lines for 30 failed handshakes:\n" .. log)
  end)

  it("drops a client that opens TCP and never speaks TLS after handshake_timeout", function()
    local srv = server.start("spec/fixtures/echo.lua", with_args(tls_args(), { "--handshake-timeout", "0.3" }))
    local sock = assert(socket.connect("127.0.0.1", srv.port))
    local _, closed = read_to_close(sock, 8)
    sock:close()
    local log = srv:stop()
    assert.is_true(closed, "a silent client was not dropped\n" .. log)
  end)

  it("chooses the certificate by SNI: exact, wildcard, and the default", function()
    local app = dir .. "/sni_app.lua"
    write_file(app, ([[
      local duplex = require "duplex"
      local d = %q
      local app = duplex.app { tls = {
        cert = d .. "/server.pem", key = d .. "/server.key",
        sni = {
          { names = { "a.test" }, cert = d .. "/a.pem", key = d .. "/a.key" },
          { names = "*.b.test", cert = d .. "/wild.pem", key = d .. "/wild.key" },
        },
      } }
      app:ws("/", { message = function(ws, data, binary) ws:send(data, binary) end })
      return app
    ]]):format(dir))
    local srv = server.start(app)
    local cn, ok, out = served_cert(dir, srv.port, "a.test")
    assert.are.equal("a.test", cn, out)
    assert.is_true(ok, out)
    cn, ok, out = served_cert(dir, srv.port, "x.b.test")
    assert.are.equal("wild.b.test", cn, out)
    assert.is_true(ok, out)
    cn, _, out = served_cert(dir, srv.port, "b.test")         -- a wildcard needs a label
    assert.are.equal("localhost", cn, out)
    cn, ok, out = served_cert(dir, srv.port, nil)
    assert.are.equal("localhost", cn, out)
    assert.is_true(ok, out)
    srv:stop()
  end)

  it("re-reads the certificate on SIGHUP; an open wss connection keeps working", function()
    assert(file_exists("node_modules/ws/package.json"), "node_modules/ws is missing: run `npm ci` at the repo root")
    sh_ok(("cd %s && cp server.pem cur.pem && cp server.key cur.key"):format(q(dir)))
    local srv = server.start("spec/fixtures/echo.lua", { "--tls-cert", dir .. "/cur.pem", "--tls-key", dir .. "/cur.key" })
    local out, status, go = dir .. "/reload.out", dir .. "/reload.status", dir .. "/reload.go"
    os.execute(("sh -c %s &"):format(q(("timeout -s KILL 60 node spec/interop/tls_reload_client.js %d %s localhost renewed %s >%s 2>&1; echo \"exit $?\" >%s")
      :format(srv.port, q(dir .. "/ca.pem"), q(go), q(out), q(status)))))
    local function wait_for(path, pattern, secs)
      local t_end = socket.gettime() + secs
      while socket.gettime() < t_end do
        local text = server.read_file(path)
        if text:find(pattern) then return text end
        socket.sleep(0.02)
      end
      return nil
    end
    assert(wait_for(out, "open", 30), "the client did not open: " .. server.read_file(out))
    sh_ok(("cd %s && cp renewed.pem cur.pem && cp renewed.key cur.key"):format(q(dir)))
    srv:signal("HUP")
    assert(srv:wait_log("TLS certificates reloaded", 5, true), srv:log())
    write_file(go, "go")
    local done = wait_for(status, "exit %d+", 40)
    assert(done, "the client did not finish: " .. server.read_file(out))
    assert.are.equal("exit 0", done:match("exit %d+"), server.read_file(out) .. "\n" .. srv:log())

    -- a broken file on the next reload: logged, and the certificate in use stays
    write_file(dir .. "/cur.pem", "not a certificate\n")
    srv:signal("HUP")
    local log = srv:wait_log("TLS reload failed, keeping the certificates in use", 5, true)
    assert(log, srv:log())
    assert.matches("cur%.pem", log)
    local cn, ok, sout = served_cert(dir, srv.port, "localhost")
    assert.are.equal("renewed", cn, sout)
    assert.is_true(ok, sout)
    srv:stop()
  end)

  it("serves plain HTTP as https://, with keep-alive, and a large file whole", function()
    -- 5 MiB of distinct lines: a record sent twice, lost or out of order shows.
    local name = ("_tmp_tls_big_%d.bin"):format(math.random(1, 1e9))
    local lines = {}
    for i = 1, 5 * 1024 * 1024 / 16 do lines[i] = ("%015x\n"):format(i) end
    write_file("spec/fixtures/www/" .. name, table.concat(lines))
    local sha = sh_ok("sha256sum " .. q("spec/fixtures/www/" .. name)):match("^%x+")
    local srv = server.start("spec/fixtures/http_app.lua", tls_args())
    local code, out = server.sh(("timeout -s KILL 60 /usr/bin/python3 spec/interop/tls_checks.py https %d %s %s %s")
      :format(srv.port, q(dir .. "/ca.pem"), name, sha))
    srv:stop()
    os.remove("spec/fixtures/www/" .. name)
    assert.are.equal(0, code, out)
  end)

  it("with tls.ca, serves only clients with a certificate signed by it", function()
    local app = dir .. "/ca_app.lua"
    write_file(app, ([[
      local duplex = require "duplex"
      local d = %q
      local app = duplex.app { tls = { cert = d .. "/server.pem", key = d .. "/server.key", ca = d .. "/ca.pem" } }
      app:ws("/", { message = function(ws, data, binary) ws:send(data, binary) end })
      return app
    ]]):format(dir))
    local srv = server.start(app)
    local code, out = server.sh(("timeout -s KILL 60 /usr/bin/python3 spec/interop/tls_checks.py client-cert %d %s %s %s")
      :format(srv.port, q(dir .. "/ca.pem"), q(dir .. "/client.pem"), q(dir .. "/client.key")))
    assert.are.equal(0, code, out .. "\n" .. srv:log())
    assert(srv:wait_log("TLS handshake failed", 3, true), "the refused client was not logged")
    assert.matches("peer did not return a certificate", srv:log())
    srv:stop()
  end)

  describe("start-up", function()
    it("fails with a clear message for a certificate file that is missing", function()
      local code, stdout, stderr = server.run({ "run", "spec/fixtures/echo.lua", "--port", "0",
        "--tls-cert", dir .. "/missing.pem", "--tls-key", dir .. "/server.key" })
      assert.are.equal(2, code)
      assert.are.equal("", stdout)
      assert.matches("cannot read tls%.cert file '[^']*missing%.pem': No such file or directory", stderr)
    end)

    it("fails with a clear message for a key that does not match the certificate", function()
      local code, stdout, stderr = server.run({ "run", "spec/fixtures/echo.lua", "--port", "0",
        "--tls-cert", dir .. "/server.pem", "--tls-key", dir .. "/a.key" })
      assert.are.equal(2, code)
      assert.are.equal("", stdout)
      assert.matches("tls%.key '[^']*a%.key' does not match tls%.cert '[^']*server%.pem'", stderr)
    end)

    it("fails with a clear message for a file that holds no certificate", function()
      write_file(dir .. "/junk.pem", "junk\n")
      local code, _, stderr = server.run({ "run", "spec/fixtures/echo.lua", "--port", "0",
        "--tls-cert", dir .. "/junk.pem", "--tls-key", dir .. "/server.key" })
      assert.are.equal(2, code)
      assert.matches("tls%.cert file '[^']*junk%.pem' holds no usable PEM certificate", stderr)
    end)

    it("needs --tls-key with --tls-cert", function()
      local code, _, stderr = server.run({ "run", "spec/fixtures/echo.lua", "--tls-cert", dir .. "/server.pem" })
      assert.are.equal(2, code)
      assert.matches("%-%-tls%-cert needs %-%-tls%-key", stderr)
    end)
  end)
end)
