--- Which of an app's functions LuaJIT may compile while the guard is on.
--
-- The guard (handler_timeout) stops a handler with a count hook, and code
-- LuaJIT has compiled checks no hooks (Debian's LuaJIT is built without
-- LUAJIT_ENABLE_CHECKHOOK). Compiled code can only run long in a loop: a
-- `for`, `while`, `repeat` or backward `goto` in its bytecode, or a tail
-- call, which LuaJIT turns into a loop when it recurses. So a function
-- with none of them may stay compiled: it runs to its end or calls
-- something else, and what it calls is either compiled and loop-free too,
-- interpreted (where the hook reaches it), or C. A recursion through
-- plain calls grows the stack until it overflows. The functions with a
-- loop or a tail call run in LuaJIT's interpreter; a tail call is any
-- `return f(x)`, of a C function too, since the bytecode does not say
-- what f is. LuaJIT never records into such a function, nor returns into
-- one, within a trace: it gives up the trace (JIT compilation disabled
-- for function), so none of its code is ever compiled.
--
--   local jit_guard = require "duplex.jit_guard"
--   jit_guard.interpret_loops(fn)   -- fn and every function defined in it
--
-- Opcode numbers differ from one LuaJIT to another, so they are found by
-- compiling a few probes; when a probe does not read as expected, every
-- function of fn is interpreted, as jit.off(fn, true) does.
local M = {}

if not jit then
  function M.interpret_loops(fn) return fn end
  return M
end

local util = require "jit.util"
local bit = require "bit"
local band, rshift = bit.band, bit.rshift
local loadstring = loadstring or load

local MODE_C = 15 * 128     -- operand C's mode in the mode word (lj_bc.h: mode C << 7)
local JUMP = 13 * 128       -- BCMjump, as jit/bc.lua reads it

-- The instructions of a probe's main function: { op, jump, back } each
-- (back: a jump to itself or backward).
local function code(src)
  local f = assert(loadstring(src, "=probe"))
  local ins = {}
  for pc = 1, 1e6 do
    local i, mode = util.funcbc(f, pc)
    if not i then break end
    ins[#ins + 1] = { op = band(i, 0xff), jump = band(mode, MODE_C) == JUMP, back = rshift(i, 16) < 0x8000 }
  end
  return ins
end

-- The opcode of the one instruction of src that jumps backward, or nil.
local function backward(src)
  local op
  for _, i in ipairs(code(src)) do
    if i.jump and i.back then
      if op then return nil end
      op = i.op
    end
  end
  return op
end

-- { loop = set of opcodes that loop, tail = set of tail calls } or nil.
local function calibrate()
  local forl = backward("for i = 1, 2 do end")
  local iterl = backward("for k in next, {} do end")
  local rep = code("repeat until g")        -- LOOP, GGET, ISF, JMP back
  local callt = code("return g()")          -- GGET, CALLT
  local callmt = code("return g(...)")      -- GGET, VARG, CALLMT
  local loop, jmp = rep[1], rep[#rep - 1]
  callt, callmt = callt[#callt].op, callmt[#callmt].op
  if not (forl and iterl and loop.jump and jmp.jump and jmp.back and loop.op ~= jmp.op
          and callmt + 1 == callt) then
    return nil
  end
  local t = { loop = {}, tail = { [callt] = true, [callmt] = true } }
  -- FORL, ITERL and LOOP each have their interpreted and compiled forms
  -- right after them (IFORL, JFORL, ...: lj_bc.h asserts it); the compiled
  -- ones hold a trace number where the others hold the jump
  for _, op in ipairs { forl, iterl, loop.op } do
    for k = 0, 2 do t.loop[op + k] = true end
  end
  return t
end

local ok, ops = pcall(calibrate)
if not ok then ops = nil end

-- True when the function or prototype f has a loop or a tail call.
local function may_loop(f)
  for pc = 1, 1e9 do
    local ins, mode = util.funcbc(f, pc)
    if not ins then return false end
    local op = band(ins, 0xff)
    if ops.loop[op] or ops.tail[op] then return true end
    if band(mode, MODE_C) == JUMP and rshift(ins, 16) < 0x8000 then return true end
  end
end

-- Each prototype of the tree under f (f's and those of the functions
-- defined in it): jit.off for one that may loop.
local function mark(f)
  if may_loop(f) then jit.off(f) end
  local info = util.funcinfo(f)
  if not info.children then return end
  for k = -1, -1e9, -1 do
    local v = util.funck(f, k)
    if v == nil then break end
    if type(v) == "proto" then mark(v) end
  end
end

--- Makes the functions of fn (fn and every one defined in it) that have a
-- loop or a tail call run in LuaJIT's interpreter; the others may be
-- compiled. Returns fn. (Not LuaJIT, or a C function: nothing.)
function M.interpret_loops(fn)
  if type(fn) ~= "function" or debug.getinfo(fn, "S").what == "C" then return fn end
  if ops then mark(fn) else jit.off(fn, true) end
  return fn
end

return M
