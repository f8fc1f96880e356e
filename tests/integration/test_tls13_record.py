"""usher's own TLS 1.3 record layer (src/tls/conn_tls13.c): after OpenSSL's
handshake, a TLS 1.3 client connection is handed off to usher, which then
opens and seals the records itself (`tls.record_layer: usher`, the default;
`openssl` keeps every connection on OpenSSL). Every test runs with both
values, with real clients:

- the handoff happens (usher's debug log says so, per connection, with the
  suite) with `usher` and never with `openssl`, nor for a TLS 1.2 client;
- the three TLS 1.3 suites (openssl s_client -ciphersuites), resumed
  handshakes too;
- large uploads and downloads checked by CRC (records split across reads,
  many records per read), over HTTP/1.1 (Python ssl) and HTTP/2 (nghttp);
  pipelined requests in one write;
- a client KeyUpdate with and without update_requested (openssl s_client's
  `K` and `k`), then more requests on the same connection;
- close_notify from the client, and usher's close_notify at the end;
- a record with one byte flipped (Python ssl over MemoryBIOs, so the test
  has the bytes) gets the bad_record_mac alert and a close; usher serves on;
- mTLS results passed to the backend after the handoff.
"""

import re
import socket
import ssl
import subprocess
import threading
import time
import zlib

import pytest

from harness.procs import HOST
from http_raw import build_request
from test_tls import TLS12, TLS13, TLSConnection, cert_args, client_ctx, run_tool
from usher_log import wait_for

LAYERS = ["usher", "openssl"]
HANDOFF = r"TLS 1\.3 record layer taken over from OpenSSL on fd \d+ \((\S+),"
MiB = 1 << 20


@pytest.fixture(params=LAYERS)
def layer(request):
    return request.param


@pytest.fixture
def u(backends, start_usher_tls, certs, layer):
    """usher with one TLS listener, debug log, one worker, the layer chosen."""
    return start_usher_tls(backends, "--threads", 1, "--log-level", "debug", "--tls-record-layer", layer,
                           *cert_args(certs.a_ec), listen=("https",))


def handoffs(u):
    return re.findall(HANDOFF, u.proc.read_log())


def expect_handoffs(u, layer, n, timeout=10.0):
    """With usher: at least n handoffs logged (bounded wait); with openssl:
    none at all."""
    if layer == "usher":
        got = wait_for(u.proc, re.compile(HANDOFF), timeout, count=n)
        assert got is not None, (n, handoffs(u), u.proc.read_log()[-3000:])
    else:
        assert handoffs(u) == [], handoffs(u)


def check_alive(u, certs):
    with TLSConnection(u.tls, client_ctx(certs)) as c:
        r = c.get("/echo/alive")
        assert r.status == 200 and r.json()["path"] == "/echo/alive", r


# == the handoff =======================================================================


def test_tls13_connection_is_handed_off_only_with_the_usher_layer(u, certs, layer):
    with TLSConnection(u.tls, client_ctx(certs)) as c:
        assert c.sock.version() == "TLSv1.3"
        for i in range(3):
            r = c.get("/echo/k%d" % i)
            assert r.status == 200 and r.json()["path"] == "/echo/k%d" % i, r
    expect_handoffs(u, layer, 1)


def test_tls12_client_stays_on_openssl(u, certs, layer):
    before = len(handoffs(u))
    for _ in range(2):
        with TLSConnection(u.tls, client_ctx(certs, max_version=TLS12)) as c:
            assert c.sock.version() == "TLSv1.2"
            r = c.get("/echo/t12")
            assert r.status == 200, r
            r = c.get("/echo/t12b")
            assert r.status == 200, r
    # the debug lines are written as the connections go by: a handoff would be there by now
    assert len(handoffs(u)) == before, handoffs(u)
    check_alive(u, certs)


