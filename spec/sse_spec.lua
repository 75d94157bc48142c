-- The fallback transport (core/transport/sse.c): a GET of a WebSocket
-- route with Accept: text/event-stream opens a session whose frames come
-- down as events, and whose client frames go up in POSTs with a seq.
-- Real duplex processes over real sockets; the client is
-- spec/support/sseclient.lua, the app spec/fixtures/sse.lua (its handlers
-- log on stderr, so the specs count what the app saw).

local server = require "spec.support.server"
local sse = require "spec.support.sseclient"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"
local socket = require "socket"

local APP = "spec/fixtures/sse.lua"
local now = socket.gettime
local q = server.quote

-- A session on srv, asserted open.
local function open(srv, o)
  local s, err, resp = sse.open(srv.port, o and o.path or "/", o)
  assert(s, "no session: " .. tostring(err) .. (resp and ("\n" .. resp.raw .. "\n" .. tostring(resp.body)) or ""))
  return s
end

-- The app's id for session s (asked with "!id").
local function id_of(s)
  assert(s:send_text("!id"))
  local kind, data = s:message()
  assert.are.equal("text", kind)
  return assert(tonumber(data:match("^id=(%d+)$")), data)
end

-- The next message must be exactly this.
local function expect(s, kind, data, timeout)
  local k, got = s:message(timeout)
  assert.are.equal(kind, k)
  if got ~= data and (#got > 200 or #data > 200) then
    local i = 1
    while i <= #data and data:sub(i, i) == got:sub(i, i) do i = i + 1 end
    error(("payload differs: expected %d bytes, got %d; first difference at byte %d"):format(#data, #got, i), 2)
  end
  assert.are.equal(data, got)
end

local function echo(s, data, binary)
  if binary then assert(s:send_binary(data)) else assert(s:send_text(data)) end
  expect(s, binary and "binary" or "text", data)
end

-- The close handler ran for session id with this code (the line is
-- awaited), and ran once: a probe session opened and closed after it has
-- its close logged, and by then there is still one line for id.
local function expect_one_close(srv, id, code)
  local pattern = ("event: close id=%d "):format(id)
  assert(srv:wait_log(pattern .. "code=" .. code .. " ", 5, true), srv:log())
  local probe = open(srv)
  local pid = id_of(probe)
  probe:close()
  assert(srv:wait_log(("event: close id=%d "):format(pid), 5, true), srv:log())
  assert.are.equal(1, srv:count_log(pattern, true), "close handler ran more than once:\n" .. srv:log())
end

-- n distinct bytes-ish: every byte value, in a pattern that does not repeat
-- every 256 bytes, so a chunk sent twice or out of order shows.
local function bytes(n)
  local t, parts = {}, {}
  for i = 0, 255 do t[#t + 1] = string.char(i) end
  local all = table.concat(t)
  local i = 0
  while #parts * 256 < n do
    i = i + 1
    parts[#parts + 1] = all:sub(i % 256 + 1) .. all:sub(1, i % 256)
  end
  return table.concat(parts):sub(1, n)
end

describe("an event-stream session", function()
  local srv
  setup(function() srv = server.start(APP, server.UNLIMITED) end)
  teardown(function() srv:stop() end)

  it("opens with 'o' (session, protocol, max, ping); the app sees transport sse, a WebSocket websocket", function()
    local s = open(srv, { protocols = "duplex.1" })
    assert.are.equal(200, s.response.status)
    assert.are.equal("text/event-stream", s.response.headers["content-type"])
    assert.matches("no%-cache", s.response.headers["cache-control"])
    assert.matches("^" .. ("%x"):rep(32) .. "$", s.id)
    assert.are.equal("duplex.1", s.protocol)
    assert.are.equal(16 * 1024 * 1024, s.max)
    assert.are.equal(30, s.ping)
    -- duplex.1's hello comes first, as on a WebSocket: a control, tagged 0x01.
    local kind, hello = s:message()
    assert.are.equal("binary", kind)
    assert.are.equal("\1", hello:sub(1, 1))
    local msg = require("cjson").decode(hello:sub(2))
    assert.are.equal("hello", msg.t)
    assert(srv:wait_log(("event: open id=%d transport=sse protocol=duplex.1\n"):format(msg.id), 3, true), srv:log())
    assert(s:send_text("!transport"))
    expect(s, "text", "sse duplex.1")

    -- No offer: no protocol; another session has another id.
    local plain = open(srv)
    assert.are.equal("", plain.protocol)
    assert.are_not.equal(s.id, plain.id)
    assert(plain:send_text("!transport"))
    expect(plain, "text", "sse none")

    -- The same route over a WebSocket.
    local ws = h.open(srv.port, "/")
    assert(ws:send_text("!transport"))
    h.expect_message(ws, 1, "websocket none")
    assert(srv:wait_log("transport=websocket protocol=none", 3, true), srv:log())
    h.close_cleanly(ws)
    s:close()
    plain:close()
  end)

  it("takes subprotocols offered in the query (a comma as %2C) as tokens only", function()
    local s = open(srv, { protocols = "chat.v1%2Cchat.v2" })
    assert.are.equal("", s.protocol)               -- "/" speaks none of them
    s:close()
    s = assert(sse.open(srv.port, "/last", { protocols = "chat.v1%2Cchat.v2" }))
    assert.are.equal("chat.v2", s.protocol)
    assert(s:send_text("!transport"))
    expect(s, "text", "sse chat.v2")
    s:close()
    -- What a header could not carry, a query can: a quote, or line ends
    -- that would end the 'o' event and forge another. Such an offer is none.
    for _, offer in ipairs { "a%22b", "x%0A%0Adata:tforged", "x%0D%0A%0D%0Adata:tforged" } do
      s = assert(sse.open(srv.port, "/last", { protocols = offer }))
      assert.are.equal("", s.protocol, offer)
      assert(s:send_text("after"))
      expect(s, "text", "after")                   -- the next event is the echo, nothing forged
      s:close()
    end
  end)

  it("echoes texts (lines, CR, empty, UTF-8) and binaries (every byte, 40 KiB, 1 MiB)", function()
    local s = open(srv)
    local texts = { "hello", "two\nlines", "trailing\n", "\n", "\n\n\n", "", "cr\rhere", "crlf\r\n",
      "h\195\169llo w\195\182rld \226\156\147 \230\151\165\230\156\172 \240\159\142\137",
      (("line %d of many\n"):rep(3)):rep(3000) }
    for _, t in ipairs(texts) do echo(s, t) end
    -- A text goes as lines ('t') unless it holds a CR ('T', base64).
    assert(s:send_text("a\nb"))
    local ev = assert(s:next_event())
    assert.are.same({ "t", "a\nb" }, { ev.kind, ev.data })
    assert.are.equal("ta\nb", ev.raw)
    assert(s:send_text("a\rb"))
    ev = assert(s:next_event())
    assert.are.same({ "T", "a\rb" }, { ev.kind, ev.data })

    echo(s, bytes(256), true)
    echo(s, "", true)
    echo(s, bytes(40 * 1024 + 1), true)         -- more than one 32 KiB stage of events
    echo(s, bytes(1024 * 1024), true)
    echo(s, ("crlf line\r\n"):rep(10000))      -- a text with CRs, base64 over several stages
    -- Frames masked with a key that is not zero are unmasked.
    assert.are.equal(204, (s:post(sse.frame(2, bytes(1000), "\1\2\3\4"))))
    expect(s, "binary", bytes(1000))
    s:close()
  end)

  it("keeps the order both ways: 1000 messages in 20 POSTs, 1000 sends in one handler", function()
    local s = open(srv)
    local n = 0
    for _ = 1, 20 do
      local frames = {}
      for _ = 1, 50 do
        n = n + 1
        frames[#frames + 1] = sse.frame(1, "!rec " .. n)
      end
      assert.are.equal(204, (s:post(table.concat(frames))))
    end
    assert(s:send_text("!report"))
    local want = {}
    for i = 1, 1000 do want[i] = tostring(i) end
    expect(s, "text", table.concat(want, ","))
    assert(s:send_text("!count 1000"))
    for i = 1, 1000 do
      local kind, data = s:message()
      assert.are.equal("text", kind)
      if data ~= "n=" .. i then error(("message %d is %q"):format(i, data)) end
    end
    s:close()
  end)

  it("brings texts the server sends with CR, a blank line inside and a leading space exact", function()
    local s = open(srv)
    assert(s:send_text("!special"))
    expect(s, "text", "one\rtwo\r\n")
    expect(s, "text", "up\n\ndown")
    expect(s, "text", " lead\n  two")
    expect(s, "text", "end\n")
    s:close()
  end)

  it("answers POSTs: 404 unknown or closed, 411 chunked, 400 no seq, 204 again for a seq taken, 409 ahead", function()
    local s = open(srv)
    local port = srv.port
    local function raw(req)
      local c = assert(sse.connect(port))
      assert(c:send(req))
      local resp = assert(c:read_response())
      c:close()
      return resp
    end
    local frame = sse.frame(1, "!rec x")
    -- Unknown: a well-formed id nobody has, and one of the wrong length.
    local resp = raw(sse.post_request(port, "/?duplex_session=" .. ("0"):rep(32) .. "&seq=0", frame))
    assert.are.equal(404, resp.status)
    assert.matches("no such session", resp.body)
    resp = raw(sse.post_request(port, "/?duplex_session=abc&seq=0", frame))
    assert.are.equal(404, resp.status)
    -- A single process's ids start 0000; one naming a worker is nobody's here.
    assert.are.equal("0000", s.id:sub(1, 4))
    resp = raw(sse.post_request(port, "/?duplex_session=0001" .. s.id:sub(5) .. "&seq=0", frame))
    assert.are.equal(404, resp.status)
    -- No Content-Length: chunked, or nothing.
    resp = raw(sse.request("POST", s:target(0), port, { "Transfer-Encoding: chunked" },
      ("%x\r\n"):format(#frame) .. frame .. "\r\n0\r\n\r\n"))
    assert.are.equal(411, resp.status)
    assert.matches("Content%-Length", resp.body)
    resp = raw(sse.request("POST", s:target(0), port, {}))
    assert.are.equal(411, resp.status)
    -- No seq.
    resp = raw(sse.post_request(port, "/?duplex_session=" .. s.id, frame))
    assert.are.equal(400, resp.status)
    assert.matches("seq", resp.body)
    -- seq 0 taken; taken again: 204, not delivered twice.
    assert.are.equal(204, (s:post(sse.frame(1, "!rec a"))))
    assert.are.equal(1, s.seq)
    assert.are.equal(204, (s:post(sse.frame(1, "!rec a"), { seq = 0 })))
    -- Ahead of the next: 409, not delivered.
    local status, r409 = s:post(sse.frame(1, "!rec b"), { seq = 2 })
    assert.are.equal(409, status)
    assert.matches("takes seq 1 next", r409.body)
    assert(s:send_text("!report"))
    expect(s, "text", "a")
    -- Closed: the client's close, then its id is unknown.
    local id = s.id
    assert(s:send_close(1000, "done"))
    assert(srv:wait_log("code=1000 reason=done", 3, true), srv:log())
    resp = raw(sse.post_request(port, "/?duplex_session=" .. id .. "&seq=" .. s.seq, frame))
    assert.are.equal(404, resp.status)
    assert.matches("no such session", resp.body)
    s:close()
  end)

  it("answers a POST to an unknown session from its head: 404 before the body, which is not kept", function()
    local before = h.proc_kib(srv.pid, "VmRSS")
    local junk = ("j"):rep(1024 * 1024)
    local conns = {}
    for i = 1, 8 do
      local c = assert(sse.connect(srv.port))
      conns[i] = c
      assert(c:send(sse.request("POST", "/?duplex_session=" .. ("0"):rep(32) .. "&seq=0", srv.port,
        { "Content-Length: " .. 16 * 1024 * 1024 })))
      local resp = assert(c:read_response())
      assert.are.equal(404, resp.status)
      assert.matches("no such session", resp.body)
      for _ = 1, 8 do if not c:send(junk, 2) then break end end   -- sent anyway: dropped
    end
    socket.sleep(0.2)                                   -- what was sent reaches the server
    local after = h.proc_kib(srv.pid, "VmRSS")
    for _, c in ipairs(conns) do c:close() end
    -- 64 MiB were sent; none of it stays (a little for the lingering sockets).
    assert.is_true(after - before < 16 * 1024, ("RSS grew by %d KiB"):format(after - before))
  end)

  it("lets a page of an allowed origin read the stream and the POSTs' answers (CORS); refuses others 403", function()
    local own = "http://127.0.0.1:" .. srv.port                -- its own host: allowed
    local s = open(srv, { headers = { "Origin: " .. own } })
    assert.are.equal(own, s.response.headers["access-control-allow-origin"])
    local c = assert(sse.connect(srv.port))
    local body = sse.frame(1, "hi")
    assert(c:send(sse.post_request(srv.port, s:target(0), body, { "Origin: " .. own })))
    local resp = assert(c:read_response())
    assert.are.equal(204, resp.status)
    assert.are.equal(own, resp.headers["access-control-allow-origin"])
    local kind, data = s:message()
    assert.are.equal("text", kind)
    assert.are.equal("hi", data)
    s.seq = 1                                                  -- that POST was seq 0
    -- Without an Origin (not a browser's cross-origin request): no CORS lines.
    assert.are.equal(204, (s:post(sse.frame(1, "plain"))))
    local plain = assert(open(srv))
    assert.is_nil(plain.response.headers["access-control-allow-origin"])
    -- Another origin, not listed in origins: neither the stream nor a POST.
    local evil = assert(sse.connect(srv.port))
    assert(evil:send(sse.post_request(srv.port, s:target(2), sse.frame(1, "evil"),
      { "Origin: http://evil.example" })))
    local refused = assert(evil:read_response())
    assert.are.equal(403, refused.status)
    local none, err, r = sse.open(srv.port, "/", { headers = { "Origin: http://evil.example" } })
    assert.is_nil(none)
    assert.are.equal(403, r.status, err)
    assert.are.equal(204, (s:post(sse.frame(1, "after"))))
    assert.are.same({ "text", "plain" }, { s:message() })
    assert.are.same({ "text", "after" }, { s:message() })      -- "evil" never came
    c:close(); evil:close(); plain:close(); s:close()
  end)

  it("answers Expect: 100-continue before the body, then takes it", function()
    local s = open(srv)
    local body = sse.frame(1, ("e"):rep(3000))
    local c = assert(sse.connect(srv.port))
    assert(c:send(sse.request("POST", s:target(0), srv.port,
      { "Content-Length: " .. #body, "Expect: 100-continue" })))
    local cont = assert(c:read_response(2))                -- before any byte of the body
    assert.are.equal(100, cont.status)
    assert(c:send(body))
    local resp = assert(c:read_response())
    assert.are.equal(204, resp.status)
    local kind, data = s:message()
    assert.are.equal("text", kind)
    assert.are.equal(("e"):rep(3000), data)
    c:close()
    s:close()
  end)

  it("takes pipelined POSTs, one a byte at a time, a frame cut across POSTs, and control frames between", function()
    local s = open(srv)
    -- Three POSTs in one write on one connection: answered in order.
    local c = assert(sse.connect(srv.port))
    local reqs = {}
    for k = 0, 2 do reqs[#reqs + 1] = sse.post_request(srv.port, s:target(k), sse.frame(1, "!rec p" .. k)) end
    assert(c:send(table.concat(reqs)))
    for _ = 0, 2 do assert.are.equal(204, assert(c:read_response()).status) end
    -- One POST a byte at a time, head and body.
    local req = sse.post_request(srv.port, s:target(3), sse.frame(1, "!rec slow"))
    for i = 1, #req do assert(c:send(req:sub(i, i))) end
    assert.are.equal(204, assert(c:read_response()).status)
    c:close()
    s.seq = 4
    -- One frame in three POSTs, a ping between two fragments of one message.
    local frame = sse.frame(1, "!rec cut")
    assert.are.equal(204, (s:post(frame:sub(1, 1))))
    assert.are.equal(204, (s:post(frame:sub(2, 5))))
    assert.are.equal(204, (s:post(frame:sub(6))))
    local frag = wsclient.frame { opcode = 1, fin = false, payload = "!rec fr", key = "\0\0\0\0" }
      .. wsclient.frame { opcode = 9, payload = "between", key = "\0\0\0\0" }
      .. wsclient.frame { opcode = 0, payload = "ag", key = "\0\0\0\0" }
    assert.are.equal(204, (s:post(frag)))
    local ev = assert(s:next_event())
    assert.are.same({ "q", "between" }, { ev.kind, ev.data })
    assert(s:send_text("!report"))
    expect(s, "text", "p0,p1,p2,slow,cut,frag")
    s:close()
  end)

  it("closes the session for a body that breaks the protocol: 400, 'c' 1002 or 1007", function()
    for _, case in ipairs {
      { "unmasked", wsclient.frame { opcode = 1, payload = "x", mask = false }, 1002 },
      { "reserved opcode", sse.frame(3, "x"), 1002 },
      { "invalid UTF-8", sse.frame(1, "\255\254"), 1007 },
    } do
      local s = open(srv)
      local id = id_of(s)
      local status, resp = s:post(case[2])
      assert.are.equal(400, status, case[1])
      assert.matches("closed " .. case[3], resp.body)
      local ev = assert(s:next_event())
      assert.are.same({ "c", case[3] }, { ev.kind, ev.code }, case[1])
      assert(srv:wait_log(("event: close id=%d code=%d "):format(id, case[3]), 3, true), srv:log())
      -- the session is gone: the next POST finds none
      assert.are.equal(404, (s:post(sse.frame(1, "late"))))
      s:close()
    end
  end)

  it("gets publications of a topic it subscribed to, beside WebSocket subscribers", function()
    local s = open(srv)
    local ws = h.open(srv.port, "/")
    assert(s:send_text("!sub news"))
    expect(s, "text", "subscribed")
    assert(ws:send_text("!sub news"))
    h.expect_message(ws, 1, "subscribed")
    -- (a publisher does not get its own publication back)
    assert(ws:send_text("!pub news line one\nline two"))
    expect(s, "text", "line one\nline two")
    assert(s:send_text("!pub news cr\rtoo"))
    h.expect_message(ws, 1, "cr\rtoo")
    assert(ws:send_text("!pub news " .. ("big\n"):rep(20000)))
    expect(s, "text", ("big\n"):rep(20000))
    h.close_cleanly(ws)
    s:close()
  end)

  it("takes 50 POSTs fired at once once each, in seq order, the 409s retried", function()
    local s = open(srv)
    local N = 50
    local conns, pending = {}, {}
    for k = 0, N - 1 do
      conns[k] = assert(sse.connect(srv.port))
      pending[k] = true
    end
    local conflicts, rounds = 0, 0
    while next(pending) ~= nil do
      rounds = rounds + 1
      assert(rounds <= N + 5, "not all taken after " .. rounds .. " rounds")
      for k in pairs(pending) do
        assert(conns[k]:send(sse.post_request(srv.port, s:target(k), sse.frame(1, "!rec " .. k))))
      end
      for k in pairs(pending) do
        local resp = assert(conns[k]:read_response())
        if resp.status == 204 then
          pending[k] = nil
        else
          assert.are.equal(409, resp.status)
          conflicts = conflicts + 1
        end
      end
    end
    for k = 0, N - 1 do conns[k]:close() end
    s.seq = N
    assert(s:send_text("!report"))
    local want = {}
    for k = 0, N - 1 do want[#want + 1] = tostring(k) end
    expect(s, "text", table.concat(want, ","))
    s:close()
  end)

  it("closes: the app's ws:close(4001) comes as 'c'; the client's close is echoed and ends the stream; a dropped GET is 1006", function()
    -- The app closes; the client goes without a word.
    local s = open(srv)
    local id = id_of(s)
    assert(s:send_text("!close 4001 bye"))
    local ev = assert(s:next_event())
    assert.are.same({ "c", 4001, "bye" }, { ev.kind, ev.code, ev.reason })
    s:close()
    -- (the code the app closed with; the reason is the peer's, as on a WebSocket: none came)
    assert(srv:wait_log(("event: close id=%d code=4001 "):format(id), 3, true), srv:log())
    expect_one_close(srv, id, 4001)

    -- The client closes: the app sees its code and reason, the close comes back, the stream ends.
    s = open(srv)
    id = id_of(s)
    assert(s:send_close(1000, "done"))
    ev = assert(s:next_event())
    assert.are.same({ "c", 1000 }, { ev.kind, ev.code })
    local none, err = s:next_event(3)
    assert.are.same({ nil, "closed" }, { none, err })
    assert(srv:wait_log(("event: close id=%d code=1000 reason=done\n"):format(id), 3, true), srv:log())
    expect_one_close(srv, id, 1000)
    s:close()

    -- The app closes, the client answers with its close: the stream ends.
    s = open(srv)
    id = id_of(s)
    assert(s:send_text("!close 4002 bye"))
    ev = assert(s:next_event())
    assert.are.same({ "c", 4002, "bye" }, { ev.kind, ev.code, ev.reason })
    assert(s:send_close(4002, "ok"))
    assert.are.same({ nil, "closed" }, { s:next_event(3) })
    assert(srv:wait_log(("event: close id=%d code=4002 reason=ok\n"):format(id), 3, true), srv:log())
    s:close()

    -- The client drops the GET.
    s = open(srv)
    id = id_of(s)
    s:close()
    assert(srv:wait_log(("event: close id=%d code=1006 "):format(id), 3, true), srv:log())
    expect_one_close(srv, id, 1006)
  end)
end)

describe("an event-stream session with max_message 64 KiB", function()
  local srv
  setup(function() srv = server.start(APP, { "--max-message", "65536" }) end)
  teardown(function() srv:stop() end)

  it("takes a body of one whole message, and refuses a longer one 413 before its body, closing 1009", function()
    local s = open(srv)
    assert.are.equal(65536, s.max)
    local id = id_of(s)
    -- 65536 bytes in a frame with a 64-bit length and a mask: max_message + 14.
    local frame = sse.frame(2, bytes(65536))
    assert.are.equal(65536 + 14, #frame)
    assert.are.equal(204, (s:post(frame)))
    expect(s, "binary", bytes(65536))

    -- One byte more: answered from the head alone, the body never sent.
    local before = h.proc_kib(srv.pid, "VmRSS")
    local c = assert(sse.connect(srv.port))
    assert(c:send(sse.request("POST", s:target(s.seq), srv.port, { "Content-Length: " .. (65536 + 15) })))
    local resp = assert(c:read_response())
    assert.are.equal(413, resp.status)
    assert.matches("1009", resp.body)
    -- What a client sends anyway is not kept.
    local junk = ("j"):rep(1024 * 1024)
    for _ = 1, 16 do if not c:send(junk, 2) then break end end
    c:close()
    local ev = assert(s:next_event())
    assert.are.same({ "c", 1009 }, { ev.kind, ev.code })
    assert(srv:wait_log(("event: close id=%d code=1009 "):format(id), 3, true), srv:log())
    s:close()
    local after = h.proc_kib(srv.pid, "VmRSS")
    assert.is_true(after - before < 8 * 1024, ("RSS grew by %d KiB"):format(after - before))
    expect_one_close(srv, id, 1009)
  end)
end)

describe("an event-stream session's heartbeat", function()
  local srv
  setup(function()
    srv = server.start(APP, { "--ping-interval", "0.5", "--pong-timeout", "0.5" })
  end)
  teardown(function() srv:stop() end)

  it("runs pong_timeout for a client that does not answer, then 1001; keeps one that answers", function()
    local silent = open(srv)
    local lively = open(srv, { answer_pings = true })
    assert.are.equal(0.5, silent.ping)
    local silent_id, lively_id = id_of(silent), id_of(lively)
    -- The answering one: pinged and answered for 2.5 s, never closed.
    local deadline = now() + 2.5
    while now() < deadline do
      local ev, err = lively:next_event(deadline - now())
      assert(ev or err == "timeout", "lively session: " .. tostring(ev and ev.raw or err))
      if ev then error("unexpected event: " .. ev.raw) end
    end
    assert.is_true(lively.pongs >= 3, "pings answered: " .. lively.pongs)
    assert(lively:send_text("still here"))
    expect(lively, "text", "still here")

    -- The silent one was pinged, then closed 1001.
    local ev = assert(silent:next_event())
    assert.are.equal("p", ev.kind)
    repeat ev = assert(silent:next_event()) until ev.kind ~= "p"
    assert.are.same({ "c", 1001 }, { ev.kind, ev.code })
    silent:close()
    assert(srv:wait_log(("event: close id=%d code=1001 "):format(silent_id), 3, true), srv:log())
    local log = srv:log()
    local pt = log:find(("event: pong_timeout id=%d\n"):format(silent_id), 1, true)
    local cl = log:find(("event: close id=%d "):format(silent_id), 1, true)
    assert(pt and pt < cl, log)
    expect_one_close(srv, silent_id, 1001)
    assert.are.equal(1, srv:count_log(("event: pong_timeout id=%d\n"):format(silent_id), true))
    assert.are.equal(0, srv:count_log(("event: pong_timeout id=%d\n"):format(lively_id), true))
    assert.are.equal(0, srv:count_log(("event: close id=%d "):format(lively_id), true))
    lively:close()
  end)
end)

describe("an event-stream session that does not read", function()
  local srv
  setup(function()
    srv = server.start(APP, { "--max-backpressure", "262144", "--close-timeout", "0.5" })
  end)
  teardown(function() srv:stop() end)

  it("gets the send queue limit of a WebSocket (1008), and the server's memory stays flat", function()
    local s = open(srv, { recv_buffer = 4096 })
    local id = id_of(s)
    local before = h.proc_kib(srv.pid, "VmRSS")
    -- 640 x 16 KiB = 10 MiB asked for in one handler, none of it read.
    assert(s:send_text("!flood 640 16384"))
    local line = assert(srv:wait_log(("event: flood id=%d sent=%%d+ failed=%%S+"):format(id), 5), srv:log())
    local sent, failed = line:match(("event: flood id=%d sent=(%%d+) failed=(%%S+)"):format(id))
    assert.are.equal("backpressure", failed)
    assert.are.equal(16, tonumber(sent))        -- as for a WebSocket: 16 frames of 16 KiB + 4 pass 256 KiB
    assert(srv:wait_log(("event: close id=%d code=1008 reason=send queue full"):format(id), 5, true), srv:log())
    local after = h.proc_kib(srv.pid, "VmRSS")
    assert.is_true(after - before < 4 * 1024, ("RSS grew by %d KiB"):format(after - before))
    -- Not read past close_timeout: the stream is dropped.
    local _, err
    repeat _, err = s:next_event(3) until err
    assert.are.equal("closed", err)
    s:close()
    expect_one_close(srv, id, 1008)
  end)

  it("gets everything queued, in order, when it reads late", function()
    local s = open(srv, { recv_buffer = 4096 })
    -- 12 x 16 KiB fit under 256 KiB; the socket takes little of it.
    assert(s:send_text("!flood 12 16384"))
    assert(srv:wait_log("sent=12 failed=none", 5, true), srv:log())
    socket.sleep(0.2)
    for _ = 1, 12 do expect(s, "binary", ("x"):rep(16384)) end
    echo(s, "after")
    s:close()
  end)
end)

describe("an event-stream session at shutdown", function()
  it("gets 'c' 1001, and the process exits 0", function()
    local srv = server.start(APP, { "--shutdown-timeout", "1" })
    local ok, err = pcall(function()
      local leaving = open(srv)
      local staying = open(srv)            -- never answers: shutdown_timeout ends it
      assert(leaving:send_text("hi"))
      expect(leaving, "text", "hi")
      local t0 = now()
      srv:signal("TERM")
      local ev = assert(leaving:next_event())
      assert.are.same({ "c", 1001 }, { ev.kind, ev.code })
      leaving:close()
      ev = assert(staying:next_event())
      assert.are.same({ "c", 1001 }, { ev.kind, ev.code })
      assert.are.equal(0, srv:wait_exit(5), srv:log())
      assert.is_true(now() - t0 < 4, "took " .. (now() - t0) .. " s")
      staying:close()
      assert.are.equal(2, srv:count_log("code=1001", true), srv:log())
    end)
    if srv:exited() then srv.stopped = true end
    srv:kill()
    assert(ok, err)
    assert.is_nil(server.sanitizer_report(srv.final_log or srv:log()), srv:log())
  end)
end)

describe("an event stream asked for behind pipelined requests", function()
  local srv
  setup(function() srv = server.start("spec/fixtures/http_app.lua") end)
  teardown(function() srv:stop() end)

  it("opens once their responses (a route's, a missing file's, a static file's) went whole", function()
    local notes = server.read_file("spec/fixtures/www/notes.txt")
    local s = open(srv, {
      path = "/ws",
      pipelined = {
        sse.request("GET", "/health", srv.port),
        sse.request("GET", "/missing.txt", srv.port),
        sse.request("GET", "/notes.txt", srv.port),
      },
    })
    assert.are.same({ 200, '{"ok":true}' }, { s.pipelined[1].status, s.pipelined[1].body })
    assert.are.equal(404, s.pipelined[2].status)
    assert.are.same({ 200, notes }, { s.pipelined[3].status, s.pipelined[3].body })
    assert.matches("^" .. ("%x"):rep(32) .. "$", s.id)
    echo(s, "on the stream")
    s:close()
  end)
end)

describe("sse = false (--no-sse)", function()
  local srv
  setup(function() srv = server.start(APP, { "--no-sse" }) end)
  teardown(function() srv:stop() end)

  it("answers the event-stream GET as a WebSocket route answers any plain GET (426), a POST 400", function()
    local s, err, resp = sse.open(srv.port, "/")
    assert.is_nil(s)
    assert.are.equal("status 426", err)
    assert.are.equal("13", resp.headers["sec-websocket-version"])
    -- A session's POST is a plain POST of a WebSocket route: 400, not a session's 404.
    local c = assert(sse.connect(srv.port))
    assert(c:send(sse.post_request(srv.port, "/?duplex_session=" .. ("0"):rep(32) .. "&seq=0", sse.frame(1, "x"))))
    local r = assert(c:read_response())
    c:close()
    assert.are.equal(400, r.status)
    assert.is_nil(r.body:find("session", 1, true))
    -- and a WebSocket still opens there
    local ws = h.open(srv.port, "/")
    h.echo(ws, "ws")
    h.close_cleanly(ws)
  end)
end)

describe("sse = false in the app's options", function()
  it("turns the fallback off as --no-sse does", function()
    local dir = h.tmpdir()
    local app = dir .. "/no_sse.lua"
    h.write_file(app, [[
      local duplex = require "duplex"
      local app = duplex.app { sse = false }
      app:ws("/", { message = function(ws, data, binary) ws:send(data, binary) end })
      return app
    ]])
    local srv = server.start(app)
    local ok, err = pcall(function()
      local s, why, resp = sse.open(srv.port, "/")
      assert.is_nil(s)
      assert.are.equal("status 426", why)
      assert.are.equal(426, resp.status)
    end)
    srv:stop()
    h.remove_dir(dir)
    assert(ok, err)
  end)
end)

describe("an event-stream session over TLS", function()
  local dir, srv
  setup(function()
    dir = h.tmpdir()
    local code, out = server.sh(("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
      .. "-nodes -keyout server.key -out server.pem -days 2 -subj '/CN=localhost' "
      .. "-addext 'subjectAltName=DNS:localhost,IP:127.0.0.1'"):format(q(dir)))
    assert(code == 0, out)
    srv = server.start(APP, { "--tls-cert", dir .. "/server.pem", "--tls-key", dir .. "/server.key" })
  end)
  teardown(function()
    if srv then srv:stop() end
    h.remove_dir(dir)
  end)

  it("echoes over https", function()
    assert.matches("^wss://", srv.url)
    local s = open(srv, { tls = { cafile = dir .. "/server.pem" } })
    echo(s, "over tls\nwith lines")
    echo(s, bytes(400 * 1024), true)          -- a POST body larger than the read buffer
    assert(s:send_text("!transport"))
    expect(s, "text", "sse none")
    assert(s:send_close(1000, "done"))
    local ev = assert(s:next_event())
    assert.are.same({ "c", 1000 }, { ev.kind, ev.code })
    s:close()
  end)

  it("brings what was queued to a reader that starts late, through a full socket", function()
    local s = open(srv, { tls = { cafile = dir .. "/server.pem" }, recv_buffer = 4096 })
    assert(s:send_text("!flood 48 16384"))            -- 768 KiB, under the 1 MiB send queue limit
    assert(srv:wait_log("sent=48 failed=none", 5, true), srv:log())
    socket.sleep(0.3)
    for _ = 1, 48 do expect(s, "binary", ("x"):rep(16384)) end
    echo(s, "after")
    s:close()
  end)
end)

describe("event-stream sessions under --workers 2", function()
  -- A POST's connection lands on either worker (SO_REUSEPORT); one for a
  -- session of the other worker is forwarded to it through the hub.
  local srv
  before_each(function() srv = server.start(APP, { "--workers", "2", "--max-connections", "0",
    "--max-connections-per-ip", "0", "--max-message-rate", "0" }) end)
  after_each(function() if srv then srv:kill() end end)

  -- The worker a session id names (its first 4 hex digits).
  local function worker_of(s) return tonumber(s.id:sub(1, 4), 16) end

  -- Sessions until there is one on each worker: { [1] = s, [2] = s }.
  local function one_per_worker()
    local got, tries = {}, 0
    while not (got[1] and got[2]) do
      local s = open(srv)
      local w = worker_of(s)
      assert(w == 1 or w == 2, "a session id that names no worker: " .. s.id)
      if got[w] then s:close() else got[w] = s end
      tries = tries + 1
      assert(tries < 200, "no session on each worker in 200 tries")
    end
    return got
  end

  -- The next POST of s goes on a new connection (so, to either worker).
  local function fresh(s)
    if s.post_conn then s.post_conn:close() end
    s.post_conn = nil
  end

  -- The pids of the workers, by index (the supervisor's line on stdout).
  local function worker_pids()
    local deadline = now() + 5
    while true do
      local pids = srv:stdout():match("\nduplex: 2 workers %(pids ([%d ]+)%)\n")
      if pids then
        local t = {}
        for p in pids:gmatch("%d+") do t[#t + 1] = tonumber(p) end
        return t
      end
      assert(now() < deadline, "no workers line on stdout:\n" .. srv:stdout())
      socket.sleep(0.01)
    end
  end

  it("takes every POST, on whichever worker, exactly once and in order; echoes come down the stream", function()
    local ss = one_per_worker()
    local N = 100
    local want = {}
    for k = 1, N do
      want[k] = tostring(k)
      for w = 1, 2 do
        local s = ss[w]
        fresh(s)
        assert(s:send_text("!rec " .. k))
        fresh(s)
        echo(s, ("w%d message %d"):format(w, k))
      end
    end
    local own = "http://127.0.0.1:" .. srv.port                -- its own host: allowed
    for k = 1, 10 do
      for w = 1, 2 do
        -- two POSTs in one write on a new connection, the first with an
        -- Origin: answered in order, the first with its CORS line
        local s = ss[w]
        local c = assert(sse.connect(srv.port))
        local a, b = ("pipelined %d.%d a"):format(w, k), ("pipelined %d.%d b"):format(w, k)
        assert(c:send(sse.post_request(srv.port, s:target(s.seq), sse.frame(1, a), { "Origin: " .. own })
          .. sse.post_request(srv.port, s:target(s.seq + 1), sse.frame(1, b))))
        local r1, r2 = assert(c:read_response()), assert(c:read_response())
        c:close()
        assert.are.equal(204, r1.status)
        assert.are.equal(own, r1.headers["access-control-allow-origin"])
        assert.are.equal(204, r2.status)
        assert.is_nil(r2.headers["access-control-allow-origin"])
        s.seq = s.seq + 2
        expect(s, "text", a)
        expect(s, "text", b)
      end
    end
    for w = 1, 2 do
      -- a seq ahead is refused by the session's worker, its reason carried back
      fresh(ss[w])
      local status, resp = ss[w]:post(sse.frame(1, "ahead"), { seq = ss[w].seq + 3 })
      assert.are.equal(409, status)
      assert.are.equal(("out of order: the session takes seq %d next"):format(ss[w].seq), resp.body)
      -- a retry of a seq taken is 204 and not taken again
      fresh(ss[w])
      assert.are.equal(204, (ss[w]:post(sse.frame(1, "!rec again"), { seq = 0 })))
      fresh(ss[w])
      assert(ss[w]:send_text("!report"))
      expect(ss[w], "text", table.concat(want, ","))
    end
    for w = 1, 2 do ss[w]:close() end
    srv:stop()
  end)

  it("answers 4xx to a POST for a session whose worker was killed; the other worker's sessions go on", function()
    local ss = one_per_worker()
    local pids = worker_pids()
    assert(os.execute("kill -KILL " .. pids[1]))
    local answered = 0
    for k = 1, 20 do
      fresh(ss[1])
      local resp = ss[1]:post_raw(sse.frame(1, "to the dead " .. k))
      if resp then                         -- (a connection the kernel gave the dead listener is reset)
        answered = answered + 1
        assert.are.equal(404, resp.status, resp.body)
        assert.matches("^no such session", resp.body)
      end
      fresh(ss[2])
      echo(ss[2], "alive " .. k)
    end
    assert(answered >= 10, "only " .. answered .. " of 20 POSTs were answered")
    ss[1]:close()
    ss[2]:close()
    srv:stop()
  end)

  it("closes a session 1009 for a POST whose body is too big, whichever worker refuses it 413", function()
    for _ = 1, 6 do                        -- 12 POSTs: some on the other worker (all but surely)
      local ss = one_per_worker()
      for w = 1, 2 do
        local s = ss[w]
        local c = assert(sse.connect(srv.port))
        assert(c:send(sse.request("POST", s:target(s.seq), srv.port, { ("Content-Length: %d"):format(s.max + 15) })))
        local resp = assert(c:read_response())
        c:close()
        assert.are.equal(413, resp.status)
        local ev = assert(s:next_event())
        assert.are.same({ "c", 1009 }, { ev.kind, ev.code })
        s:close()
      end
    end
    srv:stop()
  end)

  it("answers 404 to an unknown or malformed session id, whichever worker takes it", function()
    local ss = one_per_worker()
    local ids = {
      "zzzz" .. ss[2].id:sub(5),                       -- not hex
      "0002" .. ("0"):rep(28),                         -- worker 2's, unknown there
      "0001" .. ("0"):rep(28),                         -- worker 1's, unknown there
      "0009" .. ss[1].id:sub(5),                       -- no worker 9
      ss[1].id:sub(1, 31),                             -- too short
      ss[1].id:upper(),                                -- not as made
    }
    for _, id in ipairs(ids) do
      for _ = 1, 6 do
        local c = assert(sse.connect(srv.port))
        assert(c:send(sse.post_request(srv.port, "/?duplex_session=" .. id .. "&seq=0", sse.frame(1, "x"))))
        local resp = assert(c:read_response())
        c:close()
        assert.are.equal(404, resp.status, id .. ": " .. tostring(resp.body))
        assert.matches("^no such session", resp.body)
      end
    end
    -- the sessions themselves never saw any of it
    for w = 1, 2 do
      fresh(ss[w])
      echo(ss[w], "still " .. w)
      ss[w]:close()
    end
    srv:stop()
  end)
end)
