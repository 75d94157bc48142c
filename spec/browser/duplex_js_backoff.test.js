// duplex.js's own rules, without a browser or a server: the file runs in a
// node vm whose WebSocket, timers, clock, fetch and Math.random are fakes
// the test drives. What it checks: the URL a path becomes, the backoff's
// ceiling doubling from min to max and its jitter staying between min and
// the ceiling, the ceiling back to min after a stable connection (and not
// after a short one), the queue leaving before the open report, no
// attempt while navigator.onLine is false, and on duplex.1: a dead
// connection noticed from the heartbeats' absence, topics subscribed again
// from their last position, binary sends tagged.
"use strict";

const { test } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");

const SOURCE = fs.readFileSync(path.resolve(__dirname, "..", "..", "lua", "duplex", "duplex.js"), "utf8");

// load(o) -> a world: { duplex, sockets, timers, now, advance(ms), events, ... }
function load({ href = "http://example.test/page", online = true, random = () => 0.5 } = {}) {
  const w = { sockets: [], timers: [], now: 1000, listeners: {}, random };
  class FakeWebSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.sent = [];
      this.protocol = "";
      w.sockets.push(this);
    }
    send(data) { this.sent.push(data); }
    close() { this.readyState = 3; }
    // test side
    opens(protocol = "") { this.protocol = protocol; this.readyState = 1; this.onopen && this.onopen({}); }
    gets(data) { this.onmessage && this.onmessage({ data }); }
    drops(code = 1006, reason = "") {
      this.readyState = 3;
      this.onclose && this.onclose({ code, reason, wasClean: code !== 1006 });
    }
  }
  const math = Object.create(Math);
  math.random = () => w.random();
  const ctx = {
    URL, WebSocket: FakeWebSocket, Math: math, TextEncoder, TextDecoder,
    Date: { now: () => w.now },
    setTimeout: (fn, ms) => { const t = { fn, at: w.now + (ms || 0) }; w.timers.push(t); return t; },
    clearTimeout: (t) => { const i = w.timers.indexOf(t); if (i >= 0) w.timers.splice(i, 1); },
    fetch: () => Promise.reject(new TypeError("Failed to fetch")),   // the server is unreachable
    navigator: { onLine: online },
    location: { href },
    addEventListener: (name, fn) => { w.listeners[name] = fn; },
    removeEventListener: (name) => { delete w.listeners[name]; },
  };
  ctx.self = ctx;
  vm.createContext(ctx);
  vm.runInContext(SOURCE, ctx, { filename: "duplex.js" });
  w.ctx = ctx;
  w.duplex = ctx.duplex;
  // advance(ms): the clock moves on, due timers fire in order.
  w.advance = (ms) => {
    const end = w.now + ms;
    for (;;) {
      w.timers.sort((a, b) => a.at - b.at);
      const t = w.timers[0];
      if (!t || t.at > end) break;
      w.timers.shift();
      w.now = t.at;
      t.fn();
    }
    w.now = end;
  };
  w.last = () => w.sockets[w.sockets.length - 1];
  w.connect = (target, options) => {
    w.events = [];
    w.got = [];
    w.c = w.duplex.connect(target, {
      message: (d) => w.got.push(d),
      state: (s, detail) => w.events.push([s, JSON.parse(JSON.stringify(detail))]),
    }, options);
    return w.c;
  };
  return w;
}

const settle = () => new Promise((resolve) => setImmediate(resolve));   // the probe's promise

test("a path resolves against the page, ws:// or wss:// as the page is http or https", () => {
  assert.equal(load().connect("/echo?x=1").url, "ws://example.test/echo?x=1");
  assert.equal(load({ href: "https://example.test:8443/a/b" }).connect("c").url, "wss://example.test:8443/a/c");
  assert.equal(load().connect("wss://other.test/x").url, "wss://other.test/x");
  assert.equal(load().connect("https://other.test/y").url, "wss://other.test/y");
  assert.equal(typeof load().duplex.connect, "function");
});

