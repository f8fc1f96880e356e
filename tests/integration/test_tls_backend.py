"""TLS to backends: https:// backend URLs and the pool's tls settings
(--backend-tls-verify, -ca, -server-name, -cert, -key; a pool's `tls:` in a
file). The backends are Python ssl servers (harness/tls_backend.py) with
certificates made at run time; each records every TLS connection it
accepted (handshake, resumption, SNI, ALPN, client certificate).

Most tests run usher with one worker thread and no active checks, so that
the backend's count of TLS connections is exactly the proxy's."""

import re
import ssl
import time

import httpx
import pytest
import usher_log
from harness.backends import SilentBackend
from harness.certs import openssl
from harness.tls_backend import TLSBackend, make_backend_certs

QUIET = ("--threads", "1", "--health-interval", "off")
HEALTHY = r"none|https?://\S+(?:, https?://\S+)*"


@pytest.fixture(scope="session")
def bcerts(tmp_path_factory):
    return make_backend_certs(tmp_path_factory.mktemp("backend-certs"))


@pytest.fixture
def tls_backend(py_backend):
    """tls_backend(cert, client_ca=None, close=False, max_version=None) ->
    a TLSBackend, stopped at teardown."""
    return lambda cert, **kw: py_backend(TLSBackend, cert=cert, **kw)


def get(u, path="/", method="GET"):
    with u.client() as c:
        return c.request(method, path)


def get_port(port, path):
    with httpx.Client(base_url="http://127.0.0.1:%d" % port, trust_env=False, timeout=10) as c:
        return c.get(path)


def wait_log(u, regex, timeout=5.0):
    found = usher_log.wait_for(u.proc, re.compile(regex, re.M), timeout)
    assert found, "no line matching %r in usher's log:\n%s" % (regex, u.proc.read_log())
    return found[0]


# -- verification ---------------------------------------------------------------------


def test_backend_verified_against_a_ca_file(start_usher, tls_backend, bcerts):
    b = tls_backend(bcerts.server)
    u = start_usher([], "--backend", b.url, "--backend-tls-ca", bcerts.ca_pem, *QUIET)
    r = get(u, "/hello")
    assert r.status_code == 200, r.text
    assert r.json()["path"] == "/hello"
    [hs] = b.wait_handshakes(1)
    assert hs["ok"], hs
    assert hs["alpn"] == "http/1.1"
    assert hs["sni"] is None  # RFC 6066 3: no SNI for an address
    wait_log(u, r"pool 'default': TLS to backends: certificates checked against %s" % re.escape(bcerts.ca_pem))


def test_a_host_name_is_sent_as_sni_and_checked(start_usher, tls_backend, bcerts):
    b = tls_backend(bcerts.server)
    u = start_usher([], "--backend", "https://localhost:%d" % b.port, "--backend-tls-ca", bcerts.ca_pem, *QUIET)
    assert get(u).status_code == 200
    [hs] = b.wait_handshakes(1)
    assert hs["sni"] == "localhost"


def test_verification_failure_is_502_and_health_says_why(start_usher, tls_backend, bcerts):
    bad = tls_backend(bcerts.self_signed)
    u = start_usher(
        [], "--backend", bad.url, "--threads", "1", "--health-interval", "1s", "--health-fall", "3"
    )
    # the checks need 3 s to take it DOWN: the first request comes well before
    r = get(u, "/x")
    assert r.status_code == 502, r.text
    assert r.json() == {"error": "Bad gateway: the TLS handshake with the backend failed"}
    why = "TLS: certificate verify failed: self-signed certificate"
    wait_log(u, r"backend %s: connect failed \(%s\)$" % (re.escape(bad.url), re.escape(why)))
    down = usher_log.state_re(bad.url, "DOWN", reason=re.escape(why) + r", 3 of 3 checks failed", healthy="none")
    assert usher_log.wait_for(u.proc, down, 20), u.proc.read_log()
    assert bad.requests == []  # nothing of a request ever reached it
    assert not any(h["ok"] for h in bad.handshakes)
    assert get(u).status_code == 503  # DOWN now


