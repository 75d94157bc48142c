// spec/browser/support.js: what the browser tests share.
//
//   const { startServer, openBrowser, openPage, shoot, waitFor } = require("./support");
//   const srv = await startServer("scripts/game.lua");   // port 0, or { port }
//   const browser = await openBrowser();
//   const ada = await openPage(browser, srv.http("/?name=ada"));
//   ... await shoot(ada, "game-ada") ...                 // build/test-output/browser/game-ada.png
//   const bob = await openPage(browser, url, { init: probeDuplex });   // (await probed(bob)).messages
//   await srv.stop();   // SIGTERM; rejects unless the exit is 0 with a clean stderr
//
// Across nodes: const redis = await startRedis();   // a redis-server of the test's own
//   const a = await startServer("scripts/chat.lua", { args: ["--broker", redis.url] });
//   ... await a.stop(); await redis.stop();
//
// The server is `$DUPLEX_BIN run SCRIPT --host 127.0.0.1 --port P`
// (default binary build/lua5.4/duplex); its first stdout line names the port.
// The browser is the system's Chromium ($CHROMIUM, default /usr/bin/chromium),
// driven by playwright-core, which never downloads a browser of its own.
// Every wait polls a condition with a deadline; no test sleeps a fixed time.
"use strict";

const { spawn } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const { chromium } = require("playwright-core");

const ROOT = path.resolve(__dirname, "..", "..");
const BIN = path.resolve(ROOT, process.env.DUPLEX_BIN || "build/lua5.4/duplex");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const OUTPUT = path.resolve(ROOT, process.env.BROWSER_OUTPUT || "build/test-output/browser");
const START_TIMEOUT = 10000;
const STOP_TIMEOUT = 10000;
// Generous: the machine is shared with builds and other test runs.
const WAIT_TIMEOUT = Number(process.env.BROWSER_WAIT_TIMEOUT || 15000);

// Flags for a headless browser that may run as root, has no GPU, and talks
// to nothing but the servers under test.
const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
  "--disable-background-networking", "--disable-component-update",
  "--no-first-run", "--disable-sync", "--disable-default-apps",
  "--disable-extensions", "--metrics-recording-only", "--no-default-browser-check",
];

const SANITIZER_MARKERS = ["AddressSanitizer", "LeakSanitizer", "runtime error:", "ThreadSanitizer"];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// waitFor(fn, what [, timeout]) -> fn's first truthy result; fn may be
// async. Rejects naming `what` (and fn's last result or error) after the
// timeout.
async function waitFor(fn, what, timeout = WAIT_TIMEOUT) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      if (err.fatal) throw err;
      last = err;
    }
    if (Date.now() >= deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${detail})`);
    }
    await sleep(25);
  }
}

class Server {
  constructor(script, proc) {
    this.script = script;
    this.proc = proc;
    this.stdout = "";
    this.stderr = "";
    this.exit = null; // { code, signal } once the process has ended
    this.exited = new Promise((resolve) => {
      proc.on("exit", (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
    proc.stdout.setEncoding("utf8");
    proc.stderr.setEncoding("utf8");
    proc.stdout.on("data", (s) => { this.stdout += s; });
    proc.stderr.on("data", (s) => { this.stderr += s; });
  }

  // http(pathAndQuery) -> the page URL on this server.
  http(p = "/") { return `http://127.0.0.1:${this.port}${p}`; }

  // stop(): SIGTERM, wait for the exit, and reject unless it was status 0
  // with no sanitizer report on stderr. Safe to call twice.
  async stop() {
    if (this.stopped) return;
    this.stopped = true;
    if (this.exit) {
      throw new Error(`duplex (${this.script}) had already exited (${JSON.stringify(this.exit)}) `
        + `before stop(); stderr:\n${this.stderr}`);
    }
    this.proc.kill("SIGTERM");
    let timer;
    const ended = await Promise.race([this.exited,
      new Promise((resolve) => { timer = setTimeout(resolve, STOP_TIMEOUT, null); })]);
    clearTimeout(timer);
    if (!ended) {
      this.proc.kill("SIGKILL");
      await this.exited;
      throw new Error(`duplex (${this.script}) did not exit within ${STOP_TIMEOUT} ms of SIGTERM; `
        + `stderr:\n${this.stderr}`);
    }
    if (ended.code !== 0) {
      throw new Error(`duplex (${this.script}) exited with ${JSON.stringify(ended)} after SIGTERM; `
        + `stderr:\n${this.stderr}`);
    }
    const marker = SANITIZER_MARKERS.find((m) => this.stderr.includes(m));
    if (marker) throw new Error(`duplex stderr has a sanitizer report (${marker}):\n${this.stderr}`);
  }

  // kill(): end the server without asserting anything (cleanup after a failure).
  async kill() {
    this.stopped = true;
    if (!this.exit) {
      this.proc.kill("SIGKILL");
      await this.exited;
    }
  }
}

