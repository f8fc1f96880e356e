"""Failures: no backend reachable (503), one backend down (fail over),
malformed requests (400, never forwarded), and command-line errors."""

import json
import re
import signal
import subprocess
import zlib

import pytest

from harness.procs import free_port, unused_ports
from http_raw import PeerClosed, get_once

N = 20
NO_BACKENDS = {"error": "No healthy backends"}


def is_json_type(resp_ct):
    return (resp_ct or "").split(";")[0].strip().lower() == "application/json"


# -- no backend ----------------------------------------------------------------


def test_503_when_no_backend_listens(start_usher):
    u = start_usher(unused_ports(2))
    for _ in range(3):
        r = get_once(u.port, "GET", "/")
        assert r.status == 503, r
        assert is_json_type(r.header("Content-Type")), r.headers
        assert json.loads(r.body) == NO_BACKENDS, r.body
    # Over one keep-alive connection too, with a request body.
    with u.raw() as c:
        for i in range(3):
            r = c.roundtrip("POST", "/echo/%d" % i, body=b"x" * 1000)
            assert r.status == 503, r
            assert is_json_type(r.header("Content-Type")), r.headers
            assert json.loads(r.body) == NO_BACKENDS, r.body
            if r.has_token("Connection", "close"):
                break


# -- one backend down ------------------------------------------------------------


@pytest.mark.parametrize("dead_first", [True, False], ids=["dead-first", "dead-second"])
def test_fail_over_to_live_backend(start_backend, start_usher, dead_first):
    live = start_backend("backend1")
    dead = unused_ports(1)[0]
    order = [dead, live] if dead_first else [live, dead]
    u = start_usher(order, "--balance", "round-robin")
    # New connection per request.
    for i in range(N):
        r = get_once(u.port, "GET", "/echo/fo%d" % i)
        assert r.status == 200, "request %d: %r" % (i, r)
        assert r.header("X-Backend") == "backend1"
    # Keep-alive, with bodies that must reach the live backend intact.
    with u.raw() as c:
        for i in range(N):
            body = (b"body %d " % i) * 100
            r = c.roundtrip("POST", "/echo/fo-post%d" % i, body=body)
            assert r.status == 200, "request %d: %r" % (i, r)
            assert r.header("X-Backend") == "backend1"
            j = r.json()
            assert j["body_length"] == len(body)
            assert j["body_crc32"] == "%08x" % (zlib.crc32(body) & 0xFFFFFFFF)


def test_backend_stopping_while_running(start_backend, start_usher):
    b1, b2 = start_backend("backend1"), start_backend("backend2")
    u = start_usher([b1, b2], "--balance", "round-robin")
    with u.client() as c:
        seen = {c.get("/echo/warm").headers["x-backend"] for _ in range(4)}
        assert seen == {"backend1", "backend2"}
        b2.proc.stop()
        for i in range(N):
            r = c.get("/echo/after-stop-%d" % i)
            assert r.status_code == 200, "request %d after backend2 stopped: %d %s" % (i, r.status_code, r.text)
            assert r.headers["x-backend"] == "backend1"


# -- malformed requests -----------------------------------------------------------

