"""Round robin: requests alternate backend1, backend2, backend1, ... exactly,
whether each request comes on a new TCP connection (spread over worker
threads) or all come over one keep-alive connection."""

import json

from harness.load import run_parallel
from http_raw import get_once

N = 20


def who(resp):
    """Backend name from X-Backend, cross-checked against the body."""
    assert resp.status == 200, resp
    name = resp.header("X-Backend")
    assert name, "no X-Backend header in %r" % resp.headers
    assert json.loads(resp.body) == {"message": "Hello from " + name}
    return name


def assert_round_robin(seen):
    assert set(seen) == {"backend1", "backend2"}, seen
    for i, name in enumerate(seen[1:], 1):
        assert name != seen[i - 1], "request %d went to %s again: %s" % (i, name, seen)
    assert seen[0] == "backend1", "round robin should start with the first --backend: %s" % seen


def test_round_robin_new_connection_per_request(backends, start_usher):
    u = start_usher(backends, "--balance", "round-robin", "--threads", "2")
    seen = [who(get_once(u.port, "GET", "/")) for _ in range(N)]
    assert_round_robin(seen)


def test_round_robin_one_keepalive_connection(usher):
    with usher.raw() as c:
        seen = []
        for _ in range(N):
            seen.append(who(c.roundtrip("GET", "/")))
        # The connection is still open and usable after N requests.
        seen.append(who(c.roundtrip("GET", "/")))
    assert_round_robin(seen)


def test_round_robin_httpx_keepalive(usher):
    with usher.client() as c:
        seen = []
        for _ in range(N):
            r = c.get("/")
            assert r.status_code == 200
            assert r.json() == {"message": "Hello from " + r.headers["x-backend"]}
            seen.append(r.headers["x-backend"])
    assert_round_robin(seen)


def test_round_robin_counts_on_backends(backends, usher):
    """Each backend's own counter sees exactly half of the requests."""
    for b in backends:
        b.reset_stats()
    for _ in range(N):
        r = get_once(usher.port, "GET", "/echo/rr")
        assert r.status == 200
    counts = [b.stats()["requests"] for b in backends]
    assert counts == [N // 2, N // 2]


def test_round_robin_three_backends(backends, start_backend, start_usher):
    b3 = start_backend("backend3")
    u = start_usher(backends + [b3], "--balance", "round-robin", "--threads", "2")
    names = ["backend1", "backend2", "backend3"]
    with u.client() as c:
        seen = [c.get("/").headers["x-backend"] for _ in range(3 * 7)]
    assert seen == names * 7


def test_round_robin_under_concurrency(backends, start_usher):
    """8 clients in parallel, 10 requests each: the backends share the load
    evenly (round robin is exact in total, whatever the interleaving)."""
    u = start_usher(backends, "--balance", "round-robin", "--threads", "2")
    for b in backends:
        b.reset_stats()

    def client(k):
        with u.client() as c:
            for i in range(10):
                r = c.get("/echo/c%d/%d" % (k, i))
                assert r.status_code == 200
                assert r.json()["path"] == "/echo/c%d/%d" % (k, i)

    errors, running = run_parallel(client, 8)
    assert not running, "clients still running after 60 s"
    assert not errors, errors
    assert [b.stats()["requests"] for b in backends] == [40, 40]