// startServer(script [, { port, args }]) -> a running Server with .port.
// Port 0 (the default) lets the system pick a free one; args are more
// command-line options (e.g. ["--broker", redis.url]).
async function startServer(script, { port = 0, args = [] } = {}) {
  const proc = spawn(BIN, ["run", script, "--host", "127.0.0.1", "--port", String(port), ...args], {
    cwd: ROOT, stdio: ["ignore", "pipe", "pipe"],
  });
  const srv = new Server(script, proc);
  const spawnError = new Promise((_, reject) => proc.on("error", (err) => {
    reject(new Error(`could not start ${BIN}: ${err.message} (build it first: make build-lua5.4)`));
  }));
  const line = await Promise.race([spawnError, waitFor(() => {
    if (srv.exit) {
      throw Object.assign(new Error(`duplex exited (${JSON.stringify(srv.exit)}) before listening: `
        + `${BIN} run ${script}\nstderr:\n${srv.stderr}`), { fatal: true });
    }
    const nl = srv.stdout.indexOf("\n");
    return nl >= 0 && srv.stdout.slice(0, nl);
  }, `the listening line of ${script}`, START_TIMEOUT).catch(async (err) => {
    await srv.kill();
    throw err.fatal ? err : new Error(`${err.message}\nstderr:\n${srv.stderr}`);
  })]);
  const m = /^duplex: listening on ws:\/\/127\.0\.0\.1:(\d+)$/.exec(line);
  if (!m) {
    await srv.kill();
    throw new Error(`unexpected first stdout line from duplex: ${JSON.stringify(line)}\nstderr:\n${srv.stderr}`);
  }
  srv.port = Number(m[1]);
  return srv;
}

const REDIS = process.env.REDIS_SERVER || "/usr/bin/redis-server";

// freePort() -> a TCP port on 127.0.0.1 that was free a moment ago.
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// ping(port) -> true once a Redis on 127.0.0.1:port answers PING with PONG
// (raw RESP; rejects on a refused or silent connection).
function ping(port) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1");
    let got = "";
    const done = (err, ok) => { sock.destroy(); if (err) reject(err); else resolve(ok); };
    sock.setTimeout(1000, () => done(new Error("no answer to PING within 1 s")));
    sock.on("error", (err) => done(err));
    sock.on("connect", () => sock.write("*1\r\n$4\r\nPING\r\n"));
    sock.on("data", (d) => {
      got += d;
      if (!got.includes("\r\n")) return;
      if (got.startsWith("+PONG")) done(null, true);
      else done(new Error(`PING answered ${JSON.stringify(got.trim())}`));   // e.g. -LOADING
    });
  });
}

// Redis servers not yet stopped: killed if the test process ends first.
const liveRedis = new Set();
process.on("exit", () => { for (const proc of liveRedis) proc.kill("SIGKILL"); });

