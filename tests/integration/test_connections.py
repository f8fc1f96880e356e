"""Connection semantics: pipelining, HTTP/1.0, Connection: close,
Expect: 100-continue, interim 1xx responses, close-delimited backend
responses, and WebSocket upgrade and tunnelling."""

import zlib

from http_raw import (
    WS_BINARY,
    WS_CLOSE,
    WS_TEXT,
    RawHTTPConnection,
    build_request,
    ws_accept_for,
    ws_encode_frame,
    ws_new_key,
    ws_read_message,
)


def crc_hex(data):
    return "%08x" % (zlib.crc32(data) & 0xFFFFFFFF)


# -- pipelining ---------------------------------------------------------------


def test_pipelined_requests_answered_in_order(usher):
    body = b"pipelined body \x00\xff" * 100
    wire = (
        build_request("GET", "/echo/1")
        + build_request("POST", "/echo/2", body=body)
        + build_request("GET", "/echo/3?q=3")
    )
    with usher.raw() as c:
        c.send(wire)
        r1, r2, r3 = (c.read_response() for _ in range(3))
        for r in (r1, r2, r3):
            assert r.status == 200, r
        j1, j2, j3 = r1.json(), r2.json(), r3.json()
        assert (j1["path"], j2["path"], j3["path"]) == ("/echo/1", "/echo/2", "/echo/3")
        assert j3["query"] == "q=3"
        assert j2["method"] == "POST"
        assert j2["body_length"] == len(body)
        assert j2["body_crc32"] == crc_hex(body)
        assert j1["body_length"] == 0 and j3["body_length"] == 0
        # Still usable.
        r4 = c.roundtrip("GET", "/echo/4")
        assert r4.json()["path"] == "/echo/4"


def test_pipelined_slow_first_response_stays_first(usher):
    """A slow first request must not be overtaken by a fast second one,
    even if usher sends them to different backends."""
    wire = build_request("GET", "/slow?ms=500") + build_request("GET", "/echo/fast") + build_request("GET", "/echo/last")
    with usher.raw() as c:
        c.send(wire)
        r1 = c.read_response()
        r2 = c.read_response()
        r3 = c.read_response()
    assert r1.status == 200, r1
    assert b"/echo/fast" not in r1.body, "response to the 2nd request arrived first: %r" % r1
    assert r2.json()["path"] == "/echo/fast"
    assert r3.json()["path"] == "/echo/last"


def test_pipelined_mixed_bodiless_responses(usher):
    wire = (
        build_request("HEAD", "/bytes?n=1234")
        + build_request("GET", "/status/204")
        + build_request("GET", "/bytes?n=10&chunked=1")
        + build_request("GET", "/status/304")
        + build_request("DELETE", "/echo/end")
    )
    with usher.raw() as c:
        c.send(wire)
        r = c.read_response("HEAD")
        assert r.status == 200 and r.body == b"" and r.header("Content-Length") == "1234", r
        r = c.read_response()
        assert r.status == 204 and r.body == b"", r
        r = c.read_response()
        assert r.status == 200 and r.body == b"abcdefghij", r
        r = c.read_response()
        assert r.status == 304 and r.body == b"", r
        r = c.read_response()
        assert r.status == 200, r
        assert r.json()["method"] == "DELETE"


def test_request_sent_byte_by_byte(usher):
    body = b"0123456789"
    wire = build_request("PUT", "/echo/slowly?a=1", [("X-Slow", "yes")], body=body)
    with usher.raw() as c:
        for i in range(len(wire)):
            c.send(wire[i : i + 1])
        r = c.read_response()
    assert r.status == 200, r
    j = r.json()
    assert (j["method"], j["path"], j["query"]) == ("PUT", "/echo/slowly", "a=1")
    assert j["body_crc32"] == crc_hex(body)
    assert ["X-Slow", "yes"] in j["headers"]


# -- HTTP/1.0 and Connection: close ---------------------------------------------


def test_http10_without_keepalive_is_closed(usher):
    with usher.raw() as c:
        r = c.roundtrip("GET", "/echo/ten", version="HTTP/1.0")
        assert r.status == 200, r
        assert r.framing != "chunked", "chunked response sent to an HTTP/1.0 client"
        assert r.json()["path"] == "/echo/ten"
        if r.framing != "close":
            assert c.wait_closed(10), "usher kept an HTTP/1.0 connection without keep-alive open"


