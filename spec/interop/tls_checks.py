#!/usr/bin/python3
"""TLS checks with Python's ssl, http.client and websockets (Debian's).

Usage:
  tls_checks.py https PORT CAFILE [NAME SHA256]
      spec/fixtures/http_app.lua over https://: two requests on one kept-alive
      connection (GET /health, then GET /notes.txt from the static files),
      then GET /NAME on it, whose body must have that SHA-256 (a large
      static file, sent from its descriptor a record at a time).
  tls_checks.py client-cert PORT CAFILE CERT KEY
      an echo app whose tls.ca asks for client certificates: a client with
      CERT/KEY gets its echo, a client without one is refused.
Exits 0 when every check passes; otherwise prints each failure and exits 1.
"""
import asyncio
import hashlib
import http.client
import ssl
import sys

import websockets

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def https(port, cafile, name=None, sha=None):
    ctx = ssl.create_default_context(cafile=cafile)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    conn.request("GET", "/health")
    r = conn.getresponse()
    body = r.read()
    check(r.status == 200, f"/health: status {r.status}")
    check(body == b'{"ok":true}', f"/health: body {body!r}")
    sock = conn.sock
    conn.request("GET", "/notes.txt")
    r = conn.getresponse()
    body = r.read()
    check(r.status == 200, f"/notes.txt: status {r.status}")
    check(len(body) > 0, "/notes.txt: empty body")
    check(conn.sock is sock, "the second request did not reuse the kept-alive connection")
    if name:
        conn.request("GET", "/" + name)
        r = conn.getresponse()
        body = r.read()
        check(r.status == 200, f"/{name}: status {r.status}")
        check(int(r.getheader("content-length", "-1")) == len(body),
              f"/{name}: {len(body)} bytes, content-length {r.getheader('content-length')}")
        check(hashlib.sha256(body).hexdigest() == sha, f"/{name}: the body differs ({len(body)} bytes)")
    conn.close()


async def client_cert(port, cafile, cert, key):
    uri = f"wss://127.0.0.1:{port}/"
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.load_cert_chain(cert, key)
    async with websockets.connect(uri, ssl=ctx, open_timeout=5, close_timeout=5) as ws:
        await ws.send("with a certificate")
        got = await asyncio.wait_for(ws.recv(), 5)
        check(got == "with a certificate", f"echo with a client certificate: {got!r}")
    bare = ssl.create_default_context(cafile=cafile)
    try:
        async with websockets.connect(uri, ssl=bare, open_timeout=5, close_timeout=5) as ws:
            await ws.send("without")
            got = await asyncio.wait_for(ws.recv(), 5)
            failures.append(f"a client without a certificate got an echo: {got!r}")
    except (ssl.SSLError, ConnectionError, websockets.exceptions.WebSocketException, OSError):
        pass  # refused, as it must be


def main():
    args = sys.argv[1:]
    try:
        if args[:1] == ["https"] and len(args) in (3, 5):
            https(int(args[1]), *args[2:])
        elif args[:1] == ["client-cert"] and len(args) == 5:
            asyncio.run(asyncio.wait_for(client_cert(int(args[1]), *args[2:]), 30))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Exception as e:
        failures.append(f"{type(e).__name__}: {e}")
    for f in failures:
        print("FAIL tls " + args[0] + ": " + f)
    if not failures:
        print("ok tls " + args[0])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