// startRedis() -> { port, url, dir, log(), stop() }: a redis-server of its
// own (Debian's, or $REDIS_SERVER) on a free port of 127.0.0.1, in a fresh
// temporary directory, saving nothing, answering PING. stop() ends it
// (SIGTERM, then SIGKILL) and removes the directory; safe to call twice.
async function startRedis() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "duplex-browser-redis-"));
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const proc = spawn(REDIS, ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir,
      "--save", "", "--appendonly", "no"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    liveRedis.add(proc);
    let output = "", exit = null;
    proc.stdout.setEncoding("utf8");
    proc.stderr.setEncoding("utf8");
    proc.stdout.on("data", (s) => { output += s; });
    proc.stderr.on("data", (s) => { output += s; });
    const exited = new Promise((resolve) => proc.on("exit", (code, signal) => {
      liveRedis.delete(proc);
      exit = { code, signal };
      resolve(exit);
    }));
    const spawnError = new Promise((_, reject) => proc.on("error", (err) => {
      reject(Object.assign(new Error(`could not start ${REDIS}: ${err.message} (apt-get install redis-server)`),
        { fatal: true }));
    }));
    let stopped = false;
    const stop = async () => {
      if (stopped) return;
      stopped = true;
      if (!exit) {
        proc.kill("SIGTERM");
        let timer;
        const ended = await Promise.race([exited,
          new Promise((resolve) => { timer = setTimeout(resolve, STOP_TIMEOUT, null); })]);
        clearTimeout(timer);
        if (!ended) { proc.kill("SIGKILL"); await exited; }
      }
      fs.rmSync(dir, { recursive: true, force: true });
    };
    try {
      await Promise.race([spawnError, waitFor(() => {
        if (exit) throw Object.assign(new Error(`redis-server exited (${JSON.stringify(exit)}) before answering: ${output}`), { fatal: true });
        return ping(port);
      }, `redis-server on port ${port} to answer PING`, START_TIMEOUT)]);
    } catch (err) {
      proc.kill("SIGKILL");
      await Promise.race([exited, spawnError.catch(() => {})]);
      // The port may have been taken between freePort() and the bind: try another.
      if (exit && /Address already in use/.test(output) && attempt < 5) continue;
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    return { port, url: `redis://127.0.0.1:${port}/0`, dir, log: () => output, stop };
  }
}

