"""The HTTP behaviour around TLS that a plain listener shows (issue 11):

- `--redirect-https true`: every valid request is answered by usher itself
  with `308 Permanent Redirect` to the same host and target over https (the
  port from `--https-port` unless 443), before any backend is picked; a
  request body is never forwarded and never read as the next request.
- `--client-verify-header` / `--client-subject-header`: whatever the client
  sent under those names is removed, in any case; a plain connection has no
  certificate, so the backend is told `NONE` and no subject.

The same behaviour on TLS listeners (X-Forwarded-Proto: https, the mTLS
results, HSTS) is tested in test_tls.py.
"""

import time

from http_raw import RawHTTPConnection

REDIRECT = ("--redirect-https", "true")


def no_request_reached(be, wait=0.3):
    time.sleep(wait)  # anything forwarded would have arrived by now
    reqs, probs, rests = be.requests()
    assert not reqs and not probs and not rests, (reqs, probs, rests)


def redirect_of(usher, target, host, headers=(), version="HTTP/1.1"):
    with usher.raw() as c:
        r = c.roundtrip("GET", target, list(headers), version=version, host=host)
    assert r.status == 308, r
    return r.header("Location")


# -- redirect to https ----------------------------------------------------------------


def test_redirect_names_the_host_without_its_port_and_the_target(raw_backend, start_usher):
    be = raw_backend()
    u = start_usher([be], *REDIRECT)
    with u.raw() as c:
        r = c.roundtrip("GET", "/a/b?c=d&e=%2F", host="Shop.Example:8080")
        assert r.status == 308, r
        assert r.reason == "Permanent Redirect"
        assert r.header_all("Location") == ["https://Shop.Example/a/b?c=d&e=%2F"]
        assert r.body == b""
        # the connection carries the next request, answered the same way
        r = c.roundtrip("HEAD", "/x", host="shop.example")
        assert r.status == 308 and r.header("Location") == "https://shop.example/x", r
    no_request_reached(be)


def test_redirect_writes_the_https_port_unless_443(raw_backend, start_usher):
    be = raw_backend()
    u = start_usher([be], *REDIRECT, "--https-port", "8443")
    assert redirect_of(u, "/p", "a.test:8000") == "https://a.test:8443/p"
    assert redirect_of(u, "/v6?q", "[::1]:8000") == "https://[::1]:8443/v6?q"
    assert redirect_of(u, "/v6", "[2001:db8::7]") == "https://[2001:db8::7]:8443/v6"
    u443 = start_usher([be], *REDIRECT, "--https-port", "443", label="usher-443")
    assert redirect_of(u443, "/p", "a.test:8000") == "https://a.test/p"
    no_request_reached(be)


def test_redirect_of_an_absolute_form_request(raw_backend, start_usher):
    be = raw_backend()
    u = start_usher([be], *REDIRECT)
    assert redirect_of(u, "http://a.test:81/path?x=1", "a.test:81") == "https://a.test/path?x=1"
    assert redirect_of(u, "http://a.test", "a.test") == "https://a.test/"
    no_request_reached(be)


def test_redirect_needs_a_host(raw_backend, start_usher):
    be = raw_backend()
    u = start_usher([be], *REDIRECT)
    with u.raw() as c:
        r = c.roundtrip("GET", "/", version="HTTP/1.0", host=None)
        assert r.status == 400, r
        assert r.header("Location") is None
        assert c.wait_closed()
    # an HTTP/1.0 request with a Host is redirected, and may keep its connection
    with u.raw() as c:
        r = c.roundtrip("GET", "/old", [("Connection", "keep-alive")], version="HTTP/1.0", host="a")
        assert r.status == 308 and r.header("Location") == "https://a/old", r
        assert r.has_token("Connection", "keep-alive"), r
    no_request_reached(be)


def test_invalid_requests_are_refused_not_redirected(raw_backend, start_usher):
    be = raw_backend()
    u = start_usher([be], *REDIRECT)
    with u.raw() as c:
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        r = c.read_response()
        assert r.status == 400 and r.header("Location") is None, r
    no_request_reached(be)


