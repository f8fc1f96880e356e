#!/usr/bin/python3
"""DNS changes under load: no failed request, each new set in use within TTL + 1 s.

    bench/dns_changes.py [--changes 10] [--ttl 1] [--gap 4] [--threads 2] [--conns 20]
                         [--usher build/usher] [--demo build/demo-backend]

dnsmasq (harness/dnsmasq.py) answers bench.test with three of the loopback
addresses 127.0.0.2..; demo backends listen there on one port; usher in quick
mode discovers them (--backend dns+http://bench.test:PORT, health checks every
200 ms). wrk loads usher for the whole run. Each change (every --gap s) takes
the oldest address out of the answer and puts a new one in; the backend of
the new address is started only 300 ms after the DNS change (so that usher
must wait for its first health check), and the backend taken out is stopped
once it no longer gets requests.

Measured for each change, from the moment dnsmasq serves the new answer
(set_hosts returns once it does):
  in:  until the new backend served its first request (its /stats count);
  out: until the removed backend served its last one (its count, polled every
       20 ms, stops moving).
Prints one line per change, then wrk's totals; exits 1 when wrk saw a
non-2xx answer or a socket error, or when a change took longer than TTL + 1 s.
Loopback only; every process is stopped by its PID.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import procs as _procs  # noqa: E402
from harness.dnsmasq import DnsServer  # noqa: E402


def requests_of(host, port):
    try:
        with urllib.request.urlopen("http://%s:%d/stats" % (host, port), timeout=2) as r:
            return json.loads(r.read())["requests"]
    except OSError:
        return None


def wait_port(host, port, timeout=10):
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.3):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=10)
    ap.add_argument("--ttl", type=int, default=1)
    ap.add_argument("--gap", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--conns", type=int, default=20)
    ap.add_argument("--usher", default=os.path.join(ROOT, "build", "usher"))
    ap.add_argument("--demo", default=os.path.join(ROOT, "build", "demo-backend"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="dns_changes-")
    reg = _procs.ProcessRegistry(tmp)
    port = _procs.free_port()
    addrs = ["127.0.0.%d" % i for i in range(2, 2 + 3 + a.changes)]
    backs = {}

    def start(addr):
        backs[addr] = reg.spawn([a.demo, "--port", port, "--name", addr, "--host", addr], "demo-" + addr)
        assert wait_port(addr, port), "backend %s did not start" % addr

    failed = False
    try:
        for addr in addrs[:3]:
            start(addr)
        dns = DnsServer(reg, os.path.join(tmp, "dns"), hosts=[(x, "bench.test") for x in addrs[:3]], ttl=a.ttl)
        uport = _procs.free_port()
        u = reg.spawn([a.usher, "--listen", "127.0.0.1:%d" % uport, "--backend", "dns+http://bench.test:%d" % port,
                       "--resolver", dns.resolver, "--health-interval", "200ms", "--health-timeout", "500ms",
                       "--threads", "2"], "usher")
        assert u.wait_ready(uport), u.read_log()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not all(requests_of(x, port) for x in addrs[:3]):
            urllib.request.urlopen("http://127.0.0.1:%d/" % uport, timeout=2).read()
        duration = int(a.changes * a.gap + a.gap + 2)
        wrk = subprocess.Popen(["wrk", "-t%d" % a.threads, "-c%d" % a.conns, "-d%ds" % duration,
                                "http://127.0.0.1:%d/" % uport], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(a.gap / 2)
        live = list(addrs[:3])
        results = []
        for i in range(a.changes):
            add, drop = addrs[3 + i], live[0]
            live = live[1:] + [add]
            dns.set_hosts([(x, "bench.test") for x in live])
            t0 = time.monotonic()
            timer = threading.Timer(0.3, start, (add,))
            timer.start()
            t_in = t_out = None
            last_count, last_move = requests_of(drop, port), t0
            while time.monotonic() - t0 < a.gap:
                now = time.monotonic()
                if t_in is None and backs.get(add) and (requests_of(add, port) or 0) > 0:
                    t_in = now - t0
                c = requests_of(drop, port)
                if c != last_count:
                    last_count, last_move = c, now
                if t_in is not None and now - last_move > 1.5:
                    break
                time.sleep(0.02)
            timer.join()
            t_out = last_move - t0
            backs.pop(drop).stop(check_exit=False)
            results.append((add, drop, t_in, t_out))
            print("change %2d: +%s in use after %s, -%s out after %.0f ms" % (
                i + 1, add, "%.0f ms" % (t_in * 1000) if t_in is not None else "NEVER", drop, t_out * 1000), flush=True)
            rest = a.gap - (time.monotonic() - t0)
            if rest > 0:
                time.sleep(rest)
        out = wrk.communicate(timeout=duration + 30)[0].decode()
        print(out)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        reqs = re.search(r"(\d+) requests in", out)
        bad = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
        limit = a.ttl + 1.0
        worst_in = max((r[2] if r[2] is not None else 99) for r in results)
        worst_out = max(r[3] for r in results)
        print("summary: %d changes, TTL %d s: %s requests, %d failed (non-2xx + socket errors); "
              "new backend in use after at most %.0f ms, removed one out after at most %.0f ms (limit %.0f ms)"
              % (a.changes, a.ttl, reqs.group(1) if reqs else "?", bad, worst_in * 1000, worst_out * 1000, limit * 1000))
        failed = bad > 0 or worst_in > limit or worst_out > limit
    finally:
        problems = reg.stop_all()
        if problems:
            print(_procs.format_problems(problems))
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
