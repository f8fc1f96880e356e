"""HTTP/2 streams through usher (issue 12 item 7): many concurrent streams
over the backends, large bodies both ways checked by SHA-256 at both ends,
flow control with small windows, client resets, GOAWAY at a graceful stop
and at a reload that removes the listener (a reload that keeps it keeps the
connection, as for HTTP/1), the limit on streams per connection.

The client is python3-h2 (harness/h2attack.H2Client): it checks the
server's frames and flow control itself (a server that sends past a window
makes it raise). Where a frame must be sent that python3-h2 would not send
(a stream after a GOAWAY), harness/h2attack.Pump sends it by hand. These
tests skip only while usher does not know the h2 keys (HTTP/2 not built
yet)."""

import hashlib
import os
import signal
import time

import pytest

from harness import h2attack
from harness.hash_backend import HashBackend, payload
from harness.h2usher import h2_config, require_h2, start_h2_usher

MB = 1 << 20


@pytest.fixture
def hash_backends():
    bs = [HashBackend("hash1"), HashBackend("hash2")]
    yield bs
    for b in bs:
        b.stop()


@pytest.fixture
def h2_start(run_usher, tmp_path, start_usher_file_tls, certs):
    """h2_start(backends, h2={}, timeouts={}) -> harness.h2usher.H2Usher."""
    require_h2(run_usher, tmp_path)

    def start(backends, **kw):
        return start_h2_usher(start_usher_file_tls, h2_config(certs.a_ec, backends, **kw))

    return start


@pytest.mark.parametrize("tls", [False, True], ids=["prior-knowledge", "tls"])
def test_100_concurrent_streams_over_both_backends(h2_start, backends, tls):
    u = h2_start(backends)
    with h2attack.H2Client(u.port(tls), tls, timeout=30) as c:
        assert c.conn.remote_settings.max_concurrent_streams == 100
        sids = [c.start("GET", "/echo/%d" % k) for k in range(100)]
        rs = c.wait(sids, timeout=60)
    seen = {}
    for k, r in enumerate(rs):
        assert r.reset_code is None, "stream %d reset with %r" % (r.stream_id, r.reset_code)
        assert r.status == 200, (r.status, bytes(r.body[:200]))
        assert ('"/echo/%d"' % k).encode() in bytes(r.body), bytes(r.body[:300])
        seen[r.header("x-backend")] = seen.get(r.header("x-backend"), 0) + 1
    assert set(seen) == {"backend1", "backend2"}, seen
    assert min(seen.values()) >= 40, seen  # round robin: about half each


def test_large_bodies_both_ways_checked_by_sha256(h2_start, hash_backends):
    """3 uploads and 3 downloads of 4-6 MB at once on one connection: the
    backend's SHA-256 of each upload is the client's, each download's SHA-256
    at the client is the one the backend computed over what it sent."""
    u = h2_start(hash_backends)
    uploads = {}
    downloads = {}
    with h2attack.H2Client(u.plain, False, timeout=60, window=1 << 20, conn_window=8 << 20) as c:
        for k in range(3):
            body = os.urandom((4 + k) * MB)
            sid = c.start("POST", "/up/%d" % k, headers=[("content-type", "application/octet-stream")], body=body)
            uploads[sid] = body
            n = (4 + k) * MB + 12345
            sid = c.start("GET", "/dl?n=%d&seed=%d" % (n, k))
            downloads[sid] = (n, k)
        rs = c.wait(list(uploads) + list(downloads), timeout=120)
    for r in rs:
        assert r.reset_code is None and r.status == 200, (r.stream_id, r.status, r.reset_code)
        if r.stream_id in uploads:
            body = uploads[r.stream_id]
            assert r.header("x-body-length") == str(len(body)), r.headers
            assert r.header("x-body-sha256") == hashlib.sha256(body).hexdigest(), "upload %d arrived changed" % r.stream_id
        else:
            n, seed = downloads[r.stream_id]
            got = bytes(r.body)
            assert len(got) == n, (len(got), n)
            assert hashlib.sha256(got).hexdigest() == r.header("x-body-sha256"), "download changed on the way"
            assert got == payload(n, seed)
    assert not any(b.errors for b in hash_backends), [b.errors for b in hash_backends]


def test_flow_control_small_windows(h2_start, hash_backends):
    """h2.initial_window_size 1024 (usher's receive window) and a client
    window of 1024: a 1 MB upload and a 1 MB download still arrive whole,
    and neither side sends past a window (python3-h2 raises if usher does)."""
    u = h2_start(hash_backends, h2={"initial_window_size": 1024})
    body = os.urandom(MB)
    with h2attack.H2Client(u.plain, False, timeout=60, window=1024) as c:
        up = c.start("POST", "/up", body=body)
        dn = c.start("GET", "/dl?n=%d&seed=fc" % MB)
        rs = c.wait([up, dn], timeout=120)
        assert c.conn.remote_settings.initial_window_size == 1024, "usher did not announce its window"
    ru, rd = rs
    assert ru.status == 200 and ru.header("x-body-sha256") == hashlib.sha256(body).hexdigest(), ru.headers
    assert rd.status == 200 and bytes(rd.body) == payload(MB, "fc")


