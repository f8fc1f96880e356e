"""Started as root, usher opens its listeners and files, then runs as user:
(and group:) for good; without user: it warns that it runs as root.

As root only (they skip otherwise, saying so), with the system's `nobody`
user and `nogroup` group (Debian has both; they skip if absent):
- the ids of the process and of every thread (/proc/PID/task/*/status):
  real, effective, saved and filesystem uid and gid are nobody's, no
  supplementary group is root's, no capability is left (so setuid(0) fails),
  and it still serves;
- a reload works as nobody; one that adds a listener below 1024 fails with
  the reason, and so does one whose key only root may read (the old
  configuration keeps serving TLS);
- SIGUSR1 reopens the access log (usher gave it to nobody before dropping);
  after logrotate moved it away, a directory nobody cannot write makes the
  reopen fail with the reason, a file made for nobody (logrotate's create)
  is taken;
- the warning when root runs without user:, once;
- an unknown user or group is a configuration error with file and line.

The files usher must read after the drop are in a directory of /tmp that
nobody can enter (pytest's tmp_path is root's alone, 0700)."""

import grp
import os
import pwd
import re
import shutil
import signal
import ssl
import socket
import tempfile
import time

import httpx
import pytest

from harness import procs as _procs
from harness.procs import HOST
from usher_log import wait_for

LOG_TIMEOUT = 15.0


def ids(name_user="nobody", name_group="nogroup"):
    try:
        return pwd.getpwnam(name_user).pw_uid, grp.getgrnam(name_group).gr_gid
    except KeyError:
        pytest.skip("no user %s or group %s on this system" % (name_user, name_group))


@pytest.fixture
def as_root():
    if os.geteuid() != 0:
        pytest.skip("usher drops privileges only when started as root; these tests run as uid %d" % os.geteuid())
    return ids()


@pytest.fixture
def open_dir():
    """A directory of /tmp that nobody may enter and read (not write)."""
    d = tempfile.mkdtemp(prefix="usher-privs-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def status_ids(path):
    """{'Uid': [r, e, s, fs], 'Gid': [...], 'Groups': [...], 'CapPrm': int, ...} of a status file."""
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "Groups"):
                out[k] = [int(x) for x in v.split()]
            elif k in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
                out[k] = int(v.strip(), 16)
    return out


def started(proc):
    """Waits (bounded) for the line usher writes once its workers run: the
    port accepts before that (the listeners open first)."""
    assert wait_for(proc, re.compile(r"listening on .* worker thread"), LOG_TIMEOUT), proc.read_log()
    return proc.read_log()


def assert_dropped(pid, uid, gid, nthreads_at_least):
    tasks = os.listdir("/proc/%d/task" % pid)
    assert len(tasks) >= nthreads_at_least, tasks
    for t in ["/proc/%d/status" % pid] + ["/proc/%d/task/%s/status" % (pid, t) for t in tasks]:
        s = status_ids(t)
        assert s["Uid"] == [uid] * 4, "%s: Uid %s" % (t, s["Uid"])
        assert s["Gid"] == [gid] * 4, "%s: Gid %s" % (t, s["Gid"])
        assert 0 not in s["Groups"], "%s: root's group kept: %s" % (t, s["Groups"])
        # no capability: setuid(0) cannot succeed (CAP_SETUID), nor a bind below 1024
        for cap in ("CapPrm", "CapEff", "CapAmb"):
            assert s[cap] == 0, "%s: %s %x" % (t, cap, s[cap])


def test_user_flag_drops_every_thread(as_root, start_usher, backends):
    uid, gid = as_root
    u = start_usher(backends, "--user", "nobody", "--threads", "2")
    log = started(u.proc)
    assert "running as user 'nobody' (uid %d, gid %d)" % (uid, pwd.getpwnam("nobody").pw_gid) in log, log
    assert "running as root" not in log, log
    # main thread, 2 workers
    assert_dropped(u.proc.pid, uid, pwd.getpwnam("nobody").pw_gid, 3)
    with u.client() as c:
        for _ in range(4):
            assert c.get("/").status_code == 200


def file_conf(backend_port, extra=""):
    return (
        """
user: nobody
group: nogroup
threads: 2
listeners:
  - { bind: "<L0>", pool: web }
pools:
  web:
    backends: ["http://127.0.0.1:%d"]
"""
        % backend_port
        + extra
    )


