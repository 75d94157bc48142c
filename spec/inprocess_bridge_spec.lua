-- scripts/bridge.lua: topics of cluster A published into cluster B by a
-- reconnecting duplex.1 client. A runs in this process (a ticker on
-- "t:tick", through a TCP proxy that can cut the link); B is the bridge
-- itself, run by `duplex run` as a user would; a subscriber on B must get
-- every publication of A once, in order, though the link drops.

local duplex = require "duplex"
local dt = require "duplex.test"
local server = require "spec.support.server"
local tcp_proxy = require "spec.support.tcp_proxy"

-- Cluster A: "t:tick" publishes 1, 2, 3, ... every 5 ms; its /live route
-- consents to "t:" topics; conns holds its connections (newest last).
local function cluster_a(conns)
  local app = duplex.app { history = { ["t:"] = { size = 10000 } } }
  app:ws("/live", {
    open = function(ws) conns[#conns + 1] = ws end,
    subscribe = function(_, topic) return topic:find("^t:") ~= nil, "no such topic" end,
  })
  return app
end

describe("scripts/bridge.lua #inprocess", function()
  local a, b, proxy, sub
  after_each(function()
    if sub then sub:close() sub = nil end
    if b then b:stop() b = nil end
    if proxy then proxy:stop() proxy = nil end
    if a then a:stop() a = nil end
  end)

  local function run(workers)
    local conns = {}
    a = dt.start(cluster_a(conns))
    proxy = tcp_proxy.start(a.port)
    local args = workers and { "--workers", tostring(workers) } or nil
    b = server.start("scripts/bridge.lua", args, { env = {
      BRIDGE_FROM = "ws://127.0.0.1:" .. proxy.port .. "/live", BRIDGE_TOPICS = "t:tick,t:other" } })
    assert.is_true(dt.wait(function() return #conns == 1 end), "the bridge linked to A")

    local n = 0
    local ticker = a.app:every(0.005, function()
      n = n + 1
      a.app:publish("t:tick", tostring(n))
    end)
    local got, refused = {}, {}
    sub = duplex.connect("ws://127.0.0.1:" .. b.port .. "/live", {}, { reconnect = { min = 0.05, max = 0.1 } })
    sub:subscribe("t:tick", { message = function(_, data, position) got[#got + 1] = { data, position } end })
    sub:subscribe("t:secret", { refused = function(_, reason) refused[#refused + 1] = reason end })
    local function more(k)
      local want = #got + k
      assert.is_true(dt.wait(function() return #got >= want end), "publications reach B's subscriber")
    end
    more(10)
    assert.are.same({ "not bridged" }, refused)

    proxy:cut()                                       -- the link drops: TCP cut, no close frame
    assert.is_true(dt.wait(function() return #conns == 2 end), "the bridge linked again")
    more(10)
    conns[#conns]:close(1011, "internal error")       -- and A fails it
    assert.is_true(dt.wait(function() return #conns == 3 end), "the bridge linked again")
    more(10)
    ticker:stop()
    assert.is_true(dt.wait(function() return got[#got][1] == tostring(n) end), "the last publication arrived")
    dt.wait(function() return false end, 0.05)

    assert.are.equal(3, #conns, "one link at a time")
    local first = tonumber(got[1][1])
    assert.are.equal(n - first + 1, #got, "no gap, no duplicate")
    for i, m in ipairs(got) do
      assert.are.equal(tostring(first + i - 1), m[1])
      if i > 1 then
        assert.are.equal(tonumber(got[i - 1][2]:match(":(%d+)$")) + 1, tonumber(m[2]:match(":(%d+)$")))
      end
    end
    -- B stops while this process (A) does not run its loop: cut the link
    -- first, or the bridge's close would wait for A's answer in vain.
    sub:close()
    assert.is_true(dt.wait(function() return sub:state() == "closed" end))
    sub = nil
    proxy:stop()
    proxy = nil
    local log = b:stop()
    b = nil
    return log
  end

  it("passes every publication of A to B's subscribers once, in order, though the link drops twice", function()
    local log = run()
    assert.truthy(log:find("reconnecting: the server closed TCP without a close frame", 1, true), log)
    assert.truthy(log:find("reconnecting: closed by the server (1011: internal error)", 1, true), log)
    assert.falsy(log:find("missed", 1, true), log)
  end)

  it("links from one worker only under --workers", function()
    run(2)
  end)
end)
