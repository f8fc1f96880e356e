#!/usr/bin/python3
"""idle_conns.py: RSS cost of idle keep-alive client connections, per proxy.

Checks the requirement "10,000 idle keep-alive connections cost at most 1 KiB of
RSS each (one worker, after one request on each connection)" for usher, and
measures nginx and HAProxy the same way for comparison.

How, for each proxy (one worker/thread, no access log, 300 s client keep-alive
where configurable) in front of one build/demo-backend, all on loopback:
  1. start it, wait until it answers, do 200 warm-up requests on 4 connections;
  2. read VmRSS of the proxy process (nginx: its single worker, not the master)
     = "RSS before";
  3. open N client connections (default 10,000) and send exactly one
     "GET / HTTP/1.1" on each, at most --inflight exchanges at a time, reading
     each full response (Content-Length or chunked); every connection then
     stays open and idle;
  4. wait 2 s, read VmRSS again = "RSS after";
     per connection = (after - before) / connections held open;
  5. check that every connection is still open (no EOF) and that 10 of them
     still answer a second request with 200; close everything, stop the proxy.
RSS is user-space memory only: kernel socket buffers are not in it.

With --tls, each proxy listens with TLS instead, on one self-signed ECDSA P-256
certificate (CN and subjectAltName bench.test) made at run time with the openssl
CLI, TLS 1.2 and 1.3 enabled; every client connection (warm-up, readiness probe,
the N idle ones) does a TLS 1.3 handshake (no certificate verification, SNI
bench.test) and then the same exchange as above, over TLS; the checks of step 5
run over TLS too. Everything else (proxy settings, RSS method) is the same.

Stdlib only (plus the openssl CLI for --tls). Run: /usr/bin/python3 bench/idle_conns.py
    [--conns N] [--only usher,nginx,haproxy] [--usher PATH] [--demo PATH] [--inflight K]
    [--tls]
"""

import argparse
import os
import platform
import resource
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
PROXIES = ("usher", "nginx", "haproxy")
FD_LIMIT = 65536
OPEN_TIMEOUT = 120.0  # seconds allowed for opening all N connections
SETTLE = 2.0  # seconds between the last response and the second RSS reading
WARMUP_REQUESTS = 200
WARMUP_CONNS = 4
CHECK_CONNS = 10
TLS_NAME = "bench.test"  # certificate CN/subjectAltName and the SNI clients send


class BenchError(Exception):
    """A failure that ends the measurement of one proxy (reported in the table)."""


# ---- small helpers -------------------------------------------------------------------


