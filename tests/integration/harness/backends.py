"""Backends written in Python for the tests: all of them listen on
127.0.0.1:<free port>, serve each connection on its own thread, are bounded
in time, and are stopped by stop() (the fixtures of conftest.py do it).

TCPBackend       the listener, the accept loop and stop(); each connection
                 goes to handler(sock, number) (or to a subclass's _serve).
CaptureBackend   HTTP/1.1, records which request came on which connection,
                 misbehaves on purpose on some paths or on every request.
RawCaptureBackend  records the exact bytes of each connection and answers
                 what a strict RFC 9112 reader finds in them, with respond().
SilentBackend    never answers: does not accept, cannot be connected to, or
                 accepts and never reads (kind=...)."""

import socket
import struct
import threading
import time

HOST = "127.0.0.1"
IO_TIMEOUT = 10.0
SILENT_HOLD = 60.0  # bound on how long /silent keeps a connection unanswered
LIFETIME = 300.0  # hard bound on a backend's accept loop


class TCPBackend:
    """A listener on 127.0.0.1:<free port> and an accept loop on a thread;
    every accepted connection is served by handler(sock, number) on a thread
    of its own (number: 1, 2, ... in accept order; the socket is closed when
    the handler returns). Subclasses override _serve instead.

    backlog, rcvbuf (SO_RCVBUF, inherited by the accepted sockets) and
    reuseaddr shape the listener; accept=False never accepts (connects are
    completed by the kernel, up to the backlog)."""

    def __init__(self, handler=None, backlog=128, rcvbuf=None, reuseaddr=True, accept=True):
        self.handler = handler
        self.lock = threading.Lock()
        self.connections = 0
        self.errors = []
        self.stopping = threading.Event()
        self.threads = []
        self.socks = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if reuseaddr:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf is not None:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.listener.bind((HOST, 0))
        self.listener.listen(backlog)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.url = "http://%s:%d" % (HOST, self.port)
        if accept:
            t = threading.Thread(target=self._accept_loop, daemon=True)
            t.start()
            self.threads.append(t)

    def _accepted(self, num):
        """Called with the lock held when connection num is accepted."""

    def _accept_loop(self):
        deadline = time.monotonic() + LIFETIME
        while not self.stopping.is_set() and time.monotonic() < deadline:
            try:
                s, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                num = self.connections
                self._accepted(num)
                self.socks.append(s)
            t = threading.Thread(target=self._run, args=(s, num), daemon=True)
            t.start()
            with self.lock:
                self.threads.append(t)

    def _run(self, s, num):
        try:
            self._serve(s, num)
        finally:
            try:
                s.close()
            except OSError:
                pass

    def _serve(self, s, num):
        try:
            self.handler(s, num)
        except OSError:
            return
        except Exception as e:  # recorded so the test can report it
            self.errors.append(repr(e))

    def stop(self):
        self.stopping.set()
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self.socks)
            threads = list(self.threads)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in threads:
            t.join(timeout=5)


