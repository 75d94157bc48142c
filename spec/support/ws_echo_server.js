#!/usr/bin/env node
// spec/support/ws_echo_server.js: a stand-in for `duplex run spec/fixtures/echo.lua`
// built on Node's `ws`, to prove the raw client and the interop clients on a
// known-good server:  DUPLEX_BIN=spec/support/ws-as-duplex busted spec/framing_spec.lua
// Only the echo fixture's behaviour is emulated (echo; "close-me" -> close 4001).
'use strict';
const { WebSocketServer } = require('ws');

const args = process.argv.slice(2);
let host = '127.0.0.1', port = 0, maxPayload = 16 * 1024 * 1024;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--host') host = args[++i];
  else if (args[i] === '--port') port = Number(args[++i]);
  else if (args[i] === '--max-message') maxPayload = Number(args[++i]);
  else if (args[i] === '--version') { console.log('duplex 0.0.0-ws'); process.exit(0); }
}

const wss = new WebSocketServer({ host, port, maxPayload });
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