@pytest.mark.parametrize("suite", ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                   "TLS_CHACHA20_POLY1305_SHA256"])
def test_each_tls13_suite_serves_keepalive_requests(u, certs, layer, suite):
    reqs = b"".join(build_request("GET", "/echo/%s-%d" % (suite, i), host="a.test") for i in range(2))
    reqs += build_request("GET", "/echo/last", [("Connection", "close")], host="a.test")
    rc, out, err = run_tool(["openssl", "s_client", "-connect", "%s:%d" % (HOST, u.tls), "-CAfile",
                             certs.ca_pem, "-servername", "a.test", "-tls1_3", "-ciphersuites", suite, "-ign_eof"],
                            reqs)
    assert "Cipher is %s" % suite in out, out[-2000:]
    assert out.count("HTTP/1.1 200 OK") == 3, (out[-2000:], err[-2000:])
    expect_handoffs(u, layer, 1)
    if layer == "usher":
        assert suite in handoffs(u), handoffs(u)


def test_resumed_tls13_handshake_is_handed_off_too(u, certs, layer):
    ctx = client_ctx(certs, min_version=TLS13)
    with TLSConnection(u.tls, ctx) as c:
        assert c.get("/echo/first").status == 200
        session = c.sock.session
    assert session is not None and session.has_ticket
    with TLSConnection(u.tls, ctx, session=session) as c:
        assert c.sock.session_reused
        r = c.get("/echo/resumed")
        assert r.status == 200 and r.json()["path"] == "/echo/resumed", r
    expect_handoffs(u, layer, 2)


# == data ==============================================================================


