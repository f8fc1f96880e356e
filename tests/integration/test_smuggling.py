"""Hostile request and response vectors (request smuggling, response
splitting, framing ambiguity), RFC 9112 and RFC 9110.

Every vector runs against a fresh usher in front of a RawCaptureBackend
(harness/backends.py), which records every byte usher sends it and reads them
with a strict RFC 9112 reader. Each vector checks both sides:

- what the client got: the status (usher's own 400/414/431/502, or the
  backend's answer for a request that is valid), and that the connection is
  closed where it must be;
- what the backend received: nothing a strict reader finds ambiguous or
  invalid (bare CR or LF, obs-fold, Content-Length with Transfer-Encoding,
  chunked not last, bad chunk syntax, control bytes, several Host, ...),
  never a request the client did not send and never two where it sent one.

A vector marked "reject" must be answered by usher itself and must not reach
the backend (a body error found after the head went on may leave an
incomplete request there, never a complete one). "forward" must reach the
backend exactly as intended. "either" allows both, each with its checks (the
issue allows, say, collapsing "Content-Length: 5, 5").
"""

import time

import pytest

from harness.backends import TCPBackend
from http_raw import PeerClosed, ProtocolError, RawHTTPConnection

CLIENT_TIMEOUT = 5.0  # per socket operation
RESPONSE_WAIT = 8.0  # a whole response
CLOSE_WAIT = 5.0
REJECT = (400,)


class V:
    """A hostile request: raw bytes, what must happen."""

    def __init__(self, name, raw, expect, statuses=REJECT, forwarded=None, partial_ok=False, check=None, close=None):
        self.name = name
        self.raw = raw
        self.expect = expect  # "reject", "forward" or "either"
        self.statuses = statuses
        # for "forward": [(method, target, body)] the backend must receive, in order
        self.forwarded = forwarded
        self.partial_ok = partial_ok  # a reject found in the body: head may have gone on
        self.check = check  # extra check(forwarded requests, response)
        self.close = close  # the client connection must close after a forward


H = b"Host: usher.test\r\n"


def post(headers, body=b"", target=b"/p"):
    return b"POST " + target + b" HTTP/1.1\r\n" + H + headers + b"\r\n" + body


def get(extra=b"", target=b"/g", version=b"HTTP/1.1", host=H):
    return b"GET " + target + b" " + version + b"\r\n" + host + extra + b"\r\n"


TE = b"Transfer-Encoding: chunked\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: usher.test\r\n\r\n"


def chunked(body):
    return post(TE, body)


def has_header(name, value=None):
    def check(reqs, resp):
        vals = reqs[0].header_all(name)
        assert vals, "%s was not forwarded: %r" % (name, reqs[0].raw)
        if value is not None:
            assert vals == [value], "%s forwarded as %r" % (name, vals)

    return check


def xff_is_client(reqs, resp):
    vals = reqs[0].header_all("X-Forwarded-For")
    assert len(vals) == 1 and vals[0].endswith(b"127.0.0.1"), vals


def host_is(value):
    def check(reqs, resp):
        assert reqs[0].header_all("Host") == [value], reqs[0].raw

    return check


