"""The client body idle timeout (timeouts.client_body) and the request body
size limit (limits.max_body_size).

- Body idle timeout: while usher waits for the rest of a request body and
  has sent up everything it received, a client silent for client_body gets
  408 and the connection is closed; the backend saw exactly the bytes sent.
  A body sent slowly but steadily completes. The backend's own timeouts keep
  their values and their meaning: a backend that does not read the body or
  does not answer gets 504 after the response timeout (not 408 after the
  shorter client_body); a client waiting for 100 Continue is waiting on the
  backend; a client trickling its body does not stretch a connect timeout.
- Body size limit: a Content-Length over the limit is answered 413 before
  anything reaches a backend, and the connection is closed; exactly the limit
  goes through. A chunked body that grows past the limit gets 413; the
  backend connection that carried its beginning is closed (not reused), the
  backend is not marked failed, and the next request works.
- Configuration errors of both keys, with file, line and column.

Timing assertions have wide margins (at least 0.8x and well under 10x the
configured timeout): the suite runs on a loaded two-core machine.
"""

import re
import select
import threading
import time

import pytest

from harness.procs import HOST, yaml_pos
from http_raw import RawHTTPConnection, build_request, chunked_encode
from usher_log import assert_json_error

ANSWER_WAIT = 30.0  # bound on waiting for one answer
CLOSE_WAIT = 5.0


def conf(backend_port, top="", pool=""):
    """One listener, one pool with one backend, no health checks, no retries,
    passive health off unless pool says otherwise; `top` adds top-level
    sections (timeouts, limits)."""
    return """\
threads: 1
listeners:
  - bind: <L0>
    pool: p
pools:
  p:
    health: { type: off }
    retries: 0
%s    backends: [ "http://127.0.0.1:%d" ]
%s""" % (
        pool or "    max_fails: 0\n",
        backend_port,
        top,
    )


def post_head(target, length=None, chunked=False, extra=()):
    headers = list(extra)
    if chunked:
        headers.append(("Transfer-Encoding", "chunked"))
    elif length is not None:
        headers.append(("Content-Length", str(length)))
    return build_request("POST", target, headers)


def read_answer(c, method="POST"):
    return c.read_response(method, deadline=time.monotonic() + ANSWER_WAIT)


