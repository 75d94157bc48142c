-- /metrics in Prometheus's text format, checked by Prometheus's own
-- `promtool check metrics`, and its counters moved by real traffic:
-- connections, messages and bytes both ways, publishes and deliveries,
-- refusals by status, handler errors and run times, compression.

local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local h = require "spec.support.helpers"

local q = server.quote

-- GET path; returns the response.
local function get(port, path, method)
  local conn = assert(wsclient.tcp(port))
  assert(conn:send((method or "GET") .. " " .. path .. " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
  local resp = assert(conn:read_http_response(5, { head = method == "HEAD" }))
  conn:close()
  return resp
end

-- The samples of a scrape: "name{labels}" -> number.
local function samples(text)
  local t = {}
  for line in text:gmatch("[^\n]+") do
    if line:sub(1, 1) ~= "#" then
      local key, value = line:match("^(%S+) (%S+)$")
      assert(key, "not a sample line: " .. line)
      t[key] = assert(tonumber(value), line)
    end
  end
  return t
end

-- promtool check metrics on text: asserts it passes.
local function promtool_ok(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  local code, out = server.sh("promtool check metrics < " .. q(path))
  os.remove(path)
  assert.are.equal(0, code, "promtool check metrics failed:\n" .. out .. "\n" .. text)
end

describe("metrics", function()
  local srv
  setup(function()
    srv = server.start("spec/fixtures/metrics_app.lua", { "--metrics", "/metrics", "--deflate", "shared" })
  end)
  teardown(function() srv:stop() end)

  it("serves a scrape that promtool accepts, whose counters move with traffic", function()
    local resp = get(srv.port, "/metrics")
    assert.are.equal(200, resp.status)
    assert.matches("^text/plain; version=0%.0%.4", resp.headers["content-type"])
    promtool_ok(resp.body)
    local before = samples(resp.body)

    local a, b = h.open(srv.port), h.open(srv.port)
    local big = string.rep("compressible text ", 100)
    for i = 1, 10 do h.echo(a, "m" .. i) end
    h.echo(a, big)
    assert(a:send_text("pub hello"))
    h.expect_message(a, 1, "hello")
    h.expect_message(b, 1, "hello")
    local refused = assert(wsclient.connect(srv.port, "/nowhere"))
    refused:close()
    local foreign, fresp = wsclient.connect(srv.port, "/", { Origin = "https://elsewhere.example" })
    assert.are.equal(403, fresp and fresp.status, tostring(fresp))
    if foreign then foreign:close() end
    assert(b:send_text("boom"))
    h.expect_close(b, 1011)
    -- The raw client offers no compression; Python websockets does.
    local code = server.sh(("/usr/bin/python3 -c %s %d"):format(q([[
import asyncio, sys, websockets
async def main(port):
    async with websockets.connect("ws://127.0.0.1:%d/" % port, compression="deflate") as ws:
        await ws.send("x" * 4000)
        assert await ws.recv() == "x" * 4000
asyncio.run(main(int(sys.argv[1])))
]]), srv.port))
    assert.are.equal(0, code)

    local after_resp = get(srv.port, "/metrics")
    promtool_ok(after_resp.body)
    local after = samples(after_resp.body)
    local function moved(key, at_least)
      local d = (after[key] or 0) - (before[key] or 0)
      assert(d >= at_least, ("%s moved by %s, expected at least %d"):format(key, tostring(d), at_least))
    end
    moved("duplex_connections_accepted_total", 3)
    moved("duplex_messages_received_total", 14)   -- 11 echoes, pub, boom, the compressed one
    moved("duplex_messages_sent_total", 14)       -- 12 echoes and 2 deliveries
    moved("duplex_received_bytes_total", 1800 + 10)
    moved("duplex_sent_bytes_total", 1800 + 4000 / 100)
    moved("duplex_publishes_total", 1)
    moved("duplex_deliveries_total", 2)
    moved('duplex_http_refusals_total{status="404"}', 1)
    moved('duplex_http_refusals_total{status="403"}', 1)
    moved('duplex_limit_refusals_total{limit="origins"}', 1)
    assert.is_number(after.duplex_handler_timeouts_total)
    moved("duplex_handler_errors_total", 1)
    moved("duplex_handler_duration_seconds_count", 16)
    moved('duplex_handler_duration_seconds_bucket{le="+Inf"}', 16)
    moved("duplex_deflate_input_bytes_total", 4000)
    local din = after.duplex_deflate_input_bytes_total - before.duplex_deflate_input_bytes_total
    local dout = after.duplex_deflate_output_bytes_total - before.duplex_deflate_output_bytes_total
    assert.is_true(dout > 0 and dout < din / 10, ("deflate made %d bytes of %d"):format(dout, din))
    assert.is_true(after.duplex_connections >= 2)   -- a, and the scrape's own connection
    h.close_cleanly(a)
  end)

  it("answers HEAD without a body and refuses other methods with 405", function()
    local head = get(srv.port, "/metrics", "HEAD")
    assert.are.equal(200, head.status)
    assert.is_true(tonumber(head.headers["content-length"]) > 100)
    assert.are.equal(405, get(srv.port, "/metrics", "POST").status)
  end)
end)
