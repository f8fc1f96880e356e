"""Load drivers: what hammers usher with requests from threads and counts
the outcome.

LoadClient    a thread that sends requests in a loop (one keep-alive
              connection, or a new connection per request) until stopped or
              bounded in count and time, and records every attempt (Attempt:
              times, status, backend, outcome).
run_parallel  runs a client function on N threads at once and collects
              what they raised (for clients written with httpx).

Gate lets a test hold the LoadClients between two requests (to kill a
backend while no request is in flight)."""

import random
import threading
import time

from http_raw import PeerClosed, TracingConnection

HOST = "127.0.0.1"

# Outcomes of an Attempt. "ok": status 200 and check() found nothing.
CONNECT_FAILURES = ("refused", "connect-error")
NO_RESPONSE = ("no-response", "send-failed")  # nothing came back
BAD_RESPONSE = ("truncated", "broken", "bad-status", "bad-body")


class Attempt:
    """One request of a LoadClient. Times come from the client's clock:
    t_start before the connect (if one was needed) and the send, t_conn when
    its connection was established, t_sent once the request was sent,
    t_done when the attempt ended. conn: the client's connection number,
    nth: the request's number on that connection (1, 2, ...)."""

    __slots__ = (
        "client", "conn", "nth", "target", "t_start", "t_conn", "t_sent", "t_done",
        "status", "backend", "closing", "body", "outcome", "detail",
    )

    def __init__(self, client, conn, nth, target):
        self.client, self.conn, self.nth, self.target = client, conn, nth, target
        self.t_start = self.t_conn = self.t_sent = self.t_done = None
        self.status = self.backend = None
        self.closing = False  # the response said Connection: close
        self.body = b""  # the body of a response that is not a 200
        self.outcome = self.detail = None

    @property
    def ok(self):
        return self.outcome == "ok"

    def show(self, t0):
        def rel(t):
            return "-" if t is None else "%+.3f" % (t - t0)

        return "%s conn %d req %d %s: connected %s sent %s done %s: %s %s" % (
            self.client, self.conn, self.nth, self.target, rel(self.t_conn), rel(self.t_sent),
            rel(self.t_done), self.outcome, self.detail or "")


class Gate:
    """Lets the test hold every client between two requests: hold() waits
    until no request is in flight and keeps new ones from starting until
    release()."""

    def __init__(self):
        self.cond = threading.Condition()
        self.inflight = 0
        self.held = False

    def enter(self, timeout=10.0):
        with self.cond:
            if not self.cond.wait_for(lambda: not self.held, timeout):
                raise AssertionError("gate held for more than %.0f s" % timeout)
            self.inflight += 1

    def leave(self):
        with self.cond:
            self.inflight -= 1
            self.cond.notify_all()

    def hold(self, timeout=10.0):
        with self.cond:
            self.held = True
            return self.cond.wait_for(lambda: self.inflight == 0, timeout)

    def release(self):
        with self.cond:
            self.held = False
            self.cond.notify_all()


