// The ticker page (scripts/ticker/index.html on scripts/ticker.lua): rows
// of quotes that the server pushes, and a count of updates that grows; a
// page with ?symbols= shows those only; a page whose network goes away
// twenty times during the stream gets every tick, once, in order.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startServer, openBrowser, openPage, probeDuplex, waitFor, waitConnected, statusOf, text, shoot, withPages } = require("./support");

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let srv, browser;
before(async () => {
  srv = await startServer("scripts/ticker.lua");
  browser = await openBrowser();
});
after(async () => {
  if (browser) await browser.close();
  if (srv) await srv.stop();
});

const updates = async (page) => {
  const t = ((await text(page, "#updates")) || "").trim();
  assert.match(t, /^\d+$/, "#updates is an integer");
  return Number(t);
};
const prices = (page) => page.$$eval("#quotes tr[data-symbol]", (rows) =>
  Object.fromEntries(rows.map((r) => [r.dataset.symbol, r.querySelector("td.price").textContent.trim()])));

test("quotes arrive, prices move and the update count grows", withPages("ticker", async () => {
  const a = await openPage(browser, srv.http("/"));
  const b = await openPage(browser, srv.http("/"));
  await Promise.all([waitConnected(a), waitConnected(b)]);

  await waitFor(async () => Object.keys(await prices(a)).length > 0, "rows in #quotes");
  const first = await prices(a);
  for (const [sym, price] of Object.entries(first)) {
    assert.match(price, /\d/, `a price for ${sym}: ${JSON.stringify(price)}`);
  }

  const n0 = await updates(a);
  const n1 = await waitFor(async () => { const n = await updates(a); return n >= n0 + 5 && n; },
    "#updates to grow by 5");
  assert.ok(n1 > n0);
  await waitFor(async () => {
    const now = await prices(a);
    return Object.keys(first).some((sym) => now[sym] !== first[sym]);
  }, "a price in #quotes to change");

  // Both pages list the same symbols.
  await waitFor(async () => Object.keys(await prices(b)).length === Object.keys(first).length,
    "the second page to list every symbol");
  assert.deepEqual(Object.keys(await prices(b)).sort(), Object.keys(first).sort());
  assert.ok((await updates(b)) > 0, "the second page counts its updates too");

  await shoot(a, "ticker-a");
  await shoot(b, "ticker-b");
  assert.deepEqual(a.errors, []);
  assert.deepEqual(b.errors, []);
}));

test("?symbols= shows those symbols only; an unknown one falls back to every symbol with a complaint",
  withPages("ticker-symbols", async () => {
    const some = await openPage(browser, srv.http("/?symbols=ZLIB,DPLX"));
    await waitConnected(some);
    await waitFor(async () => Object.keys(await prices(some)).length === 2, "two rows");
    assert.deepEqual(Object.keys(await prices(some)).sort(), ["DPLX", "ZLIB"]);
    const n0 = await updates(some);
    await waitFor(async () => (await updates(some)) >= n0 + 3, "#updates to grow by 3");
    assert.match((await text(some, "#info")) || "", /^2 of 6 symbols/);

    const bad = await openPage(browser, srv.http("/?symbols=NOPE"));
    await waitConnected(bad);
    await waitFor(async () => Object.keys(await prices(bad)).length === 6, "every symbol's row");
    await waitFor(async () => ((await text(bad, "#info")) || "").includes("6 of 6 symbols"), "the full snapshot");
    assert.match(await text(bad, "#info"), /⚠ unknown symbol/);
    const n1 = await updates(bad);
    await waitFor(async () => (await updates(bad)) >= n1 + 3, "#updates to grow by 3");
    await shoot(some, "ticker-symbols");
    assert.deepEqual(some.errors, []);
    assert.deepEqual(bad.errors, []);
  }));

test("a page whose network goes away 20 times during the stream gets every tick, once, in order",
  withPages("ticker-offline", async () => {
    const ROUNDS = 20;
    const page = await openPage(browser, srv.http("/"), { init: probeDuplex });
    // [topic, tick, position] of every publication; the tick of every snapshot.
    const seen = async () => {
      // The probe and the page's update count in one turn of the page: a
      // tick arriving between two reads would set them apart.
      const [p, shown] = await page.evaluate(() => [JSON.parse(JSON.stringify(window.probe)),
        document.getElementById("updates").textContent.trim()]);
      return {
        shown: Number(shown),
        ticks: p.publications.map(([topic, data, position]) => [topic, JSON.parse(data).tick, position]),
        snapshots: p.messages.map((m) => JSON.parse(m)).filter((m) => m.type === "snapshot").map((m) => m.tick),
        recovered: p.recovered.map(([, info]) => info),
        lost: p.lost,
      };
    };
    await waitConnected(page);
    await waitFor(async () => (await seen()).ticks.length >= 5, "five ticks");
    const context = page.context();
    const started = Date.now();
    for (let round = 0; round < ROUNDS; round++) {
      await context.setOffline(true);
      await waitFor(async () => (await statusOf(page)) === "reconnecting…", `#status "reconnecting…" (round ${round + 1})`);
      await sleep(300);                         // about three ticks published meanwhile
      await context.setOffline(false);
      await waitFor(async () => (await seen()).recovered.length === round + 1, `recovered() (round ${round + 1})`);
      await waitConnected(page);
      const had = (await seen()).ticks.length;
      await waitFor(async () => (await seen()).ticks.length >= had + 2, `new ticks (round ${round + 1})`);
    }
    const took = Date.now() - started;
    const p = await seen();

    // Every tick once and in order: the ticks follow each other, and so do
    // the positions' offsets, in one epoch.
    const [, first, pos0] = p.ticks[0];
    const [epoch, offset0] = pos0.split(":");
    let lost = 0, duplicated = 0, outOfOrder = 0;
    p.ticks.forEach(([topic, tick, position], i) => {
      assert.equal(topic, "ticker");
      const [e, offset] = position.split(":");
      assert.equal(e, epoch, `tick ${tick}: one epoch`);
      const step = Number(offset) - (i === 0 ? Number(offset0) - 1 : Number(p.ticks[i - 1][2].split(":")[1]));
      if (step > 1) lost += step - 1;
      else if (step === 0) duplicated++;
      else if (step < 0) outOfOrder++;
      assert.equal(tick - first, Number(offset) - Number(offset0), `tick ${tick} at ${position}`);
    });
    const missed = p.recovered.reduce((n, r) => n + r.missed, 0);
    const last = p.ticks[p.ticks.length - 1][1];
    console.log(`ticker: ${ROUNDS} disconnects in ${(took / 1000).toFixed(1)} s, ${p.ticks.length} updates `
      + `(ticks ${first} to ${last}), ${missed} of them published while the page was offline, `
      + `${lost} lost, ${duplicated} duplicated, ${outOfOrder} out of order`);
    assert.deepEqual({ lost, duplicated, outOfOrder }, { lost: 0, duplicated: 0, outOfOrder: 0 });
    assert.equal(p.ticks.length, last - first + 1);
    assert.equal(p.recovered.length, ROUNDS);
    assert.ok(p.recovered.every((r) => r.ok && r.missed >= 1), JSON.stringify(p.recovered));
    assert.ok(missed >= ROUNDS, `${missed} ticks published while offline`);
    assert.deepEqual(p.lost, []);
    // One snapshot, and the page counted every tick after it.
    assert.equal(p.snapshots.length, 1, JSON.stringify(p.snapshots));
    assert.equal(p.shown, last - p.snapshots[0]);
    await shoot(page, "ticker-offline");
    assert.deepEqual(page.errors, []);
  }));
