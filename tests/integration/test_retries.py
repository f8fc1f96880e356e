"""Retries and passive health, with backends that misbehave on purpose (the
capture backend and the silent backends of harness/backends.py: a listener
that never answers, one whose accept queue is full).

The rules under test:
- a failed connect always goes on to the next untried backend;
- a pooled keep-alive upstream connection that the backend closed before any
  response byte is retried on a fresh connection for an idempotent method;
- never a retry once a response byte has arrived; never a resend of a POST
  of which anything was sent (the client gets 502);
- 502 when the backend fails mid-exchange, 504 when it does not answer
  within --response-timeout, JSON bodies {"error": "..."};
- --max-fails failures in a row on live traffic take a backend DOWN at once.

Active checks are made harmless where they would interfere: HTTP checks
every 10 s (the first one lands within 2.5 s and cannot change a state on
its own)."""

import re
import time

import pytest

from harness.procs import HOST, unused_ports
from http_raw import PeerClosed, RawHTTPConnection, get_once
from usher_log import assert_json_error, state_re, wait_for

QUIET_CHECKS = ["--health-path", "/health", "--health-interval", "10s"]
IDEMPOTENT_NO_BODY = ["GET", "HEAD", "DELETE", "OPTIONS", "TRACE"]


def url(port):
    return "http://%s:%d" % (HOST, port)


def one(port, method, target, body=None, headers=()):
    """One request on its own client connection."""
    with RawHTTPConnection(HOST, port, timeout=15) as c:
        c.request(method, target, list(headers) + [("Connection", "close")], body)
        return c.read_response(method, deadline=time.monotonic() + 15)


# -- 5a. stale pooled connection: idempotent requests are retried --------------------------


STALE_CASES = [(m, None) for m in IDEMPOTENT_NO_BODY] + [("PUT", b""), ("PUT", b"put body")]


@pytest.mark.parametrize(
    "method,body", STALE_CASES, ids=IDEMPOTENT_NO_BODY + ["PUT-empty-body", "PUT-with-body"]
)
def test_stale_pooled_connection_retried_for_idempotent(capture, start_usher, method, body):
    """The backend answers the first request on a connection, and closes it
    (without answering) when the second one arrives there: the request that
    usher sent on the pooled connection is sent again on a fresh one, and
    the client never notices."""
    cb = capture(drop_nth=2)
    u = start_usher([cb.port], "--threads", "1", "--max-fails", "0")
    r = one(u.port, "GET", "/warm")
    assert r.status == 200 and r.body == b"ok", r
    r = one(u.port, method, "/stale/" + method, body)
    assert r.status == 200, "%s on a stale pooled connection: %r" % (method, r)
    assert r.body == (b"" if method == "HEAD" else b"ok"), r
    seen = cb.requests_with("/stale/")
    warm_conn = cb.requests_with("/warm")[0][0]
    assert len(seen) == 2, "expected the request on the stale connection, then once again: %s" % seen
    (c1, m1, _), (c2, m2, _) = seen
    assert m1 == m2 == method, seen
    assert c1 == warm_conn, "first attempt not on the pooled connection %d: %s" % (warm_conn, seen)
    assert c2 != c1 and cb.first_request_on(c2) == "/stale/" + method, "retry not on a fresh connection: %s" % seen
    # Not counted against the backend: it still serves.
    assert one(u.port, "GET", "/after").status == 200
    assert not cb.errors, cb.errors


def test_stale_pooled_connection_keepalive_client(capture, start_usher):
    """The same through one keep-alive client connection, several times in
    a row: every second request on each upstream connection is dropped."""
    cb = capture(drop_nth=2)
    u = start_usher([cb.port], "--threads", "1", "--max-fails", "0")
    with u.raw() as c:
        for i in range(8):
            r = c.roundtrip("GET", "/ka/%d" % i)
            assert r.status == 200 and r.body == b"ok", "request %d: %r" % (i, r)
    paths = [p for _, _, p in cb.requests_with("/ka/")]
    assert sorted(set(paths)) == sorted("/ka/%d" % i for i in range(8)), paths
    # Each request reached the backend at most twice (stale, then fresh).
    assert all(paths.count(p) <= 2 for p in set(paths)), paths
    assert len(paths) > 8, "no request hit a stale connection; the test proves nothing: %s" % paths


