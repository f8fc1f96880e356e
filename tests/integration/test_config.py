"""The YAML configuration file (usher -c FILE [-t] [--threads N]).

- Validation: every kind of error is reported as FILE:LINE:COLUMN: message,
  with a 1-based line and column pointing at the offending key or value (the
  expected position is computed here from the YAML text the test wrote), and
  a message that names what was expected. A summary line follows,
  `usher: FILE: N errors; configuration not ok`; the exit status is 1, and a
  bad file given without -t starts nothing.
- The files under examples/ pass -t.
- Routing for real: routes by Host (case-insensitive, without its port)
  and/or path prefix, first match wins, else the listener's pool; a second
  listener with its own pool.
- Per-pool settings take effect (retries, response timeout).
- -c may be combined with --threads and -t only (anything else: exit 2).
"""

import glob
import os
import re
import time

import pytest

from harness.procs import HOST, REPO_ROOT, free_port, tcp_connectable, unused_ports, yaml_pos as pos
from http_raw import RawHTTPConnection

# Ports for -t runs only: nothing binds or connects to them.
L1, L2, B1, B2 = 18001, 18002, 18101, 18102


def write(tmp_path, text, name="usher.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def error_lines(path, stderr):
    """[(line, column, message)] of the FILE:LINE:COLUMN: lines of stderr."""
    rx = re.compile(r"^%s:(\d+):(\d+): (.*)$" % re.escape(path))
    out = []
    for ln in stderr.splitlines():
        m = rx.match(ln)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    return out


def summary_re(path, n, started=False):
    tail = "not started" if started else "configuration not ok"
    return re.compile(
        r"^usher: %s: %d errors?; %s$" % (re.escape(path), n, re.escape(tail)), re.M
    )


def check_file(run_usher, path, *extra):
    p = run_usher(*extra, "-t", "-c", path)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def describe(rc, out, err):
    return "exit status %r\nstdout:\n%s\nstderr:\n%s" % (rc, out, err)


def valid_yaml(extra_pool="", extra_top=""):
    return (
        "listeners:\n"
        "  - bind: 127.0.0.1:%d\n"
        "    pool: web\n"
        "pools:\n"
        "  web:\n"
        "%s"
        "    backends:\n"
        "      - http://127.0.0.1:%d\n"
        "%s" % (L1, extra_pool, B1, extra_top)
    )


# -- single errors ---------------------------------------------------------------
#
# (id, yaml text, (marker, token, occurrence), substrings the message must hold)

TWO_POOLS = (
    "listeners:\n"
    "  - bind: 127.0.0.1:%d\n"
    "    pool: %s\n"
    "    routes:\n"
    "      - { path_prefix: /v1/, pool: %s }\n"
    "pools:\n"
    "  web:\n"
    "    backends: [http://127.0.0.1:%d]\n"
    "  api:\n"
    "    backends: [http://127.0.0.1:%d]\n"
)

SINGLE_ERRORS = [
    (
        "duplicate-key",
        valid_yaml("    retries: 1\n    retries: 3\n"),
        ("retries", None, 2),
        ["key 'retries' given twice", "first at line 6"],
    ),
    (
        "bad-slow-start",
        valid_yaml("    slow_start: soon\n"),
        ("soon", None, 1),
        ["slow_start", "expected a duration", "'soon'"],
    ),
    (
        "bad-drain",
        valid_yaml().replace("- http://127.0.0.1:%d\n" % B1, '- { url: "http://127.0.0.1:%d", drain: maybe }\n' % B1),
        ("maybe", None, 1),
        ["backend.drain", "expected true or false", "'maybe'"],
    ),
    (
        "unknown-key-suggestion",
        valid_yaml("    ballance: round-robin\n"),
        ("ballance", None, 1),
        ["unknown key 'ballance'", "did you mean 'balance'"],
    ),
    (
        "unknown-key-suggestion-nested",
        valid_yaml("    health: { type: http, intervall: 2s }\n"),
        ("intervall", None, 1),
        ["unknown key 'intervall'", "did you mean 'interval'"],
    ),
    (
        "unknown-top-level-key",
        valid_yaml(extra_top="logging: debug\n"),
        ("logging", None, 1),
        ["unknown key 'logging'", "listeners", "pools", "timeouts", "limits"],
    ),
    (
        "list-for-mapping-health",
        valid_yaml("    health: [http, /health]\n"),
        ("[http", None, 1),
        ["health", "expected a mapping", "found a list"],
    ),
    (
        "list-for-mapping-timeouts",
        valid_yaml(extra_top="timeouts: [10s, 60s]\n"),
        ("[10s", None, 1),
        ["timeouts", "expected a mapping", "found a list"],
    ),
    (
        "mapping-for-scalar-balance",
        valid_yaml("    balance: { name: p2c }\n"),
        ("{ name", None, 1),
        ["balance", "expected a single value", "found a mapping"],
    ),
    (
        "mapping-for-number-retries",
        valid_yaml("    retries: { count: 2 }\n"),
        ("{ count", None, 1),
        ["retries", "expected a number from 0 to 7", "found a mapping"],
    ),
    (
        "scalar-for-list-backends",
        "listeners:\n  - bind: 127.0.0.1:%d\n    pool: web\npools:\n  web:\n    backends: http://127.0.0.1:%d\n"
        % (L1, B1),
        ("http://127.0.0.1:%d" % B1, None, 1),
        ["backends", "expected a list", "found a single value"],
    ),
    (
        "bad-duration-pool",
        valid_yaml("    timeouts: { connect: 2x }\n"),
        ("2x", None, 1),
        ["timeouts.connect", "expected a duration", "'2x'"],
    ),
    (
        "bad-duration-global",
        valid_yaml(extra_top="timeouts: { grace: 2x }\n"),
        ("2x", None, 1),
        ["timeouts.grace", "expected a duration", "'2x'"],
    ),
    (
        "retries-out-of-range",
        valid_yaml("    retries: 9\n"),
        ("retries: 9", "9", 1),
        ["retries", "expected a number from 0 to 7", "'9'"],
    ),
    (
        "threads-out-of-range",
        "threads: 300\n" + valid_yaml(),
        ("threads: 300", "300", 1),
        ["threads", "expected a number from 1 to 256", "'300'"],
    ),
    (
        "unknown-pool-in-listener",
        TWO_POOLS % (L1, "wbe", "api", B1, B2),
        ("pool: wbe", "wbe", 1),
        ["listener pool", "unknown pool 'wbe'", "defined pools: web, api"],
    ),
    (
        "unknown-pool-in-route",
        TWO_POOLS % (L1, "web", "apii", B1, B2),
        ("pool: apii", "apii", 1),
        ["route pool", "unknown pool 'apii'", "defined pools: web, api"],
    ),
    (
        "backend-url-ftp",
        valid_yaml().replace("http://127.0.0.1:%d" % B1, "ftp://127.0.0.1:%d" % B1),
        ("ftp://", None, 1),
        ["'ftp://127.0.0.1:%d'" % B1, "http://", "expected http://HOST:PORT"],
    ),
    (
        "backend-url-no-host",
        valid_yaml().replace("http://127.0.0.1:%d" % B1, "http://"),
        ("http://\n", None, 1),
        ["'http://'", "host", "expected http://HOST:PORT"],
    ),
    (
        "backend-url-no-host-with-port",
        valid_yaml().replace("http://127.0.0.1:%d" % B1, "http://:%d" % B1),
        ("http://:", None, 1),
        ["'http://:%d'" % B1, "host", "expected http://HOST:PORT"],
    ),
    (
        "backend-url-path",
        valid_yaml().replace("http://127.0.0.1:%d" % B1, "http://127.0.0.1:%d/app" % B1),
        ("http://127.0.0.1:%d/app" % B1, None, 1),
        ["'http://127.0.0.1:%d/app'" % B1, "path", "expected http://HOST:PORT"],
    ),
    (
        "weight-in-url",
        valid_yaml().replace("http://127.0.0.1:%d" % B1, "http://127.0.0.1:%d,weight=2" % B1),
        ("http://127.0.0.1:%d,weight=2" % B1, None, 1),
        ["'http://127.0.0.1:%d,weight=2'" % B1, "weight: N"],
    ),
    (
        "missing-bind",
        valid_yaml().replace("  - bind: 127.0.0.1:%d\n    pool: web\n" % L1, "  - pool: web\n"),
        ("- pool: web", "pool", 1),
        ["'bind' is required"],
    ),
    (
        "missing-listener-pool",
        valid_yaml().replace("    pool: web\n", ""),
        ("- bind:", "bind", 1),
        ["'pool' is required"],
    ),
    (
        "missing-backends",
        "listeners:\n  - bind: 127.0.0.1:%d\n    pool: web\npools:\n  web:\n    balance: p2c\n" % L1,
        ("balance: p2c", "balance", 1),
        ["pool 'web'", "'backends' is required"],
    ),
    (
        "missing-url",
        valid_yaml().replace("      - http://127.0.0.1:%d\n" % B1, "      - { weight: 2 }\n"),
        ("{ weight", None, 1),
        ["'url' is required"],
    ),
    (
        "missing-listeners",
        "# pools only\n\npools:\n  web:\n    backends: [http://127.0.0.1:%d]\n" % B1,
        ("pools:", None, 1),
        ["'listeners' is required"],
    ),
    (
        "invalid-yaml-mapping-value",
        valid_yaml().replace("    pool: web\n", "    pool: web: extra\n"),
        ("pool: web: extra", ": extra", 1),
        ["invalid YAML", "mapping values are not allowed"],
    ),
    (
        "invalid-yaml-tab",
        valid_yaml().replace("    pool: web\n", "\tpool: web\n"),
        ("\tpool", None, 1),
        ["invalid YAML", "tab"],
    ),
]


@pytest.mark.parametrize("text,where,needles", [c[1:] for c in SINGLE_ERRORS], ids=[c[0] for c in SINGLE_ERRORS])
def test_single_error_position_and_message(run_usher, tmp_path, text, where, needles):
    path = write(tmp_path, text)
    rc, out, err = check_file(run_usher, path)
    info = "YAML:\n%s\n%s" % (text, describe(rc, out, err))
    assert rc == 1, info
    assert "configuration ok" not in out, info
    errs = error_lines(path, err)
    assert len(errs) == 1, "expected exactly one FILE:LINE:COLUMN error\n" + info
    line, col, msg = errs[0]
    want = pos(text, *where)
    assert (line, col) == want, "error at %d:%d, expected %d:%d (%r)\n%s" % (line, col, want[0], want[1], where, info)
    for n in needles:
        assert n in msg, "message %r does not mention %r\n%s" % (msg, n, info)
    assert summary_re(path, 1).search(err), "no summary line\n" + info


def test_duplicate_bind_names_the_other_line(run_usher, tmp_path):
    text = (
        "listeners:\n"
        "  - bind: 127.0.0.1:%d\n"
        "    pool: web\n"
        "  - bind: 127.0.0.1:%d\n"
        "    pool: web\n"
        "  - bind: 127.0.0.1:%d\n"
        "    pool: web\n"
        "pools:\n"
        "  web:\n"
        "    backends: [http://127.0.0.1:%d]\n" % (L1, L2, L1, B1)
    )
    path = write(tmp_path, text)
    rc, out, err = check_file(run_usher, path)
    info = "YAML:\n%s\n%s" % (text, describe(rc, out, err))
    assert rc == 1, info
    errs = error_lines(path, err)
    assert len(errs) == 1, info
    line, col, msg = errs[0]
    first_line, _ = pos(text, "bind: 127.0.0.1:%d" % L1)
    # The offending listener is the third one (same address as the first).
    want = pos(text, "bind: 127.0.0.1:%d" % L1, "bind", occurrence=2)
    assert (line, col) == want, "error at %d:%d, expected %d:%d\n%s" % (line, col, want[0], want[1], info)
    assert "127.0.0.1:%d" % L1 in msg, info
    assert re.search(r"\bline %d\b" % first_line, msg), "message does not name line %d: %r\n%s" % (first_line, msg, info)
    assert summary_re(path, 1).search(err), info


@pytest.mark.parametrize("text", ["", "# nothing but a comment\n", "\n\n"], ids=["empty", "comment-only", "blank-lines"])
def test_empty_file(run_usher, tmp_path, text):
    path = write(tmp_path, text)
    rc, out, err = check_file(run_usher, path)
    info = describe(rc, out, err)
    assert rc == 1, info
    assert "configuration ok" not in out, info
    errs = error_lines(path, err)
    assert len(errs) == 1, "expected one FILE:LINE:COLUMN error\n" + info
    line, col, msg = errs[0]
    assert "empty" in msg and "listeners" in msg and "pools" in msg, info
    # Positions are 1-based: an empty file's error is at its start (1:1).
    assert line >= 1 and col >= 1, "position %d:%d is not 1-based\n%s" % (line, col, info)
    assert summary_re(path, 1).search(err), info


def test_nonexistent_file(run_usher, tmp_path):
    path = str(tmp_path / "does-not-exist.yaml")
    rc, out, err = check_file(run_usher, path)
    info = describe(rc, out, err)
    assert rc == 1, info
    assert "configuration ok" not in out, info
    lines = [ln for ln in err.splitlines() if ln.startswith(path + ":")]
    assert lines, "no line naming the file\n" + info
    assert any("cannot open" in ln and "No such file" in ln for ln in lines), info
    assert summary_re(path, 1).search(err), info


def test_several_errors_all_reported(run_usher, tmp_path):
    port = free_port()
    text = (
        "threads: 2\n"
        "listeners:\n"
        "  - bind: 127.0.0.1:%d\n"
        "    pool: wbe\n"
        "pools:\n"
        "  web:\n"
        "    ballance: round-robin\n"
        "    retries: 9\n"
        "    timeouts: { connect: 2x, response: 30s }\n"
        "    backends:\n"
        "      - http://127.0.0.1:%d\n"
        "      - ftp://127.0.0.1:%d\n"
        "timeouts: { client_idle: forever }\n" % (port, B1, B2)
    )
    expected = {
        pos(text, "wbe"): "unknown pool 'wbe'",
        pos(text, "ballance"): "did you mean 'balance'",
        pos(text, "retries: 9", "9"): "from 0 to 7",
        pos(text, "2x"): "'2x'",
        pos(text, "ftp://"): "http://",
        pos(text, "forever"): "'forever'",
    }
    path = write(tmp_path, text)
    rc, out, err = check_file(run_usher, path)
    info = "YAML:\n%s\n%s" % (text, describe(rc, out, err))
    assert rc == 1, info
    errs = error_lines(path, err)
    got = {(l, c): m for l, c, m in errs}
    assert len(errs) == len(expected), "expected %d errors, got %d\n%s" % (len(expected), len(errs), info)
    for where, needle in expected.items():
        assert where in got, "no error at %d:%d\n%s" % (where + (info,))
        assert needle in got[where], "error at %d:%d is %r, expected it to mention %r\n%s" % (
            where + (got[where], needle, info)
        )
    assert summary_re(path, len(expected)).search(err), info

    # Without -t: the same errors, exit status 1, nothing listens.
    p = run_usher("-c", path)
    err2 = p.stderr.decode("utf-8", "replace")
    info2 = describe(p.returncode, p.stdout.decode("utf-8", "replace"), err2)
    assert p.returncode == 1, info2
    assert sorted(error_lines(path, err2)) == sorted(errs), info2
    assert summary_re(path, len(expected), started=True).search(err2), info2
    assert "listening" not in err2 + p.stdout.decode("utf-8", "replace"), info2
    assert not tcp_connectable(port), "something listens on the bind address of a bad file"


def test_bad_file_without_t_starts_nothing(run_usher, tmp_path):
    port = free_port()
    text = valid_yaml("    retries: 9\n").replace("127.0.0.1:%d" % L1, "127.0.0.1:%d" % port)
    path = write(tmp_path, text)
    p = run_usher("-c", path)
    err = p.stderr.decode("utf-8", "replace")
    info = describe(p.returncode, p.stdout.decode("utf-8", "replace"), err)
    assert p.returncode == 1, info
    errs = error_lines(path, err)
    assert [(l, c) for l, c, _ in errs] == [pos(text, "retries: 9", "9")], info
    assert summary_re(path, 1, started=True).search(err), info
    assert not tcp_connectable(port), info


def test_valid_file_ok(run_usher, tmp_path):
    path = write(tmp_path, valid_yaml())
    rc, out, err = check_file(run_usher, path)
    assert rc == 0, describe(rc, out, err)
    assert out.strip() == "configuration ok", describe(rc, out, err)
    assert not error_lines(path, err), describe(rc, out, err)


EXAMPLES = sorted(glob.glob(str(REPO_ROOT / "examples" / "*.yaml")))


def test_examples_exist():
    assert len(EXAMPLES) >= 1, "no examples/*.yaml found under %s" % REPO_ROOT


@pytest.mark.parametrize("example", EXAMPLES, ids=[os.path.basename(e) for e in EXAMPLES])
def test_example_passes_check(run_usher, example):
    rc, out, err = check_file(run_usher, example)
    assert rc == 0, describe(rc, out, err)
    assert "configuration ok" in out, describe(rc, out, err)


# -- command line -----------------------------------------------------------------


def test_threads_with_c_accepted_by_check(run_usher, tmp_path):
    path = write(tmp_path, valid_yaml())
    for extra in (["--threads", "2"], ["--threads=1"]):
        p = run_usher(*extra, "-t", "-c", path)
        info = describe(p.returncode, p.stdout, p.stderr)
        assert p.returncode == 0, info
        assert b"configuration ok" in p.stdout, info


@pytest.mark.parametrize(
    "extra",
    [
        ["--backend", "http://127.0.0.1:%d" % B1],
        ["--listen", "127.0.0.1:%d" % L2],
        ["--balance", "p2c"],
        ["--retries", "1"],
    ],
    ids=["backend", "listen", "balance", "retries"],
)
def test_quick_flags_with_c_exit_2(run_usher, tmp_path, extra):
    path = write(tmp_path, valid_yaml())
    for args in ([*extra, "-c", path], ["-c", path, *extra], ["-t", "-c", path, *extra]):
        p = run_usher(*args)
        err = p.stderr.decode("utf-8", "replace")
        info = "args %r\n%s" % (args, describe(p.returncode, p.stdout, err))
        assert p.returncode == 2, info
        assert b"configuration ok" not in p.stdout, info
        assert "-c" in err and "--threads" in err, "the message should say what may be combined with -c\n" + info


# -- running with a file ----------------------------------------------------------


def backend_of(port, target, host="usher.test"):
    """(status, X-Backend) of one request on a fresh connection."""
    with RawHTTPConnection(HOST, port) as c:
        r = c.roundtrip("GET", target, [("Connection", "close")], host=host)
    return r.status, r.header("X-Backend")


ROUTES = """\
threads: 2
listeners:
  - bind: <L0>
    pool: web
    routes:
      - { host: api.example.com, path_prefix: /echo/, pool: api }
      - { path_prefix: /status/4, pool: web }
      - { path_prefix: /status/, pool: api }
      - { host: only-host.example, pool: api }
  - bind: <L1>
    pool: api
pools:
  web:
    health: { type: off }
    backends: [ %s ]
  api:
    health: { type: off }
    backends:
      - { url: "%s", weight: 2 }
"""


def test_routing_by_host_and_path(start_backend, start_usher_file):
    web = start_backend("web")
    api = start_backend("api")
    proc, (main, second) = start_usher_file(ROUTES % (web.url, api.url), 2)

    cases = [
        # (port, target, Host, expected backend)
        (main, "/echo/x", "usher.test", "web"),  # no Host match
        (main, "/echo/x", "www.example.com", "web"),
        (main, "/echo/x", "api.example.com", "api"),  # host and path match
        (main, "/echo/x", "API.Example.COM:%d" % main, "api"),  # case and port ignored
        (main, "/echo/x", "api.example.com:8080", "api"),
        (main, "/health", "api.example.com", "web"),  # host matches, path does not
        (main, "/echo", "api.example.com", "web"),  # "/echo" is not under "/echo/"
        (main, "/echo/x", "api.example.com.evil", "web"),
        (main, "/echo/x", "xapi.example.com", "web"),
        (main, "/status/200", "usher.test", "api"),  # path-only route
        (main, "/status/204", "www.example.com", "api"),
        (main, "/status/404", "usher.test", "web"),  # an earlier route wins
        (main, "/stats", "usher.test", "web"),
        (main, "/", "only-host.example", "api"),  # host-only route
        (main, "/health", "ONLY-HOST.example:81", "api"),
        (main, "/", "only-host.example.org", "web"),
        (second, "/", "usher.test", "api"),  # the second listener's pool
        (second, "/echo/x", "www.example.com", "api"),
        (second, "/health", "api.example.com", "api"),
    ]
    wrong = []
    for port, target, host, want in cases:
        for _ in range(2):  # two threads, several connections: every one agrees
            status, who = backend_of(port, target, host)
            if who != want:
                wrong.append("%s %s Host: %s -> %s (status %d), expected %s" % (
                    "listener 1" if port == main else "listener 2", target, host, who, status, want))
    assert not wrong, "\n".join(wrong)


def test_per_pool_retries_and_response_timeout(start_backend, start_usher_file):
    live = start_backend("live")
    (dead,) = unused_ports(1)
    text = """\
threads: 1
listeners:
  - bind: <L0>
    pool: noretry
    routes:
      - { path_prefix: /slow, pool: short }
  - bind: <L1>
    pool: retry
    routes:
      - { path_prefix: /slow, pool: long }
pools:
  noretry:
    balance: round-robin
    health: { type: off }
    max_fails: 0
    retries: 0
    backends: [ "http://127.0.0.1:%(dead)d", "%(live)s" ]
  retry:
    balance: round-robin
    health: { type: off }
    max_fails: 0
    retries: 2
    backends: [ "http://127.0.0.1:%(dead)d", "%(live)s" ]
  short:
    health: { type: off }
    retries: 0
    timeouts: { response: 300ms }
    backends: [ "%(live)s" ]
  long:
    health: { type: off }
    backends: [ "%(live)s" ]
""" % {"dead": dead, "live": live.url}
    proc, (p_noretry, p_retry) = start_usher_file(text, 2)

    n = 12
    no = [backend_of(p_noretry, "/", "usher.test") for _ in range(n)]
    yes = [backend_of(p_retry, "/", "usher.test") for _ in range(n)]
    failed_no = [s for s, _ in no if s != 200]
    failed_yes = [(s, b) for s, b in yes if s != 200]
    # Round robin over a dead and a live backend, no retry, no passive
    # health: about every second request meets the dead one.
    assert len(failed_no) >= n // 4, "retries: 0 should let requests to the dead backend fail: %r" % no
    assert all(s in (502, 503) for s in failed_no), no
    assert all(b == "live" for s, b in no if s == 200), no
    assert not failed_yes, "retries: 2 should send every request on to the live backend: %r" % yes

    # timeouts.response: 300ms in pool 'short' (listener 1), the default in
    # pool 'long' (listener 2).
    t0 = time.monotonic()
    status, who = backend_of(p_noretry, "/slow?ms=3000", "usher.test")
    took = time.monotonic() - t0
    assert status == 504, "pool with timeouts.response 300ms: got %d from %r after %.1f s" % (status, who, took)
    assert took < 2.9, took
    status, who = backend_of(p_retry, "/slow?ms=1000", "usher.test")
    assert (status, who) == (200, "live")


def test_threads_flag_overrides_file(start_backend, start_usher_file):
    b = start_backend("web")
    text = "threads: 2\nlisteners:\n  - bind: <L0>\n    pool: web\npools:\n  web:\n    backends: [ %s ]\n" % b.url
    proc, (port,) = start_usher_file(text, 1, "--threads", "1")
    assert backend_of(port, "/", "usher.test") == (200, "web")
    log = proc.read_log()
    assert re.search(r"listening on 127\.0\.0\.1:%d with 1 worker thread\b" % port, log), log


def test_threads_from_file(start_backend, start_usher_file):
    b = start_backend("web")
    text = "threads: 3\nlisteners:\n  - bind: <L0>\n    pool: web\npools:\n  web:\n    backends: [ %s ]\n" % b.url
    proc, (port,) = start_usher_file(text, 1)
    assert backend_of(port, "/", "usher.test") == (200, "web")
    log = proc.read_log()
    assert re.search(r"listening on 127\.0\.0\.1:%d with 3 worker threads\b" % port, log), log


# -- the documentation names every flag ------------------------------------------------------


def test_every_flag_in_help_is_documented_and_every_documented_flag_exists(run_usher):
    help_text = run_usher("--help").stdout.decode()
    in_help = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-[cth])\b", help_text))
    doc = (REPO_ROOT / "docs" / "CONFIG.md").read_text()
    table = doc[doc.index("## Flags") : doc.index("## Configuration file")]
    in_doc = set(re.findall(r"^\| `(--?[a-z][a-z-]*)", table, re.M))
    in_doc |= set(re.findall(r"^\| `-h`, `(--help)`", table, re.M))
    assert in_help - in_doc == set(), "flags in --help without a row in docs/CONFIG.md"
    assert in_doc - in_help == set(), "flags documented in docs/CONFIG.md that --help does not list"
    for flag in sorted(in_doc - {"--help", "--version", "-h", "-t", "-c"}):
        p = run_usher(flag)  # each one is known: a missing value is the complaint, not the flag
        assert p.returncode == 2, flag
        assert b"unknown" not in p.stderr.lower(), (flag, p.stderr)
