"""Reloading the -c file on SIGHUP.

- Under continuous load (keep-alive connections and a new connection per
  request), 20 reloads that switch the pool between two backend sets: no
  request fails, and after each reload the traffic goes to the new set
  (connections that were idle at the reload included).
- A broken file (invalid YAML; an unknown pool) is reported as
  `reload: FILE:LINE:COL: ...` plus a failure line, and usher keeps serving
  with what it had; a valid file after that is taken.
- Listeners: one added on reload starts answering, one removed stops (its
  port refuses connections), and a listener that stays never refuses a
  connection meanwhile.
- Health state carries over: a DOWN backend kept by the reload gets no
  request, and comes back UP when it is started again.
- A request in flight during a reload finishes on the old configuration;
  the next request on its keep-alive connection uses the new one.
"""

import re
import signal
import socket
import threading
import time

import pytest

from harness.load import LoadClient, seeded_pause
from harness.procs import HOST, yaml_pos as pos
from http_raw import RawHTTPConnection
from usher_log import state_re, wait_for


# -- helpers -------------------------------------------------------------------------


def one_request(port, target="/", timeout=5.0):
    """(status, X-Backend) of one GET on a new connection (Connection: close)."""
    with RawHTTPConnection(HOST, port, timeout=timeout) as c:
        r = c.roundtrip("GET", target, [("Connection", "close")])
    return r.status, r.header("X-Backend")