@pytest.mark.parametrize("first", [16367, 16368, 16369, 16370, 16375])
def test_chunked_upload_across_a_buffer_end(h2_start, hash_backends, first):
    """A body without content-length goes up chunked; its first DATA frame
    (first bytes) is forwarded before the next one comes, which leaves the
    16 KiB buffer with a few bytes of room: the next frame must still go up
    whole and right (not past the buffer's end, not in a loop without end)."""
    u = h2_start(hash_backends[:1])
    b = hash_backends[0]
    path = "/up/edge-%d" % first
    one, two = os.urandom(first), os.urandom(300)
    with h2attack.H2Client(u.plain, False, timeout=20) as c:
        sid = c.start("POST", path, end=False)
        c.conn.send_data(sid, one)
        c.flush()
        deadline = time.monotonic() + 10
        while b.received(path) < first and time.monotonic() < deadline:
            c.pump(0.05)
        assert b.received(path) == first, "the first DATA did not reach the backend (%d bytes)" % b.received(path)
        c.conn.send_data(sid, two, end_stream=True)
        c.flush()
        r = c.wait([sid], timeout=20)[0]
    assert r.status == 200, (r.status, r.reset_code)
    assert r.header("x-body-length") == str(first + 300)
    assert r.header("x-body-sha256") == hashlib.sha256(one + two).hexdigest()
    assert u.proc.alive()


def test_client_resets_mid_upload_and_mid_download(h2_start, hash_backends):
    """RST_STREAM halfway through an upload and a download: the backend
    never sees the upload as complete, the other streams of the connection
    and new connections are still served."""
    u = h2_start(hash_backends)
    with h2attack.H2Client(u.plain, False, timeout=30, window=65535) as c:
        # no END_STREAM: however fast the body goes, the upload is still
        # open when it is reset (with it, a fast backend could take all
        # 8 MB before the download had started, on a loaded machine)
        up = c.start("POST", "/up/reset", body=os.urandom(8 * MB), end=False)
        dn = c.start("GET", "/dl?n=%d&seed=rst" % (50 * MB))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(c.responses[dn].body) < 200000:
            c.pump(1.0)
        assert len(c.responses[dn].body) >= 200000, "the download did not start"
        c.reset(up)
        c.reset(dn)
        # the same connection serves a new stream
        r = c.request("POST", "/up/after", body=b"x" * 100000)
        assert r.status == 200 and r.header("x-body-length") == "100000"
    # the reset upload reached the backend, if at all, incomplete
    deadline = time.monotonic() + 10
    seen = []
    while time.monotonic() < deadline:
        seen = [n for b in hash_backends for (m, p, n) in b.requests if p == "/up/reset"]
        if seen:
            break
        time.sleep(0.1)
    assert seen == [None], "the backend saw the reset upload as %r (None: cut short)" % seen
    with h2attack.H2Client(u.plain, False) as c:
        assert c.get("/").status == 200
    assert u.proc.alive()