def test_redirect_with_a_body_closes_and_never_reads_it_as_a_request(raw_backend, start_usher):
    """The body (which looks like a request) is neither forwarded nor
    answered: the redirect says Connection: close and the connection ends."""
    be = raw_backend()
    u = start_usher([be], *REDIRECT)
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
    for framing in ("length", "chunked"):
        with RawHTTPConnection("127.0.0.1", u.port, timeout=5) as c:
            if framing == "length":
                head = b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
                c.send(head + smuggled)
            else:
                chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled)
                c.send(b"POST /form HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk)
            # and a real next request right behind it
            c.send(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
            r = c.read_response("POST")
            assert r.status == 308 and r.header("Location") == "https://a/form", r
            assert r.has_token("Connection", "close"), r
            assert c.wait_closed(), "usher answered more than the redirect"
            assert c.eof, "reset instead of a clean close"  # the lingering close drains the body
    no_request_reached(be)


def test_redirect_before_the_body_arrives(raw_backend, start_usher):
    """A client that waits for 100 Continue gets the redirect at once."""
    be = raw_backend()
    u = start_usher([be], *REDIRECT)
    with u.raw() as c:
        c.send(b"PUT /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 100000\r\n\r\n")
        r = c.read_response("PUT")
        assert r.status == 308 and r.header("Location") == "https://a/up", r
        assert not r.interim, r.interim
    no_request_reached(be)


def test_without_the_flag_requests_go_to_the_backend(raw_backend, start_usher):
    be = raw_backend()
    u = start_usher([be])
    with u.raw() as c:
        r = c.roundtrip("GET", "/plain", host="a.test")
    assert r.status == 200 and r.header("X-Capture") == "1", r


# -- mTLS headers on a plain listener ----------------------------------------------------

MTLS = ("--client-verify-header", "X-Client-Verify", "--client-subject-header", "X-Client-Subject")


def test_client_mtls_headers_removed_and_none_said(raw_backend, start_usher):
    be = raw_backend()
    u = start_usher([be], *MTLS)
    forged = [
        ("X-Client-Verify", "SUCCESS"),
        ("x-client-subject", "CN=admin,O=Example"),
        ("X-CLIENT-VERIFY", "SUCCESS"),
        ("X-Client-Subject", "CN=root"),
        ("X-Client-Verify-Extra", "kept"),
    ]
    with u.raw() as c:
        for i in range(2):  # every request of a keep-alive connection
            r = c.roundtrip("GET", "/m%d" % i, forged, host="a.test")
            assert r.status == 200, r
    assert be.wait_requests(2)
    reqs, probs, _ = be.requests()
    assert not probs, probs
    for req in reqs:
        assert req.header_all("X-Client-Verify") == [b"NONE"], req.raw
        assert req.header_all("X-Client-Subject") == [], req.raw
        assert req.header_all("X-Client-Verify-Extra") == [b"kept"], req.raw
        assert req.header_all("X-Forwarded-Proto") == [b"http"], req.raw
        assert b"admin" not in req.raw and b"root" not in req.raw


def test_client_mtls_header_named_in_connection_is_still_replaced(raw_backend, start_usher):
    be = raw_backend()
    u = start_usher([be], "--client-verify-header", "X-Client-Verify")
    with u.raw() as c:
        r = c.roundtrip("GET", "/c", [("Connection", "x-client-verify"), ("X-Client-Verify", "SUCCESS")])
    assert r.status == 200, r
    assert be.wait_requests(1)
    req = be.requests()[0][0]
    assert req.header_all("X-Client-Verify") == [b"NONE"], req.raw


def test_only_the_configured_names_are_touched(raw_backend, start_usher):
    be = raw_backend()
    u = start_usher([be], "--client-subject-header", "X-Ssl-Subject")
    with u.raw() as c:
        r = c.roundtrip("GET", "/s", [("X-SSL-Subject", "CN=forged"), ("X-Client-Verify", "SUCCESS")])
    assert r.status == 200, r
    assert be.wait_requests(1)
    req = be.requests()[0][0]
    assert req.header_all("X-Ssl-Subject") == [], req.raw
    # not configured: an ordinary end-to-end header, forwarded as sent
    assert req.header_all("X-Client-Verify") == [b"SUCCESS"], req.raw


def test_plain_listener_sends_no_hsts(raw_backend, start_usher):
    be = raw_backend()
    u = start_usher([be], "--hsts-max-age", "31536000")
    with RawHTTPConnection("127.0.0.1", u.port) as c:
        r = c.roundtrip("GET", "/h")
        assert r.status == 200, r
        assert r.header("Strict-Transport-Security") is None, r
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        r = c.read_response()
        assert r.status == 400 and r.header("Strict-Transport-Security") is None, r