def connect_outcome(port, timeout=2.0):
    """'ok' if a TCP connect to port succeeds, 'refused' if it is refused,
    else the error."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return "ok"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return repr(e)


def pool_config(backend_urls, health="{ type: tcp, interval: 500ms }", extra_pool="", extra_listeners=""):
    return (
        "threads: 2\n"
        "listeners:\n"
        "  - bind: <L0>\n"
        "    pool: web\n"
        "%s"
        "pools:\n"
        "  web:\n"
        "    health: %s\n"
        "%s"
        "    backends: [ %s ]\n" % (extra_listeners, health, extra_pool, ", ".join('"%s"' % u for u in backend_urls))
    )


def wait_backend(port, want, timeout=3.0):
    """Sends requests on new connections until one is answered 200 by
    backend `want` (bounded). Returns the number of requests it took, or
    None (with the last answers) if none was."""
    deadline = time.monotonic() + timeout
    seen = []
    for n in range(1, int(timeout / 0.005) + 10):
        try:
            got = one_request(port)
        except (OSError, AssertionError) as e:
            got = (None, repr(e))
        if got == (200, want):
            return n, seen
        seen.append(got)
        if time.monotonic() > deadline:
            return None, seen[-10:]
        time.sleep(0.005)
    return None, seen[-10:]


# -- 1. reloads under load ----------------------------------------------------------------

RELOADS = 20
RELOAD_SPACING = 0.15  # seconds between two SIGHUPs (at least)
MARGIN = 0.05  # after a new connection saw the new set: let every worker switch
MAX_REQUESTS_PER_CLIENT = 200000


def framed_by_length(target, r):
    """check() of the load clients: a complete 200 framed by Content-Length."""
    return None if r.framing == "length" else repr(r)


def load_client(name, port, keepalive, pause, stop):
    """GET / in a loop until stopped: on one keep-alive connection (a new
    one only if usher closes it), or on a new connection per request, with a
    random pause of up to `pause` seconds after each. An attempt's t_start
    is taken before the connect (new connections) or the send (keep-alive)."""
    kind = "ka" if keepalive else "new"
    return LoadClient(
        port, name=name, keepalive=keepalive, target=lambda n: "/?%s=%d" % (kind, n), check=framed_by_length,
        pause=seeded_pause(name, pause), stop=stop, max_requests=MAX_REQUESTS_PER_CLIENT,
    )


def test_reloads_under_load_switch_backend_sets(start_backend, start_usher_file):
    a = start_backend("a1")
    b = start_backend("b1")
    sets = {"a1": a, "b1": b}
    u = start_usher_file(pool_config([a.url]), 1)
    (port,) = u.ports
    assert one_request(port) == (200, "a1")

    # A keep-alive connection used once before and once after each reload:
    # idle while the reload happens.
    idle = RawHTTPConnection(HOST, port, timeout=10)
    stop = threading.Event()
    clients = [
        load_client("keepalive-busy", port, True, 0.0, stop),
        load_client("keepalive-paced", port, True, 0.1, stop),
        load_client("new-conn-1", port, False, 0.0, stop),
        load_client("new-conn-2", port, False, 0.0, stop),
    ]
    phases = []  # (time of SIGHUP, time the new set was seen, backend name)
    probe_counts = []
    violations = []
    try:
        for c in clients:
            c.start()
        time.sleep(0.3)
        current = "a1"
        for i in range(RELOADS):
            want = "b1" if i % 2 == 0 else "a1"
            r = idle.roundtrip("GET", "/?idle-before=%d" % i)
            if (r.status, r.header("X-Backend")) != (200, current):
                violations.append(
                    "reload %d: idle keep-alive connection, request before the reload: %d from %r, expected 200 from %s"
                    % (i, r.status, r.header("X-Backend"), current)
                )
            u.write(pool_config([sets[want].url]))
            h = time.monotonic()
            since = u.reload()
            assert "reload:" not in since, "warnings on a valid reload:\n" + since
            n, seen = wait_backend(port, want)
            if n is None:
                violations.append("reload %d: no new connection reached %s within 3 s; last answers %r" % (i, want, seen))
                n = -1
            c_time = time.monotonic()
            probe_counts.append(n)
            phases.append((h, c_time, want))
            current = want
            time.sleep(MARGIN)
            r = idle.roundtrip("GET", "/?idle-after=%d" % i)
            if (r.status, r.header("X-Backend")) != (200, want):
                violations.append(
                    "reload %d: a keep-alive connection idle during the reload sent its next request %.0f ms "
                    "after the new set was seen: %d from %r, expected 200 from %s"
                    % (i, (time.monotonic() - c_time) * 1000, r.status, r.header("X-Backend"), want)
                )
            left = h + RELOAD_SPACING - time.monotonic()
            if left > 0:
                time.sleep(left)
        time.sleep(0.3)
    finally:
        stop.set()
        for c in clients:
            c.join(30)
        idle.close()
    assert not any(c.is_alive() for c in clients), "a load client did not stop"

    # Every request: a complete 200 from one of the two sets.
    failed = []
    for c in clients:
        for a in c.records():
            if not a.ok or a.backend not in sets:
                failed.append("%s: %s %s status %r backend %r" % (c.name, a.outcome, a.detail, a.status, a.backend))

    # Requests that started after the new set was seen (plus a margin) and
    # ended before the next SIGHUP went to the new set.
    bounds = [(float("-inf"), "a1")] + [(c_time + MARGIN, want) for _, c_time, want in phases]
    ends = [h for h, _, _ in phases] + [float("inf")]
    checked = 0
    wrong = []
    per_phase = [dict() for _ in bounds]
    for c in clients:
        prev = {}  # connection number -> end of its previous request
        for a in c.records():
            t0, t1, status, who, conn_no = a.t_start, a.t_done, a.status, a.backend, a.conn
            before = prev.get(conn_no)
            prev[conn_no] = t1
            if status != 200:
                continue
            for k, ((lo, want), hi) in enumerate(zip(bounds, ends)):
                if t0 >= lo and t1 < hi:
                    checked += 1
                    per_phase[k][who] = per_phase[k].get(who, 0) + 1
                    if who != want:
                        note = ""
                        if before is not None and k > 0 and before < phases[k - 1][1]:
                            note = (
                                "; its keep-alive connection was idle across the reload (its previous request "
                                "ended %+.0f ms from the SIGHUP, %.0f ms before a new connection saw the new set)"
                                % ((before - phases[k - 1][0]) * 1000, (phases[k - 1][1] - before) * 1000)
                            )
                        wrong.append(
                            "%s: request started %.0f ms after the reload to %s was seen (phase %d) went to %s%s"
                            % (c.name, (t0 - lo + MARGIN) * 1000, want, k, who, note)
                        )
                    break

    total = sum(len(c.records()) for c in clients)
    print(
        "\n%d reloads; %d requests (%s); %d failed; %d checked against their phase, %d to the wrong set; "
        "keep-alive connections closed by usher: %d; new-connection probes until the new set answered: %s"
        % (
            len(phases),
            total,
            ", ".join("%s %d" % (c.name, len(c.records())) for c in clients),
            len(failed),
            checked,
            len(wrong),
            sum(1 for c in clients if c.keepalive for a in c.records() if a.closing),
            probe_counts,
        )
    )
    print("per phase (backend: requests): %s" % [d for d in per_phase])
    problems = []
    if failed:
        problems.append("%d of %d requests failed:\n  %s" % (len(failed), total, "\n  ".join(failed[:30])))
    if wrong:
        problems.append("%d requests went to the old set:\n  %s" % (len(wrong), "\n  ".join(wrong[:30])))
    if violations:
        problems.append("\n".join(violations))
    assert not problems, "\n\n".join(problems)
    assert len(phases) == RELOADS
    assert checked >= 100, "too few requests fell inside a phase to check anything: %d" % checked
    assert u.counts()[0] == RELOADS


def test_idle_keepalive_connection_moves_to_new_config(start_backend, start_usher_file):
    """A keep-alive connection that is idle when the reload happens: its next
    request is a new request, so it uses the new configuration."""
    a = start_backend("a1")
    b = start_backend("b1")
    u = start_usher_file(pool_config([a.url]), 1)
    (port,) = u.ports
    conns = [RawHTTPConnection(HOST, port, timeout=10) for _ in range(4)]  # both workers, most likely
    try:
        for c in conns:
            r = c.roundtrip("GET", "/")
            assert (r.status, r.header("X-Backend")) == (200, "a1"), r
        u.reload(pool_config([b.url]))
        n, seen = wait_backend(port, "b1")
        assert n is not None, "new connections never reached b1 after the reload: %r" % seen
        time.sleep(MARGIN)
        got = []
        for c in conns:
            r = c.roundtrip("GET", "/")
            got.append((r.status, r.header("X-Backend")))
        # And the request after that one.
        got2 = []
        for c in conns:
            r = c.roundtrip("GET", "/")
            got2.append((r.status, r.header("X-Backend")))
    finally:
        for c in conns:
            c.close()
    assert got == [(200, "b1")] * len(conns), (
        "first request after the reload on keep-alive connections that were idle during it: %r "
        "(then the next one: %r); expected every one from b1" % (got, got2)
    )
    assert got2 == [(200, "b1")] * len(conns), got2


# -- 2. a broken file -------------------------------------------------------------------


def check_still_old(port, conn, name, n=6):
    """n requests on new connections and n on the keep-alive conn: 200 from `name`."""
    got = [one_request(port) for _ in range(n)]
    for _ in range(n):
        r = conn.roundtrip("GET", "/")
        got.append((r.status, r.header("X-Backend")))
    assert got == [(200, name)] * (2 * n), "after a failed reload, expected 200 from %s: %r" % (name, got)


@pytest.mark.parametrize("kind", ["syntax", "unknown-pool"])
def test_broken_file_keeps_serving(start_backend, start_usher_file, kind):
    a = start_backend("a1")
    b = start_backend("b1")
    u = start_usher_file(pool_config([a.url]), 1)
    (port,) = u.ports
    good_b = pool_config([b.url])
    if kind == "syntax":
        text = good_b.replace("    pool: web\n", "    pool: web: extra\n")
        where = pos(u.render(text), "pool: web: extra", ": extra")
        needles = ["invalid YAML", "mapping values are not allowed"]
    else:
        text = good_b.replace("    pool: web\n", "    pool: wbe\n")
        where = pos(u.render(text), "pool: wbe", "wbe")
        needles = ["unknown pool 'wbe'", "defined pools: web"]
    assert text != good_b

    conn = RawHTTPConnection(HOST, port, timeout=10)
    try:
        r = conn.roundtrip("GET", "/")
        assert (r.status, r.header("X-Backend")) == (200, "a1")

        for attempt in range(2):  # the same broken file twice: the same report
            body = u.write(text)
            outcome, since = u.hup()
            info = "YAML:\n%s\nlog since SIGHUP:\n%s" % (body, since)
            assert outcome == "failed", info
            errs = [(int(m.group(1)), int(m.group(2)), m.group(3)) for m in u.error_re.finditer(since)]
            assert len(errs) == 1, "expected one 'reload: FILE:LINE:COL:' line\n" + info
            line, col, msg = errs[0]
            assert (line, col) == where, "error at %d:%d, expected %d:%d\n%s" % (line, col, where[0], where[1], info)
            for n in needles:
                assert n in msg, "message %r does not mention %r\n%s" % (msg, n, info)
            m = u.failed_re.search(since)
            assert m and m.group(1) == "1", info
            assert "(1 error)" in m.group(0), info
            assert not u.reloaded_re.search(since), info
            assert u.proc.alive(), info
            check_still_old(port, conn, "a1")

        # The listener and the old configuration are intact: a good file is taken.
        u.reload(good_b)
        n, seen = wait_backend(port, "b1")
        assert n is not None, "after a failed reload then a good one, traffic never reached b1: %r" % seen
        time.sleep(MARGIN)
        assert [one_request(port) for _ in range(4)] == [(200, "b1")] * 4
        r = conn.roundtrip("GET", "/")
        r = conn.roundtrip("GET", "/")
        assert (r.status, r.header("X-Backend")) == (200, "b1")
    finally:
        conn.close()


def test_sighup_without_file_is_ignored(backends, start_usher):
    u = start_usher(backends, "--balance", "round-robin")
    u.proc.proc.send_signal(signal.SIGHUP)
    rx = re.compile(r"received SIGHUP: nothing to reload \(started without -c FILE\)$", re.M)
    assert wait_for(u.proc, rx, 5), u.proc.read_log()
    assert u.proc.alive()
    assert one_request(u.port)[0] == 200


# -- 3. listeners added and removed ------------------------------------------------------


def test_listener_added_then_removed(start_backend, start_usher_file):
    a = start_backend("a1")
    b = start_backend("b1")
    one = pool_config([a.url])
    two = (
        "threads: 2\n"
        "listeners:\n"
        "  - bind: <L0>\n"
        "    pool: web\n"
        "  - bind: <L1>\n"
        "    pool: other\n"
        "pools:\n"
        "  web:\n"
        "    health: { type: tcp, interval: 500ms }\n"
        '    backends: [ "%s" ]\n'
        "  other:\n"
        "    health: { type: tcp, interval: 500ms }\n"
        '    backends: [ "%s" ]\n' % (a.url, b.url)
    )
    u = start_usher_file(one, 2)
    kept, added = u.ports
    assert connect_outcome(added) == "refused", "something listens on the port chosen for the new listener"

    # New connections to the kept listener in a loop (one GET each) until stopped.
    hammer = LoadClient(kept, keepalive=False, target=lambda n: "/?h=%d" % n, timeout=5.0,
                        max_requests=MAX_REQUESTS_PER_CLIENT)
    stop = hammer.stop
    hammer.start()
    try:
        time.sleep(0.3)
        for cycle in range(3):
            u.reload(two)
            # The new port answers, with its own pool, on every connection.
            deadline = time.monotonic() + 3
            for _ in range(1000):
                if connect_outcome(added) == "ok" or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            got = []
            for _ in range(10):
                try:
                    got.append(one_request(added))
                except OSError as e:
                    got.append(repr(e))
            assert got == [(200, "b1")] * 10, "cycle %d: the added listener: %r" % (cycle, got)
            assert one_request(kept) == (200, "a1")

            u.reload(one)
            # The removed port stops answering: refused, every time.
            deadline = time.monotonic() + 3
            for _ in range(1000):
                if connect_outcome(added) == "refused" or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            outs = [connect_outcome(added) for _ in range(10)]
            assert outs == ["refused"] * 10, "cycle %d: the removed listener's port: %r" % (cycle, outs)
            assert one_request(kept) == (200, "a1")
        time.sleep(0.2)
    finally:
        stop.set()
        hammer.join(30)
    assert not hammer.is_alive()
    ok = hammer.count("ok")
    refused = [(a.t_start, a.detail) for a in hammer.records() if a.outcome == "refused"]
    other = [(a.t_start, "%s: %s" % (a.outcome, a.detail)) for a in hammer.records() if a.outcome not in ("ok", "refused")]
    print("\nkept listener during 6 reloads: %d ok, %d refused, %d other failures" % (ok, len(refused), len(other)))
    assert not refused, "the kept listener refused %d connections during reloads: %r" % (len(refused), refused[:10])
    assert not other, "requests to the kept listener failed: %r" % other[:10]
    assert ok >= 20, "the hammer made too few requests: %d" % ok


# -- 4. health state carries over -------------------------------------------------------------

HEALTH = "{ type: tcp, interval: 200ms, timeout: 200ms, rise: 2, fall: 2 }"


def test_health_state_carries_over(start_backend, start_usher_file):
    d = start_backend("d1")
    live = start_backend("live")
    # No retry, no passive health: a request sent to the dead backend fails
    # for all to see.
    text = pool_config([d.url, live.url], health=HEALTH, extra_pool="    balance: round-robin\n    retries: 0\n    max_fails: 0\n")
    u = start_usher_file(text, 1)
    (port,) = u.ports
    seen = {one_request(port)[1] for _ in range(6)}
    assert seen == {"d1", "live"}, seen

    down_re = state_re(d.url, "DOWN")
    up_re = state_re(d.url, "UP")
    probs = d.proc.stop()
    assert not probs, probs
    assert wait_for(u.proc, down_re, 10), "no DOWN line for %s:\n%s" % (d.url, u.proc.read_log())
    time.sleep(0.1)
    assert [one_request(port) for _ in range(6)] == [(200, "live")] * 6

    # Reloads that keep the dead backend (same URL, same pool name) with
    # other settings changed; right after each one, nothing goes to it.
    variants = [
        text.replace("retries: 0", "retries: 0\n    timeouts: { connect: 1s }"),
        text.replace('backends: [ "%s", "%s" ]' % (d.url, live.url), 'backends: [ "%s", "%s" ]' % (live.url, d.url)),
        text,
    ]
    ups_before = len(up_re.findall(u.proc.read_log()))
    for i, v in enumerate(variants):
        u.reload(v)
        got = [one_request(port) for _ in range(12)]
        assert got == [(200, "live")] * 12, "reload %d: right after a reload that keeps the DOWN backend: %r" % (i, got)
        time.sleep(0.3)  # a few health intervals of the new configuration
        got = [one_request(port) for _ in range(6)]
        assert got == [(200, "live")] * 6, "reload %d: 0.3 s after the reload: %r\n%s" % (i, got, u.proc.read_log())
    log = u.proc.read_log()
    assert len(up_re.findall(log)) == ups_before, "the dead backend was said UP:\n" + log

    # Started again on its port: back UP, and it gets traffic again.
    d2 = start_backend("d1", port=d.port)
    m = wait_for(u.proc, up_re, 10, count=ups_before + 1)
    assert m, "no UP line for %s after it was started again:\n%s" % (d.url, u.proc.read_log())
    deadline = time.monotonic() + 3
    seen = set()
    for _ in range(200):
        st, who = one_request(port)
        assert st == 200, (st, who)
        seen.add(who)
        if seen == {"d1", "live"} or time.monotonic() > deadline:
            break
    assert seen == {"d1", "live"}, "after its UP line the restarted backend got no request: %r" % seen
    assert d2.proc.alive()


# -- 5. a request in flight ----------------------------------------------------------------------


def test_in_flight_request_finishes_on_old_config(start_backend, start_usher_file):
    a = start_backend("a1")
    b = start_backend("b1")
    u = start_usher_file(pool_config([a.url]), 1)
    (port,) = u.ports
    assert one_request(port) == (200, "a1")

    new_conn = RawHTTPConnection(HOST, port, timeout=10)
    ka = RawHTTPConnection(HOST, port, timeout=10)
    try:
        r = ka.roundtrip("GET", "/")
        assert (r.status, r.header("X-Backend")) == (200, "a1")
        t0 = time.monotonic()
        new_conn.request("GET", "/slow?ms=1500", [("Connection", "close")])
        ka.request("GET", "/slow?ms=1500")
        time.sleep(0.3)  # both are at the backend by now
        u.reload(pool_config([b.url]))
        t_reload = time.monotonic() - t0
        n, seen = wait_backend(port, "b1")
        assert n is not None, "new connections never reached b1 after the reload: %r" % seen
        r1 = new_conn.read_response()
        r2 = ka.read_response()
        took = time.monotonic() - t0
        assert t_reload < 1.2, "the reload came too late to test anything: %.2f s" % t_reload
        for r in (r1, r2):
            assert r.status == 200 and r.header("X-Backend") == "a1" and r.framing == "length", r
        assert took >= 1.4, took
        assert new_conn.wait_closed(5)
        # The keep-alive connection's next request: the new configuration.
        r3 = ka.roundtrip("GET", "/")
        assert (r3.status, r3.header("X-Backend")) == (200, "b1"), r3
    finally:
        new_conn.close()
        ka.close()


# -- 6. draining a backend by reload ---------------------------------------------------------------


def drain_config(b1, b2, drain2):
    return (
        "threads: 2\n"
        "listeners:\n"
        "  - bind: <L0>\n"
        "    pool: web\n"
        "pools:\n"
        "  web:\n"
        "    health: { type: tcp, interval: 500ms }\n"
        "    backends:\n"
        '      - "%s"\n'
        '      - { url: "%s", drain: %s }\n' % (b1, b2, "true" if drain2 else "false")
    )


def test_drain_by_reload_lets_in_flight_requests_finish(start_backend, start_usher_file):
    """A backend set to `drain: true` takes no new request from the reload on,
    while the requests it is serving finish; `drain: false` brings it back.
    Both changes are logged."""
    b1, b2 = start_backend("backend1"), start_backend("backend2")
    u = start_usher_file(drain_config(b1.url, b2.url, False), 1)
    (port,) = u.ports
    names = [one_request(port)[1] for _ in range(6)]
    assert sorted(set(names)) == ["backend1", "backend2"], names

    # Two slow requests at once: round robin gives one to each backend.
    conns = [RawHTTPConnection(HOST, port, timeout=10) for _ in range(2)]
    try:
        t0 = time.monotonic()
        for c in conns:
            c.request("GET", "/slow?ms=1500", [("Connection", "close")])
        time.sleep(0.3)  # both are at their backends by now
        since = u.reload(drain_config(b1.url, b2.url, True))
        t_reload = time.monotonic() - t0
        assert re.search(r"backend %s is DRAINING: it takes no new requests" % re.escape(b2.url), since), since
        # New requests, on new and on kept connections: backend1 only.
        after = [one_request(port) for _ in range(20)]
        assert after == [(200, "backend1")] * 20, after
        rs = [c.read_response() for c in conns]
        assert t_reload < 1.2, "the reload came too late to test anything: %.2f s" % t_reload
        assert sorted((r.status, r.header("X-Backend")) for r in rs) == [(200, "backend1"), (200, "backend2")], rs
        assert time.monotonic() - t0 >= 1.4
    finally:
        for c in conns:
            c.close()
    # Still checked while draining: taken back with drain: false.
    since = u.reload(drain_config(b1.url, b2.url, False))
    assert re.search(r"backend %s no longer drains" % re.escape(b2.url), since), since
    n, seen = wait_backend(port, "backend2")
    assert n is not None, "backend2 got no request after drain: false: %r" % seen
    names = [one_request(port)[1] for _ in range(10)]
    assert names.count("backend2") == 5, names
