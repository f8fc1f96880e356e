"""GET /metrics, parsed with the Prometheus client library's own text parser
(Debian's python3-prometheus-client), checked against the traffic sent:

- per backend and code class: N requests to each backend, some 404s from a
  backend; the histograms' _count equal the responses and their _sum is
  plausible (> 0 and below the wall time of the traffic);
- per listener: the responses the clients got, usher's own 400 and 503
  included; connections accepted;
- reload counters after a good and a bad SIGHUP.
"""

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.procs import HOST, free_port
from http_raw import RawHTTPConnection


def scrape(admin_port):
    # the admin listener opens after the traffic listeners (slow under valgrind)
    end = time.monotonic() + 30
    while True:
        try:
            httpx.get("http://%s:%d/healthz" % (HOST, admin_port), timeout=5, trust_env=False)
            break
        except httpx.TransportError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)
    r = httpx.get("http://%s:%d/metrics" % (HOST, admin_port), timeout=10, trust_env=False)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def get(port, path):
    with RawHTTPConnection(HOST, port, timeout=10) as c:
        return c.roundtrip("GET", path, [("Connection", "close")]).status


def test_counts_per_backend_code_and_listener(start_backend, start_usher):
    b1, b2 = start_backend("m1"), start_backend("m2")
    dead = free_port()
    admin = free_port()
    u = start_usher([b1, b2], "--admin", "%s:%d" % (HOST, admin), "--balance", "round-robin",
                    "--health-interval", "off", "--max-fails", "0", "--retries", "0",
                    "--threads", "2")
    listener = "%s:%d" % (HOST, u.port)
    # the harness's readiness probe connected already: counted from here
    conns0 = value(scrape(admin), "usher_listener_connections_total", listener=listener)
    start = time.monotonic()
    n = 20
    statuses = [get(u.port, "/") for _ in range(2 * n)]
    assert statuses == [200] * (2 * n)
    # 404s: the demo backends answer an unknown path with 404
    assert [get(u.port, "/nope") for _ in range(4)] == [404] * 4
    # usher's own 400: a malformed request head
    with RawHTTPConnection(HOST, u.port, timeout=10) as c:
        c.sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        assert b" 400 " in c.sock.recv(4096)
    wall = time.monotonic() - start
    s = scrape(admin)
    for b in (b1, b2):
        name = "%s:%d" % (HOST, b.port)
        lab = dict(pool="default", backend=name)
        assert value(s, "usher_backend_requests_total", **lab) == n + 2
        assert value(s, "usher_backend_responses_total", code="2xx", **lab) == n
        assert value(s, "usher_backend_responses_total", code="4xx", **lab) == 2
        assert value(s, "usher_backend_responses_total", code="5xx", **lab) == 0
        for h in ("usher_backend_response_time_seconds", "usher_backend_total_time_seconds"):
            assert value(s, h + "_count", **lab) == n + 2
            assert value(s, h + "_bucket", le="+Inf", **lab) == n + 2
            assert 0 < value(s, h + "_sum", **lab) < wall
            # cumulative buckets never go down
            les = "0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 30".split()
            counts = [value(s, h + "_bucket", le=le, **lab) for le in les]
            assert counts == sorted(counts)
        assert value(s, "usher_backend_up", **lab) == 1
        assert value(s, "usher_backend_state", state="up", **lab) == 1
        assert value(s, "usher_backend_state", state="drain", **lab) == 0
        assert value(s, "usher_backend_current_requests", **lab) == 0
        # keep-alive to the backend: one pooled connection per worker that used it
        assert 1 <= value(s, "usher_backend_idle_connections", **lab) <= 2
        assert value(s, "usher_backend_bytes_out_total", **lab) > 0
        assert value(s, "usher_backend_bytes_in_total", **lab) > 0
    assert value(s, "usher_listener_responses_total", listener=listener, code="2xx") == 2 * n
    assert value(s, "usher_listener_responses_total", listener=listener, code="4xx") == 5
    assert value(s, "usher_listener_connections_total", listener=listener) == conns0 + 2 * n + 5
    assert value(s, "usher_listener_connections_current", listener=listener) <= 1
    assert value(s, "usher_build_info", version=httpx.get(
        "http://%s:%d/api/v1/status" % (HOST, admin), trust_env=False).json()["version"]) == 1
    assert value(s, "process_resident_memory_bytes") > 1e6
    assert value(s, "process_open_fds") >= 5
    assert 0 < value(s, "process_start_time_seconds") <= time.time()


