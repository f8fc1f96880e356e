"""Processes under test: usher and the demo backends.

Everything listens on 127.0.0.1 on ports found by binding to port 0
(free_port, unused_ports); a start that fails (for instance because the port
was taken meanwhile) is retried on new ports, START_ATTEMPTS times.

Every process is started through a ProcessRegistry: its stdout and stderr go
to a log file (attached to the report of a failing test by conftest), and it
is stopped by its PID (SIGTERM, then SIGKILL after STOP_TIMEOUT).

Stopping is checked: usher and demo-backend must exit with status 0 within
STOP_TIMEOUT of SIGTERM (and must not have died before), and their output
must hold no sanitizer report (AddressSanitizer, LeakSanitizer,
UndefinedBehaviorSanitizer: the suite also runs against a build made with
`make SANITIZE=address,undefined`). A test that kills a process on purpose
does so with ManagedProcess.kill().

TLS listeners (quick mode with several --listen: start_usher_listeners) are
ready when their port accepts and a TLS handshake is answered as TLS
(wait_tls_ready).
"""

import itertools
import os
import re
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from http_raw import RawHTTPConnection

REPO_ROOT = Path(__file__).resolve().parents[3]
HOST = "127.0.0.1"
READY_TIMEOUT = 10.0
# Generous: a sanitizer build checks for leaks at exit, valgrind is slower.
STOP_TIMEOUT = float(os.environ.get("USHER_STOP_TIMEOUT", "15"))
START_ATTEMPTS = 5
SOCKET_TIMEOUT = 10.0
LOG_POLL = 0.01  # seconds between two reads of usher's log (reloads)
RELOAD_TIMEOUT = 10.0  # bounded wait for the outcome of one SIGHUP


# -- ports -------------------------------------------------------------------------