def test_a_failed_handshake_goes_to_the_next_backend_even_for_post(start_usher, tls_backend, bcerts):
    """Nothing of the request was accepted by a backend whose handshake
    failed: like a failed connect, the request (even a POST) goes to the
    next backend."""
    bad = tls_backend(bcerts.self_signed)
    good = tls_backend(bcerts.server)
    u = start_usher(
        [], "--backend", bad.url, "--backend", good.url, "--backend-tls-ca", bcerts.ca_pem, "--max-fails", "0", *QUIET
    )
    for i in range(6):
        r = get(u, "/post%d" % i, method="POST")
        assert r.status_code == 200, r.text
    assert [p for _, _, p in good.requests] == ["/post%d" % i for i in range(6)]
    assert bad.requests == []
    assert len(bad.wait_handshakes(3)) >= 3  # round robin kept trying it, and moved on each time


def test_a_failed_handshake_is_not_retried_on_the_same_backend(start_usher, tls_backend, bcerts):
    bad = tls_backend(bcerts.self_signed)
    u = start_usher([], "--backend", bad.url, "--retries", "7", *QUIET)
    assert get(u).status_code == 502
    time.sleep(0.2)
    assert len(bad.handshakes) == 1


def test_verify_false_accepts_a_self_signed_certificate(start_usher, tls_backend, bcerts):
    b = tls_backend(bcerts.self_signed)
    u = start_usher([], "--backend", b.url, "--backend-tls-verify", "false", *QUIET)
    r = get(u, "/anything")
    assert r.status_code == 200, r.text
    wait_log(u, r"pool 'default': TLS to backends WITHOUT certificate checks")


def test_server_name_overrides_the_url_host(start_usher, tls_backend, bcerts):
    b = tls_backend(bcerts.named)  # DNS:backend.test only, served on 127.0.0.1
    u = start_usher([], "--backend", b.url, "--backend-tls-ca", bcerts.ca_pem, *QUIET)
    assert get(u).status_code == 502
    wait_log(u, r"connect failed \(TLS: certificate verify failed: IP address mismatch\)")
    u2 = start_usher(
        [], "--backend", b.url, "--backend-tls-ca", bcerts.ca_pem, "--backend-tls-server-name", "backend.test", *QUIET
    )
    r = get(u2)
    assert r.status_code == 200, r.text
    hs = b.wait_handshakes(2)
    assert hs[-1]["ok"] and hs[-1]["sni"] == "backend.test", hs


def test_a_plain_http_backend_behind_https_is_named(start_usher, backends):
    u = start_usher([], "--backend", "https://127.0.0.1:%d" % backends[0].port, *QUIET)
    assert get(u).status_code == 502
    wait_log(u, r"connect failed \(TLS: the backend does not answer in TLS \(is it plain HTTP\?\)\)")


def test_a_handshake_that_never_ends_times_out_as_a_connect(start_usher, py_backend):
    silent = py_backend(SilentBackend, kind="no-read")
    u = start_usher([], "--backend", "https://127.0.0.1:%d" % silent.port, "--connect-timeout", "300ms", *QUIET)
    t0 = time.monotonic()
    r = get(u)
    assert r.status_code == 504, r.text
    assert time.monotonic() - t0 < 5
    wait_log(u, r"connect failed \(TLS handshake timed out\)")


# -- client certificates --------------------------------------------------------------


@pytest.mark.parametrize("bundle", [False, True], ids=["cert-and-key", "one-file"])
def test_client_certificate_is_presented(start_usher, tls_backend, bcerts, bundle):
    b = tls_backend(bcerts.server, client_ca=bcerts.client_ca_pem)
    files = (
        ["--backend-tls-cert", bcerts.client_bundle]
        if bundle
        else ["--backend-tls-cert", bcerts.client.cert, "--backend-tls-key", bcerts.client.key]
    )
    u = start_usher([], "--backend", b.url, "--backend-tls-ca", bcerts.ca_pem, *files, *QUIET)
    r = get(u)
    assert r.status_code == 200, r.text
    [hs] = b.wait_handshakes(1)
    assert hs["peer"] == "commonName=usher", hs
    wait_log(u, r"client certificate %s, valid until " % re.escape(files[1]))


