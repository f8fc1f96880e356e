"""Backends from DNS (docs/DISCOVERY.md, issue 15), against a real dnsmasq
(harness/dnsmasq.py: hosts by SIGHUP, SRV records and TTLs by restart).

Backends are demo backends on loopback addresses 127.0.0.2, 127.0.0.3...
(all of 127.0.0.0/8 is loopback on Linux) on one port, so that A records can
name several of them; AAAA uses ::1. Every wait is bounded; the health
checks run every 200 ms so that new backends come in quickly."""

import re
import socket
import time

import httpx
import pytest

from harness import procs as _procs
from harness.dnsmasq import DnsServer
from harness.procs import free_port, yaml_pos

WAIT = 15.0  # seconds: generous, the machine is shared
FAST_HEALTH = ["--health-interval", "200ms", "--health-timeout", "500ms"]


def connectable(host, port, timeout=0.3):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect((host, port))
            return True
    except OSError:
        return False


def start_demo_at(procs, demo_bin, host, port, name):
    p = procs.spawn([demo_bin, "--port", port, "--name", name, "--host", host], "demo-" + name)
    deadline = time.monotonic() + _procs.READY_TIMEOUT
    while time.monotonic() < deadline:
        if not p.alive():
            pytest.fail("demo backend %s did not start:\n%s" % (name, p.read_log()), pytrace=False)
        if connectable(host, port):
            return p
        time.sleep(0.05)
    pytest.fail("demo backend %s on %s:%d not ready" % (name, host, port), pytrace=False)


def start_quick(procs, usher_bin, *args):
    """usher in quick mode on a free port with args; waits for its port."""
    for _ in range(_procs.START_ATTEMPTS):
        port = free_port()
        p = procs.spawn([usher_bin, "--listen", "127.0.0.1:%d" % port] + [str(a) for a in args], "usher")
        if p.wait_ready(port):
            return p, port
        p.stop(check_exit=False)
    pytest.fail("usher did not start:\n%s" % p.read_log(), pytrace=False)


def who(port, n=1, headers=None):
    """The X-Backend of n requests (None for a non-200 answer)."""
    out = []
    with httpx.Client(base_url="http://127.0.0.1:%d" % port, trust_env=False, timeout=10) as c:
        for _ in range(n):
            r = c.get("/", headers=headers or {})
            out.append(r.headers.get("x-backend") if r.status_code == 200 else None)
    return out


