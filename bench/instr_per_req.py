#!/usr/bin/python3
"""instr_per_req.py: instructions (callgrind) or heap allocations (memcheck)
usher makes per request.

Instruction counts do not depend on what else the machine is doing, so two
builds can be compared to the percent on a shared, noisy VM where req/s and
even CPU time move by 10 % from run to run.

How, for each usher binary given: two build/demo-backend processes, usher
(one worker thread, round robin, default TCP health checks) under
`valgrind --tool=callgrind`, then a client in this script that sends
--requests GETs in the given mode and checks every answer is a 200:
  keepalive  one connection per client, requests back to back
  close      "Connection: close": a new connection per request
Run once with 0 requests and once with N; the difference divided by N is
the cost of one request (start-up and shut-down cancel out; health checks
are few and count alike in both runs).

With --tls usher's listener is https:// (a self-signed P-256 certificate
made with the openssl CLI) and the client speaks TLS 1.3 (Python's ssl, no
verification); in keepalive mode each run, the one with no requests too,
makes one handshake, so the difference is the requests' cost.
--usher-arg passes more arguments (e.g. --usher-arg=--tls-record-layer
--usher-arg=openssl).

With --allocs the same runs go under memcheck and the figure is heap
allocations per request, from valgrind's "total heap usage" line: 0 means no
request allocates in steady state.

    /usr/bin/python3 bench/instr_per_req.py [--requests N] [--mode keepalive|close]
        [--allocs] BIN [BIN ...]
"""

import argparse
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"process exited early: {proc.args}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"port {port} never opened")


def read_response(sock, buf):
    """Reads one response with Content-Length; returns (status, rest of buf)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed before a response head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    n = int(m.group(1)) if m else 0
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed inside a body")
        rest += chunk
    return status, rest[n:]


TLS_CTX = None  # the client context with --tls


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    if TLS_CTX is not None:
        s = TLS_CTX.wrap_socket(s, server_hostname="bench.test")
    return s


def make_cert(work):
    key, cert = os.path.join(work, "key.pem"), os.path.join(work, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=bench.test",
                    "-addext", "subjectAltName=DNS:bench.test"], check=True, capture_output=True)
    return cert, key


def drive(port, n, mode):
    bad = 0
    if mode == "keepalive":
        s = connect(port)
        buf = b""
        for _ in range(n):
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            status, buf = read_response(s, buf)
            bad += status != 200
        s.close()
    else:
        for _ in range(n):
            s = connect(port)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            status, _ = read_response(s, b"")
            bad += status != 200
            s.close()
    if bad:
        sys.exit(f"{bad} of {n} answers were not 200")


def total_instructions(path):
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    sys.exit(f"no totals in {path}")


def total_allocs(path):
    with open(path) as f:
        for line in f:
            m = re.search(r"total heap usage: ([\d,]+) allocs", line)
            if m:
                return int(m.group(1).replace(",", ""))
    sys.exit(f"no heap summary in {path}")


def measure(binary, demo, n, mode, work, allocs=False, tls=None, extra=()):
    procs = []
    try:
        bports = [free_port(), free_port()]
        for i, p in enumerate(bports):
            procs.append(subprocess.Popen([demo, "--port", str(p), "--name", f"backend{i + 1}"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(p, procs[-1])
        port = free_port()
        out = os.path.join(work, f"cg.{os.getpid()}.{time.monotonic_ns()}")
        tool = (["--tool=memcheck", f"--log-file={out}"] if allocs else
                ["--tool=callgrind", f"--callgrind-out-file={out}"])
        listen = ["--listen", f"https://127.0.0.1:{port}", "--cert", tls[0], "--key", tls[1]] if tls else \
            ["--listen", f"127.0.0.1:{port}"]
        argv = ["valgrind"] + tool + [binary, *listen, "--threads", "1", *extra]
        for p in bports:
            argv += ["--backend", f"http://127.0.0.1:{p}"]
        u = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(u)
        wait_port(port, u)
        drive(port, 200, "keepalive")  # warm-up: free lists and buffers filled
        drive(port, n, mode)
        u.send_signal(signal.SIGTERM)
        u.wait(timeout=120)
        return total_allocs(out) if allocs else total_instructions(out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--mode", choices=["keepalive", "close"], default="keepalive")
    ap.add_argument("--demo", default=os.path.join(ROOT, "build", "demo-backend"))
    ap.add_argument("--allocs", action="store_true", help="count heap allocations (memcheck)")
    ap.add_argument("--tls", action="store_true", help="an https:// listener, TLS 1.3 clients")
    ap.add_argument("--usher-arg", action="append", default=[], help="one more usher argument (repeat)")
    ap.add_argument("binaries", nargs="+")
    a = ap.parse_args()
    global TLS_CTX
    with tempfile.TemporaryDirectory() as work:
        tls = None
        if a.tls:
            tls = make_cert(work)
            TLS_CTX = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            TLS_CTX.check_hostname = False
            TLS_CTX.verify_mode = ssl.CERT_NONE
            TLS_CTX.minimum_version = ssl.TLSVersion.TLSv1_3
        for b in a.binaries:
            base = measure(b, a.demo, 0, a.mode, work, a.allocs, tls, a.usher_arg)
            full = measure(b, a.demo, a.requests, a.mode, work, a.allocs, tls, a.usher_arg)
            what = "heap allocations" if a.allocs else "instructions"
            per = (full - base) / a.requests
            print(f"{b} {' '.join(a.usher_arg)}{' (TLS)' if a.tls else ''}: {a.mode}: {per:.{3 if a.allocs else 0}f} {what} per request "
                  f"({a.requests} requests: {full}; none: {base})")


if __name__ == "__main__":
    main()