REQUEST_VECTORS = [
    # -- Content-Length and Transfer-Encoding together (RFC 9112 6.1, 6.3) --------
    V("cl-te", post(b"Content-Length: 4\r\n" + TE, b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED), "either",
      forwarded=[(b"POST", b"/p", b"hello")], close=True,
      check=lambda reqs, resp: not reqs[0].header_all("Content-Length") or pytest.fail("CL forwarded with chunked")),
    V("te-cl", post(TE + b"Content-Length: 6\r\n", b"0\r\n\r\nG"), "either",
      forwarded=[(b"POST", b"/p", b"")], close=True,
      check=lambda reqs, resp: not reqs[0].header_all("Content-Length") or pytest.fail("CL forwarded with chunked")),
    V("te-cl-hidden-request", post(b"Content-Length: 3\r\n" + TE, b"8\r\nSMUGGLED\r\n0\r\n\r\n"), "either",
      forwarded=[(b"POST", b"/p", b"SMUGGLED")], close=True,
      check=lambda reqs, resp: not reqs[0].header_all("Content-Length") or pytest.fail("CL forwarded with chunked")),
    # -- Transfer-Encoding codings (RFC 9112 6.1, 7) -------------------------------
    V("te-two-lines-chunked", post(TE + TE, b"0\r\n\r\n"), "reject"),
    V("te-chunked-twice", post(b"Transfer-Encoding: chunked, chunked\r\n", b"0\r\n\r\n"), "reject"),
    V("te-chunked-not-last", post(b"Transfer-Encoding: chunked, gzip\r\n", b"0\r\n\r\n"), "reject"),
    V("te-identity", post(b"Transfer-Encoding: identity\r\n", b"hello"), "reject", statuses=(400, 501)),
    V("te-unknown-coding", post(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n"), "reject", statuses=(400, 501)),
    V("te-unknown-before-chunked", post(b"Transfer-Encoding: zgip, chunked\r\n", b"0\r\n\r\n"), "reject", statuses=(400, 501)),
    V("te-chunked-then-identity-lines", post(TE + b"Transfer-Encoding: identity\r\n", b"0\r\n\r\n"), "reject"),
    V("te-gzip-then-chunked-lines", post(b"Transfer-Encoding: gzip\r\n" + TE, b"0\r\n\r\n"), "reject"),
    V("te-empty", post(b"Transfer-Encoding: \r\n", b"0\r\n\r\n" + SMUGGLED), "reject"),
    V("te-vertical-tab", post(b"Transfer-Encoding: \x0bchunked\r\n", b"0\r\n\r\n"), "reject"),
    V("te-with-parameter", post(b"Transfer-Encoding: chunked;q=1\r\n", b"0\r\n\r\n"), "reject"),
    V("te-space-before-colon", post(b"Transfer-Encoding : chunked\r\nContent-Length: 4\r\n", b"0\r\n\r\n"), "reject"),
    V("te-in-http10", b"POST /p HTTP/1.0\r\n" + H + TE + b"\r\n0\r\n\r\n", "reject"),
    V("te-trailing-tab", post(b"Transfer-Encoding: chunked\t\r\n", b"5\r\nhello\r\n0\r\n\r\n"), "either",
      forwarded=[(b"POST", b"/p", b"hello")]),
    V("te-trailing-space", post(b"Transfer-Encoding: chunked \r\n", b"5\r\nhello\r\n0\r\n\r\n"), "either",
      forwarded=[(b"POST", b"/p", b"hello")]),
    V("te-case-insensitive", post(b"Transfer-Encoding: CHUNKED\r\n", b"5\r\nhello\r\n0\r\n\r\n"), "forward",
      forwarded=[(b"POST", b"/p", b"hello")]),
    V("te-gzip-chunked", post(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"), "either", statuses=(400, 501),
      forwarded=[(b"POST", b"/p", b"")]),
    # -- Content-Length values (RFC 9110 8.6) -------------------------------------
    V("cl-plus-sign", post(b"Content-Length: +5\r\n", b"hello"), "reject"),
    V("cl-minus-sign", post(b"Content-Length: -5\r\n", b"hello"), "reject"),
    V("cl-hex", post(b"Content-Length: 0x5\r\n", b"hello"), "reject"),
    V("cl-exponent", post(b"Content-Length: 1e1\r\n", b"hellohello"), "reject"),
    V("cl-list-different", post(b"Content-Length: 5, 6\r\n", b"hello!"), "reject"),
    V("cl-lines-different", post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"), "reject"),
    V("cl-list-same", post(b"Content-Length: 5, 5\r\n", b"hello"), "either", forwarded=[(b"POST", b"/p", b"hello")]),
    V("cl-lines-same", post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"), "either",
      forwarded=[(b"POST", b"/p", b"hello")]),
    V("cl-overflow-2^64", post(b"Content-Length: 18446744073709551621\r\n", b"hello"), "reject", statuses=(400, 413)),
    V("cl-huge", post(b"Content-Length: 99999999999999999999999\r\n", b"hello"), "reject", statuses=(400, 413)),
    V("cl-empty", post(b"Content-Length: \r\n", b""), "reject"),
    V("cl-space-inside", post(b"Content-Length: 1 0\r\n", b"hellohello"), "reject"),
    V("cl-ows-trimmed", post(b"Content-Length:  5 \r\n", b"hello"), "forward", forwarded=[(b"POST", b"/p", b"hello")]),
    V("cl-obs-fold", post(b"Content-Length:\r\n 5\r\n", b"hello"), "either", forwarded=[(b"POST", b"/p", b"hello")]),
    # -- chunk syntax (RFC 9112 7.1) ----------------------------------------------
    V("chunk-size-plus", chunked(b"+5\r\nhello\r\n0\r\n\r\n"), "reject", partial_ok=True),
    V("chunk-size-0x", chunked(b"0x5\r\nhello\r\n0\r\n\r\n"), "reject", partial_ok=True),
    V("chunk-size-negative", chunked(b"-5\r\nhello\r\n0\r\n\r\n"), "reject", partial_ok=True),
    V("chunk-size-overflow", chunked(b"10000000000000005\r\nhello\r\n0\r\n\r\n"), "reject", partial_ok=True),
    V("chunk-size-bare-lf", chunked(b"5\nhello\r\n0\r\n\r\n"), "reject", partial_ok=True),
    V("chunk-size-bare-cr", chunked(b"5\rhello\r\n0\r\n\r\n"), "reject", partial_ok=True),
    V("chunk-data-bare-lf", chunked(b"5\r\nhello\n0\r\n\r\n"), "reject", partial_ok=True),
    V("chunk-last-bare-lf", chunked(b"5\r\nhello\r\n0\n\n"), "reject", partial_ok=True),
    V("chunk-last-cr-any", chunked(b"5\r\nhello\r\n0\r0\r\n\r\n"), "reject", partial_ok=True),
    V("chunk-ext-ok", chunked(b"5;a=b;c\r\nhello\r\n0;z=1\r\n\r\n"), "forward", forwarded=[(b"POST", b"/p", b"hello")]),
    V("chunk-ext-quoted", chunked(b"5;c=\"d e\"\r\nhello\r\n0\r\n\r\n"), "either", partial_ok=True,
      forwarded=[(b"POST", b"/p", b"hello")]),
    V("chunk-ext-bare-lf", chunked(b"5;a\nhello\r\n0\r\n\r\n"), "reject", partial_ok=True),
    V("chunk-ext-bare-cr", chunked(b"5;a\rb\r\nhello\r\n0\r\n\r\n"), "reject", partial_ok=True),
    V("chunk-ext-nul", chunked(b"5;a=\x00\r\nhello\r\n0\r\n\r\n"), "reject", partial_ok=True),
    V("chunk-ext-control", chunked(b"5;a=\x01\r\nhello\r\n0\r\n\r\n"), "reject", partial_ok=True),
    V("chunk-size-trailing-space", chunked(b"5 \r\nhello\r\n0\r\n\r\n"), "reject", partial_ok=True),
    V("chunk-data-longer-than-size", chunked(b"3\r\nhello\r\n0\r\n\r\n"), "reject", partial_ok=True),
    V("chunk-data-not-followed-by-crlf", chunked(b"5\r\nhelloXX0\r\n\r\n"), "reject", partial_ok=True),
    V("chunk-trailer-no-colon", chunked(b"0\r\nBad Trailer\r\n\r\n"), "reject", partial_ok=True),
    V("chunk-trailer-control", chunked(b"0\r\nX: a\x01b\r\n\r\n"), "reject", partial_ok=True),
    V("chunk-trailer-bare-cr", chunked(b"0\r\nX: a\rb\r\n\r\n"), "reject", partial_ok=True),
    V("chunk-trailer-obs-fold", chunked(b"0\r\nX: a\r\n b\r\n\r\n"), "reject", partial_ok=True),
    # -- the head: line ends, whitespace, control bytes (RFC 9112 2.2, 5) -----------
    V("bare-cr-request-line", b"GET /g HTTP/1.1\rX" + H + b"\r\n", "reject"),
    V("bare-cr-in-value", get(b"X: a\rb\r\n"), "reject"),
    V("bare-cr-in-name", get(b"X\r: ab\r\n"), "reject"),
    V("bare-cr-ends-head", b"POST /p HTTP/1.1\r\n" + H + b"Content-Length: 10\r\n\rXFoo: barbaz\r\n\r\n", "reject"),
    V("bare-cr-before-header", b"GET /g HTTP/1.1\r\n" + H + b"\rXContent-Length: 5\r\n\r\nhello", "reject"),
    V("nul-in-value", get(b"X: a\x00b\r\n"), "reject"),
    V("control-in-value", get(b"X: a\x01b\r\n"), "reject"),
    V("del-in-value", get(b"X: a\x7fb\r\n"), "reject"),
    V("escape-in-value", get(b"X: a\x1bb\r\n"), "reject"),
    V("obs-text-in-value", get(b"X: caf\xe9\r\n"), "forward", forwarded=[(b"GET", b"/g", b"")]),
    V("obs-fold", get(b"X: a\r\n b\r\n"), "either", forwarded=[(b"GET", b"/g", b"")]),
    V("obs-fold-transfer-encoding", post(b"Transfer-Encoding:\r\n chunked\r\nContent-Length: 3\r\n", b"0\r\n\r\n"), "reject"),
    V("space-before-colon", get(b"X : a\r\n"), "reject"),
    V("tab-before-colon", post(b"Content-Length\t: 5\r\n", b"hello"), "reject"),
    V("name-not-token", get(b"X@Y: a\r\n"), "reject"),
    V("name-with-quote", get(b'X"Y: a\r\n'), "reject"),
    V("name-with-nul", get(b"X\x00Y: a\r\n"), "reject"),
    V("line-without-colon", get(b"NoColon\r\n"), "reject"),
    V("empty-name", get(b": a\r\n"), "reject"),
    V("first-header-line-starts-with-space", b"GET /g HTTP/1.1\r\n Host: usher.test\r\n\r\n", "reject"),
    V("first-header-line-starts-with-tab", b"GET /g HTTP/1.1\r\n\tX: y\r\n" + H + b"\r\n", "reject"),
    V("request-line-starts-with-space", b" GET /g HTTP/1.1\r\n" + H + b"\r\n", "reject"),
    V("bare-lf-line-ends", b"GET /g HTTP/1.1\n" + H.replace(b"\r\n", b"\n") + b"X: y\n\n", "either",
      forwarded=[(b"GET", b"/g", b"")]),
    V("bare-lf-post", b"POST /p HTTP/1.1\n" + H.replace(b"\r\n", b"\n") + b"Content-Length: 5\n\nhello", "either",
      forwarded=[(b"POST", b"/p", b"hello")]),
    # -- Host (RFC 9112 3.2) --------------------------------------------------------
    V("no-host", b"GET /g HTTP/1.1\r\n\r\n", "reject"),
    V("two-hosts", get(b"Host: other.test\r\n"), "reject"),
    V("two-hosts-same", get(H), "reject"),
    V("two-hosts-http10", b"GET /g HTTP/1.0\r\nHost: a.test\r\nHost: b.test\r\n\r\n", "reject"),
    V("host-list", get(host=b"Host: a.test, b.test\r\n"), "reject"),
    V("host-with-space", get(host=b"Host: a b\r\n"), "reject"),
    V("host-with-slash", get(host=b"Host: a/b\r\n"), "reject"),
    V("host-with-userinfo", get(host=b"Host: user@a.test\r\n"), "reject"),
    V("http10-without-host", b"GET /g HTTP/1.0\r\n\r\n", "forward", forwarded=[(b"GET", b"/g", b"")]),
    # -- request target (RFC 9112 3.2) ----------------------------------------------
    V("target-fragment", get(target=b"/g#frag"), "reject"),
    V("target-asterisk-get", get(target=b"*"), "reject"),
    V("target-asterisk-options", b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n", "forward", forwarded=[(b"OPTIONS", b"*", b"")]),
    V("target-absolute-other-host", get(target=b"http://other.test/g"), "either",
      forwarded=[(b"GET", b"http://other.test/g", b"")], check=host_is(b"other.test")),
    V("target-absolute-same-host", get(target=b"http://usher.test/g"), "forward",
      forwarded=[(b"GET", b"http://usher.test/g", b"")], check=host_is(b"usher.test")),
    V("target-absolute-no-path", get(target=b"http://usher.test"), "either",
      forwarded=[(b"GET", b"http://usher.test", b"")], check=host_is(b"usher.test")),
    V("target-absolute-userinfo", get(target=b"http://evil@usher.test/g"), "either",
      forwarded=[(b"GET", b"http://evil@usher.test/g", b"")], check=host_is(b"usher.test")),
    V("host-with-port", get(host=b"Host: usher.test:8080\r\n"), "forward", forwarded=[(b"GET", b"/g", b"")],
      check=host_is(b"usher.test:8080")),
    V("host-ipv6-literal", get(host=b"Host: [::1]:8080\r\n"), "forward", forwarded=[(b"GET", b"/g", b"")],
      check=host_is(b"[::1]:8080")),
    V("host-two-colons", get(host=b"Host: a:1:2\r\n"), "reject"),
    V("host-port-not-digits", get(host=b"Host: a:x\r\n"), "reject"),
    V("host-bracket-garbage", get(host=b"Host: usher.test[\r\n"), "reject"),
    V("target-authority-form-get", get(target=b"usher.test:80"), "reject"),
    V("target-no-slash", get(target=b"abc"), "reject"),
    V("target-control", get(target=b"/a\x01b"), "reject"),
    V("target-del", get(target=b"/a\x7fb"), "reject"),
    V("target-8bit", get(target=b"/a\xffb"), "reject"),
    V("target-tab", get(target=b"/a\tb"), "reject"),
    V("target-space", get(target=b"/a b"), "reject"),
    # -- method and version (RFC 9112 3, 2.3) -----------------------------------------
    V("method-not-token", b"G(T /g HTTP/1.1\r\n" + H + b"\r\n", "reject"),
    V("method-control", b"G\x01T /g HTTP/1.1\r\n" + H + b"\r\n", "reject"),
    V("method-unknown-token", b"FROB /g HTTP/1.1\r\n" + H + b"\r\n", "forward", forwarded=[(b"FROB", b"/g", b"")]),
    V("request-line-double-space", b"GET  /g HTTP/1.1\r\n" + H + b"\r\n", "either", forwarded=[(b"GET", b"/g", b"")]),
    V("request-line-tabs", b"GET\t/g\tHTTP/1.1\r\n" + H + b"\r\n", "reject"),
    V("version-trailing-space", b"GET /g HTTP/1.1 \r\n" + H + b"\r\n", "reject"),
    V("http09", b"GET /g\r\n\r\n", "reject"),
    V("http09-then-head", b"GET /g\r\n\r\nGET\t/smuggled\tHTTP/1.1\r\nHost:internal\r\n\r\n", "reject"),
    V("http09-no-space-before-version", b"GET /gHTTP/1.1\r\n" + H + b"\r\n", "reject"),
    V("version-2.0", get(version=b"HTTP/2.0"), "reject", statuses=(400, 505)),
    V("version-1.2", get(version=b"HTTP/1.2"), "either", statuses=(400, 505), forwarded=[(b"GET", b"/g", b"")]),
    V("version-3.0", get(version=b"HTTP/3.0"), "reject", statuses=(400, 505)),
    V("version-lowercase", get(version=b"http/1.1"), "reject"),
    V("version-leading-zero", get(version=b"HTTP/01.1"), "reject", statuses=(400, 505)),
    # -- Connection cannot strip what the proxy relies on (RFC 9110 7.6.1) -------------
    V("connection-names-host", get(b"Connection: Host\r\n"), "forward", forwarded=[(b"GET", b"/g", b"")],
      check=host_is(b"usher.test")),
    V("connection-names-content-length", post(b"Content-Length: 5\r\nConnection: Content-Length\r\n", b"hello"),
      "forward", forwarded=[(b"POST", b"/p", b"hello")], check=has_header("Content-Length", b"5")),
    V("connection-names-transfer-encoding", post(TE + b"Connection: transfer-encoding\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
      "forward", forwarded=[(b"POST", b"/p", b"hello")], check=has_header("Transfer-Encoding")),
    V("connection-names-x-forwarded-for", get(b"X-Forwarded-For: 10.9.9.9\r\nConnection: X-Forwarded-For\r\n"),
      "forward", forwarded=[(b"GET", b"/g", b"")], check=xff_is_client),
    V("connection-names-custom", get(b"Connection: X-Secret\r\nX-Secret: s\r\n"), "forward",
      forwarded=[(b"GET", b"/g", b"")],
      check=lambda reqs, resp: not reqs[0].header_all("X-Secret") or pytest.fail("X-Secret forwarded")),
    # -- limits (issue: 8 KiB request line -> 414, 16 KiB head or 100 headers -> 431) ----
    V("request-line-too-long", get(target=b"/" + b"a" * 9000), "reject", statuses=(414,)),
    V("request-line-below-limit", get(target=b"/" + b"a" * 8000), "forward", forwarded=[(b"GET", b"/" + b"a" * 8000, b"")]),
    V("head-too-large", get(b"".join(b"X-Pad-%d: %s\r\n" % (i, b"v" * 1000) for i in range(20))), "reject",
      statuses=(431,)),
    V("too-many-headers", get(b"".join(b"X-H%d: v\r\n" % i for i in range(101))), "reject", statuses=(431,)),
    V("hundred-headers-ok", get(b"".join(b"X-H%d: v\r\n" % i for i in range(99))), "forward",
      forwarded=[(b"GET", b"/g", b"")]),
    # -- a pipelined pair is two requests, each exactly once ---------------------------
    V("pipelined-pair", post(b"Content-Length: 5\r\n", b"hello") + get(target=b"/second"), "forward",
      forwarded=[(b"POST", b"/p", b"hello"), (b"GET", b"/second", b"")]),
    V("get-with-body-holding-a-request", get(b"Content-Length: %d\r\n" % len(SMUGGLED)) + SMUGGLED, "forward",
      forwarded=[(b"GET", b"/g", SMUGGLED)]),
]


def start(start_usher, backend):
    return start_usher([backend.port], "--threads", "1")


def read_response(c, method="GET"):
    return c.read_response(method, deadline=time.monotonic() + RESPONSE_WAIT)


def from_usher(resp):
    return resp.header("X-Capture") is None


def backend_view(rb):
    """Waits a moment for bytes in flight, then returns (requests, problems,
    incomplete) as the strict reader saw them."""
    time.sleep(0.1)
    return rb.requests()


def assert_nothing_ambiguous(rb, sent_requests):
    reqs, probs, rests = backend_view(rb)
    assert not probs, "usher forwarded something a strict reader rejects:\n%s\nbytes: %r" % (
        "\n".join(probs),
        rb.all_received(),
    )
    assert len(reqs) <= sent_requests, "the backend got %d requests, the client sent %d: %r" % (
        len(reqs),
        sent_requests,
        reqs,
    )
    for r in reqs:
        assert b"smuggled" not in r.target, "a request hidden in a body reached the backend: %r" % r
    return reqs, rests


def check_reject(v, c, resp, rb):
    assert from_usher(resp), "the backend answered: usher forwarded %r (backend got %r)" % (v.name, rb.all_received())
    assert resp.status in v.statuses, "expected %s, got %r" % (v.statuses, resp)
    assert (resp.header("Content-Type") or "").startswith("application/json"), resp.headers
    assert c.wait_closed(CLOSE_WAIT), "the connection stayed open after %d" % resp.status
    reqs, rests = assert_nothing_ambiguous(rb, 1)
    assert not reqs, "a rejected request reached the backend: %r" % reqs
    if not v.partial_ok:
        got = {k: d for k, d in rb.all_received().items() if d}
        assert not got, "bytes of a request rejected on its head reached the backend: %r" % got


def check_forward(v, c, resp, rb):
    assert not from_usher(resp), "usher answered %r itself" % resp
    assert resp.status == 200, resp
    # usher never invents a second request, never splits one in two
    reqs, rests = assert_nothing_ambiguous(rb, len(v.forwarded))
    if len(reqs) < len(v.forwarded):
        rb.wait_requests(len(v.forwarded), timeout=3)
        reqs, rests = assert_nothing_ambiguous(rb, len(v.forwarded))
    got = [(r.method, r.target, r.body) for r in reqs]
    assert got == v.forwarded, "the backend got %r, expected %r" % (got, v.forwarded)
    assert not rests, "an incomplete request is left on the backend: %r" % rests
    for r in reqs:
        assert r.version == b"HTTP/1.1"
        assert len(r.header_all("Host")) == 1
    if v.check:
        v.check(reqs, resp)
    if v.close:
        if resp.framing != "close":
            assert c.wait_closed(CLOSE_WAIT), "connection kept open after %s" % v.name


@pytest.mark.parametrize("v", REQUEST_VECTORS, ids=[v.name for v in REQUEST_VECTORS])
def test_hostile_request(start_usher, raw_backend, v):
    rb = raw_backend()
    u = start(start_usher, rb)
    with RawHTTPConnection("127.0.0.1", u.port, timeout=CLIENT_TIMEOUT) as c:
        c.send(v.raw)
        try:
            resp = read_response(c, v.raw.split(b" ", 1)[0].decode("latin-1"))
        except (TimeoutError, OSError, ProtocolError) as e:
            got = rb.all_received()
            raise AssertionError("no complete response to %s (%r); the backend got %r" % (v.name, e, got))
        if v.expect == "reject" or (v.expect == "either" and from_usher(resp)):
            check_reject(v, c, resp, rb)
        else:
            check_forward(v, c, resp, rb)
            # every further pipelined response, then nothing more
            for _ in v.forwarded[1:]:
                r2 = read_response(c)
                assert not from_usher(r2) and r2.status == 200, r2


# -- responses --------------------------------------------------------------------

OK2 = b"Content-Length: 2\r\n\r\nok"
SPLIT = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED"
AFTER = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nafter"


class R:
    """A hostile response to GET (or HEAD) /r.

    expect: "502" (usher answers 502 itself), "ok" (a valid response with
    body `body` reaches the client), "truncated" (the client sees a
    response that is visibly cut short, or a 502), or "either" (502 or
    "ok"). poison: the backend connection must not be reused (bytes followed
    the response, or its end was unclear). action: what the backend does
    after answering ("keep" serves more requests on the connection; then a
    wrongly reused connection would hand the next client the leftover
    bytes)."""

    def __init__(self, name, raw, expect, body=b"ok", poison=False, action="keep", method="GET", check=None, settle=0.0):
        self.name = name
        self.settle = settle  # wait before the next request (late bytes must have arrived)
        self.raw = raw
        self.expect = expect
        self.body = body
        self.poison = poison
        self.action = action
        self.method = method
        self.check = check


def no_header(name):
    def check(resp):
        assert resp.header(name) is None, "%s forwarded: %r" % (name, resp.headers)

    return check


RESPONSE_VECTORS = [
    # -- status line (RFC 9112 4) -----------------------------------------------------
    R("garbage-status-line", b"this is not http\r\n\r\n", "502", action="close"),
    R("status-four-digits", b"HTTP/1.1 2000 OK\r\n" + OK2, "502"),
    R("status-two-digits", b"HTTP/1.1 20 OK\r\n" + OK2, "502"),
    R("status-000", b"HTTP/1.1 000 OK\r\n" + OK2, "502"),
    R("status-above-599", b"HTTP/1.1 999 Weird\r\n" + OK2, "502"),
    R("status-no-space", b"HTTP/1.1 200OK\r\n" + OK2, "502"),
    R("version-2.0", b"HTTP/2.0 200 OK\r\n" + OK2, "502"),
    R("version-lowercase", b"http/1.1 200 OK\r\n" + OK2, "502"),
    R("reason-control-byte", b"HTTP/1.1 200 O\x01K\r\n" + OK2, "502"),
    R("reason-bare-cr", b"HTTP/1.1 200 O\rK\r\n" + OK2, "502", action="close"),
    R("bare-lf-line-ends", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", "either"),
    R("empty-lines-before-status-line", b"\r\n\r\nHTTP/1.1 200 OK\r\n" + OK2, "either"),
    # -- length and codings (RFC 9112 6) -----------------------------------------------
    R("cl-not-a-number", b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nok", "502"),
    R("cl-negative", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok", "502"),
    R("cl-lines-different", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!", "502"),
    R("cl-list-different", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok!", "502"),
    R("cl-overflow", b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nok", "502"),
    R("cl-list-same", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", "either"),
    R("cl-with-chunked", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
      "either", poison=True),
    R("te-unknown-coding", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: foo\r\n\r\nokok", "502", action="close"),
    R("te-chunked-twice", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", "502"),
    R("te-chunked-two-lines", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
      "502"),
    R("te-empty", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\nokok", "502", action="close"),
    R("te-chunked-trailing-tab", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\t\r\n\r\n2\r\nok\r\n0\r\n\r\n" + SPLIT,
      "either", poison=True, action="close"),
    R("te-chunked-trailing-space", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked \r\n\r\n2\r\nok\r\n0\r\n\r\n" + SPLIT,
      "either", poison=True, action="close"),
    R("te-chunked-not-last", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nokok", "either",
      body=b"okok", action="close"),
    # -- field lines (RFC 9112 5, RFC 9110 5.5) ------------------------------------------
    R("nul-in-value", b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n" + OK2, "502"),
    R("control-in-value", b"HTTP/1.1 200 OK\r\nX: a\x01b\r\n" + OK2, "502"),
    R("del-in-value", b"HTTP/1.1 200 OK\r\nX: a\x7fb\r\n" + OK2, "502"),
    R("bare-cr-in-value", b"HTTP/1.1 200 OK\r\nX: a\rb\r\n" + OK2, "502"),
    R("bare-cr-ends-head", b"HTTP/1.1 200 OK\r\nX: a\r\n\rXContent-Length: 2\r\n\r\nok", "502", action="close"),
    R("obs-fold", b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n" + OK2, "either"),
    R("space-before-colon", b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", "502"),
    R("line-without-colon", b"HTTP/1.1 200 OK\r\nNoColon\r\n" + OK2, "502"),
    R("first-line-starts-with-space", b"HTTP/1.1 200 OK\r\n X: a\r\n" + OK2, "502"),
    R("name-not-token", b"HTTP/1.1 200 OK\r\nX@Y: a\r\n" + OK2, "502"),
    R("head-too-large", b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 1000) for i in range(20)) + OK2,
      "502"),
    R("too-many-headers", b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(200)) + OK2, "502"),
    R("connection-named-header", b"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: s\r\n" + OK2, "ok",
      check=no_header("X-Secret")),
    R("unasked-101", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" + SPLIT,
      "502", action="hold"),
    R("interim-with-content-length", b"HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\n" + OK2,
      "either"),
    R("chunked-after-head-response", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
      "ok", body=b"", poison=True, method="HEAD"),
    R("interim-then-final", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n"
      + OK2, "ok"),
    # -- bytes after the end: never passed on, connection never reused (RFC 9112 6.3) ------
    R("bytes-after-content-length", b"HTTP/1.1 200 OK\r\n" + OK2 + SPLIT, "ok", poison=True),
    R("bytes-after-chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n" + SPLIT, "ok",
      poison=True),
    R("bytes-after-response-later", [b"HTTP/1.1 200 OK\r\n" + OK2, SPLIT], "ok", poison=True, settle=0.4),
    R("body-after-head-response", b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED", "ok", body=b"", poison=True,
      method="HEAD"),
    R("response-after-204", b"HTTP/1.1 204 No Content\r\n\r\n" + SPLIT, "ok", body=b"", poison=True),
    R("body-after-204-with-length", b"HTTP/1.1 204 No Content\r\nContent-Length: 8\r\n\r\nSMUGGLED", "ok", body=b"",
      poison=True),
    R("body-after-304-with-length", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 8\r\n\r\nSMUGGLED", "ok", body=b"",
      poison=True),
    R("chunked-after-304", b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
      "ok", body=b"", poison=True),
    # -- bodies ended by close, cut short, or broken --------------------------------------
    R("ended-by-close", b"HTTP/1.1 200 OK\r\n\r\nbody until close", "ok", body=b"body until close", action="close"),
    R("content-length-cut-short", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", "truncated",
      action="close"),
    R("chunked-cut-short", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n", "truncated",
      action="close"),
    R("chunk-size-invalid", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n", "truncated",
      action="close"),
    R("chunk-data-longer", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n", "truncated",
      action="close"),
    R("chunk-ext-bare-lf", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x\nok\r\n0\r\n\r\n", "truncated",
      action="close"),
    R("chunk-trailer-obs-fold", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX: a\r\n b\r\n\r\n",
      "truncated", action="close"),
]


def read_or_cut(c, method):
    """(response, cut): reads one response; cut is True when the connection
    closed before its end (PeerClosed)."""
    deadline = time.monotonic() + RESPONSE_WAIT
    interim = []
    for _ in range(10):
        head = c.read_head(deadline)
        if not 100 <= head.status < 200 or head.status == 101:
            break
        interim.append(head)
    head.interim = interim
    try:
        c.read_body(head, method, time.monotonic() + RESPONSE_WAIT)
        return head, False
    except PeerClosed:
        return head, True


@pytest.mark.parametrize("v", RESPONSE_VECTORS, ids=[v.name for v in RESPONSE_VECTORS])
def test_hostile_response(start_usher, raw_backend, v):
    def respond(req):
        if req.target.startswith(b"/r"):
            return v.raw, v.action
        return AFTER

    rb = raw_backend(respond=respond)
    u = start(start_usher, rb)
    with RawHTTPConnection("127.0.0.1", u.port, timeout=CLIENT_TIMEOUT) as c:
        c.request(v.method, "/r")
        try:
            resp, cut = read_or_cut(c, v.method)
        except (TimeoutError, OSError, ProtocolError) as e:
            raise AssertionError("no usable response to %s: %r (the client had %r)" % (v.name, e, bytes(c.buf)))
        assert b"SMUGGLED" not in resp.body and b"SMUGGLED" not in bytes(c.buf), "bytes after the response passed on"
        if resp.status == 502 and resp.header("Content-Type", "").startswith("application/json"):
            assert v.expect in ("502", "truncated", "either"), "usher answered 502 to a valid response: %r" % resp
            assert not cut
        elif v.expect == "502":
            raise AssertionError("usher forwarded an invalid response instead of 502: %r %r" % (resp.raw_head, resp.body))
        elif v.expect == "truncated":
            assert cut or resp.framing == "close" and c.eof, "a broken body was delivered as complete: %r" % resp
            assert resp.body != b"ok" or resp.framing != "length", resp
        else:
            assert not cut, "a valid response was cut short: %r" % resp
            assert resp.status in (200, 204, 304), "unexpected status %d in %r" % (resp.status, resp.raw_head)
            assert resp.body == v.body, "body %r, expected %r" % (resp.body, v.body)
            if v.check:
                v.check(resp)
        closed = cut or resp.framing == "close" or resp.has_token("Connection", "close")
        # the same client connection still gets the right answer to its next request
        if not closed:
            time.sleep(v.settle)
            c.request("GET", "/after")
            try:
                r2 = read_response(c)
            except (TimeoutError, OSError, ProtocolError) as e:
                raise AssertionError("no answer to the next request after %s: %r (client got %r)" % (v.name, e, bytes(c.buf)))
            assert r2.body == b"after", "the next request got %r (a reused poisoned connection?)" % r2
    # a fresh client gets the right answer too
    with RawHTTPConnection("127.0.0.1", u.port, timeout=CLIENT_TIMEOUT) as c2:
        c2.request("GET", "/after-new")
        r3 = read_response(c2)
        assert r3.body == b"after", "a new client got %r" % r3
    reqs, probs, _ = backend_view(rb)
    assert not probs, "usher sent the backend something invalid: %s" % probs
    conn_r = {r.conn for r in reqs if r.target == b"/r"}
    assert len(conn_r) == 1 and len([r for r in reqs if r.target == b"/r"]) == 1, "GET /r went out %r" % reqs
    if v.poison:
        later = [r for r in reqs if r.target.startswith(b"/after")]
        reused = [r for r in later if r.conn in conn_r]
        assert not reused, "the backend connection was reused after %s: %r" % (v.name, reused)


# -- sequences on one connection ----------------------------------------------------


def test_http09_request_does_not_open_a_raw_channel(start_usher, raw_backend):
    """After an HTTP/0.9 request (which must itself be rejected), the next head
    on the same connection must never reach the backend as raw bytes. With
    llhttp's loose mode the parser swallows everything after a message that
    does not keep the connection alive, while usher keeps it open: the whole
    next head then goes out as the "method" of a request usher builds."""
    rb = raw_backend()
    u = start(start_usher, rb)
    with RawHTTPConnection("127.0.0.1", u.port, timeout=CLIENT_TIMEOUT) as c:
        c.send(b"GET /first\r\n\r\n")
        r1 = read_response(c)
        if from_usher(r1) and r1.status == 400:
            assert c.wait_closed(CLOSE_WAIT)
            return  # rejected, as it should be
        c.send(b"GET\t/smuggled\tHTTP/1.1\r\nHost:internal\r\nX-Forwarded-For:6.6.6.6\r\n\r\n")
        try:
            read_response(c)
        except (TimeoutError, OSError, ProtocolError):
            pass
    time.sleep(0.2)
    got = b"".join(rb.all_received().values())
    assert b"Host:internal" not in got and b"6.6.6.6" not in got, (
        "the raw bytes of a client head reached the backend unchecked: %r" % got
    )
    pytest.fail("HTTP/0.9 request accepted (%r); the backend got %r" % (r1, got))


def test_malformed_request_after_a_good_one_gets_400(start_usher, raw_backend):
    """A keep-alive connection: the second request is malformed. The client
    must get usher's 400 (and then the close), like on a fresh connection."""
    rb = raw_backend()
    u = start(start_usher, rb)
    with RawHTTPConnection("127.0.0.1", u.port, timeout=CLIENT_TIMEOUT) as c:
        c.send(get(target=b"/first"))
        r1 = read_response(c)
        assert r1.status == 200 and not from_usher(r1), r1
        c.send(get(b"Bad Header\r\n", target=b"/second"))
        try:
            r2 = read_response(c)
        except PeerClosed:
            pytest.fail("usher closed the connection without answering the malformed second request")
        assert from_usher(r2) and r2.status == 400, r2
        assert c.wait_closed(CLOSE_WAIT)
    reqs, _ = assert_nothing_ambiguous(rb, 1)
    assert [r.target for r in reqs] == [b"/first"]


def test_connection_close_trailer_does_not_break_the_next_request(start_usher, raw_backend):
    """A chunked request whose trailer section holds "Connection: close": the
    trailer is not the head (RFC 9110 6.5.1: framing and connection fields in
    trailers are ignored), so the next request on the connection is served;
    at the very least it must be answered, never dropped or forwarded raw."""
    rb = raw_backend()
    u = start(start_usher, rb)
    with RawHTTPConnection("127.0.0.1", u.port, timeout=CLIENT_TIMEOUT) as c:
        c.send(chunked(b"0\r\nConnection: close\r\n\r\n"))
        r1 = read_response(c)
        assert r1.status == 200 and not from_usher(r1), r1
        if r1.has_token("Connection", "close"):
            assert c.wait_closed(CLOSE_WAIT)
            return
        c.send(get(target=b"/next"))
        try:
            r2 = read_response(c)
        except PeerClosed:
            pytest.fail("the request after a Connection: close trailer was dropped (connection closed, no answer)")
        assert r2.status in (200, 400), r2
    assert_nothing_ambiguous(rb, 2)


def early_413(conn, num):
    """Answers 413 (Connection: close) as soon as a request head has
    arrived, without reading the body, and closes half a second later."""
    conn.settimeout(5)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = conn.recv(4096)
        if not d:
            break
        buf += d
    if buf:
        conn.sendall(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        time.sleep(0.5)


def test_early_final_response_announces_close(start_usher, py_backend):
    """The backend answers (413, Connection: close) before the request body
    has arrived. usher cannot keep the client connection (the rest of the
    body would be read as the next request), so the response it forwards
    must say "Connection: close" (RFC 9112 9.6) rather than close unannounced."""
    be = py_backend(TCPBackend, handler=early_413)
    u = start_usher([be.port], "--threads", "1")
    with RawHTTPConnection("127.0.0.1", u.port, timeout=CLIENT_TIMEOUT) as c:
        c.send(b"POST /big HTTP/1.1\r\nHost: usher.test\r\nContent-Length: 100\r\n\r\nabc")
        r = read_response(c, "POST")
        assert r.status == 413, r
        announced = r.has_token("Connection", "close")
        closed = c.wait_closed(3)
        assert announced or not closed, "usher closed the connection after %r without Connection: close" % r.raw_head


def test_vector_count():
    """The issue asks for at least 60 hostile vectors."""
    assert len(REQUEST_VECTORS) + len(RESPONSE_VECTORS) >= 60