def wait_until(cond, timeout=5.0, interval=0.02):
    """Polls cond() (bounded in time and count); returns its last value."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 10):
        v = cond()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)
    return cond()


def answered_within(c, gap):
    """True if usher sent something (or closed) within gap seconds."""
    r, _, _ = select.select([c.sock], [], [], gap)
    return bool(r)


# -- client body idle timeout --------------------------------------------------------


def test_body_idle_timeout_gives_408_and_closes(raw_backend, start_usher_file):
    be = raw_backend()
    proc, (port,) = start_usher_file(conf(be.port, "timeouts: { client_body: 1s }\n"))
    with RawHTTPConnection(HOST, port, timeout=15) as c:
        c.send(post_head("/stall", 100) + b"0123456789")
        t0 = time.monotonic()
        r = read_answer(c)
        took = time.monotonic() - t0
        body = assert_json_error(r, 408)
        assert "request body stopped arriving" in body["error"], body
        assert r.has_token("Connection", "close"), r.headers
        assert c.wait_closed(CLOSE_WAIT), "the connection stayed open after the 408"
    assert 0.8 <= took < 10, "408 after %.2f s with timeouts.client_body 1s" % took

    # The backend got the head and the 10 body bytes, nothing more, and
    # that (unfinished) upstream connection was closed.
    assert wait_until(lambda: 1 in be.closed_by_peer), "usher kept the backend connection of the stalled request"
    reqs, probs, rests = be.requests()
    assert not reqs and not probs, (reqs, probs)
    sent = rests.get(1, b"")
    assert sent.startswith(b"POST /stall HTTP/1.1\r\n") and sent.endswith(b"\r\n\r\n0123456789"), sent
    assert be.connections == 1


def test_slow_steady_body_completes(raw_backend, start_usher_file):
    be = raw_backend()
    proc, (port,) = start_usher_file(conf(be.port, "timeouts: { client_body: 2s }\n"))
    pieces = [bytes([ord("a") + i]) * 10 for i in range(7)]  # 7 x 0.4 s: longer than 2 s in all
    with RawHTTPConnection(HOST, port, timeout=15) as c:
        c.send(post_head("/steady", 70))
        for p in pieces:
            assert not answered_within(c, 0.4), "usher answered in the middle of a steady body"
            c.send(p)
        r = read_answer(c)
    assert r.status == 200 and r.body == b"req POST /steady", r
    reqs, probs, _ = be.requests()
    assert not probs and [q.body for q in reqs] == [b"".join(pieces)], (reqs, probs)


def test_backend_not_reading_the_body_gives_504_not_408(start_usher_file, silent_backend):
    be = silent_backend("no-read")
    proc, (port,) = start_usher_file(
        conf(be.port, "timeouts: { client_body: 1s }\n", "    max_fails: 0\n    timeouts: { response: 3s }\n")
    )
    block = b"x" * (1 << 20)
    total = 64 * len(block)  # far more than every buffer on the way holds
    c = RawHTTPConnection(HOST, port, timeout=20)

    def send_body():
        try:
            c.sock.sendall(post_head("/upload", total))
            for _ in range(64):
                c.sock.sendall(block)
        except OSError:  # blocked for good, or usher closed: expected
            pass

    t0 = time.monotonic()
    sender = threading.Thread(target=send_body, daemon=True)
    sender.start()
    try:
        r = read_answer(c)
        took = time.monotonic() - t0
    finally:
        c.close()
        sender.join(30)
    body = assert_json_error(r, 504)
    assert "did not answer in time" in body["error"], body
    # the response timeout (3 s, from the backend's last progress), not
    # the client body timeout (1 s): the client was blocked, not idle
    assert 2.4 <= took < 30, "504 after %.2f s with timeouts.response 3s" % took


def test_backend_silent_after_the_body_gives_504(raw_backend, start_usher_file):
    be = raw_backend(respond=lambda req: (b"", "hold"))
    proc, (port,) = start_usher_file(
        conf(be.port, "timeouts: { client_body: 1s }\n", "    max_fails: 0\n    timeouts: { response: 3s }\n")
    )
    with RawHTTPConnection(HOST, port, timeout=15) as c:
        c.send(post_head("/whole", 5) + b"hello")
        t0 = time.monotonic()
        r = read_answer(c)
        took = time.monotonic() - t0
    assert_json_error(r, 504)
    assert 2.4 <= took < 30, "504 after %.2f s with timeouts.response 3s" % took


def test_client_waiting_for_100_continue_is_not_timed_out_as_a_stall(raw_backend, start_usher_file):
    # The backend never says 100 Continue: the client, told to wait, is
    # waiting on the backend; the backend's response timeout decides.
    be = raw_backend()
    proc, (port,) = start_usher_file(
        conf(be.port, "timeouts: { client_body: 1s }\n", "    max_fails: 0\n    timeouts: { response: 3s }\n")
    )
    with RawHTTPConnection(HOST, port, timeout=15) as c:
        c.send(post_head("/expect", 5, extra=[("Expect", "100-continue")]))
        t0 = time.monotonic()
        r = read_answer(c)
        took = time.monotonic() - t0
    assert_json_error(r, 504)
    assert 2.4 <= took < 30, "answer after %.2f s: the 1 s client body timeout applied" % took


def test_trickled_body_does_not_extend_the_connect_timeout(start_usher_file, silent_backend):
    hole = silent_backend("full-queue")
    if not hole.connect_hangs():
        pytest.fail("premise: a connect to a listener with a full accept queue should hang here", pytrace=False)
    proc, (port,) = start_usher_file(
        conf(hole.port, "timeouts: { client_body: 20s }\n", "    max_fails: 0\n    timeouts: { connect: 1s }\n")
    )
    with RawHTTPConnection(HOST, port, timeout=15) as c:
        c.send(post_head("/trickle", 100))
        t0 = time.monotonic()
        answered = False
        for i in range(40):  # one byte every 0.2 s for up to 8 s
            if answered_within(c, 0.2):
                answered = True
                break
            try:
                c.send(b"%d" % (i % 10))
            except OSError:
                answered = True
                break
        took = time.monotonic() - t0
        assert answered, "no answer within %.1f s of trickling: the body extends the connect timeout" % took
        r = read_answer(c)
    assert_json_error(r, 504)
    assert 0.8 <= took < 5, "504 after %.2f s with timeouts.connect 1s" % took


# -- request body size limit -----------------------------------------------------------

LIMIT_TOP = "limits: { max_body_size: 1k }\n"  # 1024 bytes


def test_content_length_over_the_limit_gives_413(raw_backend, start_usher_file):
    be = raw_backend()
    proc, (port,) = start_usher_file(conf(be.port, LIMIT_TOP))
    with RawHTTPConnection(HOST, port, timeout=15) as c:
        c.send(post_head("/big", 1025) + b"z" * 1025)
        r = read_answer(c)
        body = assert_json_error(r, 413)
        assert body["error"].startswith("Payload too large"), body
        assert r.has_token("Connection", "close"), r.headers
        assert c.wait_closed(CLOSE_WAIT), "the connection stayed open after the 413"
    # the body is not read: nothing at all reached the backend, not even a head
    with RawHTTPConnection(HOST, port, timeout=15) as c:
        c.send(post_head("/huge", 1 << 40, extra=[("Expect", "100-continue")]))
        r = read_answer(c)
        assert_json_error(r, 413)
        assert not r.interim, r.interim
        assert c.wait_closed(CLOSE_WAIT)
    time.sleep(0.2)
    assert be.connections == 0 and not be.all_received(), be.all_received()


def test_body_of_exactly_the_limit_goes_through(raw_backend, start_usher_file):
    be = raw_backend()
    proc, (port,) = start_usher_file(conf(be.port, LIMIT_TOP))
    data = bytes(i % 251 for i in range(1024))
    with RawHTTPConnection(HOST, port, timeout=15) as c:
        c.send(post_head("/exact", 1024) + data)
        r = read_answer(c)
        assert r.status == 200 and r.body == b"req POST /exact", r
        # chunked, 1024 bytes in three chunks, on the same (kept) connection
        c.send(post_head("/exact-chunked", chunked=True) + chunked_encode([data[:500], data[500:1000], data[1000:]]))
        r = read_answer(c)
        assert r.status == 200 and r.body == b"req POST /exact-chunked", r
    reqs, probs, _ = be.requests()
    assert not probs and [(q.target, q.body) for q in reqs] == [(b"/exact", data), (b"/exact-chunked", data)]


def test_chunked_body_over_the_limit_gives_413_and_drops_the_backend_connection(raw_backend, start_usher_file):
    be = raw_backend()
    # max_fails 1: had the 413 been counted as a failure of the backend, it
    # would be DOWN and the last request would get 503
    proc, (port,) = start_usher_file(conf(be.port, LIMIT_TOP, "    max_fails: 1\n"))
    with RawHTTPConnection(HOST, port, timeout=15) as c:
        r = c.roundtrip("GET", "/first", [("Connection", "close")])
        assert r.status == 200, r
    assert be.connections == 1  # pooled by usher now

    with RawHTTPConnection(HOST, port, timeout=15) as c:
        c.send(post_head("/big-chunked", chunked=True) + b"190\r\n" + b"a" * 400 + b"\r\n190\r\n" + b"b" * 400 + b"\r\n")
        # the first 800 bytes go up on the pooled connection
        assert wait_until(lambda: b"b" * 400 in be.all_received().get(1, b"")), be.all_received()
        c.send(b"190\r\n" + b"c" * 400 + b"\r\n0\r\n\r\n")  # 1200 bytes: over 1024
        r = read_answer(c)
        body = assert_json_error(r, 413)
        assert body["error"].startswith("Payload too large"), body
        assert c.wait_closed(CLOSE_WAIT), "the connection stayed open after the 413"

    assert wait_until(lambda: 1 in be.closed_by_peer), "usher kept the backend connection of the refused body"
    assert b"c" not in be.all_received()[1].split(b"\r\n\r\n", 2)[-1], "bytes past the limit reached the backend"

    with RawHTTPConnection(HOST, port, timeout=15) as c:
        r = c.roundtrip("GET", "/after", [("Connection", "close")])
        assert r.status == 200 and r.body == b"req GET /after", r
    reqs, _, _ = be.requests()
    after = [q for q in reqs if q.target == b"/after"]
    assert len(after) == 1 and after[0].conn != 1, "the request after the 413 reused its backend connection: %r" % reqs
    assert "is DOWN" not in proc.read_log()


# -- configuration errors ------------------------------------------------------------------

CHECK_BASE = """\
listeners:
  - bind: 127.0.0.1:18001
    pool: p
