"""The main log (stderr) for operators: --log-format json|text and log.format,
--log-level and log.level (also changed by a reload; the flag wins over the
file, on reload too), and the journal's form when JOURNAL_STREAM names
usher's stderr: "<N>" and no timestamp.

usher's stderr is the harness's log file of the process; JOURNAL_STREAM is
set by a small Python wrapper that exec()s usher after reading os.fstat(2),
the way systemd sets it for the stream it connects (systemd.exec(5))."""

import json
import os
import re
import socket

import pytest

from harness.procs import HOST, free_port
from usher_log import TIMESTAMP, wait_for

LOG_TIMEOUT = 15.0

BAD_REQUEST = b"GARBAGE\r\n\r\n"  # llhttp refuses it: usher logs why at debug level
DEBUG_LINE = re.compile(r"client 127\.0\.0\.1: malformed request")


def send_bad_request(port):
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.sendall(BAD_REQUEST)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 400"), data


def dead_backend():
    """A backend URL nothing listens on: its health checks fail at once."""
    return "http://%s:%d" % (HOST, free_port())


def json_lines(text):
    out = []
    for line in text.splitlines():
        rec = json.loads(line)  # every line is a JSON object: a failure here is the bug
        assert isinstance(rec, dict), line
        out.append(rec)
    return out


def test_json_lines_parse_and_carry_fields(start_usher, backends):
    down = dead_backend()
    u = start_usher(
        [backends[0]],
        "--backend",
        down,
        "--log-format",
        "json",
        "--health-interval",
        "100ms",
        "--health-fall",
        "1",
    )
    assert wait_for(u.proc, re.compile(r'"backend":"%s","state":"down"' % re.escape(down)), LOG_TIMEOUT), (
        u.proc.read_log()
    )
    recs = json_lines(u.proc.read_log())
    for r in recs:
        assert set(r) >= {"time", "level", "msg"}, r
        assert TIMESTAMP.match(r["time"]) and r["time"].endswith("Z"), r
        assert r["level"] in ("debug", "info", "warn", "error"), r
    listening = [r for r in recs if r["msg"].startswith("usher ") and " listening on " in r["msg"]]
    assert listening and listening[0]["level"] == "info", recs
    downs = [r for r in recs if r.get("state") == "down"]
    assert len(downs) == 1, recs
    d = downs[0]
    assert d["level"] == "warn" and d["pool"] == "default" and d["backend"] == down, d
    assert d["msg"].startswith("backend %s is DOWN (" % down), d


def test_json_lines_stay_json_at_debug(start_usher, backends):
    """Debug lines about what clients send are JSON lines too, whatever the
    client sent (the escaping itself: tests/unit/test_log.c)."""
    u = start_usher(backends, "--log-format", "json", "--log-level", "debug")
    with socket.create_connection((HOST, u.port), timeout=10) as s:
        s.sendall(b'GET /\x01"\\\xff\xc3 HTTP/1.1\r\nHost: a\r\n\r\n')
        s.recv(4096)
    assert wait_for(u.proc, DEBUG_LINE, LOG_TIMEOUT), u.proc.read_log()
    recs = json_lines(u.proc.read_log())
    assert any(r["level"] == "debug" and DEBUG_LINE.search(r["msg"]) for r in recs), recs


@pytest.mark.parametrize("level", ["debug", "info", "warn", "error"])
def test_level_filters(level, start_usher, backends):
    down = dead_backend()
    u = start_usher(
        [backends[0]], "--backend", down, "--log-level", level, "--health-interval", "100ms", "--health-fall", "1"
    )
    send_bad_request(u.port)
    # the warn line of the dead backend comes after the bad request's debug line would
    # have: wait for it, or (error) for a line that never comes, bounded
    if level in ("debug", "info", "warn"):
        assert wait_for(u.proc, re.compile(r"usher\[warn\] backend %s is DOWN" % re.escape(down)), LOG_TIMEOUT), (
            u.proc.read_log()
        )
    else:
        # nothing of this run logs at error: a bounded wait for a warn line that must not come
        assert wait_for(u.proc, re.compile(r"usher\[warn\]"), 3.0) is None, u.proc.read_log()
    log = u.proc.read_log()
    levels = set(re.findall(r"^\S+ usher\[(\w+)\] ", log, re.M))
    order = ["debug", "info", "warn", "error"]
    allowed = set(order[order.index(level) :])
    assert levels <= allowed, "level %s let through %s:\n%s" % (level, levels - allowed, log)
    assert (DEBUG_LINE.search(log) is not None) == (level == "debug"), log
    assert ("usher[info] usher " in log) == (level in ("debug", "info")), log
    assert ("is DOWN" in log) == (level != "error"), log


def test_level_from_file_reload_and_flag(start_usher_file, backends):
    conf = """
log:
  level: info
listeners:
  - { bind: "<L0>", pool: web }
pools:
  web:
    backends: ["http://127.0.0.1:%d"]
""" % backends[0].port
    u = start_usher_file(conf)
    send_bad_request(u.ports[0])  # answered 400: its debug line would be written by now
    u.reload(conf.replace("level: info", "level: debug"))
    assert not DEBUG_LINE.search(u.proc.read_log()), "a debug line at level info"
    send_bad_request(u.ports[0])
    assert wait_for(u.proc, DEBUG_LINE, LOG_TIMEOUT), "reload to log.level debug did not take:\n" + u.proc.read_log()
    u.reload(conf)  # back to info
    send_bad_request(u.ports[0])
    assert len(DEBUG_LINE.findall(u.proc.read_log())) == 1, u.proc.read_log()


