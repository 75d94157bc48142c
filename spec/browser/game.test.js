// The game page (scripts/game/index.html on scripts/game.lua): two players
// in two browser contexts; bob holds an arrow key and ada's page sees him
// move, then stop when the key is released.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startServer, openBrowser, openPage, waitFor, waitConnected, shoot, withPages } = require("./support");

let srv, browser;
before(async () => {
  srv = await startServer("scripts/game.lua");
  browser = await openBrowser();
});
after(async () => {
  if (browser) await browser.close();
  if (srv) await srv.stop();
});

const GAME = { prefix: true }; // its #status reads "connected, tick N"
const game = (page) => page.evaluate(() => window.duplexGame);

// The player named `name` in a page's latest state, with its id.
async function playerNamed(page, name) {
  const g = await game(page);
  for (const [id, p] of Object.entries(g.players)) if (p.name === name) return { id, ...p };
  return null;
}

test("ada's page sees bob move while he holds an arrow key, and stop when he lets go", withPages("game", async () => {
  const ada = await openPage(browser, srv.http("/?name=ada"));
  const bob = await openPage(browser, srv.http("/?name=bob"));
  await Promise.all([waitConnected(ada, GAME), waitConnected(bob, GAME)]);

  // Both pages see both players, each knows which one it is.
  for (const page of [ada, bob]) {
    await waitFor(async () => Object.keys((await game(page)).players).length === 2,
      `two players on ${page.url()}`);
  }
  const [gAda, gBob] = [await game(ada), await game(bob)];
  assert.equal(gAda.players[gAda.you].name, "ada");
  assert.equal(gBob.players[gBob.you].name, "bob");
  assert.notEqual(gAda.you, gBob.you);

  const start = await playerNamed(ada, "bob");
  assert.ok(start, "ada's page has a player named bob");
  assert.equal(String(start.id), String(gBob.you), "ada and bob agree on bob's id");
  await shoot(ada, "game-ada-before");

  // Walk towards the far side of the 800 px world so the edge cannot stop him.
  const [key, sign] = start.x < 400 ? ["ArrowRight", 1] : ["ArrowLeft", -1];
  await bob.keyboard.down(key);
  const moved = await waitFor(async () => {
    const p = await playerNamed(ada, "bob");
    return p && sign * (p.x - start.x) >= 40 && p;
  }, `ada's page to see bob move 40 px with ${key} held`);
  await bob.keyboard.up(key);
  assert.equal(moved.y, start.y, "a horizontal key moves bob horizontally only");

  // Released: his position settles (the same over 10 ticks of ada's page).
  await waitFor(async () => {
    const first = await ada.evaluate(() => ({ tick: window.duplexGame.tick,
      x: Object.values(window.duplexGame.players).find((p) => p.name === "bob").x }));
    await ada.waitForFunction((t) => window.duplexGame.tick >= t + 10, first.tick);
    const later = await playerNamed(ada, "bob");
    return later.x === first.x;
  }, "bob to stop after the key is released");

  // Ada did not move: nobody pressed her keys.
  const adaSelf = await playerNamed(bob, "ada");
  const adaStart = gAda.players[gAda.you];
  assert.deepEqual([adaSelf.x, adaSelf.y], [adaStart.x, adaStart.y]);

  await shoot(ada, "game-ada");
  await shoot(bob, "game-bob");
  assert.deepEqual(ada.errors, []);
  assert.deepEqual(bob.errors, []);
}));
