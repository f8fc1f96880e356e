#!/usr/bin/python3
"""h2_attacks.py: usher under each HTTP/2 flood of issue 12 item 4.

Checks "What it must show": under each attack usher stays up, keeps its RSS
under twice its idle figure plus 50 MB, answers a normal client on another
connection with p99 under 50 ms, and closes the abusive connection within
10 s.

How, for each attack of tests/integration/harness/h2attack.py (the same
clients the tests use): a fresh usher (build/usher, one worker thread,
default h2 limits; timeouts of 5 s for the slow reader) with a plain
listener (prior knowledge) and a TLS one, in front of two build/demo-backend;
then
  1. 200 warm-up requests, 1 s idle, VmRSS of usher = "idle RSS";
  2. a normal client (python3-h2, its own connection to the same
     listener, GET / at --rate req/s, default 20) runs from 1 s before the
     attack to 1 s after it;
  3. the attack runs until usher closes its connection (or for --duration
     seconds, default 15), then again on a new connection, and so on for
     --window seconds (default 5): the normal client is measured under
     attack, not in a pause; VmRSS is sampled every 20 ms = "peak RSS";
  4. time to close: from an attack's first byte to the EOF/reset it saw,
     the worst of the connections; GOAWAY: the codes they carried ("none":
     the connection ended without one).
The normal client runs in a process of its own (in a thread of this one it
would wait for the GIL behind the attack's loop). The slow reader runs once
(4 s timeouts: its stream times out after client_idle, then the idle
connection after client_idle again).
A row fails when usher died, the connection was not closed within 10 s, the
peak RSS is past 2 x idle + 50 MB, the normal client's p99 is past 50 ms, or
one of its requests failed.

    /usr/bin/python3 bench/h2_attacks.py [--only a,b] [--tls] [--duration S]
        [--usher PATH] [--demo PATH] [--rate R]

Prints a Markdown table (for docs/benchmarks.md); exits 1 if a row fails."""

import argparse
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from harness import h2attack  # noqa: E402

HOST = "127.0.0.1"


def free_ports(n):
    ss = [socket.socket() for _ in range(n)]
    for s in ss:
        s.bind((HOST, 0))
    ports = [s.getsockname()[1] for s in ss]
    for s in ss:
        s.close()
    return ports


def wait_port(port, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("process exited: %r" % proc.args)
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("nothing listens on %d" % port)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _probe_main(port, tls, rate, stop_ev, out):
    probe = h2attack.LatencyProbe(port, tls, rate=rate)
    probe.start()
    stop_ev.wait(600)
    probe.stop()
    out.put((probe.latencies, probe.failures))


class ProbeProcess:
    """The normal client in a process of its own: in a thread of this one it
    would wait for the GIL behind the attack's busy loop, and measure that."""

    def __init__(self, port, tls, rate):
        ctx = multiprocessing.get_context("fork")
        self.stop_ev = ctx.Event()
        self.q = ctx.Queue()
        self.p = ctx.Process(target=_probe_main, args=(port, tls, rate, self.stop_ev, self.q), daemon=True)
        self.latencies, self.failures = [], []

    def start(self):
        self.p.start()

    def stop(self):
        self.stop_ev.set()
        self.latencies, self.failures = self.q.get(timeout=60)
        self.p.join(10)

    def percentile(self, q):
        if not self.latencies:
            return None
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(q * len(s)))]


class Sampler(threading.Thread):
    def __init__(self, pid, period=0.02):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.peak = 0
        self.ev = threading.Event()

    def run(self):
        while not self.ev.is_set():
            r = h2attack.rss_kb(self.pid)
            if r is None:
                return
            self.peak = max(self.peak, r)
            self.ev.wait(self.period)

    def stop(self):
        self.ev.set()
        self.join(5)


