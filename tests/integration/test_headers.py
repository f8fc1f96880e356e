"""Header handling: hop-by-hop headers (and those named in Connection) are
dropped, end-to-end headers arrive in order with case and value intact, and
X-Forwarded-For/-Proto/-Host are added."""


def echo(usher, headers, host="usher.test", method="GET", body=None):
    with usher.raw() as c:
        r = c.roundtrip(method, "/echo/h", headers, body=body, host=host)
    assert r.status == 200, r
    j = r.json()
    return [(k, v) for k, v in j["headers"]]


def values(received, name):
    return [v for k, v in received if k.lower() == name.lower()]


def test_hop_by_hop_headers_removed(usher):
    received = echo(
        usher,
        [
            ("Connection", "keep-alive, X-Secret"),
            ("Keep-Alive", "timeout=5, max=1000"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Upgrade", "foo/2"),
            ("X-Secret", "do-not-forward"),
            ("X-Visible", "forward-me"),
        ],
    )
    names = [k.lower() for k, _ in received]
    assert "keep-alive" not in names, received
    assert "proxy-connection" not in names, received
    assert "te" not in names, received
    assert "upgrade" not in names, received
    assert "x-secret" not in names, received
    assert values(received, "X-Visible") == ["forward-me"]
    # usher may send its own Connection header upstream, but not the client's.
    for v in values(received, "Connection"):
        tokens = {t.strip().lower() for t in v.split(",")}
        assert tokens <= {"keep-alive", "close"}, "client Connection header forwarded: %r" % v


def test_headers_named_in_connection_removed_case_insensitively(usher):
    received = echo(
        usher,
        [
            ("Connection", "x-one"),
            ("connection", "X-TWO , keep-alive"),
            ("X-One", "1"),
            ("x-two", "2"),
            ("X-Three", "3"),
        ],
    )
    names = [k.lower() for k, _ in received]
    assert "x-one" not in names, received
    assert "x-two" not in names, received
    assert values(received, "X-Three") == ["3"]


def test_end_to_end_headers_in_order_with_case_and_values(usher):
    sent = [
        ("X-First", "1"),
        ("X-CaSe-MiXeD", "Value With  Spaces"),
        ("accept", "*/*"),
        ("X-Dup", "a"),
        ("User-Agent", "usher-integration/1.0 (test)"),
        ("X-Dup", "b"),
        ("x-lower", "v=1;q=0.5, \"quoted\""),
        ("X-Empty", ""),
        ("X-Last", "last"),
    ]
    received = echo(usher, sent)
    sent_names = {k for k, _ in sent}
    got = [(k, v) for k, v in received if k in sent_names]
    assert got == sent, "received headers: %r" % received


def test_host_forwarded_as_sent(usher):
    received = echo(usher, [], host="Example.TEST:8443")
    assert values(received, "Host") == ["Example.TEST:8443"]


def test_x_forwarded_for_added(usher):
    received = echo(usher, [])
    assert values(received, "X-Forwarded-For") == ["127.0.0.1"], received


def test_x_forwarded_for_appended(usher):
    received = echo(usher, [("X-Forwarded-For", "1.2.3.4")])
    assert values(received, "X-Forwarded-For") == ["1.2.3.4, 127.0.0.1"], received


def test_x_forwarded_for_appended_to_list(usher):
    received = echo(usher, [("X-Forwarded-For", "10.0.0.1, 192.168.1.2")])
    assert values(received, "X-Forwarded-For") == ["10.0.0.1, 192.168.1.2, 127.0.0.1"], received


def test_x_forwarded_proto_and_host(usher):
    received = echo(usher, [], host="front.example:8080")
    assert values(received, "X-Forwarded-Proto") == ["http"], received
    assert values(received, "X-Forwarded-Host") == ["front.example:8080"], received


def test_forwarded_headers_on_every_keepalive_request(usher):
    """Headers are rewritten per request, not just on the first one of a
    connection."""
    with usher.raw() as c:
        for i in range(4):
            xff = "9.9.9.%d" % i
            r = c.roundtrip("GET", "/echo/k%d" % i, [("X-Forwarded-For", xff), ("X-Req", str(i))], host="h%d.test" % i)
            assert r.status == 200, r
            received = [(k, v) for k, v in r.json()["headers"]]
            assert values(received, "X-Forwarded-For") == [xff + ", 127.0.0.1"]
            assert values(received, "X-Forwarded-Host") == ["h%d.test" % i]
            assert values(received, "X-Req") == [str(i)]
            assert values(received, "Host") == ["h%d.test" % i]


def test_request_body_framing_headers(usher):
    """A body sent with Content-Length arrives with a single consistent
    framing header, and no leftover client hop-by-hop header."""
    body = b"hello body"
    with usher.raw() as c:
        r = c.roundtrip("POST", "/echo/b", [("Connection", "keep-alive, X-Gone"), ("X-Gone", "1")], body=body)
    assert r.status == 200, r
    j = r.json()
    received = [(k, v) for k, v in j["headers"]]
    assert j["body_length"] == len(body)
    cl = values(received, "Content-Length")
    te = values(received, "Transfer-Encoding")
    assert (cl == [str(len(body))] and not te) or (not cl and te == ["chunked"]), received
    assert "x-gone" not in [k.lower() for k, _ in received]