def test_http10_keepalive_is_kept(usher):
    with usher.raw() as c:
        r = c.roundtrip("GET", "/echo/ka1", [("Connection", "keep-alive")], version="HTTP/1.0")
        assert r.status == 200, r
        assert r.framing == "length", "keep-alive response to HTTP/1.0 must have Content-Length, got %s" % r.framing
        assert r.has_token("Connection", "keep-alive"), "HTTP/1.0 client not told the connection stays open: %r" % r.headers
        r2 = c.roundtrip("GET", "/echo/ka2", [("Connection", "keep-alive")], version="HTTP/1.0")
        assert r2.status == 200, r2
        assert r2.json()["path"] == "/echo/ka2"
        # Without keep-alive this time: closed after the response.
        r3 = c.roundtrip("GET", "/echo/ka3", version="HTTP/1.0")
        assert r3.status == 200, r3
        assert r3.json()["path"] == "/echo/ka3"
        if r3.framing != "close":
            assert c.wait_closed(10)


def test_http10_client_chunked_backend_response(usher):
    """The backend answers chunked; an HTTP/1.0 client cannot read chunked,
    so usher must deliver the plain body (by length or by close)."""
    n = 5000
    with usher.raw() as c:
        r = c.roundtrip("GET", "/bytes?n=%d&chunked=1" % n, version="HTTP/1.0")
    assert r.status == 200, r
    assert r.framing in ("length", "close"), "framing %s sent to an HTTP/1.0 client" % r.framing
    assert r.header("Transfer-Encoding") is None
    assert len(r.body) == n
    assert r.header("X-Body-CRC32").lower() == crc_hex(r.body)


def test_connection_close_from_http11_client(usher):
    with usher.raw() as c:
        r = c.roundtrip("GET", "/echo/bye", [("Connection", "close")])
        assert r.status == 200, r
        assert r.json()["path"] == "/echo/bye"
        if r.framing != "close":
            assert c.wait_closed(10), "usher did not close after Connection: close"


def test_keepalive_connection_stays_open(usher):
    """Without Connection: close an HTTP/1.1 connection is not closed after
    a response."""
    with usher.raw() as c:
        r = c.roundtrip("GET", "/echo/stay")
        assert r.status == 200
        assert not r.has_token("Connection", "close"), r.headers
        assert not c.wait_closed(1.0), "usher closed a keep-alive connection"
        r2 = c.roundtrip("GET", "/echo/stay2")
        assert r2.json()["path"] == "/echo/stay2"


# -- 1xx ----------------------------------------------------------------------


def test_expect_100_continue(usher):
    body = bytes(range(256)) * 4096  # 1 MiB
    with usher.raw() as c:
        c.send(
            build_request(
                "PUT", "/echo/expect", [("Expect", "100-continue"), ("Content-Length", str(len(body)))]
            )
        )
        interim = c.read_head()
        assert interim.status == 100, "expected 100 Continue before sending the body, got %r" % interim
        assert interim.version == "HTTP/1.1"
        c.send(body)
        r = c.read_response("PUT")
        assert r.status == 200, r
        assert all(i.status == 100 for i in r.interim), r.interim
        j = r.json()
        assert j["method"] == "PUT"
        assert j["body_length"] == len(body)
        assert j["body_crc32"] == crc_hex(body)
        # The connection is in sync afterwards.
        r2 = c.roundtrip("GET", "/echo/after-expect")
        assert r2.json()["path"] == "/echo/after-expect"


def test_early_hints_passed_on(backends, usher):
    with RawHTTPConnection("127.0.0.1", backends[0].port) as d:
        direct = d.roundtrip("GET", "/early-hints", [("Connection", "close")])
    assert [i.status for i in direct.interim] == [103], "demo-backend sanity check"
    for _ in range(2):  # both backends
        with usher.raw() as c:
            r = c.roundtrip("GET", "/early-hints")
            assert [i.status for i in r.interim] == [103], "103 Early Hints not passed on: %r" % r
            hint = r.interim[0]
            for link in direct.interim[0].header_all("Link"):
                assert link in hint.header_all("Link"), hint.headers
            assert r.status == 200, r
            assert r.json() == {"message": "Hello from %s" % r.header("X-Backend")}
            r2 = c.roundtrip("GET", "/echo/after-103")
            assert r2.json()["path"] == "/echo/after-103"


