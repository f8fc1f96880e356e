#!/usr/bin/python3
"""The dashboard screenshot of docs/dashboard.png: a backend killed under load.

    bench/dashboard_shot.py [--out docs/dashboard.png] [--warm 45] [--after 20] [--pause 0.005]
                            [--usher build/usher] [--demo build/demo-backend]

Starts two demo backends (backend1, backend2) and usher in front of them with
the admin on, opens the page in headless Chromium
(tests/integration/harness/browser.py), sends traffic through usher from a few
client threads (keep-alive GETs, each client pausing --pause seconds between
two, so that the rate is steady on a shared machine), kills backend2 after
--warm seconds, waits until the admin API marks it down, lets the charts show
--after more seconds, and saves a PNG of the page. Before saving it checks that
the page shows backend2 DOWN with the reason the API gives and that its
request-rate line has dropped; it exits 1 otherwise. Everything runs on
loopback ports picked free, and every process is stopped by its PID.
"""

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import browser as _browser  # noqa: E402

HOST = "127.0.0.1"


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("dashboard_shot: %s exited with %s" % (proc.args[0], proc.returncode))
        try:
            socket.create_connection((HOST, port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("dashboard_shot: nothing listens on %d after %.0f s" % (port, timeout))


def api(port, path):
    with urllib.request.urlopen("http://%s:%d%s" % (HOST, port, path), timeout=10) as r:
        return json.load(r)


COUNT_LOCK = threading.Lock()


def count(counts, key):
    with COUNT_LOCK:
        counts[key] = counts.get(key, 0) + 1


def load(port, stop, counts, pause):
    """Keep-alive GETs until stop is set; counts[X-Backend] += 1 per 200."""
    conn = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = http.client.HTTPConnection(HOST, port, timeout=5)
            conn.request("GET", "/")
            r = conn.getresponse()
            r.read()
            key = r.getheader("X-Backend") if r.status == 200 else str(r.status)
            count(counts, key)
            if r.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException):
            count(counts, "error")
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.02)
        if pause:
            time.sleep(pause)
    if conn is not None:
        conn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "dashboard.png"))
    ap.add_argument("--usher", default=os.path.join(ROOT, "build", "usher"))
    ap.add_argument("--demo", default=os.path.join(ROOT, "build", "demo-backend"))
    ap.add_argument("--warm", type=float, default=45.0, help="seconds of load before the kill")
    ap.add_argument("--after", type=float, default=20.0, help="seconds charted after the backend is down")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--pause", type=float, default=0.005, help="seconds each client waits between requests")
    ap.add_argument("--width", type=int, default=1200)
    a = ap.parse_args()
    why = _browser.missing() or _browser.incomplete()
    if why:
        raise SystemExit("dashboard_shot: " + why)

    procs = []

    def spawn(argv):
        p = subprocess.Popen([str(x) for x in argv], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        procs.append(p)
        return p

    stop = threading.Event()
    threads = []
    b = None
    try:
        ports = {}
        for name in ("backend1", "backend2"):
            ports[name] = free_port()
            p = spawn([a.demo, "--port", ports[name], "--name", name, "--host", HOST])
            wait_port(ports[name], p)
        victim = procs[1]
        listen, admin = free_port(), free_port()
        u = spawn([a.usher, "--listen", "%s:%d" % (HOST, listen),
                   "--backend", "http://%s:%d" % (HOST, ports["backend1"]),
                   "--backend", "http://%s:%d" % (HOST, ports["backend2"]),
                   "--health-interval", "1s", "--admin", "%s:%d" % (HOST, admin)])
        wait_port(listen, u)
        wait_port(admin, u)
        # the page is open before the load starts: the browser's start takes the
        # CPU for a moment, which would be a dip on the charts
        b = _browser.Browser(a.width, 900)
        b.open("http://%s:%d/" % (HOST, admin))
        counts = {}
        for _ in range(a.clients):
            t = threading.Thread(target=load, args=(listen, stop, counts, a.pause), daemon=True)
            t.start()
            threads.append(t)
        print("dashboard_shot: load for %.0f s, then backend2 is killed" % a.warm, flush=True)
        time.sleep(a.warm)
        name2 = "%s:%d" % (HOST, ports["backend2"])
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        t_kill = time.time()
        down = None
        for _ in range(600):
            pools = api(admin, "/api/v1/pools")["pools"]
            down = next(x for x in pools[0]["backends"] if x["name"] == name2)
            if down["state"] == "down":
                break
            time.sleep(0.05)
        if down["state"] != "down":
            raise SystemExit("dashboard_shot: the API never marked %s down: %r" % (name2, down))
        print("dashboard_shot: %s down after %.2f s: %s" % (name2, time.time() - t_kill, down["reason"]), flush=True)
        time.sleep(a.after)
        b.wait("the page to show %s DOWN" % name2, lambda: b.js(
            "var tr = document.querySelector('tr[data-backend=\"' + arguments[0] + '\"]');"
            " return tr && tr.dataset.state === 'down' && tr.querySelector('td.why').textContent;", name2))
        why_shown = b.js("return document.querySelector('tr[data-backend=\"' + arguments[0] + '\"] td.why')"
                         ".textContent", name2)
        if down["reason"] not in why_shown:
            raise SystemExit("dashboard_shot: the page says %r, the API's reason is %r" % (why_shown, down["reason"]))
        # the drop: backend2's request rate had values > 0 before the kill and is 0 or empty now
        drop = b.wait("the chart to hold the drop", lambda: b.js("""
            var name = arguments[0], tkill = arguments[1];
            var ch = Chart.getChart(document.querySelector('canvas[data-chart=rps]'));
            var ds = ch.data.datasets.find(function (d) { return d.label === name; });
            if (!ds) return null;
            var before = ds.data.filter(function (p) { return p.x < tkill && p.y > 0; }).length;
            var last = ds.data.slice(-5).every(function (p) { return p.y === null || p.y === 0; });
            return before > 10 && last ? before : null;""", name2, t_kill - 2))
        time.sleep(1.5)  # one more refresh
        b.screenshot(a.out, width=a.width)
        size = os.path.getsize(a.out)
        print("dashboard_shot: %s (%d bytes; backend2 had %d seconds of traffic before the kill; "
              "requests: %s)" % (a.out, size, drop, counts), flush=True)
        if size > 300 * 1024:
            print("dashboard_shot: warning: the PNG is over 300 KB", flush=True)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        if b is not None:
            b.close()
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)


if __name__ == "__main__":
    main()
