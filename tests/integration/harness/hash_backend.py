"""HashBackend: an HTTP/1.1 backend (keep-alive, a thread per connection)
that checks bodies by SHA-256 at its end, for the HTTP/2 stream tests.

    POST/PUT ANY    reads the body (Content-Length or chunked) and answers
                    200 with X-Body-SHA256 and X-Body-Length of what came
    GET /dl?n=N&seed=S
                    answers N bytes derived from S (SHAKE-256), with their
                    X-Body-SHA256 (computed here, over what it sends)
    GET /slow?ms=M  answers 200 "slow" after M ms
    anything else   200 "ok"

Every response carries X-Backend: NAME. `requests` records (method, path,
body length or None when the body did not arrive whole) in arrival order;
`progress` the body bytes of each path received so far."""

import hashlib
import socket
import threading
import time
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"
IO_TIMEOUT = 30.0


def payload(n, seed):
    """The bytes GET /dl?n=N&seed=S answers (the test computes them too)."""
    return hashlib.shake_256(("usher-h2-%s" % seed).encode()).digest(n) if n else b""


class _Conn:
    def __init__(self, sock):
        self.s = sock
        self.buf = bytearray()

    def fill(self):
        data = self.s.recv(1 << 20)
        if not data:
            raise EOFError
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > 65536:
                raise ValueError("line too long")
            self.fill()
        i = self.buf.index(b"\r\n")
        out = bytes(self.buf[:i])
        del self.buf[: i + 2]
        return out

    def exact(self, n, sink):
        while n:
            if not self.buf:
                self.fill()
            k = min(n, len(self.buf))
            sink(bytes(self.buf[:k]))
            del self.buf[:k]
            n -= k


class HashBackend:
    def __init__(self, name="hash"):
        self.name = name
        self.requests = []
        self.progress = {}  # path -> body bytes received so far (while it arrives)
        self.errors = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((HOST, 0))
        self.lsock.listen(512)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.threads = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(s,), daemon=True)
            self.threads.append(t)
            t.start()

    def received(self, path):
        with self.lock:
            return self.progress.get(path, 0)

    def paths(self):
        with self.lock:
            return [p for _, p, _ in self.requests]

    def _serve(self, s):
        s.settimeout(IO_TIMEOUT)
        c = _Conn(s)
        try:
            while not self.stopping.is_set():
                try:
                    start = c.line()
                except socket.timeout:
                    return
                if not start:
                    continue
                method, target, _ = start.decode("latin-1").split(" ", 2)
                headers = {}
                while True:
                    ln = c.line()
                    if not ln:
                        break
                    k, _, v = ln.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                h = hashlib.sha256()
                n = [0]

                def sink(b):
                    h.update(b)
                    n[0] += len(b)
                    with self.lock:
                        self.progress[target] = n[0]

                body_ok = True
                try:
                    if headers.get("transfer-encoding", "").lower() == "chunked":
                        while True:
                            size = int(c.line().split(b";")[0], 16)
                            if size == 0:
                                while c.line():
                                    pass
                                break
                            c.exact(size, sink)
                            if c.line() != b"":
                                raise ValueError("bad chunk end")
                    elif "content-length" in headers:
                        c.exact(int(headers["content-length"]), sink)
                except (EOFError, socket.timeout, ConnectionError):
                    body_ok = False
                with self.lock:
                    self.requests.append((method, target, n[0] if body_ok else None))
                if not body_ok:
                    return
                u = urlsplit(target)
                q = parse_qs(u.query)
                extra = ""
                if method in ("POST", "PUT"):
                    body = b"received"
                    extra = "X-Body-SHA256: %s\r\nX-Body-Length: %d\r\n" % (h.hexdigest(), n[0])
                elif u.path == "/dl":
                    body = payload(int(q["n"][0]), q.get("seed", ["0"])[0])
                    extra = "X-Body-SHA256: %s\r\n" % hashlib.sha256(body).hexdigest()
                elif u.path == "/slow":
                    self.stopping.wait(int(q.get("ms", ["1000"])[0]) / 1000.0)
                    body = b"slow"
                else:
                    body = b"ok"
                head = "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Backend: %s\r\n%s\r\n" % (len(body), self.name, extra)
                s.sendall(head.encode() + (b"" if method == "HEAD" else body))
        except (EOFError, ConnectionError, OSError):
            return
        except Exception as e:  # recorded for the test to report
            self.errors.append(repr(e))
        finally:
            try:
                s.close()
            except OSError:
                pass

    def stop(self):
        self.stopping.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        deadline = time.monotonic() + 5
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