// openBrowser() -> a headless Chromium (the system's, never a download).
async function openBrowser() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: run make deps-browser, or set CHROMIUM`);
  }
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

// dropOffline(page, rounds [, o]): takes the page's network away rounds
// times while a topic streams, o.away ms each (default 600), and after each
// waits for the client's recovered() and o.after (default 40) more
// publications. The page keeps what duplex.js hands it as the duplex.js
// fixtures do: window.c, window.ticks (its publications), window.recovered.
async function dropOffline(page, rounds, { away = 600, after = 40 } = {}) {
  const count = (what) => page.evaluate((w) => window[w].length, what);
  const context = page.context();
  for (let round = 0; round < rounds; round++) {
    await context.setOffline(true);
    await waitFor(async () => (await page.evaluate(() => window.c.state)) === "reconnecting", "reconnecting");
    const before = await count("ticks");
    await new Promise((resolve) => setTimeout(resolve, away));
    await context.setOffline(false);
    await waitFor(async () => (await count("recovered")) === round + 1, `recovered() (round ${round + 1})`);
    await waitFor(async () => (await count("ticks")) >= before + after, "the missed ones, then new ones");
  }
}

// probeDuplex: an init for openPage that watches what duplex.js hands the
// page, without the page knowing: window.probe.messages gets the app's
// messages (as they came), .publications [topic, data, position] of every
// publication of a topic, .recovered [topic, info] and .lost [topic,
// reason] what the topics' recovered() and lost() got. (It runs in the
// page, before its scripts: self-contained.)
function probeDuplex() {
  const p = window.probe = { messages: [], publications: [], recovered: [], lost: [] };
  let real;
  Object.defineProperty(window, "duplex", {
    configurable: true,
    get() { return real; },
    set(d) {
      real = Object.assign({}, d, {
        connect(target, handlers, options) {
          handlers = handlers || {};
          const c = d.connect(target, Object.assign({}, handlers, {
            message(data, cc) {
              p.messages.push(data);
              if (handlers.message) return handlers.message(data, cc);
            },
          }), options);
          const subscribe = c.subscribe;
          c.subscribe = (topic, h) => {
            h = h || {};
            return subscribe(topic, Object.assign({}, h, {
              message(data, position, cc) {
                p.publications.push([topic, data, position]);
                if (h.message) return h.message(data, position, cc);
              },
              recovered(info) { p.recovered.push([topic, info]); if (h.recovered) h.recovered(info); },
              lost(reason) { p.lost.push([topic, reason]); if (h.lost) h.lost(reason); },
            }));
          };
          return c;
        },
      });
    },
  });
}

// probed(page) -> a copy of the page's window.probe (see probeDuplex).
function probed(page) {
  return page.evaluate(() => JSON.parse(JSON.stringify(window.probe)));
}

// Pages still open, for the screenshots of a failed test.
const openPages = new Set();

// openPage(browser, url [, { init }]) -> a page in a browser context of its
// own (its own cookies and storage, like a second person), loaded from url;
// init, a function, runs in the page before any of its scripts (a test's
// probe, or taking WebSocket away). Uncaught errors in the page are
// collected in page.errors.
async function openPage(browser, url, { init } = {}) {
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } });
  context.setDefaultTimeout(WAIT_TIMEOUT);
  if (init) await context.addInitScript(init);
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (err) => page.errors.push(err.message));
  page.label = new URL(url).searchParams.get("name") || `page${openPages.size + 1}`;
  openPages.add(page);
  page.on("close", () => openPages.delete(page));
  const response = await page.goto(url);
  if (!response || response.status() !== 200) {
    throw new Error(`GET ${url} answered ${response && response.status()}`);
  }
  return page;
}

// connected(status [, o]) -> whether a #status text says the page is
// connected: exactly "connected", or with o.prefix only beginning so (the
// game page says "connected, tick N").
function connected(status, { prefix = false } = {}) {
  return prefix ? /^connected\b/.test(status) : status.trim() === "connected";
}

// waitConnected(page [, o]): until #status says connected (o as above).
async function waitConnected(page, o) {
  return waitFor(async () => connected(await statusOf(page), o), `#status "connected" on ${page.url()}`);
}

// text(page, selector) -> the text of the first element matching selector,
// or null if there is none; value(page, selector) -> a form field's value.
// Neither waits (unlike playwright's own getters): the waits are waitFor's.
function text(page, selector) {
  return page.evaluate((sel) => {
    const el = document.querySelector(sel);
    return el ? el.textContent : null;
  }, selector);
}

function value(page, selector) {
  return page.evaluate((sel) => {
    const el = document.querySelector(sel);
    return el ? el.value : null;
  }, selector);
}

async function statusOf(page) {
  return (await text(page, "#status")) || "";
}

// shoot(page, name) -> the path of a screenshot of the page, written to
// build/test-output/browser/NAME.png, or under $BROWSER_OUTPUT (the
// directory is made if missing).
async function shoot(page, name) {
  fs.mkdirSync(OUTPUT, { recursive: true });
  const file = path.join(OUTPUT, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${path.relative(ROOT, file)}`);
  return file;
}

// withPages(prefix, fn) -> a test body that runs fn; if it fails, every
// page still open is shot (PREFIX-failed-LABEL.png, LABEL being the page's
// ?name=) before the failure is passed on. Either way the pages' browser
// contexts are closed at the end, so the next test starts with none.
function withPages(prefix, fn) {
  return async (t) => {
    try {
      await fn(t);
    } catch (err) {
      for (const page of [...openPages]) {
        await shoot(page, `${prefix}-failed-${page.label}`).catch(() => {});
      }
      throw err;
    } finally {
      for (const page of [...openPages]) await page.context().close().catch(() => {});
    }
  };
}

module.exports = {
  ROOT, OUTPUT, WAIT_TIMEOUT, startServer, startRedis, openBrowser, openPage, probeDuplex, probed, waitFor, connected,
  waitConnected, statusOf, text, value, shoot, withPages, dropOffline,
};