class LoadClient(threading.Thread):
    """GET requests to usher on `port` in a loop until `stop` is set, bounded
    by max_requests and max_seconds. Every attempt is recorded in
    `attempts` (see Attempt; `count()` reads them while the client runs).

    keepalive=True: requests go over one connection (without Connection:
    close), a new one only after Connection: close, a failure, or
    per_conn requests (an int, or per_conn(i) -> int, i = attempts so far,
    asked when the connection opens; None: no limit). keepalive=False: a
    new connection per request, sent with Connection: close.

    target: a path, or target(i) -> path. check(target, response) -> None,
    or what is wrong with a 200 ("bad-body"). pause: seconds to sleep after
    each attempt, or pause() -> seconds; after a failed connect at least
    0.02 s. gate: a Gate entered around each attempt. clock: the clock of the
    Attempt times (time.time to compare them with usher's log lines).
    timeout: per socket operation; deadline: for a whole response (None: the
    http_raw default)."""

    def __init__(self, port, name="load", keepalive=True, per_conn=None, target="/", check=None,
                 pause=0.0, stop=None, gate=None, clock=time.monotonic, timeout=10.0, deadline=None,
                 max_requests=100000, max_seconds=120.0):
        super().__init__(name=name, daemon=True)
        self.port = port
        self.keepalive = keepalive
        self.per_conn = per_conn
        self.target = target
        self.check = check
        self.pause = pause
        self.stop = stop if stop is not None else threading.Event()
        self.gate = gate
        self.clock = clock
        self.timeout = timeout
        self.deadline = deadline
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.lock = threading.Lock()
        self.attempts = []

    def count(self, outcome="ok"):
        with self.lock:
            return sum(1 for a in self.attempts if a.outcome == outcome)

    def records(self):
        with self.lock:
            return list(self.attempts)

    def _record(self, a):
        if a.t_done is None:
            a.t_done = self.clock()
        with self.lock:
            self.attempts.append(a)

    def _sleep(self, connect_failed):
        p = self.pause() if callable(self.pause) else self.pause
        if connect_failed:
            p = max(p, 0.02)
        if p > 0:
            time.sleep(p)

    def run(self):
        conn = t_conn = None
        conn_no = nth = left = 0
        hard_deadline = time.monotonic() + self.max_seconds
        try:
            for i in range(self.max_requests):
                if self.stop.is_set() or time.monotonic() > hard_deadline:
                    return
                target = self.target(i) if callable(self.target) else self.target
                if self.gate is not None:
                    self.gate.enter()
                try:
                    t_start = self.clock()
                    if conn is None:
                        conn_no += 1
                        nth = 0
                        left = self.per_conn(i) if callable(self.per_conn) else self.per_conn
                        try:
                            conn = TracingConnection(HOST, self.port, timeout=self.timeout)
                        except Exception as e:
                            a = Attempt(self.name, conn_no, 1, target)
                            a.t_start = t_start
                            a.outcome = "refused" if isinstance(e, ConnectionRefusedError) else "connect-error"
                            a.detail = repr(e)
                            self._record(a)
                            self._sleep(True)
                            continue
                        t_conn = self.clock()
                    nth += 1
                    a = Attempt(self.name, conn_no, nth, target)
                    a.t_start, a.t_conn = t_start, t_conn
                    keep = self._exchange(conn, a)
                    if left is not None:
                        left -= 1
                        keep = keep and left > 0
                    if not (keep and self.keepalive):
                        conn.close()
                        conn = None
                finally:
                    if self.gate is not None:
                        self.gate.leave()
                self._record(a)
                self._sleep(False)
        except Exception as e:  # reported by the test as a failed attempt
            a = Attempt(self.name, conn_no, nth, "-")
            a.outcome, a.detail = "crashed", "client loop crashed: %r" % e
            self._record(a)
        finally:
            if conn is not None:
                conn.close()

    def _exchange(self, c, a):
        """One request; True if the connection may carry another one."""
        headers = [] if self.keepalive else [("Connection", "close")]
        try:
            c.request("GET", a.target, headers)
        except Exception as e:
            a.t_done = self.clock()
            a.outcome, a.detail = "send-failed", repr(e)
            return False
        a.t_sent = self.clock()
        try:
            if self.deadline is None:
                r = c.read_response()
            else:
                r = c.read_response(deadline=time.monotonic() + self.deadline)
        except PeerClosed as e:
            a.t_done = self.clock()
            a.outcome = "no-response" if "before a response" in str(e) else "truncated"
            a.detail = "%s (%s)" % (e, c.ended)
            return False
        except Exception as e:  # ProtocolError, OSError (timeouts included), anything else
            a.t_done = self.clock()
            a.outcome, a.detail = "broken", "%s: %r" % (type(e).__name__, e)
            return False
        a.t_done = self.clock()
        a.status, a.backend = r.status, r.header("X-Backend")
        a.closing = r.has_token("Connection", "close")
        if r.status != 200:
            a.body = r.body
            a.outcome, a.detail = "bad-status", repr(r)
        else:
            problem = self.check(a.target, r) if self.check is not None else None
            if problem:
                a.outcome, a.detail = "bad-body", problem
            else:
                a.outcome = "ok"
                a.detail = "Connection: close" if a.closing else ""
        return a.outcome == "ok" and not a.closing


def run_parallel(client, n, timeout=60.0):
    """Runs client(k) for k in range(n) on n threads at once and waits for
    them (join(timeout) each). Returns (errors, running): "client k: <what
    it raised>" for each client that raised, and whether any thread is
    still running."""
    errors = []

    def run(k):
        try:
            client(k)
        except Exception as e:  # reported by the test
            errors.append("client %d: %r" % (k, e))

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return errors, any(t.is_alive() for t in threads)


def seeded_pause(seed, most):
    """pause() for LoadClient: uniform in [0, most), from a generator seeded
    with `seed` (the same sequence at every run)."""
    rng = random.Random(seed)
    return lambda: rng.uniform(0, most)