def test_file_user_group_reload_and_low_port(as_root, procs, usher_bin, open_dir, backends):
    uid, gid = as_root
    u = _procs.start_usher_file(procs, usher_bin, open_dir, file_conf(backends[0].port))
    started(u.proc)
    assert_dropped(u.proc.pid, uid, gid, 3)
    # a reload, read as nobody: backend2 joins
    u.reload(file_conf(backends[0].port).replace('"]', '", "http://127.0.0.1:%d"]' % backends[1].port))
    seen = set()
    with httpx.Client(base_url="http://%s:%d" % (HOST, u.ports[0]), timeout=10, trust_env=False) as c:
        for _ in range(6):
            r = c.get("/")
            assert r.status_code == 200
            seen.add(r.headers.get("x-backend") or r.text[:40])
    assert len(seen) == 2, seen
    assert_dropped(u.proc.pid, uid, gid, 3)

    # a listener below 1024 cannot be added: the reload fails, naming file, line and why
    text = file_conf(backends[0].port).replace(
        '  - { bind: "<L0>", pool: web }', '  - { bind: "<L0>", pool: web }\n  - { bind: "127.0.0.1:81", pool: web }'
    )
    u.write(text)
    outcome, since = u.hup()
    assert outcome == "failed", since
    assert re.search(
        r"reload: %s:7: cannot listen on 127\.0\.0\.1:81: port 81 is below \d+, which needs root, and usher runs "
        r"as user 'nobody' since it started \(restart usher to add this listener\)" % re.escape(u.path),
        since,
    ), since
    with httpx.Client(base_url="http://%s:%d" % (HOST, u.ports[0]), timeout=10, trust_env=False) as c:
        assert c.get("/").status_code == 200

    # user: cannot change on reload
    u.write(file_conf(backends[0].port).replace("user: nobody", "user: daemon"))
    outcome, since = u.hup()
    assert outcome == "reloaded", since
    assert "reload: user and group stay 'nobody':nogroup until a restart" in since, since
    assert_dropped(u.proc.pid, uid, gid, 3)


def test_reload_key_only_root_can_read(as_root, procs, usher_bin, open_dir, backends, certs):
    uid, gid = as_root
    c = certs.a_ec.copy_to(open_dir, "a")
    os.chmod(c.cert, 0o644)
    os.chmod(c.key, 0o600)  # root's alone: read at start, not by a reload as nobody
    text = file_conf(backends[0].port).replace(
        '  - { bind: "<L0>", pool: web }',
        '  - bind: "<L0>"\n    pool: web\n    tls:\n      certificates:\n        - %s' % c.yaml(),
    )
    u = _procs.start_usher_file(procs, usher_bin, open_dir, text)
    assert _procs.wait_tls_ready(u.proc, u.ports[0]) is None, u.proc.read_log()
    started(u.proc)
    assert_dropped(u.proc.pid, uid, gid, 3)
    outcome, since = u.hup()
    assert outcome == "failed", since
    assert "Permission denied" in since, since
    assert "reload: the certificates are read (usher runs as user 'nobody' since it started" in since, since
    # the previous configuration serves TLS as before
    ctx = ssl.create_default_context(cafile=certs.ca_pem)
    with socket.create_connection((HOST, u.ports[0]), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="a.test") as t:
            t.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
            assert t.recv(4096).startswith(b"HTTP/1.1 200"), "no answer over TLS after the failed reload"
    # readable by nobody's group: the reload works
    os.chown(c.key, 0, gid)
    os.chmod(c.key, 0o640)
    u.reload()


def wait_line(proc, text, start):
    deadline = time.monotonic() + LOG_TIMEOUT
    while time.monotonic() < deadline:
        if text in proc.read_log()[start:]:
            return True
        time.sleep(0.05)
    return False


