"""Fixtures for the usher integration tests.

Binaries come from $USHER_BIN and $DEMO_BIN (defaults: build/usher and
build/demo-backend under the repository root). A missing binary is a test
error with a clear message, never a silent skip.

Every process is started through the `procs` fixture: its stdout and stderr
go to a temporary log file that is attached to the report of a failing test,
and it is stopped at teardown (SIGTERM, then SIGKILL after a timeout).
Everything listens on 127.0.0.1 on ports found by binding to port 0; a start
that fails (for instance because the port was taken meanwhile) is retried on
a new port.

Stopping is checked: usher and demo-backend must exit with status 0 within
STOP_TIMEOUT of SIGTERM (and must not have died before), and their output
must hold no sanitizer report (AddressSanitizer, LeakSanitizer,
UndefinedBehaviorSanitizer: the suite also runs against a build made with
`make SANITIZE=address,undefined`). A violation is a test error at teardown,
with the report and the process's output attached. A test that kills a
process on purpose does so with ManagedProcess.kill().
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from capture_backend import CaptureBackend, RawCaptureBackend  # noqa: E402
from http_raw import RawHTTPConnection, free_port, unused_ports  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
READY_TIMEOUT = 10.0
# Generous: a sanitizer build checks for leaks at exit, valgrind is slower.
STOP_TIMEOUT = float(os.environ.get("USHER_STOP_TIMEOUT", "15"))
START_ATTEMPTS = 5
SOCKET_TIMEOUT = 10.0


def _binary(env, default_rel):
    path = os.environ.get(env) or str(REPO_ROOT / default_rel)
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        pytest.fail(
            "%s binary not found or not executable: %s (set %s, or build it with `make %s`)"
            % (env, path, env, default_rel),
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def usher_bin():
    return _binary("USHER_BIN", "build/usher")


@pytest.fixture(scope="session")
def demo_bin():
    return _binary("DEMO_BIN", "build/demo-backend")


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


def _child_env():
    """The environment for the processes under test: stack traces in UBSan
    reports unless the caller chose other options."""
    env = dict(os.environ)
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    return env


def tcp_connectable(port, timeout=0.5):
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


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
            env=_child_env(),
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


@pytest.fixture(scope="session")
def _log_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("process-logs")


@pytest.fixture(scope="session")
def session_procs(_log_dir):
    """Processes shared by many tests (the two demo backends)."""
    reg = ProcessRegistry(_log_dir)
    yield reg
    found = reg.stop_all()
    if found:
        pytest.fail(format_problems(found), pytrace=False)


@pytest.fixture
def procs(request, _log_dir, session_procs):
    reg = ProcessRegistry(_log_dir)
    # Both the test's own processes and the shared ones are reported on failure.
    request.node._usher_procs = lambda: reg.procs + session_procs.procs
    yield reg
    found = reg.stop_all()
    # A shared process (demo backend) that died during this test.
    found += session_procs.dead_problems()
    if found:
        pytest.fail(format_problems(found), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for p in getattr(item, "_usher_procs", list)():
            rep.sections.append(("output of " + p.label, p.describe()))


# -- demo backends ----------------------------------------------------------


class Backend:
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


def _start_backend(registry, demo_bin, name, port=None):
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
                    return Backend(name, port, p)
            except (OSError, AssertionError):
                pass
        last = p
        p.stop(check_exit=False)
    pytest.fail("demo-backend %s did not become ready:\n%s" % (name, last.describe()), pytrace=False)


@pytest.fixture
def start_backend(procs, demo_bin):
    """start_backend(name, port=None) -> a demo backend owned by this test,
    on a free port or on the given one."""
    return lambda name, port=None: _start_backend(procs, demo_bin, name, port)


@pytest.fixture(scope="session")
def _shared_backends(session_procs, demo_bin):
    return {}


@pytest.fixture
def backends(_shared_backends, session_procs, demo_bin, procs):
    """Two demo backends, named backend1 and backend2, shared between tests
    (restarted if one has died). Tests that stop a backend must use
    start_backend instead."""
    result = []
    for name in ("backend1", "backend2"):
        b = _shared_backends.get(name)
        if b is None or not b.proc.alive():
            b = _shared_backends[name] = _start_backend(session_procs, demo_bin, name)
        result.append(b)
    return result


# -- usher ----------------------------------------------------------------


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


@pytest.fixture
def start_usher(procs, usher_bin):
    """start_usher(backend_ports, *extra_args) -> Usher listening on a free
    port with one --backend per port (ports or Backend objects)."""

    def start(backend_ports, *extra):
        last = None
        for _ in range(START_ATTEMPTS):
            port = free_port()
            argv = [usher_bin, "--listen", "%s:%d" % (HOST, port)]
            for b in backend_ports:
                bp = b.port if isinstance(b, Backend) else int(b)
                argv += ["--backend", "http://%s:%d" % (HOST, bp)]
            argv += [str(a) for a in extra]
            p = procs.spawn(argv, "usher")
            if p.wait_ready(port):
                return Usher(port, p)
            last = p
            p.stop(check_exit=False)
        pytest.fail("usher did not become ready:\n%s" % last.describe(), pytrace=False)

    return start


@pytest.fixture
def start_usher_file(procs, usher_bin, tmp_path):
    """start_usher_file(text, nlisteners=1, *extra) -> (usher process, [listener
    ports]). The text holds <L0>, <L1>, ... for the listener ports, which are
    free ports; a start that fails is retried on new ports."""
    count = [0]

    def start(text, nlisteners=1, *extra):
        last = None
        for _ in range(START_ATTEMPTS):
            ports = unused_ports(nlisteners)
            body = text
            for i, p in enumerate(ports):
                body = body.replace("<L%d>" % i, "%s:%d" % (HOST, p))
            assert "<L" not in body, body
            count[0] += 1
            path = tmp_path / ("run-%d.yaml" % count[0])
            path.write_text(body)
            proc = procs.spawn([usher_bin, "-c", str(path)] + [str(a) for a in extra], "usher")
            if all(proc.wait_ready(p) for p in ports):
                return proc, ports
            last = proc
            proc.stop(check_exit=False)
        pytest.fail("usher -c did not become ready:\n%s" % last.describe(), pytrace=False)

    return start


def yaml_pos(text, marker, token=None, occurrence=1):
    """1-based (line, column) of `token` inside the `occurrence`-th
    occurrence of `marker` in text (token defaults to the whole marker)."""
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


@pytest.fixture
def usher(backends, start_usher):
    """usher in front of backend1 and backend2, round robin."""
    return start_usher(backends, "--balance", "round-robin")


@pytest.fixture
def run_usher(usher_bin):
    """Runs usher to completion (for flags that make it exit)."""

    def run(*args, timeout=10.0):
        try:
            p = subprocess.run(
                [usher_bin] + [str(a) for a in args],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                env=_child_env(),
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

    return run


# -- capture backend (Python, in-process) -----------------------------------------


@pytest.fixture
def capture():
    """capture(mode=..., idle=..., linger=...) -> a CaptureBackend, stopped at
    teardown."""
    backends = []

    def make(**kw):
        b = CaptureBackend(**kw)
        backends.append(b)
        return b

    yield make
    for b in backends:
        b.stop()


@pytest.fixture
def raw_backend():
    """raw_backend(respond=None, reject_invalid=True) -> a RawCaptureBackend
    (records the raw bytes it gets), stopped at teardown."""
    made = []

    def make(**kw):
        b = RawCaptureBackend(**kw)
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()
