-- On LuaJIT the messages one read brings in reach their handler from a
-- Lua loop that LuaJIT compiles with the handler inlined
-- (core/binding/batch_ffi.c), one loop per route; a route whose handler
-- keeps the loop from being compiled goes back to the C path after a
-- trial of 256 batches. Either way every message is answered, in order.
-- (spec/batch_spec.lua checks what a batch means: errors, stops, closes.)

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"

local LUAJIT = jit ~= nil    -- busted runs on the VM the binary was built for

local function stats(port)
  local conn = h.open(port, "/stats")
  assert(conn:send_text("stats"))
  local _, got = conn:read_message(3)
  h.close_cleanly(conn)
  local c, a = got:match("^compiled=(%d+) aborted=(%d+)$")
  return tonumber(c), tonumber(a), got
end

-- rounds x 8 messages written in one go each (one batch, or a few),
-- every echo checked in order.
local function rounds(conn, n, tag)
  for r = 1, n do
    local frames = {}
    for i = 1, 8 do frames[i] = wsclient.frame { opcode = 1, payload = tag .. r .. "." .. i } end
    assert(conn:send(table.concat(frames)))
    for i = 1, 8 do h.expect_message(conn, 1, tag .. r .. "." .. i) end
  end
end

-- What called the handler of "caller", sent behind another message in
-- one write (so that both are one batch).
local function caller(conn)
  assert(conn:send(wsclient.frame { opcode = 1, payload = "before" } .. wsclient.frame { opcode = 1, payload = "caller" }))
  h.expect_message(conn, 1, "before")
  local _, got = conn:read_message(3)
  return got
end

describe("a read's messages on LuaJIT", function()
  local srv
  before_each(function() srv = server.start("spec/fixtures/batch_loop.lua", { "--handler-timeout", "0.3" }) end)
  after_each(function() srv:stop() end)

  it("reach a handler with no loop from a compiled loop, every one in order", function()
    local conn = h.open(srv.port, "/plain")
    rounds(conn, 400, "p")
    local from = caller(conn)
    h.close_cleanly(conn)
    local compiled, _, got = stats(srv.port)
    if LUAJIT then
      assert.is_true(compiled >= 1, "no batch loop compiled: " .. got)
      assert.are.equal("=duplex.batch", from)
    else
      assert.are.equal("none", got)
      assert.are.equal("=[C]", from)
    end
  end)

  it("from a compiled loop still meet the guard: one that never returns is stopped, 1011", function()
    local conn = h.open(srv.port, "/plain")
    rounds(conn, 400, "p")
    assert(conn:send(wsclient.frame { opcode = 1, payload = "before" } .. wsclient.frame { opcode = 1, payload = "spin" }
      .. wsclient.frame { opcode = 1, payload = "after" }))
    h.expect_message(conn, 1, "before")
    h.expect_close(conn, 1011, nil, { timeout = 5 })
    assert.truthy(srv:wait_log("stopped message handler", 3, true), srv:log())
    local other = h.open(srv.port, "/plain")
    rounds(other, 2, "o")
    h.close_cleanly(other)
  end)

  it("go back to the C path for a handler that loops, after its trial, every one in order", function()
    local conn = h.open(srv.port, "/loops")
    rounds(conn, 20, "k")
    local during = caller(conn)                   -- on trial: the loop
    rounds(conn, 400, "l")                        -- past the trial: the C path from then on
    local after = caller(conn)
    local _, aborted, got = stats(srv.port)
    h.close_cleanly(conn)
    if LUAJIT then
      assert.is_true(aborted >= 1, "the loop was never tried: " .. got)
      assert.are.equal("=duplex.batch", during)
    else
      assert.are.equal("none", got)
      assert.are.equal("=[C]", during)
    end
    assert.are.equal("=[C]", after)
  end)
end)
