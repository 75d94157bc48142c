#!/usr/bin/python3
"""A hostile WebSocket server, for the client's side of the ping flood.

Usage: ping_flood_server.py SECONDS
Listens on 127.0.0.1 (a free port, printed on the first line of stdout),
accepts one client with a 4 KiB receive buffer, answers its upgrade with a
correct 101, then sends 125-byte pings as fast as the socket takes them
for SECONDS and never reads, and exits printing how many pings went out.
"""
import base64
import hashlib
import socket
import sys
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def main():
    seconds = float(sys.argv[1])
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by the accepted socket
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.settimeout(30)
    print(lsock.getsockname()[1], flush=True)
    conn, _ = lsock.accept()
    conn.settimeout(10)
    head = b""
    while b"\r\n\r\n" not in head:
        data = conn.recv(4096)
        if not data:
            return 1
        head += data
    key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
               if line.lower().startswith(b"sec-websocket-key:"))
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    frame = bytes([0x89, 125]) + b"p" * 125
    batch = frame * 256
    conn.setblocking(False)
    off, sent, stop = 0, 0, time.time() + seconds
    while time.time() < stop:
        try:
            n = conn.send(batch[off:])
        except BlockingIOError:
            time.sleep(0.001)
            continue
        except OSError:
            break
        sent += n
        off = (off + n) % len(batch)
    print("pings", sent // len(frame), flush=True)
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