# -- 5b. POST is never resent ------------------------------------------------------------------


@pytest.mark.parametrize("pooled", [False, True], ids=["fresh-connection", "pooled-connection"])
def test_post_not_resent_after_backend_closes(capture, start_usher, pooled):
    """The backend reads the whole POST and closes without answering, on a
    fresh connection or (after warm-up requests) on a pooled one, which
    looks just like a pooled connection gone stale. The client gets 502
    JSON; the POST reached the backends exactly once (a resend to the other
    backend would be counted too)."""
    cb1, cb2 = capture(), capture()
    target = "/hangup/post"
    u = start_usher([cb1.port, cb2.port], "--threads", "1", "--max-fails", "0")
    if pooled:
        for i in range(2):  # one pooled connection to each backend
            r = one(u.port, "GET", "/warm/%d" % i)
            assert r.status == 200, r
    body = b"p" * 5000
    r = one(u.port, "POST", target, body, [("Content-Type", "application/octet-stream")])
    assert_json_error(r, 502)
    n = cb1.count("POST", target) + cb2.count("POST", target)
    assert n == 1, "the POST reached the backends %d times" % n
    if pooled:
        fresh = [cb.first_request_on(c) == target for cb in (cb1, cb2) for c, _, _ in cb.requests_with(target)]
        print("POST went on a %s connection" % ("fresh" if fresh[0] else "pooled"))
    # Both backends still serve (nothing was taken out: --max-fails 0).
    for i in range(2):
        assert one(u.port, "GET", "/ok/%d" % i).status == 200


def test_post_on_keepalive_client_then_next_request(capture, start_usher):
    """After the 502 for a lost POST, a keep-alive client connection is
    either closed or still usable for the next request."""
    cb = capture()
    u = start_usher([cb.port], "--max-fails", "0")
    with u.raw() as c:
        c.request("POST", "/hangup/ka", body=b"abc")
        r = c.read_response()
        assert_json_error(r, 502)
        if not r.has_token("Connection", "close"):
            r = c.roundtrip("GET", "/next")
            assert r.status == 200 and r.body == b"ok", r
    assert cb.count("POST", "/hangup/ka") == 1


# -- 5c. no retry once the response has begun --------------------------------------------------


@pytest.mark.parametrize("kind", ["reset-mid", "truncate", "reset-head"])
@pytest.mark.parametrize("pooled", [False, True], ids=["fresh-connection", "pooled-connection"])
def test_no_retry_after_response_bytes(capture, start_usher, kind, pooled):
    """The backend sends part of a response, then resets (or closes). The
    client sees a truncated response or a closed connection (a 502 if
    nothing had been forwarded yet), never a complete response, and the
    GET was not sent again, even on a pooled connection."""
    cb1, cb2 = capture(), capture()
    u = start_usher([cb1.port, cb2.port], "--threads", "1", "--max-fails", "0")
    if pooled:
        for i in range(2):
            assert one(u.port, "GET", "/warm/%d" % i).status == 200
    target = "/%s/x" % kind
    with RawHTTPConnection(HOST, u.port, timeout=15) as c:
        c.request("GET", target)
        deadline = time.monotonic() + 15
        try:
            head = c.read_head(deadline)
        except PeerClosed:
            head = None  # closed before a response: acceptable
        if head is not None:
            if head.status == 502:
                c.read_body(head, deadline=deadline)
                assert_json_error(head, 502)
            else:
                assert kind != "reset-head", "a partial head was forwarded: %r" % head
                assert head.status == 200, head
                try:
                    c.read_body(head, deadline=deadline)
                except PeerClosed:
                    pass  # truncated, as it should be
                else:
                    raise AssertionError("truncated upstream response delivered as complete: %r" % head)
    n = len(cb1.paths(target)) + len(cb2.paths(target))
    assert n == 1, "the GET reached the backends %d times after a partial response" % n
    for i in range(2):
        assert one(u.port, "GET", "/ok/%d" % i).status == 200


