-- app:every and app:after, in process: the loop driven by the spec until
-- the condition holds or a deadline passes.
local duplex = require "duplex"   -- the in-process build: LUA_CPATH set by the Makefile
local socket = require "socket"

local function run_until(cond, seconds)
  local limit = socket.gettime() + (seconds or 3)
  while not cond() and socket.gettime() < limit do
    duplex.run("once")
  end
  return cond()
end

describe("timers #inprocess", function()
  local app
  before_each(function() app = duplex.app { port = 0 } end)
  after_each(function() app:close() end)

  it("every: runs repeatedly, at about its interval, until stopped", function()
    local times = {}
    local start = socket.gettime()
    local t = app:every(0.02, function() times[#times + 1] = socket.gettime() end)
    assert.is_true(run_until(function() return #times >= 5 end))
    t:stop()
    assert.is_false(t:active())
    local n = #times
    -- A late run is caught up at once (libev moves a missed timer to now),
    -- so two runs may come closer than the interval under load; but run k
    -- is never due before k intervals have passed since the start.
    local spent = times[n] - start
    assert.is_true(spent >= 0.02 * n * 0.9, "too fast: " .. spent)
    -- stopped: an after() well past the interval sees no more runs
    local done = false
    app:after(0.1, function() done = true end)
    assert.is_true(run_until(function() return done end))
    assert.are.equal(n, #times)
  end)

  it("after: counts from when it is made, not from the loop's last wake-up", function()
    duplex.run("nowait")
    local busy_until = socket.gettime() + 0.2   -- a long handler, say
    while socket.gettime() < busy_until do end
    local made, fired = socket.gettime(), nil
    app:after(0.1, function() fired = socket.gettime() end)
    assert.truthy(run_until(function() return fired end))
    assert.is_true(fired - made >= 0.09, "fired early: " .. (fired - made))
  end)

  it("after: runs once; stop() before it is due cancels it", function()
    local ran, cancelled = 0, 0
    app:after(0.01, function() ran = ran + 1 end)
    local c = app:after(0.01, function() cancelled = cancelled + 1 end)
    c:stop()
    local later = false
    app:after(0.08, function() later = true end)
    assert.is_true(run_until(function() return later end))
    assert.are.equal(1, ran)
    assert.are.equal(0, cancelled)
  end)

  it("an error in a timer is logged and does not stop it", function()
    local runs = 0
    local t = app:every(0.01, function()
      runs = runs + 1
      error("tick failed")
    end)
    assert.is_true(run_until(function() return runs >= 3 end))
    t:stop()
  end)

  it("shutdown stops the app's timers", function()
    local runs = 0
    local t = app:every(0.01, function() runs = runs + 1 end)
    assert.is_true(run_until(function() return runs >= 1 end))
    app:shutdown()
    assert.is_false(t:active())
  end)

  it("raises on misuse, naming the argument", function()
    assert.has_error(function() app:every(-1, print) end)
    assert.has_error(function() app:every(0, print) end)
    assert.has_error(function() app:after(1, "nope") end,
      "bad argument #2 to 'after' (function expected, got string)")
  end)
end)