def wait_for(pred, what, timeout=WAIT, step=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(step)
    pytest.fail("not within %.0f s: %s (last: %r)" % (timeout, what, last), pytrace=False)


def serves(port, names, n=12):
    """Whether n requests went exactly to the backends named (all of them)."""
    got = set(who(port, n))
    return got == set(names)


@pytest.fixture
def dns(procs, tmp_path):
    made = []

    def make(**kw):
        d = DnsServer(procs, tmp_path / ("dns%d" % len(made)), **kw)
        made.append(d)
        return d

    return make


@pytest.fixture
def port_pair():
    return free_port()


# -- A records: the first set, changes, the TTL, failures ----------------------------------


def test_first_set_then_one_added_and_one_removed(procs, usher_bin, demo_bin, dns, port_pair):
    p = port_pair
    for i in (2, 3, 4):
        start_demo_at(procs, demo_bin, "127.0.0.%d" % i, p, "b%d" % i)
    d = dns(hosts=[("127.0.0.2", "web.test"), ("127.0.0.3", "web.test")], ttl=1)
    u, port = start_quick(procs, usher_bin, "--backend", "dns+http://web.test:%d" % p, "--resolver", d.resolver, *FAST_HEALTH)
    wait_for(lambda: serves(port, {"b2", "b3"}), "the first set (b2, b3) serves")
    log = u.read_log()
    assert re.search(
        r"pool 'default': web\.test now gives 2 backends: \+127\.0\.0\.2:%d \(weight 1\), \+127\.0\.0\.3:%d" % (p, p), log
    ), log
    d.set_hosts([("127.0.0.3", "web.test"), ("127.0.0.4", "web.test")])
    t0 = time.monotonic()
    wait_for(lambda: serves(port, {"b3", "b4"}), "b4 added, b2 removed")
    took = time.monotonic() - t0
    # TTL 1 s + 1 s, and the first health check of b4 (200 ms), on a loaded machine
    assert took < 6, "the new set took %.1f s" % took
    log = u.read_log()
    assert re.search(r"web\.test now gives 2 backends: -127\.0\.0\.2:%d, \+127\.0\.0\.4:%d \(weight 1\)" % (p, p), log), log


def test_a_kept_backend_keeps_its_counters(procs, usher_bin, demo_bin, dns, port_pair):
    """A backend that stays across answers is the same backend: the API's
    request count goes on, it is not a new one at 0."""
    p = port_pair
    for i in (2, 3):
        start_demo_at(procs, demo_bin, "127.0.0.%d" % i, p, "b%d" % i)
    admin = free_port()
    d = dns(hosts=[("127.0.0.2", "keep.test")], ttl=1)
    u, port = start_quick(procs, usher_bin, "--backend", "dns+http://keep.test:%d" % p, "--resolver", d.resolver,
                          "--admin", "127.0.0.1:%d" % admin, *FAST_HEALTH)
    wait_for(lambda: serves(port, {"b2"}), "b2 serves")
    who(port, 10)

    def b2_requests():
        r = httpx.get("http://127.0.0.1:%d/api/v1/pools/default" % admin, trust_env=False, timeout=10).json()
        return {b["name"]: b for b in r["backends"]}

    before = b2_requests()["127.0.0.2:%d" % p]["requests"]
    assert before >= 10
    d.set_hosts([("127.0.0.2", "keep.test"), ("127.0.0.3", "keep.test")])
    wait_for(lambda: serves(port, {"b2", "b3"}), "b3 added")
    bs = b2_requests()
    assert bs["127.0.0.2:%d" % p]["requests"] >= before
    assert bs["127.0.0.2:%d" % p]["source"] == "dns"
    assert bs["127.0.0.2:%d" % p]["file"] is None


def a_questions(d, name):
    """How many A questions for name dnsmasq logged so far."""
    return len(re.findall(r"query\[A\] %s from" % re.escape(name), d.proc.read_log()))


def test_the_ttl_is_followed(procs, usher_bin, demo_bin, dns, port_pair):
    p = port_pair
    start_demo_at(procs, demo_bin, "127.0.0.2", p, "b2")
    start_demo_at(procs, demo_bin, "127.0.0.3", p, "b3")
    d = dns(hosts=[("127.0.0.2", "ttl.test")], ttl=1)
    u, port = start_quick(procs, usher_bin, "--backend", "dns+http://ttl.test:%d" % p, "--resolver", d.resolver, *FAST_HEALTH)
    wait_for(lambda: serves(port, {"b2"}), "b2 serves")
    # TTL 1: asked about once a second
    n0 = a_questions(d, "ttl.test")
    time.sleep(4)
    fast = a_questions(d, "ttl.test") - n0
    assert fast >= 3, "with TTL 1 s, %d questions in 4 s" % fast
    d.set_ttl(4)  # a restart: the log starts again
    time.sleep(1.5)  # the answer with the new TTL is taken
    n0 = a_questions(d, "ttl.test")
    time.sleep(8)
    slow = a_questions(d, "ttl.test") - n0
    assert 1 <= slow <= 3, "with TTL 4 s, %d questions in 8 s" % slow
    # a change is in use within TTL + 1 s (and a health check, and slack for a loaded machine)
    d.set_hosts([("127.0.0.3", "ttl.test")])
    t0 = time.monotonic()
    wait_for(lambda: serves(port, {"b3"}, n=6), "the change is in use")
    took = time.monotonic() - t0
    assert took < 4 + 1 + 2, "took %.1f s with TTL 4" % took


def test_dns_server_gone_keeps_the_last_set_and_says_it_once(procs, usher_bin, demo_bin, dns, port_pair):
    p = port_pair
    start_demo_at(procs, demo_bin, "127.0.0.2", p, "b2")
    d = dns(hosts=[("127.0.0.2", "gone.test")], ttl=1)
    u, port = start_quick(procs, usher_bin, "--backend", "dns+http://gone.test:%d" % p, "--resolver", d.resolver,
                          "--dns-timeout", "300ms", *FAST_HEALTH)
    wait_for(lambda: serves(port, {"b2"}), "b2 serves")
    d.stop()
    time.sleep(5)  # several retries, each failing
    assert who(port, 5) == ["b2"] * 5
    log = u.read_log()
    said = re.findall(r"DNS A/AAAA gone\.test: .*keeping the last 1 backend for up to 300 s", log)
    assert len(said) == 1, log
    d.start()
    wait_for(lambda: "DNS A/AAAA gone.test answers again" in u.read_log(), "the recovery is said")
    assert who(port, 3) == ["b2"] * 3


def test_nxdomain_then_hold_time(procs, usher_bin, demo_bin, dns, port_pair):
    p = port_pair
    start_demo_at(procs, demo_bin, "127.0.0.2", p, "b2")
    d = dns(hosts=[("127.0.0.2", "nx.test")], ttl=1)
    u, port = start_quick(procs, usher_bin, "--backend", "dns+http://nx.test:%d" % p, "--resolver", d.resolver,
                          "--dns-hold", "3s", *FAST_HEALTH)
    wait_for(lambda: serves(port, {"b2"}), "b2 serves")
    d.set_hosts([("127.0.0.9", "other.test")])  # nx.test is gone: NXDOMAIN
    wait_for(lambda: "nx.test: NXDOMAIN: the name does not exist; keeping the last 1 backend" in u.read_log(),
             "NXDOMAIN is said")
    # within the hold time the set stays; past it, the pool has no backend (503)
    wait_for(lambda: who(port, 1) == [None], "the backend goes after the hold time")
    log = u.read_log()
    assert "has not answered for 3 s (the hold time): its 1 backend are removed" in log or \
        "has not answered for 3 s (the hold time)" in log, log
    assert len(re.findall(r"nx\.test: NXDOMAIN", log)) == 1, log
    with httpx.Client(trust_env=False, timeout=10) as c:
        r = c.get("http://127.0.0.1:%d/" % port)
    assert r.status_code == 503


def test_unknown_name_at_start_serves_503_until_it_exists(procs, usher_bin, demo_bin, dns, port_pair):
    p = port_pair
    start_demo_at(procs, demo_bin, "127.0.0.2", p, "b2")
    d = dns(hosts=[("127.0.0.9", "other.test")], ttl=1)
    u, port = start_quick(procs, usher_bin, "--backend", "dns+http://late.test:%d" % p, "--resolver", d.resolver, *FAST_HEALTH)
    wait_for(lambda: "late.test: NXDOMAIN" in u.read_log(), "NXDOMAIN at start")
    assert who(port, 2) == [None, None]
    d.set_hosts([("127.0.0.9", "other.test"), ("127.0.0.2", "late.test")])
    wait_for(lambda: serves(port, {"b2"}, n=4), "b2 serves once the name exists")


# -- AAAA on ::1 ------------------------------------------------------------------------------


def test_aaaa_on_ipv6_loopback(procs, usher_bin, demo_bin, dns, tmp_path):
    p = free_port()
    start_demo_at(procs, demo_bin, "::1", p, "six")
    d = dns(hosts=[("::1", "six.test")], ttl=1, v6=True)
    text = """
listeners:
  - bind: <L0>
    pool: six
pools:
  six:
    health: { interval: 200ms, timeout: 500ms }
    discover: { dns: six.test, type: aaaa, port: %d, resolvers: ["[::1]:%d"] }
""" % (p, d.port)
    u = _procs.start_usher_file(procs, usher_bin, tmp_path, text)
    port = u.ports[0]
    wait_for(lambda: serves(port, {"six"}, n=4), "the AAAA backend serves")
    assert re.search(r"six\.test now gives 1 backend: \+\[::1\]:%d" % p, u.proc.read_log())


# -- SRV: weights and priorities -----------------------------------------------------------------


def test_srv_weights_then_priority_failover(procs, usher_bin, demo_bin, dns, port_pair):
    p = port_pair
    backs = {}
    for i in (2, 3, 4):
        backs[i] = start_demo_at(procs, demo_bin, "127.0.0.%d" % i, p, "b%d" % i)
    d = dns(
        hosts=[("127.0.0.2", "a.test"), ("127.0.0.3", "b.test"), ("127.0.0.4", "c.test")],
        srv=[("_http._tcp.web.test", "a.test", p, 10, 30), ("_http._tcp.web.test", "b.test", p, 10, 10),
             ("_http._tcp.web.test", "c.test", p, 20, 5)],
        ttl=1,
    )
    admin = free_port()
    u, port = start_quick(procs, usher_bin, "--backend", "srv+http://_http._tcp.web.test", "--resolver", d.resolver,
                          "--balance", "weighted-round-robin", "--admin", "127.0.0.1:%d" % admin, *FAST_HEALTH)
    wait_for(lambda: serves(port, {"b2", "b3"}, n=16), "priority 10 serves")
    got = who(port, 80)
    assert got.count("b4") == 0, got  # priority 20 waits
    assert 55 <= got.count("b2") <= 65 and 15 <= got.count("b3") <= 25, got  # weights 30:10
    log = u.read_log()
    assert re.search(r"_http\._tcp\.web\.test now gives 3 backends: .*\+127\.0\.0\.2:%d \(weight 30, priority 10\)" % p, log), log
    api = httpx.get("http://127.0.0.1:%d/api/v1/pools/default" % admin, trust_env=False, timeout=10).json()
    by = {b["name"]: b for b in api["backends"]}
    assert by["127.0.0.4:%d" % p]["source"] == "dns"
    assert by["127.0.0.4:%d" % p]["priority"] == 20 and by["127.0.0.4:%d" % p]["standby"] is True
    assert by["127.0.0.2:%d" % p]["weight"] == 30 and by["127.0.0.2:%d" % p]["standby"] is False
    # priority 10 goes down: priority 20 takes the traffic
    backs[2].stop(check_exit=False)
    backs[3].stop(check_exit=False)
    wait_for(lambda: serves(port, {"b4"}, n=6), "priority 20 serves once priority 10 is down")
    # one of priority 10 comes back: it serves again, alone
    start_demo_at(procs, demo_bin, "127.0.0.3", p, "b3")
    wait_for(lambda: serves(port, {"b3"}, n=6), "priority 10 serves again")


# -- a pool mixing static and discovered backends; a reload keeps the set ---------------------------


def test_mixed_pool_and_reload(procs, usher_bin, demo_bin, dns, tmp_path, port_pair):
    p = port_pair
    start_demo_at(procs, demo_bin, "127.0.0.2", p, "b2")
    start_demo_at(procs, demo_bin, "127.0.0.3", p, "static")
    d = dns(hosts=[("127.0.0.2", "mix.test")], ttl=1)
    admin = free_port()
    text = """
admin: { bind: 127.0.0.1:%d }
listeners:
  - bind: <L0>
    pool: web
pools:
  web:
    health: { interval: 200ms, timeout: 500ms }
    backends:
      - url: http://127.0.0.3:%d
    discover:
      dns: mix.test
      type: a
      port: %d
      resolvers: ["%s"]
      min_ttl: 500ms
""" % (admin, p, p, d.resolver)
    u = _procs.start_usher_file(procs, usher_bin, tmp_path, text)
    port = u.ports[0]
    wait_for(lambda: serves(port, {"b2", "static"}), "static and discovered serve")
    api = httpx.get("http://127.0.0.1:%d/api/v1/pools/web" % admin, trust_env=False, timeout=10).json()
    assert sorted((b["name"], b["source"]) for b in api["backends"]) == [
        ("127.0.0.2:%d" % p, "dns"), ("127.0.0.3:%d" % p, "file")]
    # a reload does not drop the discovered backend, not even for a moment
    u.reload()
    assert set(who(port, 10)) == {"b2", "static"}
    # metrics
    m = httpx.get("http://127.0.0.1:%d/metrics" % admin, trust_env=False, timeout=10).text
    ok = re.search(r'^usher_discovery_queries_total\{pool="web",result="ok"\} (\d+)$', m, re.M)
    assert ok and int(ok.group(1)) >= 1, m
    assert re.search(r'^usher_discovery_queries_total\{pool="web",result="failed"\} 0$', m, re.M), m
    assert re.search(r'^usher_discovery_backends\{pool="web"\} 1$', m, re.M), m
    # a reload that drops discover: the discovered backend goes, the static one stays
    u.reload(text.replace("    discover:\n", "    xdiscover:\n").split("    xdiscover:")[0])
    wait_for(lambda: serves(port, {"static"}, n=6), "only the static backend after discover went")
    assert "pool 'web': no longer discovers mix.test" in u.proc.read_log()


# -- maglev: ushers fed by the same DNS agree -----------------------------------------------------


def test_three_maglev_ushers_agree(procs, usher_bin, demo_bin, dns, port_pair):
    p = port_pair
    for i in (2, 3, 4, 5):
        start_demo_at(procs, demo_bin, "127.0.0.%d" % i, p, "b%d" % i)
    d = dns(hosts=[("127.0.0.%d" % i, "hash.test") for i in (2, 3, 4)], ttl=1)
    ushers = [start_quick(procs, usher_bin, "--backend", "dns+http://hash.test:%d" % p, "--resolver", d.resolver,
                          "--balance", "maglev", "--hash-key", "header:X-Key", *FAST_HEALTH)[1] for _ in range(3)]
    keys = ["k%d" % i for i in range(100)]

    def placement(port):
        return [who(port, 1, {"X-Key": k})[0] for k in keys]

    for port in ushers:
        wait_for(lambda port=port: serves(port, {"b2", "b3", "b4"}, n=30), "all three backends up")
    first = [placement(port) for port in ushers]
    assert first[0] == first[1] == first[2]
    assert set(first[0]) == {"b2", "b3", "b4"}
    d.set_hosts([("127.0.0.%d" % i, "hash.test") for i in (2, 4, 5)])
    for port in ushers:
        wait_for(lambda port=port: serves(port, {"b2", "b4", "b5"}, n=30), "the new set in use")
    after = [placement(port) for port in ushers]
    assert after[0] == after[1] == after[2]
    # consistent hashing: most keys of the backends that stayed stay (about 3 in 4 with
    # maglev here, which rebuilds its table: bench/dns_maglev.py; the ports, hence the
    # URLs hashed, differ from run to run)
    stayed = sum(1 for a, b in zip(first[0], after[0]) if a == b and a in ("b2", "b4"))
    assert stayed >= sum(1 for a in first[0] if a in ("b2", "b4")) * 0.5


# -- bad settings: file:line:column, flags --------------------------------------------------------


BAD_BLOCKS = [
    # at: where the error must point (the value at fault, or an unknown key)
    ("discover: { dns: web.test, type: a }", "a }", "'port' is required for type a"),
    ("discover: { dns: _http._tcp.web.test, type: srv, port: 80 }", "80",
     "'port' is for type a or aaaa: an SRV record gives the port"),
    ("discover: { dns: web.test, type: srv }", "web.test", "an SRV name is _service._proto.name"),
    ("discover: { dns: 'web..test', port: 80 }", "'web..test'", "is not a DNS name"),
    ("discover: { dns: web.test, port: 80, type: mx }", "mx", "expected a, aaaa, srv or a+aaaa"),
    ("discover: { dns: web.test, port: 80, resolvers: [nowhere] }", "nowhere", "resolvers: 'nowhere': host must be a numeric"),
    ("discover: { dns: web.test, port: 80, min_ttl: 10s, max_ttl: 2s }", "2s }", "max_ttl (2000 ms) is below min_ttl"),
    ("discover: { dns: web.test, port: 80, ttl: 2s }", "ttl", "unknown key 'ttl'"),
    ("discover: { port: 80 }", "discover: { port: 80 }", "'dns' is required"),
    ("discover: { dns: web.test, port: 80, scheme: tls }", "tls }", "discover.scheme: expected http or https"),
]


@pytest.mark.parametrize("block,at,words", BAD_BLOCKS, ids=[b[2][:30] for b in BAD_BLOCKS])
def test_bad_discover_block_names_file_line_and_what(usher_bin, tmp_path, block, at, words):
    text = "listeners:\n  - bind: 127.0.0.1:1\n    pool: web\npools:\n  web:\n    %s\n" % block
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    import subprocess

    r = subprocess.run([usher_bin, "-t", "-c", str(path)], capture_output=True, timeout=20)
    err = r.stderr.decode()
    assert r.returncode == 1, err
    line, col = yaml_pos(text, block, at if at != block else None)
    want = "%s:%d:" % (path, line)
    assert want in err and words in err, err
    if at != block:
        assert "%s:%d:%d:" % (path, line, col) in err, err


def test_pool_with_neither_backends_nor_discover(usher_bin, tmp_path):
    import subprocess

    text = "listeners:\n  - bind: 127.0.0.1:1\n    pool: web\npools:\n  web:\n    balance: maglev\n"
    path = tmp_path / "none.yaml"
    path.write_text(text)
    r = subprocess.run([usher_bin, "-t", "-c", str(path)], capture_output=True, timeout=20)
    assert r.returncode == 1
    assert "%s:6:5: pool 'web': 'backends' is required (a list of URLs), unless the pool has 'discover'" % path in r.stderr.decode()


def test_good_discover_block_passes_check(usher_bin, tmp_path):
    import subprocess

    text = """listeners:
  - bind: 127.0.0.1:1
    pool: web
pools:
  web:
    discover: { dns: _web._tcp.service.consul, type: srv, resolvers: ["127.0.0.1:8600", "[::1]:8600"],
                min_ttl: 2s, max_ttl: 1m, hold: 30s, timeout: 1s }
"""
    path = tmp_path / "good.yaml"
    path.write_text(text)
    r = subprocess.run([usher_bin, "-t", "-c", str(path)], capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().strip() == "configuration ok"


BAD_FLAGS = [
    (["--backend", "dns+http://web.test"], "dns+http://NAME:PORT needs the backends' port"),
    (["--backend", "srv+http://_http._tcp.web.test:80"], "srv+http:// takes no port"),
    (["--backend", "srv+http://web.test"], "an SRV name is _service._proto.name"),
    (["--backend", "dns+http://web.test:80,weight=3"], "takes no ,weight="),
    (["--backend", "dns+http://we b.test:80"], "is not a DNS name"),
    (["--backend", "dns+http://web.test:80", "--resolver", "10.0.0.1:99999"], "--resolver: '10.0.0.1:99999'"),
    (["--backend", "http://127.0.0.1:1", "--resolver", "127.0.0.1:53"], "--resolver is given but no --backend dns+http://"),
    (["--backend", "http://127.0.0.1:1", "--dns-min-ttl", "2s"], "--dns-min-ttl is given but no --backend dns+http://"),
    (["--backend", "dns+http://web.test:80", "--dns-min-ttl", "5s", "--dns-max-ttl", "1s"], "--dns-max-ttl: max_ttl"),
    (["--backend", "dns+http://web.test:80", "--dns-max-ttl", "soon"], "--dns-max-ttl: expected a duration"),
]


@pytest.mark.parametrize("args,words", BAD_FLAGS, ids=[w[:30] for _, w in BAD_FLAGS])
def test_bad_flags_name_the_flag(usher_bin, args, words):
    import subprocess

    r = subprocess.run([usher_bin, "-t"] + args, capture_output=True, timeout=20)
    assert r.returncode == 2, r.stderr.decode()
    assert words in r.stderr.decode(), r.stderr.decode()
