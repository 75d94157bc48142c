-- The `duplex` command paces the collector: a heap under 2 MiB (LuaJIT:
-- 1 MiB) starts its next cycle once it has grown by about that much, not
-- each time it doubles; from there up, Lua's own 200 %; an app's own
-- pause is kept (core/binding/gc_pace.c). Seen from an app
-- (spec/fixtures/gc_pace.lua) that counts the cycles that end while it
-- makes garbage, one 100 KiB batch per message, as a server's handlers
-- would.

local server = require "spec.support.server"
local h = require "spec.support.helpers"

local FIXTURE = "spec/fixtures/gc_pace.lua"
local LUAJIT = _VERSION == "Lua 5.1"     -- the server runs on busted's VM
local CHURN_MESSAGES, CHURN_KIB = 200, 100      -- 20 MiB of garbage
local HEADROOM = LUAJIT and 1024 or 2048         -- KiB: gc_pace.c's DX_GC_HEADROOM_KIB

local function ask(conn, text)
  assert(conn:send_text(text))
  local _, got = conn:read_message(10)
  assert(got, "no answer to " .. text)
  return got
end

-- Makes 20 MiB of garbage; returns the cycles that ended and the peak heap (KiB).
local function churn(conn)
  assert.are.equal("reset", ask(conn, "reset"))
  local got
  for _ = 1, CHURN_MESSAGES do got = ask(conn, "churn " .. CHURN_KIB) end
  local cycles, peak = got:match("^cycles (%d+) peak (%d+)$")
  return tonumber(cycles), tonumber(peak)
end

describe("the collector of a small heap", function()
  local srv
  setup(function() srv = server.start(FIXTURE) end)
  teardown(function() srv:stop() end)

  it("runs a fraction of the cycles of Lua's own pause, holding at most about the headroom more; an app's own pause is kept", function()
    local conn = h.open(srv.port)
    local live = tonumber(ask(conn, "heap"))
    assert.is_true(live < 1024, "a small heap: " .. live .. " KiB")
    churn(conn)                                   -- the pace settles
    local paced, peak = churn(conn)
    assert.is_true(paced >= 2, ("%d cycles for 20 MiB"):format(paced))   -- it still collects
    assert.is_true(peak - live < HEADROOM + 1024, ("heap %d KiB, %d kept"):format(peak, live))
    local pause = tonumber(ask(conn, "pause"))
    assert.is_true(pause > 200 and pause <= 1000 and pause % 4 == 0, "pause " .. pause)
    -- The app sets Lua's own pause: kept, and the collector runs at it.
    assert.are.equal(tostring(pause), ask(conn, "setpause 200"))
    churn(conn)
    local own = churn(conn)
    assert.are.equal("200", ask(conn, "pause"))
    assert.is_true(own >= (LUAJIT and 2 or 3) * paced, ("%d cycles paced, %d at 200 %%"):format(paced, own))
    h.close_cleanly(conn)
  end)
end)

describe("the collector of a heap over the headroom", function()
  local srv
  setup(function() srv = server.start(FIXTURE) end)
  teardown(function() srv:stop() end)

  it("runs at Lua's own pause, 200 %, from the first cycle after it grew at once", function()
    local conn = h.open(srv.port)
    churn(conn)                                   -- small and paced first
    assert.are.equal("held", ask(conn, "hold 8192"))
    local _, peak = churn(conn)
    assert.are.equal("200", ask(conn, "pause"))
    local live = tonumber(ask(conn, "heap"))
    -- The cycle due when it grew had its start from the small heap's pause
    -- (up to 10 x); pulled down, the heap stays within Lua's 2 x.
    assert.is_true(peak < 2.5 * live, ("heap %d KiB, %d kept"):format(peak, live))
    h.close_cleanly(conn)
  end)
end)

describe("the collector under gc = \"generational\"", function()
  local srv
  setup(function() srv = server.start(FIXTURE, { "--gc", "generational" }) end)
  teardown(function() srv:stop() end)

  it("is not paced: the pause, of no use to it, is Lua's own (LuaJIT ignores the option: paced)", function()
    local conn = h.open(srv.port)
    churn(conn)
    churn(conn)
    local pause = tonumber(ask(conn, "pause"))
    if LUAJIT then
      assert.is_true(pause > 200 and pause <= 1000, "pause " .. pause)
    else
      assert.are.equal(200, pause)
    end
    h.close_cleanly(conn)
  end)
end)