def test_without_the_client_certificate_the_backend_refuses(start_usher, tls_backend, bcerts):
    b = tls_backend(bcerts.server, client_ca=bcerts.client_ca_pem)
    u = start_usher(
        [], "--backend", b.url, "--backend-tls-ca", bcerts.ca_pem, "--threads", "1",
        "--health-interval", "1s", "--health-fall", "3",
    )
    # the checks need 3 s to take it DOWN: the first request comes well before
    r = get(u)
    assert r.status_code == 502, r.text
    # TLS 1.3: the backend says so in an alert, after usher's side of the handshake ended
    why = "TLS: the backend sent an alert: certificate required (the backend wants a client certificate)"
    wait_log(u, r"backend %s: connection (lost|failed) before a response \(%s\)" % (re.escape(b.url), re.escape(why)))
    # the handshake check waits for the backend's word (a ticket, or this alert)
    down = usher_log.state_re(b.url, "DOWN", reason=re.escape(why) + r", 3 of 3 checks failed", healthy="none")
    assert usher_log.wait_for(u.proc, down, 20), u.proc.read_log()
    assert b.requests == []


# -- health checks over TLS ------------------------------------------------------------


def test_http_health_checks_over_tls(start_usher, tls_backend, bcerts):
    b = tls_backend(bcerts.server)
    u = start_usher(
        [], "--backend", b.url, "--backend-tls-ca", bcerts.ca_pem, "--health-path", "/health",
        "--health-interval", "100ms", "--health-fall", "2", "--health-rise", "2", "--threads", "1",
    )
    wait_log(u, r"health checks: HTTP GET \(over TLS for https://\) every 100 ms")
    b.health_status = 500
    down = usher_log.state_re(b.url, "DOWN", reason=r"GET /health answered 500, 2 of 2 checks failed", healthy="none")
    assert usher_log.wait_for(u.proc, down, 10), u.proc.read_log()
    assert get(u).status_code == 503
    b.health_status = 200
    up = usher_log.state_re(b.url, "UP", reason=r"GET /health answered 200, 2 of 2 checks passed", healthy=HEALTHY)
    assert usher_log.wait_for(u.proc, up, 10), u.proc.read_log()
    assert get(u).status_code == 200
    assert all(h["ok"] for h in b.handshakes)


def test_handshake_health_checks_resume_and_follow_the_certificate(start_usher, tls_backend, bcerts):
    b = tls_backend(bcerts.server)
    u = start_usher(
        [], "--backend", b.url, "--backend-tls-ca", bcerts.ca_pem, "--health-interval", "100ms",
        "--health-fall", "2", "--health-rise", "2", "--threads", "1",
    )
    wait_log(u, r"health checks: TLS handshake every 100 ms")
    hs = b.wait_handshakes(4)
    assert len(hs) >= 4 and all(h["ok"] for h in hs), hs
    # the control thread keeps its own session: every check after the first resumes
    assert [h["reused"] for h in hs[:4]] == [False, True, True, True], hs
    b.use(bcerts.self_signed)  # new ticket keys too: the next check is a full handshake
    why = "TLS: certificate verify failed: self-signed certificate"
    down = usher_log.state_re(b.url, "DOWN", reason=re.escape(why) + r", 2 of 2 checks failed", healthy="none")
    assert usher_log.wait_for(u.proc, down, 10), u.proc.read_log()
    b.use(bcerts.server)
    up = usher_log.state_re(b.url, "UP", reason=r"TLS handshake completed, 2 of 2 checks passed", healthy=HEALTHY)
    assert usher_log.wait_for(u.proc, up, 10), u.proc.read_log()
    assert get(u).status_code == 200


# -- pooled connections and resumption ---------------------------------------------------


def test_pooled_tls_connection_is_reused(start_usher, tls_backend, bcerts):
    b = tls_backend(bcerts.server)
    u = start_usher([], "--backend", b.url, "--backend-tls-ca", bcerts.ca_pem, *QUIET)
    for i in range(5):  # a new client connection each time; the backend one stays
        r = get(u, "/r%d" % i)
        assert r.status_code == 200 and r.json()["conn"] == 1, r.text
    assert len(b.handshakes) == 1
    assert [(n, p) for n, _, p in b.requests] == [(1, "/r%d" % i) for i in range(5)]


@pytest.mark.parametrize("version", [None, ssl.TLSVersion.TLSv1_2], ids=["tls1.3", "tls1.2"])
def test_reconnects_resume_the_session(start_usher, tls_backend, bcerts, version):
    b = tls_backend(bcerts.server, close=True, max_version=version)  # Connection: close after each response
    u = start_usher([], "--backend", b.url, "--backend-tls-ca", bcerts.ca_pem, *QUIET)
    reused = []
    for i in range(4):
        r = get(u, "/c%d" % i)
        assert r.status_code == 200, r.text
        assert r.json()["conn"] == i + 1
        reused.append(r.json()["reused"])
    assert reused == [False, True, True, True]
    assert all(h["ok"] for h in b.handshakes)


