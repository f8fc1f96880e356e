"""Raw-socket HTTP/1.1 and WebSocket client helpers for the integration tests.

Everything here is exact on purpose: responses are parsed byte by byte
(status line, headers, body framed by Content-Length, chunked encoding or
connection close, interim 1xx responses collected separately), so tests of
pipelining, HEAD, 1xx, close-delimited bodies and WebSocket see precisely what
usher put on the wire. Every read is bounded by a socket timeout, an overall
deadline and a byte limit.
"""

import base64
import hashlib
import json
import os
import socket
import time

DEFAULT_TIMEOUT = 10.0  # seconds per socket operation
RESPONSE_DEADLINE = 120.0  # seconds for one whole response (large bodies)
MAX_HEAD_BYTES = 1 << 20
MAX_BODY_BYTES = 256 << 20
MAX_INTERIM = 20
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class ProtocolError(AssertionError):
    """usher (or a backend) sent something that is not valid HTTP/1.1."""


class PeerClosed(ProtocolError):
    """The peer closed the connection before a complete message arrived."""


class HTTPResponse:
    def __init__(self, version, status, reason, headers, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value), order and case as received
        self.raw_head = raw_head
        self.body = b""
        self.framing = None  # "none", "length", "chunked" or "close"
        self.trailers = []
        self.interim = []  # 1xx responses received before this one

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def has_token(self, name, token):
        """True if the comma-separated header `name` contains `token`."""
        token = token.lower()
        for v in self.header_all(name):
            if token in [t.strip().lower() for t in v.split(",")]:
                return True
        return False

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<HTTPResponse %s %d %r framing=%s body=%d bytes %r>" % (
            self.version,
            self.status,
            self.reason,
            self.framing,
            len(self.body),
            self.body[:200],
        )


def build_request(method, target, headers=None, body=None, version="HTTP/1.1", host="usher.test"):
    """Serialises a request. `headers` is a list of (name, value) pairs sent
    as given. Host is added first unless present (or host is None);
    Content-Length is added when a body is given and neither Content-Length
    nor Transfer-Encoding is present."""
    headers = list(headers or [])
    names = {k.lower() for k, _ in headers}
    if host is not None and "host" not in names:
        headers.insert(0, ("Host", host))
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        headers.append(("Content-Length", str(len(body))))
    out = bytearray(("%s %s %s\r\n" % (method, target, version)).encode("latin-1"))
    for k, v in headers:
        out += ("%s: %s\r\n" % (k, v)).encode("latin-1")
    out += b"\r\n"
    if body:
        out += body
    return bytes(out)


def chunked_encode(chunks, trailers=None, extension=None):
    """Chunked transfer coding of an iterable of bytes chunks (uppercase hex
    sizes, optional chunk extension, optional trailer fields)."""
    out = bytearray()
    for c in chunks:
        if not c:
            continue
        out += ("%X" % len(c)).encode()
        if extension:
            out += (";" + extension).encode()
        out += b"\r\n" + c + b"\r\n"
    out += b"0\r\n"
    for k, v in trailers or []:
        out += ("%s: %s\r\n" % (k, v)).encode("latin-1")
    out += b"\r\n"
    return bytes(out)