def test_usher_own_503_and_connect_errors(start_usher):
    dead = free_port()
    admin = free_port()
    u = start_usher([dead], "--admin", "%s:%d" % (HOST, admin), "--health-interval", "off",
                    "--max-fails", "0", "--retries", "0")
    assert [get(u.port, "/") for _ in range(3)] == [503, 503, 503]
    s = scrape(admin)
    listener = "%s:%d" % (HOST, u.port)
    lab = dict(pool="default", backend="%s:%d" % (HOST, dead))
    assert value(s, "usher_backend_connect_errors_total", **lab) == 3
    assert value(s, "usher_backend_responses_total", code="5xx", **lab) == 0
    assert value(s, "usher_listener_responses_total", listener=listener, code="5xx") == 3
    # drained: no backend left, usher answers 503 itself
    r = httpx.patch("http://%s:%d/api/v1/pools/default/backends/%s:%d" % (HOST, admin, HOST, dead),
                    json={"state": "drain"}, trust_env=False)
    assert r.status_code == 200
    assert get(u.port, "/") == 503
    s = scrape(admin)
    assert value(s, "usher_listener_responses_total", listener=listener, code="5xx") == 4
    assert value(s, "usher_backend_state", state="drain", **lab) == 1


def test_reload_counters(start_backend, start_usher_file):
    b = start_backend("r1")
    admin = free_port()
    text = """
admin: { bind: "%s:%d" }
listeners:
  - { bind: "<L0>", pool: web }
pools:
  web:
    health: { type: off }
    backends: [ "http://%s:%d" ]
""" % (HOST, admin, HOST, b.port)
    u = start_usher_file(text)
    s = scrape(admin)
    assert value(s, "usher_config_reloads_total", result="ok") == 0
    t0 = value(s, "usher_config_last_reload_success_timestamp_seconds")
    u.reload(text)
    s = scrape(admin)
    assert value(s, "usher_config_reloads_total", result="ok") == 1
    assert value(s, "usher_config_reloads_total", result="failed") == 0
    t1 = value(s, "usher_config_last_reload_success_timestamp_seconds")
    assert t1 >= t0
    u.write("pools: [ broken")
    outcome, _ = u.hup()
    assert outcome == "failed"
    s = scrape(admin)
    assert value(s, "usher_config_reloads_total", result="ok") == 1
    assert value(s, "usher_config_reloads_total", result="failed") == 1
    assert value(s, "usher_config_last_reload_success_timestamp_seconds") == t1


def h2_statuses(port, paths):
    """Every path as one stream of one HTTP/2 connection (prior knowledge),
    one after the other; the statuses in order."""
    from harness.h2conn import H2Conn

    out = []
    with H2Conn(port) as c:
        for p in paths:
            sid = c.request("GET", p)
            c.wait_ended(sid)
            out.append(c.streams[sid].status)
    return out


def test_http2_streams_are_counted_like_http1_requests(start_backend, start_usher):
    b1, b2 = start_backend("m1"), start_backend("m2")
    admin = free_port()
    u = start_usher([b1, b2], "--admin", "%s:%d" % (HOST, admin), "--balance", "round-robin",
                    "--health-interval", "off", "--max-fails", "0", "--retries", "0")
    listener = "%s:%d" % (HOST, u.port)
    s0 = scrape(admin)
    conns0 = value(s0, "usher_listener_connections_total", listener=listener)
    assert h2_statuses(u.port, ["/"] * 8 + ["/nope"] * 2) == [200] * 8 + [404] * 2
    s = scrape(admin)
    assert value(s, "usher_listener_responses_total", listener=listener, code="2xx") == 8
    assert value(s, "usher_listener_responses_total", listener=listener, code="4xx") == 2
    assert value(s, "usher_listener_connections_total", listener=listener) == conns0 + 1
    total = 0
    for b in (b1, b2):
        lab = dict(pool="default", backend="%s:%d" % (HOST, b.port))
        total += value(s, "usher_backend_requests_total", **lab)
        assert value(s, "usher_backend_total_time_seconds_count", **lab) == value(
            s, "usher_backend_requests_total", **lab)
    assert total == 10