def _wait_path(backends, path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(path in b.paths() for b in backends):
            return True
        time.sleep(0.02)
    return False


def _graceful(u, backends, trigger, tls=False):
    """A slow stream is in flight when trigger() runs: the final GOAWAY
    names it as the last stream, it finishes with 200, and a stream opened
    after that GOAWAY is not processed (the backend never sees it)."""
    p = h2attack.Pump(u.port(tls), tls)
    try:
        p.queue(h2attack.frame(h2attack.HEADERS, h2attack.END_STREAM | h2attack.END_HEADERS, 1,
                               h2attack.request_block(path="/slow?ms=2500", scheme="https" if tls else "http")))
        p.flush()
        assert _wait_path(backends, "/slow?ms=2500"), "the slow request did not reach a backend"
        trigger()
        # the final GOAWAY: the one whose last stream id is not 2^31-1 (a
        # shutdown notice may come first)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not p.closed and not any(g[1] != 0x7FFFFFFF for g in p.goaways):
            p.step(0.05)
        finals = [g for g in p.goaways if g[1] != 0x7FFFFFFF]
        assert finals, "no GOAWAY with a last stream id came: %r (closed: %s)" % (p.goaways, p.close_how)
        code, last = finals[0][0], finals[0][1]
        assert code == h2attack.CODE["NO_ERROR"], "GOAWAY %s" % h2attack.ERROR_CODES.get(code)
        assert last == 1, "GOAWAY names stream %d as the last one; stream 1 was in flight" % last
        # a new stream after it: must not be processed (safe to retry elsewhere)
        p.queue(h2attack.frame(h2attack.HEADERS, h2attack.END_STREAM | h2attack.END_HEADERS, 3,
                               h2attack.request_block(path="/after-goaway", scheme="https" if tls else "http")))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not p.closed and 1 not in p.ended:
            p.step(0.05)
        assert 1 in p.ended and p.responses.get(1), "the stream in flight did not finish: %r" % p.frames_in
        assert p.data_len.get(1) == 4, "its body: %r bytes" % p.data_len.get(1)
        p.wait_closed(5.0)
    finally:
        p.close()
    assert 3 not in p.responses or p.rst.get(3) == h2attack.CODE["REFUSED_STREAM"], p.responses
    assert not any("/after-goaway" in b.paths() for b in backends), "a stream past the GOAWAY was processed"


def test_goaway_at_sigterm(h2_start, hash_backends):
    u = h2_start(hash_backends, timeouts={"grace": "10s"})
    _graceful(u, hash_backends, lambda: u.proc.proc.send_signal(signal.SIGTERM))
    assert u.proc.wait_exit(15) == 0, u.proc.describe()


def test_goaway_at_sigterm_tls(h2_start, hash_backends):
    u = h2_start(hash_backends, timeouts={"grace": "10s"})
    _graceful(u, hash_backends, lambda: u.proc.proc.send_signal(signal.SIGTERM), tls=True)
    assert u.proc.wait_exit(15) == 0, u.proc.describe()


def test_goaway_at_reload_removing_the_listener(h2_start, hash_backends, certs):
    """A reload that removes the plain listener treats its HTTP/2
    connections as a graceful stop does: GOAWAY with the last stream id, the
    stream in flight finishes, a stream after it is not processed. The TLS
    listener that stays keeps serving."""
    u = h2_start(hash_backends)
    only_tls = h2_config(certs.a_ec, hash_backends)
    only_tls = only_tls[: only_tls.index("  - bind: <L1>")] + only_tls[only_tls.index("pools:"):]
    _graceful(u, hash_backends, lambda: u.u.reload(only_tls))
    assert u.proc.alive()
    with h2attack.H2Client(u.tls, True) as c:
        assert c.get("/").status == 200


def test_reload_keeps_connections_and_applies_the_new_configuration(h2_start, hash_backends, certs):
    """A reload that keeps the listener: the stream in flight finishes, and
    the same HTTP/2 connection goes on with the new configuration (as
    HTTP/1 keep-alive connections move to it between requests): its next
    streams go to the new pool's backend."""
    u = h2_start(hash_backends[:1])
    with h2attack.H2Client(u.plain, False, timeout=20) as c:
        slow = c.start("GET", "/slow?ms=1500")
        assert _wait_path(hash_backends, "/slow?ms=1500")
        u.u.reload(h2_config(certs.a_ec, hash_backends[1:]))
        r = c.wait([slow], timeout=20)[0]
        assert r.status == 200 and bytes(r.body) == b"slow" and r.header("x-backend") == "hash1", r.headers
        deadline = time.monotonic() + 10
        backend = None
        while time.monotonic() < deadline:
            r = c.get("/after-reload")
            assert r.status == 200
            backend = r.header("x-backend")
            if backend == "hash2":
                break
            time.sleep(0.1)
        assert backend == "hash2", "streams after the reload still go to the old pool"
        assert c.goaway is None, "the connection got a GOAWAY %r at a reload that kept its listener" % (c.goaway,)


def test_max_total_streams(h2_start, hash_backends):
    """h2.max_total_streams 5: the 5 streams are served, then the
    connection gets a GOAWAY naming stream 9 (the 5th) and no 6th stream is
    processed; a new connection is served again."""
    u = h2_start(hash_backends, h2={"max_total_streams": 5})
    p = h2attack.Pump(u.plain)
    try:
        for k in range(6):
            p.queue(h2attack.frame(h2attack.HEADERS, h2attack.END_STREAM | h2attack.END_HEADERS, 1 + 2 * k,
                                   h2attack.request_block(path="/n/%d" % k)))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not p.closed:
            p.step(0.05)
            if all(s in p.ended for s in (1, 3, 5, 7, 9)) and p.goaway:
                break
        assert all(s in p.ended for s in (1, 3, 5, 7, 9)), "not all 5 streams were answered: %r" % p.ended
        finals = [g for g in p.goaways if g[1] != 0x7FFFFFFF]
        assert finals and finals[-1][1] == 9, "GOAWAY: %r" % p.goaways
        assert 11 not in p.responses or p.rst.get(11) == h2attack.CODE["REFUSED_STREAM"]
    finally:
        p.close()
    assert not any("/n/5" in b.paths() for b in hash_backends), "the 6th stream was processed"
    with h2attack.H2Client(u.plain, False) as c:
        assert c.get("/").status == 200
