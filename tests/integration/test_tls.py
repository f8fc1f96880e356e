"""TLS termination: usher's https:// listeners, checked with real clients
(Python's ssl module, curl, openssl s_client) against certificates made at
run time (harness/certs.py; the `certs` fixture).

- Serving: a verified handshake (chain and name) and the pool's answers on
  a TLS listener beside a plain one; keep-alive, pipelined requests in one
  record, a request one byte per record, large bodies both ways; the
  connection ends with close_notify; X-Forwarded-Proto says https.
- Certificates: chosen by SNI among the SAN names (a wildcard covers one
  label; an unknown or absent name gets the first certificate); ECDSA and
  RSA for the same names, each client gets one it supports; a --cert file
  that holds chain and key; the start-up log line of each certificate.
- Versions and suites: TLS 1.0/1.1 refused, --tls-min-version 1.3,
  the default TLS 1.2 suites (ECDHE + AEAD), --tls-ciphers,
  --tls-ciphersuites, weak suites never served, a list left empty refused.
- ALPN: http/1.1 chosen from h2,http/1.1; no ALPN still served.
- Resumption: tickets across worker threads (TLS 1.2 and 1.3), the TLS 1.2
  session cache with tickets off, neither when both are off, never across
  two certificates chosen by SNI, ticket key rotation (the previous key
  still decrypts, older ones do not).
- HTTP around TLS: HSTS on TLS listeners only (usher's own errors too);
  plain listeners redirect with 308 to https://HOST[:PORT]/TARGET.
- Client certificates: required (refused without one, or with one from
  another CA), optional (the result and subject passed to the backend in
  the configured headers; client-sent copies of them removed).
- Reload: SIGHUP re-reads the certificate files (quick mode and -c FILE),
  with no failed request across it, connections in flight kept; a bad new
  certificate is logged and the old one keeps serving.
- Start and -t: an unreadable certificate, a key that does not match, an
  expired certificate stop usher with a message naming the file; -t warns
  about a certificate that expires within 30 days.
- Hostile clients: silence or half a ClientHello closed after
  timeouts.client_header; garbage closed; plain HTTP on the TLS port gets
  400 or a close; usher keeps serving.
"""

import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import zlib

import pytest

from harness.certs import openssl, pem_blocks
from harness.procs import HOST, free_port
from http_raw import PeerClosed, ProtocolError, RawHTTPConnection, build_request
from usher_log import wait_for

TIMEOUT = 10.0  # per socket operation
TOOL_TIMEOUT = 30.0  # one curl or openssl run
CLIENT_HEADER_S = 2  # timeouts.client_header in the hostile-client tests
MiB = 1 << 20
TLS10, TLS11, TLS12, TLS13 = (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_2,
                              ssl.TLSVersion.TLSv1_3)


# -- clients ---------------------------------------------------------------------------


def client_ctx(certs, verify=True, check_hostname=True, min_version=None, max_version=None, ciphers=None,
               ciphersuites=None, alpn=None, client_cert=None, tickets=True):
    """A client SSLContext trusting the test CA (verify=False: no check at
    all). min/max_version: ssl.TLSVersion; ciphers: TLS 1.2 list (the
    client's own security level is lowered when it names old suites);
    alpn: protocols offered; client_cert: a certs.Cert presented."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(certs.ca_pem)
        ctx.check_hostname = check_hostname
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    if client_cert is not None:
        ctx.load_cert_chain(client_cert.cert, client_cert.key)
    if not tickets:
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


def old_tls_ctx(certs, version):
    """A client that offers exactly one old version (TLS 1.0 or 1.1): the
    client's security level is lowered so it really sends that hello."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = client_ctx(certs, ciphers="DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = version
        ctx.maximum_version = version
    return ctx


