// The browser client duplex.js (served by every app at /duplex.js) in
// headless Chromium, against spec/fixtures/duplex_js_app.lua: its page
// loads /duplex.js and offers start(path, options); window.events holds
// the client's state reports ([state, detail, time]), window.got its
// messages, and GET /count says how many WebSockets the server opened.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startServer, openBrowser, openPage, waitFor, withPages } = require("./support");

const APP = "spec/fixtures/duplex_js_app.lua";
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let browser;
before(async () => { browser = await openBrowser(); });
after(async () => { if (browser) await browser.close(); });

const events = (page) => page.evaluate(() => window.events.map(([s, d, t]) => [s, d, t]));
const states = async (page) => (await events(page)).map(([s]) => s);
const got = (page) => page.evaluate(() => window.got.slice());
const state = (page) => page.evaluate(() => window.c.state);
const send = (page, data) => page.evaluate((d) => window.c.send(d), data);
const count = async (srv) => Number(await (await fetch(srv.http("/count"))).text());

async function waitState(page, want, what) {
  return waitFor(async () => (await state(page)) === want, what || `state "${want}"`);
}

async function start(page, path, options) {
  return page.evaluate(([p, o]) => window.start(p, o), [path, options]);
}

test("messages go both ways; the states are connecting, then open", withPages("duplex-js-basic", async () => {
  const srv = await startServer(APP);
  try {
    const page = await openPage(browser, srv.http("/"));
    assert.equal(await start(page, "/echo"), "connecting");
    await waitState(page, "open");
    await waitFor(async () => (await got(page))[0] === "welcome", "the server's welcome");
    assert.equal(await send(page, "hello"), true);
    assert.equal(await send(page, "again"), true);
    await waitFor(async () => (await got(page)).length === 3, "two echoes");
    assert.deepEqual(await got(page), ["welcome", "hello", "again"]);
    const ev = await events(page);
    assert.deepEqual(ev.map(([s]) => s), ["connecting", "open"]);
    assert.match(ev[1][1].url, /^ws:\/\/127\.0\.0\.1:\d+\/echo$/);
    assert.equal(await count(srv), 1);
    assert.deepEqual(page.errors, []);
  } finally {
    await srv.stop();
  }
}));

test("a server that restarts: reconnecting, then open again, and what was sent meanwhile arrives in order",
  withPages("duplex-js-restart", async () => {
    let srv = await startServer(APP);
    try {
      const page = await openPage(browser, srv.http("/"));
      await start(page, "/echo", { backoff: { min: 100, max: 400 }, queue: 5 });
      await waitState(page, "open");
      await srv.stop();
      await waitState(page, "reconnecting");
      const down = (await events(page)).find(([s]) => s === "reconnecting")[1];
      assert.equal(down.code, 1001, JSON.stringify(down));      // the server's shutdown
      assert.ok(down.delay >= 100 && down.delay <= 400, JSON.stringify(down));
      for (const m of ["one", "two", "three"]) assert.equal(await send(page, m), true);
      // attempts while it is down report "reconnecting" again, never "closed"
      await waitFor(async () => (await events(page)).filter(([s]) => s === "reconnecting").length >= 2,
        "a second attempt while the server is down");

      srv = await startServer(APP, { port: srv.port });
      await waitState(page, "open", "open again after the restart");
      await waitFor(async () => (await got(page)).length >= 5, "the queued sends echoed");
      assert.deepEqual(await got(page), ["welcome", "welcome", "one", "two", "three"]);
      const s = await states(page);
      assert.ok(!s.includes("closed"), s.join(" "));
      assert.equal(s[s.length - 1], "open");
      assert.deepEqual(page.errors, []);
    } finally {
      await srv.stop();
    }
  }));

