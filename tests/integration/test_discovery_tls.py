"""TLS to backends from DNS (docs/DISCOVERY.md, "TLS to discovered
backends"): discover.scheme: https in a file, dns+https:// and srv+https://
in quick mode, against a real dnsmasq (harness/dnsmasq.py) and Python ssl
backends (harness/tls_backend.py) that record every handshake (its SNI) and
every request.

The backends listen on 127.0.0.1, and their certificates name DNS names
only, never that address: a request passes only when usher checked the name
DNS gave (the name asked, or the SRV target), or the pool's tls.server_name.
Every wait is bounded; every process is stopped by PID (the procs fixture)."""

import re
import subprocess

import httpx
import pytest
from harness import procs as _procs
from harness.certs import Authority
from harness.procs import free_port, yaml_pos
from harness.tls_backend import TLSBackend
from test_discovery import WAIT, dns, start_quick, wait_for  # noqa: F401 (dns: the fixture)

FAST_HEALTH = ("--health-interval", "200ms", "--health-timeout", "500ms")


class DiscoveryCerts:
    pass


@pytest.fixture(scope="session")
def dcerts(tmp_path_factory):
    """A CA and certificates for DNS names only (no IP address):
    web (web.test), other (other.test), nodes (node-1.svc.test and
    node-2.svc.test), named (backend.test)."""
    d = tmp_path_factory.mktemp("discovery-certs")
    ca = Authority(d, "usher discovery test CA")
    c = DiscoveryCerts()
    c.ca_pem = ca.cert
    c.web = ca.issue("web", ["web.test"], days=2, directory=d)
    c.other = ca.issue("other", ["other.test"], days=2, directory=d)
    c.nodes = ca.issue("nodes", ["node-1.svc.test", "node-2.svc.test"], days=2, directory=d)
    c.named = ca.issue("named", ["backend.test"], days=2, directory=d)
    return c


@pytest.fixture
def tls_backend(py_backend):
    return lambda cert, **kw: py_backend(TLSBackend, cert=cert, **kw)


def get(port, path="/"):
    with httpx.Client(base_url="http://127.0.0.1:%d" % port, trust_env=False, timeout=10) as c:
        return c.get(path)


def status_of(port, path="/"):
    return get(port, path).status_code


def api_backends(admin, pool):
    r = httpx.get("http://127.0.0.1:%d/api/v1/pools/%s" % (admin, pool), trust_env=False, timeout=10)
    return {b["name"]: b for b in r.json()["backends"]}


def log_has(proc, regex):
    return re.search(regex, proc.read_log(), re.M)


FILE = """\
admin: { bind: 127.0.0.1:%(admin)d }
listeners:
  - bind: <L0>
    pool: web
pools:
  web:
    health: { interval: 200ms, timeout: 500ms }
    discover: { dns: web.test, type: a, port: %(port)d, scheme: https, resolvers: ["%(resolver)s"] }
    tls: { ca: %(ca)s }
threads: 1
"""


# -- A records, scheme https ------------------------------------------------------------------


def test_a_records_over_tls_check_the_name_asked(procs, usher_bin, dns, tls_backend, dcerts, tmp_path):
    b = tls_backend(dcerts.web)  # DNS:web.test only, served on 127.0.0.1
    d = dns(hosts=[("127.0.0.1", "web.test")], ttl=1)
    admin = free_port()
    u = _procs.start_usher_file(
        procs, usher_bin, tmp_path, FILE % dict(admin=admin, port=b.port, resolver=d.resolver, ca=dcerts.ca_pem)
    )
    port = u.ports[0]
    wait_for(lambda: status_of(port) == 200, "the discovered https:// backend serves")
    r = get(port, "/over-tls")
    assert r.status_code == 200, r.text
    assert r.json()["path"] == "/over-tls"  # the TLS backend answered it
    assert (r.json()["conn"], "GET", "/over-tls") in b.requests
    hs = b.handshakes
    assert hs and all(h["ok"] and h["sni"] == "web.test" for h in hs), hs  # the name, not 127.0.0.1
    assert all(h["alpn"] == "http/1.1" for h in hs), hs
    name = "127.0.0.1:%d" % b.port  # the identity stays the address
    be = api_backends(admin, "web")[name]
    assert be["url"] == "https://%s" % name and be["source"] == "dns" and be["state"] == "up", be
    log = u.proc.read_log()
    assert re.search(r"web\.test now gives 1 backend: \+127\.0\.0\.1:%d \(weight 1\)" % b.port, log), log
    assert "pool 'web': health checks: TLS handshake every 200 ms" in log, log
    assert re.search(r"TLS to backends: certificates checked against %s for each URL's host \(a backend "
                     r"from DNS: its DNS name\)" % re.escape(dcerts.ca_pem), log), log
    # the health checks are TLS handshakes with the same name
    n = len(b.handshakes)
    wait_for(lambda: len(b.handshakes) >= n + 2, "two more checks")
    assert all(h["ok"] and h["sni"] == "web.test" for h in b.handshakes), b.handshakes


