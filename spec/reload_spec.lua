-- Hot reload of the app script in the running process (SIGHUP, --watch):
-- open connections stay open, keep ws.data and their topics, and run the
-- new handlers from their next event; new routes are served and dropped
-- ones refuse new upgrades; a reload(previous) hook takes the old script's
-- state; a script that fails to load or whose hook raises is refused with
-- one log line and the old code goes on; no event is lost under load.

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"
local socket = require "socket"

-- A handlers-table app: "<version>:<n>:<data>" back, n counting this
-- connection's messages in ws.data; "pub <text>" publishes to the topic
-- "room" that every connection joins; the script's table keeps `count`,
-- every message counted, which a reload hook may carry over.
local function echo_script(version, o)
  o = o or {}
  return ([[
local M = { count = 0 }
M.path = %q
M.open = function(ws) ws.data.n = 0; ws:subscribe("room") end
M.message = function(ws, data)
  ws.data.n = ws.data.n + 1
  M.count = M.count + 1
  local text = data:match("^pub (.*)$")
  if text then ws:publish("room", %q .. ":" .. text, false, true) return end
  if data == "count" then ws:send(%q .. ":count=" .. M.count) return end
  ws:send(%q .. ":" .. ws.data.n .. ":" .. data)
end
%s
return M
]]):format(o.path or "/", version, version, version, o.extra or "")
end

local write = h.write_file

local function expect(conn, text)
  local op, data = conn:read_message(5)
  assert(op, "expected " .. text .. ", got " .. tostring(data))
  assert.are.equal(text, data)
end