def test_level_flag_wins_over_the_file_on_reload(start_usher_file, backends):
    conf = """
log: { level: info, format: text }
listeners:
  - { bind: "<L0>", pool: web }
pools:
  web:
    backends: ["http://127.0.0.1:%d"]
""" % backends[0].port
    u = start_usher_file(conf, 1, "--log-level", "debug", "--log-format", "json")
    send_bad_request(u.ports[0])
    assert wait_for(u.proc, DEBUG_LINE, LOG_TIMEOUT), u.proc.read_log()
    u.proc.proc.send_signal(1)  # SIGHUP: the file says info and text, the flags say debug and json
    assert wait_for(u.proc, re.compile(r'"msg":"reloaded '), LOG_TIMEOUT), u.proc.read_log()
    send_bad_request(u.ports[0])
    assert wait_for(u.proc, DEBUG_LINE, LOG_TIMEOUT, count=2), u.proc.read_log()
    json_lines(u.proc.read_log())


def test_bad_level_and_format(run_usher, tmp_path):
    p = run_usher("--log-level", "verbose", "--backend", "http://127.0.0.1:1")
    assert p.returncode == 2
    assert "--log-level: expected debug, info, warn or error, not 'verbose'" in p.stderr.decode(), p.stderr
    p = run_usher("--log-format", "xml", "--backend", "http://127.0.0.1:1")
    assert p.returncode == 2
    assert "--log-format: expected text or json, not 'xml'" in p.stderr.decode(), p.stderr
    f = tmp_path / "u.yaml"
    f.write_text("log:\n  format: yaml\nlisteners: [{bind: 127.0.0.1:1, pool: p}]\npools: {p: {backends: [http://127.0.0.1:2]}}\n")
    p = run_usher("-t", "-c", f)
    assert p.returncode == 1
    assert "%s:2:11: log.format: expected text or json, not 'yaml'" % f in p.stderr.decode(), p.stderr


# -- the journal ---------------------------------------------------------------------------

# exec()s usher with JOURNAL_STREAM set to stderr's device:inode (plus `bump` to the inode)
JOURNAL_WRAPPER = (
    "import os, sys\n"
    "st = os.fstat(2)\n"
    "os.environ['JOURNAL_STREAM'] = '%d:%d' % (st.st_dev, st.st_ino + int(sys.argv[1]))\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def journal_wrapper(bump):
    return ("/usr/bin/python3", "-c", JOURNAL_WRAPPER, str(bump))


def test_journal_stream_gets_priorities_and_no_timestamps(start_usher, backends):
    down = dead_backend()
    u = start_usher(
        [backends[0]],
        "--backend",
        down,
        "--health-interval",
        "100ms",
        "--health-fall",
        "1",
        wrapper=journal_wrapper(0),
    )
    assert wait_for(u.proc, re.compile(r"^<4>backend %s is DOWN" % re.escape(down), re.M), LOG_TIMEOUT), (
        u.proc.read_log()
    )
    lines = u.proc.read_log().splitlines()
    assert lines, "no log"
    for line in lines:
        assert re.match(r"<[3467]>\S", line), "not in the journal's form: %r" % line
        assert not TIMESTAMP.search(line[3:]) and "usher[" not in line, "a timestamp or level word: %r" % line
    assert any(line.startswith("<6>usher ") and " listening on " in line for line in lines), lines
    if os.geteuid() == 0:
        assert any(line.startswith("<4>running as root") for line in lines), lines


def test_journal_stream_json_keeps_its_time(start_usher, backends):
    u = start_usher(backends, "--log-format", "json", wrapper=journal_wrapper(0))
    assert wait_for(u.proc, re.compile(r" listening on "), LOG_TIMEOUT), u.proc.read_log()
    lines = u.proc.read_log().splitlines()
    assert lines
    for line in lines:
        m = re.match(r"<([3467])>(\{.*\})$", line)
        assert m, line
        rec = json.loads(m.group(2))
        assert {"debug": "7", "info": "6", "warn": "4", "error": "3"}[rec["level"]] == m.group(1), line
        assert TIMESTAMP.match(rec["time"]), line


def test_journal_stream_of_another_file_changes_nothing(start_usher, backends):
    """JOURNAL_STREAM inherited by a process whose stderr went elsewhere (here: the
    right device, another inode): the lines keep their timestamps."""
    u = start_usher(backends, wrapper=journal_wrapper(1))
    assert wait_for(u.proc, re.compile(r" listening on "), LOG_TIMEOUT), u.proc.read_log()
    lines = u.proc.read_log().splitlines()
    assert lines
    for line in lines:
        assert TIMESTAMP.match(line) and re.match(r"\S+ usher\[(debug|info|warn|error)\] ", line), line

