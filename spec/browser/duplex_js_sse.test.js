// duplex.js's fallback in headless Chromium (spec/fixtures/duplex_js_sse_app.lua):
// a page without WebSocket (the constructor taken away before its scripts
// run), or behind something that lets no WebSocket through, talks to the
// same routes over Server-Sent Events down and POSTs up, and the app
// cannot tell but for ws.transport.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startServer, openBrowser, openPage, waitFor, withPages, dropOffline } = require("./support");

const APP = "spec/fixtures/duplex_js_sse_app.lua";
const NO_WEBSOCKET = { init: () => { delete window.WebSocket; } };

let browser;
before(async () => { browser = await openBrowser(); });
after(async () => { if (browser) await browser.close(); });

const events = (page) => page.evaluate(() => window.events.slice());
const got = (page) => page.evaluate(() => window.got.slice());
const ticks = (page) => page.evaluate(() => window.ticks.slice());
const seen = (page, what) => page.evaluate((w) => window[w].slice(), what);
const state = (page) => page.evaluate(() => window.c.state);
const start = (page, path, options) => page.evaluate(([p, o]) => window.start(p, o), [path, options]);
const transports = async (srv) => JSON.parse(await (await fetch(srv.http("/transports"))).text());

async function waitState(page, want, what) {
  return waitFor(async () => (await state(page)) === want, what || `state "${want}"`);
}

test("without WebSocket the page talks over events and POSTs: text, binary and order both ways",
  withPages("duplex-js-sse-echo", async () => {
    const srv = await startServer(APP);
    try {
      const page = await openPage(browser, srv.http("/"), NO_WEBSOCKET);
      assert.equal(await page.evaluate(() => typeof window.WebSocket), "undefined");
      await start(page, "/echo");
      await waitState(page, "open");
      const open = (await events(page)).find(([s]) => s === "open")[1];
      assert.equal(open.transport, "sse");
      assert.equal(open.protocol, "duplex.1");
      await waitFor(async () => (await got(page))[0] === "welcome sse", "the server's welcome");
      assert.deepEqual(await transports(srv), { websocket: 0, sse: 1 });

      const texts = ["two\nlines", "a\rcarriage", "", " leading space", "héllo ✓ 𝄞", "x".repeat(100000)];
      const all = Array.from({ length: 256 }, (_, i) => i);
      await page.evaluate(([t, b]) => {
        for (const m of t) window.c.send(m);
        window.c.send(new Uint8Array(b).buffer);
        window.c.send(new Blob([new Uint8Array([7, 8, 9])]));
        for (let i = 0; i < 300; i++) window.c.send("n" + i);
      }, [texts, all]);
      await waitFor(async () => (await got(page)).length === 1 + texts.length + 2 + 300, "every echo");
      const g = await got(page);
      assert.deepEqual(g.slice(1, 1 + texts.length), texts);
      assert.deepEqual(g[1 + texts.length], all);
      assert.deepEqual(g[2 + texts.length], [7, 8, 9]);
      assert.deepEqual(g.slice(3 + texts.length), Array.from({ length: 300 }, (_, i) => "n" + i));
      assert.deepEqual(page.errors, []);
    } finally {
      await srv.stop();
    }
  }));

test("a fallback page and a WebSocket page talk to each other in a room", withPages("duplex-js-sse-room",
  async () => {
    const srv = await startServer(APP);
    try {
      const sse = await openPage(browser, srv.http("/"), NO_WEBSOCKET);
      const ws = await openPage(browser, srv.http("/"));
      await start(sse, "/room");
      await start(ws, "/room");
      await waitState(sse, "open");
      await waitState(ws, "open");
      assert.equal((await events(ws)).find(([s]) => s === "open")[1].transport, "websocket");
      assert.equal((await events(sse)).find(([s]) => s === "open")[1].transport, "sse");
      await sse.evaluate(() => window.c.send("from the fallback"));
      await ws.evaluate(() => window.c.send("from the websocket"));
      await ws.evaluate(() => window.c.send(new Uint8Array([1, 2, 3]).buffer));
      for (const page of [sse, ws]) {
        await waitFor(async () => (await got(page)).length === 3, "three room messages");
        const g = await got(page);
        assert.ok(g.includes("from the fallback") && g.includes("from the websocket"), JSON.stringify(g));
        assert.ok(g.some((m) => Array.isArray(m) && m.join() === "1,2,3"), JSON.stringify(g));
      }
      assert.deepEqual(sse.errors, []);
      assert.deepEqual(ws.errors, []);
    } finally {
      await srv.stop();
    }
  }));