class CaptureBackend(TCPBackend):
    """HTTP/1.1 server on 127.0.0.1:<free port> answering every request with
    `200 ok` (Content-Length: 2).

    mode "keepalive":   keeps connections open.
    mode "idle-close":  closes a connection after `idle` seconds without a
                        new request (no Connection: close header).
    mode "close-header": answers with Connection: close, then keeps the
                        socket open for `linger` seconds and records any byte
                        that arrives on it afterwards (a reuse violation).

    Whatever the mode, some paths misbehave on purpose (each after reading
    the whole request, which is recorded first):
    /truncate    announces Content-Length: 100, sends 10 bytes and closes;
    /reset-mid   the same, but resets the connection (RST) instead of closing;
    /reset-head  sends part of a status line and header, then resets;
    /garbage     answers with bytes that are not HTTP and closes;
    /hello       answers "HELLO\\r\\n\\r\\n" and closes;
    /hangup      closes the connection without answering;
    /silent      never answers (keeps the connection open, reading nothing
                 more, until the peer closes it or the backend stops).

    misbehave="reset-mid" (say) treats every request as if its path were
    /reset-mid. drop_nth=N closes a connection without answering when its
    N-th request has arrived (the request is recorded first): with N=2 a
    connection that a proxy pooled after the first response goes stale just
    as the proxy reuses it. A HEAD request is answered without a body."""

    def __init__(self, mode="keepalive", idle=0.3, linger=2.0, misbehave=None, drop_nth=None):
        self.mode = mode
        self.idle = idle
        self.linger = linger
        self.misbehave = misbehave
        self.drop_nth = drop_nth
        self.requests = []  # (connection number, method, path)
        self.violations = []  # (connection number, bytes received after Connection: close)
        super().__init__()

    def _recv(self, s, buf, timeout):
        s.settimeout(timeout)
        data = s.recv(65536)
        if not data:
            raise EOFError
        buf += data

    def _serve(self, s, num):
        buf = bytearray()
        try:
            for nth in range(1, 10001):
                if self.stopping.is_set():
                    return
                # Wait for a request head.
                idle_deadline = time.monotonic() + (self.idle if self.mode == "idle-close" else 30)
                while b"\r\n\r\n" not in buf:
                    remaining = idle_deadline - time.monotonic()
                    if remaining <= 0 or len(buf) > 65536:
                        return
                    try:
                        self._recv(s, buf, min(remaining, 0.5) if buf == b"" else IO_TIMEOUT)
                    except socket.timeout:
                        if self.stopping.is_set():
                            return
                        continue
                head, _, rest = bytes(buf).partition(b"\r\n\r\n")
                buf = bytearray(rest)
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                if "transfer-encoding" in headers:
                    self.errors.append("chunked request not supported by the capture backend")
                    return
                n = int(headers.get("content-length", "0"))
                while len(buf) < n:
                    self._recv(s, buf, IO_TIMEOUT)
                del buf[:n]
                with self.lock:
                    self.requests.append((num, method, path))
                if self.drop_nth is not None and nth == self.drop_nth:
                    return
                act = "/" + self.misbehave if self.misbehave else path
                if act.startswith("/truncate"):
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                    return
                if act.startswith("/reset-mid"):
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                    self._reset(s)
                    return
                if act.startswith("/reset-head"):
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Le")
                    self._reset(s)
                    return
                if act.startswith("/garbage"):
                    s.sendall(b"this is not HTTP at all\r\n\r\n")
                    return
                if act.startswith("/hello"):
                    s.sendall(b"HELLO\r\n\r\n")
                    return
                if act.startswith("/hangup"):
                    return
                if act.startswith("/silent"):
                    self._hold(s)
                    return
                body = b"" if method == "HEAD" else b"ok"
                if self.mode == "close-header":
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n" + body)
                    self._linger(s, num, bytes(buf))
                    return
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" + body)
        except (EOFError, ConnectionError, socket.timeout, OSError):
            return
        except Exception as e:  # recorded so the test can report it
            self.errors.append(repr(e))

    @staticmethod
    def _reset(s):
        """Makes the close that follows send RST instead of FIN. Waits a
        moment first so that what was sent leaves before the reset."""
        time.sleep(0.05)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def _hold(self, s):
        """Keeps the connection open without answering, until the peer
        closes it, the backend stops, or SILENT_HOLD passes."""
        deadline = time.monotonic() + SILENT_HOLD
        while time.monotonic() < deadline and not self.stopping.is_set():
            try:
                s.settimeout(0.2)
                if not s.recv(65536):
                    return
            except socket.timeout:
                continue

    def count(self, method, prefix):
        """How many requests with this method and a path starting with
        prefix arrived (on any connection)."""
        with self.lock:
            return sum(1 for _, m, path in self.requests if m == method and path.startswith(prefix))

    def requests_with(self, prefix):
        """[(connection number, method, path)] of the requests whose path
        starts with prefix, in arrival order."""
        with self.lock:
            return [r for r in self.requests if r[2].startswith(prefix)]

    def first_request_on(self, num):
        """The path of the first request that arrived on connection num."""
        with self.lock:
            for n, _, path in self.requests:
                if n == num:
                    return path
        return None

    def _linger(self, s, num, extra):
        if extra:
            self.violations.append((num, extra))
        deadline = time.monotonic() + self.linger
        while time.monotonic() < deadline and not self.stopping.is_set():
            try:
                s.settimeout(max(0.01, min(0.2, deadline - time.monotonic())))
                data = s.recv(65536)
            except socket.timeout:
                continue
            if not data:
                return
            self.violations.append((num, data))

    def connections_with(self, prefix):
        with self.lock:
            return {num for num, _, path in self.requests if path.startswith(prefix)}

    def paths(self, prefix):
        with self.lock:
            return [path for _, _, path in self.requests if path.startswith(prefix)]