test("the backoff ceiling doubles from min to max; the jitter stays between min and the ceiling", async () => {
  const w = load({ random: () => 1 });        // the delay is the ceiling itself
  w.connect("/echo", { backoff: { min: 100, max: 1000 } });
  const delays = [];
  for (let i = 0; i < 6; i++) {
    w.last().drops();                          // never opened, the probe fails: unreachable
    await settle();
    const [state, detail] = w.events.at(-1);
    assert.equal(state, "reconnecting");
    assert.equal(detail.reason, "unreachable");
    delays.push(detail.delay);
    w.advance(detail.delay);
  }
  assert.deepEqual(delays, [200, 400, 800, 1000, 1000, 1000]);
  assert.equal(w.sockets.length, 7, "one attempt per delay, at its end");

  const low = load({ random: () => 0 });
  low.connect("/echo", { backoff: { min: 100, max: 1000 } });
  for (let i = 0; i < 4; i++) {
    low.last().drops();
    await settle();
    assert.equal(low.events.at(-1)[1].delay, 100);
    low.advance(100);
  }

  const mid = load({ random: () => 0.5 });
  mid.connect("/echo", { backoff: { min: 100, max: 1000 } });
  const seen = [];
  for (let i = 0; i < 4; i++) {
    mid.last().drops();
    await settle();
    seen.push(mid.events.at(-1)[1].delay);
    mid.advance(seen.at(-1));
  }
  assert.deepEqual(seen, [150, 250, 450, 550]);
});

test("the ceiling goes back to min after a connection that stayed open `stable` ms, not after a short one", async () => {
  const w = load({ random: () => 1 });
  w.connect("/echo", { backoff: { min: 100, max: 10000 }, stable: 5000 });
  w.last().opens();
  w.advance(200);
  w.last().drops(1001, "going away");         // short-lived (the first connection): ceiling 2 * min
  assert.deepEqual(w.events.at(-1), ["reconnecting",
    { code: 1001, reason: "going away", wasClean: true, attempt: 2, delay: 200 }]);
  w.advance(200);
  w.last().opens();
  w.advance(200);
  w.last().drops();                           // short again: the ceiling grows
  assert.equal(w.events.at(-1)[1].delay, 400);
  w.advance(400);
  w.last().opens();
  w.advance(5000);
  w.last().drops();                           // stable: back to the start
  assert.equal(w.events.at(-1)[1].delay, 200);
});

test("queued sends leave in order before the open report; a send from the state handler comes after them", () => {
  const w = load();
  const c = w.duplex.connect("/echo", {
    state: (s, d, client) => { if (s === "open") client.send("from the handler"); },
  }, { queue: 2 });
  assert.equal(c.send("a"), true);
  assert.equal(c.send("b"), true);
  assert.equal(c.send("c"), false, "past the bound");
  w.last().opens();
  assert.deepEqual(w.last().sent, ["a", "b", "from the handler"]);
  assert.equal(c.state, "open");
  c.close();
  assert.equal(c.state, "closed");
  assert.equal(c.send("d"), false);
});

test("no attempt while navigator.onLine is false; online tries at once", () => {
  const w = load({ online: false });
  w.connect("/echo", { backoff: { min: 100, max: 100 } });
  assert.equal(w.sockets.length, 0, "no WebSocket while offline");
  w.advance(10000);
  assert.equal(w.sockets.length, 0);
  assert.equal(w.c.state, "connecting");
  w.ctx.navigator.onLine = true;
  w.listeners.online();
  assert.equal(w.sockets.length, 1, "online: an attempt at once");
  w.last().opens();
  assert.equal(w.c.state, "open");

  // offline drops the socket; the retry then waits for online
  w.ctx.navigator.onLine = false;
  w.listeners.offline();
  assert.equal(w.c.state, "reconnecting");
  assert.equal(w.events.at(-1)[1].offline, true);
  w.advance(10000);
  assert.equal(w.sockets.length, 1, "no attempt while offline");
  w.ctx.navigator.onLine = true;
  w.listeners.online();
  assert.equal(w.sockets.length, 2);
  assert.equal(w.events.at(-1)[1].online, true);
});

// duplex.1 frames from the server, as the page's socket gives them.
const bytes = (...parts) => {
  const chunks = parts.map((p) => (typeof p === "string" ? Buffer.from(p) : Buffer.from(p)));
  const b = Buffer.concat(chunks);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.length);
};
const controlFrame = (m) => bytes([1], JSON.stringify(m));
const publication = (topic, pos, data) =>
  bytes([3, topic.length >> 8, topic.length & 255], topic, [pos.length], pos, [0], data);