MALFORMED = {
    "header-without-colon": b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    "space-before-colon": b"GET / HTTP/1.1\r\nHost: x\r\nX-Bad : v\r\n\r\n",
    "content-length-not-a-number": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "content-length-negative": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "content-length-conflicting": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "bad-request-line": b"GET /echo HTTP/1.1 extra\r\nHost: x\r\n\r\n",
    # RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request without
    # Host or with more than one Host.
    "missing-host": b"GET /echo HTTP/1.1\r\nX-A: b\r\n\r\n",
    "duplicate-host": b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    # RFC 9112 6.3: chunked not the final coding of a request: MUST 400.
    "transfer-encoding-not-chunked": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc",
    "bad-chunk-size": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("raw", list(MALFORMED.values()), ids=list(MALFORMED.keys()))
def test_malformed_request_gets_400_and_is_not_forwarded(backends, usher, raw):
    for b in backends:
        b.reset_stats()
    with usher.raw() as c:
        c.send(raw)
        r = c.read_response()
    assert r.status == 400, r
    assert is_json_type(r.header("Content-Type")), r.headers
    json.loads(r.body)  # a JSON body
    if b"zz" not in raw:  # a bad chunk may only be seen after the head went on
        for b in backends:
            assert b.stats()["requests"] == 0, "malformed request reached %s" % b.name
    # usher still serves others.
    with usher.client() as c:
        assert c.get("/echo/ok").status_code == 200


def test_content_length_with_transfer_encoding(backends, usher):
    """Request smuggling guard (RFC 9112 6.1): a request with both
    Content-Length and Transfer-Encoding is either rejected with 400, or
    forwarded framed by chunked alone (no Content-Length upstream); either
    way usher closes the client connection afterwards."""
    smuggled = b"GET /echo/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = (
        b"POST /echo/outer HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n" + smuggled
    )
    for b in backends:
        b.reset_stats()
    with usher.raw() as c:
        c.send(raw)
        r = c.read_response()
        assert r.status in (200, 400), r
        if r.status == 400:
            assert r.header("X-Backend") is None, "the 400 came from the backend: usher forwarded the request: %r" % r
        if r.status == 200:
            j = r.json()
            assert j["path"] == "/echo/outer"
            assert j["body_length"] == 5 and j["body_crc32"] == "%08x" % zlib.crc32(b"hello")
            names = [k.lower() for k, _ in j["headers"]]
            assert "content-length" not in names or "transfer-encoding" not in names, j["headers"]
        if r.framing != "close":
            assert c.wait_closed(10), "connection kept open after a request with both Content-Length and Transfer-Encoding"
    total = sum(b.stats()["requests"] for b in backends)
    assert total == (1 if r.status == 200 else 0), "the trailing request was processed"


# -- misbehaving backend ----------------------------------------------------------------


# A backend that answers garbage or hangs up gets the client a 5xx gateway
# error at once (502 Bad Gateway; 503 accepted as usher's "no healthy
# backend" answer), never a hang, a forwarded garbage or a dropped connection.
GATEWAY_ERRORS = (502, 503)


def test_backend_garbage_response_gives_5xx(capture, start_usher):
    cb = capture()
    u = start_usher([cb.port])
    with u.raw() as c:
        r = c.roundtrip("GET", "/garbage")
    assert r.status in GATEWAY_ERRORS, r
    assert b"not HTTP" not in r.body
    # usher still works with the same backend.
    with u.raw() as c:
        r = c.roundtrip("GET", "/fine")
        assert r.status == 200 and r.body == b"ok", r


def test_backend_hangup_without_response_gives_5xx(capture, start_usher):
    cb = capture()
    u = start_usher([cb.port])
    with u.raw() as c:
        r = c.roundtrip("GET", "/hangup")
    assert r.status in GATEWAY_ERRORS, r
    with u.raw() as c:
        r = c.roundtrip("GET", "/fine")
        assert r.status == 200 and r.body == b"ok", r


def test_backend_truncated_response_is_not_completed(capture, start_usher):
    """The backend promises 100 bytes, sends 10 and closes. The client must
    not receive a response that looks complete, and must not be left
    waiting: usher answers 502 (if it had sent nothing yet) or closes the
    client connection."""
    cb = capture()
    u = start_usher([cb.port])
    with u.raw() as c:
        c.request("GET", "/truncate")
        head = c.read_head()
        if head.status in GATEWAY_ERRORS:
            c.read_body(head)
        else:
            assert head.status == 200, head
            assert head.header("Content-Length") == "100" or head.header("Transfer-Encoding")
            try:
                c.read_body(head)
            except PeerClosed:
                pass  # what we expect: the connection closes early
            else:
                raise AssertionError("truncated upstream body delivered as complete: %r" % head)
    with u.raw() as c:
        r = c.roundtrip("GET", "/fine")
        assert r.status == 200 and r.body == b"ok", r


# -- client going away ----------------------------------------------------------------------


def test_client_disconnect_mid_download(usher):
    for _ in range(3):
        c = usher.raw()
        try:
            c.request("GET", "/bytes?n=%d" % (64 << 20))
            head = c.read_head()
            assert head.status == 200
            c.read_exact(1 << 20)
        finally:
            c.close()
    with usher.client() as h:
        for i in range(6):
            r = h.get("/bytes?n=1000")
            assert r.status_code == 200 and len(r.content) == 1000


