-- scripts/ticker.lua: prices pushed at a steady rate (10 a second) with one
-- publish per tick, a snapshot first, some symbols only on request, and an
-- error (never a lost connection) for bad requests. The app runs in this
-- process under duplex.test; its clients speak the JSON protocol
-- documented at the top of the script.
-- Rates are checked against loose lower bounds only: the machine is shared.

local dt = require "duplex.test"
local socket = require "socket"
local http_get = require("spec.support.inprocess_http").get

local json = require "spec.support.json"
local recv, expect, send = json.recv, json.expect, json.send

-- Closes c while ticks stream in (those not read are dropped).
local function bye(c)
  assert.are.equal(1000, (c:close(1000)))
end

local function is_price(x)
  return type(x) == "number" and x > 0 and math.abs(x * 100 - math.floor(x * 100 + 0.5)) < 1e-6
end

-- A quote as ticks carry it: symbol, price (two decimals), change.
local function check_quote(q, raw)
  assert.is_string(q.symbol, raw)
  assert.is_true(is_price(q.price), "bad price in " .. raw)
  assert.is_number(q.change, raw)
end

local function symbols_of(quotes)
  local list = {}
  for i, q in ipairs(quotes) do list[i] = q.symbol end
  return list
end

describe("the ticker app #inprocess", function()
  local srv
  setup(function() srv = dt.start("scripts/ticker.lua") end)
  teardown(function() srv:stop() end)

  it("sends a snapshot of every symbol at once, then a tick at a steady rate", function()
    local c = srv:client("/ticker")
    local snap, raw = expect(c, "snapshot", { rate = 10 })
    assert.is_true(#snap.symbols >= 4, raw)
    assert.are.same(snap.symbols, symbols_of(snap.quotes))
    for _, q in ipairs(snap.quotes) do
      check_quote(q, raw)
      assert.is_string(q.name, raw)
      assert.is_true(is_price(q.open) and is_price(q.high) and is_price(q.low), raw)
      assert.is_true(q.low <= q.price and q.price <= q.high, raw)
    end

    -- Over one second: ticks follow the snapshot without gaps, each with
    -- every symbol; at 10 a second, at least 5 must come (a loose bound).
    local start, last, count = socket.gettime(), snap.tick, 0
    local first_prices, moved = {}, false
    for _, q in ipairs(snap.quotes) do first_prices[q.symbol] = q.price end
    while socket.gettime() - start < 1 do
      local t, traw = expect(c, "tick")
      assert.are.equal(last + 1, t.tick, "a tick missing before " .. traw)
      last = t.tick
      assert.is_number(t.time, traw)
      assert.are.same(snap.symbols, symbols_of(t.quotes))
      for _, q in ipairs(t.quotes) do
        check_quote(q, traw)
        if q.price ~= first_prices[q.symbol] then moved = true end
      end
      count = count + 1
    end
    assert.is_true(count >= 5, count .. " ticks in one second, expected about 10")
    assert.is_true(moved, "no price moved in " .. count .. " ticks")
    bye(c)
  end)

  it("sends the same tick to every client: one publish", function()
    local a, b = srv:client("/ticker"), srv:client("/ticker")
    expect(a, "snapshot")
    local sb = expect(b, "snapshot")
    local ticks, last = {}, nil
    for _ = 1, 10 do
      local t, raw = expect(a, "tick")
      ticks[t.tick], last = raw, t.tick
    end
    assert.is_true(last > sb.tick, "b's snapshot came after a's ten ticks")
    local matched = 0
    repeat
      local t, raw = expect(b, "tick")
      if ticks[t.tick] then
        assert.are.equal(ticks[t.tick], raw)       -- the very same bytes
        matched = matched + 1
      end
    until t.tick >= last
    assert.are.equal(last - math.max(sb.tick, last - 10), matched)
    bye(a)
    bye(b)
  end)

  it("follows some symbols only, from the URL or a subscribe message", function()
    local c = srv:client("/ticker?symbols=ZLIB,DPLX")
    local snap = expect(c, "snapshot")
    assert.are.same({ "ZLIB", "DPLX" }, symbols_of(snap.quotes))
    assert.is_true(#snap.symbols > 2)
    -- One message per symbol per tick, each with its one quote.
    local seen = {}
    for _ = 1, 6 do
      local t, raw = expect(c, "tick")
      assert.are.equal(1, #t.quotes, raw)
      check_quote(t.quotes[1], raw)
      seen[t.tick] = seen[t.tick] or {}
      seen[t.tick][t.quotes[1].symbol] = true
    end
    local both = 0
    for _, s in pairs(seen) do
      assert.is_truthy(s.ZLIB or s.DPLX)
      if s.ZLIB and s.DPLX then both = both + 1 end
    end
    assert.is_true(both >= 2, "ZLIB and DPLX did not both come each tick")

    send(c, { type = "subscribe", symbols = { "LUAJ" } })
    -- Ticks already queued may come first; then the snapshot, then LUAJ only.
    local msg
    repeat msg = recv(c) until msg.type == "snapshot"
    assert.are.same({ "LUAJ" }, symbols_of(msg.quotes))
    for _ = 1, 3 do
      local t = expect(c, "tick")
      assert.are.same({ "LUAJ" }, symbols_of(t.quotes))
    end

    send(c, { type = "subscribe" })
    repeat msg = recv(c) until msg.type == "snapshot"
    assert.are.same(msg.symbols, symbols_of(msg.quotes))
    local t = expect(c, "tick", { tick = msg.tick + 1 })
    assert.are.same(msg.symbols, symbols_of(t.quotes))
    bye(c)
  end)

  it("answers a snapshot request, of every symbol or of some, without changing what it follows", function()
    local c = srv:client("/ticker?symbols=DPLX")
    local snap = expect(c, "snapshot")
    assert.are.same({ "DPLX" }, symbols_of(snap.quotes))
    send(c, { type = "snapshot", symbols = { "ZLIB", "LUAJ" } })
    local msg
    repeat msg = recv(c) until msg.type == "snapshot"
    assert.are.same({ "ZLIB", "LUAJ" }, symbols_of(msg.quotes))
    send(c, { type = "snapshot" })
    repeat msg = recv(c) until msg.type == "snapshot"
    assert.are.same(msg.symbols, symbols_of(msg.quotes))
    for _ = 1, 3 do                                     -- still DPLX alone
      local t = expect(c, "tick")
      assert.are.same({ "DPLX" }, symbols_of(t.quotes))
    end
    send(c, { type = "snapshot", symbols = { "NOPE" } })
    repeat msg = recv(c) until msg.type ~= "tick"
    assert.are.same({ "error", "bad_symbols" }, { msg.type, msg.error })
    bye(c)
  end)

  it("answers bad requests with an error and keeps ticking", function()
    local c = srv:client("/ticker?symbols=NOPE")
    local snap = expect(c, "snapshot")                   -- every symbol, then the complaint
    assert.are.same(snap.symbols, symbols_of(snap.quotes))
    local msg
    repeat msg = recv(c) until msg.type ~= "tick"
    assert.are.same({ "error", "bad_symbols" }, { msg.type, msg.error })

    local cases = {
      { "not json", "bad_json" },
      { "[1]", "bad_message" },
      { "{\"type\":\"buy\"}", "unknown_type" },
      { "{\"type\":\"subscribe\",\"symbols\":[]}", "bad_symbols" },
      { "{\"type\":\"subscribe\",\"symbols\":\"DPLX\"}", "bad_symbols" },
      { "{\"type\":\"subscribe\",\"symbols\":[\"DPLX\",\"NOPE\"]}", "bad_symbols" },
      { "{\"type\":\"subscribe\",\"symbols\":[1]}", "bad_symbols" },
    }
    for _, case in ipairs(cases) do
      send(c, case[1])
      repeat msg = recv(c) until msg.type ~= "tick"
      assert.are.same({ "error", case[2] }, { msg.type, msg.error }, case[1])
      assert.is_string(msg.message)
    end
    c:send("\1\2", true)
    repeat msg = recv(c) until msg.type ~= "tick"
    assert.are.same({ "error", "binary" }, { msg.type, msg.error })
    -- Still subscribed to everything, still ticking.
    local t = expect(c, "tick")
    assert.are.same(snap.symbols, symbols_of(t.quotes))
    bye(c)
  end)

  it("serves its page on the same port", function()
    local status, headers, body = http_get(srv.port, "/")
    assert.are.equal(200, status)
    assert.are.equal("text/html; charset=utf-8", headers["content-type"])
    for _, needle in ipairs { 'id="quotes"', 'id="updates"', 'id="status"', '"/ticker"' } do
      assert.truthy(body:find(needle, 1, true), "not the ticker page: no " .. needle)
    end
  end)
end)