# -- configuration: errors, the file, reload --------------------------------------------


def test_check_reports_unusable_files(run_usher, bcerts, tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    be = ["--backend", "https://127.0.0.1:9"]
    cert, key = bcerts.client.cert, bcerts.client.key
    encrypted = str(tmp_path / "encrypted.key")
    openssl("pkey", "-in", key, "-aes256", "-passout", "pass:secret", "-out", encrypted)
    cases = [
        (
            ["--backend-tls-ca", "/nonexistent/ca.pem"],
            "--backend-tls-ca /nonexistent/ca.pem: cannot read it: No such file or directory",
        ),
        (["--backend-tls-ca", garbage], "--backend-tls-ca %s: no CA certificate could be read from it" % garbage),
        (["--backend-tls-cert", garbage], "--backend-tls-cert %s: no PEM certificate in it" % garbage),
        (["--backend-tls-cert", cert], "--backend-tls-cert %s: no private key in it" % cert),
        (
            ["--backend-tls-cert", cert, "--backend-tls-key", bcerts.server.key],
            "--backend-tls-cert %s: the key in %s does not match the certificate" % (cert, bcerts.server.key),
        ),
        (["--backend-tls-key", key], "--backend-tls-key %s is given without --backend-tls-cert" % key),
        (
            ["--backend-tls-cert", cert, "--backend-tls-key", encrypted],
            "--backend-tls-cert %s: the key in %s is encrypted, and usher asks for no password" % (cert, encrypted),
        ),
    ]
    for flags, message in cases:
        p = run_usher("-t", *be, *flags)
        err = p.stderr.decode()
        assert p.returncode == 1, (flags, err)
        assert message in err, (flags, err)
        assert "configuration not ok" in err
    p = run_usher("-t", *be, "--backend-tls-ca", bcerts.ca_pem, "--backend-tls-cert", bcerts.client_bundle)
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout.decode().strip() == "configuration ok"
    p = run_usher("-t", "--backend", "http://127.0.0.1:9", "--backend-tls-ca", bcerts.ca_pem)
    assert p.returncode == 2
    assert "--backend-tls-ca is given but no --backend https://HOST:PORT uses it" in p.stderr.decode()


POOL_FILE = """\
listeners:
  - bind: <L0>
    pool: web
pools:
  web:
    health: { type: off }
    tls: { ca: %s }
    backends: [ "%s" ]
threads: 1
"""


def test_file_tls_section_and_reload(start_usher_file, run_usher, tls_backend, bcerts, tmp_path):
    b = tls_backend(bcerts.server, close=True)  # every request is a new connection
    u = start_usher_file(POOL_FILE % (bcerts.ca_pem, b.url))
    r = get_port(u.ports[0], "/one")
    assert r.status_code == 200, r.text

    # a CA file that cannot be read: the reload fails and the old settings stay
    u.write(POOL_FILE % ("/nonexistent/ca.pem", b.url))
    bad_line = 5  # the line of the pool name
    p = run_usher("-t", "-c", u.path)
    assert p.returncode == 1
    assert "%s:%d: pool 'web': tls.ca /nonexistent/ca.pem: cannot read it" % (u.path, bad_line) in p.stderr.decode()
    outcome, log = u.hup()
    assert outcome == "failed", log
    assert "reload of %s failed (1 error): still serving with the previous configuration" % u.path in log
    assert "reload: %s:%d: pool 'web': tls.ca /nonexistent/ca.pem: cannot read it" % (u.path, bad_line) in log
    r = get_port(u.ports[0], "/two")
    assert r.status_code == 200, r.text

    # a CA that did not issue the backend's certificate: the reload works, and
    # the next connection is checked with it (no session of the old settings resumes)
    u.write(POOL_FILE % (bcerts.client_ca_pem, b.url))
    u.reload()
    r = get_port(u.ports[0], "/three")
    assert r.status_code == 502, r.text
    assert [p for _, _, p in b.requests] == ["/one", "/two"]