def test_http2_usher_own_503_is_counted(start_usher):
    admin = free_port()
    u = start_usher([free_port()], "--admin", "%s:%d" % (HOST, admin), "--health-interval", "off",
                    "--max-fails", "0", "--retries", "0")
    assert h2_statuses(u.port, ["/a", "/b"]) == [503, 503]
    s = scrape(admin)
    assert value(s, "usher_listener_responses_total", listener="%s:%d" % (HOST, u.port), code="5xx") == 2


def test_many_backends_each_with_every_family(start_backend, start_usher_file):
    """300 backends (more than one chunk of 64 counter slots, more than the 256
    after which the writer yields the CPU, and an exposition of more than two
    512 KB writes), one named with a quote and a backslash: every backend has
    every family, in valid text format (the client library's parser, and
    promtool when Debian's prometheus is installed), the labels escaped, the
    counts those of the traffic sent, the body whole (Content-Length)."""
    import shutil
    import subprocess

    b = start_backend("many1")
    admin = free_port()
    many = "\n".join("      - http://127.0.0.%d:%d" % (2 + i % 3, 1 + i) for i in range(299))
    text = """
admin: { bind: "%s:%d" }
listeners:
  - { bind: "<L0>", pool: web }
pools:
  web:
    health: { type: off }
    backends: [ { url: "http://%s:%d", name: 'odd "name" \\ here' } ]
  many:
    health: { type: off }
    backends:
%s
""" % (HOST, admin, HOST, b.port, many)
    u = start_usher_file(text)
    for i in range(7):
        assert get(u.ports[0], "/status/404" if i < 2 else "/") == (404 if i < 2 else 200)
    s = scrape(admin)
    r = httpx.get("http://%s:%d/metrics" % (HOST, admin), timeout=10, trust_env=False)
    odd = 'odd "name" \\ here'
    assert 'backend="odd \\"name\\" \\\\ here"' in r.text
    assert len(r.content) == int(r.headers["content-length"]) > 2 * 512 * 1024
    assert r.text.rstrip("\n").split("\n")[-1].startswith("process_start_time_seconds ")
    names = [("web", odd)] + [("many", "127.0.0.%d:%d" % (2 + i % 3, 1 + i)) for i in range(299)]
    for pool, name in names:
        lab = {"pool": pool, "backend": name}
        web = pool == "web"
        assert value(s, "usher_backend_requests_total", **lab) == (7 if web else 0)
        for code, n in (("1xx", 0), ("2xx", 5), ("3xx", 0), ("4xx", 2), ("5xx", 0)):
            assert value(s, "usher_backend_responses_total", code=code, **lab) == (n if web else 0)
        for h in ("usher_backend_response_time_seconds", "usher_backend_total_time_seconds"):
            buckets = [v for (n, ls), v in s.items() if n == h + "_bucket" and dict(ls).get("backend") == name
                       and dict(ls).get("pool") == pool]
            assert len(buckets) == 16, (h, name)
            assert value(s, h + "_bucket", le="+Inf", **lab) == value(s, h + "_count", **lab) == (7 if web else 0)
            total = value(s, h + "_sum", **lab)
            assert (0 < total < 60) if web else total == 0
        states = [value(s, "usher_backend_state", state=st, **lab) for st in ("up", "down", "drain", "maint")]
        assert states == [1, 0, 0, 0], (name, states)
        for m in ("usher_backend_current_requests", "usher_backend_connect_errors_total",
                  "usher_backend_retries_total", "usher_backend_check_failures_total",
                  "usher_backend_transitions_total", "usher_backend_idle_connections"):
            assert value(s, m, **lab) >= 0
        assert value(s, "usher_backend_bytes_out_total", **lab) > 0 if web else True
    # a sum of integer microseconds is written as decimal seconds, no exponent
    for line in r.text.splitlines():
        if "_sum{" in line:
            v = line.rsplit(" ", 1)[1]
            assert "e" not in v and (v == "0" or "." in v or v.isdigit()), line
    promtool = shutil.which("promtool")
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=r.content, capture_output=True, timeout=60)
        # a format error and any lint finding (names, units, HELP) make it exit 1
        assert p.returncode == 0, p.stdout + p.stderr