pools:
  p:
    backends: [ "http://127.0.0.1:18101" ]
"""

BAD_VALUES = [
    # (id, extra YAML, (marker, token), substrings of the message)
    ("client-body-word", "timeouts:\n  client_body: soon\n", ("client_body: soon", "soon"),
     ["timeouts.client_body", "expected a duration", "'soon'"]),
    ("client-body-zero", "timeouts:\n  client_body: 0\n", ("client_body: 0", "0"),
     ["timeouts.client_body", "at least 1ms"]),
    ("client-body-list", "timeouts:\n  client_body: [1s]\n", ("client_body: [1s]", "[1s]"),
     ["timeouts.client_body", "expected a duration"]),
    ("client-body-typo", "timeouts:\n  client_bdy: 5s\n", ("client_bdy", None),
     ["unknown key 'client_bdy'", "did you mean 'client_body'"]),
    ("max-body-negative", "limits:\n  max_body_size: -1\n", ("max_body_size: -1", "-1"),
     ["limits.max_body_size", "expected a size", "'-1'"]),
    ("max-body-unit", "limits:\n  max_body_size: 10x\n", ("max_body_size: 10x", "10x"),
     ["limits.max_body_size", "expected a size", "'10x'"]),
    ("max-body-unit-suffix", "limits:\n  max_body_size: 10mb\n", ("max_body_size: 10mb", "10mb"),
     ["limits.max_body_size", "'10mb'"]),
    ("max-body-too-large", "limits:\n  max_body_size: 1099511627777\n", ("max_body_size: 1099511627777", "1099511627777"),
     ["limits.max_body_size", "1 TiB"]),
    ("max-body-too-large-unit", "limits:\n  max_body_size: 1025g\n", ("max_body_size: 1025g", "1025g"),
     ["limits.max_body_size", "1 TiB"]),
    ("max-body-mapping", "limits:\n  max_body_size: { a: 1 }\n", ("max_body_size: { a: 1 }", "{"),
     ["limits.max_body_size", "not a mapping"]),
    ("max-body-typo", "limits:\n  max_body_sise: 1m\n", ("max_body_sise", None),
     ["unknown key 'max_body_sise'", "did you mean 'max_body_size'"]),
]


def check(run_usher, tmp_path, text):
    path = tmp_path / "usher.yaml"
    path.write_text(text)
    p = run_usher("-t", "-c", str(path))
    return str(path), p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


@pytest.mark.parametrize("extra,where,needles", [c[1:] for c in BAD_VALUES], ids=[c[0] for c in BAD_VALUES])
def test_bad_values_are_reported_with_position(run_usher, tmp_path, extra, where, needles):
    text = CHECK_BASE + extra
    path, rc, out, err = check(run_usher, tmp_path, text)
    info = "YAML:\n%s\nexit %r\nstdout:\n%s\nstderr:\n%s" % (text, rc, out, err)
    assert rc == 1, info
    errs = re.findall(r"^%s:(\d+):(\d+): (.*)$" % re.escape(path), err, re.M)
    assert len(errs) == 1, "expected exactly one FILE:LINE:COLUMN error\n" + info
    line, col, msg = int(errs[0][0]), int(errs[0][1]), errs[0][2]
    want = yaml_pos(text, *where)
    assert (line, col) == want, "error at %d:%d, expected %d:%d\n%s" % (line, col, want[0], want[1], info)
    for n in needles:
        assert n in msg, "message %r does not mention %r\n%s" % (msg, n, info)


@pytest.mark.parametrize(
    "extra",
    [
        "timeouts: { client_body: 500ms }\nlimits: { max_body_size: 0 }\n",
        "timeouts: { client_body: 2m }\nlimits: { max_body_size: 1099511627776 }\n",
        "limits: { max_body_size: 1024g }\n",
        "limits: { max_body_size: 512K }\n",
        "limits: { max_body_size: 10m }\n",
    ],
)
def test_good_values_pass_the_check(run_usher, tmp_path, extra):
    path, rc, out, err = check(run_usher, tmp_path, CHECK_BASE + extra)
    assert rc == 0 and "configuration ok" in out, "exit %r\nstdout:\n%s\nstderr:\n%s" % (rc, out, err)
