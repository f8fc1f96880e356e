#!/usr/bin/python3
"""admin_instr.py: instructions per request (callgrind) of usher with the
admin listener off, and on with /metrics scraped at a given request rate:
the figure of bench/admin_cost.sh that does not move with the machine's load
(a VM without a PMU cannot give it to perf stat).

For each side, usher (one worker thread, two build/demo-backend backends,
round robin, default health checks; "on" adds --admin) runs under
`valgrind --tool=callgrind` twice: with no request, and with --requests
keep-alive GETs, where "on" also scrapes /metrics once every --per-scrape
requests (default 25000: one scrape a second at 25,000 req/s, about what one
usher worker serves on this machine in peers.sh's scenario small). The
difference divided by the requests is the cost of one request, scrapes
included (start-up and shut-down cancel out).

Under callgrind usher runs some 50 times slower, so the per-second work of
the admin (the series sample) runs about 50 times more often per request than
at full speed: the "on" figure is an upper bound.

    /usr/bin/python3 bench/admin_instr.py [--requests N] [--per-scrape K] [BIN]
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from instr_per_req import ROOT, free_port, read_response, total_instructions, wait_port  # noqa: E402


def scrape(port):
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, _ = read_response(s, b"")
    if status != 200:
        sys.exit(f"GET /metrics answered {status}")


def drive(port, n, admin, per_scrape):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    buf = b""
    bad = scrapes = 0
    for i in range(n):
        if admin and i % per_scrape == per_scrape - 1:
            scrape(admin)
            scrapes += 1
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, buf = read_response(s, buf)
        bad += status != 200
    s.close()
    if bad:
        sys.exit(f"{bad} of {n} answers were not 200")
    return scrapes


def measure(binary, demo, n, on, per_scrape, work):
    procs = []
    try:
        bports = [free_port(), free_port()]
        for i, p in enumerate(bports):
            procs.append(subprocess.Popen([demo, "--port", str(p), "--name", f"backend{i + 1}"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(p, procs[-1])
        port = free_port()
        admin = free_port() if on else 0
        out = os.path.join(work, f"cg.{os.getpid()}.{time.monotonic_ns()}")
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary,
                "--listen", f"127.0.0.1:{port}", "--threads", "1", "--balance", "round-robin"]
        for p in bports:
            argv += ["--backend", f"http://127.0.0.1:{p}"]
        if on:
            argv += ["--admin", f"127.0.0.1:{admin}"]
        u = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(u)
        wait_port(port, u)
        if on:
            wait_port(admin, u)
        drive(port, 200, 0, per_scrape)  # warm-up: free lists and buffers filled
        scrapes = drive(port, n, admin, per_scrape)
        u.send_signal(signal.SIGTERM)
        u.wait(timeout=120)
        return total_instructions(out), scrapes
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=50000)
    ap.add_argument("--per-scrape", type=int, default=25000)
    ap.add_argument("--demo", default=os.path.join(ROOT, "build", "demo-backend"))
    ap.add_argument("binary", nargs="?", default=os.path.join(ROOT, "build", "usher"))
    a = ap.parse_args()
    per = {}
    with tempfile.TemporaryDirectory() as work:
        for side, on in (("off", False), ("on", True)):
            base, _ = measure(a.binary, a.demo, 0, on, a.per_scrape, work)
            full, scrapes = measure(a.binary, a.demo, a.requests, on, a.per_scrape, work)
            per[side] = (full - base) / a.requests
            print(f"admin {side:3}: {per[side]:.0f} instructions per request "
                  f"({a.requests} requests, {scrapes} scrapes: {full}; none: {base})")
    print(f"on - off: {per['on'] - per['off']:+.0f} instructions per request "
          f"({(per['on'] - per['off']) / per['off'] * 100:+.2f} %), a scrape every {a.per_scrape} requests")


if __name__ == "__main__":
    main()