# -- raw capture backend (smuggling tests) ------------------------------------

TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
HEXDIG = frozenset(b"0123456789abcdefABCDEF")


class StrictRequest:
    """One request as a strict RFC 9112 reader saw it on the backend side."""

    def __init__(self, conn, method, target, version, headers, body, raw):
        self.conn = conn  # connection number on the backend (1, 2, ...)
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # [(name, value)] as bytes, in order
        self.body = body
        self.raw = raw  # the exact bytes of this message

    def header_all(self, name):
        name = name.lower().encode() if isinstance(name, str) else name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def __repr__(self):
        return "<StrictRequest conn=%d %r %r body=%r>" % (self.conn, self.method, self.target, self.body[:80])


class _Incomplete(Exception):
    pass


def _strict_lines(data, pos, problems, limit=1 << 20):
    """Reads CRLF-terminated lines from pos up to and including the empty
    line. Bare CR and bare LF are recorded as problems (and a bare LF is
    still taken as a line end so that reading can go on)."""
    lines = []
    for _ in range(10000):
        lf = data.find(b"\n", pos)
        if lf < 0:
            if len(data) - pos > limit:
                problems.append("head larger than %d bytes" % limit)
            raise _Incomplete
        if lf == pos or data[lf - 1 : lf] != b"\r":
            problems.append("bare LF at byte %d" % lf)
            line = data[pos:lf]
        else:
            line = data[pos : lf - 1]
        if b"\r" in line:
            problems.append("bare CR in line %r" % line[:80])
        pos = lf + 1
        if line == b"":
            return lines, pos
        lines.append(line)
    problems.append("too many lines")
    raise _Incomplete


def _strict_fields(lines, problems, what="header"):
    fields = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            problems.append("obs-fold or leading whitespace in %s line %r" % (what, line[:80]))
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            problems.append("%s line without a colon: %r" % (what, line[:80]))
            continue
        if not name or any(c not in TCHAR for c in name):
            problems.append("%s name is not a token: %r" % (what, name[:80]))
        value = value.strip(b" \t")
        if any((c < 0x20 and c != 0x09) or c == 0x7F for c in value):
            problems.append("control byte in %s value %r" % (what, value[:80]))
        fields.append((name, value))
    return fields


def _strict_chunked(data, pos, problems):
    """Reads a chunked body from pos. Returns (decoded body, end position)."""
    body = bytearray()
    for _ in range(1000000):
        lf = data.find(b"\n", pos)
        if lf < 0:
            raise _Incomplete
        if lf == pos or data[lf - 1 : lf] != b"\r":
            problems.append("bare LF in a chunk line")
            line = data[pos:lf]
        else:
            line = data[pos : lf - 1]
        if b"\r" in line:
            problems.append("bare CR in a chunk line")
        size_s, _, ext = line.partition(b";")
        if not size_s or any(c not in HEXDIG for c in size_s) or len(size_s) > 16:
            problems.append("invalid chunk size %r" % line[:80])
            size = int(size_s, 16) if size_s and all(c in HEXDIG for c in size_s) else 0
        else:
            size = int(size_s, 16)
        if ext and any((c < 0x20 and c != 0x09) or c == 0x7F for c in ext):
            problems.append("control byte in a chunk extension %r" % ext[:80])
        pos = lf + 1
        if size == 0:
            lines, pos = _strict_lines(data, pos, problems)
            _strict_fields(lines, problems, "trailer")
            return bytes(body), pos
        if len(data) < pos + size + 2:
            raise _Incomplete
        body += data[pos : pos + size]
        pos += size
        if data[pos : pos + 2] != b"\r\n":
            problems.append("chunk data not followed by CRLF (data longer than its size?)")
            return bytes(body), len(data)
        pos += 2
    problems.append("too many chunks")
    return bytes(body), len(data)


