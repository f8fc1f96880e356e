"""Active health checks and fail-over: a backend killed under steady
traffic is taken out without a failed request and comes back after it is
restarted; no backend at all gives 503; the state lines in the log; HTTP
checks (status ranges, rise and fall).

Checks run every 200 ms here so that transitions take well under a second;
every wait below is bounded with a generous margin for a loaded machine."""

import json
import re
import threading
import time

import pytest

from harness.load import Gate, LoadClient
from harness.procs import HOST, unused_ports
from http_raw import get_once
from usher_log import assert_json_error, healthy_list, line_of, line_time, state_re, wait_for

INTERVAL = 0.2  # --health-interval, seconds
INTERVAL_ARG = "200ms"
JITTER = 1.1  # usher spreads checks by +-10%
MARGIN = 3.0  # seconds of slack on every wait for a transition
NO_BACKENDS = {"error": "No healthy backends"}


def transition_timeout(checks):
    """Bound on the time `checks` checks in a row take, with slack."""
    return checks * INTERVAL * JITTER + INTERVAL + MARGIN


def who(resp):
    """Name of the demo backend that answered (X-Backend, cross-checked
    against the body of GET /)."""
    assert resp.status == 200, resp
    name = resp.header("X-Backend")
    assert name, "no X-Backend in %r" % resp.headers
    assert json.loads(resp.body) == {"message": "Hello from " + name}, resp.body
    return name


# -- 1. fail-over under steady traffic ----------------------------------------------


def hello_body(target, r):
    """check() of the load clients: GET / answered by a demo backend."""
    name = r.header("X-Backend")
    try:
        if json.loads(r.body) == {"message": "Hello from %s" % name}:
            return None
    except ValueError:
        pass
    return "body %r from %s" % (r.body, name)


def client_loop(port, keepalive, gate, stop):
    """GET / in a loop until `stop` is set (at most 3000 requests, 30 s):
    over one keep-alive connection (reopened only if usher closes it
    properly), or over a new connection per request. Times are wall-clock
    times, to compare with the log lines."""
    return LoadClient(
        port, keepalive=keepalive, check=hello_body, pause=0.01, stop=stop, gate=gate, clock=time.time,
        deadline=10, max_requests=3000, max_seconds=30.0,
    )