test("offline then online: no attempts while offline, and a reconnect at once when back",
  withPages("duplex-js-offline", async () => {
    const srv = await startServer(APP);
    try {
      const page = await openPage(browser, srv.http("/"));
      const BACKOFF = 3000;
      await start(page, "/echo", { backoff: { min: BACKOFF, max: BACKOFF } });
      await waitState(page, "open");
      const context = page.context();

      // Offline while a retry is pending: online brings it back before the backoff.
      await context.setOffline(true);
      await waitState(page, "reconnecting");
      await sleep(100);
      let t0 = Date.now();
      await context.setOffline(false);
      await waitState(page, "open", "open after coming back online");
      let took = Date.now() - t0;
      assert.ok(took < BACKOFF / 2, `reopened ${took} ms after online, the backoff being ${BACKOFF} ms`);
      assert.equal(await count(srv), 2);

      // Offline past the backoff: the retry finds the browser offline and
      // waits for online, without trying (no spin); online reconnects at once.
      const before = (await events(page)).length;
      await context.setOffline(true);
      await waitState(page, "reconnecting");
      await sleep(BACKOFF + 700);
      const during = (await events(page)).slice(before).map(([s, d]) => [s, d]);
      assert.deepEqual(during.map(([s]) => s), ["reconnecting"], JSON.stringify(during));
      assert.equal(await state(page), "reconnecting");
      t0 = Date.now();
      await context.setOffline(false);
      await waitState(page, "open", "open after the second time online");
      took = Date.now() - t0;
      assert.ok(took < BACKOFF / 2, `reopened ${took} ms after online`);
      const online = (await events(page)).find(([s, d]) => s === "reconnecting" && d.online);
      assert.ok(online, "a reconnecting report says it came from the online event");
      assert.equal(await count(srv), 3, "one connection per time online, none while offline");
      assert.equal(await send(page, "still here"), true);
      await waitFor(async () => (await got(page)).includes("still here"), "an echo after it all");
      assert.deepEqual(page.errors, []);
    } finally {
      await srv.stop();
    }
  }));

test("a close 4001 from the server stops it for good", withPages("duplex-js-4001", async () => {
  const srv = await startServer(APP);
  try {
    const page = await openPage(browser, srv.http("/"));
    await start(page, "/echo", { backoff: { min: 50, max: 100 } });
    await waitState(page, "open");
    await send(page, "close 4001");
    await waitState(page, "closed");
    const last = (await events(page)).at(-1);
    assert.deepEqual([last[0], last[1].code, last[1].reason], ["closed", 4001, "go away"]);
    await sleep(600);                                    // many backoffs' worth
    assert.equal(await count(srv), 1, "no connection after the 4001");
    assert.deepEqual(await states(page), ["connecting", "open", "closed"]);
    assert.equal(await send(page, "too late"), false);
    assert.deepEqual(page.errors, []);
  } finally {
    await srv.stop();
  }
}));

test("an upgrade the server refuses (404) stops it: closed, refused", withPages("duplex-js-refused", async () => {
  const srv = await startServer(APP);
  try {
    const page = await openPage(browser, srv.http("/"));
    await start(page, "/nowhere", { backoff: { min: 50, max: 100 } });
    await waitState(page, "closed");
    const last = (await events(page)).at(-1);
    assert.equal(last[1].reason, "refused", JSON.stringify(last));
    assert.equal(last[1].refused, true);
    assert.equal(await send(page, "x"), false);
    assert.equal(await count(srv), 0);
  } finally {
    await srv.stop();
  }
}));

test("the queue is bounded: sends past it return false; close() ends it", withPages("duplex-js-queue", async () => {
  const srv = await startServer(APP);
  try {
    const page = await openPage(browser, srv.http("/"));
    // A port nothing listens on: the client keeps trying (unreachable, not refused).
    const dead = await startServer(APP);
    const port = dead.port;
    await dead.stop();
    await start(page, `ws://127.0.0.1:${port}/echo`, { queue: 3, backoff: { min: 50, max: 100 } });
    const sent = [];
    for (let i = 1; i <= 5; i++) sent.push(await send(page, `m${i}`));
    assert.deepEqual(sent, [true, true, true, false, false]);
    await waitFor(async () => (await events(page)).filter(([s]) => s === "reconnecting").length >= 2,
      "retries of an unreachable server");
    const r = (await events(page)).find(([s]) => s === "reconnecting")[1];
    assert.equal(r.reason, "unreachable", JSON.stringify(r));
    assert.notEqual(await state(page), "closed");
    await page.evaluate(() => window.c.close(1000, "bye"));
    assert.equal(await state(page), "closed");
    assert.equal(await send(page, "m6"), false);
    const last = (await events(page)).at(-1);
    assert.deepEqual([last[0], last[1].code, last[1].by], ["closed", 1000, "client"]);
    assert.deepEqual(page.errors, []);
  } finally {
    await srv.stop();
  }
}));
