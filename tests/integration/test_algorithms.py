"""Balancing algorithms against real backends (see docs/ALGORITHMS.md).

- A slow backend among fast ones: least-conn, p2c and ewma send it clearly
  less than round robin does (its round-robin share is a third). The
  measured shares are printed.
- weighted-round-robin gives nginx's smooth sequence.
- maglev: two usher processes map every key to the same backend.
- sticky: the cookie usher sets keeps a client on its backend.
- The flags of the algorithms are checked on the command line.
"""

import json
import re
import threading
import time

import pytest

from harness.load import run_parallel
from http_raw import get_once

# -- a backend that is slow for every request -------------------------------------

SLOW_MS = 100


def slow_response(req):
    """respond() of a RawCaptureBackend: every request answered after
    SLOW_MS milliseconds (as the demo backend's /slow?ms=100 would), with
    X-Backend: slow, on a keep-alive connection (one thread per connection)."""
    time.sleep(SLOW_MS / 1000.0)
    body = json.dumps({"message": "Hello from slow"}).encode()
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nX-Backend: slow\r\n\r\n%s"
        % (len(body), body)
    )


CLIENTS = 8
PER_CLIENT = 40


def run_clients(u, clients=CLIENTS, per_client=PER_CLIENT):
    """`clients` keep-alive clients in parallel, `per_client` requests each.
    Returns {backend name: requests}."""
    counts = {}
    lock = threading.Lock()

    def client(k):
        with u.client() as c:
            for _ in range(per_client):
                r = c.get("/")
                assert r.status_code == 200, r.text
                name = r.headers["x-backend"]
                with lock:
                    counts[name] = counts.get(name, 0) + 1

    errors, running = run_parallel(client, clients)
    assert not running, "clients still running after 60 s"
    assert not errors, errors
    assert sum(counts.values()) == clients * per_client
    return counts


def test_slow_backend_gets_less_with_load_aware_algorithms(backends, raw_backend, start_usher, capsys):
    slow_backend = raw_backend(respond=slow_response, reject_invalid=False)
    total = CLIENTS * PER_CLIENT
    shares = {}
    for algo in ("round-robin", "least-conn", "p2c", "ewma"):
        u = start_usher([backends[0], slow_backend.port, backends[1]], "--balance", algo, "--threads", "2")
        counts = run_clients(u)
        shares[algo] = counts.get("slow", 0) / total
        with capsys.disabled():
            print(
                "\n  %-12s slow backend (%d ms) got %3d of %d requests (%4.1f%%); %s"
                % (algo, SLOW_MS, counts.get("slow", 0), total, 100 * shares[algo], counts)
            )
        u.proc.stop()
    # round robin is exact: a third
    assert abs(shares["round-robin"] - 1 / 3) < 0.01, shares
    for algo in ("least-conn", "p2c", "ewma"):
        assert shares[algo] < shares["round-robin"] / 2, (algo, shares)


# -- weighted round robin -----------------------------------------------------------


def test_weighted_round_robin_is_smooth(backends, start_backend, start_usher):
    b3 = start_backend("backend3")
    u = start_usher(
        [],
        "--backend", backends[0].url + ",weight=5",
        "--backend", backends[1].url,
        "--backend", b3.url,
        "--balance", "weighted-round-robin",
        "--threads", "2",
    )
    letter = {"backend1": "a", "backend2": "b", "backend3": "c"}
    seq = "".join(letter[get_once(u.port, "GET", "/").header("X-Backend")] for _ in range(21))
    assert seq == "aabacaa" * 3


# -- maglev ---------------------------------------------------------------------------

KEYS = 60


def request_for(key_kind, key):
    """(target, headers) carrying `key` as the given kind of hash key."""
    if key_kind == "header:X-User":
        return "/echo", [("X-User", key)]
    if key_kind == "cookie:sid":
        return "/echo", [("Cookie", "theme=dark; sid=%s" % key)]
    if key_kind == "query:user":
        return "/echo?a=1&user=%s" % key, []
    assert key_kind == "uri"
    return "/echo/%s" % key, []


def backend_for(u, key_kind, key):
    target, headers = request_for(key_kind, key)
    r = get_once(u.port, "GET", target, headers)
    assert r.status == 200, r
    name = r.header("X-Backend")
    assert name
    return name


@pytest.mark.parametrize("key_kind", ["header:X-User", "cookie:sid", "query:user", "uri"])
def test_maglev_two_ushers_agree(backends, start_backend, start_usher, key_kind, capsys):
    pool = backends + [start_backend("backend3")]
    a = start_usher(pool, "--balance", "maglev", "--hash-key", key_kind, "--threads", "2")
    b = start_usher(pool, "--balance", "maglev", "--hash-key", key_kind, "--threads", "2")
    keys = ["user-%d" % i for i in range(KEYS)]
    via_a = [backend_for(a, key_kind, k) for k in keys]
    via_b = [backend_for(b, key_kind, k) for k in keys]
    assert via_a == via_b
    # the same key again (other connections, other worker threads): same backend
    assert [backend_for(a, key_kind, k) for k in keys[:20]] == via_a[:20]
    spread = {n: via_a.count(n) for n in sorted(set(via_a))}
    with capsys.disabled():
        print("\n  maglev %-14s %d keys, both ushers agree on all; spread %s" % (key_kind, KEYS, spread))
    assert len(spread) == 3, spread  # keys do spread


def test_maglev_without_the_key_goes_round_robin(backends, start_usher):
    u = start_usher(backends, "--balance", "maglev", "--hash-key", "header:X-User", "--threads", "2")
    seen = [get_once(u.port, "GET", "/").header("X-Backend") for _ in range(6)]
    assert seen == ["backend1", "backend2"] * 3