def test_failover_under_steady_traffic(start_backend, start_usher):
    b1, b2 = start_backend("backend1"), start_backend("backend2")
    u = start_usher([b1, b2], "--health-interval", INTERVAL_ARG, "--threads", "2")
    gate, stop = Gate(), threading.Event()
    loops = [client_loop(u.port, True, gate, stop), client_loop(u.port, False, gate, stop)]
    down_re = state_re(b1.url, "DOWN", healthy=re.escape(b2.url))
    up_re = state_re(b1.url, "UP", healthy=re.escape(healthy_list([b1.url, b2.url])))
    t_kill = t_restart = t_up = None
    t_start = time.monotonic()
    try:
        for t in loops:
            t.start()
        time.sleep(1.5)
        assert gate.hold(), "client requests still in flight after 10 s"
        try:
            b1.proc.kill()
            t_kill = time.time()
        finally:
            gate.release()
        time.sleep(1.5)
        b1 = start_backend("backend1", b1.port)
        t_restart = time.time()  # backend1 accepts connections from here on
        ups = wait_for(u.proc, up_re, transition_timeout(2))
        assert ups, "no UP line for %s within %.1f s of its restart" % (b1.url, transition_timeout(2))
        # Traffic for a while after the UP line (6 s in all at least).
        time.sleep(max(1.5, 6.0 - (time.monotonic() - t_start)))
    finally:
        stop.set()
        for t in loops:
            t.join(15)
    assert not any(t.is_alive() for t in loops), "client loops still running"
    log = u.proc.read_log()

    attempts = [a for t in loops for a in t.records()]
    records = sorted((a.t_start, a.t_done, a.status, a.backend) for a in attempts if a.status is not None)
    failures = sorted((a.t_done, "%s: %s" % (a.outcome, a.detail)) for a in attempts if not a.ok)
    downs = list(down_re.finditer(log))
    ups = list(up_re.finditer(log))
    assert downs, "no DOWN line for %s" % b1.url
    t_down = line_time(line_of(log, downs[0]))
    t_up = line_time(line_of(log, ups[0]))
    assert t_down is not None and t_up is not None, "log lines without a leading time: %r %r" % (
        line_of(log, downs[0]),
        line_of(log, ups[0]),
    )

    def count(lo, hi, name):
        return sum(1 for _, tr, _, n in records if lo <= tr < hi and n == name)

    phases = [("before the kill", 0, t_kill), ("kill..UP", t_kill, t_up), ("after UP", t_up, float("inf"))]
    print("\n%d requests, %d failures" % (len(records), len(failures)))
    for label, lo, hi in phases:
        print("  %-16s backend1 %4d  backend2 %4d" % (label, count(lo, hi, "backend1"), count(lo, hi, "backend2")))
    print("  kill at +0.000 s, DOWN line at %+.3f s, restart at %+.3f s, UP line at %+.3f s" % (
        t_down - t_kill, t_restart - t_kill, t_up - t_kill))

    assert not failures, "%d failed requests, first ones: %s" % (len(failures), failures[:5])
    assert len(records) >= 100, "too few requests to say anything: %d" % len(records)
    assert count(0, t_kill, "backend1") > 0 and count(0, t_kill, "backend2") > 0, "both backends serve at first"
    # Taken out promptly: by the active checks (fall 3) or by live traffic.
    assert t_down - t_kill <= transition_timeout(3), "DOWN line %.2f s after the kill" % (t_down - t_kill)
    assert len(downs) == 1, "several DOWN lines for one outage: %s" % [m.group(0) for m in downs]
    # While backend1 is DOWN (dead, then restarted but not yet UP) it gets
    # nothing: no answer from it between the kill and the UP line (2 ms of
    # slack for the millisecond resolution of the log time).
    early = [r for r in records if t_kill < r[1] < t_up - 0.002 and r[3] == "backend1"]
    assert not early, "backend1 answered while DOWN: %s" % early[:5]
    # Back in rotation within rise x interval (+ margin) of its restart.
    first_back = min((tr for _, tr, _, n in records if tr > t_kill and n == "backend1"), default=None)
    assert first_back is not None, "backend1 got no traffic after its restart"
    assert first_back - t_restart <= transition_timeout(2), "backend1 back %.2f s after restart" % (
        first_back - t_restart)
    assert count(t_up, float("inf"), "backend1") >= 5 and count(t_up, float("inf"), "backend2") >= 5


# -- 2. no healthy backend --------------------------------------------------------------


def test_no_healthy_backend_then_one_back(start_backend, start_usher):
    b1, b2 = start_backend("backend1"), start_backend("backend2")
    u = start_usher([b1, b2], "--health-interval", INTERVAL_ARG)
    assert who(get_once(u.port, "GET", "/")) in ("backend1", "backend2")
    b1.proc.stop()
    b2.proc.stop()
    # Right away (connects refused) and once both are DOWN: 503 JSON.
    r = get_once(u.port, "GET", "/")
    assert_json_error(r, 503)
    assert json.loads(r.body) == NO_BACKENDS, r.body
    last_down = state_re([b1.url, b2.url], "DOWN", healthy="none")
    assert wait_for(u.proc, last_down, transition_timeout(3)), "no DOWN line with 'healthy: none'"
    for i in range(3):
        r = get_once(u.port, "GET", "/nb/%d" % i)
        assert_json_error(r, 503)
        assert json.loads(r.body) == NO_BACKENDS, r.body
    with u.raw() as c:  # keep-alive client, request with a body
        r = c.roundtrip("POST", "/echo/nb", body=b"x" * 100)
        assert_json_error(r, 503)
        assert json.loads(r.body) == NO_BACKENDS, r.body

    b2 = start_backend("backend2", b2.port)
    t_restart = time.monotonic()
    served = None
    for _ in range(int(transition_timeout(2) / 0.05) + 1):
        r = get_once(u.port, "GET", "/")
        if r.status == 200:
            served = r
            break
        assert_json_error(r, 503)
        if time.monotonic() - t_restart > transition_timeout(2):
            break
        time.sleep(0.05)
    assert served is not None, "still no 200 %.1f s after backend2 came back" % transition_timeout(2)
    assert who(served) == "backend2"
    assert wait_for(u.proc, state_re(b2.url, "UP", healthy=re.escape(b2.url)), 5), "no UP line for backend2"
    for i in range(6):
        assert who(get_once(u.port, "GET", "/")) == "backend2"


