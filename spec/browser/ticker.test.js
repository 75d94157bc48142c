// The ticker page (scripts/ticker/index.html on scripts/ticker.lua): rows
// of quotes that the server pushes, and a count of updates that grows.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startServer, openBrowser, openPage, waitFor, waitConnected, text, shoot, withPages } = require("./support");

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