class RawHTTPConnection:
    def __init__(self, host, port, timeout=DEFAULT_TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False

    # -- plumbing ---------------------------------------------------------

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def request(self, method, target, headers=None, body=None, version="HTTP/1.1", host="usher.test"):
        self.send(build_request(method, target, headers, body, version, host))

    def _fill(self, deadline):
        """Reads more bytes into the buffer. Returns False at EOF."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("response not complete before the deadline")
        self.sock.settimeout(min(self.timeout, remaining))
        data = self._recv()
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _recv(self):
        """One recv; a reset reads as the end of the stream (b"")."""
        try:
            return self.sock.recv(1 << 16)
        except ConnectionResetError:
            return b""

    def read_exact(self, n, deadline=None):
        deadline = deadline or time.monotonic() + RESPONSE_DEADLINE
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise PeerClosed("connection closed after %d of %d bytes" % (len(self.buf), n))
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def _read_line(self, deadline, limit=MAX_HEAD_BYTES):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return line
            if len(self.buf) > limit:
                raise ProtocolError("line longer than %d bytes" % limit)
            if not self._fill(deadline):
                raise PeerClosed("connection closed in the middle of a line: %r" % bytes(self.buf[:200]))

    def read_until_close(self, limit=MAX_BODY_BYTES, deadline=None):
        deadline = deadline or time.monotonic() + RESPONSE_DEADLINE
        while self._fill(deadline):
            if len(self.buf) > limit:
                raise ProtocolError("more than %d bytes before close" % limit)
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def wait_closed(self, timeout=DEFAULT_TIMEOUT):
        """True if the peer closes the connection (EOF or reset) within
        `timeout` without sending anything more; False if it is still open
        when the timeout expires. Extra bytes are a protocol error."""
        if self.buf:
            raise ProtocolError("unexpected extra bytes: %r" % bytes(self.buf[:200]))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not data:
                self.eof = True
                return True
            raise ProtocolError("unexpected bytes while waiting for close: %r" % data[:200])

    # -- HTTP -------------------------------------------------------------

    def read_head(self, deadline=None):
        """Reads one status line and header section (interim or final)."""
        deadline = deadline or time.monotonic() + RESPONSE_DEADLINE
        if not self.buf and not self._fill(deadline):
            raise PeerClosed("connection closed before a response")
        status_line = self._read_line(deadline)
        parts = status_line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or len(parts[1]) != 3 or not parts[1].isdigit():
            raise ProtocolError("bad status line %r" % status_line)
        version, status = parts[0], int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        raw = bytearray(status_line + b"\r\n")
        total = len(raw)
        for _ in range(10000):
            line = self._read_line(deadline)
            raw += line + b"\r\n"
            total += len(line) + 2
            if total > MAX_HEAD_BYTES:
                raise ProtocolError("response head larger than %d bytes" % MAX_HEAD_BYTES)
            if line == b"":
                break
            if line[:1] in (b" ", b"\t"):
                raise ProtocolError("obsolete header line folding: %r" % line)
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip() or b" " in name:
                raise ProtocolError("bad header line %r" % line)
            headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
        else:
            raise ProtocolError("too many header lines")
        return HTTPResponse(version, status, reason, headers, bytes(raw))

    def read_body(self, resp, method="GET", deadline=None, limit=MAX_BODY_BYTES):
        deadline = deadline or time.monotonic() + RESPONSE_DEADLINE
        te = resp.header_all("Transfer-Encoding")
        cl = resp.header_all("Content-Length")
        if method == "HEAD" or resp.status < 200 or resp.status in (204, 304):
            resp.framing = "none"
            return resp
        if method == "CONNECT" and 200 <= resp.status < 300:
            resp.framing = "none"
            return resp
        if te:
            if cl:
                raise ProtocolError("response has both Transfer-Encoding and Content-Length")
            codings = [c.strip().lower() for v in te for c in v.split(",") if c.strip()]
            if codings and codings[-1] == "chunked":
                resp.framing = "chunked"
                resp.body = self._read_chunked(resp, deadline, limit)
                return resp
            resp.framing = "close"
            resp.body = self.read_until_close(limit, deadline)
            return resp
        if cl:
            values = {c.strip() for v in cl for c in v.split(",")}
            if len(values) != 1 or not next(iter(values)).isdigit():
                raise ProtocolError("bad Content-Length %r" % cl)
            n = int(values.pop())
            if n > limit:
                raise ProtocolError("Content-Length %d above limit" % n)
            resp.framing = "length"
            resp.body = self.read_exact(n, deadline)
            return resp
        resp.framing = "close"
        resp.body = self.read_until_close(limit, deadline)
        return resp

    def _read_chunked(self, resp, deadline, limit):
        body = bytearray()
        for _ in range(10_000_000):
            line = self._read_line(deadline, limit=4096)
            size_str = line.split(b";", 1)[0].strip(b" \t")
            try:
                size = int(size_str, 16)
            except ValueError:
                raise ProtocolError("bad chunk size line %r" % line)
            if size < 0 or not all(c in b"0123456789abcdefABCDEF" for c in size_str):
                raise ProtocolError("bad chunk size line %r" % line)
            if size == 0:
                break
            if len(body) + size > limit:
                raise ProtocolError("chunked body above limit")
            body += self.read_exact(size, deadline)
            if self.read_exact(2, deadline) != b"\r\n":
                raise ProtocolError("chunk data not followed by CRLF")
        else:
            raise ProtocolError("too many chunks")
        for _ in range(10000):
            line = self._read_line(deadline)
            if line == b"":
                return bytes(body)
            name, _, value = line.partition(b":")
            resp.trailers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        raise ProtocolError("too many trailer lines")

    def read_response(self, method="GET", deadline=None, limit=MAX_BODY_BYTES):
        """Reads one complete response. Interim 1xx responses (other than
        101) are collected into `.interim` of the final response."""
        deadline = deadline or time.monotonic() + RESPONSE_DEADLINE
        interim = []
        for _ in range(MAX_INTERIM):
            resp = self.read_head(deadline)
            if 100 <= resp.status < 200 and resp.status != 101:
                resp.framing = "none"
                interim.append(resp)
                continue
            resp.interim = interim
            if resp.status == 101:
                resp.framing = "none"
                return resp
            return self.read_body(resp, method, deadline, limit)
        raise ProtocolError("more than %d interim responses" % MAX_INTERIM)

    def roundtrip(self, method, target, headers=None, body=None, version="HTTP/1.1", host="usher.test"):
        self.request(method, target, headers, body, version, host)
        return self.read_response(method)


class TracingConnection(RawHTTPConnection):
    """RawHTTPConnection that remembers how the peer ended the connection:
    `ended` is "eof" (FIN), "reset" (RST while established: the peer closed
    the socket with bytes we sent still unread) or "epipe" (RST after its
    FIN). A reset reads as the end of the stream (PeerClosed when a response
    is incomplete)."""

    ended = None

    def _recv(self):
        try:
            data = self.sock.recv(1 << 16)
        except ConnectionResetError:
            self.ended, data = "reset", b""
        except BrokenPipeError:
            self.ended, data = "epipe", b""
        if not data:
            self.ended = self.ended or "eof"
        return data


def get_once(port, method, target, headers=None, body=None, host="usher.test"):
    """One request on a fresh connection (Connection: close)."""
    headers = list(headers or []) + [("Connection", "close")]
    with RawHTTPConnection("127.0.0.1", port) as c:
        return c.roundtrip(method, target, headers, body, host=host)


# -- WebSocket (RFC 6455) -------------------------------------------------

WS_CONT, WS_TEXT, WS_BINARY, WS_CLOSE, WS_PING, WS_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def ws_accept_for(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode("ascii")).digest()).decode("ascii")


def ws_new_key():
    return base64.b64encode(os.urandom(16)).decode("ascii")


def ws_encode_frame(opcode, payload, fin=True, mask=True):
    head = bytearray([(0x80 if fin else 0) | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head.append(mbit | n)
    elif n < 65536:
        head.append(mbit | 126)
        head += n.to_bytes(2, "big")
    else:
        head.append(mbit | 127)
        head += n.to_bytes(8, "big")
    if not mask:
        return bytes(head) + payload
    key = os.urandom(4)
    head += key
    # XOR with a repeated key, done on big integers for speed.
    rep = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(rep, "big")).to_bytes(n, "big") if n else b""
    return bytes(head) + masked


def ws_read_frame(conn, deadline=None):
    """Reads one frame from a RawHTTPConnection. Returns
    (fin, opcode, payload, was_masked); unmasks if needed."""
    deadline = deadline or time.monotonic() + RESPONSE_DEADLINE
    b0, b1 = conn.read_exact(2, deadline)
    fin = bool(b0 & 0x80)
    if b0 & 0x70:
        raise ProtocolError("reserved bits set in frame header %02x" % b0)
    opcode = b0 & 0x0F
    masked = bool(b1 & 0x80)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(conn.read_exact(2, deadline), "big")
    elif n == 127:
        n = int.from_bytes(conn.read_exact(8, deadline), "big")
    if n > MAX_BODY_BYTES:
        raise ProtocolError("frame too large: %d" % n)
    key = conn.read_exact(4, deadline) if masked else None
    payload = conn.read_exact(n, deadline) if n else b""
    if masked and n:
        rep = (key * (n // 4 + 1))[:n]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(rep, "big")).to_bytes(n, "big")
    return fin, opcode, payload, masked


def ws_read_message(conn, deadline=None):
    """Reads one complete data or control message (reassembling
    continuation frames of data messages). Returns (opcode, payload)."""
    deadline = deadline or time.monotonic() + RESPONSE_DEADLINE
    fin, opcode, payload, masked = ws_read_frame(conn, deadline)
    if masked:
        raise ProtocolError("server-to-client frame is masked")
    if opcode >= 0x8 or fin:
        return opcode, payload
    parts = [payload]
    for _ in range(100000):
        fin, op, p, masked = ws_read_frame(conn, deadline)
        if masked:
            raise ProtocolError("server-to-client frame is masked")
        if op != WS_CONT:
            raise ProtocolError("expected continuation frame, got opcode %d" % op)
        parts.append(p)
        if fin:
            return opcode, b"".join(parts)
    raise ProtocolError("too many continuation frames")