def test_access_log_given_to_the_user_and_reopened(as_root, procs, usher_bin, open_dir, backends):
    uid, gid = as_root
    log = os.path.join(open_dir, "access.log")
    text = file_conf(backends[0].port, "access_log: { path: %s }\n" % log)
    u = _procs.start_usher_file(procs, usher_bin, open_dir, text)
    started(u.proc)
    st = os.stat(log)
    assert (st.st_uid, st.st_gid) == (uid, gid), "usher did not give its access log to nobody:nogroup"
    # SIGUSR1 with the file in place: nobody opens its own file again
    start = len(u.proc.read_log())
    u.proc.proc.send_signal(signal.SIGUSR1)
    assert wait_line(u.proc, "SIGUSR1: access log reopened", start), u.proc.read_log()
    # moved away: nobody may not create a file in open_dir (root's, 0755)
    os.rename(log, log + ".1")
    start = len(u.proc.read_log())
    u.proc.proc.send_signal(signal.SIGUSR1)
    assert wait_line(
        u.proc,
        "SIGUSR1: cannot reopen the access log: Permission denied (usher runs as user 'nobody' since it started",
        start,
    ), u.proc.read_log()
    # logrotate's "create 0640 nobody nogroup": the new file is taken
    with open(log, "w"):
        pass
    os.chown(log, uid, gid)
    os.chmod(log, 0o640)
    start = len(u.proc.read_log())
    u.proc.proc.send_signal(signal.SIGUSR1)
    assert wait_line(u.proc, "SIGUSR1: access log reopened", start), u.proc.read_log()
    with httpx.Client(base_url="http://%s:%d" % (HOST, u.ports[0]), timeout=10, trust_env=False) as c:
        assert c.get("/echo/after-rotate").status_code == 200
    deadline = time.monotonic() + LOG_TIMEOUT
    while time.monotonic() < deadline and "/echo/after-rotate" not in open(log).read():
        time.sleep(0.1)
    assert "/echo/after-rotate" in open(log).read(), "no line in the file logrotate made"


def test_root_without_user_warns_once(as_root, start_usher, backends):
    u = start_usher(backends)
    with u.client() as c:
        assert c.get("/").status_code == 200
    log = started(u.proc)
    assert log.count("running as root: set user: in the config (or --user) to drop privileges") == 1, log
    s = status_ids("/proc/%d/status" % u.proc.pid)
    assert s["Uid"] == [0] * 4, s


def test_not_root_with_user_is_ignored_with_a_warning(as_root, start_usher, backends, usher_bin):
    """As nobody already (setpriv), --user daemon cannot be honoured: a warning;
    --user nobody is what it is: nothing said."""
    if os.path.basename(usher_bin) != "usher":
        pytest.skip("USHER_BIN is a wrapper (make valgrind) that writes where only root may; usher runs as nobody here")
    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.skip("setpriv (util-linux) not installed")
    uid, gid = as_root
    wrapper = (setpriv, "--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups")
    u = start_usher(backends, "--user", "daemon", wrapper=wrapper)
    log = started(u.proc)
    assert "user 'daemon' is ignored: usher was not started as root (it runs as uid %d)" % uid in log, log
    u2 = start_usher(backends, "--user", "nobody", wrapper=wrapper)
    log = started(u2.proc)
    assert "ignored" not in log and "running as root" not in log, log


def test_unknown_user_or_group_is_a_config_error(run_usher, tmp_path, backends):
    f = tmp_path / "u.yaml"
    base = "listeners: [{bind: 127.0.0.1:1, pool: p}]\npools: {p: {backends: [http://127.0.0.1:2]}}\n"
    f.write_text("user: no-such-user-usher\n" + base)
    p = run_usher("-t", "-c", f)
    assert p.returncode == 1, p
    assert "%s:1:7: user: no user named 'no-such-user-usher' on this system" % f in p.stderr.decode(), p.stderr
    f.write_text("user: nobody\ngroup: no-such-group-usher\n" + base)
    p = run_usher("-t", "-c", f)
    assert p.returncode == 1, p
    assert "%s:2:8: group: no group named 'no-such-group-usher' on this system" % f in p.stderr.decode(), p.stderr
    f.write_text("group: nogroup\n" + base)
    p = run_usher("-t", "-c", f)
    assert p.returncode == 1, p
    assert "%s:1:8: group: needs user: as well" % f in p.stderr.decode(), p.stderr
    p = run_usher("--user", "no-such-user-usher", "--backend", "http://127.0.0.1:2")
    assert p.returncode == 2
    assert "--user: no user named 'no-such-user-usher' on this system" in p.stderr.decode(), p.stderr
    p = run_usher("--group", "nogroup", "--backend", "http://127.0.0.1:2")
    assert p.returncode == 2 and "--group needs --user" in p.stderr.decode(), p.stderr