class TLSConnection(RawHTTPConnection):
    """RawHTTPConnection over TLS (Python's ssl): the handshake happens in
    the constructor (ssl errors propagate). `ended` says how the server
    closed: "close_notify", "ragged" (FIN without close_notify) or "reset"."""

    def __init__(self, port, ctx, sni="a.test", session=None, timeout=TIMEOUT):
        raw = socket.create_connection((HOST, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname=sni, session=session, suppress_ragged_eofs=False)
        except BaseException:
            raw.close()
            raise
        self.sni = sni
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False
        self.ended = None

    def _recv(self):
        try:
            data = self.sock.recv(1 << 16)
        except ssl.SSLEOFError:
            self.ended, data = "ragged", b""
        except ConnectionResetError:
            self.ended, data = "reset", b""
        if not data:
            self.ended = self.ended or "close_notify"
        return data

    def request(self, method, target, headers=None, body=None, version="HTTP/1.1", host=None):
        super().request(method, target, headers, body, version, host or self.sni or "usher.test")

    def get(self, target="/", headers=(), close=False):
        h = list(headers) + ([("Connection", "close")] if close else [])
        return self.roundtrip("GET", target, h, host=self.sni or "usher.test")

    @property
    def peer_der(self):
        return self.sock.getpeercert(binary_form=True)


def tls_get(port, ctx, sni="a.test", target="/", session=None, headers=()):
    """One GET on a new TLS connection (Connection: close). Returns (the
    response, facts about the connection: version, cipher, alpn, peer,
    reused, session, ended)."""
    with TLSConnection(port, ctx, sni, session=session) as c:
        r = c.get(target, headers, close=True)
        c.read_until_close(deadline=time.monotonic() + TIMEOUT)
        facts = dict(
            version=c.sock.version(), cipher=c.sock.cipher()[0], alpn=c.sock.selected_alpn_protocol(),
            peer=c.peer_der, reused=c.sock.session_reused, session=c.sock.session, ended=c.ended,
        )
    return r, facts


def handshake_outcome(port, ctx, sni="a.test", target="/"):
    """("served", status) if a GET on a new connection got a response,
    else ("refused", what went wrong): a handshake failure, or (TLS 1.3,
    where a client certificate is checked after the client's handshake
    ends) an alert or a close instead of the response."""
    try:
        with TLSConnection(port, ctx, sni) as c:
            r = c.get(target, close=True)
            return "served", r.status
    except (ssl.SSLError, PeerClosed, ConnectionError) as e:
        return "refused", repr(e)


def check_served(r):
    """A demo backend's answer to GET /."""
    assert r.status == 200, r
    assert r.header("X-Backend") in ("backend1", "backend2"), r.headers
    assert r.json()["message"] == "Hello from %s" % r.header("X-Backend"), r.body


def run_tool(argv, input=b"", timeout=TOOL_TIMEOUT):
    p = subprocess.run([str(a) for a in argv], input=input, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def curl(certs, url, *args, ports=(), names=("a.test",)):
    """curl URL trusting the test CA, each name resolved to 127.0.0.1 on
    each of ports. Returns (exit status, headers and body, stderr, {"code",
    "version", "verify"} of the last response)."""
    argv = ["curl", "-sS", "-i", "--noproxy", "*", "--max-time", "20", "--cacert", certs.ca_pem]
    for n in names:
        for port in ports:
            argv += ["--resolve", "%s:%d:%s" % (n, port, HOST)]
    argv += list(args) + ["-w", "\n@@ %{http_code} %{http_version} %{ssl_verify_result}\n", url]
    rc, out, err = run_tool(argv)
    m = re.search(r"^@@ (\d+) (\S+) (\d+)$", out, re.M)
    info = dict(code=int(m.group(1)), version=m.group(2), verify=int(m.group(3))) if m else {}
    return rc, out, err, info


HTTP_REQUEST = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"


class SClient:
    """The outcome of one `openssl s_client` run."""

    def __init__(self, rc, out, err):
        self.rc, self.out, self.err = rc, out, err
        m = re.search(r"^(New|Reused), (TLSv[\d.]+), Cipher is (\S+)", out, re.M)
        self.state = m.group(1) if m else None
        self.version = m.group(2) if m else None
        blocks = pem_blocks(out)
        self.peer_der = ssl.PEM_cert_to_DER_cert(blocks[0]) if blocks else None
        m = re.search(r"^HTTP/1\.1 (\d{3}) ", out, re.M)
        self.status = int(m.group(1)) if m else None

    @property
    def reused(self):
        return self.state == "Reused"

    def __repr__(self):
        return "<s_client rc=%d %s %s status=%s\n%s\n%s>" % (self.rc, self.state, self.version, self.status,
                                                             self.out[-1500:], self.err[-1500:])


def s_client(certs, port, *args, sni="a.test", request=True):
    """openssl s_client to port, trusting the test CA (a failed check is a
    failed handshake). request=True sends GET / with Connection: close and
    waits for usher to close (so TLS 1.3 tickets arrive before it exits)."""
    argv = ["openssl", "s_client", "-connect", "%s:%d" % (HOST, port), "-CAfile", certs.ca_pem, "-verify_return_error"]
    argv += ["-servername", sni] if sni else ["-noservername"]
    if request:
        argv.append("-ign_eof")
    argv += list(args)
    return SClient(*run_tool(argv, HTTP_REQUEST if request else b""))


def ticket_key_name(sess_file):
    """The first 16 bytes of the session ticket in an s_client -sess_out
    file (the key name of an RFC 5077 ticket, as OpenSSL makes them), or
    None if the session holds no ticket."""
    text = openssl("sess_id", "-in", sess_file, "-noout", "-text")
    _, found, rest = text.partition("TLS session ticket:")
    if not found:
        return None
    data = []
    for line in rest.splitlines()[1:]:
        m = re.match(r"\s+[0-9a-f]{4} - (.*)$", line)
        if not m:
            break
        data += re.findall(r"[0-9a-f]{2}", m.group(1)[:48].replace("-", " "))
    return bytes.fromhex("".join(data[:16])) if len(data) >= 16 else None


# -- usher set-ups ------------------------------------------------------------------------


def cert_args(*cs):
    out = []
    for c in cs:
        out += c.args()
    return out


@pytest.fixture
def tls_usher(backends, start_usher_tls, certs):
    """usher with a plain and a TLS listener in front of the demo backends,
    certificates a_ec (first), a_rsa, b, wild; two worker threads."""
    return start_usher_tls(backends, "--threads", 2, *cert_args(certs.a_ec, certs.a_rsa, certs.b, certs.wild))


def file_conf(backend_port, certs_yaml, top=""):
    """A -c file: listener 0 is TLS with the given certificates, listener 1
    is plain; both serve pool web (one backend)."""
    return (
        "threads: 2\n"
        "listeners:\n"
        "  - bind: <L0>\n"
        "    pool: web\n"
        "    tls:\n"
        "      certificates:\n"
        + "".join("        - %s\n" % c for c in certs_yaml)
        + "  - bind: <L1>\n"
        "    pool: web\n"
        "pools:\n"
        "  web:\n"
        "    backends: [ \"http://%s:%d\" ]\n" % (HOST, backend_port)
        + top
    )


def wait_peer(port, ctx, want_der, sni="a.test", timeout=10.0):
    """New handshakes until one presents want_der (bounded). Returns how
    many it took, or None."""
    deadline = time.monotonic() + timeout
    for n in range(1, int(timeout / 0.02) + 10):
        try:
            _, f = tls_get(port, ctx, sni)
            if f["peer"] == want_der:
                return n
        except (OSError, ProtocolError):
            pass
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)
    return None


def log_since(proc, start):
    return proc.read_log()[start:]


def wait_log_line(proc, start, problem, files, timeout=10.0):
    """The first log line written after offset `start` that holds `problem`
    and names one of `files` (bounded wait), or None."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.05) + 10):
        for line in log_since(proc, start).splitlines():
            if problem in line and any(f in line for f in files):
                return line
        if time.monotonic() > deadline or not proc.alive():
            return None
        time.sleep(0.05)
    return None


# == serving =============================================================================


def test_https_request_served_with_verified_chain_and_name(tls_usher, certs):
    r, f = tls_get(tls_usher.tls, client_ctx(certs), "a.test")
    check_served(r)
    assert f["peer"] == certs.a_ec.der
    assert f["version"] == "TLSv1.3", f


def test_plain_and_tls_listeners_serve_the_same_pool(tls_usher, certs):
    seen = {"plain": set(), "tls": set()}
    ctx = client_ctx(certs)
    with tls_usher.raw() as plain, TLSConnection(tls_usher.tls, ctx) as tls:
        # Round robin is global: each listener in turn sends two requests
        # in a row, so that each meets both backends.
        for _ in range(2):
            for kind, conn in (("plain", plain), ("tls", tls)):
                for _ in range(2):
                    r = conn.roundtrip("GET", "/", host="a.test")
                    check_served(r)
                    seen[kind].add(r.header("X-Backend"))
    assert seen == {"plain": {"backend1", "backend2"}, "tls": {"backend1", "backend2"}}, seen


def test_curl_https_verifies_and_gets_http2(tls_usher, certs):
    # curl offers h2 first over TLS, and usher prefers it (ALPN, issue 12)
    url = "https://a.test:%d/" % tls_usher.tls
    rc, out, err, info = curl(certs, url, ports=(tls_usher.tls,))
    assert rc == 0, err
    assert info == {"code": 200, "version": "2", "verify": 0}, (info, out)
    assert re.search(r"^x-backend: backend[12]\r?$", out, re.M | re.I), out


def test_keepalive_and_pipelined_requests_in_one_tls_record(tls_usher, certs):
    with TLSConnection(tls_usher.tls, client_ctx(certs)) as c:
        for i in range(3):
            r = c.get("/echo/ka%d" % i)
            assert r.status == 200 and r.json()["path"] == "/echo/ka%d" % i, r
        # Three requests in one write: one TLS record, so usher must find
        # the next request in what OpenSSL already decrypted.
        c.send(b"".join(build_request("GET", "/echo/p%d" % i, host="a.test") for i in range(3)))
        for i in range(3):
            r = c.read_response()
            assert r.status == 200 and r.json()["path"] == "/echo/p%d" % i, r
        r = c.get("/echo/after")
        assert r.json()["path"] == "/echo/after", r


def test_request_sent_one_byte_per_tls_record_is_served(tls_usher, certs):
    wire = build_request("GET", "/echo/bytewise", [("X-Pad", "p" * 40)], host="a.test")
    with TLSConnection(tls_usher.tls, client_ctx(certs)) as c:
        for i in range(len(wire)):
            c.sock.sendall(wire[i : i + 1])
        r = c.read_response()
    assert r.status == 200 and r.json()["path"] == "/echo/bytewise", r


def test_large_bodies_both_ways_over_tls(tls_usher, certs):
    n = 2 * MiB
    alphabet = bytes(range(ord("a"), ord("a") + 26))
    with TLSConnection(tls_usher.tls, client_ctx(certs)) as c:
        r = c.get("/bytes?n=%d" % n)
        assert r.status == 200 and len(r.body) == n, r
        assert r.body == (alphabet * (n // 26 + 1))[:n]
        body = random.Random(5).randbytes(n)
        r = c.roundtrip("PUT", "/echo/upload", body=body, host="a.test")
        assert r.status == 200, r
        j = r.json()
        assert (j["body_length"], j["body_crc32"]) == (n, "%08x" % (zlib.crc32(body) & 0xFFFFFFFF)), j


def test_connection_close_ends_with_close_notify(tls_usher, certs):
    r, f = tls_get(tls_usher.tls, client_ctx(certs))
    check_served(r)
    assert f["ended"] == "close_notify", f["ended"]


def test_x_forwarded_proto_is_https_on_tls_listener_and_http_on_plain(start_usher_tls, raw_backend, certs):
    rb = raw_backend()
    u = start_usher_tls([rb.port], *certs.a_ec.args())
    with TLSConnection(u.tls, client_ctx(certs)) as c:
        assert c.get("/tls", [("X-Forwarded-Proto", "http")]).status == 200
    with u.raw() as c:
        assert c.roundtrip("GET", "/plain", [("X-Forwarded-Proto", "https")]).status == 200
    reqs, probs, _ = rb.requests()
    assert not probs, probs
    got = {r.target: r.header_all("x-forwarded-proto") for r in reqs}
    assert got == {b"/tls": [b"https"], b"/plain": [b"http"]}, got


# == certificates ==========================================================================


@pytest.mark.parametrize("name,which", [
    ("a.test", "a_ec"), ("www.a.test", "a_ec"), ("b.test", "b"), ("x.wild.test", "wild"),
])
def test_sni_selects_the_certificate_naming_the_host(tls_usher, certs, name, which):
    r, f = tls_get(tls_usher.tls, client_ctx(certs), name)  # the name is checked too
    check_served(r)
    assert f["peer"] == getattr(certs, which).der


@pytest.mark.parametrize("name", ["a.b.wild.test", "wild.test"])
def test_wildcard_covers_exactly_one_label(tls_usher, certs, name):
    r, f = tls_get(tls_usher.tls, client_ctx(certs, check_hostname=False), name)
    check_served(r)
    assert f["peer"] == certs.a_ec.der, "%s must get the first certificate, not the wildcard" % name


def test_exact_name_beats_a_wildcard_whatever_the_order(backends, start_usher_tls, certs, tmp_path):
    exact = certs.ca.issue("exact", ["exact.wild.test"], directory=tmp_path)
    u = start_usher_tls(backends, *cert_args(certs.a_ec, certs.wild, exact), listen=("https",))
    ctx = client_ctx(certs)
    assert tls_get(u.tls, ctx, "exact.wild.test")[1]["peer"] == exact.der
    assert tls_get(u.tls, ctx, "other.wild.test")[1]["peer"] == certs.wild.der


def test_certificate_without_san_is_chosen_by_its_common_name(backends, start_usher_tls, certs, tmp_path):
    cn_only = certs.ca.issue("cn-only", subject="/CN=cn-only.test", directory=tmp_path)
    u = start_usher_tls(backends, *cert_args(certs.a_ec, cn_only), listen=("https",))
    r, f = tls_get(u.tls, client_ctx(certs, check_hostname=False), "cn-only.test")
    check_served(r)
    assert f["peer"] == cn_only.der


def test_unknown_or_absent_sni_gets_the_first_certificate(backends, start_usher_tls, certs):
    ctx = client_ctx(certs, check_hostname=False)
    for order in ((certs.a_ec, certs.b), (certs.b, certs.a_ec)):
        u = start_usher_tls(backends, *cert_args(*order), listen=("https",))
        for sni in ("unknown.test", None):
            r, f = tls_get(u.tls, ctx, sni)
            check_served(r)
            assert f["peer"] == order[0].der, "SNI %r with %r first" % (sni, order[0])
        u.proc.stop()


def test_rsa_only_tls13_client_gets_the_rsa_certificate(tls_usher, certs):
    rsa = s_client(certs, tls_usher.tls, "-sigalgs", "RSA-PSS+SHA256:rsa_pkcs1_sha256")
    assert rsa.status == 200 and rsa.version == "TLSv1.3", rsa
    assert rsa.peer_der == certs.a_rsa.der, rsa
    default = s_client(certs, tls_usher.tls)
    assert default.status == 200, default
    assert default.peer_der == certs.a_ec.der, default


@pytest.mark.parametrize("cipher,which", [
    ("ECDHE-RSA-AES128-GCM-SHA256", "a_rsa"), ("ECDHE-ECDSA-AES128-GCM-SHA256", "a_ec"),
])
def test_tls12_client_gets_the_certificate_its_suite_needs(tls_usher, certs, cipher, which):
    r, f = tls_get(tls_usher.tls, client_ctx(certs, max_version=TLS12, ciphers=cipher))
    check_served(r)
    assert (f["version"], f["cipher"]) == ("TLSv1.2", cipher)
    assert f["peer"] == getattr(certs, which).der


def test_cert_file_holding_chain_and_key_needs_no_key_flag(backends, start_usher_tls, certs):
    u = start_usher_tls(backends, *certs.a_rsa_bundle.args(), listen=("https",))
    assert certs.a_rsa_bundle.key is None
    r, f = tls_get(u.tls, client_ctx(certs))
    check_served(r)
    assert f["peer"] == certs.a_rsa.der


def test_start_log_names_each_certificate_with_key_type_names_and_expiry(tls_usher, certs):
    for c in (certs.a_ec, certs.a_rsa, certs.b, certs.wild):
        line = r"certificate %s \(%s\) for %s, valid until %s" % (
            re.escape(c.cert), re.escape(c.key_type), re.escape(", ".join(c.names)),
            c.not_after.strftime("%Y-%m-%d"))
        assert wait_for(tls_usher.proc, re.compile(line), timeout=5.0), "no line %r in:\n%s" % (
            line, tls_usher.proc.read_log())


# == versions and suites =====================================================================


@pytest.mark.parametrize("version", [TLS10, TLS11], ids=["tls1.0", "tls1.1"])
def test_tls10_and_tls11_are_refused_by_default(tls_usher, certs, version):
    with pytest.raises(ssl.SSLError) as e:
        tls_get(tls_usher.tls, old_tls_ctx(certs, version))
    # An alert from usher (not the client refusing to send an old hello).
    assert "ALERT" in (e.value.reason or ""), repr(e.value)
    r, f = tls_get(tls_usher.tls, client_ctx(certs, max_version=TLS12))
    check_served(r)
    assert f["version"] == "TLSv1.2"


def test_tls_min_version_13_refuses_tls12(backends, start_usher_tls, certs):
    u = start_usher_tls(backends, "--tls-min-version", "1.3", *certs.a_ec.args(), listen=("https",))
    with pytest.raises(ssl.SSLError) as e:
        tls_get(u.tls, client_ctx(certs, max_version=TLS12))
    assert "ALERT" in (e.value.reason or ""), repr(e.value)
    r, f = tls_get(u.tls, client_ctx(certs))
    check_served(r)
    assert f["version"] == "TLSv1.3"


@pytest.mark.parametrize("cipher,ok", [
    ("ECDHE-ECDSA-AES256-GCM-SHA384", True),
    ("ECDHE-ECDSA-CHACHA20-POLY1305", True),
    ("ECDHE-ECDSA-AES128-SHA256", False),  # CBC
    ("ECDHE-ECDSA-AES256-SHA", False),  # CBC, SHA-1
    ("AES128-GCM-SHA256", False),  # no forward secrecy
])
def test_default_tls12_suites_are_ecdhe_with_aead(tls_usher, certs, cipher, ok):
    ctx = client_ctx(certs, max_version=TLS12, ciphers=cipher + ":@SECLEVEL=0")
    if ok:
        r, f = tls_get(tls_usher.tls, ctx)
        check_served(r)
        assert f["cipher"] == cipher
    else:
        with pytest.raises(ssl.SSLError) as e:
            tls_get(tls_usher.tls, ctx)
        assert "ALERT" in (e.value.reason or ""), repr(e.value)


def test_tls_ciphers_restricts_the_tls12_suites(backends, start_usher_tls, certs):
    u = start_usher_tls(backends, "--tls-ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384", *certs.a_ec.args(),
                        listen=("https",))
    r, f = tls_get(u.tls, client_ctx(certs, max_version=TLS12,
                                     ciphers="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"))
    check_served(r)
    assert f["cipher"] == "ECDHE-ECDSA-AES256-GCM-SHA384"
    with pytest.raises(ssl.SSLError):
        tls_get(u.tls, client_ctx(certs, max_version=TLS12, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"))


def test_null_suite_never_served_even_when_listed(run_usher, backends, start_usher_tls, procs, certs):
    """A NULL suite (no encryption) written in --tls-ciphers, even with the
    security level lowered in the list, is removed: either usher refuses
    the list, or it starts and a client offering only that suite fails."""
    listed = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-NULL-SHA:@SECLEVEL=0"
    port = free_port()
    args = ["--listen", "https://%s:%d" % (HOST, port), "--backend", backends[0].url, "--tls-ciphers", listed]
    check = run_usher("-t", *args, *certs.a_ec.args())
    if check.returncode != 0:
        return  # refused as a whole: nothing is served with it
    u = start_usher_tls(backends, "--tls-ciphers", listed, *certs.a_ec.args(), listen=("https",))
    with pytest.raises(ssl.SSLError):
        tls_get(u.tls, client_ctx(certs, max_version=TLS12, ciphers="ECDHE-ECDSA-NULL-SHA:@SECLEVEL=0"))
    r, f = tls_get(u.tls, client_ctx(certs, max_version=TLS12))
    check_served(r)
    assert f["cipher"] == "ECDHE-ECDSA-AES128-GCM-SHA256"


def test_cipher_list_left_empty_by_weak_suites_is_an_error(run_usher, backends, certs):
    port = free_port()
    p = run_usher("--listen", "https://%s:%d" % (HOST, port), "--backend", backends[0].url,
                  "--tls-ciphers", "RC4-SHA:DES-CBC3-SHA:NULL-SHA:aNULL", *certs.a_ec.args())
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode != 0, out
    assert "cipher" in out.lower(), out


def test_tls_ciphersuites_restricts_tls13_suites(backends, start_usher_tls, certs):
    u = start_usher_tls(backends, "--tls-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256", *certs.a_ec.args(),
                        listen=("https",))
    r, f = tls_get(u.tls, client_ctx(certs))
    check_served(r)
    assert (f["version"], f["cipher"]) == ("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256")


# == ALPN ======================================================================================


@pytest.mark.parametrize("offer,chosen", [(["http/1.1"], "http/1.1"), (["spdy/3", "http/1.1"], "http/1.1"), (None, None)],
                         ids=["http1.1", "other-and-http1.1", "none"])
def test_alpn_chooses_http11_and_no_alpn_still_served(tls_usher, certs, offer, chosen):
    r, f = tls_get(tls_usher.tls, client_ctx(certs, alpn=offer))
    check_served(r)
    assert f["alpn"] == chosen
    assert r.version == "HTTP/1.1"


def test_curl_http11_when_asked_gets_http11(tls_usher, certs):
    # HTTP/2 itself is tested in test_h2.py; a client that offers only http/1.1 gets it
    rc, out, err, info = curl(certs, "https://a.test:%d/" % tls_usher.tls, "--http1.1", ports=(tls_usher.tls,))
    assert rc == 0, err
    assert (info.get("code"), info.get("version")) == (200, "1.1"), out


# == resumption ================================================================================

RESUMES = 12  # connections that resume one session (two worker threads)


@pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls1.2", "tls1.3"])
def test_session_ticket_resumes_on_every_worker_thread(tls_usher, certs, version):
    ctx = client_ctx(certs, max_version=version)
    r, first = tls_get(tls_usher.tls, ctx)
    check_served(r)
    assert not first["reused"] and first["session"].has_ticket, first
    outcomes = []
    for _ in range(RESUMES):
        r, f = tls_get(tls_usher.tls, ctx, session=first["session"])
        check_served(r)
        outcomes.append(f["reused"])
    assert outcomes == [True] * RESUMES, outcomes


def test_s_client_sess_out_then_sess_in_is_reused(tls_usher, certs, tmp_path):
    sess = str(tmp_path / "sess.pem")
    new = s_client(certs, tls_usher.tls, "-sess_out", sess)
    assert new.status == 200 and new.state == "New", new
    again = s_client(certs, tls_usher.tls, "-sess_in", sess)
    assert again.status == 200 and again.reused, again


def test_tls12_session_cache_resumes_without_tickets(backends, start_usher_tls, certs):
    u = start_usher_tls(backends, "--threads", 2, "--tls-session-tickets", "false", *certs.a_ec.args(),
                        listen=("https",))
    ctx = client_ctx(certs, max_version=TLS12)
    r, first = tls_get(u.tls, ctx)
    check_served(r)
    assert not first["session"].has_ticket, "a ticket was sent with --tls-session-tickets false"
    outcomes = []
    for _ in range(RESUMES):
        r, f = tls_get(u.tls, ctx, session=first["session"])
        check_served(r)
        outcomes.append(f["reused"])
    assert outcomes == [True] * RESUMES, outcomes


@pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls1.2", "tls1.3"])
def test_no_resumption_with_tickets_off_and_cache_zero(backends, start_usher_tls, certs, version):
    u = start_usher_tls(backends, "--tls-session-tickets", "false", "--tls-session-cache", 0, *certs.a_ec.args(),
                        listen=("https",))
    ctx = client_ctx(certs, max_version=version)
    r, first = tls_get(u.tls, ctx)
    check_served(r)
    for _ in range(3):
        r, f = tls_get(u.tls, ctx, session=first["session"])
        check_served(r)
        assert not f["reused"], "resumed although tickets are off and the cache is 0"


@pytest.mark.parametrize("kind", ["tls1.3-ticket", "tls1.2-ticket", "tls1.2-session-id"])
def test_session_never_resumed_for_a_name_with_another_certificate(backends, start_usher_tls, certs, kind):
    extra = ["--tls-session-tickets", "false"] if kind == "tls1.2-session-id" else []
    u = start_usher_tls(backends, *extra, *cert_args(certs.a_ec, certs.b), listen=("https",))
    ctx = client_ctx(certs, max_version=TLS13 if kind.startswith("tls1.3") else TLS12)
    r, first = tls_get(u.tls, ctx, "a.test")
    check_served(r)
    assert first["peer"] == certs.a_ec.der
    # The control: the same name resumes.
    r, same = tls_get(u.tls, ctx, "a.test", session=first["session"])
    check_served(r)
    assert same["reused"], "the session does not resume even for its own name"
    r, other = tls_get(u.tls, ctx, "b.test", session=first["session"])
    check_served(r)
    assert not other["reused"], "a.test's session was resumed for b.test"
    assert other["peer"] == certs.b.der


ROTATION_TRIES = 5  # a slow client (valgrind) may miss the window of one rotation


def test_ticket_key_rotation_previous_key_decrypts_older_ones_do_not(backends, start_usher_tls, certs, tmp_path):
    """--tls-ticket-rotation 2s: a ticket made with the key in use resumes
    after the next key comes in (seen as a new key name in new tickets),
    and stops resuming once its key is gone."""
    u = start_usher_tls(backends, "--threads", 2, "--tls-ticket-rotation", "2s", *certs.a_ec.args(),
                        listen=("https",))
    files = iter(str(tmp_path / ("s%d.pem" % i)) for i in range(100000))

    def new_ticket():
        path = next(files)
        s = s_client(certs, u.tls, "-sess_out", path)
        assert s.status == 200 and s.state == "New", s
        name = ticket_key_name(path)
        assert name is not None, "no session ticket in %s" % path
        return path, name

    def next_key(after, timeout=15.0):
        """New tickets until one has a key name other than `after`."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.05) + 10):
            path, name = new_ticket()
            if name != after:
                return name
            assert time.monotonic() < deadline, "the ticket key did not change within %.0f s" % timeout
            time.sleep(0.05)

    for _ in range(ROTATION_TRIES):
        t1, n1 = new_ticket()
        assert s_client(certs, u.tls, "-sess_in", t1).reused
        n2 = next_key(n1)
        if s_client(certs, u.tls, "-sess_in", t1).reused:
            break
        # Not resumed: only allowed if yet another key came in meanwhile
        # (this client was slow); then the check is tried again.
        _, n3 = new_ticket()
        assert n3 != n2, "a ticket of the previous key (%s) was not resumed" % n1.hex()
    else:
        pytest.fail("the previous-key check was inconclusive %d times" % ROTATION_TRIES)
    deadline = time.monotonic() + 20.0
    for _ in range(1000):
        if not s_client(certs, u.tls, "-sess_in", t1).reused:
            break
        assert time.monotonic() < deadline, "a ticket still resumes 20 s after two 2 s rotations"
        time.sleep(0.1)
    # A fresh session still resumes after the rotations.
    t4, _ = new_ticket()
    assert s_client(certs, u.tls, "-sess_in", t4).reused


# == HSTS and the redirect to https =================================================================


@pytest.mark.parametrize("subdomains", [False, True], ids=["max-age", "includeSubDomains"])
def test_hsts_header_on_tls_listener_only(backends, start_usher_tls, certs, subdomains):
    extra = ["--hsts-max-age", 12345] + (["--hsts-include-subdomains", "true"] if subdomains else [])
    u = start_usher_tls(backends, *extra, *certs.a_ec.args())
    r, _ = tls_get(u.tls, client_ctx(certs))
    check_served(r)
    want = "max-age=12345" + ("; includeSubDomains" if subdomains else "")
    assert r.header_all("Strict-Transport-Security") == [want], r.headers
    with u.raw() as c:
        r = c.roundtrip("GET", "/")
    check_served(r)
    assert r.header_all("Strict-Transport-Security") == [], r.headers


def test_hsts_on_usher_own_error_responses(start_usher_tls, certs):
    dead = free_port()  # nothing listens there
    u = start_usher_tls([dead], "--hsts-max-age", 600, *certs.a_ec.args(), listen=("https",))
    r, _ = tls_get(u.tls, client_ctx(certs))
    assert r.status in (502, 503), r
    assert r.header_all("Strict-Transport-Security") == ["max-age=600"], r.headers


@pytest.mark.parametrize("https_port", [None, "443", "<P1>"], ids=["default", "443", "tls-port"])
def test_plain_listener_redirects_to_https_with_308(start_usher_tls, raw_backend, certs, https_port):
    rb = raw_backend()
    extra = ["--redirect-https", "true"] + (["--https-port", https_port] if https_port else [])
    u = start_usher_tls([rb.port], *extra, *certs.a_ec.args())
    with u.raw() as c:
        r = c.roundtrip("GET", "/some/path?q=1&r=%2F", host="a.test:%d" % u.plain)
    suffix = ":%d" % u.tls if https_port == "<P1>" else ""
    assert r.status == 308, r
    assert r.header("Location") == "https://a.test%s/some/path?q=1&r=%%2F" % suffix, r.headers
    # The TLS listener serves; only its request reached the backend.
    with TLSConnection(u.tls, client_ctx(certs)) as c:
        assert c.get("/over-tls").status == 200
    reqs, _, _ = rb.requests()
    assert [q.target for q in reqs] == [b"/over-tls"], reqs


def test_curl_follows_the_redirect_to_the_tls_listener(start_usher_tls, raw_backend, certs):
    rb = raw_backend()
    u = start_usher_tls([rb.port], "--redirect-https", "true", "--https-port", "<P1>", *certs.a_ec.args())
    rc, out, err, info = curl(certs, "http://a.test:%d/followed" % u.plain, "-L", "--proto-redir", "https",
                              ports=(u.plain, u.tls))
    assert rc == 0, err
    assert (info.get("code"), info.get("version")) == (200, "2"), out  # the https hop negotiates h2
    assert re.search(r"^HTTP/1\.1 308 ", out, re.M), out
    reqs, _, _ = rb.requests()
    assert [(q.target, q.header_all("x-forwarded-proto")) for q in reqs] == [(b"/followed", [b"https"])], reqs


def test_websocket_over_tls_relays_frames_both_ways(tls_usher, certs):
    from http_raw import WS_BINARY, WS_CLOSE, WS_TEXT, ws_accept_for, ws_encode_frame, ws_new_key, ws_read_message

    key = ws_new_key()
    with TLSConnection(tls_usher.tls, client_ctx(certs)) as c:
        c.request("GET", "/ws", [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key),
                                 ("Sec-WebSocket-Version", "13")])
        r = c.read_response()
        assert r.status == 101 and r.header("Sec-WebSocket-Accept") == ws_accept_for(key), r
        for op, payload in ((WS_TEXT, b"over tls"), (WS_BINARY, bytes((i * 7) & 0xFF for i in range(70000)))):
            c.send(ws_encode_frame(op, payload))
            assert ws_read_message(c) == (op, payload)
        burst = [(WS_TEXT, b"msg %d" % i) for i in range(10)]
        c.send(b"".join(ws_encode_frame(op, p) for op, p in burst))  # one TLS record
        for m in burst:
            assert ws_read_message(c) == m
        c.send(ws_encode_frame(WS_CLOSE, (1000).to_bytes(2, "big")))
        assert ws_read_message(c)[0] == WS_CLOSE
        assert c.read_until_close(deadline=time.monotonic() + TIMEOUT) == b""
        assert c.ended == "close_notify", c.ended