def test_a_certificate_for_another_name_takes_no_requests_and_says_why(
    procs, usher_bin, dns, tls_backend, dcerts, tmp_path
):
    b = tls_backend(dcerts.other)  # other.test: not the name asked
    d = dns(hosts=[("127.0.0.1", "web.test")], ttl=1)
    why = "TLS: certificate verify failed: hostname mismatch"
    # with active checks: never UP, 503, and the check's reason in the log and the API
    admin = free_port()
    u = _procs.start_usher_file(
        procs, usher_bin, tmp_path, FILE % dict(admin=admin, port=b.port, resolver=d.resolver, ca=dcerts.ca_pem)
    )
    url = "https://127.0.0.1:%d" % b.port
    wait_for(lambda: log_has(u.proc, r"^.*backend %s: its first check since DNS gave it failed \(%s\); it takes "
                                     r"no requests until a check passes$" % (re.escape(url), re.escape(why))),
             "the failed first check is said in words")
    be = api_backends(admin, "web")["127.0.0.1:%d" % b.port]
    assert be["state"] == "down" and be["source"] == "dns", be
    assert be["last_check"]["ok"] is False and be["last_check"]["detail"] == why, be
    r = get(u.ports[0])
    assert r.status_code == 503, r.text
    # said once, not at every check
    wait_for(lambda: len(b.handshakes) >= 4, "more checks")
    assert len(re.findall(r"its first check since DNS gave it failed", u.proc.read_log())) == 1
    # without active checks: it takes requests at once, and each gets 502, as a static one
    q, qport = start_quick(procs, usher_bin, "--backend", "dns+https://web.test:%d" % b.port, "--resolver",
                           d.resolver, "--backend-tls-ca", dcerts.ca_pem, "--health-interval", "off",
                           "--threads", "1")
    wait_for(lambda: status_of(qport) == 502, "502 once DNS gave the backend")
    r = get(qport)
    assert r.status_code == 502
    assert r.json() == {"error": "Bad gateway: the TLS handshake with the backend failed"}
    assert log_has(q, r"backend %s: connect failed \(%s\)$" % (re.escape(url), re.escape(why))), q.read_log()
    assert b.requests == []  # nothing of a request ever reached it
    assert b.handshakes and not any(h["ok"] for h in b.handshakes)


def test_server_name_overrides_the_dns_name(procs, usher_bin, dns, tls_backend, dcerts):
    b = tls_backend(dcerts.named)  # backend.test only: neither web.test nor 127.0.0.1
    d = dns(hosts=[("127.0.0.1", "web.test")], ttl=1)
    u, port = start_quick(procs, usher_bin, "--backend", "dns+https://web.test:%d" % b.port, "--resolver", d.resolver,
                          "--backend-tls-ca", dcerts.ca_pem, "--backend-tls-server-name", "backend.test",
                          "--threads", "1", *FAST_HEALTH)
    wait_for(lambda: status_of(port) == 200, "the backend serves with the name given")
    assert get(port, "/named").json()["path"] == "/named"
    assert b.handshakes and all(h["ok"] and h["sni"] == "backend.test" for h in b.handshakes), b.handshakes
    assert "TLS to backends: certificates checked against %s for backend.test" % dcerts.ca_pem in u.read_log()


# -- SRV, quick mode ----------------------------------------------------------------------------


def test_srv_https_checks_the_target_name_and_follows_a_rename(procs, usher_bin, dns, tls_backend, dcerts):
    """The SRV target's name is checked (not the service name, not the
    address). A new target name for the same address and port is the same
    backend (its counters and its state go on), and the new name is the one
    sent and checked from then on."""
    b = tls_backend(dcerts.nodes)  # node-1.svc.test and node-2.svc.test
    hosts = [("127.0.0.1", "node-1.svc.test"), ("127.0.0.1", "node-2.svc.test")]
    d = dns(hosts=hosts, srv=[("_https._tcp.svc.test", "node-1.svc.test", b.port, 0, 5)], ttl=1)
    admin = free_port()
    u, port = start_quick(procs, usher_bin, "--backend", "srv+https://_https._tcp.svc.test", "--resolver",
                          d.resolver, "--backend-tls-ca", dcerts.ca_pem, "--admin", "127.0.0.1:%d" % admin,
                          "--threads", "1", *FAST_HEALTH)
    wait_for(lambda: status_of(port) == 200, "the SRV backend serves over TLS")
    for i in range(3):
        assert get(port, "/n1-%d" % i).json()["path"] == "/n1-%d" % i
    assert b.handshakes and all(h["ok"] and h["sni"] == "node-1.svc.test" for h in b.handshakes), b.handshakes
    name = "127.0.0.1:%d" % b.port
    before = api_backends(admin, "default")[name]
    assert before["url"] == "https://%s" % name and before["requests"] >= 3, before
    d.set_srv([("_https._tcp.svc.test", "node-2.svc.test", b.port, 0, 5)])
    wait_for(lambda: log_has(u, r"_https\._tcp\.svc\.test now gives 1 backend: ~127\.0\.0\.1:%d \(weight 5, "
                                r"target node-2\.svc\.test\)" % b.port), "the rename is said")
    n = len(b.handshakes)
    assert get(port, "/n2").status_code == 200
    new = b.handshakes[n:]
    assert new and all(h["ok"] and h["sni"] == "node-2.svc.test" for h in new), new
    after = api_backends(admin, "default")[name]
    assert after["requests"] >= before["requests"] + 1, (before, after)  # the same backend's counter
    assert after["state"] == "up", after
    assert "is DOWN" not in u.read_log() and "first check since DNS gave it failed" not in u.read_log()