# -- close-delimited backend response -------------------------------------------


def test_close_delimited_backend_response(backends, usher):
    direct = {}
    for b in backends:
        with RawHTTPConnection("127.0.0.1", b.port) as d:
            r = d.roundtrip("GET", "/close")
        assert r.framing == "close", "demo-backend sanity check: /close should be close-delimited"
        assert r.body, "demo-backend sanity check: /close body is empty"
        direct[b.name] = r.body
    for _ in range(2):
        with usher.raw() as c:
            r = c.roundtrip("GET", "/close")
            assert r.status == 200, r
            assert r.header("X-Backend") in direct, r.headers
            assert r.body == direct[r.header("X-Backend")]
            if r.framing != "close":
                # Re-framed: then the connection must still be usable.
                r2 = c.roundtrip("GET", "/echo/after-close-delimited")
                assert r2.json()["path"] == "/echo/after-close-delimited"


def test_close_delimited_then_other_requests_work(usher):
    with usher.client() as c:
        for i in range(6):
            r = c.get("/close" if i % 2 == 0 else "/echo/x")
            assert r.status_code == 200


# -- WebSocket --------------------------------------------------------------------


def ws_handshake(c, key):
    c.request(
        "GET",
        "/ws",
        [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key),
            ("Sec-WebSocket-Version", "13"),
        ],
    )
    r = c.read_response()
    assert r.status == 101, r
    assert (r.header("Upgrade") or "").lower() == "websocket", r.headers
    assert r.has_token("Connection", "upgrade"), r.headers
    assert r.header("Sec-WebSocket-Accept") == ws_accept_for(key), r.headers
    return r


def test_websocket_echo(usher):
    key = ws_new_key()
    with usher.raw() as c:
        ws_handshake(c, key)
        messages = [
            (WS_TEXT, "hello through usher \u2603".encode("utf-8")),
            (WS_BINARY, bytes(range(256)) * 2),  # 16-bit length
            (WS_TEXT, b""),
            (WS_BINARY, bytes((i * 7) & 0xFF for i in range(70000))),  # 64-bit length
        ]
        for op, payload in messages:
            c.send(ws_encode_frame(op, payload))
            got_op, got = ws_read_message(c)
            assert got_op == op
            assert got == payload
        # Several frames in one write come back in order.
        burst = [(WS_TEXT, ("msg %d" % i).encode()) for i in range(10)]
        c.send(b"".join(ws_encode_frame(op, p) for op, p in burst))
        for op, payload in burst:
            assert ws_read_message(c) == (op, payload)
        # Close handshake.
        c.send(ws_encode_frame(WS_CLOSE, (1000).to_bytes(2, "big") + b"bye"))
        op, payload = ws_read_message(c)
        assert op == WS_CLOSE
        if payload:
            assert int.from_bytes(payload[:2], "big") == 1000
        assert c.wait_closed(10), "TCP connection not closed after the WebSocket close handshake"


def test_declined_upgrade_keeps_http(usher):
    """An upgrade request the backend answers with 200 (not 101) leaves the
    connection in HTTP mode, or usher announces Connection: close and
    closes it; it never stays open in some other state."""
    with usher.raw() as c:
        r = c.roundtrip("GET", "/echo/no-upgrade", [("Connection", "Upgrade"), ("Upgrade", "websocket")])
        assert r.status == 200, r
        assert r.json()["path"] == "/echo/no-upgrade"
        if r.has_token("Connection", "close") or r.framing == "close":
            assert c.wait_closed(10), "Connection: close announced but the connection stays open"
            return
        r2 = c.roundtrip("GET", "/echo/still-http")
        assert r2.status == 200, r2
        assert r2.json()["path"] == "/echo/still-http"


def test_websocket_does_not_disturb_other_connections(usher):
    key = ws_new_key()
    with usher.raw() as ws:
        ws_handshake(ws, key)
        with usher.client() as h:
            for i in range(4):
                r = h.get("/echo/during-ws-%d" % i)
                assert r.status_code == 200
                ws.send(ws_encode_frame(WS_TEXT, b"tick %d" % i))
                assert ws_read_message(ws) == (WS_TEXT, b"tick %d" % i)