describe("hot reload", function()
  local dir, script
  before_each(function()
    dir = h.tmpdir()
    script = dir .. "/app.lua"
  end)
  after_each(function() h.remove_dir(dir) end)

  it("on SIGHUP runs the new handlers on open connections, which keep ws.data and topics", function()
    write(script, echo_script("v1"))
    local srv = server.start(script)
    finally(function() srv:kill() end)
    local a, b = h.open(srv.port), h.open(srv.port)
    assert(a:send_text("x"))
    expect(a, "v1:1:x")
    write(script, echo_script("v2"))
    srv:signal("HUP")
    assert(srv:wait_log("duplex: reloaded " .. script .. " (SIGHUP)", 5, true), srv:log())
    assert(a:send_text("y"))
    expect(a, "v2:2:y")                        -- ws.data.n went on from 1
    assert(a:send_text("pub hello"))           -- both still in the room
    expect(a, "v2:hello")
    expect(b, "v2:hello")
    local fresh = h.open(srv.port)
    assert(fresh:send_text("z"))
    expect(fresh, "v2:1:z")
    for _, c in ipairs { a, b, fresh } do h.close_cleanly(c) end
    srv:stop()
  end)

  it("with --watch reloads when the script changes", function()
    write(script, echo_script("v1"))
    local srv = server.start(script, { "--watch" })
    finally(function() srv:kill() end)
    local a = h.open(srv.port)
    assert(a:send_text("x"))
    expect(a, "v1:1:x")
    write(script, echo_script("v2"))
    assert(srv:wait_log("duplex: reloaded " .. script .. " (changed)", 5, true), srv:log())
    assert(a:send_text("y"))
    expect(a, "v2:2:y")
    h.close_cleanly(a)
    srv:stop()
  end)

  it("refuses a script that does not load, or raises, or whose hook raises; the old code goes on", function()
    write(script, echo_script("v1"))
    local srv = server.start(script)
    finally(function() srv:kill() end)
    local a = h.open(srv.port)
    local cases = {
      { "return {", "cannot load" },
      { "error('broken on purpose')", "broken on purpose" },
      { echo_script("v2", { extra = "M.reload = function() error('hook refuses') end" }), "hook refuses" },
      { "return 42", "must return a table of handlers or an app" },
    }
    for i, case in ipairs(cases) do
      write(script, case[1])
      srv:signal("HUP")
      local deadline = wsclient.now() + 5
      while srv:count_log("reload of " .. script .. " (SIGHUP) refused", true) < i and wsclient.now() < deadline do
        socket.sleep(0.01)
      end
      assert.are.equal(i, srv:count_log("refused, the running code goes on", true), srv:log())
      assert.truthy(srv:log():find(case[2], 1, true), srv:log())
      assert(a:send_text("still " .. i))
      expect(a, "v1:" .. i .. ":still " .. i)
    end
    -- one line each
    assert.are.equal(#cases, srv:count_log("duplex: reload of", true))
    h.close_cleanly(a)
    srv:stop()
  end)

  it("hands the old script's state to reload(previous)", function()
    write(script, echo_script("v1"))
    local srv = server.start(script)
    finally(function() srv:kill() end)
    local a = h.open(srv.port)
    for i = 1, 3 do
      assert(a:send_text("m" .. i))
      expect(a, "v1:" .. i .. ":m" .. i)
    end
    write(script, echo_script("v2", { extra = "M.reload = function(previous) M.count = previous.count end" }))
    srv:signal("HUP")
    assert(srv:wait_log("duplex: reloaded", 5, true), srv:log())
    assert(a:send_text("count"))
    expect(a, "v2:count=4")                    -- 3 before the reload, and this one
    h.close_cleanly(a)
    srv:stop()
  end)

  it("serves a new route, refuses new upgrades to a dropped one, keeps its open connections", function()
    write(script, echo_script("v1", { path = "/old" }))
    local srv = server.start(script)
    finally(function() srv:kill() end)
    local kept = h.open(srv.port, "/old")
    write(script, echo_script("v2", { path = "/new" }))
    srv:signal("HUP")
    assert(srv:wait_log("duplex: reloaded", 5, true), srv:log())
    local conn, resp = wsclient.connect(srv.port, "/old")
    assert.are.equal(404, resp and resp.status, tostring(resp))
    if conn then conn:close() end
    local new = h.open(srv.port, "/new")
    assert(new:send_text("n"))
    expect(new, "v2:1:n")
    assert(kept:send_text("k"))                -- the old route's handlers, still
    expect(kept, "v1:1:k")
    h.close_cleanly(kept)
    h.close_cleanly(new)
    srv:stop()
  end)

  it("loses no event across reloads under load", function()
    write(script, echo_script("v1"))
    -- 2000 messages a connection, as fast as they go: the rate limit is off
    -- (the flags hold across reloads).
    local srv = server.start(script, server.UNLIMITED)
    finally(function() srv:kill() end)
    local conns, expected = {}, {}
    for i = 1, 4 do conns[i], expected[i] = h.open(srv.port), 1 end
    local N, sent, got, versions = 2000, 0, 0, {}
    -- Replies on connection i are "<version>:<n>:m<n>", n = 1, 2, ... in order.
    local function take(i, timeout)
      local op, data = conns[i]:read_message(timeout)
      if not op then
        assert.are.equal("timeout", data)
        return false
      end
      local v, n, text = data:match("^(v%d):(%d+):(.*)$")
      assert(v, "bad reply on connection " .. i .. ": " .. tostring(data))
      assert.are.equal(expected[i], tonumber(n), "reply out of order or lost on connection " .. i)
      assert.are.equal("m" .. n, text)
      expected[i] = expected[i] + 1
      versions[v] = true
      got = got + 1
      return true
    end
    while sent < N do
      sent = sent + 1
      for _, c in ipairs(conns) do assert(c:send_text("m" .. sent)) end
      if sent % 250 == 0 then                  -- 8 reloads, v1 and v2 in turn
        write(script, echo_script(sent % 500 == 0 and "v1" or "v2"))
        srv:signal("HUP")
      end
      for i = 1, #conns do while take(i, 0) do end end
    end
    for i = 1, #conns do
      while expected[i] <= N do assert(take(i, 5), "connection " .. i .. " stopped at " .. expected[i]) end
    end
    assert.are.equal(N * #conns, got)           -- events lost: 0
    assert.is_true(versions.v1 and versions.v2)
    -- Signals sent faster than the server takes them coalesce: at least
    -- two of the 8 reloads ran (v1 to v2 and back).
    assert.is_true(srv:count_log("duplex: reloaded", true) >= 2, srv:log())
    for _, c in ipairs(conns) do h.close_cleanly(c) end
    srv:stop()
  end)
end)
