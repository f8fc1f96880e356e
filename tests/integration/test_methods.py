"""Methods and request targets reach the backend exactly as sent; responses
without a body (HEAD, 204, 304) leave the connection usable."""

import zlib

import pytest

TARGET = "/echo/a%20b?x=1&y=%2F"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE"]


def crc_hex(data):
    return "%08x" % (zlib.crc32(data) & 0xFFFFFFFF)


def method_counts(backends):
    counts = {}
    for b in backends:
        for m, n in b.stats().get("by_method", {}).items():
            counts[m] = counts.get(m, 0) + n
    return counts


@pytest.mark.parametrize("method", METHODS)
def test_method_reaches_backend(backends, usher, method):
    for b in backends:
        b.reset_stats()
    body = ("payload for " + method).encode() if method not in ("GET", "HEAD") else None
    with usher.raw() as c:
        r = c.roundtrip(method, TARGET, body=body)
        assert r.status == 200, r
        if method == "HEAD":
            assert r.body == b""
            assert r.header("Content-Length") is not None or r.header("Transfer-Encoding") is not None
        else:
            j = r.json()
            assert j["method"] == method
            assert j["path"] == "/echo/a%20b"
            assert j["query"] == "x=1&y=%2F"
            assert j["body_length"] == len(body or b"")
            assert j["body_crc32"] == crc_hex(body or b"")
        # Same connection, next request.
        r2 = c.roundtrip("GET", "/echo/next")
        assert r2.status == 200, r2
        assert r2.json()["path"] == "/echo/next"
    counts = method_counts(backends)
    assert counts.get(method, 0) == (2 if method == "GET" else 1), counts
    if method != "GET":
        assert counts.get("GET", 0) == 1, counts


@pytest.mark.parametrize(
    "path,query",
    [
        ("/echo/a%20b", "x=1&y=%2F"),
        ("/echo//double//slash/", "a=b&a=c&"),
        ("/echo/./dot/../seg", ""),
        ("/echo/%7Euser/%2e%2E/x", "q=%zz&empty=&=v"),
        ("/echo/UPPER/lower/MiXeD", "K=V"),
        ("/echo/" + "x" * 2000, "long=" + "y" * 2000),
    ],
    ids=["encoded", "double-slash", "dot-segments", "odd-encoding", "case", "long"],
)
def test_target_forwarded_byte_exact(usher, path, query):
    target = path + ("?" + query if query else "")
    with usher.raw() as c:
        r = c.roundtrip("GET", target)
        assert r.status == 200, r
        j = r.json()
        assert j["path"] == path
        assert j["query"] == query


def test_head_has_headers_but_no_body(usher):
    n = 100
    with usher.raw() as c:
        r = c.roundtrip("HEAD", "/bytes?n=%d" % n)
        assert r.status == 200, r
        assert r.header("Content-Length") == str(n)
        assert r.body == b""
        # Any body bytes sent after the HEAD response would break this parse.
        r2 = c.roundtrip("GET", "/bytes?n=7")
        assert r2.status == 200, r2
        assert r2.body == b"abcdefg"


def test_head_of_chunked_resource(usher):
    with usher.raw() as c:
        r = c.roundtrip("HEAD", "/bytes?n=1000&chunked=1")
        assert r.status == 200, r
        assert r.body == b""
        r2 = c.roundtrip("GET", "/echo/after-head")
        assert r2.status == 200, r2
        assert r2.json()["path"] == "/echo/after-head"


def test_head_then_get_pipelined(usher):
    with usher.raw() as c:
        c.send(
            b"HEAD /bytes?n=50000 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /bytes?n=3 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        r = c.read_response("HEAD")
        assert r.status == 200 and r.header("Content-Length") == "50000"
        r2 = c.read_response()
        assert r2.status == 200 and r2.body == b"abc"


@pytest.mark.parametrize("code", [204, 304])
def test_bodiless_status_keeps_connection_usable(usher, code):
    with usher.raw() as c:
        for i in range(3):
            r = c.roundtrip("GET", "/status/%d" % code)
            assert r.status == code, r
            assert r.body == b""
            te = r.header("Transfer-Encoding")
            assert te is None, "%d response with Transfer-Encoding %r" % (code, te)
            r2 = c.roundtrip("GET", "/echo/after-%d-%d" % (code, i))
            assert r2.status == 200, r2
            assert r2.json()["path"] == "/echo/after-%d-%d" % (code, i)


@pytest.mark.parametrize("code", [201, 202, 400, 404, 418, 500, 502, 503])
def test_status_passed_through(usher, code):
    with usher.raw() as c:
        r = c.roundtrip("GET", "/status/%d" % code)
        assert r.status == code, r
        assert r.header("X-Backend") in ("backend1", "backend2")
        r2 = c.roundtrip("GET", "/echo/x")
        assert r2.status == 200
