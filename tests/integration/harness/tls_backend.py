"""Backends that speak TLS, for the tests of TLS to backends
(test_tls_backend.py), and the certificates they use.

make_backend_certs(directory) -> BackendCerts, made at run time with the
`openssl` command line by harness.certs (ECDSA P-256):

  ca_pem              the CA that issued `server` and `named`
  server              a Cert for IP:127.0.0.1, DNS:backend.test and
                      DNS:localhost, from ca
  named               a Cert for DNS:backend.test only, from ca
  self_signed         a self-signed Cert for IP:127.0.0.1
  client_ca_pem       the CA of client certificates (what a backend trusts)
  client              a client Cert, CN=usher, from client_ca
  client_bundle       client's certificate and key in one file

A Cert (harness.certs) has the paths of its PEM certificate and its PEM key.

TLSBackend(cert, client_ca=None, close=False, max_version=None) is an
HTTP/1.1 server over Python's ssl on 127.0.0.1:<free port> (.port, .url is
https://127.0.0.1:PORT). Every TLS connection is recorded in .handshakes:
a dict with num (accept order), ok, error (the handshake's, as Python
says it), reused (a resumed session), sni (the server name the client
sent, or None), alpn (the protocol chosen), peer (the client certificate's
subject as "CN=...", or None). Requests are recorded in .requests as
(connection number, method, path). `/health` answers `health_status`
(200 unless a test changes it); any other path answers 200 with a JSON body
{"conn": N, "reused": bool, "path": PATH}. close=True answers with
`Connection: close` and closes after each response; use(cert) changes the
certificate for the connections that follow.

Nothing here talks to usher; every openssl run and every socket operation
is bounded in time."""

import json
import socket
import ssl
import threading
import time
from pathlib import Path

from harness.backends import IO_TIMEOUT, TCPBackend
from harness.certs import Authority, bundle, self_signed


class BackendCerts:
    pass


def make_backend_certs(directory):
    d = Path(directory)
    c = BackendCerts()
    ca = Authority(d, "usher test backend CA")
    client_ca = Authority(d, "usher test client CA")
    c.ca_pem = ca.cert
    c.client_ca_pem = client_ca.cert
    c.server = ca.issue("server", ["backend.test", "localhost"], subject="/CN=backend", ips=["127.0.0.1"], days=2,
                        directory=d)
    c.named = ca.issue("named", ["backend.test"], days=2, directory=d)
    c.client = client_ca.issue("client", subject="/CN=usher", client=True, days=2, directory=d)
    c.client_bundle = str(bundle(c.client, d, "client-bundle").cert)
    c.self_signed = self_signed(d, "self-signed", ips=["127.0.0.1"])
    return c


class TLSBackend(TCPBackend):
    def __init__(self, cert, client_ca=None, close=False, max_version=None):
        self.client_ca = client_ca
        self.close = close
        self.max_version = max_version
        self.health_status = 200
        self.handshakes = []
        self.requests = []
        self._sni = {}
        self.ctx = self._context(cert)
        super().__init__()
        self.url = "https://127.0.0.1:%d" % self.port

    def _context(self, cert):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert.cert, cert.key)
        ctx.set_alpn_protocols(["http/1.1"])
        if self.max_version is not None:
            ctx.maximum_version = self.max_version
        if self.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.client_ca)
        ctx.sni_callback = self._on_sni
        return ctx

    def use(self, cert):
        self.ctx = self._context(cert)

    def _on_sni(self, sock, name, ctx):
        with self.lock:
            self._sni[id(sock)] = name

    def wait_handshakes(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.handshakes) >= n:
                    return list(self.handshakes)
            time.sleep(0.02)
        with self.lock:
            return list(self.handshakes)

    def _serve(self, s, num):
        s.settimeout(IO_TIMEOUT)
        rec = {"num": num, "ok": False, "error": None, "reused": None, "sni": None, "alpn": None, "peer": None}
        try:
            t = self.ctx.wrap_socket(s, server_side=True)
        except (ssl.SSLError, OSError) as e:
            rec["error"] = str(e)
            with self.lock:
                self.handshakes.append(rec)
            return
        with self.lock:
            rec.update(ok=True, reused=t.session_reused, alpn=t.selected_alpn_protocol())
            rec["sni"] = self._sni.pop(id(t), None)
            peer = t.getpeercert()
            if peer:
                rec["peer"] = ",".join("%s=%s" % kv for rdn in peer["subject"] for kv in rdn)
            self.handshakes.append(rec)
        try:
            self._http(t, num, rec)
        except (EOFError, ConnectionError, socket.timeout, ssl.SSLError, OSError):
            pass
        finally:
            try:
                t.close()
            except OSError:
                pass

    def _http(self, t, num, rec):
        buf = b""
        while not self.stopping.is_set():
            deadline = time.monotonic() + 30
            while b"\r\n\r\n" not in buf:
                if time.monotonic() > deadline or self.stopping.is_set():
                    return
                t.settimeout(0.5)
                try:
                    data = t.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            n = int(headers.get("content-length", "0"))
            t.settimeout(IO_TIMEOUT)
            while len(buf) < n:
                data = t.recv(65536)
                if not data:
                    return
                buf += data
            buf = buf[n:]
            with self.lock:
                self.requests.append((num, method, path))
            status = self.health_status if path == "/health" else 200
            body = json.dumps({"conn": num, "reused": rec["reused"], "path": path}).encode()
            extra = b"Connection: close\r\n" if self.close else b""
            t.sendall(
                b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
                % (status, len(body), extra, body)
            )
            if self.close:
                return
