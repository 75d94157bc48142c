#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets: python3 fuzz/make_corpus.py [DIR]

DIR defaults to fuzz/corpus; each target gets DIR/<target>/, emptied first.
Deterministic (no randomness that is not seeded), so the committed corpus
can be regenerated and diffed. The http, frame and inflate inputs start
with the control byte their harness reads (see the harness's comment);
utf8 inputs are the text alone.
"""
import base64
import os
import random
import shutil
import struct
import sys
import zlib

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
corpora = {}


def add(target, name, data):
    corpora.setdefault(target, []).append((name, bytes(data)))


def key(n):
    return base64.b64encode(bytes((n * 7 + i) & 0xFF for i in range(16))).decode()


# ---- http: control byte (split point, step), then a request head ----------

def req(lines, end="\r\n", tail=b""):
    return (end.join(lines) + end + end).encode("latin-1") + tail


chrome = [
    "GET /chat HTTP/1.1",
    "Host: localhost:8080",
    "Connection: Upgrade",
    "Pragma: no-cache",
    "Cache-Control: no-cache",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Upgrade: websocket",
    "Origin: http://localhost:8080",
    "Sec-WebSocket-Version: 13",
    "Accept-Encoding: gzip, deflate, br",
    "Accept-Language: en-GB,en;q=0.9",
    "Sec-WebSocket-Key: " + key(1),
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
]
firefox = [
    "GET /ws?room=lobby&user=ann HTTP/1.1",
    "Host: example.org",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Accept: */*",
    "Accept-Language: en-US,en;q=0.5",
    "Accept-Encoding: gzip, deflate, br",
    "Sec-WebSocket-Version: 13",
    "Origin: https://example.org",
    "Sec-WebSocket-Extensions: permessage-deflate",
    "Sec-WebSocket-Key: " + key(2),
    "Connection: keep-alive, Upgrade",
    "Sec-Fetch-Dest: websocket",
    "Sec-Fetch-Mode: websocket",
    "Sec-Fetch-Site: same-origin",
    "Pragma: no-cache",
    "Cache-Control: no-cache",
    "Upgrade: websocket",
]
curl = [
    "GET /echo HTTP/1.1",
    "Host: 127.0.0.1:8080",
    "User-Agent: curl/7.88.1",
    "Accept: */*",
    "Connection: Upgrade",
    "Upgrade: websocket",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: " + key(3),
]
python_ws = [
    "GET / HTTP/1.1",
    "Host: localhost:8765",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: " + key(4),
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
    "User-Agent: Python/3.11 websockets/10.4",
]
node_ws = [
    "GET /chat HTTP/1.1",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: " + key(5),
    "Connection: Upgrade",
    "Upgrade: websocket",
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
    "Sec-WebSocket-Protocol: chat, superchat",
    "Host: localhost:8080",
]


def replace(lines, prefix, new):
    """lines with the line starting with prefix replaced by new (or dropped)."""
    out = []
    for l in lines:
        if l.lower().startswith(prefix.lower()):
            if new is not None:
                out.append(new)
        else:
            out.append(l)
    return out


H = "http"
add(H, "chrome", b"\x40" + req(chrome))
add(H, "firefox", b"\x90" + req(firefox))
add(H, "curl", b"\x10" + req(curl))
add(H, "python-websockets", b"\xc8" + req(python_ws))
add(H, "node-ws-subprotocols", b"\x64" + req(node_ws))
add(H, "single-subprotocol", b"\x03" + req(curl + ["Sec-WebSocket-Protocol: chat"]))
add(H, "subprotocol-repeated", b"\x05" + req(curl + ["Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Protocol: v2.json"]))
add(H, "pmd-offers", b"\x21" + req(python_ws + [
    "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10",
    "Sec-WebSocket-Extensions: x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=\"9\""]))
add(H, "odd-casing", b"\x77" + req([
    "GET /Chat HTTP/1.1", "HOST: localhost", "upgrade: WebSocket", "CONNECTION: keep-alive, UPGRADE",
    "sec-websocket-key: " + key(6), "SEC-WEBSOCKET-VERSION: 13"]))
add(H, "bare-lf", b"\x33" + req(curl, end="\n"))
add(H, "mixed-line-ends", b"\x99" + "\r\n".join(curl[:4]).encode() + b"\n" + "\n".join(curl[4:]).encode() + b"\r\n\n")
add(H, "lf-crlf-end", b"\x01" + "\n".join(curl).encode() + b"\n\r\n")
add(H, "frames-after-head", b"\xa0" + req(curl, tail=bytes([0x81, 0x85, 1, 2, 3, 4]) + bytes(c ^ k for c, k in zip(b"hello", b"\x01\x02\x03\x04\x01"))))
add(H, "query-and-spaces", b"\x18" + req(replace(curl, "Upgrade:", "Upgrade: \t websocket \t") + ["X-Empty:", "X-Tabs:\t\t"]))
add(H, "obs-text-value", b"\x44" + req(curl + ["X-Name: caf\xe9 \xff"]))
add(H, "long-cookie", b"\xe0" + req(chrome + ["Cookie: " + "; ".join("k%d=%s" % (i, "v" * 40) for i in range(120))]))
add(H, "many-headers-too-many", b"\x55" + req(curl + ["X-H%d: %d" % (i, i) for i in range(30)]))
add(H, "many-headers-fit", b"\x56" + req(curl + ["X-H%d: %d" % (i, i) for i in range(14)]))
add(H, "incomplete", b"\x80" + req(curl)[:-2])
add(H, "empty-head", b"\x00\r\n\r\n")
# Bad requests.
add(H, "bad-http10", b"\x20" + req(replace(curl, "GET", "GET /echo HTTP/1.0")))
add(H, "bad-post", b"\x20" + req(replace(curl, "GET", "POST /echo HTTP/1.1")))
add(H, "bad-no-host", b"\x30" + req(replace(curl, "Host:", None)))
add(H, "bad-two-hosts", b"\x31" + req(curl + ["Host: other"]))
add(H, "bad-key-short", b"\x32" + req(replace(curl, "Sec-WebSocket-Key:", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=")))
add(H, "bad-key-alphabet", b"\x34" + req(replace(curl, "Sec-WebSocket-Key:", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j*Q==")))
add(H, "bad-key-twice", b"\x35" + req(curl + ["Sec-WebSocket-Key: " + key(9)]))
add(H, "bad-version-8", b"\x36" + req(replace(curl, "Sec-WebSocket-Version:", "Sec-WebSocket-Version: 8")))
add(H, "bad-no-version", b"\x37" + req(replace(curl, "Sec-WebSocket-Version:", None)))
add(H, "bad-no-upgrade", b"\x38" + req(replace(curl, "Upgrade:", None)))
add(H, "bad-connection-close", b"\x39" + req(replace(curl, "Connection:", "Connection: close")))
add(H, "bad-absolute-target", b"\x3a" + req(replace(curl, "GET", "GET http://127.0.0.1:8080/echo HTTP/1.1")))
add(H, "bad-obs-fold", b"\x3b" + req(curl + ["X-Folded: a", " b"]))
add(H, "bad-space-before-colon", b"\x3c" + req(curl + ["X-Bad : x"]))
add(H, "bad-leading-empty-line", b"\x3d\r\n" + req(curl))
add(H, "bad-control-in-value", b"\x3e" + req(curl + ["X-Ctl: a\x01b"]))
add(H, "bad-nul-in-value", b"\x3f" + req(curl + ["X-Nul: a\x00b"]))
add(H, "bad-http2", b"\x41" + req(replace(curl, "GET", "GET / HTTP/2.0")))
add(H, "bad-lowercase-version", b"\x42" + req(replace(curl, "GET", "GET / http/1.1")))
add(H, "bad-double-space", b"\x43" + req(replace(curl, "GET", "GET  / HTTP/1.1")))
add(H, "bad-name-char", b"\x45" + req(curl + ["X(Bad): x"]))
add(H, "bad-cr-in-line", b"\x46" + req(curl + ["X-CR: a\rb"]))
add(H, "bad-del-in-target", b"\x47" + req(replace(curl, "GET", "GET /a\x7fb HTTP/1.1")))

# ---- frame: control byte (pmd, piece size, alignment), then client frames --

MASK = b"\x37\xfa\x21\x3d"


def frame(op, payload=b"", fin=1, rsv=0, mask=MASK, form=None, length=None):
    """A client frame; form forces the length encoding (7, 16 or 64 bits),
    length overrides the announced length."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    mbit = 0x80 if mask else 0
    if form is None:
        form = 7 if n <= 125 else 16 if n <= 0xFFFF else 64
    if form == 7:
        head = bytes([b0, mbit | n])
    elif form == 16:
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if mask:
        return head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return head + payload


def close(code=None, reason=b""):
    return frame(0x8, b"" if code is None else struct.pack(">H", code) + reason)


F = "frame"
add(F, "text-hello", b"\x00" + frame(1, b"Hello"))
add(F, "binary-empty", b"\x08" + frame(2))
add(F, "text-125", b"\x10" + frame(1, b"a" * 125))
add(F, "binary-126-16bit", b"\x18" + frame(2, bytes(range(126))))
add(F, "text-300-16bit", b"\x2b" + frame(1, ("\u00e9t\u00e9 " * 60).encode()))
add(F, "binary-4096", b"\x71" + frame(2, bytes(i & 0xFF for i in range(4096))))
add(F, "binary-4097-too-big", b"\x70" + frame(2, b"x" * 4097))
add(F, "text-64bit-nonshortest", b"\x20" + frame(1, b"short in a long form", form=64))
add(F, "text-16bit-nonshortest", b"\x21" + frame(1, b"abc", form=16))
add(F, "huge-64bit-length", b"\x22" + frame(2, b"", length=1 << 40))
add(F, "length-top-bit", b"\x23" + frame(2, b"", length=1 << 63))
add(F, "unmasked", b"\x00" + frame(1, b"Hello", mask=None))
add(F, "zero-mask", b"\x00" + frame(1, b"Hello", mask=b"\0\0\0\0"))
add(F, "fragmented-ping-between", b"\x00" + frame(1, b"Hel", fin=0) + frame(0x9, b"ping") + frame(0, b"lo"))
add(F, "fragmented-three-pong", b"\x0a" + frame(2, b"a", fin=0) + frame(0, b"bb", fin=0) + frame(0xA, b"") + frame(0, b"ccc"))
add(F, "fragmented-utf8-split", b"\x09" + frame(1, b"\xe2\x82", fin=0) + frame(0, b"\xac!"))
add(F, "fragmented-empty-parts", b"\x11" + frame(1, b"", fin=0) + frame(0, b"", fin=0) + frame(0, b""))
add(F, "cont-without-message", b"\x00" + frame(0, b"x"))
add(F, "text-inside-message", b"\x00" + frame(1, b"a", fin=0) + frame(1, b"b"))
add(F, "text-invalid-utf8", b"\x00" + frame(1, b"ab\xc0\xafcd"))
add(F, "text-truncated-utf8", b"\x00" + frame(1, b"ab\xe2\x82"))
add(F, "text-surrogate", b"\x19" + frame(1, b"\xed\xa0\x80"))
add(F, "stream-mixed", b"\x4b" + frame(1, b"one") + frame(2, b"\x00\x01\x02") + frame(0x9, b"p")
    + frame(1, "\u03ba\u1f79\u03c3\u03bc\u03b5".encode()) + close(1000, b"bye"))
add(F, "stream-partial-header", b"\x00" + frame(1, b"ok") + frame(2, b"x" * 300)[:3])
add(F, "stream-partial-payload", b"\x3a" + frame(1, b"ok") + frame(2, b"y" * 300)[:100])
add(F, "close-empty", b"\x00" + close())
add(F, "close-1000", b"\x00" + close(1000))
add(F, "close-1000-reason", b"\x00" + close(1000, b"normal closure"))
add(F, "close-1001", b"\x00" + close(1001, b"going away"))
add(F, "close-1005-invalid", b"\x00" + close(1005))
add(F, "close-1006-invalid", b"\x00" + close(1006))
add(F, "close-1004-invalid", b"\x00" + close(1004))
add(F, "close-1015-invalid", b"\x00" + close(1015))
add(F, "close-999-invalid", b"\x00" + close(999))
add(F, "close-2999-invalid", b"\x00" + close(2999))
add(F, "close-3000", b"\x00" + close(3000))
add(F, "close-4999", b"\x00" + close(4999))
add(F, "close-5000-invalid", b"\x00" + close(5000))
add(F, "close-1014", b"\x00" + close(1014))
add(F, "close-one-byte", b"\x00" + frame(0x8, b"\x03"))
add(F, "close-bad-utf8-reason", b"\x00" + close(1000, b"\xff\xfe"))
add(F, "close-max-reason", b"\x00" + close(1000, "\u00e9".encode() * 61 + b"z"))
add(F, "close-126-too-long", b"\x00" + close(1000, b"r" * 124))
add(F, "ping-not-fin", b"\x00" + frame(0x9, b"p", fin=0))
add(F, "ping-125", b"\x28" + frame(0x9, b"p" * 125))
add(F, "rsv1-text-pmd", b"\x80" + frame(1, b"\xf2\x48\xcd\xc9\xc9\x07\x00", rsv=4))
add(F, "rsv1-text-no-pmd", b"\x00" + frame(1, b"\xf2\x48\xcd\xc9\xc9\x07\x00", rsv=4))
add(F, "rsv1-fragmented-pmd", b"\x88" + frame(1, b"\xf2\x48\xcd", rsv=4, fin=0) + frame(0, b"\xc9\xc9\x07\x00"))
add(F, "rsv1-on-cont-pmd", b"\x88" + frame(1, b"a", fin=0) + frame(0, b"b", rsv=4))
add(F, "rsv2", b"\x80" + frame(2, b"x", rsv=2))
add(F, "rsv3", b"\x80" + frame(2, b"x", rsv=1))
add(F, "rsv1-on-ping", b"\x80" + frame(0x9, b"x", rsv=4))
for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
    add(F, "reserved-opcode-%x" % op, b"\x00" + frame(op, b"x"))

# ---- utf8: the text alone -----------------------------------------------

U = "utf8"
valid = {
    "ascii": b"Hello, world! 0123456789 abcdefghijklmnopqrstuvwxyz",
    "greek-kosme": "\u03ba\u1f79\u03c3\u03bc\u03b5".encode(),
    "cjk": "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8".encode(),
    "emoji": "\U0001F600\U0001F680 ok \U0001F30D".encode(),
    "boundaries-first": "\u0080\u0800\U00010000".encode(),
    "boundaries-last": "\u007f\u07ff\uffff\U0010ffff".encode(),
    "around-surrogates": "\ud7ff\ue000\ufffd".encode(),
    "noncharacters": "\ufffe\uffff\ufdd0\U0001fffe".encode(),
    "empty": b"",
    "long-ascii-then-multibyte": b"a" * 61 + "\u00e9\u20ac\U0001F600".encode() + b"b" * 17,
    "mixed-alignment": ("x\u00e9yy\u20aczzz\U0001F600" * 9).encode(),
}
for k, v in valid.items():
    add(U, "valid-" + k, v)
invalid = {
    "lone-continuation-80": b"\x80",
    "lone-continuation-bf": b"a\xbfb",
    "all-continuations": bytes(range(0x80, 0xC0)),
    "lonely-2byte-starts": b" ".join(bytes([c]) for c in range(0xC0, 0xE0)),
    "lonely-3byte-starts": b" ".join(bytes([c]) for c in range(0xE0, 0xF0)),
    "lonely-4byte-starts": b" ".join(bytes([c]) for c in range(0xF0, 0xF8)),
    "last-byte-missing-2": b"\xdf",
    "last-byte-missing-3": b"\xef\xbf",
    "last-byte-missing-4": b"\xf4\x8f\xbf",
    "concatenated-incomplete": b"\xc0\xe0\x80\xf0\x80\x80\xdf\xef\xbf\xf7\xbf\xbf",
    "impossible-fe-ff": b"\xfe\xff\xfe\xfe\xff\xff",
    "overlong-slash-2": b"\xc0\xaf",
    "overlong-slash-3": b"\xe0\x80\xaf",
    "overlong-slash-4": b"\xf0\x80\x80\xaf",
    "overlong-max-2": b"\xc1\xbf",
    "overlong-max-3": b"\xe0\x9f\xbf",
    "overlong-max-4": b"\xf0\x8f\xbf\xbf",
    "overlong-nul": b"\xc0\x80",
    "surrogate-high": b"\xed\xa0\x80",
    "surrogate-low": b"\xed\xbf\xbf",
    "surrogate-pair": b"\xed\xa0\x80\xed\xb0\x80",
    "above-max-f4-90": b"\xf4\x90\x80\x80",
    "above-max-f5": b"\xf5\x80\x80\x80",
    "five-byte-form": b"\xf8\x88\x80\x80\x80",
    "six-byte-form": b"\xfc\x84\x80\x80\x80\x80",
    "ascii-words-then-bad": b"abcdefgh" * 8 + b"\xff",
    "bad-after-multibyte": "\u00e9\u20ac".encode() + b"\xe2\x28\xa1",
    "cesu8-emoji": b"\xed\xa0\xbd\xed\xb8\x80",
}
for k, v in invalid.items():
    add(U, "invalid-" + k, v)

# ---- inflate: control byte (window bits, memLevel, cut), then a payload ----

def deflate(data, wbits=15, level=6, strategy=zlib.Z_DEFAULT_STRATEGY, flushes=(), finish=False,
            keep_tail=False, mem=8):
    c = zlib.compressobj(level, zlib.DEFLATED, -wbits, mem, strategy)
    out, pos = b"", 0
    for f in flushes:
        out += c.compress(data[pos:f]) + c.flush(zlib.Z_SYNC_FLUSH)
        pos = f
    out += c.compress(data[pos:])
    if finish:
        return out + c.flush(zlib.Z_FINISH)
    out += c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out if keep_tail else out[:-4]


def ctl(wbits, cut=0, mem=0):
    """The harness's control byte: window bits 8..15, cut 0..31 (of 31)."""
    return bytes([((wbits - 8) & 7) | ((cut * 9 + mem) % 32) << 3])


text = b"The quick brown fox jumps over the lazy dog. " * 20
rng = random.Random(7692)
noise = bytes(rng.randrange(256) for _ in range(1500))
I = "inflate"
add(I, "hello-w15", ctl(15, 10) + deflate(b"Hello"))
add(I, "hello-w9", ctl(9, 3) + deflate(b"Hello", wbits=9))
add(I, "hello-w8-ctl", ctl(8, 20) + deflate(b"Hello", wbits=9))
add(I, "empty-message", ctl(15, 0) + deflate(b""))
add(I, "empty-just-00", ctl(15, 0) + b"\x00")
add(I, "text-repeated", ctl(15, 16) + deflate(text))
add(I, "text-level1", ctl(12, 7) + deflate(text, wbits=12, level=1))
add(I, "text-fixed-huffman", ctl(15, 12) + deflate(text, strategy=zlib.Z_FIXED))
add(I, "text-huffman-only", ctl(15, 5) + deflate(text, strategy=zlib.Z_HUFFMAN_ONLY))
add(I, "text-rle", ctl(15, 25) + deflate(text, strategy=zlib.Z_RLE))
add(I, "stored-level0", ctl(15, 14) + deflate(text[:200], level=0))
add(I, "noise-stored", ctl(15, 30) + deflate(noise))
add(I, "several-sync-flushes", ctl(15, 17) + deflate(text, flushes=(10, 100, 400)))
add(I, "tail-kept", ctl(15, 8) + deflate(b"tail left in", keep_tail=True))
add(I, "bfinal", ctl(15, 9) + deflate(b"ends with BFINAL", finish=True))
add(I, "bfinal-then-garbage", ctl(15, 28) + deflate(b"ends with BFINAL", finish=True) + b"\xde\xad\xbe\xef")
add(I, "bfinal-mid-cut", ctl(15, 2) + deflate(text, finish=True))
add(I, "bomb-1mib-zeros", ctl(15, 15) + deflate(bytes(1 << 20), level=9))
add(I, "bomb-4mib-zeros", ctl(15, 6) + deflate(bytes(4 << 20), level=9))
add(I, "just-under-limit", ctl(15, 11) + deflate(bytes((1 << 20) - 100), level=9))
far = noise[:600] + b"|" + noise[:600]
add(I, "distance-too-far-w9", ctl(9, 13) + deflate(far, wbits=15))
add(I, "distance-ok-w15", ctl(15, 13) + deflate(far, wbits=15))
add(I, "truncated-mid-block", ctl(15, 19) + deflate(text)[:25])
add(I, "bad-block-type", ctl(15, 1) + b"\x07\x00")
add(I, "bad-stored-nlen", ctl(15, 4) + b"\x00\x05\x00\x00\x00hello")
add(I, "bad-huffman-table", ctl(15, 22) + b"\xfc\xff\xff\xff\xff")
add(I, "noise-raw", ctl(15, 16) + noise[:300])
add(I, "utf8-text", ctl(11, 24) + deflate("\u03ba\u1f79\u03c3\u03bc\u03b5 \u65e5\u672c \U0001F600".encode() * 10, wbits=11))
add(I, "mem-level-1", ctl(15, 18, mem=1) + deflate(text, mem=1))

# ---- write ---------------------------------------------------------------

total = 0
for target, files in corpora.items():
    d = os.path.join(OUT, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    names = set()
    for name, data in files:
        assert name not in names, name
        names.add(name)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        total += len(data)
    print("%-8s %3d files" % (target, len(files)))
print("total %d bytes" % total)
