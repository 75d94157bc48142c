-- Whole messages (up to 64 KiB) that one read brings in go to their
-- handler from one call into Lua (a batch), not one call each. Each counts
-- as a message of its own: the same order against everything else of the
-- connection (pongs, closes), an error or a stop closes only that
-- connection with 1011 after the ones before it were answered, and each
-- has the whole handler_timeout. Every test writes its frames in one go,
-- so that the server reads them together.

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"

local FIXTURE = "spec/fixtures/batch.lua"
local LIMIT = 0.5

local function text(s) return wsclient.frame { opcode = 1, payload = s } end
local function binary(s) return wsclient.frame { opcode = 2, payload = s } end

-- The next frame, whatever it is (nil, err past the timeout).
local function next_frame(conn, timeout)
  local f, err = conn:read_frame(timeout or 3)
  assert(f, "expected a frame, got: " .. tostring(err))
  return f
end

local function stats(port)
  local conn = h.open(port)
  assert(conn:send_text("stats"))
  local _, got = conn:read_message(3)
  h.close_cleanly(conn)
  local messages_in, timeouts = got:match("^(%d+) (%d+)$")
  return tonumber(messages_in), tonumber(timeouts)
end

describe("messages that come in one read", function()
  local srv
  setup(function() srv = server.start(FIXTURE, { "--handler-timeout", tostring(LIMIT) }) end)
  teardown(function() srv:stop() end)

  it("are all answered in order, past the batch's size, pings where they came", function()
    local conn = h.open(srv.port)
    local frames, want = {}, {}
    for i = 1, 70 do                      -- more than one batch holds (32)
      local payload = ("m%02d"):format(i)
      local bin = i % 3 == 0
      frames[#frames + 1] = bin and binary(payload) or text(payload)
      want[#want + 1] = { opcode = bin and 2 or 1, payload = payload }
      if i == 20 or i == 50 then
        frames[#frames + 1] = wsclient.frame { opcode = 9, payload = "p" .. i }
        want[#want + 1] = { opcode = 10, payload = "p" .. i }
      end
    end
    frames[#frames + 1] = text("count")
    want[#want + 1] = { opcode = 1, payload = "71" }
    assert(conn:send(table.concat(frames)))
    for i, w in ipairs(want) do
      local f = next_frame(conn)
      assert.are.same({ w.opcode, w.payload }, { f.opcode, f.payload }, "frame " .. i)
    end
    h.close_cleanly(conn)
  end)

  it("of every size a 16-bit length can give, each answered whole and in order", function()
    local conn = h.open(srv.port)
    local sizes = { 125, 126, 1000, 65535, 3, 40000 }
    local frames, want = {}, {}
    for i, n in ipairs(sizes) do
      local payload = (string.char(96 + i)):rep(n)
      local bin = i % 2 == 0
      frames[#frames + 1] = bin and binary(payload) or text(payload)
      want[#want + 1] = { opcode = bin and 2 or 1, payload = payload }
    end
    -- a short one with a 16-bit length all the same (not the shortest form)
    frames[#frames + 1] = wsclient.frame { opcode = 1, payload = "short", len_form = 16 }
    want[#want + 1] = { opcode = 1, payload = "short" }
    frames[#frames + 1] = text("count")
    want[#want + 1] = { opcode = 1, payload = tostring(#sizes + 2) }
    assert(conn:send(table.concat(frames)))
    for i, w in ipairs(want) do
      local f = next_frame(conn)
      assert.are.equal(w.opcode, f.opcode, "frame " .. i)
      assert(w.payload == f.payload, ("frame %d: %d bytes back for %d sent"):format(i, #f.payload, #w.payload))
    end
    h.close_cleanly(conn)
  end)

  it("an error in one: those before it answered, then 1011; the rest not handled", function()
    local other = h.open(srv.port)
    local conn = h.open(srv.port)
    local before = srv:count_log("boom in message handler", true)
    local in_before = stats(srv.port)
    assert(conn:send(text("a") .. text("b") .. text("boom") .. text("c") .. text("d")))
    h.expect_message(conn, 1, "a")
    h.expect_message(conn, 1, "b")
    h.expect_close(conn, 1011)            -- the next frame: "c" and "d" were not echoed
    assert(srv:wait_log("boom in message handler", 3, true), srv:log())
    assert.are.equal(before + 1, srv:count_log("boom in message handler", true))
    -- a, b and boom were handled; c and d, of a closing connection, were not
    -- (the count includes the "stats" message asking for it)
    assert.are.equal(in_before + 3 + 1, (stats(srv.port)))
    h.echo(other, "after")
    h.close_cleanly(other)
  end)

  it("invalid UTF-8 after good ones: those answered, then 1007", function()
    local conn = h.open(srv.port)
    assert(conn:send(text("a") .. binary("\255") .. text("b") .. text("\255\254") .. text("c")))
    h.expect_message(conn, 1, "a")
    h.expect_message(conn, 2, "\255")
    h.expect_message(conn, 1, "b")
    h.expect_close(conn, 1007)
  end)

  it("the app closes in one: nothing after it is handled, not even bad UTF-8", function()
    local conn = h.open(srv.port)
    assert(conn:send(text("a") .. text("close") .. text("b") .. text("\255")))
    h.expect_message(conn, 1, "a")
    h.expect_close(conn, 1000, "asked")
  end)

  it("each has the whole handler_timeout", function()
    local conn = h.open(srv.port)
    local _, timeouts_before = stats(srv.port)
    -- four of 0.2 s each: 0.8 s in all, well past the 0.5 s a single one may
    -- take, while each stays well within it
    assert(conn:send(text("nap"):rep(4) .. text("x")))
    for _ = 1, 4 do h.expect_message(conn, 1, "napped", 5) end
    h.expect_message(conn, 1, "x")
    local _, timeouts = stats(srv.port)
    assert.are.equal(timeouts_before, timeouts)
    h.close_cleanly(conn)
  end)

  it("one that never returns is stopped: those before it answered, then 1011", function()
    local other = h.open(srv.port)
    local conn = h.open(srv.port)
    local _, timeouts_before = stats(srv.port)
    assert(conn:send(text("a") .. text("spin") .. text("b")))
    h.expect_message(conn, 1, "a")
    h.expect_close(conn, 1011, nil, { timeout = 5 })
    assert(srv:wait_log("handler ran past handler_timeout", 3, true), srv:log())
    local _, timeouts = stats(srv.port)
    assert.are.equal(timeouts_before + 1, timeouts)
    h.echo(other, "after")
    h.close_cleanly(other)
  end)
end)

describe("messages that come in one read, with metrics on", function()
  local srv
  setup(function() srv = server.start(FIXTURE, { "--metrics", "/metrics" }) end)
  teardown(function() srv:stop() end)

  -- duplex_handler_duration_seconds_count from /metrics
  local function handler_runs()
    local conn = assert(wsclient.tcp(srv.port))
    assert(conn:send("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    local resp = assert(conn:read_http_response(5))
    conn:close()
    return tonumber(resp.body:match("\nduplex_handler_duration_seconds_count (%d+)"))
  end

  it("each handler is timed on its own, the one that raised too", function()
    local before = handler_runs()
    local conn = h.open(srv.port)
    local frames = {}
    for i = 1, 40 do frames[i] = text("m" .. i) end
    frames[#frames + 1] = text("boom")
    frames[#frames + 1] = text("after")
    assert(conn:send(table.concat(frames)))
    for i = 1, 40 do h.expect_message(conn, 1, "m" .. i) end
    h.expect_close(conn, 1011)
    assert.are.equal(before + 41, handler_runs())   -- 40 echoes and the one that raised
  end)
end)