const sentControls = (s) => s.sent.filter((d) => typeof d !== "string" && d[0] === 1)
  .map((d) => JSON.parse(Buffer.from(d.subarray(1)).toString()));

test("duplex.1: silence past twice the ping interval and the grace drops the socket; topics resume from their position", () => {
  const w = load();
  w.connect("/live", { backoff: { min: 100, max: 100 }, grace: 500 });
  const got = [];
  const lost = [];
  w.c.subscribe("t", { message: (d, p) => got.push([d, p]), lost: (r) => lost.push(r) });
  const s = w.last();
  assert.deepEqual([...s.protocols], ["duplex.1"]);
  s.opens("duplex.1");
  assert.deepEqual(sentControls(s), [{ t: "sub", topic: "t", since: null }]);
  s.gets(controlFrame({ t: "hello", ping: 1, id: 7 }));
  for (let i = 0; i < 5; i++) {                // a heartbeat a second keeps it alive
    w.advance(1000);
    s.gets(bytes([2]));
  }
  s.gets(publication("t", "e:4", "four"));
  s.gets(publication("t", "e:5", "five"));
  assert.deepEqual(got, [["four", "e:4"], ["five", "e:5"]]);
  assert.equal(w.c.state, "open");
  w.advance(2499);                             // 2 x 1 s + 500 ms of nothing
  assert.equal(w.c.state, "open");
  w.advance(2);
  assert.deepEqual(w.events.at(-1)[0], "reconnecting");
  assert.equal(w.events.at(-1)[1].reason, "dead");
  w.advance(100);
  const again = w.last();
  assert.notEqual(again, s);
  again.opens("duplex.1");
  assert.deepEqual(sentControls(again), [{ t: "sub", topic: "t", since: "e:5" }]);
  again.gets(controlFrame({ t: "recovered", topic: "t", ok: false, reason: "epoch", missed: 0, position: "f:2" }));
  assert.deepEqual(lost, ["epoch"]);
  w.c.send(new Uint8Array([9, 8]));
  assert.deepEqual([...again.sent.at(-1)], [0, 9, 8]);   // the app's binary, tagged 0x00
  w.c.send("text");
  assert.equal(again.sent.at(-1), "text");
  again.gets(bytes([0, 7]));
  assert.deepEqual([...new Uint8Array(w.got.at(-1))], [7]);
  w.c.unsubscribe("t");
  assert.deepEqual(sentControls(again).at(-1), { t: "unsub", topic: "t" });
  again.drops(1006);
  w.advance(100);
  w.last().opens("duplex.1");
  assert.deepEqual(sentControls(w.last()), []);  // no topic left to subscribe again
});

test("a topic on a socket without duplex.1 (the route's protocols leave it out) is refused: unsupported", () => {
  const w = load();
  w.connect("/old");
  const refused = [];
  w.c.subscribe("t", { refused: (r) => refused.push(r) });
  w.last().opens("");
  assert.deepEqual(refused, ["unsupported"]);
  assert.deepEqual(w.last().sent, []);
  w.c.subscribe("u", { lost: (r) => refused.push("lost " + r) });   // no refused handler: lost
  assert.deepEqual(refused, ["unsupported", "lost unsupported"]);
});

test("a target function is asked again at each attempt; a close() in the reconnecting report stops it for good", () => {
  const w = load();
  let n = 0;
  w.connect(() => `/chat?since=${n}`, { backoff: { min: 100, max: 100 } });
  assert.equal(w.last().url, "ws://example.test/chat?since=0");
  w.last().opens();
  n = 7;
  w.last().drops(1006);
  w.advance(100);
  assert.equal(w.sockets.length, 2);
  assert.equal(w.last().url, "ws://example.test/chat?since=7");
  assert.equal(w.c.url, "ws://example.test/chat?since=7");

  const v = load();
  v.events = [];
  v.c = v.duplex.connect("/x", {
    state: (s) => { v.events.push(s); if (s === "reconnecting") v.c.close(); },
  }, { backoff: { min: 100, max: 100 } });
  v.last().opens();
  v.last().drops(1006);
  assert.deepEqual(v.events, ["connecting", "open", "reconnecting", "closed"]);
  assert.equal(v.timers.length, 0, "no attempt left behind");
  v.advance(1000);
  assert.equal(v.sockets.length, 1);
});