def raise_fd_limit():
    """Raises RLIMIT_NOFILE to FD_LIMIT (children inherit it). Returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for want in ((FD_LIMIT, max(hard, FD_LIMIT)), (min(FD_LIMIT, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, want)
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def parse_response(buf):
    """Returns (status, bytes used) once buf holds one whole response, else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buf[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise BenchError(f"bad status line {lines[0]!r}")
    status = int(parts[1])
    length, chunked = 0, False
    for h in lines[1:]:
        name, _, value = h.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    pos = end + 4
    if not chunked:
        return (status, pos + length) if len(buf) >= pos + length else None
    while True:  # chunked body: size line, data, CRLF ... 0 CRLF [trailers] CRLF
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(buf[pos:eol].split(b";")[0], 16)
        pos = eol + 2
        if size == 0:
            tail = buf.find(b"\r\n\r\n", pos - 2)
            return (status, tail + 4) if tail >= 0 else None
        if len(buf) < pos + size + 2:
            return None
        pos += size + 2


def blocking_get(sock, timeout=5.0):
    """Sends one request on a connected socket and returns the response status."""
    sock.setblocking(True)
    sock.settimeout(timeout)
    sock.sendall(REQUEST)
    buf = b""
    while True:
        r = parse_response(buf)
        if r:
            return r[0]
        data = sock.recv(65536)
        if not data:
            raise BenchError("connection closed before a whole response")
        buf += data


def client_context():
    """TLS client side of --tls: TLS 1.3 only, no certificate verification."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def connect(port, timeout, tls=None):
    """A blocking client connection to the proxy; with tls (a client context), handshaken."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls is None:
        return s
    try:
        return tls.wrap_socket(s, server_hostname=TLS_NAME)
    except BaseException:
        s.close()
        raise


def wait_ready(port, proc, timeout=10.0, tls=None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"exited with status {proc.returncode} at start")
        try:
            with connect(port, 1.0, tls) as s:
                status = blocking_get(s, 2.0)
                if status == 200:
                    return
                last = f"status {status}"
        except (OSError, BenchError) as e:
            last = str(e)
        time.sleep(0.1)
    raise BenchError(f"did not answer 200 within {timeout:.0f} s ({last})")


def stop(proc, grace=5.0):
    """SIGTERM, then SIGKILL to the process group it leads (nginx workers too)."""
    if proc is None:
        return
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # only the group this script started
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass


def tail(path, n=5):
    try:
        with open(path, errors="replace") as f:
            lines = [l.rstrip() for l in f if l.strip()]
        return " / ".join(lines[-n:])
    except OSError:
        return ""


def make_cert(tmp):
    """A self-signed ECDSA P-256 certificate for bench.test: (cert, key, cert+key PEM)."""
    cert, key, pem = (os.path.join(tmp, n) for n in ("cert.pem", "key.pem", "cert+key.pem"))
    argv = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={TLS_NAME}",
            "-addext", f"subjectAltName=DNS:{TLS_NAME}"]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BenchError(f"cannot run openssl: {e}")
    if r.returncode != 0:
        raise BenchError(f"openssl req failed: {(r.stdout + r.stderr).strip()[-300:]}")
    with open(pem, "w") as out:
        for part in (cert, key):
            with open(part) as f:
                out.write(f.read())
    return cert, key, pem