# == the -c file's tls settings ========================================================================


def test_file_mode_listener_tls_settings_are_honoured(start_usher_file_tls, raw_backend, certs):
    rb = raw_backend()
    text = (
        "threads: 2\n"
        "listeners:\n"
        "  - bind: \"https://<L0>\"\n"
        "    pool: web\n"
        "    tls:\n"
        "      certificates:\n"
        "        - %s\n"
        "        - %s\n"
        "      min_version: \"1.2\"\n"
        "      ciphers: \"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384\"\n"
        "      ciphersuites: \"TLS_AES_256_GCM_SHA384\"\n"
        "      session_tickets: false\n"
        "      session_cache: 100\n"
        "  - bind: <L1>\n"
        "    pool: web\n"
        "    tls:\n"
        "      certificates: [ %s ]\n"
        "      min_version: \"1.3\"\n"
        "pools:\n"
        "  web:\n"
        "    backends: [ \"http://%s:%d\" ]\n"
        "tls: { ticket_rotation: 1h }\n"
        % (certs.a_ec.yaml(), certs.a_rsa_bundle.yaml(), certs.b.yaml(), HOST, rb.port)
    )
    u = start_usher_file_tls(text, 2, tls=(0, 1))
    l0, l1 = u.ports
    r, f = tls_get(l0, client_ctx(certs, max_version=TLS12, ciphers="ECDHE-RSA-AES256-GCM-SHA384"))
    assert r.status == 200 and f["peer"] == certs.a_rsa.der, f  # the certificate without a key: line
    assert not f["session"].has_ticket, "session_tickets: false, yet a ticket came"
    with pytest.raises(ssl.SSLError):
        tls_get(l0, client_ctx(certs, max_version=TLS12, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"))
    r, f = tls_get(l0, client_ctx(certs))
    assert r.status == 200 and (f["version"], f["cipher"], f["peer"]) == ("TLSv1.3", "TLS_AES_256_GCM_SHA384",
                                                                           certs.a_ec.der), f
    with pytest.raises(ssl.SSLError):
        tls_get(l1, client_ctx(certs, max_version=TLS12), "b.test")
    r, f = tls_get(l1, client_ctx(certs), "b.test")
    assert r.status == 200 and f["peer"] == certs.b.der


def test_file_mode_client_certificates_hsts_and_redirect(start_usher_file_tls, raw_backend, certs):
    rb = raw_backend()
    text = (
        "listeners:\n"
        "  - bind: <L0>\n"
        "    pool: web\n"
        "    tls:\n"
        "      certificates: [ %s ]\n"
        "      client_ca: %s\n"
        "      client_verify: optional\n"
        "      client_verify_header: X-Verify\n"
        "      client_subject_header: X-Subject\n"
        "    hsts: { max_age: 31536000, include_subdomains: true }\n"
        "  - bind: <L1>\n"
        "    pool: web\n"
        "    redirect_https: true\n"
        "    https_port: 8443\n"
        "pools:\n"
        "  web:\n"
        "    backends: [ \"http://%s:%d\" ]\n"
        % (certs.a_ec.yaml(), certs.client_ca.cert, HOST, rb.port)
    )
    u = start_usher_file_tls(text, 2)
    tls_port, plain = u.ports
    r, _ = tls_get(tls_port, client_ctx(certs, client_cert=certs.alice), target="/alice")
    assert r.status == 200
    assert r.header_all("Strict-Transport-Security") == ["max-age=31536000; includeSubDomains"], r.headers
    r, _ = tls_get(tls_port, client_ctx(certs), target="/anonymous")
    assert r.status == 200
    with RawHTTPConnection(HOST, plain, timeout=TIMEOUT) as c:
        r = c.roundtrip("GET", "/x?y=1", host="a.test")
    assert (r.status, r.header("Location")) == (308, "https://a.test:8443/x?y=1"), r
    assert r.header_all("Strict-Transport-Security") == [], r.headers
    reqs, _, _ = rb.requests()
    got = {q.target: (q.header_all("x-verify"), q.header_all("x-subject")) for q in reqs}
    assert got == {b"/alice": ([b"SUCCESS"], [certs.alice.subject.encode()]), b"/anonymous": ([b"NONE"], [])}, got


# == client certificates ==========================================================================


def test_client_verify_required_refuses_without_a_valid_certificate(start_usher_tls, raw_backend, certs):
    rb = raw_backend()
    u = start_usher_tls([rb.port], "--client-ca", certs.client_ca.cert, "--client-verify", "required",
                        *certs.a_ec.args(), listen=("https",))
    for version in (TLS12, TLS13):
        for cert in (None, certs.mallory):
            got = handshake_outcome(u.tls, client_ctx(certs, max_version=version, client_cert=cert), target="/no")
            assert got[0] == "refused", (version, cert, got)
    assert handshake_outcome(u.tls, client_ctx(certs, client_cert=certs.alice), target="/alice") == ("served", 200)
    rc, out, err, info = curl(certs, "https://a.test:%d/curl" % u.tls, "--cert", certs.alice.cert, "--key",
                              certs.alice.key, ports=(u.tls,))
    assert rc == 0 and info.get("code") == 200, (rc, err, out)
    reqs, _, _ = rb.requests()
    assert [q.target for q in reqs] == [b"/alice", b"/curl"], reqs


def test_client_verify_optional_passes_result_and_subject_to_the_backend(start_usher_tls, raw_backend, certs):
    rb = raw_backend()
    u = start_usher_tls([rb.port], "--client-ca", certs.client_ca.cert, "--client-verify", "optional",
                        "--client-verify-header", "X-Client-Verify", "--client-subject-header", "X-Client-Subject",
                        *certs.a_ec.args(), listen=("https",))
    spoof = [("X-Client-Verify", "SUCCESS"), ("X-Client-Subject", "CN=admin,O=Example")]
    for who, cert in (("none", None), ("alice", certs.alice), ("mallory", certs.mallory)):
        r, _ = tls_get(u.tls, client_ctx(certs, client_cert=cert), target="/" + who, headers=spoof)
        assert r.status == 200, (who, r)
    reqs, probs, _ = rb.requests()
    assert not probs, probs
    got = {q.target.decode(): (q.header_all("x-client-verify"), q.header_all("x-client-subject")) for q in reqs}
    assert got["/none"] == ([b"NONE"], []), got
    assert got["/alice"] == ([b"SUCCESS"], [certs.alice.subject.encode()]), got
    verify, subject = got["/mallory"]
    assert len(verify) == 1 and verify[0].startswith(b"FAILED:") and len(verify[0]) > len(b"FAILED:"), got
    assert subject == [], got


def test_client_sent_verify_headers_never_reach_the_backend_from_plain_listener(start_usher_tls, raw_backend, certs):
    rb = raw_backend()
    u = start_usher_tls([rb.port], "--client-ca", certs.client_ca.cert, "--client-verify", "optional",
                        "--client-verify-header", "X-Client-Verify", "--client-subject-header", "X-Client-Subject",
                        *certs.a_ec.args())
    with u.raw() as c:
        r = c.roundtrip("GET", "/plain", [("X-Client-Verify", "SUCCESS"), ("x-client-subject", "CN=admin")])
    assert r.status == 200, r
    reqs, _, _ = rb.requests()
    assert len(reqs) == 1
    assert b"SUCCESS" not in reqs[0].header_all("x-client-verify"), reqs[0].raw
    assert reqs[0].header_all("x-client-subject") == [], reqs[0].raw


# == reload ========================================================================================


class TLSLoad(threading.Thread):
    """GET / on a new TLS connection per request, in a loop until stopped
    (bounded in count and time); records (outcome, peer certificate)."""

    def __init__(self, port, ctx, max_requests=5000, max_seconds=60.0):
        super().__init__(daemon=True)
        self.port, self.ctx = port, ctx
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.results = []

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        for _ in range(self.max_requests):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            try:
                r, f = tls_get(self.port, self.ctx)
                res = ("ok" if r.status == 200 else "status %d" % r.status, f["peer"])
            except Exception as e:  # every failure is reported by the test
                res = (repr(e), None)
            with self.lock:
                self.results.append(res)

    def snapshot(self):
        with self.lock:
            return list(self.results)


def reload_setup(tmp_path, certs):
    """Copies of a_ec's files that a test rewrites, and a second ECDSA
    certificate for the same names."""
    live = certs.a_ec.copy_to(tmp_path, "live")
    fresh = certs.ca.issue("fresh-%d" % os.getpid(), ["a.test", "www.a.test"], directory=tmp_path)
    return live, fresh


def replace_file(src, dst):
    tmp = dst + ".tmp"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def test_sighup_serves_the_new_certificate_with_no_failed_request(backends, start_usher_tls, certs, tmp_path):
    live, fresh = reload_setup(tmp_path, certs)
    u = start_usher_tls(backends, "--threads", 2, *live.args(), listen=("https",))
    ctx = client_ctx(certs)
    held = TLSConnection(u.tls, ctx)  # idle keep-alive connection across the reload
    slow = TLSConnection(u.tls, ctx)  # a request in flight during the reload
    try:
        check_served(held.get("/"))
        load = TLSLoad(u.tls, ctx)
        load.start()
        slow.request("GET", "/slow?ms=1500")
        replace_file(fresh.cert, live.cert)
        replace_file(fresh.key, live.key)
        u.proc.proc.send_signal(signal.SIGHUP)
        took = wait_peer(u.tls, ctx, fresh.der)
        # Some more handshakes after the switch, then stop the load.
        n0 = len(load.snapshot())
        deadline = time.monotonic() + 10
        while len(load.snapshot()) < n0 + 20 and time.monotonic() < deadline and load.is_alive():
            time.sleep(0.02)
        load.stop.set()
        load.join(30)
        assert took is not None, "no handshake presented the new certificate after SIGHUP:\n%s" % u.proc.read_log()
        results = load.snapshot()
        failed = [o for o, _ in results if o != "ok"]
        assert not failed, "%d of %d requests failed across the reload: %s" % (len(failed), len(results), failed[:5])
        assert any(p == fresh.der for _, p in results), "the load never saw the new certificate"
        r = slow.read_response()
        assert r.status == 200, r
        assert slow.peer_der == certs.a_ec.der
        check_served(held.get("/"))  # the idle connection keeps working
        assert held.peer_der == certs.a_ec.der
    finally:
        held.close()
        slow.close()


@pytest.mark.parametrize("problem", ["does not match", "expired", "cannot read"])
def test_bad_certificate_on_reload_is_logged_and_the_old_one_keeps_serving(backends, start_usher_tls, certs,
                                                                             tmp_path, problem):
    live, _ = reload_setup(tmp_path, certs)
    u = start_usher_tls(backends, *live.args(), listen=("https",))
    ctx = client_ctx(certs)
    start = len(u.proc.read_log())
    if problem == "does not match":
        replace_file(certs.b.key, live.key)
    elif problem == "expired":
        replace_file(certs.expired.cert, live.cert)
        replace_file(certs.expired.key, live.key)
    else:
        os.remove(live.cert)
    u.proc.proc.send_signal(signal.SIGHUP)
    names = (live.cert, live.key) if problem == "does not match" else (live.cert,)
    line = wait_log_line(u.proc, start, problem, names)
    assert line, "no log line naming %s and %r after SIGHUP:\n%s" % (names, problem, log_since(u.proc, start))
    for _ in range(3):
        r, f = tls_get(u.tls, ctx)
        check_served(r)
        assert f["peer"] == certs.a_ec.der


def test_file_mode_sighup_rereads_certificate_files_and_takes_new_paths(start_usher_file_tls, raw_backend, certs,
                                                                        tmp_path):
    rb = raw_backend()
    live, fresh = reload_setup(tmp_path, certs)
    text = file_conf(rb.port, [live.yaml()])
    u = start_usher_file_tls(text, 2)
    ctx = client_ctx(certs)
    assert tls_get(u.ports[0], ctx)[1]["peer"] == certs.a_ec.der
    # The same file, the certificate files rewritten.
    replace_file(fresh.cert, live.cert)
    replace_file(fresh.key, live.key)
    u.reload()
    assert wait_peer(u.ports[0], ctx, fresh.der) is not None, u.proc.read_log()
    # The file now names other files: b (first) and a_ec.
    u.reload(file_conf(rb.port, [certs.b.yaml(), certs.a_ec.yaml()]))
    assert wait_peer(u.ports[0], client_ctx(certs, check_hostname=False), certs.b.der, sni="unknown.test")
    assert tls_get(u.ports[0], ctx, "a.test")[1]["peer"] == certs.a_ec.der


def test_file_mode_reload_with_bad_certificate_keeps_the_old_one(start_usher_file_tls, raw_backend, certs, tmp_path):
    rb = raw_backend()
    u = start_usher_file_tls(file_conf(rb.port, [certs.a_ec.yaml()]), 2)
    start = len(u.proc.read_log())
    u.write(file_conf(rb.port, [certs.mismatch.yaml()]))
    # Not FileUsher.hup(): what matters is the line about the certificate,
    # whatever the reload's summary line says.
    u.proc.proc.send_signal(signal.SIGHUP)
    line = wait_log_line(u.proc, start, "does not match", (certs.mismatch.cert, certs.mismatch.key))
    assert line, "no line naming the file and 'does not match':\n%s" % log_since(u.proc, start)
    r, f = tls_get(u.ports[0], client_ctx(certs))
    assert r.status == 200 and f["peer"] == certs.a_ec.der


# == start and -t ===================================================================================

BAD = {
    "cannot read": lambda c, d: (os.path.join(str(d), "missing.pem"), c.a_ec.key),
    "does not match": lambda c, d: (c.mismatch.cert, c.mismatch.key),
    "expired": lambda c, d: (c.expired.cert, c.expired.key),
}


@pytest.mark.parametrize("problem", sorted(BAD))
def test_bad_certificate_at_start_exits_naming_the_file(run_usher, certs, tmp_path, problem):
    cert, key = BAD[problem](certs, tmp_path)
    p = run_usher("--listen", "https://%s:%d" % (HOST, free_port()), "--backend", "http://%s:1" % HOST,
                  "--cert", cert, "--key", key)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode != 0, out
    lines = [ln for ln in out.splitlines() if problem in ln and (cert in ln or key in ln)]
    assert lines, "no line naming the file and %r:\n%s" % (problem, out)


def test_two_certificates_with_the_same_names_and_key_type_are_refused(run_usher, certs, tmp_path):
    twin = certs.ca.issue("twin", ["a.test", "www.a.test"], directory=tmp_path)
    p = run_usher("--listen", "https://%s:%d" % (HOST, free_port()), "--backend", "http://%s:1" % HOST,
                  *cert_args(certs.a_ec, twin))
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode != 0, out
    assert twin.cert in out or certs.a_ec.cert in out, out


@pytest.mark.parametrize("problem", sorted(BAD))
def test_check_mode_reports_a_bad_certificate_in_the_file(run_usher, certs, tmp_path, problem):
    cert, key = BAD[problem](certs, tmp_path)
    path = tmp_path / "usher.yaml"
    path.write_text(file_conf(1, ["{ cert: %s, key: %s }" % (cert, key)]).replace("<L0>", "127.0.0.1:18443")
                    .replace("<L1>", "127.0.0.1:18080"))
    p = run_usher("-t", "-c", str(path))
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode != 0, out
    assert "configuration ok" not in out, out
    assert [ln for ln in out.splitlines() if problem in ln and (cert in ln or key in ln)], out


def test_check_mode_warns_about_a_certificate_expiring_within_30_days(run_usher, certs):
    p = run_usher("-t", "--listen", "https://%s:%d" % (HOST, free_port()), "--backend", "http://%s:1" % HOST,
                  *cert_args(certs.a_ec, certs.soon))
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode == 0, out
    assert "configuration ok" in out, out
    warn = [ln for ln in out.splitlines() if "expires" in ln]
    assert warn and all(certs.soon.cert in ln for ln in warn), out
    assert not any(certs.a_ec.cert in ln for ln in warn), "a certificate valid for a year was warned about"


# == hostile clients ===================================================================================


def client_hello(sni="a.test"):
    """The bytes of a real ClientHello (Python's ssl, nothing sent)."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def read_until_closed(sock, timeout):
    """Everything the server sends until it closes (EOF or reset), within
    timeout. Returns (bytes, closed)."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    for _ in range(100000):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return bytes(data), False
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return bytes(data), False
        except ConnectionResetError:
            return bytes(data), True
        if not chunk:
            return bytes(data), True
        data += chunk
    return bytes(data), False


@pytest.fixture
def hostile_usher(start_usher_file_tls, raw_backend, certs):
    rb = raw_backend()
    u = start_usher_file_tls(file_conf(rb.port, [certs.a_ec.yaml()], top="timeouts: { client_header: %ds }\n"
                                       % CLIENT_HEADER_S), 2)
    u.backend = rb
    return u


def still_serving(u, certs):
    assert u.proc.alive()
    r, _ = tls_get(u.ports[0], client_ctx(certs), target="/still")
    assert r.status == 200, r


@pytest.mark.parametrize("sent", ["nothing", "half-client-hello"])
def test_silent_or_partial_handshake_closed_after_client_header_timeout(hostile_usher, certs, sent):
    with socket.create_connection((HOST, hostile_usher.ports[0]), timeout=TIMEOUT) as s:
        if sent == "half-client-hello":
            hello = client_hello()
            s.sendall(hello[: len(hello) // 2])
        data, closed = read_until_closed(s, CLIENT_HEADER_S + 15)
    assert closed, "still open %d s after a client_header timeout of %d s" % (CLIENT_HEADER_S + 15, CLIENT_HEADER_S)
    assert not data.startswith(b"HTTP/"), data[:200]
    still_serving(hostile_usher, certs)


@pytest.mark.parametrize("garbage", ["random", "oversized-record", "hello-then-junk"])
def test_garbage_on_the_tls_port_is_closed_and_usher_keeps_serving(hostile_usher, certs, garbage):
    if garbage == "random":
        wire = random.Random(7).randbytes(4096)
    elif garbage == "oversized-record":
        wire = b"\x16\x03\x01\xff\xff" + b"\x00" * 20000
    else:
        wire = client_hello() + random.Random(8).randbytes(2048)
    with socket.create_connection((HOST, hostile_usher.ports[0]), timeout=TIMEOUT) as s:
        try:
            s.sendall(wire)
        except (BrokenPipeError, ConnectionResetError):
            pass  # usher closed already
        data, closed = read_until_closed(s, CLIENT_HEADER_S + 15)
    assert closed, "connection still open"
    assert not data.startswith(b"HTTP/"), data[:200]
    still_serving(hostile_usher, certs)
    reqs, _, _ = hostile_usher.backend.requests()
    assert [q.target for q in reqs] == [b"/still"], reqs


def test_plain_http_on_the_tls_port_gets_400_or_a_close(hostile_usher, certs):
    with socket.create_connection((HOST, hostile_usher.ports[0]), timeout=TIMEOUT) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        data, closed = read_until_closed(s, CLIENT_HEADER_S + 15)
    assert closed, "connection still open"
    is_alert = data[:1] == b"\x15" and data[1:2] == b"\x03"
    assert data == b"" or data.startswith(b"HTTP/1.1 400 ") or is_alert, data[:300]
    still_serving(hostile_usher, certs)
    reqs, _, _ = hostile_usher.backend.requests()
    assert [q.target for q in reqs] == [b"/still"], reqs
