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

from capture_backend import CaptureBackend  # noqa: E402
from http_raw import RawHTTPConnection, free_port  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
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
        )
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def returncode(self):
        return self.proc.poll()

    def read_log(self):
        try:
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

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                try:
                    self.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    pass
            except ProcessLookupError:
                pass
        try:
            self._log.close()
        except OSError:
            pass

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
        for p in reversed(self.procs):
            p.stop()


@pytest.fixture(scope="session")
def _log_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("process-logs")


@pytest.fixture(scope="session")
def session_procs(_log_dir):
    """Processes shared by many tests (the two demo backends)."""
    reg = ProcessRegistry(_log_dir)
    yield reg
    reg.stop_all()


@pytest.fixture
def procs(request, _log_dir, session_procs):
    reg = ProcessRegistry(_log_dir)
    # Both the test's own processes and the shared ones are reported on failure.
    request.node._usher_procs = lambda: reg.procs + session_procs.procs
    yield reg
    reg.stop_all()


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


def _start_backend(registry, demo_bin, name):
    last = None
    for _ in range(START_ATTEMPTS):
        port = free_port()
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
        p.stop()
    pytest.fail("demo-backend %s did not become ready:\n%s" % (name, last.describe()), pytrace=False)


@pytest.fixture
def start_backend(procs, demo_bin):
    """start_backend(name) -> a demo backend owned by this test."""
    return lambda name: _start_backend(procs, demo_bin, name)


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
            p.stop()
        pytest.fail("usher did not become ready:\n%s" % last.describe(), pytrace=False)

    return start


@pytest.fixture
def usher(backends, start_usher):
    """usher in front of backend1 and backend2, round robin."""
    return start_usher(backends, "--balance", "round-robin")


@pytest.fixture
def run_usher(usher_bin):
    """Runs usher to completion (for flags that make it exit)."""

    def run(*args, timeout=10.0):
        try:
            return subprocess.run(
                [usher_bin] + [str(a) for a in args],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as e:
            pytest.fail(
                "usher %s did not exit within %.0f s (stderr: %r)" % (" ".join(map(str, args)), timeout, e.stderr),
                pytrace=False,
            )

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