def run_one(name, args, tmp, cert, key, demo_ports):
    tls_port, plain_port = free_ports(2)
    slow = name == "slow-reader"
    text = (
        "listeners:\n"
        "  - bind: %s:%d\n    pool: web\n    tls:\n      certificates: [ { cert: %s, key: %s } ]\n"
        "  - bind: %s:%d\n    pool: web\n"
        "pools:\n  web:\n    backends: [ %s ]\n    health: { type: off }\n%s"
        "threads: 1\n"
        % (HOST, tls_port, cert, key, HOST, plain_port, ", ".join('"http://%s:%d"' % (HOST, p) for p in demo_ports),
           "    timeouts: { response: 4s }\ntimeouts: { client_idle: 4s, client_body: 4s }\n" if slow else "")
    )
    path = os.path.join(tmp, "usher-%s.yaml" % name)
    with open(path, "w") as f:
        f.write(text)
    log = open(os.path.join(tmp, "usher-%s.log" % name), "wb")
    u = subprocess.Popen([args.usher, "-c", path], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_port(plain_port, u)
        wait_port(tls_port, u)
        port = tls_port if args.tls else plain_port
        with h2attack.H2Client(port, args.tls) as c:
            for _ in range(200):
                assert c.get("/").status == 200
        time.sleep(1.0)
        idle = h2attack.rss_kb(u.pid)
        probe = ProbeProcess(port, args.tls, args.rate)
        probe.start()
        sampler = Sampler(u.pid)
        sampler.start()
        time.sleep(1.0)
        # the attack again and again (a new connection each time usher closed
        # the last) for --window seconds: the normal client is measured under
        # it, not in the pauses
        results = []
        end = time.monotonic() + args.window
        while True:
            if slow:
                res = h2attack.slow_reader(port, tls=args.tls, duration=args.duration, path="/bytes?n=104857600", streams=10)
            else:
                res = h2attack.run_attack(name, port, tls=args.tls, duration=args.duration)
            results.append(res)
            if not res.closed or time.monotonic() >= end or u.poll() is not None:
                break
        time.sleep(1.0)
        probe.stop()
        sampler.stop()
        alive = u.poll() is None
        p99 = probe.percentile(0.99)
        limit = 2 * idle + 50 * 1024
        closes = [r.time_to_close for r in results]
        worst = None if None in closes else max(closes)
        goaways = sorted({r.goaway_name or "none" for r in results})
        ok = (alive and worst is not None and worst <= 10.0 and sampler.peak <= limit
              and p99 is not None and p99 <= 0.050 and not probe.failures)
        res = results[-1]
        return {
            "attack": name,
            "runs": len(results),
            "sent": sum(r.sent_units for r in results),
            "idle": idle,
            "peak": sampler.peak,
            "p99": p99,
            "n": len(probe.latencies),
            "fail": len(probe.failures),
            "close": worst,
            "goaway": ", ".join(goaways),
            "alive": alive,
            "ok": ok,
            "detail": repr(res),
        }
    finally:
        stop(u)
        log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="")
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--window", type=float, default=5.0, help="seconds of attack, connection after connection")
    ap.add_argument("--usher", default=os.path.join(ROOT, "build", "usher"))
    ap.add_argument("--demo", default=os.path.join(ROOT, "build", "demo-backend"))
    ap.add_argument("-v", action="store_true", help="print each attack's full result")
    args = ap.parse_args()
    names = [n for n in h2attack.ATTACKS if not args.only or n in args.only.split(",")]
    tmp = tempfile.mkdtemp(prefix="usher-h2-attacks-")
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    demo_ports = free_ports(2)
    demos = [subprocess.Popen([args.demo, "--port", str(p), "--name", "backend%d" % (i + 1), "--host", HOST],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
             for i, p in enumerate(demo_ports)]
    rows = []
    try:
        for p, d in zip(demo_ports, demos):
            wait_port(p, d)
        for name in names:
            r = run_one(name, args, tmp, cert, key, demo_ports)
            rows.append(r)
            if args.v:
                print(r["detail"], file=sys.stderr)
    finally:
        for d in demos:
            stop(d)
    print("| attack (%s) | connections | frames or streams sent | idle RSS | peak RSS | normal client p99 (n, failed) | time to close (worst) | GOAWAY | pass |"
          % ("TLS" if args.tls else "prior knowledge"))
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for r in rows:
        print("| %s | %d | %d | %.1f MB | %.1f MB | %s (%d, %d) | %s | %s | %s |" % (
            r["attack"], r["runs"], r["sent"], r["idle"] / 1024, r["peak"] / 1024,
            "-" if r["p99"] is None else "%.1f ms" % (r["p99"] * 1000), r["n"], r["fail"],
            "not closed" if r["close"] is None else "%.2f s" % r["close"], r["goaway"],
            "yes" if r["ok"] else ("NO (usher died)" if not r["alive"] else "NO")))
    sys.exit(0 if all(r["ok"] for r in rows) else 1)


if __name__ == "__main__":
    main()
