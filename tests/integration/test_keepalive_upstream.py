"""Upstream connection reuse, observed with a small capture backend written
here in Python that counts the TCP connections it accepts and records which
requests came on which connection."""

import time

import pytest

from http_raw import RawHTTPConnection

N = 50


def one_request(port, path, headers=()):
    """One request on its own client connection; the client closes it."""
    with RawHTTPConnection("127.0.0.1", port) as c:
        r = c.roundtrip("GET", path, list(headers))
    assert r.status == 200, r
    assert r.body == b"ok", r
    return r


@pytest.mark.parametrize("client_close_header", [False, True], ids=["client-closes", "connection-close"])
def test_upstream_connections_are_reused(capture, start_usher, client_close_header):
    cb = capture(mode="keepalive")
    u = start_usher([cb.port], "--threads", "1")
    headers = [("Connection", "close")] if client_close_header else []
    for i in range(N):
        one_request(u.port, "/ka/%d" % i, headers)
    assert cb.paths("/ka/") == ["/ka/%d" % i for i in range(N)]
    used = cb.connections_with("/ka/")
    assert len(used) <= 5, "%d requests over separate client connections used %d upstream connections" % (N, len(used))
    assert not cb.errors, cb.errors


def test_upstream_reuse_with_keepalive_client(capture, start_usher):
    cb = capture(mode="keepalive")
    u = start_usher([cb.port], "--threads", "1")
    with u.raw() as c:
        for i in range(N):
            r = c.roundtrip("GET", "/kc/%d" % i)
            assert r.status == 200 and r.body == b"ok", r
    used = cb.connections_with("/kc/")
    assert len(used) <= 5, "%d requests used %d upstream connections" % (N, len(used))


def test_backend_closing_idle_connection(capture, start_usher):
    """The capture backend closes connections idle for 0.3 s. Requests made
    after such a close must still succeed: usher must not reuse (or must
    recover from) a pooled connection the backend has closed."""
    cb = capture(mode="idle-close", idle=0.3)
    u = start_usher([cb.port], "--threads", "1")
    for i in range(4):
        one_request(u.port, "/idle/%d" % i)
        time.sleep(0.8)
    with u.raw() as c:  # same through a keep-alive client connection
        for i in range(4, 7):
            r = c.roundtrip("GET", "/idle/%d" % i)
            assert r.status == 200 and r.body == b"ok", r
            time.sleep(0.8)
    assert cb.paths("/idle/") == ["/idle/%d" % i for i in range(7)]
    # Sanity check of the capture backend: it did close the idle connections.
    assert len(cb.connections_with("/idle/")) >= 2


def test_connection_close_from_backend_is_honoured(capture, start_usher):
    """After a response carrying Connection: close usher must not send
    another request on that upstream connection."""
    cb = capture(mode="close-header", linger=3.0)
    u = start_usher([cb.port], "--threads", "1")
    for i in range(6):
        one_request(u.port, "/cc/%d" % i)
    with u.raw() as c:
        for i in range(6, 9):
            r = c.roundtrip("GET", "/cc/%d" % i)
            assert r.status == 200 and r.body == b"ok", r
    assert cb.paths("/cc/") == ["/cc/%d" % i for i in range(9)]
    assert len(cb.connections_with("/cc/")) == 9
    assert not cb.violations, "bytes sent on upstream connections after Connection: close: %r" % cb.violations