# -- 3. the state lines in the log -----------------------------------------------------------


@pytest.mark.parametrize(
    "check,rise,fall",
    [("http", None, None), ("http", 3, 2), ("tcp", None, None)],
    ids=["http-defaults", "http-rise3-fall2", "tcp-defaults"],
)
def test_state_lines_in_log(start_backend, start_usher, check, rise, fall):
    b1, b2 = start_backend("backend1"), start_backend("backend2")
    args = ["--health-interval", INTERVAL_ARG]
    if check == "http":
        args += ["--health-path", "/health"]
    if rise:
        args += ["--health-rise", rise]
    if fall:
        args += ["--health-fall", fall]
    rise, fall = rise or 2, fall or 3
    u = start_usher([b1, b2], *args)
    any_state = re.compile(r"backend \S+ is (?:UP|DOWN) ")
    # All pass: no state line (backends count as up from the start).
    time.sleep(transition_timeout(fall) - MARGIN)
    assert not any_state.search(u.proc.read_log()), "state line while all backends are healthy"

    down_reason = re.escape("Connection refused, %d of %d checks failed" % (fall, fall))
    if check == "http":
        up_reason = re.escape("GET /health answered 200, %d of %d checks passed" % (rise, rise))
    else:
        up_reason = r"[^()\n]+, " + re.escape("%d of %d checks passed" % (rise, rise))

    b1.proc.stop()
    m = wait_for(u.proc, state_re(b1.url, "DOWN", down_reason, re.escape(b2.url)), transition_timeout(fall))
    assert m, "no DOWN line of the expected form for backend1"

    b1 = start_backend("backend1", b1.port)
    m = wait_for(
        u.proc, state_re(b1.url, "UP", up_reason, re.escape(healthy_list([b1.url, b2.url]))), transition_timeout(rise)
    )
    assert m, "no UP line of the expected form for backend1"

    b2.proc.stop()
    m = wait_for(u.proc, state_re(b2.url, "DOWN", down_reason, re.escape(b1.url)), transition_timeout(fall))
    assert m, "no DOWN line of the expected form for backend2"
    b1.proc.stop()
    m = wait_for(u.proc, state_re(b1.url, "DOWN", down_reason, "none"), transition_timeout(fall))
    assert m, "no second DOWN line for backend1 with 'healthy: none'"

    # One line per transition, nothing else of that shape.
    log = u.proc.read_log()
    states = [(mm.group(1), mm.group(2)) for mm in re.finditer(r"backend (\S+) is (UP|DOWN) ", log)]
    assert states == [(b1.url, "DOWN"), (b1.url, "UP"), (b2.url, "DOWN"), (b1.url, "DOWN")], states