# -- 5d. connect refused / timed out: the next backend -----------------------------------------


@pytest.mark.parametrize(
    "extra",
    [["--max-fails", "0", "--health-interval", "off"], []],
    ids=["dead-stays-in-rotation", "defaults"],
)
def test_connect_refused_goes_to_next_backend(start_backend, start_usher, extra):
    live = start_backend("backend1")
    dead = unused_ports(1)[0]
    u = start_usher([dead, live, dead], *extra)
    live.reset_stats()
    n = 12
    for i in range(n):
        r = get_once(u.port, "GET", "/echo/cr/%d" % i)
        assert r.status == 200 and r.header("X-Backend") == "backend1", "request %d: %r" % (i, r)
    with u.raw() as c:
        for i in range(n):
            body = b"post %d " % i * 50
            r = c.roundtrip("POST", "/echo/crp/%d" % i, body=body)
            assert r.status == 200 and r.header("X-Backend") == "backend1", "POST %d: %r" % (i, r)
            assert r.json()["body_length"] == len(body)
    stats = live.stats()
    # Each request reached the live backend once: a POST of which nothing
    # was sent anywhere is safe to send on.
    assert stats["by_method"].get("POST") == n, stats
    assert stats["by_method"].get("GET", 0) == n, stats


def test_connect_timeout_goes_to_next_backend(silent_backend, start_backend, start_usher):
    hole = silent_backend("full-queue")
    if not hole.connect_hangs():
        pytest.fail("premise: a connect to a listener with a full accept queue should hang here", pytrace=False)
    live = start_backend("backend1")
    u = start_usher([hole.port, live], "--connect-timeout", "300ms", "--max-fails", "0", "--health-interval", "off")
    for i in range(4):
        r = one(u.port, "GET", "/echo/ct/%d" % i)
        assert r.status == 200 and r.header("X-Backend") == "backend1", "request %d: %r" % (i, r)
        r = one(u.port, "POST", "/echo/ctp/%d" % i, b"abc")
        assert r.status == 200 and r.header("X-Backend") == "backend1", "POST %d: %r" % (i, r)


# -- 6. timeouts, resets and garbage: answers and passive health ----------------------------------


def test_response_timeout_gives_504(silent_backend, start_usher):
    s = silent_backend()
    u = start_usher([s.port], "--response-timeout", "500ms", "--max-fails", "0", *QUIET_CHECKS)
    t = time.monotonic()
    r = one(u.port, "GET", "/never")
    took = time.monotonic() - t
    assert_json_error(r, 504)
    assert took >= 0.4, "504 after %.2f s, before the 500 ms response timeout" % took


MISBEHAVING = {
    # kind of misbehaving backend: what the client gets from usher
    "never-answers": "504",
    "reset-mid-response": "truncated-or-502",
    "hello-garbage": "502",
}


