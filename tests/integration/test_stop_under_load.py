"""Stop and reload lose nothing (issue 14, item 1).

32 keep-alive connections send requests back to back (LoadClient). On
SIGTERM usher stops accepting, answers every request that reaches it with
Connection: close, and closes idle keep-alive connections only after a
settle time (spread over 50-500 ms): a client that sends its next request
at the instant of the signal is answered. So no request that was sent gets
no answer. Refused connects after the listener has closed are not lost
requests: they are counted separately.

The same load across 20 reloads (SIGHUP, the listener stays) loses nothing
either: connections move to the new configuration between requests."""

import signal
import threading
import time

from harness.load import BAD_RESPONSE, CONNECT_FAILURES, NO_RESPONSE, LoadClient
from harness.procs import HOST
from http_raw import RawHTTPConnection

CONNS = 32
RUNS = 3
RELOADS = 20
EXIT_TIMEOUT = 20.0  # generous: a loaded 2-core machine, a sanitizer build


def config(backends, threads=2):
    text = "threads: %d\nlisteners:\n  - bind: <L0>\n    pool: web\npools:\n  web:\n" % threads
    text += "    health: { type: off }\n    backends:\n"
    for b in backends:
        text += "      - %s\n" % b.url
    return text


def start_load(port, stop):
    clients = [
        LoadClient(port, name="c%d" % i, target="/bytes?n=%d" % (1 + 97 * i), stop=stop, max_requests=200000,
                   max_seconds=60.0, timeout=15.0)
        for i in range(CONNS)
    ]
    for c in clients:
        c.start()
    return clients


def wait_ok(clients, n, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(c.count("ok") for c in clients) >= n:
            return True
        time.sleep(0.02)
    return False


def outcomes(clients):
    done = [a for c in clients for a in c.records()]
    by = {}
    for a in done:
        by[a.outcome] = by.get(a.outcome, 0) + 1
    lost = [a for a in done if a.outcome in NO_RESPONSE or a.outcome in BAD_RESPONSE or a.outcome == "crashed"]
    return done, by, lost


def stop_clients(clients, stop):
    stop.set()
    for c in clients:
        c.join(30)
    return [c.name for c in clients if c.is_alive()]


def test_sigterm_under_back_to_back_load_loses_nothing(backends, start_usher_file):
    seen = []
    for run in range(RUNS):
        proc, (port,) = start_usher_file(config(backends))
        stop = threading.Event()
        t_start = time.monotonic()
        clients = start_load(port, stop)
        try:
            assert wait_ok(clients, 200), "run %d: the load did not get going:\n%s" % (run, proc.read_log())
            time.sleep(max(0.0, t_start + 1.0 - time.monotonic()))  # about 1 s of load
            t_sig = time.monotonic()
            proc.proc.send_signal(signal.SIGTERM)
            rc = proc.wait_exit(EXIT_TIMEOUT)
            time.sleep(0.2)  # the clients see the refusals
        finally:
            hung = stop_clients(clients, stop)
        done, by, lost = outcomes(clients)
        after = [a for a in done if a.ok and a.t_sent is not None and a.t_sent >= t_sig]
        refused = sum(by.get(k, 0) for k in CONNECT_FAILURES)
        seen.append((by, len(after), refused))
        summary = "run %d: %d attempts %r, %d answered requests sent after the signal, %d refused connects" % (
            run, len(done), by, len(after), refused)
        print(summary)
        assert not hung, "client threads still running: %r" % hung
        assert not lost, "run %d: requests sent and not answered (times relative to the signal):\n%s\n%s" % (
            run, "\n".join(a.show(t_sig) for a in lost[:40]), summary)
        assert rc == 0, "run %d: usher exit status %r:\n%s" % (run, rc, proc.read_log())
        assert by.get("ok", 0) >= 200, summary
    print("SIGTERM runs: %r" % seen)


def test_reloads_under_back_to_back_load_lose_nothing(backends, start_usher_file):
    u = start_usher_file(config(backends))
    proc, (port,) = u
    stop = threading.Event()
    clients = start_load(port, stop)
    try:
        assert wait_ok(clients, 200), "the load did not get going:\n%s" % proc.read_log()
        for i in range(RELOADS):
            u.write(config(backends) + "# reload %d\n" % i)
            outcome, log = u.hup()
            assert outcome == "reloaded", log
            time.sleep(0.05)
        n = sum(c.count("ok") for c in clients)
        assert wait_ok(clients, n + 200), "no progress after the reloads:\n%s" % proc.read_log()
    finally:
        hung = stop_clients(clients, stop)
    done, by, lost = outcomes(clients)
    summary = "%d reloads: %d attempts %r" % (RELOADS, len(done), by)
    print(summary)
    assert not hung, "client threads still running: %r" % hung
    assert not lost, "requests sent and not answered:\n%s\n%s" % (
        "\n".join(a.show(time.monotonic()) for a in lost[:40]), summary)
    assert not any(by.get(k) for k in CONNECT_FAILURES), summary


def test_reload_removing_the_listener_under_load_loses_nothing(backends, start_usher_file):
    """The load runs on a second listener, which a reload removes: the
    connections on it are not closed at once; what arrives on them is
    answered with Connection: close, then they close; new connects are
    refused. The first listener keeps serving."""
    two = config(backends).replace("pools:", "  - bind: <L1>\n    pool: web\npools:", 1)
    u = start_usher_file(two, 2)
    proc, (port0, port1) = u
    stop = threading.Event()
    clients = start_load(port1, stop)
    try:
        assert wait_ok(clients, 200), "the load did not get going:\n%s" % proc.read_log()
        u.write(config(backends))
        t_hup = time.monotonic()
        outcome, log = u.hup()
        assert outcome == "reloaded", log
        # every client ends up refused: its connection was closed after the reload
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if all(any(a.outcome in CONNECT_FAILURES for a in c.records()) for c in clients):
                break
            time.sleep(0.05)
    finally:
        hung = stop_clients(clients, stop)
    done, by, lost = outcomes(clients)
    after = [a for a in done if a.ok and a.t_sent is not None and a.t_sent >= t_hup]
    summary = "reload removing the listener: %d attempts %r, %d answered after the reload" % (len(done), by, len(after))
    print(summary)
    assert not hung, "client threads still running: %r" % hung
    assert not lost, "requests sent and not answered (times relative to the reload):\n%s\n%s" % (
        "\n".join(a.show(t_hup) for a in lost[:40]), summary)
    stuck = [c.name for c in clients if not any(a.outcome in CONNECT_FAILURES for a in c.records())]
    assert not stuck, "connections still served on the removed listener 10 s after the reload: %r\n%s" % (stuck, summary)
    with RawHTTPConnection(HOST, port0, timeout=10) as c:
        assert c.roundtrip("GET", "/").status == 200
    assert proc.alive(), proc.read_log()