# -- 4. HTTP check semantics ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path,status_arg,demo_up",
    [
        ("/status/500", None, False),
        ("/status/500", "500", True),
        ("/status/399", None, True),
        ("/status/400", None, False),
        ("/status/404", "200-404", True),
    ],
    ids=["500-default-range", "500-allowed", "399-default-range", "400-default-range", "404-in-200-404"],
)
def test_http_check_status_range(start_backend, capture, start_usher, path, status_arg, demo_up):
    """backend1 (demo) answers the check path with its status; the capture
    backend answers 200 to everything. The backend whose answer is outside
    the range goes DOWN after 3 checks and gets no traffic."""
    b1 = start_backend("backend1")
    cb = capture()
    args = ["--health-path", path, "--health-interval", INTERVAL_ARG]
    if status_arg:
        args += ["--health-status", status_arg]
    u = start_usher([b1, cb.port], *args)
    lo, _, hi = (status_arg or "200-399").partition("-")
    lo, hi = int(lo), int(hi or lo)
    code = int(path.rsplit("/", 1)[1])
    assert (lo <= code <= hi) == demo_up  # the parameters agree with themselves
    cb_up = lo <= 200 <= hi
    cb_url = "http://%s:%d" % (HOST, cb.port)
    expect_healthy = [url for url, up in ((b1.url, demo_up), (cb_url, cb_up)) if up]

    # Wait for the transitions that must happen, then for enough checks
    # that those that must not happen would have.
    if not demo_up:
        reason = re.escape("GET %s answered %d, 3 of 3 checks failed" % (path, code))
        assert wait_for(u.proc, state_re(b1.url, "DOWN", reason), transition_timeout(3)), "backend1 not taken DOWN"
    if not cb_up:
        reason = re.escape("GET %s answered 200, 3 of 3 checks failed" % path)
        assert wait_for(u.proc, state_re(cb_url, "DOWN", reason), transition_timeout(3)), "capture not taken DOWN"
    deadline = time.monotonic() + transition_timeout(6)
    for _ in range(int(transition_timeout(6) / 0.05) + 1):
        if len(cb.paths(path)) >= 6 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(cb.paths(path)) >= 6, "the capture backend saw only %d checks" % len(cb.paths(path))
    log = u.proc.read_log()
    if demo_up:
        assert not state_re(b1.url, "DOWN").search(log), "backend1 taken DOWN though %d is in range" % code
    if cb_up:
        assert not state_re(cb_url, "DOWN").search(log), "capture taken DOWN though 200 is in range"

    # Traffic goes only to the healthy ones.
    seen = []
    for i in range(8):
        r = get_once(u.port, "GET", "/echo/t4/%d" % i)
        assert r.status == 200, r
        seen.append(r.header("X-Backend") or "capture")
    expect_names = {"backend1"} if demo_up else set()
    if cb_up:
        expect_names.add("capture")
    assert set(seen) == expect_names, "traffic went to %s, healthy: %s" % (seen, expect_healthy)
    if not cb_up:
        assert not cb.paths("/echo/t4/"), "the DOWN capture backend got traffic"


# -- 7. one backend out, many concurrent clients ---------------------------------------------


@pytest.mark.parametrize(
    "mode", ["down", "refusing"], ids=["dead-backend-down", "dead-backend-in-rotation"]
)
def test_concurrent_clients_never_see_503_while_one_backend_serves(start_backend, start_usher, mode):
    """One of two backends is dead: DOWN after its checks failed, or (checks
    and passive health off) still in rotation, refusing connects. With many
    worker threads and concurrent clients, every request is served by the
    live one: 'No healthy backends' would be a lie while it is UP."""
    dead = unused_ports(1)[0]
    live = start_backend("backend1")
    if mode == "down":
        u = start_usher([dead, live], "--threads", "8", "--health-interval", INTERVAL_ARG)
        assert wait_for(u.proc, state_re("http://%s:%d" % (HOST, dead), "DOWN"), transition_timeout(3)), "not DOWN"
    else:
        u = start_usher([dead, live], "--threads", "8", "--health-interval", "off", "--max-fails", "0")
    clients = [
        LoadClient(u.port, keepalive=(k % 2 == 0), deadline=10, max_requests=300, max_seconds=30.0) for k in range(16)
    ]
    for t in clients:
        t.start()
    for t in clients:
        t.join(60)
    assert not any(t.is_alive() for t in clients), "clients still running after 60 s"
    results = {}
    for a in (a for t in clients for a in t.records()):
        key = (a.status, a.backend, a.body) if a.status is not None else ("exception", a.detail, b"")
        results[key] = results.get(key, 0) + 1
    print("\n", results)
    total = sum(results.values())
    assert total >= 1000, results
    assert results.get((200, "backend1", b""), 0) == total, "not all served by backend1: %s" % results


# -- 8. slow start and drain from the command line ----------------------------------------------

SLOW_START = 4.0  # seconds (--slow-start)