def test_large_bodies_both_ways_checked_by_crc(u, certs, layer):
    n = 3 * MiB + 12345
    alphabet = bytes(range(ord("a"), ord("a") + 26))
    with TLSConnection(u.tls, client_ctx(certs, min_version=TLS13)) as c:
        for _ in range(2):
            r = c.get("/bytes?n=%d" % n)
            assert r.status == 200 and len(r.body) == n, r
            assert r.body == (alphabet * (n // 26 + 1))[:n]
        body = bytes((i * 131 + 7) & 0xFF for i in range(n))
        r = c.roundtrip("PUT", "/echo/upload", body=body, host="a.test")
        assert r.status == 200, r
        j = r.json()
        assert (j["body_length"], j["body_crc32"]) == (n, "%08x" % (zlib.crc32(body) & 0xFFFFFFFF)), j
        # small records: the upload sent in 1000-byte writes, one record each
        body = body[: 300 * 1000]
        c.send(build_request("PUT", "/echo/small", [("Content-Length", str(len(body)))], host="a.test"))
        for i in range(0, len(body), 1000):
            c.sock.sendall(body[i : i + 1000])
        r = c.read_response()
        assert r.json()["body_crc32"] == "%08x" % (zlib.crc32(body) & 0xFFFFFFFF), r
    expect_handoffs(u, layer, 1)


def test_pipelined_requests_in_one_write(u, certs, layer):
    with TLSConnection(u.tls, client_ctx(certs, min_version=TLS13)) as c:
        assert c.get("/echo/first").status == 200
        c.send(b"".join(build_request("GET", "/echo/p%d" % i, host="a.test") for i in range(20)))
        for i in range(20):
            r = c.read_response()
            assert r.status == 200 and r.json()["path"] == "/echo/p%d" % i, r
    expect_handoffs(u, layer, 1)


def test_h2_download_and_upload_with_nghttp(u, certs, layer, tmp_path):
    n = 2 * MiB
    data = tmp_path / "up.bin"
    body = bytes((i * 17 + 3) & 0xFF for i in range(n))
    data.write_bytes(body)
    url = "https://a.test:%d" % u.tls
    # nghttp has no --resolve: the certificate names a.test, so no verification here
    rc, out, err = run_tool(["nghttp", "-n", "-s", "%s/bytes?n=%d" % (url.replace("a.test", HOST), n)])
    assert rc == 0, (out, err)
    rc, out, err = run_tool(["nghttp", "-d", str(data), "%s/echo/h2" % url.replace("a.test", HOST)])
    assert rc == 0, (out, err)
    j = __import__("json").loads(out)
    assert (j["body_length"], j["body_crc32"]) == (n, "%08x" % (zlib.crc32(body) & 0xFFFFFFFF)), j
    expect_handoffs(u, layer, 2)


# == KeyUpdate, close_notify, a forged record =========================================


class SClientSession:
    """An interactive openssl s_client: lines in, output gathered by a thread."""

    def __init__(self, certs, port, *args):
        self.p = subprocess.Popen(["openssl", "s_client", "-connect", "%s:%d" % (HOST, port), "-CAfile",
                                   certs.ca_pem, "-servername", "a.test", "-tls1_3", *args],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.out = bytearray()
        self.t = threading.Thread(target=self._pump, daemon=True)
        self.t.start()

    def _pump(self):
        for chunk in iter(lambda: self.p.stdout.read1(65536), b""):
            self.out += chunk

    def send(self, b):
        self.p.stdin.write(b)
        self.p.stdin.flush()

    def wait(self, what, count, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and bytes(self.out).count(what) < count:
            time.sleep(0.02)
        return bytes(self.out).count(what) >= count

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.t.join(timeout=5)


def test_client_key_update_with_and_without_update_requested(u, certs, layer):
    s = SClientSession(certs, u.tls)
    try:
        n = 0
        for cmd in (b"K\n", b"k\n", b"K\n"):
            s.send(build_request("GET", "/echo/ku%d" % n, host="a.test"))
            n += 1
            assert s.wait(b"HTTP/1.1 200 OK", n), bytes(s.out)[-2000:]
            s.send(cmd)  # s_client: K = KeyUpdate(update_requested), k = update_not_requested
            assert s.wait(b"KEYUPDATE", n), bytes(s.out)[-2000:]
        for _ in range(2):  # more requests under the new keys, both ways
            s.send(build_request("GET", "/echo/ku%d" % n, host="a.test"))
            n += 1
            assert s.wait(b"HTTP/1.1 200 OK", n), bytes(s.out)[-2000:]
        assert b'"path":"/echo/ku%d"' % (n - 1) in bytes(s.out)
    finally:
        s.close()
    if layer == "usher":
        log = u.proc.read_log()
        assert log.count("KeyUpdate (update requested: answered)") == 2, log[-3000:]
        assert re.search(r"record layer on fd \d+: KeyUpdate$", log, re.M), log[-3000:]
    expect_handoffs(u, layer, 1)
    check_alive(u, certs)


def test_close_notify_from_the_client_ends_the_connection_cleanly(u, certs, layer):
    raw = socket.create_connection((HOST, u.tls), timeout=10)
    s = client_ctx(certs, min_version=TLS13).wrap_socket(raw, server_hostname="a.test", suppress_ragged_eofs=False)
    s.sendall(build_request("GET", "/echo/bye", host="a.test"))
    got = b""
    deadline = time.monotonic() + 10
    while b'"path":"/echo/bye"' not in got and time.monotonic() < deadline:
        got += s.recv(65536)
    raw2 = s.unwrap()  # our close_notify, then usher's comes back
    assert raw2.recv(100) == b""  # and usher's FIN after it
    raw2.close()
    expect_handoffs(u, layer, 1)
    check_alive(u, certs)


def mem_handshake(ctx, sock):
    """A TLS client over MemoryBIOs on sock: (the SSLObject, incoming, outgoing)."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="a.test")
    for _ in range(100):
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            sock.sendall(out.read())
            data = sock.recv(65536)
            assert data, "closed in the handshake"
            inc.write(data)
    sock.sendall(out.read())  # the client's Finished
    return obj, inc, out


def read_until_close(sock, deadline):
    got = b""
    while time.monotonic() < deadline:
        try:
            d = sock.recv(65536)
        except ConnectionResetError:
            break
        if not d:
            break
        got += d
    return got


@pytest.mark.parametrize("where", ["ciphertext", "tag", "header-version"])
def test_a_flipped_byte_gets_bad_record_mac_and_a_close(u, certs, layer, where):
    sock = socket.create_connection((HOST, u.tls), timeout=10)
    try:
        obj, inc, out = mem_handshake(client_ctx(certs, min_version=TLS13), sock)
        # a first request, so that the connection is past the handoff point
        obj.write(build_request("GET", "/echo/ok", host="a.test"))
        sock.sendall(out.read())
        got = b""
        deadline = time.monotonic() + 10
        while b'"path":"/echo/ok"' not in got and time.monotonic() < deadline:
            inc.write(sock.recv(65536))
            try:
                got += obj.read(65536)
            except ssl.SSLWantReadError:
                pass
        assert b'"path":"/echo/ok"' in got
        obj.write(build_request("GET", "/echo/forged", host="a.test"))
        rec = bytearray(out.read())
        at = {"ciphertext": 7, "tag": len(rec) - 1, "header-version": 2}[where]
        rec[at] ^= 0x20
        sock.sendall(rec)
        inc.write(read_until_close(sock, time.monotonic() + 10))
        with pytest.raises(ssl.SSLError) as e:
            obj.read(65536)
        # the legacy version is in the AAD, ignored otherwise (RFC 8446 5.1): usher's
        # tag check fails; OpenSSL refuses the version itself (decode_error)
        want = "DECODE_ERROR" if (layer, where) == ("openssl", "header-version") else "BAD_RECORD_MAC"
        assert want in str(e.value).upper().replace(" ", "_"), e.value
    finally:
        sock.close()
    if layer == "usher":
        assert wait_for(u.proc, re.compile(r"record layer on fd \d+: alert 20 sent"), 10) is not None
    expect_handoffs(u, layer, 1)
    check_alive(u, certs)


# == mTLS after the handoff ============================================================


def test_client_certificate_result_and_subject_survive_the_handoff(start_usher_tls, raw_backend, certs, layer):
    rb = raw_backend()
    u = start_usher_tls([rb.port], "--client-ca", certs.client_ca.cert, "--client-verify", "optional",
                        "--client-verify-header", "X-Client-Verify", "--client-subject-header", "X-Client-Subject",
                        "--log-level", "debug", "--tls-record-layer", layer, *certs.a_ec.args(), listen=("https",))
    for who, cert in (("none", None), ("alice", certs.alice), ("mallory", certs.mallory)):
        with TLSConnection(u.tls, client_ctx(certs, min_version=TLS13, client_cert=cert)) as c:
            for i in range(2):  # the second request reads the values kept at the handoff
                r = c.get("/%s/%d" % (who, i))
                assert r.status == 200, (who, r)
    reqs, probs, _ = rb.requests()
    assert not probs, probs
    got = {q.target.decode(): (q.header_all("x-client-verify"), q.header_all("x-client-subject")) for q in reqs}
    for i in range(2):
        assert got["/none/%d" % i] == ([b"NONE"], []), got
        assert got["/alice/%d" % i] == ([b"SUCCESS"], [certs.alice.subject.encode()]), got
        verify, subject = got["/mallory/%d" % i]
        assert len(verify) == 1 and verify[0].startswith(b"FAILED:") and len(verify[0]) > 7, got
        assert subject == [], got
    expect_handoffs(u, layer, 3)


def test_file_mode_record_layer_per_listener(start_usher_file_tls, backends, certs, layer):
    other = "openssl" if layer == "usher" else "usher"
    text = (
        "threads: 1\n"
        "log: { level: debug }\n"
        "listeners:\n"
        "  - bind: <L0>\n"
        "    pool: web\n"
        "    tls:\n"
        "      certificates: [ { cert: %s, key: %s } ]\n"
        "      record_layer: %s\n"
        "  - bind: <L1>\n"
        "    pool: web\n"
        "    tls:\n"
        "      certificates: [ { cert: %s, key: %s } ]\n"
        "      record_layer: %s\n"
        "pools:\n"
        "  web:\n"
        "    backends: [ \"http://%s:%d\" ]\n"
        % (certs.a_ec.cert, certs.a_ec.key, layer, certs.a_ec.cert, certs.a_ec.key, other, HOST, backends[0].port)
    )
    fu = start_usher_file_tls(text, 2, tls=(0, 1))
    ports = {layer: fu.ports[0], other: fu.ports[1]}

    def served(port):
        for i in range(3):
            with TLSConnection(port, client_ctx(certs, min_version=TLS13)) as c:
                assert c.get("/echo/file%d" % i).status == 200

    n = len(handoffs(fu))  # the readiness probes may have been handed off already
    served(ports["usher"])
    assert wait_for(fu.proc, re.compile(HANDOFF), 10, count=n + 3) is not None, fu.proc.read_log()[-2000:]
    n = len(handoffs(fu))
    served(ports["openssl"])
    # a handoff is logged in the read that takes the request, before the response
    assert len(handoffs(fu)) == n, fu.proc.read_log()[-2000:]
