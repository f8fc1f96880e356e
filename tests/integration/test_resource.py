"""Resource attacks: slowloris and file-descriptor exhaustion.

- Slowloris: 1000 connections trickle a request head one byte every 200 ms
  while a normal client makes 100 requests on fresh connections. Every normal
  request must succeed (latency is printed, p50 and p99, but only bounded by
  the socket timeout), and every slow connection must get 408 and be closed
  once the client head timeout (10 s by default) has passed.
- Low fd limit: usher runs with RLIMIT_NOFILE 256 while 1000 clients connect
  at once. It must not crash, must log that it pauses accepting, and must
  serve normally again once the clients are gone.

Both stay under ~30 s. They need about 2000 descriptors in this process; the
soft limit is raised to the hard limit (a test that cannot get them fails).
"""

import resource
import selectors
import socket
import sys
import time

from harness.load import LoadClient
from harness.procs import HOST
from http_raw import RawHTTPConnection

SLOW_CONNS = 1000
TRICKLE_EVERY = 0.2  # seconds between two bytes on one slow connection
NORMAL_REQUESTS = 100
HEADER_TIMEOUT = 10.0  # usher's default client head timeout
FD_LIMIT = 256
FLOOD_CONNS = 1000


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(hard, max(need, soft))
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    assert soft >= need, "this test needs %d file descriptors, the hard limit is %d" % (need, hard)


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def open_many(port, n, deadline):
    socks = []
    for _ in range(n):
        if time.monotonic() > deadline:
            break
        s = socket.create_connection((HOST, port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks.append(s)
    return socks


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def test_slowloris_does_not_starve_normal_clients(backends, start_usher):
    raise_nofile(SLOW_CONNS * 2 + 200)
    u = start_usher(backends, "--balance", "round-robin")
    head = b"GET /slow HTTP/1.1\r\nHost: usher.test\r\nX-Slow: " + b"a" * 400
    t_start = time.monotonic()
    slow = open_many(u.port, SLOW_CONNS, t_start + 10)
    assert len(slow) == SLOW_CONNS, "could only open %d slow connections" % len(slow)
    opened = time.monotonic()

    # The normal client: GET on a new connection, one every 30 ms.
    t = LoadClient(u.port, keepalive=False, target=lambda i: "/echo/normal-%d" % i, pause=0.03,
                   max_requests=NORMAL_REQUESTS)
    stop = t.stop
    t.start()

    sent = [0] * len(slow)
    got = [b""] * len(slow)
    closed_at = [None] * len(slow)
    deadline = opened + HEADER_TIMEOUT + 8
    try:
        while time.monotonic() < deadline and any(c is None for c in closed_at):
            tick = time.monotonic()
            for i, s in enumerate(slow):
                if closed_at[i] is not None:
                    continue
                try:
                    data = s.recv(4096)
                    if data:
                        got[i] += data
                    else:
                        closed_at[i] = time.monotonic()
                    continue  # answered or closed: trickle no more
                except BlockingIOError:
                    pass
                except OSError:
                    closed_at[i] = time.monotonic()
                    continue
                if got[i]:
                    continue
                if sent[i] < len(head):
                    try:
                        sent[i] += s.send(head[sent[i] : sent[i] + 1])
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        closed_at[i] = time.monotonic()
            time.sleep(max(0.0, TRICKLE_EVERY - (time.monotonic() - tick)))
        stop.set()
        t.join(30)
    finally:
        stop.set()
        close_all(slow)

    assert not t.is_alive(), "the normal client did not finish"
    attempts = t.records()
    errors = ["request %d: %s %s" % (i, a.outcome, a.detail) for i, a in enumerate(attempts) if not a.ok]
    latencies = [a.t_done - a.t_start for a in attempts if a.status is not None]
    assert not errors, "normal requests failed during the slowloris attack:\n%s" % "\n".join(errors[:20])
    assert len(latencies) == NORMAL_REQUESTS
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    print(
        "\nslowloris: %d slow connections, %d normal requests: p50 %.1f ms, p99 %.1f ms, max %.1f ms"
        % (len(slow), len(latencies), p50 * 1000, p99 * 1000, max(latencies) * 1000)
    )
    # only a very generous bound: a starving proxy would hit the socket timeout
    assert p99 < 5.0, "p99 %.2f s" % p99

    # every slow connection got 408 and was closed, after about the head timeout
    answered_408 = sum(1 for g in got if g.startswith(b"HTTP/1.1 408"))
    still_open = sum(1 for c in closed_at if c is None)
    early = sum(1 for c in closed_at if c is not None and c - opened < HEADER_TIMEOUT - 2.5)
    others = [g[:60] for g in got if g and not g.startswith(b"HTTP/1.1 408")][:5]
    print("slowloris: %d of %d got 408, %d still open, %d closed early" % (answered_408, len(slow), still_open, early))
    assert still_open == 0, "%d slow connections still open %.0f s after the head timeout" % (still_open, deadline - opened - HEADER_TIMEOUT)
    assert answered_408 == len(slow), "%d of %d slow connections got 408; others got %r" % (answered_408, len(slow), others)
    assert early == 0, "%d slow connections were closed well before the head timeout" % early
    assert u.proc.alive()


# -- low file-descriptor limit ---------------------------------------------------

LIMITED = (
    "import os, resource, sys\n"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (%d, %d))\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


def start_limited_usher(start_usher, backends, limit):
    """usher with RLIMIT_NOFILE = limit: a small Python wrapper sets the limit
    and exec()s usher, so the managed process is usher itself."""
    u = start_usher(backends, wrapper=[sys.executable, "-c", LIMITED % (limit, limit)], label="usher-fd%d" % limit)
    return u.proc, u.port


def get_ok(port, path, timeout=5):
    try:
        with RawHTTPConnection(HOST, port, timeout=timeout) as c:
            r = c.roundtrip("GET", path, [("Connection", "close")])
        return r.status
    except Exception as e:
        return repr(e)


def test_low_fd_limit_survives_flood_and_recovers(backends, start_usher):
    raise_nofile(FLOOD_CONNS + 200)
    p, port = start_limited_usher(start_usher, backends, FD_LIMIT)
    with open("/proc/%d/limits" % p.pid) as f:
        limits = f.read()
    assert any(l.startswith("Max open files") and " %d " % FD_LIMIT in l for l in limits.splitlines()), limits
    assert get_ok(port, "/echo/before") == 200

    t0 = time.monotonic()
    flood = open_many(port, FLOOD_CONNS, t0 + 15)
    req = b"GET /echo/flood HTTP/1.1\r\nHost: usher.test\r\n\r\n"
    sel = selectors.DefaultSelector()
    answered = 0
    try:
        for s in flood:
            try:
                s.send(req)
            except OSError:
                pass
            sel.register(s, selectors.EVENT_READ)
        # let usher work through what it can for a few seconds, keeping every
        # connection open (so the descriptors stay taken)
        end = time.monotonic() + 4
        seen = set()
        while time.monotonic() < end:
            for key, _ in sel.select(timeout=0.2):
                s = key.fileobj
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if s not in seen and data.startswith(b"HTTP/1.1 "):
                    seen.add(s)
                    answered += 1
                if not data:
                    sel.unregister(s)
        assert p.alive(), "usher died under the flood:\n%s" % p.read_log()[-3000:]
        log = p.read_log()
        print("\nfd flood: %d of %d connections answered while holding them open" % (answered, len(flood)))
        assert "pausing new connections" in log, "no log line about pausing accept:\n%s" % log[-3000:]
        assert p.alive()
    finally:
        sel.close()
        close_all(flood)

    # the clients are gone: usher serves normally again
    recovered_at = None
    last = None
    end = time.monotonic() + 20
    while time.monotonic() < end:
        last = get_ok(port, "/echo/after")
        if last == 200:
            recovered_at = time.monotonic()
            break
        time.sleep(0.25)
    assert recovered_at is not None, "usher did not serve again after the flood (last: %r):\n%s" % (last, p.read_log()[-3000:])
    print("fd flood: serving again %.1f s after the clients closed" % (recovered_at - (end - 20)))
    for line in p.read_log().splitlines():
        if "DOWN" in line or "UP" in line or "pausing" in line:
            print("fd flood log: " + line[:200])
    statuses = [get_ok(port, "/echo/after-%d" % i) for i in range(20)]
    assert statuses == [200] * 20, statuses
    assert p.alive()


def test_low_fd_limit_does_not_blame_backends(backends, start_usher):
    """usher's own descriptor shortage (EMFILE when it opens a backend
    connection) is not the backend's failure: passive health must not take
    healthy backends down for it (that turns a local overload into "No
    healthy backends" for everyone until the active checks bring them back)."""
    raise_nofile(FLOOD_CONNS + 200)
    p, port = start_limited_usher(start_usher, backends, FD_LIMIT)
    assert get_ok(port, "/echo/before") == 200
    flood = open_many(port, FLOOD_CONNS, time.monotonic() + 15)
    try:
        for s in flood:
            try:
                s.send(b"GET /echo/flood HTTP/1.1\r\nHost: usher.test\r\n\r\n")
            except OSError:
                pass
        time.sleep(3)
        assert p.alive()
    finally:
        close_all(flood)
    time.sleep(1)
    blamed = [l for l in p.read_log().splitlines() if "is DOWN" in l and "Too many open files" in l]
    assert not blamed, "backends taken down for usher's own EMFILE:\n%s" % "\n".join(blamed)