def test_slow_start_ramps_a_returning_backend_up(start_backend, start_usher):
    """A backend that comes back UP gets few requests at first and its whole
    round-robin share once --slow-start has passed; the UP line says so."""
    b1, b2 = start_backend("backend1"), start_backend("backend2")
    u = start_usher(
        [b1, b2],
        "--health-interval", INTERVAL_ARG, "--health-rise", 1, "--health-fall", 1,
        "--slow-start", "%ds" % SLOW_START,
    )
    first = [who(get_once(u.port, "GET", "/")) for _ in range(10)]
    assert first.count("backend2") == 5, first  # no ramp for the backends usher starts with
    b2.proc.stop()
    assert wait_for(u.proc, state_re(b2.url, "DOWN"), transition_timeout(1)), "no DOWN line for backend2"
    b2 = start_backend("backend2", b2.port)
    up = re.compile(
        r"backend %s is UP \([^\n]*\); healthy: [^\n]*; its share of requests ramps up over %d ms \(slow start\)$"
        % (re.escape(b2.url), SLOW_START * 1000),
        re.M,
    )
    m = wait_for(u.proc, up, transition_timeout(1))
    assert m, "no UP line announcing the slow start"
    # the ramp's start, from the line's own time (not from when this test saw it)
    t_up = time.monotonic() - (time.time() - line_time(line_of(u.proc.read_log(), m[0])))
    # The first quarter of the ramp: backend2 may take at most a quarter of
    # its half; averaged, about 6% of all requests. 25% leaves room for a
    # late look at the log on a loaded machine.
    early = []
    while time.monotonic() - t_up < SLOW_START / 4 and len(early) < 400:
        early.append(who(get_once(u.port, "GET", "/")))
    share = early.count("backend2") / max(1, len(early))
    print("\nslow start %.0f s: backend2 took %d of %d requests (%.1f%%) in the first %.2f s after its UP line"
          % (SLOW_START, early.count("backend2"), len(early), 100 * share, time.monotonic() - t_up))
    # (fewer than 20 answers: the log was seen too late to judge this part)
    assert len(early) < 20 or share < 0.25, "backend2 took %.0f%% right after coming back" % (100 * share)
    # Around the middle of the ramp: about half of its half.
    time.sleep(max(0.0, t_up + SLOW_START * 0.4 - time.monotonic()))
    mid = []
    while time.monotonic() - t_up < SLOW_START * 0.6 and len(mid) < 400:
        mid.append(who(get_once(u.port, "GET", "/")))
    mshare = mid.count("backend2") / len(mid)
    print("between 40%% and 60%% of the ramp: %d of %d (%.1f%%)" % (mid.count("backend2"), len(mid), 100 * mshare))
    assert len(mid) >= 20, "too few requests to judge: %d" % len(mid)
    assert 0.08 < mshare < 0.45, "backend2 took %.0f%% in the middle of its ramp" % (100 * mshare)
    # After the ramp: exact alternation again.
    time.sleep(max(0.0, t_up + SLOW_START + 0.5 - time.monotonic()))
    late = [who(get_once(u.port, "GET", "/")) for _ in range(40)]
    print("after the ramp: backend2 took %d of 40" % late.count("backend2"))
    assert late.count("backend2") == 20, late


def test_drain_flag_keeps_a_backend_out(start_backend, start_usher, run_usher):
    b1, b2 = start_backend("backend1"), start_backend("backend2")
    u = start_usher([b1], "--backend", b2.url + ",drain", "--health-interval", INTERVAL_ARG)
    names = [who(get_once(u.port, "GET", "/")) for _ in range(10)]
    assert names == ["backend1"] * 10, names
    assert re.search(r"%s \(draining: no new requests\)" % re.escape(b2.url), u.proc.read_log())
    b1.proc.stop()  # the only usable backend gone: 503, never the draining one
    # the draining backend is still checked, and listed as such
    down = state_re(b1.url, "DOWN", healthy=re.escape(b2.url + " (draining)"))
    assert wait_for(u.proc, down, transition_timeout(3)), "no DOWN line for backend1"
    r = get_once(u.port, "GET", "/")
    assert_json_error(r, 503)
    p = run_usher("-t", "--backend", b2.url + ",drained")
    assert p.returncode == 2
    assert b"expected ,weight=N or ,drain" in p.stderr, p.stderr