def cmd_output(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        out = (r.stdout + r.stderr).strip().splitlines()
        return out[0].strip() if out else "?"
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({e.__class__.__name__})"


# ---- opening the idle connections -------------------------------------------------------


class Conn:
    __slots__ = ("sock", "sent", "buf", "phase")

    def __init__(self, sock):
        self.sock, self.sent, self.buf, self.phase = sock, 0, b"", "connect"


def tls_step(c):
    """Takes c's TLS exchange (handshake, request, whole response) as far as it goes
    without blocking. Returns the parsed response, the selector event to wait for, or
    None if the proxy closed first."""
    try:
        if c.phase == "handshake":
            c.sock.do_handshake()
            c.phase = "send"
        while c.phase == "send":
            c.sent += c.sock.send(REQUEST[c.sent :])
            if c.sent == len(REQUEST):
                c.phase = "recv"
        while True:  # until the response is whole or nothing is left to decrypt
            data = c.sock.recv(65536)
            if not data:
                return None
            c.buf += data
            r = parse_response(c.buf)
            if r:
                return r
    except ssl.SSLWantReadError:
        return selectors.EVENT_READ
    except ssl.SSLWantWriteError:
        return selectors.EVENT_WRITE


def open_idle_connections(port, n, inflight, timeout, tls=None):
    """Opens n connections, one full exchange on each (with tls, a client context:
    after a TLS handshake). Returns (open sockets, failures)."""
    sel = selectors.DefaultSelector()
    idle, failures, started = [], [], 0
    deadline = time.monotonic() + timeout

    def start_one():
        nonlocal started
        started += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        if tls is not None:  # the TLS state starts at connect; the handshake waits for it
            s = tls.wrap_socket(s, server_hostname=TLS_NAME, do_handshake_on_connect=False)
        err = s.connect_ex(("127.0.0.1", port))
        if err not in (0, 115):  # 115 = EINPROGRESS
            s.close()
            failures.append(f"connect: {os.strerror(err)}")
            return
        sel.register(s, selectors.EVENT_WRITE, Conn(s))

    def done(c, r):
        sel.unregister(c.sock)
        if r[0] != 200 or r[1] != len(c.buf):
            c.sock.close()
            failures.append(f"status {r[0]}")
        else:
            idle.append(c.sock)  # stays open, nobody reads it: idle

    def fail(c, why):
        sel.unregister(c.sock)
        c.sock.close()
        failures.append(why)

    try:
        while len(idle) + len(failures) < n:
            while started < n and len(sel.get_map()) < inflight:
                start_one()
            if not sel.get_map():
                continue
            if time.monotonic() > deadline:
                raise BenchError(
                    f"aborted: only {len(idle)} of {n} connections done after {timeout:.0f} s"
                )
            for key, ev in sel.select(1.0):
                c = key.data
                try:
                    if tls is not None:
                        if c.phase == "connect":  # writable: the connect is over
                            err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                            if err:
                                fail(c, f"connect: {os.strerror(err)}")
                                continue
                            c.phase = "handshake"
                        r = tls_step(c)
                        if r is None:
                            fail(c, "closed before a whole response")
                        elif isinstance(r, tuple):
                            done(c, r)
                        elif r != key.events:
                            sel.modify(c.sock, r, c)
                        continue
                    if ev & selectors.EVENT_WRITE:
                        err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if err:
                            fail(c, f"connect: {os.strerror(err)}")
                            continue
                        c.sent += c.sock.send(REQUEST[c.sent :])
                        if c.sent == len(REQUEST):
                            sel.modify(c.sock, selectors.EVENT_READ, c)
                        continue
                    data = c.sock.recv(65536)
                    if not data:
                        fail(c, "closed before a whole response")
                        continue
                    c.buf += data
                    r = parse_response(c.buf)
                    if r:
                        done(c, r)
                except (BlockingIOError, InterruptedError):
                    pass
                except ssl.SSLError as e:
                    fail(c, f"TLS: {e}")
                except OSError as e:
                    fail(c, str(e))
                if len(failures) > max(100, n // 10):
                    raise BenchError(f"too many failed connections ({len(failures)}): {failures[0]}")
    except BaseException:
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        for s in idle:
            s.close()
        raise
    finally:
        sel.close()
    return idle, failures


def count_open(socks):
    """Connections on which the proxy has not closed (no EOF, no error pending)."""
    alive = 0
    for s in socks:
        if isinstance(s, ssl.SSLSocket):  # no MSG_PEEK through TLS: a non-blocking read
            try:
                s.setblocking(False)
                if s.recv(1):
                    alive += 1  # unexpected data, but open
                # b"": close_notify or EOF
            except ssl.SSLWantReadError:
                alive += 1  # nothing to read (a post-handshake message at most): open
            except OSError:
                pass
            continue
        try:
            if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                alive += 1  # unexpected bytes, but open
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    return alive


# ---- the proxies ----------------------------------------------------------------------------


# With --tls, args.cert is (certificate, key, certificate+key) from make_cert.


def start_usher(args, port, backend_port, tmp, log):
    if args.cert:
        listen = ["--listen", f"https://127.0.0.1:{port}",
                  "--cert", args.cert[0], "--key", args.cert[1]]
    else:
        listen = ["--listen", f"127.0.0.1:{port}"]
    argv = [args.usher, *listen,
            "--backend", f"http://127.0.0.1:{backend_port}", "--threads", "1",
            *args.usher_arg]
    return argv, None


def start_nginx(args, port, backend_port, tmp, log):
    conf = os.path.join(tmp, "nginx.conf")
    tls = ""
    if args.cert:
        tls = (f" ssl;\n        ssl_certificate {args.cert[0]};\n"
               f"        ssl_certificate_key {args.cert[1]};\n"
               f"        ssl_protocols TLSv1.2 TLSv1.3")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 30000; }}
