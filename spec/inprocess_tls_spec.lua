-- The tls option of duplex.app, from Lua in this process: misuse raises an
-- error naming the key; files that cannot serve are a run-time failure of
-- listen (nil, message, "ETLS"); reload_tls keeps the certificates in use
-- when the new files are bad.
local duplex = require "duplex"   -- the in-process build: LUA_CPATH set by the Makefile
local socket = require "socket"

local function run_until(cond, seconds)
  local limit = socket.gettime() + (seconds or 5)
  while not cond() and socket.gettime() < limit do duplex.run("once") end
  return cond()
end

local h = require "spec.support.helpers"
local tmpdir, write_file = h.tmpdir, h.write_file

-- A self-signed certificate and its key, made with the openssl command.
local function self_signed(dir, name)
  local cmd = ("cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
    .. "-keyout %s.key -out %s.pem -days 2 -subj '/CN=%s' >/dev/null 2>&1"):format(dir, name, name, name)
  local ok = os.execute(cmd)
  assert(ok == true or ok == 0, "openssl failed: " .. cmd)
  return dir .. "/" .. name .. ".pem", dir .. "/" .. name .. ".key"
end

describe("tls option", function()
  local dir, cert, key, other_key
  setup(function()
    dir = tmpdir()
    cert, key = self_signed(dir, "one")
    local _
    _, other_key = self_signed(dir, "two")
  end)
  teardown(function() h.remove_dir(dir) end)

  local function app_error(tls)
    local ok, err = pcall(duplex.app, { port = 0, tls = tls })
    assert.is_false(ok)
    return err
  end

  it("raises on misuse, naming the key", function()
    assert.matches("bad option 'tls' %(table expected, got string%)", app_error("cert.pem"))
    assert.matches("bad option 'tls.cert' %(file name expected, got number%)", app_error({ cert = 1, key = "k" }))
    assert.matches("bad option 'tls.key' %(file name expected: cert and key go together%)", app_error({ cert = "c" }))
    assert.matches("unknown option 'tls.certificate'", app_error({ certificate = "c" }))
    assert.matches("bad option 'tls.min_version' %(\"1.2\" or \"1.3\" expected, got \"1.1\"%)",
      app_error({ cert = "c", key = "k", min_version = "1.1" }))
    assert.matches("bad option 'tls' %(cert and key, or sni, expected%)", app_error({}))
    assert.matches("bad option 'tls.sni%[1%].names'", app_error({ sni = { { cert = "c", key = "k" } } }))
    assert.matches("unknown option 'tls.sni%[2%].name'",
      app_error({ sni = { { names = "a", cert = "c", key = "k" }, { name = "b", cert = "c", key = "k" } } }))
  end)

  it("returns nil, message, ETLS from listen for a missing file or a key of another certificate", function()
    local app = duplex.app { port = 0, host = "127.0.0.1", tls = { cert = dir .. "/nope.pem", key = key } }
    local ok, err, name = app:listen()
    assert.is_nil(ok)
    assert.are.equal("ETLS", name)
    assert.matches("cannot read tls.cert file '.-nope%.pem': No such file or directory", err)
    app:close()

    app = duplex.app { port = 0, host = "127.0.0.1", tls = { cert = cert, key = other_key } }
    ok, err, name = app:listen()
    assert.is_nil(ok)
    assert.are.equal("ETLS", name)
    assert.matches("does not match", err)
    app:close()

    app = duplex.app { port = 0, host = "127.0.0.1", tls = { cert = cert, key = key, ciphers = "NO-SUCH-CIPHER" } }
    ok, err, name = app:listen()
    assert.is_nil(ok)
    assert.are.equal("ETLS", name)
    assert.matches("bad tls.ciphers 'NO%-SUCH%-CIPHER'", err)
    app:close()
  end)

  it("listens with good files, counts TLS failures, and keeps its certificates when a reload fails", function()
    local c2, k2 = dir .. "/cur.pem", dir .. "/cur.key"
    assert(os.execute(("cp '%s' '%s' && cp '%s' '%s'"):format(cert, c2, key, k2)))
    local app = duplex.app { port = 0, host = "127.0.0.1", tls = { cert = c2, key = k2, min_version = "1.3" } }
    assert.is_true(app:listen())
    assert.is_true(app:is_tls())
    assert.are.equal(0, app:stats().tls_failures)
    assert.is_true(app:reload_tls())
    write_file(c2, "garbage\n")
    local ok, err, name = app:reload_tls()
    assert.is_nil(ok)
    assert.are.equal("ETLS", name)
    assert.matches("cur%.pem", err)
    local ok2, cerr = pcall(app.configure, app, { tls = { cert = cert, key = key } })
    assert.is_false(ok2)
    assert.matches("it cannot change once the server listens", cerr)
    app:close()
  end)

  it("is off without the option", function()
    local app = duplex.app { port = 0, host = "127.0.0.1" }
    assert.is_false(app:is_tls())
    local ok, err, name = app:reload_tls()
    assert.is_nil(ok)
    assert.are.equal("ETLS", name)
    assert.matches("does not speak TLS", err)
    app:close()
  end)

  describe("duplex.connect over wss://", function()
    local app
    before_each(function()
      app = duplex.app { host = "127.0.0.1", port = 0, tls = { cert = cert, key = key } }
      app:ws("/echo", { message = function(ws, data, binary) ws:send("echo:" .. data, binary) end })
      assert(app:listen())
    end)
    after_each(function() app:close() end)

    -- Connects with options; returns what happened: messages, close code and reason.
    local function session(options, messages)
      local got, closed = {}, nil
      local c, err, name = duplex.connect(("wss://127.0.0.1:%d/echo"):format(app:port()), {
        open = function(cl) for _, m in ipairs(messages) do assert(cl:send(m[1], m[2])) end end,
        message = function(cl, data, binary)
          got[#got + 1] = { data, binary }
          if #got == #messages then cl:close(1000) end
        end,
        close = function(_, code, reason) closed = { code, reason } end,
      }, options)
      if not c then return nil, err, name end
      assert.is_true(run_until(function() return closed ~= nil end, 10), "no close event")
      return got, closed
    end

    it("verifies the server's certificate against ca, for servername, and echoes", function()
      local big = string.rep("0123456789abcdef", 65536)            -- 1 MiB, many records
      local got, closed = session({ ca = cert, servername = "one" },
        { { "hello" }, { "\0\1\2", true }, { big } })
      assert.are.same({ { "echo:hello", false }, { "echo:\0\1\2", true } }, { got[1], got[2] })
      assert.are.equal(#big + 5, #got[3][1])
      assert.is_true(got[3][1] == "echo:" .. big, "the 1 MiB echo differs")
      assert.are.equal(1000, closed[1])
    end)

    it("fails the handshake for a certificate of another name, or of an unknown CA", function()
      local got, closed = session({ ca = cert, servername = "someone-else" }, { { "x" } })
      assert.are.same({}, got)
      assert.are.equal(1006, closed[1])
      assert.matches("^tls handshake: certificate verify failed", closed[2])
      got, closed = session({ servername = "one" }, { { "x" } })   -- the system's CAs do not know it
      assert.are.same({}, got)
      assert.are.equal(1006, closed[1])
      assert.matches("^tls handshake: ", closed[2])
      assert.is_true(run_until(function() return app:stats().tls_failures >= 2 end),
        "the server did not count the failed handshakes")
    end)

    it("connects without any check when insecure", function()
      local got, closed = session({ insecure = true }, { { "hi" } })
      assert.are.same({ { "echo:hi", false } }, got)
      assert.are.equal(1000, closed[1])
    end)

    it("returns nil, message, ETLS for a ca file it cannot use; raises on a bad option", function()
      local c, err, name = session({ ca = dir .. "/none.pem" }, {})
      assert.is_nil(c)
      assert.are.equal("ETLS", name)
      assert.matches("none%.pem", err)
      assert.has_error(function() duplex.connect("wss://127.0.0.1:1/", {}, { cafile = "x" }) end,
        "bad argument #3 to 'connect' (unknown option 'cafile')")
      assert.has_error(function() duplex.connect("wss://127.0.0.1:1/", {}, { insecure = "yes" }) end,
        "bad argument #3 to 'connect' (option 'insecure': boolean expected, got string)")
    end)
  end)
end)
