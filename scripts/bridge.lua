-- Bridge: topics of one duplex cluster (A) published into another (B),
-- every publication once and in order, across drops of the link to A.
--
--   BRIDGE_FROM=ws://a.example:8080/live BRIDGE_TOPICS=ticker,news \
--     duplex run scripts/bridge.lua --port 8081 [--broker redis://b.example:6379/0]
--
-- The bridge is a node of B: what it publishes reaches B's subscribers on
-- every node through B's broker (or, alone, its own). Pages and clients
-- of B subscribe to the bridged topics at /live (duplex.js's
-- c.subscribe, the Lua client's c:subscribe), and resume them from B's
-- own history. On A, the route at BRIDGE_FROM must consent to the topics
-- (its subscribe(ws, topic) handler returns true).
--
-- The link to A is one reconnecting client speaking duplex.1: after a
-- drop it subscribes again from the last position it heard, and A sends
-- what it missed, in order, before new publications. When A cannot (its
-- history was lost: "epoch"; or trimmed: "too_old") the link goes on with
-- new publications and a line on stderr says what B's clients missed.
-- Under --workers N only the first worker links; a reload keeps the link.
local duplex = require "duplex"

local from = os.getenv("BRIDGE_FROM")
if not from then error("BRIDGE_FROM: the ws:// URL of a route of cluster A is missing", 0) end
local topics = {}
for topic in (os.getenv("BRIDGE_TOPICS") or ""):gmatch("[^,%s]+") do topics[#topics + 1] = topic end
if #topics == 0 then error("BRIDGE_TOPICS: a list of topics (a,b,c) is missing", 0) end

local app = duplex.app { history = { size = 1000 } }
app.bridge = { app = app }               -- the link publishes into the app serving now

local bridged = {}
for _, topic in ipairs(topics) do bridged[topic] = true end
app:ws("/live", { subscribe = function(_, topic) return bridged[topic] == true, "not bridged" end })

local function link(bridge)
  local c = duplex.connect(from, {
    state = function(_, state, d)
      if state ~= "connecting" then
        duplex.log(state == "open" and "info" or "warn", "bridge_" .. state,
          ("link to %s %s%s"):format(from, state, d.reason and (": " .. d.reason) or ""))
      end
    end,
  }, { reconnect = true })
  for _, topic in ipairs(topics) do
    c:subscribe(topic, {
      message = function(_, data, _, binary) bridge.app:publish(topic, data, binary) end,
      lost = function(_, reason)
        duplex.log("warn", "bridge_lost", ("%s: publications of A missed while the link was down (%s)")
          :format(topic, reason))
      end,
    })
  end
  return c
end

if (duplex.worker() or 1) == 1 then
  app:after(0, function() if not app.bridge.link then app.bridge.link = link(app.bridge) end end)
end
app:on_reload(function(previous)
  app.bridge = previous.bridge            -- the same link, its positions, into the new app
  app.bridge.app = app
end)
app:on_shutdown(function() if app.bridge.link then app.bridge.link:close(1001) end end)

return app
