#!/usr/bin/env node
// Reference echo server on Node's `ws`, for bench/echo.sh.
//   node bench/ws-echo-server.js [--host 127.0.0.1] [--port 0]
// First stdout line: "ws: listening on ws://HOST:PORT" (same shape as duplex).
// Every message goes back to its sender, text as text, binary as binary.
'use strict';

const { WebSocketServer } = require('ws');

let host = '127.0.0.1';
let port = 0;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--host') host = argv[++i];
  else if (argv[i] === '--port') port = Number(argv[++i]);
  else {
    console.error(`unknown option: ${argv[i]}`);
    process.exit(2);
  }
}

// ws defaults: perMessageDeflate off on the server, as in duplex.
const wss = new WebSocketServer({ host, port });
wss.on('listening', () => {
  const a = wss.address();
  process.stdout.write(`ws: listening on ws://${a.address}:${a.port}\n`);
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
wss.on('error', (err) => {
  console.error(`ws: ${err.message}`);
  process.exit(1);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
