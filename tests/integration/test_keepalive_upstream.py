"""Upstream connection reuse, observed with a small capture backend written
here in Python that counts the TCP connections it accepts and records which
requests came on which connection."""

import socket
import threading
import time

import pytest

from http_raw import RawHTTPConnection

N = 50
IO_TIMEOUT = 10.0


class CaptureBackend:
    """HTTP/1.1 server on 127.0.0.1:<free port> answering every request with
    `200 ok` (Content-Length: 2).

    mode "keepalive":   keeps connections open.
    mode "idle-close":  closes a connection after `idle` seconds without a
                        new request (no Connection: close header).
    mode "close-header": answers with Connection: close, then keeps the
                        socket open for `linger` seconds and records any byte
                        that arrives on it afterwards (a reuse violation)."""

    def __init__(self, mode="keepalive", idle=0.3, linger=2.0):
        self.mode = mode
        self.idle = idle
        self.linger = linger
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = []  # (connection number, method, path)
        self.violations = []  # (connection number, bytes received after Connection: close)
        self.errors = []
        self.stopping = threading.Event()
        self.threads = []
        self.socks = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self.threads.append(t)

    def _accept_loop(self):
        deadline = time.monotonic() + 300  # hard bound on the server's life
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
                self.socks.append(s)
            t = threading.Thread(target=self._serve, args=(s, num), daemon=True)
            t.start()
            with self.lock:
                self.threads.append(t)

    def _recv(self, s, buf, timeout):
        s.settimeout(timeout)
        data = s.recv(65536)
        if not data:
            raise EOFError
        buf += data

    def _serve(self, s, num):
        buf = bytearray()
        try:
            for _ in range(10000):
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
                if self.mode == "close-header":
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                    self._linger(s, num, bytes(buf))
                    return
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except (EOFError, ConnectionError, socket.timeout, OSError):
            return
        except Exception as e:  # recorded so the test can report it
            self.errors.append(repr(e))
        finally:
            try:
                s.close()
            except OSError:
                pass

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


@pytest.fixture
def capture():
    backends = []

    def make(**kw):
        b = CaptureBackend(**kw)
        backends.append(b)
        return b

    yield make
    for b in backends:
        b.stop()


def one_request(port, path, headers=()):
    """One request on its own client connection; the client closes it."""
    with RawHTTPConnection("127.0.0.1", port) as c:
        r = c.roundtrip("GET", path, list(headers))
    assert r.status == 200, r
    assert r.body == b"ok", r
    return r


@pytest.mark.parametrize("client_close_header", [False, True], ids=["client-closes", "connection-close"])
def test_upstream_connections_are_reused(capture, start_usher, client_close_header):
    cb = capture(mode="keepalive")
    u = start_usher([cb.port], "--threads", "1")
    headers = [("Connection", "close")] if client_close_header else []
    for i in range(N):
        one_request(u.port, "/ka/%d" % i, headers)
    assert cb.paths("/ka/") == ["/ka/%d" % i for i in range(N)]
    used = cb.connections_with("/ka/")
    assert len(used) <= 5, "%d requests over separate client connections used %d upstream connections" % (N, len(used))
    assert not cb.errors, cb.errors


def test_upstream_reuse_with_keepalive_client(capture, start_usher):
    cb = capture(mode="keepalive")
    u = start_usher([cb.port], "--threads", "1")
    with u.raw() as c:
        for i in range(N):
            r = c.roundtrip("GET", "/kc/%d" % i)
            assert r.status == 200 and r.body == b"ok", r
    used = cb.connections_with("/kc/")
    assert len(used) <= 5, "%d requests used %d upstream connections" % (N, len(used))


def test_backend_closing_idle_connection(capture, start_usher):
    """The capture backend closes connections idle for 0.3 s. Requests made
    after such a close must still succeed: usher must not reuse (or must
    recover from) a pooled connection the backend has closed."""
    cb = capture(mode="idle-close", idle=0.3)
    u = start_usher([cb.port], "--threads", "1")
    for i in range(4):
        one_request(u.port, "/idle/%d" % i)
        time.sleep(0.8)
    with u.raw() as c:  # same through a keep-alive client connection
        for i in range(4, 7):
            r = c.roundtrip("GET", "/idle/%d" % i)
            assert r.status == 200 and r.body == b"ok", r
            time.sleep(0.8)
    assert cb.paths("/idle/") == ["/idle/%d" % i for i in range(7)]
    # Sanity check of the capture backend: it did close the idle connections.
    assert len(cb.connections_with("/idle/")) >= 2


def test_connection_close_from_backend_is_honoured(capture, start_usher):
    """After a response carrying Connection: close usher must not send
    another request on that upstream connection."""
    cb = capture(mode="close-header", linger=3.0)
    u = start_usher([cb.port], "--threads", "1")
    for i in range(6):
        one_request(u.port, "/cc/%d" % i)
    with u.raw() as c:
        for i in range(6, 9):
            r = c.roundtrip("GET", "/cc/%d" % i)
            assert r.status == 200 and r.body == b"ok", r
    assert cb.paths("/cc/") == ["/cc/%d" % i for i in range(9)]
    assert len(cb.connections_with("/cc/")) == 9
    assert not cb.violations, "bytes sent on upstream connections after Connection: close: %r" % cb.violations
