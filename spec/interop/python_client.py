#!/usr/bin/python3
"""Interop check with Python's `websockets` (Debian's python3-websockets 10.4).

Usage: /usr/bin/python3 spec/interop/python_client.py PORT [CAFILE]
Expects spec/fixtures/echo.lua on ws://127.0.0.1:PORT/ (with CAFILE:
wss://, the server's certificate checked against that CA; with --deflate,
permessage-deflate must be agreed on when offered; echo; the text
"close-me" makes the server close with 4001). Exits 0 when every check
passes; otherwise prints each failed check and exits 1.
"""
import asyncio
import ssl
import sys

import websockets
from websockets.exceptions import ConnectionClosed

SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20]
DEFLATE_EXPECTED = False  # --deflate: the server must agree to permessage-deflate
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def text_of(n):
    block = "The quick brown fox jumps over the lazy dog. "
    return (block * (n // len(block) + 1))[:n]


def bytes_of(n):
    block = bytes((i * 7 + 3) % 256 for i in range(256))
    return (block * (n // 256 + 1))[:n]


async def echo(ws, msg, what):
    await ws.send(msg)
    got = await asyncio.wait_for(ws.recv(), 10)
    if type(got) is not type(msg):
        failures.append(f"{what}: got a {type(got).__name__} back, sent a {type(msg).__name__}")
    elif got != msg:
        failures.append(f"{what}: echo differs (sent {len(msg)}, got {len(got)})")


TLS = None  # an ssl.SSLContext trusting the test CA, for wss://


def connect(uri, **kw):
    opts = dict(max_size=None, compression=None, ping_interval=None,
                open_timeout=5, close_timeout=5)
    if TLS is not None:
        opts["ssl"] = TLS
    opts.update(kw)
    return websockets.connect(uri, **opts)


async def main(port):
    uri = f"{'wss' if TLS else 'ws'}://127.0.0.1:{port}/"

    async with connect(uri) as ws:
        for n in SIZES:
            await echo(ws, text_of(n), f"text {n} bytes")
            await echo(ws, bytes_of(n), f"binary {n} bytes")
        await echo(ws, "h\u00e9llo w\u00f6rld \u2603 \U0001d11e", "multi-byte text")
        # many small messages sent without waiting come back whole, in order
        for i in range(2000):
            await ws.send(f"small {i}")
        for i in range(2000):
            got = await asyncio.wait_for(ws.recv(), 10)
            if got != f"small {i}":
                failures.append(f"small message {i}: got {got!r}")
                break
        # fragmented messages: an iterable is sent as one message in fragments
        await ws.send(iter(["frag", "mented ", "\u2603 message"]))
        got = await asyncio.wait_for(ws.recv(), 10)
        check(got == "fragmented \u2603 message", f"fragmented text: got {got!r}")
        await ws.send(iter([b"\x00\x01", b"", b"\x02\xff"]))
        got = await asyncio.wait_for(ws.recv(), 10)
        check(got == b"\x00\x01\x02\xff", f"fragmented binary: got {got!r}")
        # the server answers our ping
        pong = await ws.ping(b"py-ping")
        await asyncio.wait_for(pong, 5)
        await ws.close(1000, "done")
        check(ws.close_code == 1000, f"client close: server answered {ws.close_code}")

    # the server closes with 4001 when asked
    async with connect(uri) as ws:
        await ws.send("close-me")
        try:
            got = await asyncio.wait_for(ws.recv(), 5)
            failures.append(f"close-me: expected a close, got message {got!r}")
        except ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd else None
            check(code == 4001, f"close-me: expected close 4001, got {code} ({e})")
        check(ws.close_code == 4001, f"close-me: close_code {ws.close_code}")

    # offering permessage-deflate must not break anything (accepted or not)
    async with connect(uri, compression="deflate") as ws:
        if DEFLATE_EXPECTED:
            names = [e.name for e in ws.extensions]
            check("permessage-deflate" in names, f"permessage-deflate not negotiated: {names}")
        await echo(ws, text_of(2000), "text with deflate offered")
        await echo(ws, bytes_of(70000), "binary with deflate offered")
        await ws.close(1000)
        check(ws.close_code == 1000, f"deflate-offered close: {ws.close_code}")


def run():
    global TLS, DEFLATE_EXPECTED
    args = sys.argv[1:]
    if "--deflate" in args:
        args.remove("--deflate")
        DEFLATE_EXPECTED = True
    if len(args) not in (1, 2):
        print("usage: python_client.py PORT [CAFILE] [--deflate]", file=sys.stderr)
        return 2
    if len(args) == 2:
        TLS = ssl.create_default_context(cafile=args[1])
    try:
        asyncio.run(asyncio.wait_for(main(int(args[0])), 60))
    except Exception as e:  # a failure to connect, a timeout, an unexpected close
        failures.append(f"{type(e).__name__}: {e}")
    if failures:
        for f in failures:
            print("FAIL python websockets " + websockets.__version__ + ": " + f)
        return 1
    print("ok python websockets " + websockets.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(run())
