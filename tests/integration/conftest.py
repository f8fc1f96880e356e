"""Fixtures for the usher integration tests: they wire the harness modules
(harness/procs.py, harness/backends.py; see harness/__init__.py) into
pytest. Nothing here starts, waits for or stops a process itself.

Binaries come from $USHER_BIN and $DEMO_BIN (defaults: build/usher and
build/demo-backend under the repository root). Every process is started
through the `procs` fixture (a procs.ProcessRegistry): its output is
attached to the report of a failing test, and it is stopped by its PID at
teardown, where a bad exit status or a sanitizer report is a test error.
Python backends are stopped at teardown too.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import certs as _certs  # noqa: E402
from harness import procs as _procs  # noqa: E402
from harness.backends import CaptureBackend, RawCaptureBackend, SilentBackend  # noqa: E402


@pytest.fixture(scope="session")
def usher_bin():
    return _procs.binary("USHER_BIN", "build/usher")


@pytest.fixture(scope="session")
def demo_bin():
    return _procs.binary("DEMO_BIN", "build/demo-backend")


# -- process registries -------------------------------------------------------------


@pytest.fixture(scope="session")
def _log_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("process-logs")


@pytest.fixture(scope="session")
def session_procs(_log_dir):
    """Processes shared by many tests (the two demo backends)."""
    reg = _procs.ProcessRegistry(_log_dir)
    yield reg
    found = reg.stop_all()
    if found:
        pytest.fail(_procs.format_problems(found), pytrace=False)


@pytest.fixture
def procs(request, _log_dir, session_procs):
    reg = _procs.ProcessRegistry(_log_dir)
    # Both the test's own processes and the shared ones are reported on failure.
    request.node._usher_procs = lambda: reg.procs + session_procs.procs
    yield reg
    found = reg.stop_all()
    # A shared process (demo backend) that died during this test.
    found += session_procs.dead_problems()
    if found:
        pytest.fail(_procs.format_problems(found), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for p in getattr(item, "_usher_procs", list)():
            rep.sections.append(("output of " + p.label, p.describe()))


# -- demo backends ----------------------------------------------------------------


@pytest.fixture
def start_backend(procs, demo_bin):
    """start_backend(name, port=None) -> a procs.DemoBackend owned by this
    test, on a free port or on the given one."""
    return lambda name, port=None: _procs.start_demo(procs, demo_bin, name, port)


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
            b = _shared_backends[name] = _procs.start_demo(session_procs, demo_bin, name)
        result.append(b)
    return result


# -- usher ------------------------------------------------------------------------


@pytest.fixture
def start_usher(procs, usher_bin):
    """start_usher(backend_ports, *extra_args, wrapper=(), label="usher") ->
    procs.Usher listening on a free port with one --backend per port (ports,
    or backends with a .port). wrapper: argv put before usher's (a program
    that exec()s it)."""
    return lambda backend_ports, *extra, wrapper=(), label="usher": _procs.start_usher(
        procs, usher_bin, backend_ports, extra, wrapper, label
    )


@pytest.fixture
def start_usher_file(procs, usher_bin, tmp_path):
    """start_usher_file(text, nlisteners=1, *extra) -> procs.FileUsher (its
    .proc, .ports and .path; it unpacks as (proc, ports); .write(), .hup()
    and .reload() rewrite the file and reload it). The text holds <L0>,
    <L1>, ... for the listener ports, which are free ports."""
    return lambda text, nlisteners=1, *extra: _procs.start_usher_file(
        procs, usher_bin, tmp_path, text, nlisteners, extra
    )


@pytest.fixture
def start_usher_tls(procs, usher_bin):
    """start_usher_tls(backend_ports, *extra, listen=("http", "https"),
    label="usher") -> procs.UsherListeners: usher with one --listen per
    entry of listen (plain or TLS, free ports; .plain, .tls, .ports), ready
    when every TLS port answers a handshake. extra holds the --cert flags;
    "<P0>", "<P1>", ... in it become the listener ports."""
    return lambda backend_ports, *extra, listen=("http", "https"), label="usher": _procs.start_usher_listeners(
        procs, usher_bin, listen, backend_ports, extra, label
    )


@pytest.fixture
def start_usher_file_tls(start_usher_file):
    """start_usher_file_tls(text, nlisteners=1, *extra, tls=(0,)) ->
    procs.FileUsher, like start_usher_file, and then waits until the
    listeners numbered in tls answer a TLS handshake."""

    def start(text, nlisteners=1, *extra, tls=(0,)):
        u = start_usher_file(text, nlisteners, *extra)
        for i in tls:
            why = _procs.wait_tls_ready(u.proc, u.ports[i])
            if why is not None:
                pytest.fail("usher's TLS listener is not ready (%s):\n%s" % (why, u.proc.describe()), pytrace=False)
        return u

    return start


@pytest.fixture
def usher(backends, start_usher):
    """usher in front of backend1 and backend2, round robin."""
    return start_usher(backends, "--balance", "round-robin")


@pytest.fixture
def run_usher(usher_bin):
    """run_usher(*args, timeout=10.0) -> subprocess.CompletedProcess: usher
    run to completion (for flags that make it exit)."""
    return lambda *args, timeout=10.0: _procs.run_usher(usher_bin, args, timeout)


# -- TLS certificates ---------------------------------------------------------------


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """The test certificates (harness/certs.py: TestCerts), made once per
    session with the openssl command line in a temporary directory."""
    return _certs.make_test_certs(tmp_path_factory.mktemp("certs"))


# -- backends written in Python (harness/backends.py) ------------------------------------


@pytest.fixture
def py_backend():
    """py_backend(cls, **kw) -> cls(**kw), any backend of harness/backends.py,
    stopped at teardown."""
    made = []

    def make(cls, **kw):
        b = cls(**kw)
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


@pytest.fixture
def capture(py_backend):
    """capture(mode=..., idle=..., linger=..., misbehave=..., drop_nth=...)
    -> a CaptureBackend, stopped at teardown."""
    return lambda **kw: py_backend(CaptureBackend, **kw)


@pytest.fixture
def raw_backend(py_backend):
    """raw_backend(respond=None, reject_invalid=True) -> a RawCaptureBackend
    (records the raw bytes it gets), stopped at teardown."""
    return lambda **kw: py_backend(RawCaptureBackend, **kw)


@pytest.fixture
def silent_backend(py_backend):
    """silent_backend(kind="no-accept" | "full-queue" | "no-read") -> a
    SilentBackend (never answers), stopped at teardown."""
    return lambda kind="no-accept": py_backend(SilentBackend, kind=kind)
