#!/usr/bin/python3
"""Three ushers fed by one DNS agree on where each key goes (maglev).

    bench/dns_maglev.py [--keys 1000] [--ushers 3] [--usher build/usher] [--demo build/demo-backend]

dnsmasq (harness/dnsmasq.py) answers maglev.test with 127.0.0.2..4; demo
backends listen there and on 127.0.0.5; --ushers instances of usher in quick
mode (--backend dns+http://maglev.test:PORT, --balance maglev, --hash-key
header:X-Key), which never talk to each other, each ask the same dnsmasq.
Every key is sent once to every usher and the backend that answered (its
X-Backend) is noted. Then the answer changes (127.0.0.3 out, 127.0.0.5 in)
and it is done again once every usher uses the new set. Prints how many keys
the ushers disagree on (must be 0 both times), the spread of keys over the
backends and how many keys moved with the change; exits 1 on a disagreement.
"""

import argparse
import http.client
import os
import sys
import tempfile
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from dns_changes import wait_port  # noqa: E402
from harness import procs as _procs  # noqa: E402
from harness.dnsmasq import DnsServer  # noqa: E402


def placement(port, keys):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    for k in keys:
        c.request("GET", "/", headers={"X-Key": k})
        r = c.getresponse()
        r.read()
        out.append(r.getheader("X-Backend") if r.status == 200 else None)
    c.close()
    return out


def wait_set(port, names, timeout=20):
    deadline = time.monotonic() + timeout
    probe = ["probe%d" % i for i in range(60)]
    while time.monotonic() < deadline:
        if set(placement(port, probe)) == set(names):
            return True
        time.sleep(0.2)
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--ushers", type=int, default=3)
    ap.add_argument("--usher", default=os.path.join(ROOT, "build", "usher"))
    ap.add_argument("--demo", default=os.path.join(ROOT, "build", "demo-backend"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="dns_maglev-")
    reg = _procs.ProcessRegistry(tmp)
    port = _procs.free_port()
    keys = ["user-%d" % i for i in range(a.keys)]
    failed = False
    try:
        for i in (2, 3, 4, 5):
            reg.spawn([a.demo, "--port", port, "--name", "b%d" % i, "--host", "127.0.0.%d" % i], "demo-b%d" % i)
            assert wait_port("127.0.0.%d" % i, port)
        dns = DnsServer(reg, os.path.join(tmp, "dns"), hosts=[("127.0.0.%d" % i, "maglev.test") for i in (2, 3, 4)],
                        ttl=1)
        ports = []
        for n in range(a.ushers):
            up = _procs.free_port()
            u = reg.spawn([a.usher, "--listen", "127.0.0.1:%d" % up, "--backend", "dns+http://maglev.test:%d" % port,
                           "--resolver", dns.resolver, "--balance", "maglev", "--hash-key", "header:X-Key",
                           "--health-interval", "200ms", "--threads", "1"], "usher%d" % n)
            assert u.wait_ready(up), u.read_log()
            ports.append(up)
        rounds = []
        for label, names, change in (("first set", {"b2", "b3", "b4"}, None),
                                     ("after the change", {"b2", "b4", "b5"}, [2, 4, 5])):
            if change:
                dns.set_hosts([("127.0.0.%d" % i, "maglev.test") for i in change])
            for up in ports:
                assert wait_set(up, names), "usher on %d does not use %s" % (up, sorted(names))
            got = [placement(up, keys) for up in ports]
            disagree = sum(1 for i in range(a.keys) if len({g[i] for g in got}) != 1)
            spread = Counter(got[0])
            print("%s: %d keys, %d ushers, %d keys placed differently; keys per backend: %s" % (
                label, a.keys, a.ushers, disagree, ", ".join("%s %d" % kv for kv in sorted(spread.items()))))
            failed |= disagree > 0
            rounds.append(got[0])
        moved = sum(1 for x, y in zip(rounds[0], rounds[1]) if x != y)
        from_b3 = sum(1 for x in rounds[0] if x == "b3")
        print("the change moved %d of %d keys (%d were on b3, which left)" % (moved, a.keys, from_b3))
    finally:
        problems = reg.stop_all()
        if problems:
            print(_procs.format_problems(problems))
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
