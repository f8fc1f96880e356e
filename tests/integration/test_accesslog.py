"""Access log: one line per request, combined or JSON, SIGUSR1 reopens the file."""
import json
import os
import re
import signal
import time

import httpx
import pytest

COMBINED = re.compile(
    r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "(\S+) (\S+) HTTP/1\.(\d)" (\d{3}) (\d+) "([^"]*)" "([^"]*)"$'
)


def read_lines(path, want, timeout=10.0):
    """Lines of path once it has `want` of them (the log is written every second)."""
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                lines = f.read().splitlines()
            if len(lines) >= want:
                return lines
        time.sleep(0.1)
    return lines


def test_combined_lines(tmp_path, backends, start_usher):
    log = tmp_path / "access.log"
    u = start_usher(backends, "--access-log", str(log))
    with httpx.Client(base_url=u.url, timeout=10) as c:
        assert c.get("/echo/a?x=1", headers={"User-Agent": "ua-1", "Referer": "http://r/"}).status_code == 200
        assert c.post("/bytes?n=777", content=b"abc").status_code == 200
        assert c.get("/status/404").status_code == 404
        assert c.get("/x", headers={"Host": "a, b"}).status_code == 400  # usher's own answer
    lines = read_lines(str(log), 4)
    assert len(lines) == 4, lines
    parsed = [COMBINED.match(l) for l in lines]
    assert all(parsed), lines
    got = [(m.group(1), m.group(2), m.group(4), m.group(5), m.group(6), m.group(7)) for m in parsed]
    assert got[0][:3] == ("GET", "/echo/a?x=1", "200") and got[0][4:] == ("http://r/", "ua-1")
    assert got[1][:4] == ("POST", "/bytes?n=777", "200", "777")
    assert got[2][2] == "404"
    assert got[3][2] == "400" and int(got[3][3]) > 0


def test_json_lines_and_reopen(tmp_path, backends, start_usher):
    log = tmp_path / "access.json"
    u = start_usher(backends, "--access-log", str(log), "--access-log-format", "json")
    with httpx.Client(base_url=u.url, timeout=10) as c:
        assert c.get("/echo/q", headers={"User-Agent": 'quote"and\\back'}).status_code == 200
    lines = read_lines(str(log), 1)
    assert len(lines) == 1, lines
    rec = json.loads(lines[0])
    assert rec["method"] == "GET" and rec["target"] == "/echo/q" and rec["status"] == 200
    assert rec["user_agent"] == 'quote"and\\back'
    assert rec["backend"].startswith("http://127.0.0.1:") and rec["bytes"] > 0
    # logrotate: move the file away, SIGUSR1, the next line goes to a new file
    os.rename(str(log), str(log) + ".1")
    u.proc.proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not os.path.exists(str(log)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.path.exists(str(log)), "SIGUSR1 did not reopen the access log"
    with httpx.Client(base_url=u.url, timeout=10) as c:
        assert c.get("/echo/after").status_code == 200
    lines = read_lines(str(log), 1)
    assert len(lines) == 1 and json.loads(lines[0])["target"] == "/echo/after", lines
    with open(str(log) + ".1") as f:
        assert len(f.read().splitlines()) == 1


def test_off_by_default(tmp_path, backends, start_usher):
    u = start_usher(backends)
    with httpx.Client(base_url=u.url, timeout=10) as c:
        assert c.get("/").status_code == 200
    assert list(tmp_path.iterdir()) == []


def test_bad_format_is_refused(run_usher, backends):
    r = run_usher("--backend", "http://127.0.0.1:1", "--access-log-format", "xml")
    assert r.returncode == 2 and b"combined or json" in r.stderr


def test_every_sigusr1_reopens(tmp_path, backends, start_usher):
    """Rotated twice: the second SIGUSR1 opened nothing once (the first one had
    emptied the path it reopens)."""
    log = tmp_path / "access.log"
    u = start_usher(backends, "--access-log", str(log))
    for n in (1, 2):
        os.rename(str(log), "%s.%d" % (log, n))
        u.proc.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not os.path.exists(str(log)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.path.exists(str(log)), "SIGUSR1 number %d did not reopen the access log" % n
        with httpx.Client(base_url=u.url, timeout=10) as c:
            assert c.get("/echo/rotated-%d" % n).status_code == 200
        lines = read_lines(str(log), 1)
        assert len(lines) == 1 and "/echo/rotated-%d" % n in lines[0], lines