test("where no WebSocket gets through, the client falls back by itself", withPages("duplex-js-sse-proxied",
  async () => {
    const srv = await startServer(APP);
    try {
      const page = await openPage(browser, srv.http("/"));
      await start(page, "/proxied", { backoff: { min: 100, max: 300 } });
      await waitState(page, "open");
      const ev = await events(page);
      const open = ev.find(([s]) => s === "open")[1];
      assert.equal(open.transport, "sse");
      assert.ok(ev.some(([s, d]) => s === "reconnecting" && d.fallback), JSON.stringify(ev));
      await waitFor(async () => (await got(page))[0] === "welcome sse", "the welcome");
      await page.evaluate(() => window.c.send("through"));
      await waitFor(async () => (await got(page)).includes("through"), "the echo");
      assert.deepEqual(page.errors, []);
    } finally {
      await srv.stop();
    }
  }));

test("a fallback page offline three times gets every publication once, in order; a restart reconnects; 4001 ends it",
  withPages("duplex-js-sse-resume", async () => {
    let srv = await startServer(APP);
    try {
      const page = await openPage(browser, srv.http("/"), NO_WEBSOCKET);
      await start(page, "/live", { backoff: { min: 100, max: 400 } });
      await page.evaluate(() => window.subscribe());
      await waitFor(async () => (await ticks(page)).length >= 10, "ten ticks");
      await dropOffline(page, 3);              // about 30 publications missed each time
      const all = await ticks(page);
      const first = Number(all[0][0]);
      all.forEach(([data], i) => assert.equal(Number(data), first + i, `tick ${i}`));
      assert.ok((await seen(page, "recovered")).every((r) => r.ok && r.missed >= 20));
      assert.deepEqual(await seen(page, "lost"), []);

      await srv.stop();
      srv = await startServer(APP, { port: srv.port });
      await waitFor(async () => (await seen(page, "lost")).length === 1, "lost() after the restart");
      await waitState(page, "open");

      const echo = await openPage(browser, srv.http("/"), NO_WEBSOCKET);
      await start(echo, "/echo");
      await waitState(echo, "open");
      await echo.evaluate(() => window.c.send("close 4001"));
      await waitState(echo, "closed");
      const closed = (await events(echo)).find(([s]) => s === "closed")[1];
      assert.equal(closed.code, 4001);
      assert.equal(closed.reason, "go away");
      assert.deepEqual(page.errors, []);
      assert.deepEqual(echo.errors, []);
    } finally {
      await srv.stop();
    }
  }));

test("a page of another origin the server's origins allow talks to it over the fallback (CORS)",
  withPages("duplex-js-sse-cors", async () => {
    const pages = await startServer(APP);
    let srv;
    try {
      srv = await startServer(APP, { args: ["--origins", `http://127.0.0.1:${pages.port}`] });
      const page = await openPage(browser, pages.http("/"), NO_WEBSOCKET);
      await start(page, `http://127.0.0.1:${srv.port}/echo`);
      await waitState(page, "open");
      await waitFor(async () => (await got(page))[0] === "welcome sse", "the other origin's welcome");
      await page.evaluate(() => window.c.send("across origins"));
      await waitFor(async () => (await got(page)).includes("across origins"), "the echo");
      assert.deepEqual(await transports(srv), { websocket: 0, sse: 1 });
      assert.deepEqual(await transports(pages), { websocket: 0, sse: 0 });
      assert.deepEqual(page.errors, []);
    } finally {
      if (srv) await srv.stop();
      await pages.stop();
    }
  }));
