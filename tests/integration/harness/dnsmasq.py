"""A real DNS server for the discovery tests: dnsmasq (Debian package
dnsmasq-base) on 127.0.0.1 (and ::1 when asked) at a free port, answering
only from what the test gives it.

DnsServer(procs, directory, hosts=[(addr, name), ...],
          srv=[(service, target, port, priority, weight), ...], ttl=1)

  .port, .resolver       the port, and "127.0.0.1:PORT" for usher's --resolver
  set_hosts(entries)     rewrites the hosts file and sends SIGHUP: dnsmasq
                         re-reads it (A and AAAA records)
  set_srv(records)       SRV records are command-line options: restarts
                         dnsmasq on the same port
  set_ttl(ttl)           the TTL of every answer: restarts on the same port
  stop(), start()        the server gone (no answer at all), and back
  query(name, qtype)     asks it (Python sockets): (rcode, [answer rdata...])

Names under .test that it does not know get NXDOMAIN (--local=/test/);
nothing is forwarded anywhere (--no-resolv). Every wait is bounded.
"""

import os
import random
import shutil
import signal
import socket
import struct
import time
from pathlib import Path

from harness.procs import free_port

READY_TIMEOUT = 10.0
TYPES = {"A": 1, "AAAA": 28, "SRV": 33}


def _query_bytes(qid, name, qtype):
    out = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0" + struct.pack(">HH", TYPES[qtype], 1)


def _skip_name(msg, off):
    while True:
        n = msg[off]
        if n & 0xC0 == 0xC0:
            return off + 2
        if n == 0:
            return off + 1
        off += 1 + n


def ask(host, port, name, qtype="A", timeout=1.0):
    """One UDP question: (rcode, [rdata bytes of the answer section]), or
    None when nothing answered within timeout."""
    qid = random.randrange(1, 65535)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(_query_bytes(qid, name, qtype), (host, port))
        try:
            msg, _ = s.recvfrom(4096)
        except (socket.timeout, ConnectionRefusedError):
            return None
    rid, flags, qd, an = struct.unpack(">HHHH", msg[:8])
    if rid != qid:
        return None
    off = 12
    for _ in range(qd):
        off = _skip_name(msg, off) + 4
    rdatas = []
    for _ in range(an):
        off = _skip_name(msg, off)
        _t, _c, _ttl, rdlen = struct.unpack(">HHIH", msg[off:off + 10])
        off += 10
        rdatas.append(msg[off:off + rdlen])
        off += rdlen
    return flags & 0xF, rdatas


class DnsServer:
    def __init__(self, procs, directory, hosts=(), srv=(), ttl=1, v6=False):
        if shutil.which("dnsmasq") is None:
            raise RuntimeError("dnsmasq is not installed (scripts/deps.sh test: dnsmasq-base)")
        self.procs = procs
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hosts_file = self.dir / "hosts"
        self.hosts = list(hosts)
        self.srv = list(srv)
        self.ttl = ttl
        self.v6 = v6
        self.port = free_port()
        self.resolver = "127.0.0.1:%d" % self.port
        self.proc = None
        self._write_hosts()
        self.start()

    def _write_hosts(self):
        tmp = self.hosts_file.with_suffix(".tmp")
        tmp.write_text("".join("%s %s\n" % (a, n) for a, n in self.hosts))
        os.replace(tmp, self.hosts_file)

    def _argv(self):
        argv = [
            shutil.which("dnsmasq"), "--keep-in-foreground", "--no-resolv", "--no-hosts",
            "--addn-hosts=%s" % self.hosts_file, "--listen-address=127.0.0.1", "--bind-interfaces",
            "--port=%d" % self.port, "--local-ttl=%d" % self.ttl, "--local=/test/", "--pid-file=",
            "--user=%s" % ("root" if os.getuid() == 0 else str(os.getuid())), "--log-facility=-",
            "--log-queries", "--cache-size=0",
        ]
        if self.v6:
            argv.append("--listen-address=::1")
        for service, target, port, prio, weight in self.srv:
            argv.append("--srv-host=%s,%s,%d,%d,%d" % (service, target, port, prio, weight))
        return argv

    def start(self):
        self.proc = self.procs.spawn(self._argv(), "dnsmasq")
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise RuntimeError("dnsmasq did not start:\n" + self.proc.read_log())
            if ask("127.0.0.1", self.port, "ready.test", timeout=0.2) is not None:
                return
            time.sleep(0.05)
        raise RuntimeError("dnsmasq did not answer within %.0f s:\n%s" % (READY_TIMEOUT, self.proc.read_log()))

    def stop(self):
        if self.proc is not None:
            problems = self.proc.stop(check_exit=False)
            assert not problems, problems
            self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def set_hosts(self, entries):
        self.hosts = list(entries)
        self._write_hosts()
        self.proc.proc.send_signal(signal.SIGHUP)
        # SIGHUP is handled asynchronously: wait until the answer shows the change
        want = sorted(a for a, _ in self.hosts)
        names = sorted({n for _, n in self.hosts})
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            got = []
            for n in names:
                for qt in ("A", "AAAA"):
                    r = ask("127.0.0.1", self.port, n, qt, timeout=0.5)
                    if r and r[0] == 0:
                        got += [socket.inet_ntop(socket.AF_INET if len(d) == 4 else socket.AF_INET6, d) for d in r[1]]
            if sorted(got) == want:
                return
            time.sleep(0.05)
        raise RuntimeError("dnsmasq did not take the new hosts within %.0f s" % READY_TIMEOUT)

    def set_srv(self, records):
        self.srv = list(records)
        self.restart()

    def set_ttl(self, ttl):
        self.ttl = ttl
        self.restart()

    def query(self, name, qtype="A"):
        return ask("127.0.0.1", self.port, name, qtype)