def test_maglev_client_ip_key_keeps_one_client_on_one_backend(backends, start_backend, start_usher):
    pool = backends + [start_backend("backend3")]
    u = start_usher(pool, "--balance", "maglev", "--threads", "2")  # client_ip by default
    seen = {get_once(u.port, "GET", "/").header("X-Backend") for _ in range(10)}
    assert len(seen) == 1, seen


def test_maglev_key_moves_only_when_its_backend_is_gone(start_backend, start_usher):
    """A backend that stops: its keys move (to the other two), the others'
    keys stay where they were."""
    pool = [start_backend("backend%d" % i) for i in (1, 2, 3)]
    u = start_usher(
        pool, "--balance", "maglev", "--hash-key", "header:X-User", "--threads", "1",
        "--health-interval", "100ms", "--health-fall", "1",
    )
    keys = ["user-%d" % i for i in range(KEYS)]
    before = [backend_for(u, "header:X-User", k) for k in keys]
    pool[1].proc.stop()
    # wait (bounded) until usher routes around it
    for _ in range(100):
        if "backend2" not in [backend_for(u, "header:X-User", k) for k in keys[:10]]:
            break
        time.sleep(0.05)
    after = [backend_for(u, "header:X-User", k) for k in keys]
    assert "backend2" in before and "backend2" not in after
    for k, x, y in zip(keys, before, after):
        if x != "backend2":
            assert x == y, "%s moved from %s to %s" % (k, x, y)


# -- sticky ----------------------------------------------------------------------------

COOKIE_RE = re.compile(r"^usher_backend=([0-9a-f]{16}); Path=/; HttpOnly$")

def test_sticky_cookie_keeps_a_client_on_its_backend(backends, start_backend, start_usher):
    pool = backends + [start_backend("backend3")]
    u = start_usher(pool, "--balance", "sticky", "--threads", "2")
    # without a cookie: round robin, and each answer says where it came from
    values = {}
    for want in ("backend1", "backend2", "backend3"):
        r = get_once(u.port, "GET", "/")
        assert r.header("X-Backend") == want
        m = COOKIE_RE.match(r.header("Set-Cookie") or "")
        assert m, r.headers
        values[want] = m.group(1)
        assert "127.0.0.1" not in m.group(1)
    assert len(set(values.values())) == 3
    # with a cookie: always its backend
    for name, v in values.items():
        for _ in range(5):
            r = get_once(u.port, "GET", "/", [("Cookie", "a=1; usher_backend=%s" % v)])
            assert r.header("X-Backend") == name
            assert COOKIE_RE.match(r.header("Set-Cookie")).group(1) == v
    # a made-up value is ignored
    r = get_once(u.port, "GET", "/", [("Cookie", "usher_backend=0000000000000000")])
    assert r.status == 200


def test_sticky_client_moves_when_its_backend_is_down(start_backend, start_usher):
    pool = [start_backend("backend%d" % i) for i in (1, 2)]
    u = start_usher(pool, "--balance", "sticky", "--threads", "1", "--health-interval", "100ms", "--health-fall", "1")
    r = get_once(u.port, "GET", "/")
    assert r.header("X-Backend") == "backend1"
    cookie = [("Cookie", r.header("Set-Cookie").split(";")[0])]
    pool[0].proc.stop()
    names = []
    for _ in range(100):  # bounded: until usher has noticed
        r = get_once(u.port, "GET", "/", cookie)
        if r.status == 200:
            names.append(r.header("X-Backend"))
            if names[-1] == "backend2":
                break
        time.sleep(0.05)
    assert names and names[-1] == "backend2", names
    # and the answer re-pins the client to its new backend
    new = r.header("Set-Cookie").split(";")[0]
    assert new != cookie[0][1]
    r = get_once(u.port, "GET", "/", [("Cookie", new)])
    assert r.header("X-Backend") == "backend2"


# -- command line -----------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--balance", "maglev", "--hash-key", "ip"], "expected client_ip, uri, header:NAME"),
        (["--balance", "maglev", "--hash-key", "header:"], "needs a name"),
        (["--balance", "maglev", "--hash-balance-factor", "50"], "percentage from 100 to 10000"),
        (["--balance", "maglev", "--hash-balance-factor", "x"], "percentage from 100 to 10000"),
        (["--hash-key", "uri"], "--hash-key is used by --balance maglev only"),
        (["--balance", "sticky", "--sticky-cookie", "a;b"], "expected a cookie name"),
        (["--balance", "least-conn", "--sticky-secret", "s"], "--sticky-secret is used by --balance sticky only"),
        (["--balance", "nope"], "round-robin, weighted-round-robin, least-conn, random, p2c, ewma, maglev, sticky"),
    ],
)
def test_bad_algorithm_flags_are_refused(run_usher, args, message):
    p = run_usher("-t", "--backend", "http://127.0.0.1:9", *args)
    assert p.returncode == 2
    assert message in p.stderr.decode(), p.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--balance", "maglev", "--hash-key", "cookie:sid", "--hash-balance-factor", "150"],
        ["--balance", "maglev", "--hash-key", "query:user", "--hash-balance-factor", "0"],
        ["--balance", "sticky", "--sticky-cookie", "srv", "--sticky-secret", "long secret with spaces"],
        ["--balance", "weighted-round-robin"],
        ["--balance", "random"],
    ],
)
def test_algorithm_flags_are_accepted(run_usher, args):
    p = run_usher("-t", "--backend", "http://127.0.0.1:9", *args)
    assert p.returncode == 0, p.stderr