def parse_requests_strict(data, conn=0):
    """Splits the bytes one connection carried into requests, the way a strict
    RFC 9112 server would. Returns (requests, problems, rest): every complete
    request, every ambiguity or syntax violation seen (strings), and the bytes
    of an incomplete last request (b"" if none)."""
    requests, problems = [], []
    pos = 0
    data = bytes(data)
    for _ in range(10000):
        if pos >= len(data):
            return requests, problems, b""
        start = pos
        try:
            lines, pos = _strict_lines(data, pos, problems)
            if not lines:
                problems.append("empty request head")
                continue
            reqline = lines[0]
            parts = reqline.split(b" ")
            if len(parts) != 3:
                problems.append("bad request line %r" % reqline[:120])
                parts = (parts + [b"", b"", b""])[:3]
            method, target, version = parts
            if not method or any(c not in TCHAR for c in method):
                problems.append("method is not a token: %r" % method[:40])
            if not target or any(c <= 0x20 or c == 0x7F for c in target) or b"#" in target:
                problems.append("invalid request target %r" % target[:120])
            if version != b"HTTP/1.1":
                problems.append("forwarded version is %r, not HTTP/1.1" % version[:20])
            headers = _strict_fields(lines[1:], problems)
            names = [k.lower() for k, _ in headers]
            if names.count(b"host") != 1:
                problems.append("%d Host headers" % names.count(b"host"))
            te = [v for k, v in headers if k.lower() == b"transfer-encoding"]
            cl = [v for k, v in headers if k.lower() == b"content-length"]
            body = b""
            if te and cl:
                problems.append("both Transfer-Encoding and Content-Length")
            if len(te) > 1:
                problems.append("%d Transfer-Encoding lines" % len(te))
            if te:
                codings = [c.strip(b" \t").lower() for v in te for c in v.split(b",")]
                if codings[-1:] != [b"chunked"] or codings.count(b"chunked") != 1:
                    problems.append("Transfer-Encoding %r: chunked not once and last" % te)
                body, pos = _strict_chunked(data, pos, problems)
            elif cl:
                if len(cl) != 1 or not cl[0].isdigit() or len(cl[0]) > 18:
                    problems.append("invalid Content-Length %r" % cl)
                    n = 0
                else:
                    n = int(cl[0])
                if len(data) < pos + n:
                    raise _Incomplete
                body = data[pos : pos + n]
                pos += n
            requests.append(StrictRequest(conn, method, target, version, headers, body, data[start:pos]))
        except _Incomplete:
            return requests, problems, data[start:]
    problems.append("too many requests")
    return requests, problems, b""


def default_response(req):
    body = b"req " + req.method + b" " + req.target
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Capture: 1\r\n\r\n%s" % (len(body), body)


