// Opens N connections (Node ws) to URL, prints "ready" once all are open,
// then waits until each has received one message equal to EXPECT, prints
// "got N" and exits 0; exits 1 with a reason on any error or mismatch, or
// when TIMEOUT seconds pass.
//   node spec/interop/crowd.js URL N EXPECT [TIMEOUT]
'use strict';
const WebSocket = require('ws');

const [url, nArg, expect, timeoutArg] = process.argv.slice(2);
const n = Number(nArg);
const timeout = Number(timeoutArg || 60) * 1000;
let open = 0, got = 0, failed = false;

function fail(why) {
  if (failed) return;
  failed = true;
  console.log('fail ' + why);
  process.exit(1);
}
setTimeout(() => fail(`timeout: ${open} open, ${got} received`), timeout).unref();

// Opens in batches, so the listen backlog is never the limit.
let started = 0;
function startBatch() {
  const end = Math.min(n, started + 500);
  for (; started < end; started++) {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.on('open', () => {
      open++;
      if (open === n) console.log('ready');
      else if (open === started && started < n) startBatch();
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary || data.toString() !== expect) return fail('unexpected message: ' + data);
      got++;
      ws.terminate();
      if (got === n) { console.log('got ' + got); process.exit(0); }
    });
    ws.on('error', (e) => fail('error: ' + e.message));
  }
}
startBatch();
