"""usher set up for the HTTP/2 tests (test_h2_attacks.py, test_h2_streams.py):
a -c file with one TLS listener (ALPN h2) and one plain listener (HTTP/2 by
prior knowledge), one pool, and the `h2:` block the test asks for.

    require_h2(run_usher, directory)   skips the test while usher does not
                                       know the h2 keys at all (before HTTP/2
                                       was built); once it knows them, every
                                       test runs
    h2_config(cert, backends, h2={}, timeouts={}, pool_timeouts={})
                                       the file's text (<L0> TLS, <L1> plain)
    H2Usher                            (file usher, .tls, .plain, .pid)
    wait_h2_ready(port, tls)           until the listener answers the client
                                       preface with SETTINGS (bounded)"""

import time

import pytest

from harness import h2attack


def _yaml_map(d):
    return "{ " + ", ".join("%s: %s" % (k, v) for k, v in d.items()) + " }"


def h2_config(cert, backend_ports, h2=None, timeouts=None, pool_timeouts=None, balance="round-robin"):
    """The text of a -c file: listener <L0> with TLS (cert: a harness Cert),
    listener <L1> plain, both on pool web (backend_ports: ports or objects
    with .port)."""
    urls = ", ".join('"http://127.0.0.1:%d"' % (b.port if hasattr(b, "port") else int(b)) for b in backend_ports)
    text = (
        "listeners:\n"
        "  - bind: <L0>\n"
        "    pool: web\n"
        "    tls:\n"
        "      certificates: [ %s ]\n"
        "  - bind: <L1>\n"
        "    pool: web\n"
        "pools:\n"
        "  web:\n"
        "    balance: %s\n"
        "    backends: [ %s ]\n"
        "    health: { type: off }\n" % (cert.yaml(), balance, urls)
    )
    if pool_timeouts:
        text += "    timeouts: %s\n" % _yaml_map(pool_timeouts)
    if timeouts:
        text += "timeouts: %s\n" % _yaml_map(timeouts)
    if h2:
        text += "h2: %s\n" % _yaml_map(h2)
    return text


def require_h2(run_usher, directory):
    """Skips (with the reason) while usher refuses the h2 block: HTTP/2 is
    not built yet. Nothing else makes these tests skip."""
    path = directory / "h2-probe.yaml"
    path.write_text(
        "listeners:\n  - bind: 127.0.0.1:1\n    pool: web\n"
        "pools:\n  web:\n    backends: [ \"http://127.0.0.1:9\" ]\n"
        "h2: { max_concurrent_streams: 100, glitches_threshold: 1000 }\n"
    )
    p = run_usher("-c", str(path), "-t")
    if p.returncode != 0:
        err = (p.stdout + p.stderr).decode("utf-8", "replace").strip()
        pytest.skip("usher does not speak HTTP/2 yet: it refuses the h2 block (%s)" % err[:300])


def wait_h2_ready(port, tls, timeout=10.0):
    """None once the listener answers the client preface with SETTINGS, else
    what happened instead."""
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while time.monotonic() < deadline:
        try:
            p = h2attack.Pump(port, tls)
        except (OSError, AssertionError) as e:
            last = repr(e)
            time.sleep(0.1)
            continue
        try:
            end = time.monotonic() + 2.0
            while not p.server_settings and not p.closed and time.monotonic() < end:
                p.step(0.05)
            if p.server_settings:
                return None
            last = "no SETTINGS in answer to the preface (closed: %s)" % p.close_how
        finally:
            p.close()
        time.sleep(0.1)
    return last


class H2Usher:
    def __init__(self, fileusher):
        self.u = fileusher
        self.proc = fileusher.proc
        self.tls, self.plain = fileusher.ports
        self.pid = fileusher.proc.pid

    def port(self, tls):
        return self.tls if tls else self.plain


def start_h2_usher(start_usher_file_tls, text):
    u = H2Usher(start_usher_file_tls(text, 2, tls=(0,)))
    for tls in (True, False):
        why = wait_h2_ready(u.port(tls), tls)
        if why is not None:
            pytest.fail("usher does not answer HTTP/2 on its %s listener: %s\n%s"
                        % ("TLS" if tls else "plain", why, u.proc.describe()), pytrace=False)
    return u
