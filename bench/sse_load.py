#!/usr/bin/env python3
"""The load of bench/sse.sh (bench/sse_app.lua on the server side): N
connections to ws://HOST:PORT/, as WebSocket clients or as the fallback's
Server-Sent Events clients (core/transport/sse.c), that either only read
and count (down) or only send 32 B text messages (up), until the server
goes away. Standard library only.

  sse_load.py PORT MODE TRANSPORT [--conns N] [--batch B] [--messages M]

  down  each connection counts the bytes it reads after the handshake
        (ws: 34 a message, a 2-byte header and 32 B; sse: 41, "data: t",
        32 B and a blank line) until EOF.
  up    each connection sends M/N messages (M 0: until the server goes),
        B at a time: ws, B masked frames in one write, the next B as soon
        as the socket takes them (a WebSocket client does not wait for the
        server); sse, one POST ?duplex_session=ID&seq=K of B masked
        frames, the next when its 204 is in (one POST at a time, as
        duplex.js sends them), on a kept-alive connection of its own.

Prints one line: "received R sent S posts P errors E" (R in messages)."""
import os
import selectors
import socket
import sys

HOST = "127.0.0.1"
PAYLOAD = b"0123456789abcdef" * 2
WS_DOWN = 2 + len(PAYLOAD)
SSE_DOWN = len(b"data: t") + len(PAYLOAD) + 2
MASK = b"\x11\x22\x33\x44"
FRAME = bytes([0x81, 0x80 | len(PAYLOAD)]) + MASK + bytes(
    b ^ MASK[i % 4] for i, b in enumerate(PAYLOAD))


def read_until(sock, buf, marker):
    while marker not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        buf += chunk
    return buf


def open_ws(port):
    s = socket.create_connection((HOST, port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
              % (HOST.encode(), port))
    buf = read_until(s, b"", b"\r\n\r\n")
    head, _, rest = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError("upgrade refused: %r" % head[:80])
    return s, None, rest


def open_sse(port):
    s = socket.create_connection((HOST, port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n\r\n"
              % (HOST.encode(), port))
    buf = read_until(s, b"", b"\r\n\r\n")
    head, _, rest = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError("event stream refused: %r" % head[:80])
    rest = read_until(s, rest, b"}\n\n")           # the "o" event: the session
    at = rest.index(b"data: o")
    end = rest.index(b"}\n\n", at) + 3
    sid = rest[at:end].split(b'"session":"')[1][:32]
    return s, sid, rest[end:]


class Conn:
    def __init__(self, sock, sid, extra):
        self.sock, self.sid = sock, sid
        self.bytes = len(extra)
        self.post = None             # sse up: the POST connection
        self.inbuf = b""
        self.out = b""
        self.left = 0                # messages still to send (None: no end)
        self.seq = 0
        self.waiting = False         # sse up: a POST is out, its answer not in
        self.eof = False


def main():
    port, mode, transport = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    opts = dict(zip(sys.argv[4::2], sys.argv[5::2]))
    n = int(opts.get("--conns", 100))
    batch = int(opts.get("--batch", 1))
    total = int(opts.get("--messages", 0))
    opener = open_ws if transport == "ws" else open_sse
    conns = []
    for _ in range(n):
        c = Conn(*opener(port))
        if mode == "up":
            c.left = -(-total // n) if total else None
            if transport == "sse":
                c.post = socket.create_connection((HOST, port))
                c.post.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns.append(c)
    sel = selectors.DefaultSelector()
    for c in conns:
        c.sock.setblocking(False)
        sel.register(c.sock, selectors.EVENT_READ, (c, "stream"))
        if c.post:
            c.post.setblocking(False)
            sel.register(c.post, selectors.EVENT_READ, (c, "post"))
    sent = posts = errors = 0
    batch_frames = FRAME * batch

    def refill(c):
        """Queues c's next batch if it has one and may send it; True if so."""
        nonlocal sent, posts
        if c.out or c.waiting or c.eof or c.left == 0:
            return False
        k = batch if c.left is None else min(batch, c.left)
        body = batch_frames if k == batch else FRAME * k
        if c.left is not None:
            c.left -= k
        sent += k
        if transport == "ws":
            c.out = body
        else:
            c.out = (b"POST /?duplex_session=%s&seq=%d HTTP/1.1\r\nHost: %s\r\n"
                     b"Content-Length: %d\r\n\r\n" % (c.sid, c.seq, HOST.encode(), len(body))) + body
            c.seq += 1
            c.waiting = True
            posts += 1
        return True

    def flush(c):
        s = c.sock if transport == "ws" else c.post
        try:
            w = s.send(c.out)
        except BlockingIOError:
            w = 0
        except OSError:
            c.eof = True
            c.out = b""
            return
        c.out = c.out[w:]
        more = c.out or (transport == "ws" and c.left != 0 and not c.eof)
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if more else 0)
        sel.modify(s, want, (c, "stream" if transport == "ws" else "post"))

    if mode == "up":
        for c in conns:
            if refill(c):
                flush(c)
    live = len(conns)
    while live:
        events = sel.select(timeout=120)
        if not events:
            print("sse_load: nothing for 120 s", file=sys.stderr)
            errors += 1
            break
        for key, ev in events:
            c, role = key.data
            if ev & selectors.EVENT_WRITE:
                if c.out or refill(c):                  # ws: the next batch once one is taken
                    flush(c)
                else:
                    sel.modify(key.fileobj, selectors.EVENT_READ, key.data)
            if not ev & selectors.EVENT_READ:
                continue
            try:
                chunk = key.fileobj.recv(262144)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            except BlockingIOError:
                continue
            if not chunk:
                sel.unregister(key.fileobj)
                key.fileobj.close()
                if role == "stream":
                    c.eof = True
                    live -= 1
                continue
            if role == "stream":
                c.bytes += len(chunk)
                continue
            c.inbuf += chunk                            # sse up: the POST's answers
            while b"\r\n\r\n" in c.inbuf:
                head, _, c.inbuf = c.inbuf.partition(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 204"):
                    errors += 1
                    print("sse_load: %r" % head[:120], file=sys.stderr)
                c.waiting = False
            if refill(c):
                flush(c)
    per = WS_DOWN if transport == "ws" else SSE_DOWN
    received = sum(c.bytes // per for c in conns) if mode == "down" else 0
    odd = sum(c.bytes % per for c in conns) if mode == "down" else 0
    if odd:
        errors += 1
        print("sse_load: %d bytes that make no whole message" % odd, file=sys.stderr)
    print("received %d sent %d posts %d errors %d" % (received, sent, posts, errors))


if __name__ == "__main__":
    try:
        main()
    except (OSError, IndexError, ValueError) as e:
        print("sse_load: %s" % e, file=sys.stderr)
        sys.exit(1)
