// Every demo page reconnects by itself: the server is stopped (cleanly),
// the page's #status leaves "connected", the server comes back on the same
// port and #status returns to "connected".
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startServer, openBrowser, openPage, waitFor, connected, waitConnected, statusOf, shoot, withPages } = require("./support");

let browser;
before(async () => { browser = await openBrowser(); });
after(async () => { if (browser) await browser.close(); });

const PAGES = [
  { app: "game", url: "/?name=ada", status: { prefix: true } },
  { app: "chat", url: "/?name=ada" },
  { app: "collab", url: "/?name=ada" },
  { app: "ticker", url: "/" },
];

for (const { app, url, status } of PAGES) {
  test(`the ${app} page reconnects after the server restarts on the same port`, withPages(`reconnect-${app}`, async () => {
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

      srv = await startServer(`scripts/${app}.lua`, { port: srv.port });
      await waitConnected(page, status);
      await shoot(page, `reconnect-${app}-up`);
      assert.ok(down.length > 0, "the page says it is not connected while the server is down");
      assert.deepEqual(page.errors, []);
      await page.context().close();
    } finally {
      await srv.stop();
    }
  }));
}
