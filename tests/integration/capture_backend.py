"""A small HTTP/1.1 backend written in Python for tests that need to see
upstream connections (how many, which request came on which) or need a
backend that misbehaves on purpose."""

import socket
import threading
import time

IO_TIMEOUT = 10.0


class CaptureBackend:
    """HTTP/1.1 server on 127.0.0.1:<free port> answering every request with
    `200 ok` (Content-Length: 2).

    mode "keepalive":   keeps connections open.
    mode "idle-close":  closes a connection after `idle` seconds without a
                        new request (no Connection: close header).
    mode "close-header": answers with Connection: close, then keeps the
                        socket open for `linger` seconds and records any byte
                        that arrives on it afterwards (a reuse violation).

    Whatever the mode, some paths misbehave on purpose:
    /truncate  announces Content-Length: 100, sends 10 bytes and closes;
    /garbage   answers with bytes that are not HTTP and closes;
    /hangup    closes the connection without answering."""

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
                if path.startswith("/truncate"):
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                    return
                if path.startswith("/garbage"):
                    s.sendall(b"this is not HTTP at all\r\n\r\n")
                    return
                if path.startswith("/hangup"):
                    return
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
