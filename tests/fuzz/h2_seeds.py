#!/usr/bin/python3
"""Writes the seed corpus of fuzz_h2 (tests/fuzz/corpus/fuzz_h2/): valid
frame sequences in the script format of tests/fuzz/fuzz_h2.c (the target
sends the client preface itself). Run it again after changing that format:

    /usr/bin/python3 tests/fuzz/h2_seeds.py"""

import os
import struct
import sys

import hpack

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_h2")

DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, END_HEADERS, PADDED, PRIO = 0x1, 0x4, 0x8, 0x20


def sbyte(sid):
    """The stream byte of an op for stream sid (see stream_of in fuzz_h2.c)."""
    if sid == 0:
        return 0
    if sid % 2 == 1 and sid <= 253:
        return (sid + 1) // 2
    assert sid < 128
    return 128 + sid


def frame(ftype, flags, sid, payload=b""):
    """op 1: one frame, framed by the target; payloads past 255 bytes are
    split into several frames by the caller."""
    assert len(payload) <= 255, len(payload)
    return bytes([(ftype << 3) | 1, flags, sbyte(sid), len(payload)]) + payload


def headers(sid, block, end_stream=True):
    """HEADERS then CONTINUATION frames carrying block (<= 255 bytes each)."""
    parts = [block[i : i + 255] for i in range(0, len(block), 255)] or [b""]
    out = b""
    for n, p in enumerate(parts):
        last = n == len(parts) - 1
        if n == 0:
            out += frame(HEADERS, (END_STREAM if end_stream else 0) | (END_HEADERS if last else 0), sid, p)
        else:
            out += frame(CONTINUATION, END_HEADERS if last else 0, sid, p)
    return out


def canned(variant, sid, end_stream=True):
    """op 7: a request block the target holds (0 GET /, 1 POST /echo with
    content-length 5, 2 cookies and te, 3 a connection header)."""
    return bytes([7 | (variant << 3) | (0x20 if end_stream else 0), sbyte(sid)])


def raw(data):
    """op 0: raw client bytes, in pieces of 8..256 (the last padded with
    PING frames is not possible: pieces are exact multiples of 8, the rest
    goes one byte at a time with op 6)."""
    out = b""
    while len(data) >= 8:
        k = min(256, len(data) // 8 * 8)
        out += bytes([((k // 8 - 1) << 3) | 0]) + data[:k]
        data = data[k:]
    if data:
        out += bytes([((len(data) - 1) << 3) | 6]) + data
    return out


def backend(data):
    """op 2: backend bytes, in pieces that are multiples of 8: the response
    is padded to that with an X-Pad header by the callers (pad())."""
    assert len(data) % 8 == 0, len(data)
    out = b""
    while data:
        k = min(256, len(data))
        out += bytes([((k // 8 - 1) << 3) | 2]) + data[:k]
        data = data[k:]
    return out


def pad(head, body=b""):
    """A response head (ending in CRLF CRLF) padded with X-Pad so that head +
    body is a multiple of 8 bytes long."""
    assert head.endswith(b"\r\n\r\n")
    base = head[:-2]
    n = len(base) + len(b"X-Pad: \r\n\r\n") + len(body)
    return base + b"X-Pad: " + b"p" * ((-n) % 8) + b"\r\n\r\n" + body


BACKEND_CLOSE = bytes([3])
CLIENT_HALF_CLOSE = bytes([5])


def clock(k):
    return bytes([(k << 3) | 4])


def settings(pairs=()):
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HL", k, v) for k, v in pairs))


SETTINGS_ACK = frame(SETTINGS, 1, 0)
OK = pad(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", b"ok")


def hp(headers_list, enc=None):
    enc = enc or hpack.Encoder()
    return enc.encode(headers_list)


REQ = [(":method", "GET"), (":scheme", "http"), (":authority", "example.test"), (":path", "/index.html"),
       ("user-agent", "fuzz"), ("accept", "*/*")]

SEEDS = {
    "get": settings([(2, 0), (4, 65535)]) + SETTINGS_ACK + canned(0, 1) + backend(OK),
    "get-hpack": settings() + headers(1, hp(REQ)) + backend(OK),
    "post-data": settings() + canned(1, 1, end_stream=False) + frame(DATA, END_STREAM, 1, b"hello")
    + backend(pad(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")),
    "post-no-length": settings() + headers(1, hp([(":method", "POST"), (":scheme", "http"), (":authority", "a"), (":path", "/up")]), end_stream=False)
    + frame(DATA, 0, 1, b"a" * 100) + frame(DATA, 0, 1, b"b" * 100) + frame(DATA, END_STREAM, 1, b"")
    + backend(OK),
    "two-streams-dynamic-table": (lambda e: settings() + headers(1, hp(REQ, e)) + headers(3, hp(REQ, e)) + backend(OK + OK))(hpack.Encoder()),
    "continuation": settings() + headers(1, hp(REQ + [("x-long-%d" % k, "v" * 100) for k in range(4)])) + backend(OK),
    "rst-after-headers": settings() + canned(0, 1) + frame(RST, 0, 1, struct.pack(">L", 8)) + canned(0, 3) + backend(OK),
    "ping-window-goaway": settings() + frame(PING, 0, 0, b"12345678") + frame(WINDOW_UPDATE, 0, 0, struct.pack(">L", 1 << 20))
    + canned(0, 1) + frame(WINDOW_UPDATE, 0, 1, struct.pack(">L", 1000)) + backend(OK)
    + frame(GOAWAY, 0, 0, struct.pack(">LL", 1, 0)),
    "priority-padded": settings() + frame(PRIORITY, 0, 3, struct.pack(">LB", 0, 16))
    + frame(HEADERS, END_STREAM | END_HEADERS | PADDED | PRIO, 1, bytes([4]) + struct.pack(">LB", 0, 200) + hp(REQ) + b"\0" * 4)
    + backend(OK),
    "chunked-trailers": settings() + canned(2, 1)
    + backend(pad(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\nTrailer: x-t\r\n\r\n"))
    + backend(b"5\r\nhello\r\n0\r\nx-t: 12\r\n\r\n"),
    "early-hints": settings() + canned(0, 1)
    + backend(pad(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"))
    + backend(pad(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\nKeep-Alive: timeout=5\r\n\r\n", b"done")),
    "connection-header-malformed": settings() + canned(3, 1) + canned(0, 3) + backend(OK),
    "backend-close-mid-body": settings() + canned(0, 1) + backend(pad(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", b"partial!")) + BACKEND_CLOSE,
    "small-window-large-body": settings([(4, 16)]) + canned(0, 1)
    + backend(pad(b"HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n", b"x" * 64)) + frame(WINDOW_UPDATE, 0, 1, struct.pack(">L", 16)),
    "timeout": settings() + canned(0, 1) + clock(9) + clock(12),
    "half-close": settings() + canned(0, 1) + CLIENT_HALF_CLOSE + backend(OK),
    "raw-frames": raw(struct.pack(">BHBBL", 0, 0, SETTINGS, 0, 0) + struct.pack(">BHBBL", 0, 8, PING, 0, 0) + b"pingpong"),
    "unknown-frame-type": frame(0x1F, 0xFF, 1, b"whatever") + settings() + canned(0, 1) + backend(OK),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(SEEDS), OUT), file=sys.stderr)


if __name__ == "__main__":
    main()