# -- the configuration ----------------------------------------------------------------------------


def check(usher_bin, *args):
    r = subprocess.run([usher_bin, "-t", *[str(a) for a in args]], capture_output=True, timeout=20)
    return r.returncode, r.stdout.decode() + r.stderr.decode()


def test_check_accepts_an_https_discover_block_with_tls_and_no_static_backend(usher_bin, dcerts, tmp_path):
    text = """listeners:
  - bind: 127.0.0.1:1
    pool: web
pools:
  web:
    discover: { dns: _web._tcp.service.consul, type: srv, scheme: https, resolvers: ["127.0.0.1:8600"] }
    tls: { ca: %s, verify: true }
""" % dcerts.ca_pem
    path = tmp_path / "https.yaml"
    path.write_text(text)
    rc, out = check(usher_bin, "-c", path)
    assert rc == 0 and out.strip() == "configuration ok", out
    # the pool's TLS files are read before DNS gave any backend
    path.write_text(text.replace(dcerts.ca_pem, "/nonexistent/ca.pem"))
    rc, out = check(usher_bin, "-c", path)
    assert rc == 1, out
    assert "%s:5: pool 'web': tls.ca /nonexistent/ca.pem: cannot read it" % path in out, out
    # the same pool discovering plain http: the tls section has no backend to serve
    path.write_text(text.replace("scheme: https, ", ""))
    rc, out = check(usher_bin, "-c", path)
    line, col = yaml_pos(path.read_text(), "tls: {", "{")
    assert rc == 1, out
    assert "%s:%d:%d: pool 'web': tls: no backend of the pool is https://" % (path, line, col) in out, out
    assert "discover.scheme: https" in out, out


def test_bad_scheme_names_file_line_and_the_choices(usher_bin, tmp_path):
    text = "listeners:\n  - bind: 127.0.0.1:1\n    pool: web\npools:\n  web:\n" \
           "    discover:\n      dns: web.test\n      port: 443\n      scheme: tls\n"
    path = tmp_path / "scheme.yaml"
    path.write_text(text)
    rc, out = check(usher_bin, "-c", path)
    assert rc == 1, out
    assert "%s:9:15: discover.scheme: expected http or https, not 'tls'" % path in out, out


def test_quick_mode_https_forms(usher_bin, dcerts):
    rc, out = check(usher_bin, "--backend", "dns+https://web.test:8443", "--backend-tls-ca", dcerts.ca_pem)
    assert rc == 0 and out.strip() == "configuration ok", out
    rc, out = check(usher_bin, "--backend", "srv+https://_web._tcp.service.consul", "--backend-tls-ca",
                    dcerts.ca_pem)
    assert rc == 0 and out.strip() == "configuration ok", out
    rc, out = check(usher_bin, "--backend", "dns+https://web.test:8443", "--backend-tls-ca", "/nonexistent/ca.pem")
    assert rc == 1 and "--backend-tls-ca /nonexistent/ca.pem: cannot read it" in out, out
    for args, words in [
        (["--backend", "dns+https://web.test"], "dns+https://NAME:PORT needs the backends' port"),
        (["--backend", "srv+https://_h._tcp.web.test:443"], "srv+https:// takes no port"),
        (["--backend", "dns+ftp://web.test:21"], "expected dns+http://NAME:PORT or srv+http://"),
        (["--backend", "dns+http://web.test:80", "--backend-tls-ca", dcerts.ca_pem],
         "--backend-tls-ca is given but no --backend https://HOST:PORT uses it (nor a dns+https://"),
    ]:
        rc, out = check(usher_bin, *args)
        assert rc == 2, (args, out)
        assert words in out, (args, out)