def test_client_disconnect_mid_upload(usher):
    for _ in range(3):
        c = usher.raw()
        try:
            c.request("POST", "/echo/up", [("Content-Length", str(64 << 20))])
            c.send(b"u" * (1 << 20))
        finally:
            c.close()
    with usher.client() as h:
        for i in range(6):
            r = h.post("/echo/after", content=b"abc")
            assert r.status_code == 200 and r.json()["body_length"] == 3


# -- command line ---------------------------------------------------------------------

FLAGS = ["--listen", "--backend", "--balance", "--threads", "--health-path", "--health-interval", "--help", "--version"]


def test_help(run_usher):
    p = run_usher("--help")
    assert p.returncode == 0, p
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    for flag in FLAGS:
        assert flag in out, "--help does not mention %s:\n%s" % (flag, out)
    for short in ("-t", "-c"):
        assert re.search(r"(?<![\w-])%s\b" % short, out), "--help does not mention %s:\n%s" % (short, out)


def test_version(run_usher):
    p = run_usher("--version")
    assert p.returncode == 0, p
    assert re.search(r"^usher \d+\.\d+\.\d+\s*$", p.stdout.decode(), re.M), p.stdout


BAD = [
    "unknown-flag",
    "balance-nope",
    "listen-nonsense",
    "listen-port-out-of-range",
    "threads-zero",
    "threads-not-a-number",
    "backend-not-http",
    "backend-garbage",
    "health-interval-garbage",
    "missing-value",
]


def bad_args(case):
    listen = "127.0.0.1:%d" % free_port()
    backend = "http://127.0.0.1:%d" % unused_ports(1)[0]
    ok = ["--listen", listen, "--backend", backend]
    cases = {
        "unknown-flag": ok + ["--frobnicate"],
        "balance-nope": ok + ["--balance", "nope"],
        "listen-nonsense": ["--listen", "nonsense", "--backend", backend],
        "listen-port-out-of-range": ["--listen", "127.0.0.1:99999", "--backend", backend],
        "threads-zero": ok + ["--threads", "0"],
        "threads-not-a-number": ok + ["--threads", "abc"],
        "backend-not-http": ["--listen", listen, "--backend", "ftp://127.0.0.1:21"],
        "backend-garbage": ["--listen", listen, "--backend", "not a url"],
        "health-interval-garbage": ok + ["--health-interval", "soon"],
        "missing-value": ok + ["--threads"],
    }
    return cases[case]


@pytest.mark.parametrize("case", BAD)
def test_bad_command_line_exits_2(run_usher, case):
    args = bad_args(case)
    p = run_usher(*args)
    assert p.returncode == 2, "usher %s exited %r (stderr %r)" % (" ".join(args), p.returncode, p.stderr)
    assert p.stderr.strip(), "no message on stderr for usher %s" % " ".join(args)


# -- shutdown ---------------------------------------------------------------------------


def test_sigterm_stops_usher_after_traffic(backends, start_usher):
    """After serving keep-alive clients and clients that close their
    connection, with one idle client connection still open, usher exits
    promptly on SIGTERM."""
    u = start_usher(backends, "--threads", "2")
    with u.client() as c:
        for i in range(4):
            assert c.get("/echo/k%d" % i).status_code == 200
    for i in range(4):
        with u.raw() as c:
            assert c.roundtrip("GET", "/echo/c%d" % i).status == 200
    idle = u.raw()  # an idle client connection left open
    try:
        assert idle.roundtrip("GET", "/echo/idle").status == 200
        u.proc.proc.send_signal(signal.SIGTERM)
        try:
            u.proc.proc.wait(10)
        except subprocess.TimeoutExpired:
            pytest.fail("usher still running 10 s after SIGTERM")
    finally:
        idle.close()


def test_check_mode_accepts_valid_configuration(run_usher):
    backend = "http://127.0.0.1:%d" % unused_ports(1)[0]
    p = run_usher("-t", "--listen", "127.0.0.1:%d" % free_port(), "--backend", backend)
    assert p.returncode == 0, p
    assert b"configuration ok" in p.stdout + p.stderr, p


@pytest.mark.parametrize("case", ["threads-zero", "balance-nope", "backend-not-http"])
def test_check_mode_rejects_invalid_configuration(run_usher, case):
    p = run_usher("-t", *bad_args(case))
    assert p.returncode == 2, p
    assert p.stderr.strip(), p
    assert b"configuration ok" not in p.stdout + p.stderr, p
