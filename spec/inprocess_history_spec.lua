-- History with positions, resume, and presence in one process (the memory
-- engine): an app run under duplex.test, real clients on the same loop.

local duplex = require "duplex"
local dt = require "duplex.test"

-- Publications on "feed:" topics reach clients as "position|data"; a
-- client says "resume <topic> <position>" or "last <topic> <n>" to catch
-- up, and hears "recovered ..." before what it missed.
local function feed_app(opts)
  opts = opts or {}
  local app = duplex.app {
    history = {
      ["feed:"] = { size = opts.size or 200, ttl = opts.ttl or 0,
        frame = function(_, data, pos) return pos .. "|" .. data end },
    },
  }
  local function recovered(ws, topic, r)
    ws:send(("recovered %s %s %s %d %s"):format(topic, tostring(r.ok), r.reason or "-", r.missed,
      r.position or "-"))
  end
  app:ws("/", {
    message = function(ws, data)
      local verb, topic, arg = data:match("^(%S+) (%S+) ?(.*)$")
      if verb == "sub" then
        ws:subscribe(topic)
      elseif verb == "resume" then
        ws:subscribe(topic, { since = arg, recovered = recovered })
      elseif verb == "last" then
        ws:subscribe(topic, { last = tonumber(arg), recovered = recovered })
      elseif verb == "pub" then
        ws:publish(topic, arg, false, true)
      elseif verb == "unsub" then
        ws:send(tostring(ws:unsubscribe(topic)))
      end
    end,
  })
  return app
end

-- The position and data of a framed publication.
local function split(msg)
  local pos, data = msg:match("^([0-9a-z]+:%d+)|(.*)$")
  assert(pos, "not a positioned publication: " .. tostring(msg))
  return pos, data
end

local function offset(pos) return tonumber(pos:match(":(%d+)$")) end
local function epoch(pos) return pos:match("^([0-9a-z]+):") end

