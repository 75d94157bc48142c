#!/usr/bin/env node
// Interop check with Node's `ws` (the repo's devDependency).
//
// Usage: node spec/interop/node_client.js PORT [CAFILE] [--deflate]
// Expects spec/fixtures/echo.lua on ws://127.0.0.1:PORT/ (with CAFILE:
// wss://, the server's certificate checked against that CA; with
// --deflate, permessage-deflate must be agreed on when offered; echo; the text
// "close-me" makes the server close with 4001). Exits 0 when every check
// passes; otherwise prints each failed check and exits 1.
'use strict';
const fs = require('fs');
const WebSocket = require('ws');

const args = process.argv.slice(2);
const deflateExpected = args.includes('--deflate');
const [portArg, caFile] = args.filter((a) => a !== '--deflate');
const tls = caFile ? { ca: fs.readFileSync(caFile) } : null;

const SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20];
const failures = [];
const check = (cond, what) => { if (!cond) failures.push(what); };

const textOf = (n) => 'The quick brown fox jumps over the lazy dog. '.repeat(Math.ceil(n / 45) + 1).slice(0, n);
const bytesOf = (n) => { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = (i * 7 + 3) % 256; return b; };

function open(url, opts) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, Object.assign({ perMessageDeflate: false, maxPayload: 0 }, tls || {}, opts));
    const queue = [];
    const waiters = [];
    ws.closed = new Promise((res) => ws.on('close', (code, reason) => res({ code, reason: reason.toString() })));
    ws.on('message', (data, isBinary) => {
      const m = { data, isBinary };
      if (waiters.length) waiters.shift()(m); else queue.push(m);
    });
    ws.next = (ms = 10000) => new Promise((res, rej) => {
      if (queue.length) return res(queue.shift());
      const t = setTimeout(() => rej(new Error('timeout waiting for a message')), ms);
      ws.closed.then((c) => rej(new Error(`closed (${c.code}) while waiting for a message`)));
      waiters.push((m) => { clearTimeout(t); res(m); });
    });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

const withTimeout = (p, ms, what) => Promise.race([p,
  new Promise((_, rej) => setTimeout(() => rej(new Error('timeout: ' + what)), ms).unref())]);

async function echo(ws, msg, binary, what) {
  ws.send(msg, { binary });
  const m = await ws.next();
  if (m.isBinary !== binary) return failures.push(`${what}: type changed (binary=${m.isBinary})`);
  const want = Buffer.isBuffer(msg) ? msg : Buffer.from(msg);
  if (!want.equals(m.data)) failures.push(`${what}: echo differs (sent ${want.length}, got ${m.data.length})`);
}

async function main(port) {
  const url = `${tls ? 'wss' : 'ws'}://127.0.0.1:${port}/`;

  let ws = await open(url);
  for (const n of SIZES) {
    await echo(ws, textOf(n), false, `text ${n} bytes`);
    await echo(ws, bytesOf(n), true, `binary ${n} bytes`);
  }
  await echo(ws, 'h\u00e9llo w\u00f6rld \u2603 \u{1d11e}', false, 'multi-byte text');
  // many small messages sent without waiting come back whole, in order
  for (let i = 0; i < 2000; i++) ws.send(`small ${i}`);
  for (let i = 0; i < 2000; i++) {
    const s = await ws.next();
    if (s.data.toString() !== `small ${i}`) { failures.push(`small message ${i}: got ${s.data}`); break; }
  }
  // fragmented messages: parts with fin:false, then the last with fin:true
  ws.send('frag', { fin: false });
  ws.send('mented \u2603', { fin: false });
  ws.send(' message', { fin: true });
  let m = await ws.next();
  check(!m.isBinary && m.data.toString() === 'fragmented \u2603 message', `fragmented text: got ${m.data}`);
  ws.send(Buffer.from([0, 1]), { binary: true, fin: false });
  ws.send(Buffer.from([2, 255]), { binary: true, fin: true });
  m = await ws.next();
  check(m.isBinary && m.data.equals(Buffer.from([0, 1, 2, 255])), `fragmented binary: got ${m.data.toString('hex')}`);
  // the server answers our ping
  const pong = new Promise((res) => ws.once('pong', (d) => res(d.toString())));
  ws.ping('node-ping');
  check((await withTimeout(pong, 5000, 'pong')) === 'node-ping', 'pong payload');
  ws.close(1000, 'done');
  let c = await withTimeout(ws.closed, 5000, 'close 1000');
  check(c.code === 1000, `client close: server answered ${c.code}`);

  // the server closes with 4001 when asked
  ws = await open(url);
  ws.send('close-me');
  c = await withTimeout(ws.closed, 5000, 'close-me');
  check(c.code === 4001, `close-me: expected 4001, got ${c.code}`);

  // offering permessage-deflate must not break anything (accepted or not)
  ws = await open(url, { perMessageDeflate: true });
  if (deflateExpected) check(/permessage-deflate/.test(ws.extensions), `permessage-deflate not negotiated: '${ws.extensions}'`);
  await echo(ws, textOf(2000), false, 'text with deflate offered');
  await echo(ws, bytesOf(70000), true, 'binary with deflate offered');
  ws.close(1000);
  c = await withTimeout(ws.closed, 5000, 'deflate-offered close');
  check(c.code === 1000, `deflate-offered close: ${c.code}`);
}

const port = Number(portArg);
if (!port) { console.error('usage: node_client.js PORT [CAFILE] [--deflate]'); process.exit(2); }
withTimeout(main(port), 60000, 'whole run').catch((e) => failures.push(String(e && e.message || e))).then(() => {
  if (failures.length) {
    for (const f of failures) console.log('FAIL node ws: ' + f);
    process.exit(1);
  }
  console.log('ok node ws');
  process.exit(0);
});
