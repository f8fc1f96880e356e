"""Request and response bodies survive the proxy byte for byte: empty,
1 MiB, chunked, and 64 MiB streamed in both directions."""

import random
import zlib

import pytest

from harness.load import run_parallel
from http_raw import chunked_encode

MiB = 1 << 20


def crc_hex(data):
    return "%08x" % (zlib.crc32(data) & 0xFFFFFFFF)


def pattern(n, offset=0):
    """The /bytes body: byte i = 'a' + i % 26."""
    alphabet = bytes(range(ord("a"), ord("a") + 26))
    start = offset % 26
    reps = (n + start) // 26 + 1
    return (alphabet * reps)[start : start + n]


def random_bytes(n, seed):
    return random.Random(seed).randbytes(n)


def check_echo(resp_json, method, body):
    assert resp_json["method"] == method
    assert resp_json["body_length"] == len(body)
    assert resp_json["body_crc32"] == crc_hex(body)


# -- request bodies ---------------------------------------------------------


def test_empty_body_post(usher):
    with usher.client() as c:
        r = c.post("/echo", content=b"")
        assert r.status_code == 200
        check_echo(r.json(), "POST", b"")


def test_one_mib_body(usher):
    body = random_bytes(MiB, 1)
    with usher.client() as c:
        r = c.put("/echo/upload", content=body)
        assert r.status_code == 200
        check_echo(r.json(), "PUT", body)
        # Twice, so both backends have handled one.
        r2 = c.put("/echo/upload", content=body)
        assert r2.status_code == 200
        check_echo(r2.json(), "PUT", body)
        assert {r.headers["x-backend"], r2.headers["x-backend"]} == {"backend1", "backend2"}


def test_chunked_request_body_httpx(usher):
    parts = [random_bytes(n, n) for n in (1, 100, 4096, 65536, 3, 200000)]
    body = b"".join(parts)

    def gen():
        yield from parts

    with usher.client() as c:
        r = c.post("/echo/chunked", content=gen())
        assert r.status_code == 200
        j = r.json()
        check_echo(j, "POST", body)


def test_chunked_request_body_raw_with_extensions_and_trailer(usher):
    parts = [b"x" * 10, random_bytes(300, 7), b"\r\n0\r\n\r\n", random_bytes(70000, 8)]
    body = b"".join(parts)
    wire = chunked_encode(parts, trailers=[("X-Trailer", "yes")], extension="ext=1")
    with usher.raw() as c:
        c.request("POST", "/echo/raw-chunked", [("Transfer-Encoding", "chunked")])
        c.send(wire)
        r = c.read_response()
        assert r.status == 200, r
        check_echo(r.json(), "POST", body)
        # The connection is still in sync afterwards.
        r2 = c.roundtrip("GET", "/echo/after")
        assert r2.status == 200
        assert r2.json()["path"] == "/echo/after"


def test_chunked_request_body_split_across_writes(usher):
    """Chunk framing split at awkward places across several TCP writes."""
    parts = [random_bytes(n, n + 99) for n in (17, 5000, 1)]
    body = b"".join(parts)
    wire = chunked_encode(parts)
    with usher.raw() as c:
        c.request("POST", "/echo/split", [("Transfer-Encoding", "chunked")])
        for i in range(0, len(wire), 7):
            c.send(wire[i : i + 7])
        r = c.read_response()
        assert r.status == 200, r
        check_echo(r.json(), "POST", body)


# -- response bodies --------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_one_mib_response(usher, chunked):
    n = MiB
    target = "/bytes?n=%d%s" % (n, "&chunked=1" if chunked else "")
    with usher.client() as c:
        r = c.get(target)
        assert r.status_code == 200
        data = r.content
        assert len(data) == n
        assert r.headers["x-body-crc32"].lower() == crc_hex(data)
        assert data == pattern(n)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_response_raw_framing(usher, chunked):
    """Raw reader: the framing usher sends is valid and the body exact, and
    the connection stays usable for a second request."""
    n = 300000
    target = "/bytes?n=%d%s" % (n, "&chunked=1" if chunked else "")
    with usher.raw() as c:
        r = c.roundtrip("GET", target)
        assert r.status == 200, r
        assert r.framing in ("length", "chunked"), "keep-alive response must be self-delimited, got %s" % r.framing
        assert r.body == pattern(n)
        assert r.header("X-Body-CRC32").lower() == crc_hex(r.body)
        r2 = c.roundtrip("GET", "/bytes?n=5")
        assert r2.status == 200
        assert r2.body == b"abcde"


# -- 64 MiB streamed ----------------------------------------------------------

BIG = 64 * MiB


def test_64mib_upload_streamed(usher):
    block = random_bytes(MiB, 64)
    blocks = BIG // MiB
    crc = 0
    for i in range(blocks):
        crc = zlib.crc32(block[i % 7 :] + block[: i % 7], crc)
    expected_crc = "%08x" % (crc & 0xFFFFFFFF)

    def gen():
        for i in range(blocks):
            yield block[i % 7 :] + block[: i % 7]

    with usher.client(timeout=60) as c:
        r = c.post("/echo/big", content=gen(), headers={"Content-Length": str(BIG)})
        assert r.status_code == 200
        j = r.json()
        assert j["body_length"] == BIG
        assert j["body_crc32"] == expected_crc


def test_64mib_chunked_upload_streamed(usher):
    block = random_bytes(MiB, 65)
    blocks = BIG // MiB
    crc = 0
    for i in range(blocks):
        crc = zlib.crc32(block[i:] + block[:i], crc)

    def gen():
        for i in range(blocks):
            yield block[i:] + block[:i]

    with usher.client(timeout=60) as c:
        r = c.post("/echo/big-chunked", content=gen())
        assert r.status_code == 200
        j = r.json()
        assert j["body_length"] == BIG
        assert j["body_crc32"] == "%08x" % (crc & 0xFFFFFFFF)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_64mib_download_streamed(usher, chunked):
    target = "/bytes?n=%d%s" % (BIG, "&chunked=1" if chunked else "")
    crc = 0
    total = 0
    mismatch_at = None
    with usher.client(timeout=60) as c:
        with c.stream("GET", target) as r:
            assert r.status_code == 200
            announced = r.headers["x-body-crc32"].lower()
            for piece in r.iter_bytes():
                if mismatch_at is None and piece != pattern(len(piece), total):
                    mismatch_at = total
                crc = zlib.crc32(piece, crc)
                total += len(piece)
                assert total <= BIG, "more bytes than requested"
    assert total == BIG
    assert mismatch_at is None, "body differs from the pattern near offset %d" % mismatch_at
    assert "%08x" % (crc & 0xFFFFFFFF) == announced


def test_concurrent_uploads_and_downloads(usher):
    """Several clients at once, bodies must not get mixed up."""
    def client(k):
        with usher.client() as c:
            for i in range(4):
                body = random_bytes(100000 + 997 * k + i, 1000 * k + i)
                r = c.post("/echo/k%d/%d" % (k, i), content=body)
                assert r.status_code == 200
                j = r.json()
                assert j["path"] == "/echo/k%d/%d" % (k, i)
                assert (j["body_length"], j["body_crc32"]) == (len(body), crc_hex(body))
                n = 50000 + 31 * k + i
                r = c.get("/bytes?n=%d%s" % (n, "&chunked=1" if i % 2 else ""))
                assert r.status_code == 200 and r.content == pattern(n)

    errors, running = run_parallel(client, 8)
    assert not running, "clients still running after 60 s"
    assert not errors, errors
