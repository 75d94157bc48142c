#!/usr/bin/env node
// spec/support/ws_echo_server.js: a stand-in for `duplex run spec/fixtures/echo.lua`
// built on Node's `ws`, to prove the raw client and the interop clients on a
// known-good server:  DUPLEX_BIN=spec/support/ws-as-duplex busted spec/framing_spec.lua
// Only the echo fixture's behaviour is emulated (echo; "close-me" -> close 4001).
// For the conformance suite (spec/conformance/README.md) it also takes
//   --deflate off|shared|dedicated  permessage-deflate like duplex's: shared =
//       no context takeover either way, always announced; dedicated = ws's
//       defaults (context takeover unless the client asks otherwise); both
//       leave messages under 64 bytes uncompressed (threshold 64)
// and, when the app script (DUPLEX_WS_APP, set by ws-as-duplex) has a
// `protocols = { "a", "b" }` list, picks the first of the client's offers
// that the list holds (else none), as duplex does.
'use strict';
const fs = require('fs');
const { WebSocketServer } = require('ws');

const args = process.argv.slice(2);
let host = '127.0.0.1', port = 0, maxPayload = 16 * 1024 * 1024, deflate = 'off';
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--host') host = args[++i];
  else if (args[i] === '--port') port = Number(args[++i]);
  else if (args[i] === '--max-message') maxPayload = Number(args[++i]);
  else if (args[i] === '--deflate') deflate = args[++i];
  else if (args[i] === '--version') { console.log('duplex 0.0.0-ws'); process.exit(0); }
}

const options = { host, port, maxPayload };
if (deflate === 'shared') {
  options.perMessageDeflate = { serverNoContextTakeover: true, clientNoContextTakeover: true, threshold: 64 };
} else if (deflate === 'dedicated') {
  options.perMessageDeflate = { threshold: 64 };
} else if (deflate !== 'off') {
  console.error(`duplex: --deflate must be off, shared or dedicated`);
  process.exit(2);
}
let appProtocols = null;
if (process.env.DUPLEX_WS_APP) {
  let src = '';
  try { src = fs.readFileSync(process.env.DUPLEX_WS_APP, 'utf8'); } catch (e) { /* no app: plain echo */ }
  const m = src.match(/\bprotocols\s*=\s*\{([^}]*)\}/);
  if (m) appProtocols = (m[1].match(/"[^"]*"|'[^']*'/g) || []).map((q) => q.slice(1, -1));
}
if (appProtocols) {
  // the client's offers come in the client's order
  options.handleProtocols = (offers) => {
    for (const p of offers) if (appProtocols.includes(p)) return p;
    return false;
  };
}
const wss = new WebSocketServer(options);
wss.on('listening', () => {
  process.stdout.write(`duplex: listening on ws://${host}:${wss.address().port}\n`);
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.toString() === 'close-me') return ws.close(4001, 'closed by fixture');
    ws.send(data, { binary: isBinary });
  });
  ws.on('error', () => {});
});
process.on('SIGTERM', () => {
  for (const c of wss.clients) c.close(1001, 'going away');
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
});