@pytest.mark.parametrize("max_fails", [1, 2])
@pytest.mark.parametrize("kind", list(MISBEHAVING))
def test_passive_failures_take_backend_down(silent_backend, capture, start_backend, start_usher, kind, max_fails):
    """backend A misbehaves on every request, backend1 is fine. Requests one
    after the other: A gets exactly max_fails of them, each failing in the
    expected way; then A is DOWN (log line) and everything goes to
    backend1."""
    good = start_backend("backend1")
    if kind == "never-answers":
        bad = silent_backend()  # never reads: cannot count what it got
    else:
        bad = capture(misbehave={"reset-mid-response": "reset-mid", "hello-garbage": "hello"}[kind])
    u = start_usher(
        [bad.port, good],
        "--max-fails",
        max_fails,
        "--response-timeout",
        "500ms",
        *QUIET_CHECKS,
    )
    down_re = state_re(url(bad.port), "DOWN", r".+ failures? in a row on live traffic", re.escape(good.url))
    failed, served = [], []
    for i in range(max_fails * 2 + 8):
        with RawHTTPConnection(HOST, u.port, timeout=15) as c:
            c.request("GET", "/echo/pf/%d" % i, [("Connection", "close")])
            deadline = time.monotonic() + 15
            head = c.read_head(deadline)
            if head.header("X-Backend") == "backend1":
                c.read_body(head, deadline=deadline)
                assert head.status == 200, head
                served.append(i)
                continue
            if head.status in (502, 504):
                c.read_body(head, deadline=deadline)
                assert_json_error(head, head.status)
                failed.append((i, head.status))
            else:
                assert MISBEHAVING[kind] == "truncated-or-502" and head.status == 200, head
                with pytest.raises(PeerClosed):
                    c.read_body(head, deadline=deadline)
                failed.append((i, "truncated"))
    print("failed: %s; served by backend1: %s" % (failed, served))
    expect = MISBEHAVING[kind]
    for i, what in failed:
        if expect == "504":
            assert what == 504, failed
        elif expect == "502":
            assert what == 502, failed
        else:
            assert what in (502, "truncated"), failed
    assert len(failed) == max_fails, "%d failed requests, expected %d (max-fails): %s" % (
        len(failed), max_fails, failed)
    # All failures came first (round robin alternates until A is out), and
    # nothing failed after.
    assert failed[-1][0] < served[-1] and served == [i for i in range(max_fails * 2 + 8) if i not in dict(failed)]
    m = wait_for(u.proc, down_re, 5)
    assert m, "no DOWN line for the misbehaving backend"
    assert re.search(r"\b%d failures? in a row" % max_fails, m[0].group("reason")), m[0].group(0)
    if kind != "never-answers":
        n = len(bad.paths("/echo/pf/"))
        assert n == max_fails, "the misbehaving backend got %d requests" % n


def test_passive_down_comes_back_only_by_active_check(capture, start_usher):
    """--max-fails 1 takes the backend down on its first garbage answer; it
    stays out (no traffic) although it would answer fine now, until the
    active HTTP checks (rise 2, every 1 s: not before 0.9 s) bring it
    back."""
    cb = capture()
    cb2 = capture()
    u = start_usher(
        [cb.port, cb2.port],
        "--max-fails", "1", "--health-path", "/health", "--health-interval", "1s", "--health-rise", "2",
    )
    r = one(u.port, "GET", "/garbage/1")  # round robin: the first request goes to cb
    assert_json_error(r, 502)
    assert cb.paths("/garbage/1") == ["/garbage/1"] and not cb2.paths("/garbage/")
    down = wait_for(u.proc, state_re(url(cb.port), "DOWN", r".+ in a row on live traffic", re.escape(url(cb2.port))), 5)
    assert down, "no DOWN line after the garbage answer"
    up_re = state_re(url(cb.port), "UP", r"GET /health answered 200, 2 of 2 checks passed")
    # Right after: everything goes to cb2 (until the UP line, if it came
    # already on a very slow machine).
    for i in range(6):
        assert one(u.port, "GET", "/after/%d" % i).status == 200
    if not up_re.search(u.proc.read_log()):
        assert not cb.paths("/after/"), "DOWN backend got traffic before any UP line"
    assert wait_for(u.proc, up_re, 1.0 * 1.1 * 3 + 3.0), "passive DOWN never undone by the active checks"
    for i in range(6):
        assert one(u.port, "GET", "/back/%d" % i).status == 200
    assert cb.paths("/back/"), "backend got no traffic after its UP line"
