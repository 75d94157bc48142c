-- duplex.jit_guard: under the guard, LuaJIT compiles the functions that
-- have no loop and no tail call, and interprets the others (where the
-- guard's hook reaches them). Run in the busted process, on its VM.

local jit_guard = require "duplex.jit_guard"

-- Runs a loop, compiled for the occasion, that calls f (n, i) 1 000
-- times, and returns how many traces LuaJIT finished that started in
-- that loop or in f: none when f may not be compiled (LuaJIT gives up a
-- trace that enters such a function, and starts none in it), at least
-- one when it may (the loop's, with f inlined, or one of a loop in f).
local runs = 0
local function traces_through(f)
  local util = require "jit.util"
  runs = runs + 1
  local name = "=drive" .. runs                 -- a new prototype each time: none blacklisted
  local drive = assert((loadstring or load)("local f = ... for i = 1, 1000 do f(3, i) end", name))
  local n, started = 0, {}
  local function watch(what, tr, func)
    if what == "start" then
      started[tr] = func == f or util.funcinfo(func).source == name
    elseif what == "stop" and started[tr] then
      n = n + 1
    end
  end
  jit.attach(watch, "trace")
  drive(f)
  jit.attach(watch)
  return n
end

describe("duplex.jit_guard.interpret_loops", function()
  if not jit then
    it("leaves a function alone on Lua 5.4", function()
      local f = function() while false do end end
      assert.are.equal(f, jit_guard.interpret_loops(f))
    end)
    return
  end

  local function countdown(n) if n > 0 then return countdown(n - 1) end return n end
  local loops = {
    ["a numeric for"] = function(n) local s = 0 for i = 1, n do s = s + i end return s end,
    ["a while"] = function(n) local i = 0 while i < n do i = i + 1 end return i end,
    ["a repeat"] = function(n) local i = 0 repeat i = i + 1 until i >= n return i end,
    ["a backward goto"] = function(n)
      local i = 0
      ::again::
      i = i + 1
      if i < n then goto again end
      return i
    end,
    ["a generic for"] = function(n) local s = 0 for _, v in ipairs { n, n } do s = s + v end return s end,
    ["a tail call"] = function(n) return countdown(n) end,
    ["a tail call of a C function"] = function(n) return tostring(n) end,
  }
  for what, f in pairs(loops) do
    it("interprets a function with " .. what, function()
      assert.are.equal(f, jit_guard.interpret_loops(f))
      assert.are.equal(0, traces_through(f))
    end)
  end

  it("leaves a function with none of them compiled", function()
    local f = function(n, i)
      if i % 2 == 0 then return n * 2 end
      local s = tostring(n)          -- not `return tostring(n)`: a tail call
      return s
    end
    jit_guard.interpret_loops(f)
    assert.is_true(traces_through(f) >= 1)
  end)

  it("marks the functions defined inside, each on its own", function()
    local function outer()
      local function plain(n, i) return n + i end
      local function loopy(n) local i = 0 while i < n do i = i + 1 end return i end
      return plain, loopy
    end
    jit_guard.interpret_loops(outer)
    local plain, loopy = outer()
    assert.is_true(traces_through(plain) >= 1)
    assert.are.equal(0, traces_through(loopy))
  end)

  it("leaves C functions alone", function()
    assert.are.equal(print, jit_guard.interpret_loops(print))
  end)
end)
