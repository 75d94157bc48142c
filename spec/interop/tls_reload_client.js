#!/usr/bin/env node
// A wss connection that lives across a certificate reload (Node's `ws`).
//
// Usage: node spec/interop/tls_reload_client.js PORT CAFILE BEFORE_CN AFTER_CN GOFILE
// Opens connection A to wss://127.0.0.1:PORT/ (spec/fixtures/echo.lua),
// checks the server's certificate is BEFORE_CN's and A echoes, prints
// "open", then waits for GOFILE to exist (the spec makes it once the
// server reloaded). Then opens connection B, which must get AFTER_CN's
// certificate, and checks that A and B both echo. Exits 0 when every check
// passes; otherwise prints each failure and exits 1.
'use strict';
const fs = require('fs');
const WebSocket = require('ws');

const [port, caFile, beforeCn, afterCn, goFile] = process.argv.slice(2);
if (!goFile) { console.error('usage: tls_reload_client.js PORT CAFILE BEFORE_CN AFTER_CN GOFILE'); process.exit(2); }
const ca = fs.readFileSync(caFile);
const failures = [];
const url = `wss://127.0.0.1:${port}/`;

function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { ca, perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function echo(ws, text) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no echo of '${text}'`)), 10000);
    ws.once('message', (data) => { clearTimeout(t); resolve(data.toString()); });
    ws.once('close', (code) => reject(new Error(`closed (${code}) before the echo of '${text}'`)));
    ws.send(text);
  }).then((got) => { if (got !== text) failures.push(`echo of '${text}': got '${got}'`); });
}

const cnOf = (ws) => ws._socket.getPeerCertificate().subject.CN;

function waitFile(path, ms) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + ms;
    const look = () => {
      if (fs.existsSync(path)) return resolve();
      if (Date.now() > deadline) return reject(new Error('no go file within ' + ms + ' ms'));
      setTimeout(look, 20);
    };
    look();
  });
}

async function main() {
  const a = await open();
  if (cnOf(a) !== beforeCn) failures.push(`A: certificate CN '${cnOf(a)}', expected '${beforeCn}'`);
  await echo(a, 'A before the reload');
  console.log('open');
  await waitFile(goFile, 30000);
  const b = await open();
  if (cnOf(b) !== afterCn) failures.push(`B: certificate CN '${cnOf(b)}', expected '${afterCn}'`);
  await echo(a, 'A after the reload');
  await echo(b, 'B after the reload');
  a.close(1000);
  b.close(1000);
}

main().catch((e) => failures.push(String(e && e.message || e))).then(() => {
  for (const f of failures) console.log('FAIL tls reload: ' + f);
  if (!failures.length) console.log('ok tls reload');
  process.exit(failures.length ? 1 : 0);
});
