"""HTTP/2 from clients (issue 12), the functional side: ALPN h2 on TLS
listeners and prior knowledge on plain ones, each stream one exchange with
the HTTP/1.1 backends (RFC 9113 8.3 mapping, cookies joined, connection-
specific fields refused), bodies both ways under flow control, usher's own
answers on the stream, resets, GOAWAY at a stop, the h2.* settings, and
HTTP/1.1 still served on the same ports.

The attacks (Rapid Reset, CONTINUATION and HPACK floods, the glitch budget)
are in their own tests. Clients: curl --http2 / --http2-prior-knowledge,
nghttp (nghttp2-client), and python3-h2 (harness/h2conn.py) for frames.
"""

import os
import re
import signal
import socket
import ssl
import subprocess
import time
import zlib

import pytest

from harness.h2conn import H2Conn
from harness.procs import HOST, free_port
from http_raw import RawHTTPConnection


def wait_for(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()

TOOL_TIMEOUT = 30.0
PROTOCOL_ERROR, CANCEL, NO_ERROR, REFUSED_STREAM = 1, 8, 0, 7


def cert_args(certs):
    return certs.a_ec.args()


@pytest.fixture
def h2_usher(backends, start_usher_tls, certs):
    """usher with a plain and a TLS listener in front of the two demo backends."""
    return start_usher_tls(backends, "--balance", "round-robin", *cert_args(certs))


def tls_ctx(certs, alpn=("h2",)):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(certs.ca_pem)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def run(argv, timeout=TOOL_TIMEOUT):
    p = subprocess.run([str(a) for a in argv], capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def curl(url, *args, certs=None, port=None):
    argv = ["curl", "-sS", "-i", "--noproxy", "*", "--max-time", "20"]
    if certs is not None:
        argv += ["--cacert", certs.ca_pem, "--resolve", "a.test:%d:%s" % (port, HOST)]
    argv += list(args) + ["-w", "\n@@ %{http_code} %{http_version}\n", url]
    rc, out, err = run(argv)
    m = re.search(r"^@@ (\d+) (\S+)$", out, re.M)
    return rc, out, err, (int(m.group(1)), m.group(2)) if m else None


def conn(u, certs, tls, **kw):
    if tls:
        c = H2Conn(u.tls, tls_ctx=tls_ctx(certs), **kw)
        assert c.alpn == "h2"
        return c
    return H2Conn(u.plain, **kw)


def echo(stream):
    import json

    return json.loads(bytes(stream.data))


# -- choosing HTTP/2 -------------------------------------------------------------------


def test_curl_http2_over_tls_by_alpn(h2_usher, certs):
    rc, out, err, got = curl("https://a.test:%d/" % h2_usher.tls, "--http2", certs=certs, port=h2_usher.tls)
    assert rc == 0, err
    assert got == (200, "2"), out
    assert re.search(r"^HTTP/2 200", out, re.M), out
    assert re.search(r"^x-backend: backend[12]\r?$", out, re.M), out


def test_curl_http2_prior_knowledge_on_a_plain_listener(h2_usher):
    rc, out, err, got = curl("http://127.0.0.1:%d/" % h2_usher.plain, "--http2-prior-knowledge")
    assert rc == 0, err
    assert got == (200, "2"), out
    assert re.search(r'"message":"Hello from backend[12]"', out), out


def test_nghttp_sees_usher_settings_and_a_response(h2_usher):
    rc, out, err = run(["nghttp", "-nv", "-t", "20", "http://127.0.0.1:%d/" % h2_usher.plain])
    assert rc == 0, err + out
    assert "[SETTINGS_MAX_CONCURRENT_STREAMS(0x03):100]" in out, out
    assert "[SETTINGS_INITIAL_WINDOW_SIZE(0x04):65535]" in out, out
    assert "[SETTINGS_MAX_HEADER_LIST_SIZE(0x06):65536]" in out, out
    # nghttp opens idle streams 3..11 for priorities, then its request
    assert re.search(r"recv \(stream_id=\d+\) :status: 200", out), out
    assert re.search(r"recv DATA frame <length=\d+, flags=0x01, stream_id=\d+>", out), out


def test_http11_still_served_on_both_ports(h2_usher, certs):
    with RawHTTPConnection(HOST, h2_usher.plain) as c:
        r = c.roundtrip("GET", "/", host="a.test")
        assert r.status == 200 and r.version == "HTTP/1.1", r
    # a TLS client that offers only http/1.1, or nothing, gets HTTP/1.1
    for alpn in (("http/1.1",), None):
        s = tls_ctx(certs, alpn=alpn).wrap_socket(socket.create_connection((HOST, h2_usher.tls), timeout=10),
                                                  server_hostname="a.test")
        with s:
            assert s.selected_alpn_protocol() == (alpn[0] if alpn else None)
            s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
        assert data.startswith(b"HTTP/1.1 200 "), data[:200]


def test_curl_http11_when_asked(h2_usher, certs):
    rc, out, err, got = curl("https://a.test:%d/" % h2_usher.tls, "--http1.1", certs=certs, port=h2_usher.tls)
    assert rc == 0, err
    assert got == (200, "1.1"), out


# -- requests and responses ---------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["prior-knowledge", "tls"])
def test_get_and_posts_with_checksums(h2_usher, certs, tls):
    body = os.urandom(300_000)
    with conn(h2_usher, certs, tls) as c:
        g = c.request("GET", "/")
        p1 = c.request("POST", "/echo", [("content-length", str(len(body)))], body=body)
        p2 = c.request("POST", "/echo/nolength", body=body)  # no content-length: chunked upstream
        d = c.request("GET", "/bytes?n=2000000&chunked=1")
        c.wait_ended(g, p1, p2, d)
        s = c.streams
        assert s[g].status == 200 and s[g].header("x-backend") in ("backend1", "backend2"), vars(s[g])
        for sid, chunked in ((p1, False), (p2, True)):
            e = echo(s[sid])
            assert s[sid].status == 200, vars(s[sid])
            assert e["body_length"] == len(body), e
            assert e["body_crc32"] == "%08x" % zlib.crc32(body), e
            assert e["chunked"] is chunked, e
            assert e["version"] == "1.1"
            proto = [v for k, v in e["headers"] if k.lower() == "x-forwarded-proto"]
            assert proto == ["https" if tls else "http"], e["headers"]
        assert s[d].status == 200
        assert len(s[d].data) == 2_000_000
        assert "%08x" % zlib.crc32(bytes(s[d].data)) == s[d].header("x-body-crc32"), s[d].headers
        # hop-by-hop fields never reach an HTTP/2 client
        for st in s.values():
            names = [k for k, _ in st.headers]
            assert not {"connection", "transfer-encoding", "keep-alive"} & set(names), names
            assert all(k == k.lower() for k in names), names


def test_head_and_204_have_no_data(h2_usher):
    with H2Conn(h2_usher.plain) as c:
        h = c.request("HEAD", "/bytes?n=5000")
        n = c.request("GET", "/status/204")
        c.wait_ended(h, n)
        for sid, status in ((h, 200), (n, 204)):
            st = c.streams[sid]
            assert st.status == status, vars(st)
            assert st.headers_end_stream, vars(st)  # END_STREAM on the HEADERS frame
            assert st.data_frames == 0 and not st.data, vars(st)
        assert c.streams[h].header("content-length") == "5000"


def test_no_backend_is_usher_503_as_json_on_the_stream(start_usher_tls, certs):
    dead = free_port()
    u = start_usher_tls([dead], *cert_args(certs))
    with conn(u, certs, True) as c:
        sid = c.request("GET", "/")
        c.wait_ended(sid)
        st = c.streams[sid]
        assert st.status == 503, vars(st)
        assert st.header("content-type") == "application/json"
        assert bytes(st.data) == b'{"error":"No healthy backends"}'
        assert st.header("content-length") == str(len(st.data))
        # the connection goes on
        again = c.request("GET", "/")
        c.wait_ended(again)
        assert c.streams[again].status == 503


def test_100_streams_in_parallel_over_two_backends(h2_usher):
    with H2Conn(h2_usher.plain) as c:
        assert c.settings()[3] == 100  # SETTINGS_MAX_CONCURRENT_STREAMS
        sids = [c.request("GET", "/echo/%d" % i) for i in range(100)]
        c.wait_ended(*sids, timeout=60)
        seen = {}
        for i, sid in enumerate(sids):
            st = c.streams[sid]
            assert st.status == 200 and st.reset is None, vars(st)
            e = echo(st)
            assert e["path"] == "/echo/%d" % i, e
            seen[st.header("x-backend")] = seen.get(st.header("x-backend"), 0) + 1
        assert set(seen) == {"backend1", "backend2"}, seen
        assert abs(seen["backend1"] - seen["backend2"]) <= 2, seen  # round robin


def test_connection_specific_fields_are_a_stream_error(h2_usher):
    with H2Conn(h2_usher.plain) as c:
        bad = [("connection", "keep-alive"), ("transfer-encoding", "chunked"), ("upgrade", "websocket"),
               ("te", "gzip"), ("X-Upper", "1")]
        sids = [c.request("GET", "/", [f]) for f in bad]
        c.wait_ended(*sids)
        for f, sid in zip(bad, sids):
            st = c.streams[sid]
            assert st.reset == PROTOCOL_ERROR and st.status is None, (f, vars(st))
        # the connection itself is fine, and te: trailers is allowed
        ok = c.request("GET", "/", [("te", "trailers")])
        c.wait_ended(ok)
        assert c.streams[ok].status == 200
        assert not c.goaway


def test_cookies_joined_host_from_authority_and_trailers_up(raw_backend, start_usher):
    be = raw_backend()
    u = start_usher([be])
    with H2Conn(u.port) as c:
        a = c.request("GET", "/c?x=1", [("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2"), ("cookie", "c=3")],
                      authority="shop.example:8443")
        c.wait_ended(a)
        assert c.streams[a].status == 200
        t = c.request("POST", "/t", [("te", "trailers")], end=False)
        c.send_body(t, b"hello ", end=False)
        c.send_body(t, b"world", end=False)
        c.trailers(t, [("x-sum", "abc")])
        c.wait_ended(t)
        assert c.streams[t].status == 200, vars(c.streams[t])
    assert be.wait_requests(2)
    reqs, probs, _ = be.requests()
    assert not probs, probs
    q = reqs[0]
    assert (q.method, q.target, q.version) == (b"GET", b"/c?x=1", b"HTTP/1.1"), q
    assert q.header_all("cookie") == [b"a=1; b=2; c=3"], q.headers
    assert q.header_all("host") == [b"shop.example:8443"], q.headers
    assert q.header_all("x-forwarded-host") == [b"shop.example:8443"], q.headers
    assert q.header_all("te") == [], q.headers
    t = reqs[1]
    assert t.header_all("transfer-encoding") == [b"chunked"], t.headers
    assert t.body == b"hello world", t
    assert b"\r\n0\r\nx-sum: abc\r\n\r\n" in t.raw, t.raw


def test_client_flow_control_pauses_the_response_then_it_resumes(h2_usher):
    size = 3_000_000
    with H2Conn(h2_usher.plain, settings={4: 1000}, auto_ack=False) as c:  # INITIAL_WINDOW_SIZE 1000
        sid = c.request("GET", "/bytes?n=%d" % size)
        c.pump(lambda: len(c.streams[sid].data) >= 1000, timeout=20)
        time.sleep(1.0)  # usher cannot send more without a WINDOW_UPDATE
        c.pump(lambda: False, timeout=0.5)
        st = c.streams[sid]
        assert st.status == 200 and len(st.data) == 1000 and not st.ended, (st.status, len(st.data))
        # the connection window (65535) is what limits now: open both
        c.auto_ack = True
        c.conn.increment_flow_control_window(size, stream_id=sid)
        c.conn.increment_flow_control_window(size)
        c.flush()
        c.wait_ended(sid, timeout=60)
        assert len(st.data) == size and "%08x" % zlib.crc32(bytes(st.data)) == st.header("x-body-crc32")


def test_usher_window_is_h2_initial_window_size(start_usher_file, backends):
    u = start_usher_file(
        "listeners:\n  - bind: <L0>\n    pool: web\n"
        "pools:\n  web:\n    backends: [%s]\n"
        "h2:\n  initial_window_size: 16384\n  max_concurrent_streams: 7\n  max_header_list_size: 8192\n"
        % backends[0].url
    )
    body = os.urandom(200_000)
    with H2Conn(u.ports[0]) as c:
        s = c.settings()
        assert (s.get(4), s.get(3), s.get(6)) == (16384, 7, 8192), s
        sid = c.request("POST", "/echo", body=body)  # only as the backend takes it
        c.wait_ended(sid)
        assert echo(c.streams[sid])["body_crc32"] == "%08x" % zlib.crc32(body)


def test_client_reset_mid_response_frees_stream_and_backend_connection(raw_backend, start_usher):
    # the backend promises a large body, sends a part and then waits
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n"
    be = raw_backend(respond=lambda req: ((head + b"x" * 50000) if req.target == b"/big" else
                                          b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "hold"
                                          if req.target == b"/big" else "keep"))
    u = start_usher([be])
    with H2Conn(u.port) as c:
        sid = c.request("GET", "/big")
        c.pump(lambda: len(c.streams[sid].data) > 0)
        c.reset(sid, CANCEL)
        # usher closes the backend connection that carried the stream
        assert wait_for(lambda: 1 in be.closed_by_peer, timeout=10), be.closed_by_peer
        nxt = c.request("GET", "/small")
        c.wait_ended(nxt)
        assert c.streams[nxt].status == 200 and bytes(c.streams[nxt].data) == b"ok"
        assert not c.goaway


def test_sigterm_sends_goaway_and_the_stream_in_flight_finishes(backends, start_usher):
    u = start_usher(backends, "--balance", "round-robin")
    with H2Conn(u.port) as c:
        c.settings()
        sid = c.request("GET", "/slow?ms=1500")
        time.sleep(0.3)  # the request is at the backend
        os.kill(u.proc.pid, signal.SIGTERM)
        c.wait_ended(sid, timeout=30)
        st = c.streams[sid]
        assert st.status == 200 and st.reset is None, vars(st)
        c.pump(lambda: c.closed, timeout=15)
    # the first GOAWAY (a shutdown notice) names the largest id, the last one stream 1
    assert c.goaway == [(NO_ERROR, 2**31 - 1), (NO_ERROR, sid)], c.goaway
    assert u.proc.wait_exit(30) == 0


def test_goaway_frames_at_stop_seen_raw(backends, start_usher):
    """The double GOAWAY, frame by frame (python-h2 stops at the first)."""
    from hyperframe.frame import Frame, GoAwayFrame

    u = start_usher(backends)
    c = H2Conn(u.port)
    sid = c.request("GET", "/slow?ms=1200")
    c.settings()
    time.sleep(0.2)
    os.kill(u.proc.pid, signal.SIGTERM)
    buf, frames, deadline = b"", [], time.monotonic() + 30
    c.sock.settimeout(1.0)
    while time.monotonic() < deadline:
        try:
            d = c.sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            break
        if not d:
            break
        buf += d
        while len(buf) >= 9:
            f, length = Frame.parse_frame_header(memoryview(buf[:9]))
            if len(buf) < 9 + length:
                break
            f.parse_body(memoryview(buf[9 : 9 + length]))
            frames.append(f)
            buf = buf[9 + length :]
    c.close()
    goaways = [(f.error_code, f.last_stream_id) for f in frames if isinstance(f, GoAwayFrame)]
    assert goaways == [(NO_ERROR, 2**31 - 1), (NO_ERROR, sid)], goaways
    ends = [f for f in frames if f.stream_id == sid and "END_STREAM" in f.flags]
    assert ends, frames  # the response in flight ended normally
    assert u.proc.wait_exit(30) == 0


def test_max_total_streams_then_goaway(start_usher_file, backends):
    u = start_usher_file(
        "listeners:\n  - bind: <L0>\n    pool: web\n"
        "pools:\n  web:\n    backends: [%s]\n"
        "h2:\n  max_total_streams: 3\n" % backends[0].url
    )
    with H2Conn(u.ports[0]) as c:
        sids = [c.request("GET", "/") for _ in range(3)]
        c.wait_ended(*sids)
        assert all(c.streams[s].status == 200 for s in sids)
        c.pump(lambda: c.goaway, timeout=10)
        assert c.goaway == [(NO_ERROR, sids[-1])], c.goaway


def test_access_log_shows_http2(backends, start_usher, tmp_path):
    log = tmp_path / "access.log"
    u = start_usher(backends, "--access-log", str(log))
    with H2Conn(u.port) as c:
        sid = c.request("GET", "/bytes?n=123", [("user-agent", "h2-test")])
        c.wait_ended(sid)
        r = c.request("GET", "/none", [("connection", "close")])  # refused: not a request
        c.wait_ended(r)
    assert wait_for(lambda: log.exists() and "h2-test" in log.read_text(), timeout=10)
    lines = [line for line in log.read_text().splitlines() if "h2-test" in line]
    assert len(lines) == 1 and '"GET /bytes?n=123 HTTP/2.0" 200 123 ' in lines[0], lines


@pytest.mark.parametrize("key,value", [("max_concurrent_streams", "0"), ("initial_window_size", "100"),
                                       ("max_header_frames", "x"), ("max_header_list_size", "99999999")])
def test_bad_h2_settings_are_refused_with_file_and_line(run_usher, tmp_path, key, value):
    p = tmp_path / "bad.yaml"
    p.write_text("listeners:\n  - bind: 127.0.0.1:1\n    pool: web\npools:\n  web:\n    backends: [http://127.0.0.1:2]\n"
                 "h2:\n  %s: %s\n" % (key, value))
    r = run_usher("-t", "-c", str(p))
    assert r.returncode != 0
    assert re.search(r"bad\.yaml:8:\d+: .*", r.stderr.decode()), r.stderr


def test_interim_103_passes_as_headers_before_the_final_response(h2_usher):
    with H2Conn(h2_usher.plain) as c:
        sid = c.request("GET", "/early-hints")
        c.wait_ended(sid)
        st = c.streams[sid]
        assert st.status == 200, vars(st)
        assert [dict(h).get(":status") for h in st.interim] == ["103"], st.interim


def test_body_limit_413_with_length_and_without(start_usher_file, backends):
    u = start_usher_file(
        "listeners:\n  - bind: <L0>\n    pool: web\n"
        "pools:\n  web:\n    backends: [%s]\n"
        "limits:\n  max_body_size: 1000\n" % backends[0].url
    )
    with H2Conn(u.ports[0]) as c:
        a = c.request("POST", "/echo", [("content-length", "5000")], end=False)
        c.wait_ended(a)
        assert c.streams[a].status == 413, vars(c.streams[a])
        b = c.request("POST", "/echo", end=False)  # no length: counted as it comes
        c.send_body(b, os.urandom(3000), end=True)
        c.wait_ended(b)
        assert c.streams[b].status == 413, vars(c.streams[b])
        ok = c.request("POST", "/echo", body=b"x" * 1000)
        c.wait_ended(ok)
        assert c.streams[ok].status == 200 and echo(c.streams[ok])["body_length"] == 1000


def pool_file(url, listeners=1):
    text = "listeners:\n"
    for i in range(listeners):
        text += "  - bind: <L%d>\n    pool: web\n" % i
    return text + "pools:\n  web:\n    backends: [%s]\n" % url


def test_reload_moves_an_idle_h2_connection_to_the_new_pool(start_usher_file, start_backend):
    b1, b2 = start_backend("r1"), start_backend("r2")
    u = start_usher_file(pool_file(b1.url))
    with H2Conn(u.ports[0]) as c:
        a = c.request("GET", "/")
        c.wait_ended(a)
        assert c.streams[a].header("x-backend") == "r1"
        u.reload(pool_file(b2.url))
        b = c.request("GET", "/")
        c.wait_ended(b)
        assert c.streams[b].status == 200 and c.streams[b].header("x-backend") == "r2", vars(c.streams[b])
        assert not c.goaway


def test_reload_that_removes_the_listener_sends_goaway(start_usher_file, start_backend):
    b1 = start_backend("g1")
    u = start_usher_file(pool_file(b1.url, listeners=2), 2)
    with H2Conn(u.ports[1]) as c:
        sid = c.request("GET", "/slow?ms=1500")
        time.sleep(0.3)
        text = pool_file(b1.url).replace("<L0>", "<L0>")
        u.reload(text)  # listener 1 is gone
        c.wait_ended(sid, timeout=30)
        assert c.streams[sid].status == 200, vars(c.streams[sid])
        c.pump(lambda: c.closed, timeout=15)
        assert c.goaway == [(NO_ERROR, 2**31 - 1), (NO_ERROR, sid)], c.goaway


def test_backend_trailers_become_a_trailing_headers_frame(raw_backend, start_usher):
    body = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n"
            b"5;ext=abcdef\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42 \r\nkeep-alive: no\r\n\r\n")
    plain = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    be = raw_backend(respond=lambda req: body if req.target == b"/t" else plain)
    u = start_usher([be])
    with H2Conn(u.port) as c:
        t = c.request("GET", "/t")
        p = c.request("GET", "/p")
        c.wait_ended(t, p)
        st = c.streams[t]
        assert st.status == 200 and bytes(st.data) == b"hello world", vars(st)
        assert st.trailers == [("x-sum", "42")], st.trailers
        assert ("trailer", "x-sum") in st.headers and not any(k == "transfer-encoding" for k, _ in st.headers)
        q = c.streams[p]
        assert bytes(q.data) == b"abc" and q.trailers is None, vars(q)


ENHANCE_YOUR_CALM = 11


@pytest.mark.parametrize("kind", ["ping", "rapid-reset"])
def test_glitches_past_the_threshold_end_the_connection(start_usher_file, backends, kind):
    u = start_usher_file(
        "listeners:\n  - bind: <L0>\n    pool: web\n"
        "pools:\n  web:\n    backends: [%s]\n"
        "h2:\n  glitches_threshold: 50\n" % backends[0].url
    )
    with H2Conn(u.ports[0]) as c:
        c.settings()
        for i in range(300 if kind == "ping" else 60):
            if kind == "ping":
                c.conn.ping(b"%08d" % i)
            else:
                sid = c.request("GET", "/slow?ms=500")
                c.conn.reset_stream(sid, error_code=CANCEL)
            c.flush()
            if c.goaway:
                break
        c.pump(lambda: c.goaway, timeout=15)
        assert c.goaway and c.goaway[0][0] == ENHANCE_YOUR_CALM, c.goaway
        c.pump(lambda: c.closed, timeout=15)
        assert c.closed
    # another connection is served
    with H2Conn(u.ports[0]) as c2:
        sid = c2.request("GET", "/")
        c2.wait_ended(sid)
        assert c2.streams[sid].status == 200


def test_mtls_headers_and_hsts_over_h2_as_over_http1(start_usher_tls, raw_backend, certs):
    rb = raw_backend()
    u = start_usher_tls([rb.port], "--client-ca", certs.client_ca.cert, "--client-verify", "optional",
                        "--client-verify-header", "X-Client-Verify", "--client-subject-header", "X-Client-Subject",
                        "--hsts-max-age", 600, *cert_args(certs), listen=("https",))
    ctx = tls_ctx(certs)
    ctx.load_cert_chain(certs.alice.cert, certs.alice.key)
    with H2Conn(u.tls, tls_ctx=ctx) as c:
        assert c.alpn == "h2"
        sid = c.request("GET", "/alice", [("x-client-verify", "SUCCESS"), ("x-client-subject", "CN=admin")])
        c.wait_ended(sid)
        st = c.streams[sid]
        assert st.status == 200, vars(st)
        assert st.header("strict-transport-security") == "max-age=600", st.headers
    reqs, probs, _ = rb.requests()
    assert not probs and len(reqs) == 1, (reqs, probs)
    q = reqs[0]
    assert q.header_all("x-client-verify") == [b"SUCCESS"], q.raw
    assert q.header_all("x-client-subject") == [certs.alice.subject.encode()], q.raw
    assert q.header_all("x-forwarded-proto") == [b"https"], q.raw


def test_a_stream_is_retried_on_the_next_backend_with_its_body(raw_backend, start_usher):
    # the first backend takes the request and closes without an answer
    bad = raw_backend(respond=lambda req: (b"", "close"))
    good = raw_backend()
    u = start_usher([bad, good], "--balance", "round-robin")
    body = os.urandom(5000)
    with H2Conn(u.port) as c:
        sids = [c.request("PUT", "/r%d" % i, [("content-length", str(len(body)))], body=body) for i in range(2)]
        c.wait_ended(*sids)
        for sid in sids:
            assert c.streams[sid].status == 200, vars(c.streams[sid])
    tried, _, _ = bad.requests()
    assert tried and all(q.body == body for q in tried), tried  # it had the whole request
    reqs, probs, _ = good.requests()
    assert not probs, probs
    assert sorted(q.target for q in reqs) == [b"/r0", b"/r1"], reqs
    assert all(q.body == body for q in reqs), [len(q.body) for q in reqs]


def ws_frame(payload, opcode=1):
    mask = os.urandom(4)
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@pytest.mark.parametrize("tls", [False, True], ids=["prior-knowledge", "tls"])
def test_websocket_over_h2_extended_connect(h2_usher, certs, tls):
    """RFC 8441: CONNECT with :protocol websocket on a stream is an HTTP/1.1
    upgrade to the backend (usher makes the Sec-WebSocket-Key); the backend's
    101 is a 200 on the stream, then the stream is the tunnel both ways."""
    with conn(h2_usher, certs, tls) as c:
        assert c.settings().get(8) == 1  # SETTINGS_ENABLE_CONNECT_PROTOCOL
        sid = c.request("CONNECT", "/ws", [(":protocol", "websocket"), ("sec-websocket-version", "13")], end=False)
        c.pump(lambda: c.streams[sid].status is not None or c.streams[sid].reset is not None)
        st = c.streams[sid]
        assert st.status == 200 and not st.ended, vars(st)
        assert st.header("sec-websocket-accept") is None and st.header("upgrade") is None, st.headers
        c.conn.send_data(sid, ws_frame(b"hello over h2"))
        c.flush()
        c.pump(lambda: len(st.data) >= 15)
        assert bytes(st.data[:15]) == bytes([0x81, 13]) + b"hello over h2", bytes(st.data)
        # a close frame, then the client's END_STREAM: the backend closes, the stream ends
        c.conn.send_data(sid, ws_frame(b"\x03\xe8", opcode=8), end_stream=True)
        c.flush()
        c.wait_ended(sid)
        assert st.ended and st.reset is None, vars(st)
        # the connection goes on
        g = c.request("GET", "/")
        c.wait_ended(g)
        assert c.streams[g].status == 200


# -- protocols: auto, http1, h2 -------------------------------------------------------------


def read_frames(sock, timeout=10):
    """Frames from sock until it closes (or timeout): [(type, flags, stream, payload)]."""
    sock.settimeout(timeout)
    buf, end = b"", time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            d = sock.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not d:
            break
        buf += d
    frames = []
    while len(buf) >= 9:
        n = int.from_bytes(buf[:3], "big")
        frames.append((buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF, buf[9 : 9 + n]))
        buf = buf[9 + n :]
    return frames, buf


def test_protocols_h2_closes_a_connection_without_the_preface_with_goaway(backends, start_usher_tls, certs):
    u = start_usher_tls(backends, "--protocols", "h2", *cert_args(certs))
    with socket.create_connection((HOST, u.plain), timeout=10) as s:
        s.sendall(b"INVALID CONNECTION PREFACE\r\n\r\n")
        frames, rest = read_frames(s)
    goaways = [f for f in frames if f[0] == 7]
    assert goaways, (frames, rest)
    assert int.from_bytes(goaways[-1][3][4:8], "big") == PROTOCOL_ERROR, goaways
    assert b"HTTP/1" not in rest and not any(b"HTTP/1" in f[3] for f in frames)
    # HTTP/2 clients are served; TLS offers only h2
    with H2Conn(u.plain) as c:
        sid = c.request("GET", "/")
        c.wait_ended(sid)
        assert c.streams[sid].status == 200
    s = tls_ctx(certs, alpn=("http/1.1", "h2")).wrap_socket(socket.create_connection((HOST, u.tls), timeout=10),
                                                           server_hostname="a.test")
    with s:
        assert s.selected_alpn_protocol() == "h2"
    s = tls_ctx(certs, alpn=("http/1.1",)).wrap_socket(socket.create_connection((HOST, u.tls), timeout=10),
                                                      server_hostname="a.test")
    with s:
        assert s.selected_alpn_protocol() is None


def test_protocols_http1_never_speaks_http2(backends, start_usher_tls, certs):
    u = start_usher_tls(backends, "--protocols", "http1", *cert_args(certs))
    s = tls_ctx(certs, alpn=("h2", "http/1.1")).wrap_socket(socket.create_connection((HOST, u.tls), timeout=10),
                                                           server_hostname="a.test")
    with s:
        assert s.selected_alpn_protocol() == "http/1.1"
    # the preface on the plain port is an HTTP/1 request of version 2.0
    with socket.create_connection((HOST, u.plain), timeout=10) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        s.settimeout(10)
        data = s.recv(4096)
    assert data.startswith(b"HTTP/1.1 505 "), data[:100]
