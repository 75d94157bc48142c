#!/usr/bin/env node
// Reference broadcast server on Node's `ws`, for bench/scenarios.sh: the
// protocol of lua/duplex/bench_app.lua's /broadcast, which
// `duplex bench broadcast` drives.
//   node bench/ws-broadcast-server.js [--host 127.0.0.1] [--port 0]
// First stdout line: "ws: listening on ws://HOST:PORT" (same shape as duplex).
// Every connection (any path) is a subscriber; a message from one goes to
// every other open connection, text as text, binary as binary. Broadcast
// the way ws's own README does it: for each client except the sender,
// client.send(data) (ws frames it once per client; it has no public
// "prepared frame" API).
'use strict';

const { WebSocketServer, WebSocket } = require('ws');

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

// ws defaults: perMessageDeflate off on the server, as in duplex;
// clientTracking on (wss.clients).
const wss = new WebSocketServer({ host, port });
wss.on('listening', () => {
  const a = wss.address();
  process.stdout.write(`ws: listening on ws://${a.address}:${a.port}\n`);
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    wss.clients.forEach((client) => {
      if (client !== ws && client.readyState === WebSocket.OPEN) {
        client.send(data, { binary: isBinary });
      }
    });
  });
  ws.on('error', () => {});
});
wss.on('error', (err) => {
  console.error(`ws: ${err.message}`);
  process.exit(1);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
