-- Ticker: a handful of made-up symbols whose prices walk at random, pushed
-- to every subscriber 10 times a second, one publish per topic per tick.
--
--   duplex run scripts/ticker.lua --port 8080
--   then open http://localhost:8080/ (the page: scripts/ticker/index.html),
--   http://localhost:8080/?symbols=DPLX,ZLIB for some symbols only, or
--   connect a WebSocket to ws://localhost:8080/ticker[?symbols=DPLX,ZLIB]
--
-- Every tick moves every price a little (a multiplicative random walk),
-- then publishes one message with all the quotes to the topic "ticker",
-- and one per symbol, with its quote alone, to the symbol's topic
-- ("ticker:DPLX", ...): the server frames each message once however many
-- clients receive it. Every topic keeps its last 600 ticks (a minute)
-- for a page that reconnects to resume from (duplex's history).
--
-- Two kinds of client:
--
-- * A plain WebSocket client is subscribed by the server on connect (to
--   "ticker", or to the topics of ?symbols=) and gets a snapshot at once.
-- * A page with /duplex.js (its connection speaks the subprotocol
--   duplex.1) is subscribed to nothing and sent nothing on connect: it
--   subscribes itself to "ticker" or to symbols' topics (c.subscribe,
--   which the route's subscribe handler allows for these topics only),
--   asks for a snapshot with {"type":"snapshot"}, and after a reconnect
--   duplex.js resumes each topic from the last tick the page got: the ticks
--   it missed come in order, none twice, before new ones. Ticks that come
--   before the snapshot or with a `tick` not after its one are already in
--   it; when a topic cannot be resumed (lost(): the server restarted, or
--   the page was away for longer than the history reaches) the page asks
--   for a snapshot again.
--
-- Protocol: every message, both ways, is one JSON object in a text message,
-- with a "type". Prices are numbers with two decimals; `time` is
-- milliseconds since 1970 (server clock); `tick` counts ticks from 1.
--
-- client -> server
--   {"type":"subscribe","symbols":["DPLX","ZLIB"]}   only these symbols
--   {"type":"subscribe"}                              every symbol again
--       either way a fresh snapshot follows
--   {"type":"snapshot"} or {"type":"snapshot","symbols":["DPLX"]}
--       a snapshot of every symbol (or of these), subscribing to nothing
--
-- server -> client
--   {"type":"snapshot","tick":41,"time":...,"rate":10,"symbols":["DPLX",...],
--    "quotes":[{"symbol":"DPLX","name":"Duplex Networks","price":101.25,
--               "change":1.25,"open":100,"high":101.9,"low":99.4},...]}
--       on connect (a plain client), after each subscribe and on
--       request: `symbols` lists every symbol the server has, `quotes`
--       the followed (or asked) ones, `open` is the price when the server
--       started, high and low since then
--   {"type":"tick","tick":42,"time":...,"quotes":[{"symbol":"DPLX","price":101.31,"change":1.31},...]}
--       every tick: all quotes on "ticker", one quote per message on a
--       symbol's topic; a plain client's ticks after a snapshot follow on
--       from its `tick` without gaps
--   {"type":"error","error":WORD,"message":"what was wrong"}
--       to the one client whose request was refused; nothing else changes.
--       WORD: bad_json, bad_message (not an object with a string "type"),
--       unknown_type, binary, bad_symbols (not a non-empty list of known
--       symbols; a bad ?symbols= in the URL earns it after the snapshot of
--       every symbol)
--   a page's topic (duplex.js): the same "tick" messages, as published

local duplex = require "duplex"
local cjson = require "cjson.safe"

local RATE = 10               -- ticks a second
local KEEP = 60               -- seconds of ticks each topic keeps for resuming
local STEP = 0.002            -- largest relative move of a price in one tick
local TOPIC = "ticker"

local SYMBOLS = {             -- symbol, name, opening price
  { "DPLX", "Duplex Networks", 100 },
  { "LUAJ", "Trace Compilers Ltd", 42.5 },
  { "LBEV", "Event Loops Inc", 17.2 },
  { "ZLIB", "Deflate & Sons", 63.8 },
  { "TLSX", "Handshake Holdings", 250 },
  { "UTF8", "Multibyte Corp", 8.08 },
}

-- The page lives beside this script: scripts/ticker/index.html.
local here = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")) or "."
local app = duplex.app {
  static = here .. "/ticker", max_message = 16 * 1024,
  history = { [TOPIC] = { size = KEEP * RATE, ttl = KEEP } },    -- "ticker" and "ticker:*"
}

math.randomseed(os.time())

local function cents(x) return math.floor(x * 100 + 0.5) / 100 end

local stocks, by_symbol, symbol_names = {}, {}, {}
local topics = { [TOPIC] = true }       -- the topics a page may subscribe to
for i, s in ipairs(SYMBOLS) do
  local st = { symbol = s[1], name = s[2], open = s[3], price = s[3], high = s[3], low = s[3],
               topic = TOPIC .. ":" .. s[1] }
  stocks[i], by_symbol[st.symbol], symbol_names[i] = st, st, st.symbol
  topics[st.topic] = true
end
local tick = 0

local function now_ms() return math.floor(duplex.now() * 1000) end

local function quote(st)
  return { symbol = st.symbol, price = cents(st.price), change = cents(st.price - st.open) }
end

local function full_quote(st)
  local q = quote(st)
  q.name, q.open, q.high, q.low = st.name, st.open, cents(st.high), cents(st.low)
  return q
end

-- The stocks a client follows: ws.data.symbols (a list of stocks), or all.
local function followed(ws)
  return ws.data.symbols or stocks
end

local function send_snapshot(ws, symbols)
  local quotes = {}
  for i, st in ipairs(symbols or followed(ws)) do quotes[i] = full_quote(st) end
  ws:send(cjson.encode { type = "snapshot", tick = tick, time = now_ms(), rate = RATE,
                         symbols = symbol_names, quotes = quotes })
end

local function send_error(ws, word, message)
  ws:send(cjson.encode { type = "error", error = word, message = message })
end

-- list of symbol strings -> list of stocks, or nil and why not.
local function pick(list)
  if type(list) ~= "table" or #list == 0 then
    return nil, '"symbols" must be a non-empty list of symbols (' .. table.concat(symbol_names, ", ") .. ")"
  end
  local picked, seen = {}, {}
  for _, s in ipairs(list) do
    local st = type(s) == "string" and by_symbol[s]
    if not st then
      return nil, "unknown symbol (the symbols are " .. table.concat(symbol_names, ", ") .. ")"
    end
    if not seen[st] then seen[st] = true; picked[#picked + 1] = st end
  end
  return picked
end

-- Moves ws to the topics of `symbols` (a list of stocks, or nil: all).
local function follow(ws, symbols)
  if ws.data.symbols then
    for _, st in ipairs(ws.data.symbols) do ws:unsubscribe(st.topic) end
  else
    ws:unsubscribe(TOPIC)
  end
  ws.data.symbols = symbols
  if symbols then
    for _, st in ipairs(symbols) do ws:subscribe(st.topic) end
  else
    ws:subscribe(TOPIC)
  end
end

-- One tick: every price moves, then one publish to "ticker" and one to
-- each symbol's topic, whether or not they have subscribers now: the
-- history keeps them for a page that comes back.
app:every(1 / RATE, function()
  tick = tick + 1
  local quotes = {}
  for i, st in ipairs(stocks) do
    local p = st.price * (1 + (math.random() * 2 - 1) * STEP)
    if p < 0.01 then p = 0.01 end
    st.price = p
    if p > st.high then st.high = p end
    if p < st.low then st.low = p end
    quotes[i] = quote(st)
  end
  local time = now_ms()
  app:publish(TOPIC, cjson.encode { type = "tick", tick = tick, time = time, quotes = quotes })
  for i, st in ipairs(stocks) do
    app:publish(st.topic, cjson.encode { type = "tick", tick = tick, time = time, quotes = { quotes[i] } })
  end
end)

app:ws("/ticker", {
  upgrade = function(req)
    req.data = { wanted = duplex.parse_query(req.query).symbols }
  end,

  open = function(ws)
    local wanted = ws.data.wanted
    ws.data.wanted = nil
    if ws.protocol == "duplex.1" then return end     -- a page subscribes itself, and asks for its snapshot
    local symbols, why
    if wanted and wanted ~= "" then
      local list = {}
      for s in wanted:gmatch("[^,]+") do list[#list + 1] = s end
      symbols, why = pick(list)
    end
    follow(ws, symbols)
    send_snapshot(ws)
    if why then send_error(ws, "bad_symbols", why) end
  end,

  message = function(ws, data, binary)
    if binary then return send_error(ws, "binary", "messages are JSON text") end
    local msg = cjson.decode(data)
    if msg == nil then return send_error(ws, "bad_json", "not JSON") end
    if type(msg) ~= "table" or type(msg.type) ~= "string" then
      return send_error(ws, "bad_message", 'expected a JSON object with a string "type"')
    end
    if msg.type ~= "subscribe" and msg.type ~= "snapshot" then
      return send_error(ws, "unknown_type", "unknown type (the types are subscribe and snapshot)")
    end
    local symbols, why
    if msg.symbols ~= nil then
      symbols, why = pick(msg.symbols)
      if not symbols then return send_error(ws, "bad_symbols", why) end
    end
    if msg.type == "subscribe" then
      follow(ws, symbols)
      send_snapshot(ws)
    else
      send_snapshot(ws, symbols or stocks)
    end
  end,

  -- A page's topic (duplex.js): "ticker" and the symbols' topics, no other.
  subscribe = function(_, topic)
    if topics[topic] then return true end
    return false, "no such topic"
  end,
})

return app