http {{
    access_log off;
    keepalive_timeout 300s;
    keepalive_requests 100000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream be {{ server 127.0.0.1:{backend_port}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096{tls};
        location / {{
            proxy_pass http://be;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
""")
    return ["nginx", "-c", conf, "-p", tmp + "/"], os.path.join(tmp, "nginx-error.log")


def start_haproxy(args, port, backend_port, tmp, log):
    conf = os.path.join(tmp, "haproxy.cfg")
    with open(conf, "w") as f:
        f.write(f"""global
    maxconn 30000
    nbthread 1
    # maxconn 30000 wants ~60000 fds; where the hard fd limit is lower, run
    # with the limit we have (plenty for the connections opened here)
    no strict-limits

defaults
    mode http
    timeout client 300s
    timeout server 30s
    timeout connect 2s
    timeout http-keep-alive 300s
    option http-keep-alive

frontend fe
    bind 127.0.0.1:{port}{f" ssl crt {args.cert[2]}" if args.cert else ""}
    default_backend be

backend be
    server b1 127.0.0.1:{backend_port}
""")
    return ["haproxy", "-f", conf, "-db"], None


STARTERS = {"usher": start_usher, "nginx": start_nginx, "haproxy": start_haproxy}


def measured_pid(name, proc):
    """The process whose RSS is the proxy's: nginx's one worker, else the process."""
    if name != "nginx":
        return proc.pid
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        kids = children_of(proc.pid)
        if len(kids) == 1:
            return kids[0]
        time.sleep(0.05)
    raise BenchError(f"expected one nginx worker, found {children_of(proc.pid)}")


def bench_one(name, args, backend_port, tmp):
    row = {"proxy": name, "conns": "-", "before": "-", "after": "-", "per": "-", "notes": ""}
    port = free_port()
    log = os.path.join(tmp, f"{name}.log")
    proc, idle, notes, errlog = None, [], [], None
    try:
        argv, errlog = STARTERS[name](args, port, backend_port, tmp, log)
        with open(log, "w") as logf:
            try:
                proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
            except OSError as e:
                raise BenchError(f"cannot start {argv[0]}: {e}")
        wait_ready(port, proc, tls=args.tls_client)
        pid = measured_pid(name, proc)
        if name == "nginx":
            notes.append(f"worker process only (master {rss_kib(proc.pid)} KiB RSS)")

        per_conn = WARMUP_REQUESTS // WARMUP_CONNS
        for _ in range(WARMUP_CONNS):
            with connect(port, 5, args.tls_client) as s:
                for _ in range(per_conn):
                    if blocking_get(s) != 200:
                        raise BenchError("warm-up request did not get 200")
        time.sleep(0.5)
        before = rss_kib(pid)
        row["before"] = str(before)

        t0 = time.monotonic()
        idle, failures = open_idle_connections(port, args.conns, args.inflight, OPEN_TIMEOUT,
                                               args.tls_client)
        took = time.monotonic() - t0
        time.sleep(SETTLE)
        if proc.poll() is not None:
            raise BenchError(f"exited with status {proc.returncode} while connections were open")
        after = rss_kib(pid)
        held = len(idle)
        row["conns"] = str(held)
        row["after"] = str(after)
        if held:
            per = (after - before) / held
            row["per"] = f"{per:.2f} ({per * 1024:.0f} B)"
        notes.append(f"opened in {took:.1f} s")
        if args.tls_client and idle:
            notes.append(f"{idle[0].version()} {idle[0].cipher()[0]}")
        if failures:
            notes.append(f"{len(failures)} of {args.conns} failed (first: {failures[0]})")

        alive = count_open(idle)
        notes.append(f"{alive}/{held} still open")
        picks = [idle[i * (held - 1) // max(1, CHECK_CONNS - 1)] for i in range(min(CHECK_CONNS, held))]
        ok = 0
        for s in picks:
            try:
                ok += blocking_get(s) == 200
            except (OSError, BenchError):
                pass
        notes.append(f"second request 200 on {ok}/{len(picks)}")
    except BenchError as e:
        notes.append(f"FAILED: {e}")
        extra = tail(log) or (tail(errlog) if errlog else "")
        if extra:
            notes.append(f"log: {extra[:300]}")
    finally:
        for s in idle:
            s.close()
        stop(proc)
    row["notes"] = "; ".join(notes)
    return row


# ---- main ---------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conns", type=int, default=10000, help="idle connections (default 10000)")
    ap.add_argument("--only", default=",".join(PROXIES), help="comma list of usher,nginx,haproxy")
    ap.add_argument("--usher", default="build/usher", help="usher binary (default build/usher)")
    ap.add_argument("--demo", default="build/demo-backend",
                    help="demo backend binary (default build/demo-backend)")
    ap.add_argument("--inflight", type=int, default=100,
                    help="exchanges in progress at once while opening (default 100)")
    ap.add_argument("--tls", action="store_true",
                    help="TLS listeners (self-signed ECDSA P-256 certificate made with the "
                         "openssl CLI); every client connection does a TLS 1.3 handshake")
    ap.add_argument("--usher-arg", action="append", default=[],
                    help="one more argument for usher (repeat), e.g. "
                         "--usher-arg=--tls-record-layer --usher-arg=openssl")
    args = ap.parse_args()
    only = [p.strip() for p in args.only.split(",") if p.strip()]
    for p in only:
        if p not in PROXIES:
            ap.error(f"unknown proxy {p!r} (choose from {', '.join(PROXIES)})")
    if args.conns < 1 or args.inflight < 1:
        ap.error("--conns and --inflight must be at least 1")
    args.usher = os.path.abspath(args.usher)
    args.demo = os.path.abspath(args.demo)

    fd_limit = raise_fd_limit()
    if fd_limit < FD_LIMIT:
        print(f"note: RLIMIT_NOFILE could only be raised to {fd_limit} (hard limit), "
              f"not {FD_LIMIT}", file=sys.stderr, flush=True)
    if fd_limit < args.conns + 100:
        print(f"error: fd limit {fd_limit} is too low for {args.conns} connections", file=sys.stderr)
        return 2

    tmp = tempfile.mkdtemp(prefix="usher-idle-")
    backend = None
    rows = []
    args.cert, args.tls_client = None, None
    try:
        if args.tls:
            try:
                args.cert = make_cert(tmp)
            except BenchError as e:
                print(f"error: certificate: {e}", file=sys.stderr)
                return 1
            args.tls_client = client_context()
        backend_port = free_port()
        blog = open(os.path.join(tmp, "backend.log"), "w")
        backend = subprocess.Popen([args.demo, "--port", str(backend_port), "--name", "backend1"],
                                   stdout=blog, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
        blog.close()
        try:
            wait_ready(backend_port, backend)
        except BenchError as e:
            print(f"error: demo backend: {e}: {tail(os.path.join(tmp, 'backend.log'))}",
                  file=sys.stderr)
            return 1
        for name in only:
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            rows.append(bench_one(name, args, backend_port, tmp))
    finally:
        stop(backend)
        shutil.rmtree(tmp, ignore_errors=True)

    if args.tls:
        print(f"Mode: TLS: TLS 1.3 client handshakes (SNI {TLS_NAME}, no verification) on "
              f"TLS listeners with one self-signed ECDSA P-256 certificate; then one GET each")
    else:
        print("Mode: plain HTTP/1.1 (no TLS); one GET each")
    print()
    print("| proxy | connections | RSS before (KiB) | RSS after (KiB) | per connection (KiB) | notes |")
    print("|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['proxy']} | {r['conns']} | {r['before']} | {r['after']} | {r['per']} "
              f"| {r['notes']} |")
    print()
    facts = [f"nproc {os.cpu_count()}", f"kernel {platform.release()}",
             f"usher: {cmd_output([args.usher, '--version'])}"]
    if "nginx" in only:
        facts.append(cmd_output(["nginx", "-v"]))
    if "haproxy" in only:
        facts.append(cmd_output(["haproxy", "-v"]).split(" - ")[0])
    facts.append(f"python {platform.python_version()}")
    if args.tls:
        facts.append(f"python ssl {ssl.OPENSSL_VERSION}")
    facts.append(f"fd limit {fd_limit}")
    facts.append(f"{args.inflight} exchanges in flight while opening")
    print("Machine: " + "; ".join(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