describe("history and resume #inprocess", function()
  local srv
  after_each(function() if srv then srv:stop() srv = nil end end)

  it("numbers the publications of a topic with history, one epoch, offsets from 1", function()
    local app = feed_app()
    srv = dt.start(app)
    local a = srv:client("/")
    a:send("sub feed:x")
    local pub = srv:client("/")
    dt.wait(function() return app:subscribers("feed:x") == 1 end)
    for i = 1, 5 do pub:send("pub feed:x m" .. i) end
    local e
    for i = 1, 5 do
      local pos, data = split(a:receive())
      assert.are.equal("m" .. i, data)
      assert.are.equal(i, offset(pos))
      e = e or epoch(pos)
      assert.are.equal(e, epoch(pos))
    end
    -- a topic without a rule goes as it is
    a:send("sub plain")
    dt.wait(function() return app:subscribers("plain") == 1 end)
    pub:send("pub plain hello")
    assert.are.equal("hello", (a:receive()))
    local st = app:stats()
    assert.are.same({ 6, 5, 2, 1, 0 }, { st.broker_published, st.broker_received, st.broker_topics,
      st.broker_link_up, st.broker_lost })
  end)

  it("gives a client that comes back exactly what it missed, in order, then new ones", function()
    local app = feed_app()
    srv = dt.start(app)
    local a = srv:client("/")
    a:send("sub feed:t")
    local pub = srv:client("/")
    dt.wait(function() return app:subscribers("feed:t") == 1 end)
    pub:send("pub feed:t before")
    local last = split(a:receive())
    a:close()
    for i = 1, 100 do pub:send("pub feed:t missed" .. i) end
    local b = srv:client("/")
    dt.wait(function() return app:stats().published == 101 end)
    b:send("resume feed:t " .. last)
    local report = b:receive()
    assert.are.equal("recovered feed:t true - 100 " .. epoch(last) .. ":101", report)
    for i = 1, 100 do
      local pos, data = split(b:receive())
      assert.are.equal("missed" .. i, data)
      assert.are.equal(offset(last) + i, offset(pos))
    end
    pub:send("pub feed:t after")
    local pos, data = split(b:receive())
    assert.are.same({ "after", 102 }, { data, offset(pos) })
    b:expect_nothing(0.1)
  end)

  it("says plainly when a position cannot be recovered: another epoch, or trimmed away", function()
    local app = feed_app({ size = 10 })
    srv = dt.start(app)
    local pub = srv:client("/")
    local a = srv:client("/")
    a:send("sub feed:z")
    dt.wait(function() return app:subscribers("feed:z") == 1 end)
    pub:send("pub feed:z one")
    local first = split(a:receive())
    for i = 1, 20 do pub:send("pub feed:z n" .. i) end
    for _ = 1, 20 do a:receive() end

    local b = srv:client("/")
    b:send("resume feed:z " .. first)           -- 20 missed, 10 kept
    assert.are.equal("recovered feed:z false too_old 0 " .. epoch(first) .. ":21", b:receive())
    pub:send("pub feed:z live")                 -- subscribed all the same, from now on
    local _, data = split(b:receive())
    assert.are.equal("live", data)

    local c = srv:client("/")
    c:send("resume feed:z zzzz0000:3")          -- an epoch this process never gave
    assert.truthy(c:receive():find("^recovered feed:z false epoch 0 "))
  end)

  it("catches up a newcomer on the last n publications", function()
    local app = feed_app()
    srv = dt.start(app)
    local pub = srv:client("/")
    for i = 1, 8 do pub:send("pub feed:l x" .. i) end
    dt.wait(function() return app:stats().published == 8 end)
    local a = srv:client("/")
    a:send("last feed:l 3")
    assert.truthy(a:receive():find("^recovered feed:l true %- 3 "))
    for i = 6, 8 do
      local _, data = split(a:receive())
      assert.are.equal("x" .. i, data)
    end
  end)

  it("forgets publications older than ttl", function()
    local app = feed_app({ ttl = 0.3 })
    srv = dt.start(app)
    local pub = srv:client("/")
    local a = srv:client("/")
    a:send("sub feed:e")
    dt.wait(function() return app:subscribers("feed:e") == 1 end)
    pub:send("pub feed:e old")
    local pos = split(a:receive())
    pub:send("pub feed:e older")
    a:receive()
    dt.wait(function() return false end, 0.6)
    local b = srv:client("/")
    b:send("resume feed:e " .. pos)
    assert.truthy(b:receive():find("^recovered feed:e false too_old"))
  end)

  it("refuses bad subscribe options with an error naming them", function()
    local app = duplex.app { history = { size = 5 } }
    local errors = {}
    app:ws("/", { open = function(ws)
      for _, opts in ipairs({ { since = "nope" }, { last = 0 }, { since = "a:1", last = 2 },
        { bogus = 1 }, { presence = "x" }, { recovered = 3 } }) do
        local ok, err = pcall(ws.subscribe, ws, "t", opts)
        errors[#errors + 1] = not ok and err or "accepted"
      end
    end })
    srv = dt.start(app)
    srv:client("/")
    dt.wait(function() return #errors == 6 end)
    for i, pat in ipairs({ "since must be a position", "last must be a count", "exclude each other",
      "unknown option 'bogus'", "presence must be a table", "recovered must be a function" }) do
      assert.truthy(errors[i]:find(pat, 1, true), errors[i])
    end
    assert.has_error(function() duplex.app { history = { size = 0 } } end)
    assert.has_error(function() duplex.app { history = { ["a:"] = { size = 3, oops = 1 } } } end)
  end)
end)

describe("the recovered callback #inprocess", function()
  local srv
  after_each(function() if srv then srv:stop() srv = nil end end)

  -- An app whose recovered callback does what the client's message says
  -- ("<what> <position>"), answered at once by the memory engine, from
  -- inside ws:subscribe in the message handler.
  local function edge_app(log)
    local app = duplex.app { history = { ["feed:"] = { size = 50,
      frame = function(_, data, pos) return pos .. "|" .. data end } } }
    app:ws("/", { message = function(ws, data)
      local what, since = data:match("^(%S+) ?(.*)$")
      if what == "sub" then ws:subscribe("feed:r") return end
      ws:subscribe("feed:r", { since = since, recovered = function(w, _, r)
        if what == "raise" then error("boom in recovered") end
        if what == "close-server" then
          local ok, err = pcall(app.close, app)
          log[#log + 1] = tostring(ok) .. " " .. tostring(err)
        end
        if what == "close-ws" then w:close(4000, "bye") end
        if what == "publish" then app:publish("feed:r", "during") end
        w:send("recovered " .. tostring(r.ok) .. " " .. r.missed)
      end })
    end })
    return app
  end

  local function first_position(app)
    local c = srv:client("/")
    c:send("sub")
    dt.wait(function() return app:subscribers("feed:r") == 1 end)
    app:publish("feed:r", "m1")
    local pos = split(c:receive())
    c:close()
    return pos
  end

  it("that raises: its connection closed 1011, the server serves on", function()
    local log = {}
    local app = edge_app(log)
    srv = dt.start(app)
    local pos = first_position(app)
    local c = srv:client("/")
    c:send("raise " .. pos)
    c:expect_close(1011)
    local d = srv:client("/")
    d:send("ok " .. pos)
    assert.are.equal("recovered true 0", d:receive())
  end)

  it("cannot close the server under it: a clear error, nothing freed under the engine", function()
    local log = {}
    local app = edge_app(log)
    srv = dt.start(app)
    local pos = first_position(app)
    local c = srv:client("/")
    c:send("close-server " .. pos)
    assert.are.equal("recovered true 0", c:receive())
    assert.truthy(log[1]:find("^false .*close it from a timer"), log[1])
    app:publish("feed:r", "after")
    assert.are.equal("after", select(2, split(c:receive())))
  end)

  it("may close its connection: no catch-up is sent, nothing is left subscribed", function()
    local app = edge_app({})
    srv = dt.start(app)
    local pos = first_position(app)
    local c = srv:client("/")
    c:send("close-ws " .. pos)
    c:expect_close(4000)
    dt.wait(function() return app:subscribers("feed:r") == 0 end)
  end)

  it("may publish to the topic: what it published comes after the catch-up, once", function()
    local app = edge_app({})
    srv = dt.start(app)
    local pos = first_position(app)
    app:publish("feed:r", "m2")
    local c = srv:client("/")
    c:send("publish " .. pos)
    assert.are.equal("recovered true 1", c:receive())
    assert.are.equal("m2", select(2, split(c:receive())))
    assert.are.equal("during", select(2, split(c:receive())))
    app:publish("feed:r", "m4")
    assert.are.equal("m4", select(2, split(c:receive())))
  end)
end)

describe("presence #inprocess", function()
  local srv
  after_each(function() if srv then srv:stop() srv = nil end end)

  it("lists who is in a topic with their table, and tells join and leave once each", function()
    local events = {}
    local app = duplex.app {}
    app:on_join(function(topic, m) events[#events + 1] = "join " .. topic .. " " .. m.info.name end)
    app:on_leave(function(topic, m) events[#events + 1] = "leave " .. topic .. " " .. m.info.name end)
    app:ws("/", {
      open = function(ws) end,
      message = function(ws, data)
        local verb, arg = data:match("^(%S+) ?(.*)$")
        if verb == "join" then
          ws:subscribe("room", { presence = { name = arg, admin = arg == "ada", n = 7 } })
        elseif verb == "leave" then
          ws:unsubscribe("room")
        elseif verb == "watch" then
          ws:subscribe("room")
        elseif verb == "who" then
          app:presence("room", function(list)
            table.sort(list, function(x, y) return x.info.name < y.info.name end)
            local names = {}
            for _, m in ipairs(list) do
              names[#names + 1] = ("%s/%s/%s/%s"):format(m.info.name, tostring(m.info.admin), m.info.n,
                m.node == app:node() and "here" or m.node)
            end
            ws:send(table.concat(names, ","))
          end)
        end
      end,
    })
    srv = dt.start(app)
    local ada, bob, cy = srv:client("/"), srv:client("/"), srv:client("/")
    cy:send("watch")                -- events come where the topic has subscribers
    ada:send("join ada")
    bob:send("join bob")
    dt.wait(function() return #events == 2 end)
    cy:send("who")
    assert.are.equal("ada/true/7/here,bob/false/7/here", cy:receive())
    bob:send("leave")
    ada:close()
    dt.wait(function() return #events == 4 end)
    cy:send("who")
    assert.are.equal("", cy:receive())
    assert.are.same({ "join room ada", "join room bob", "leave room bob", "leave room ada" }, events)
  end)
end)
