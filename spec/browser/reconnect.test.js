// Every demo page reconnects by itself (through /duplex.js): the server is
// stopped (cleanly), the page's #status says "reconnecting…", the server
// comes back on the same port, #status returns to "connected", and the
// page works again: the game moves the player's dot, the chat talks, the
// editor commits an edit, the ticker counts new ticks.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startServer, openBrowser, openPage, waitFor, connected, waitConnected, statusOf, text, value, shoot, withPages } = require("./support");

let browser;
before(async () => { browser = await openBrowser(); });
after(async () => { if (browser) await browser.close(); });

const number = async (page, selector) => {
  const m = /\d+/.exec((await text(page, selector)) || "");
  return m ? Number(m[0]) : NaN;
};

// works(page): the page does its job on the new server.
const PAGES = [
  {
    app: "game", url: "/?name=ada", status: { prefix: true },
    async works(page) {
      const me = () => page.evaluate(() => {
        const g = window.duplexGame;
        return g.you !== null && g.players[g.you] ? g.players[g.you].x : null;
      });
      const x0 = await waitFor(async () => { const x = await me(); return x !== null && x + 1; }, "the player on the new server") - 1;
      const target = x0 < 400 ? x0 + 30 : x0 - 30;
      const key = x0 < 400 ? "ArrowRight" : "ArrowLeft";
      await page.keyboard.down(key);
      await waitFor(async () => Math.abs((await me()) - x0) >= 30, `the dot to move from x ${x0} to ${target}`);
      await page.keyboard.up(key);
    },
  },
  {
    app: "chat", url: "/?name=ada",
    async works(page) {
      await page.click("#text");
      await page.keyboard.type("back again");
      await page.keyboard.press("Enter");
      await waitFor(async () => (await page.$$eval("#log li.msg", (els) => els.map((e) => e.textContent)))
        .some((t) => t.includes("ada: back again")), "the line said after the restart");
    },
  },
  {
    app: "collab", url: "/?name=ada",
    async works(page) {
      await waitFor(async () => !(await page.$eval("#doc", (el) => el.readOnly)), "#doc writable");
      const rev = await number(page, "#rev");
      await page.$eval("#doc", (el) => { el.focus(); el.setSelectionRange(el.value.length, el.value.length); });
      await page.keyboard.type("after");
      await waitFor(async () => (await number(page, "#rev")) > rev, "the edit committed (#rev grows)");
      assert.match(await value(page, "#doc"), /after$/);
    },
  },
  {
    app: "ticker", url: "/",
    async works(page) {
      const n = await number(page, "#updates");
      await waitFor(async () => (await number(page, "#updates")) >= n + 3, "#updates to grow by 3");
      assert.equal(await page.$$eval("#quotes tr[data-symbol]", (rows) => rows.length), 6);
    },
  },
];

for (const { app, url, status, works } of PAGES) {
  test(`the ${app} page reconnects after the server restarts on the same port, and works`, withPages(`reconnect-${app}`, async () => {
    let srv = await startServer(`scripts/${app}.lua`);
    try {
      const page = await openPage(browser, srv.http(url));
      await waitConnected(page, status);

      await srv.stop();
      const down = await waitFor(async () => {
        const s = await statusOf(page);
        return !connected(s, { prefix: true }) && s;
      }, `#status to leave "connected" once the ${app} server is gone`);
      await shoot(page, `reconnect-${app}-down`);
      assert.equal(down, "reconnecting…", "the page says it is reconnecting while the server is down");

      srv = await startServer(`scripts/${app}.lua`, { port: srv.port });
      await waitConnected(page, status);
      await works(page);
      await shoot(page, `reconnect-${app}-up`);
      assert.deepEqual(page.errors, []);
      await page.context().close();
    } finally {
      await srv.stop();
    }
  }));
}