class RawCaptureBackend(TCPBackend):
    """A backend that records every byte each connection sent it and answers
    the requests a strict reader finds in them (parse_requests_strict).

    respond(req) -> bytes (or a list of bytes, sent 100 ms apart), or
    (bytes, action) with action "keep" (default),
    "close" (close after sending) or "hold" (send, then answer nothing more
    but keep reading and recording until stop). The default answers `200`
    with the body "req METHOD TARGET" and the header X-Capture: 1. Bytes are
    recorded whatever they are, so a test can check exactly what the proxy
    forwarded. With reject_invalid (the default), a connection on which the
    strict reader finds a problem is answered 400 (with X-Capture: 1) and
    closed."""

    def __init__(self, respond=None, reject_invalid=True):
        self.respond = respond or default_response
        # Answer 400 and close as soon as the strict reader finds a problem,
        # so that a test about an invalid forwarded request fails at once
        # instead of waiting for a body that may never come.
        self.reject_invalid = reject_invalid
        self.received = {}  # connection number -> bytearray
        self.answered = {}  # connection number -> requests answered
        self.closed_by_peer = set()  # connections the proxy closed
        super().__init__()

    def _accepted(self, num):
        self.received[num] = bytearray()
        self.answered[num] = 0

    def _serve(self, s, num):
        hold = False
        try:
            deadline = time.monotonic() + 120
            while not self.stopping.is_set() and time.monotonic() < deadline:
                s.settimeout(0.2)
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    with self.lock:
                        self.closed_by_peer.add(num)
                    return
                with self.lock:
                    self.received[num] += data
                    buf = bytes(self.received[num])
                if hold:
                    continue
                reqs, probs, _ = parse_requests_strict(buf, num)
                if probs and self.reject_invalid:
                    s.sendall(b"HTTP/1.1 400 Bad Request\r\nX-Capture: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    return
                for req in reqs[self.answered[num] :]:
                    with self.lock:
                        self.answered[num] += 1
                    out = self.respond(req)
                    action = "keep"
                    if isinstance(out, tuple):
                        out, action = out
                    for i, part in enumerate(out if isinstance(out, list) else [out]):
                        if i:
                            time.sleep(0.1)  # parts of a list go out as separate segments
                        if part:
                            s.sendall(part)
                    if action == "close":
                        return
                    if action == "hold":
                        hold = True
                        break
        except (ConnectionError, OSError):
            return
        except Exception as e:  # recorded so the test can report it
            self.errors.append(repr(e))

    def all_received(self):
        """{connection number: bytes received}"""
        with self.lock:
            return {k: bytes(v) for k, v in self.received.items()}

    def requests(self):
        """(every complete request on every connection, every problem,
        {connection: bytes of an incomplete last request})"""
        reqs, probs, rests = [], [], {}
        for num, data in sorted(self.all_received().items()):
            r, p, rest = parse_requests_strict(data, num)
            reqs += r
            probs += ["connection %d: %s" % (num, x) for x in p]
            if rest:
                rests[num] = rest
        return reqs, probs, rests

    def wait_requests(self, n, timeout=5.0):
        """Waits (bounded) until at least n complete requests arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests()[0]) >= n:
                return True
            time.sleep(0.02)
        return False


class SilentBackend(TCPBackend):
    """A backend that never answers. kind:

    "no-accept"   listens (backlog 64) and never accepts: connects succeed
                  (the kernel completes them), requests are never read nor
                  answered.
    "full-queue"  a listener whose accept queue is full (backlog 0, never
                  accepts, filled by our own connects): further SYNs are
                  dropped, so a connect to it hangs until the connector's
                  timeout (check the premise with connect_hangs()).
    "no-read"     accepts (backlog 16) and never reads from the connections
                  nor answers; SO_RCVBUF 4096, so what is sent to it fills
                  the socket buffers soon, then writes block."""

    KINDS = ("no-accept", "full-queue", "no-read")
    FILL = 4  # connects that fill the accept queue of "full-queue"
    HOLD = 120.0  # bound on how long "no-read" keeps a connection

    def __init__(self, kind="no-accept"):
        assert kind in self.KINDS, kind
        self.kind = kind
        self.fillers = []
        if kind == "no-read":
            super().__init__(handler=self._hold, backlog=16, rcvbuf=4096, reuseaddr=False)
            return
        super().__init__(backlog=64 if kind == "no-accept" else 0, reuseaddr=False, accept=False)
        if kind == "full-queue":
            for _ in range(self.FILL):
                f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                f.setblocking(False)
                f.connect_ex((HOST, self.port))
                self.fillers.append(f)
                time.sleep(0.02)

    def _hold(self, s, num):
        """Keeps the connection open, reading nothing, until stop (bounded)."""
        self.stopping.wait(self.HOLD)

    def connect_hangs(self, timeout=0.5):
        """True if a new connect does not complete within timeout (the
        premise of the tests that use "full-queue")."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect((HOST, self.port))
            return False
        except socket.timeout:
            return True
        except OSError:
            return False
        finally:
            s.close()

    def stop(self):
        for f in self.fillers:
            f.close()
        super().stop()