def free_port(host=HOST):
    """A port that was free a moment ago (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def unused_ports(n, host=HOST):
    """n distinct ports nobody listens on right now."""
    ports = set()
    for _ in range(100):
        if len(ports) == n:
            break
        ports.add(free_port(host))
    assert len(ports) == n
    return sorted(ports)


def tcp_connectable(port, timeout=0.5):
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


# -- binaries, sanitizer reports ------------------------------------------------------


def binary(env, default_rel):
    """The path of a binary from $env (default: REPO_ROOT/default_rel). A
    missing binary is a test error with a clear message, never a skip."""
    path = os.environ.get(env) or str(REPO_ROOT / default_rel)
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        pytest.fail(
            "%s binary not found or not executable: %s (set %s, or build it with `make %s`)"
            % (env, path, env, default_rel),
            pytrace=False,
        )
    return path


SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "SUMMARY: UndefinedBehaviorSanitizer",
)
SANITIZER_REPORT_MAX = 20000


def sanitizer_report(text):
    """The part of `text` from the first sanitizer report on (bounded), or
    None if there is none."""
    starts = [i for i in (text.find(m) for m in SANITIZER_MARKERS) if i >= 0]
    if not starts:
        return None
    # Start at the beginning of the line holding the first marker.
    start = text.rfind("\n", 0, min(starts)) + 1
    report = text[start:]
    if len(report) > SANITIZER_REPORT_MAX:
        report = report[:SANITIZER_REPORT_MAX] + "\n[... %d characters omitted ...]" % (len(report) - SANITIZER_REPORT_MAX)
    return report


def child_env():
    """The environment for the processes under test: stack traces in UBSan
    reports unless the caller chose other options."""
    env = dict(os.environ)
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    return env


# -- one managed process, a registry of them --------------------------------------------


class ManagedProcess:
    def __init__(self, argv, label, log_dir):
        self.argv = [str(a) for a in argv]
        self.label = label
        self.log_path = Path(log_dir) / ("%s-%d.log" % (label.replace(" ", "_").replace("/", "_"), time.monotonic_ns()))
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=child_env(),
        )
        self.pid = self.proc.pid
        self.check_exit = True  # exit status 0 after SIGTERM is required
        self.killed_on_purpose = False
        self.stop_problem = None  # set by stop(): did not exit in time
        self.reported = False  # problems already reported by some test

    def alive(self):
        return self.proc.poll() is None

    def returncode(self):
        return self.proc.poll()

    def read_log(self):
        try:
            if not self._log.closed:
                self._log.flush()
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except OSError as e:
            return "(log unreadable: %s)" % e

    def wait_ready(self, port, timeout=READY_TIMEOUT):
        """Polls a TCP connect to port (bounded in time and count). False if
        the process exits or the port never accepts."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.05) + 10):
            if not self.alive():
                return False
            if tcp_connectable(port):
                return self.alive()
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return False

    def wait_exit(self, timeout):
        """Waits (bounded) for the process to exit; returns its exit status
        or None. Sends nothing."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc = self.returncode()
            if rc is not None:
                return rc
            time.sleep(0.02)
        return self.returncode()

    def kill(self):
        """SIGKILL on purpose (a crash simulated by the test): its exit status
        is not held against it."""
        self.killed_on_purpose = True
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.stop_problem = "still running %.0f s after SIGKILL" % STOP_TIMEOUT

    def stop(self, check_exit=None):
        """SIGTERM, then SIGKILL after STOP_TIMEOUT. Returns problems() (a
        list of strings, empty if all is well). check_exit=False: any exit
        status is fine (a start that failed, e.g. port taken)."""
        if check_exit is not None:
            self.check_exit = check_exit
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.stop_problem = "did not exit within %.0f s of SIGTERM (killed with SIGKILL)" % STOP_TIMEOUT
                self.proc.kill()
                try:
                    self.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.stop_problem += "; still running %.0f s after SIGKILL" % STOP_TIMEOUT
            except ProcessLookupError:
                pass
        try:
            self._log.close()
        except OSError:
            pass
        return self.problems()

    def problems(self):
        """What is wrong with this process, once it has ended: not stopped
        in time, a non-zero exit status (including death by a signal the
        test did not send), a sanitizer report in its output."""
        out = []
        rc = self.proc.poll()
        if rc is None:
            return out
        if self.stop_problem:
            out.append(self.stop_problem)
        elif self.check_exit and not self.killed_on_purpose and rc != 0:
            if rc < 0:
                try:
                    name = signal.Signals(-rc).name
                except ValueError:
                    name = "signal %d" % -rc
                out.append("exited with status %d (killed by %s)" % (rc, name))
            else:
                out.append("exited with status %d, expected 0" % rc)
        report = sanitizer_report(self.read_log())
        if report is not None:
            out.append("sanitizer report in its output:\n" + report)
        return out

    def describe(self, tail=20000):
        log = self.read_log()
        if len(log) > tail:
            log = "[... %d characters omitted ...]\n" % (len(log) - tail) + log[-tail:]
        return "%s (pid %d, exit status %r)\n$ %s\n%s" % (
            self.label,
            self.pid,
            self.returncode(),
            " ".join(self.argv),
            log,
        )


class ProcessRegistry:
    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.procs = []

    def spawn(self, argv, label):
        p = ManagedProcess(argv, label, self.log_dir)
        self.procs.append(p)
        return p

    def stop_all(self):
        """Stops every process (all of them, whatever happens) and returns
        the problems not reported yet, as (process, [problem, ...])."""
        found = []
        for p in reversed(self.procs):
            try:
                probs = p.stop()
            except Exception as e:  # keep stopping the others
                probs = ["could not be stopped: %r" % e]
            if probs and not p.reported:
                p.reported = True
                found.append((p, probs))
        return found

    def dead_problems(self):
        """Problems of processes that ended on their own (or were stopped by
        a test) and were not reported yet; running ones are left alone."""
        found = []
        for p in self.procs:
            if p.reported or p.alive():
                continue
            probs = p.problems()
            if probs:
                p.reported = True
                found.append((p, probs))
        return found


def format_problems(found):
    parts = []
    for p, probs in found:
        parts.append(
            "%s (pid %d): %s\n$ %s"
            % (p.label, p.pid, "\n".join(probs), " ".join(p.argv))
        )
    return "process problems:\n\n" + "\n\n".join(parts)


# -- demo backends ----------------------------------------------------------------


class DemoBackend:
    def __init__(self, name, port, proc):
        self.name = name
        self.port = port
        self.proc = proc
        self.url = "http://%s:%d" % (HOST, port)

    def client(self, **kw):
        kw.setdefault("timeout", SOCKET_TIMEOUT)
        return httpx.Client(base_url=self.url, trust_env=False, **kw)

    def stats(self):
        with self.client() as c:
            r = c.get("/stats")
            assert r.status_code == 200, r.text
            return r.json()

    def reset_stats(self):
        with self.client() as c:
            r = c.post("/stats/reset")
            assert r.status_code == 200, r.text


def start_demo(registry, demo_bin, name, port=None):
    """Starts a demo backend on a free port, or on `port` (to restart one
    where usher expects it; retried there a few times)."""
    last = None
    fixed = port
    for attempt in range(START_ATTEMPTS):
        port = fixed or free_port()
        if fixed and attempt:
            time.sleep(0.2)
        p = registry.spawn([demo_bin, "--port", port, "--name", name, "--host", HOST], "demo-backend-" + name)
        if p.wait_ready(port):
            # Make sure it is our process that answers on that port.
            try:
                with RawHTTPConnection(HOST, port) as c:
                    r = c.roundtrip("GET", "/health", [("Connection", "close")])
                if r.status == 200 and r.header("X-Backend") == name:
                    return DemoBackend(name, port, p)
            except (OSError, AssertionError):
                pass
        last = p
        p.stop(check_exit=False)
    pytest.fail("demo-backend %s did not become ready:\n%s" % (name, last.describe()), pytrace=False)


# -- usher from the command line ------------------------------------------------------


class Usher:
    def __init__(self, port, proc):
        self.port = port
        self.proc = proc
        self.url = "http://%s:%d" % (HOST, port)

    def client(self, **kw):
        kw.setdefault("timeout", SOCKET_TIMEOUT)
        return httpx.Client(base_url=self.url, trust_env=False, **kw)

    def raw(self):
        return RawHTTPConnection(HOST, self.port, timeout=SOCKET_TIMEOUT)


def start_usher(registry, usher_bin, backend_ports, extra=(), wrapper=(), label="usher"):
    """usher listening on a free port with one --backend per entry of
    backend_ports (ports, or objects with a .port), then `extra`. `wrapper`
    is put before usher's own argv (a program that exec()s it, so that the
    managed process is usher itself)."""
    last = None
    for _ in range(START_ATTEMPTS):
        port = free_port()
        argv = list(wrapper) + [usher_bin, "--listen", "%s:%d" % (HOST, port)]
        for b in backend_ports:
            bp = b.port if hasattr(b, "port") else int(b)
            argv += ["--backend", "http://%s:%d" % (HOST, bp)]
        argv += [str(a) for a in extra]
        p = registry.spawn(argv, label)
        if p.wait_ready(port):
            return Usher(port, p)
        last = p
        p.stop(check_exit=False)
    pytest.fail("usher did not become ready:\n%s" % last.describe(), pytrace=False)


# -- TLS listeners ----------------------------------------------------------------------


def tls_probe(port, timeout=SOCKET_TIMEOUT):
    """One TLS handshake attempt to port (no SNI, no certificate checked).
    Returns "tls" if the server speaks TLS (the handshake completed, or the
    server answered it with an alert, as a listener that wants a client
    certificate does), "retry" if the connection failed before any answer
    (refused, reset, closed), or what else came back (the listener is not
    speaking TLS)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            with ctx.wrap_socket(s) as t:
                t.version()
                return "tls"
    except ssl.SSLError as e:
        reason = getattr(e, "reason", None) or ""
        if "ALERT" in reason:
            return "tls"
        if isinstance(e, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            return "retry"
        return "not TLS: %r" % e
    except OSError:  # refused, reset, timed out
        return "retry"


def wait_tls_ready(proc, port, timeout=READY_TIMEOUT):
    """Polls TLS handshakes to port (bounded in time and count) until the
    server answers one as TLS. Returns None when it does, else why not (the
    process died, a non-TLS answer, or no answer in time)."""
    deadline = time.monotonic() + timeout
    last = "no attempt"
    for _ in range(int(timeout / 0.05) + 10):
        if not proc.alive():
            return "usher exited (status %r)" % proc.returncode()
        last = tls_probe(port)
        if last == "tls":
            return None
        if last != "retry" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return "port %d: %s" % (port, last)


class UsherListeners:
    """usher in quick mode with several --listen: its process, and the
    ports in the order of `schemes` (.plain and .tls: the first of each)."""

    def __init__(self, proc, schemes, ports):
        self.proc = proc
        self.schemes = list(schemes)
        self.ports = list(ports)
        self.plain = next((p for s, p in zip(schemes, ports) if s == "http"), None)
        self.tls = next((p for s, p in zip(schemes, ports) if s == "https"), None)

    def raw(self, port=None):
        return RawHTTPConnection(HOST, port or self.plain, timeout=SOCKET_TIMEOUT)


def start_usher_listeners(registry, usher_bin, schemes, backend_ports, extra=(), label="usher"):
    """usher with one --listen per entry of schemes ("http" or "https", on
    free ports), one --backend per entry of backend_ports, then `extra`
    (the certificates and TLS flags; "<P0>", "<P1>", ... in them become the
    ports chosen). Ready when every port accepts and each https one answers
    a TLS handshake; a port race is retried on new ports, a TLS listener
    that does not speak TLS fails the test at once."""
    last = None
    for _ in range(START_ATTEMPTS):
        ports = unused_ports(len(schemes))
        argv = [usher_bin]
        for scheme, port in zip(schemes, ports):
            argv += ["--listen", "%s%s:%d" % ("https://" if scheme == "https" else "", HOST, port)]
        for b in backend_ports:
            bp = b.port if hasattr(b, "port") else int(b)
            argv += ["--backend", "http://%s:%d" % (HOST, bp)]
        for a in extra:
            a = str(a)
            for i, port in enumerate(ports):
                a = a.replace("<P%d>" % i, str(port))
            argv.append(a)
        p = registry.spawn(argv, label)
        if all(p.wait_ready(port) for port in ports):
            for scheme, port in zip(schemes, ports):
                why = wait_tls_ready(p, port) if scheme == "https" else None
                if why is not None:
                    pytest.fail("usher's TLS listener is not ready (%s):\n%s" % (why, p.describe()), pytrace=False)
            return UsherListeners(p, schemes, ports)
        last = p
        p.stop(check_exit=False)
    pytest.fail("usher did not become ready:\n%s" % last.describe(), pytrace=False)


def run_usher(usher_bin, args, timeout=10.0):
    """Runs usher to completion (for flags that make it exit); a sanitizer
    report in its output fails the test."""
    try:
        p = subprocess.run(
            [usher_bin] + [str(a) for a in args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            env=child_env(),
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(
            "usher %s did not exit within %.0f s (stderr: %r)" % (" ".join(map(str, args)), timeout, e.stderr),
            pytrace=False,
        )
    report = sanitizer_report((p.stdout + p.stderr).decode("utf-8", "replace"))
    if report is not None:
        pytest.fail(
            "usher %s (exit status %d): sanitizer report:\n%s" % (" ".join(map(str, args)), p.returncode, report),
            pytrace=False,
        )
    return p


# -- usher -c FILE -------------------------------------------------------------------


class FileUsher:
    """usher -c FILE: its process, listener ports and file, with helpers to
    rewrite the file (atomically: usher never reads half a file) and to send
    SIGHUP and wait for its outcome in the log. Unpacks as (proc, ports)."""

    def __init__(self, proc, ports, path):
        self.proc = proc
        self.ports = ports
        self.path = path
        p = re.escape(path)
        self.reloaded_re = re.compile(r"(?:^|\s)reloaded %s$" % p, re.M)
        self.failed_re = re.compile(
            r"(?:^|\s)reload of %s failed \((\d+) errors?\): still serving with the previous configuration$" % p, re.M
        )
        self.error_re = re.compile(r"(?:^|\s)reload: %s:(\d+):(\d+): (.*)$" % p, re.M)

    def __iter__(self):
        return iter((self.proc, self.ports))

    def render(self, text):
        for i, port in enumerate(self.ports):
            text = text.replace("<L%d>" % i, "%s:%d" % (HOST, port))
        assert "<L" not in text, text
        return text

    def write(self, text):
        """Writes the file (with <Li> replaced); returns the text written."""
        body = self.render(text)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(body)
        os.replace(tmp, self.path)
        return body

    def counts(self, log=None):
        log = self.proc.read_log() if log is None else log
        return len(self.reloaded_re.findall(log)), len(self.failed_re.findall(log))

    def hup(self, timeout=RELOAD_TIMEOUT):
        """Sends SIGHUP and waits (bounded) for a `reloaded` or `reload ...
        failed` line. Returns ("reloaded" | "failed", the log written since
        the signal); fails the test if neither comes."""
        log = self.proc.read_log()
        start = len(log)
        ok0, bad0 = self.counts(log)
        assert self.proc.alive(), "usher is not running"
        self.proc.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / LOG_POLL) + 100):
            log = self.proc.read_log()
            ok, bad = self.counts(log)
            if ok > ok0:
                return "reloaded", log[start:]
            if bad > bad0:
                return "failed", log[start:]
            if not self.proc.alive() or time.monotonic() > deadline:
                break
            time.sleep(LOG_POLL)
        pytest.fail(
            "no 'reloaded' or 'reload ... failed' line within %.0f s of SIGHUP (usher %s); log since:\n%s"
            % (timeout, "alive" if self.proc.alive() else "dead, status %r" % self.proc.returncode(), log[start:]),
            pytrace=False,
        )

    def reload(self, text=None):
        """Optionally rewrites the file, then SIGHUP; the reload must succeed."""
        if text is not None:
            self.write(text)
        outcome, since = self.hup()
        assert outcome == "reloaded", "reload failed:\n%s" % since
        return since


_file_numbers = itertools.count(1)


def start_usher_file(registry, usher_bin, directory, text, nlisteners=1, extra=()):
    """usher -c FILE -> FileUsher. The text holds <L0>, <L1>, ... for the
    listener ports: nlisteners free ports are chosen (a placeholder may be
    absent from the first text, for a listener added by a later reload);
    usher must answer on those the text names. A start that fails is retried
    on new ports."""
    last = None
    for _ in range(START_ATTEMPTS):
        ports = unused_ports(nlisteners)
        path = str(Path(directory) / ("usher-%d.yaml" % next(_file_numbers)))
        u = FileUsher(None, ports, path)
        u.write(text)
        u.proc = registry.spawn([usher_bin, "-c", path] + [str(a) for a in extra], "usher")
        used = [p for i, p in enumerate(ports) if "<L%d>" % i in text]
        if all(u.proc.wait_ready(p) for p in used):
            return u
        last = u.proc
        u.proc.stop(check_exit=False)
    pytest.fail("usher -c did not become ready:\n%s" % last.describe(), pytrace=False)


def yaml_pos(text, marker, token=None, occurrence=1):
    """1-based (line, column) of `token` inside the `occurrence`-th
    occurrence of `marker` in text (token defaults to the whole marker):
    where usher should report an error in a YAML file a test wrote."""
    idx = -1
    for _ in range(occurrence):
        idx = text.find(marker, idx + 1)
        assert idx >= 0, "marker %r (occurrence %d) not in the test's YAML" % (marker, occurrence)
    if token is not None:
        off = marker.find(token)
        assert off >= 0, "token %r not in marker %r" % (token, marker)
        idx += off
    line = text.count("\n", 0, idx) + 1
    col = idx - (text.rfind("\n", 0, idx) + 1) + 1
    return line, col
