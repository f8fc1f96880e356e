"""Test certificates, made at run time with the `openssl` command line.

Authority(directory, name) is a CA (an ECDSA P-256 key and a self-signed
certificate) that issue()s leaf certificates with `openssl ca`, so that
every date can be chosen (an expired certificate is really in the past,
notBefore < notAfter < now). A Cert is the paths of a PEM certificate and
its PEM key plus what a test compares against: its DER bytes (what a
client sees as the peer certificate), its DNS names, its key type as usher
names it ("ECDSA P-256", "RSA 2048"), its notAfter, its subject (RFC 2253).

make_test_certs(directory) -> TestCerts, the set the TLS tests use:

  ca, ca_pem          the server CA (clients trust ca_pem)
  a_ec, a_rsa         ECDSA P-256 and RSA 2048 for a.test, www.a.test
  a_rsa_bundle        a_rsa's certificate, the CA, then the key, in one file
  b                   ECDSA for b.test
  wild                ECDSA for *.wild.test
  expired             a.test, valid from 60 to 30 days ago
  soon                soon.test, expires in 10 days
  mismatch            a_ec's certificate with b's key (they do not match)
  client_ca           the CA of client certificates (usher's --client-ca)
  alice               client certificate O=Example, CN=alice, from client_ca
  other_ca, mallory   another CA, and a client certificate it issued

Nothing here talks to usher; every openssl run is bounded in time.
"""

import datetime
import itertools
import os
import shutil
import ssl
import subprocess
from pathlib import Path

OPENSSL_TIMEOUT = 60.0


def openssl(*args, cwd=None):
    """Runs `openssl ARGS`; returns its stdout (str). A failure raises with
    openssl's stderr."""
    openssl_bin = shutil.which("openssl")
    if openssl_bin is None:
        raise RuntimeError("the openssl command is not installed (scripts/deps.sh test)")
    p = subprocess.run(
        [openssl_bin] + [str(a) for a in args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=OPENSSL_TIMEOUT,
    )
    if p.returncode != 0:
        raise RuntimeError(
            "openssl %s failed (%d): %s" % (" ".join(map(str, args)), p.returncode, p.stderr.decode("utf-8", "replace"))
        )
    return p.stdout.decode("utf-8", "replace")


def make_key(path, kind="ec"):
    """A new private key (PKCS#8 PEM): kind "ec" (P-256) or "rsa" (2048)."""
    if kind == "ec":
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    elif kind == "rsa":
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path)
    else:
        raise ValueError(kind)
    return str(path)


KEY_TYPES = {"ec": "ECDSA P-256", "rsa": "RSA 2048"}


def pem_blocks(text, kind="CERTIFICATE"):
    """The PEM blocks of one kind in text, in order (each a str)."""
    begin, end = "-----BEGIN %s-----" % kind, "-----END %s-----" % kind
    out, pos = [], 0
    for _ in range(1000):
        i = text.find(begin, pos)
        if i < 0:
            break
        j = text.find(end, i)
        if j < 0:
            break
        out.append(text[i : j + len(end)] + "\n")
        pos = j + len(end)
    return out


def first_cert_der(path):
    """The DER bytes of the first certificate in a PEM file."""
    blocks = pem_blocks(Path(path).read_text())
    assert blocks, "no certificate in %s" % path
    return ssl.PEM_cert_to_DER_cert(blocks[0])


class Cert:
    def __init__(self, cert, key, names=(), key_type=None, not_after=None, subject=None):
        self.cert = str(cert)  # PEM: the certificate (maybe followed by a chain and a key)
        self.key = str(key) if key else None  # PEM key file, or None when it is in .cert
        self.names = list(names)  # DNS subject alternative names, in order
        self.key_type = key_type  # "ECDSA P-256" or "RSA 2048"
        self.not_after = not_after  # datetime (UTC)
        self.subject = subject  # RFC 2253, as openssl prints it

    @property
    def der(self):
        return first_cert_der(self.cert)

    def args(self):
        """The quick-mode flags that give usher this certificate."""
        return ["--cert", self.cert] + (["--key", self.key] if self.key else [])

    def yaml(self):
        """This certificate as an item of tls.certificates in a -c file."""
        if self.key:
            return "{ cert: %s, key: %s }" % (self.cert, self.key)
        return "{ cert: %s }" % self.cert

    def copy_to(self, directory, stem):
        """A copy of the files under new names (for tests that rewrite or
        delete them): a Cert with the same facts."""
        directory = Path(directory)
        cert = directory / (stem + ".pem")
        shutil.copyfile(self.cert, cert)
        key = None
        if self.key:
            key = directory / (stem + ".key")
            shutil.copyfile(self.key, key)
        return Cert(cert, key, self.names, self.key_type, self.not_after, self.subject)

    def __repr__(self):
        return "<Cert %s %s %s>" % (os.path.basename(self.cert), self.key_type, self.names or self.subject)


def _utc(dt):
    return dt.strftime("%Y%m%d%H%M%SZ")


_CA_CONF = """\
[ca]
default_ca = test_ca
[test_ca]
database = {dir}/index.txt
new_certs_dir = {dir}/issued
serial = {dir}/serial
default_md = sha256
policy = any_name
unique_subject = no
preserve = yes
copy_extensions = none
[any_name]
organizationName = optional
commonName = supplied
[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""


class Authority:
    """A test CA in its own directory: ECDSA P-256, valid for ten years."""

    _serials = itertools.count(0x1000)

    def __init__(self, directory, name):
        self.dir = Path(directory) / name.replace(" ", "_")
        (self.dir / "issued").mkdir(parents=True, exist_ok=True)
        (self.dir / "index.txt").write_text("")
        (self.dir / "serial").write_text("%X\n" % next(self._serials))
        self.conf = self.dir / "ca.cnf"
        self.conf.write_text(_CA_CONF.format(dir=self.dir))
        self.key = make_key(self.dir / "ca.key")
        self.cert = str(self.dir / "ca.pem")
        openssl(
            "req", "-x509", "-new", "-config", self.conf, "-extensions", "v3_ca", "-key", self.key,
            "-subj", "/CN=%s" % name, "-days", 3650, "-out", self.cert,
        )
        self.name = name

    def issue(self, stem, names=(), subject=None, kind="ec", days=365, start_days=-1, client=False, directory=None,
              ips=()):
        """A leaf certificate stem.pem with its key stem.key (in directory,
        default the CA's): DNS names `names` (the first is also the CN unless
        subject is given, e.g. "/O=Example/CN=alice") and IP addresses `ips`,
        valid from start_days to days from now (negative: in the past), for
        servers or (client=True) for clients."""
        directory = Path(directory or self.dir)
        key = make_key(directory / (stem + ".key"), kind)
        csr = directory / (stem + ".csr")
        subj = subject or "/CN=%s" % (names[0] if names else stem)
        openssl("req", "-new", "-config", self.conf, "-key", key, "-subj", subj, "-out", csr)
        ext = directory / (stem + ".ext")
        lines = ["[leaf]", "basicConstraints = critical,CA:FALSE",
                 "subjectKeyIdentifier = hash", "authorityKeyIdentifier = keyid"]
        lines.append("keyUsage = critical,digitalSignature%s" % (",keyEncipherment" if kind == "rsa" else ""))
        lines.append("extendedKeyUsage = %s" % ("clientAuth" if client else "serverAuth"))
        if names or ips:
            lines.append("subjectAltName = " + ", ".join(["IP:" + a for a in ips] + ["DNS:" + n for n in names]))
        ext.write_text("\n".join(lines) + "\n")
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        start = now + datetime.timedelta(days=start_days)
        end = now + datetime.timedelta(days=days)
        cert = directory / (stem + ".pem")
        openssl(
            "ca", "-batch", "-config", self.conf, "-cert", self.cert, "-keyfile", self.key, "-in", csr,
            "-out", cert, "-notext", "-startdate", _utc(start), "-enddate", _utc(end),
            "-extfile", ext, "-extensions", "leaf",
        )
        rfc2253 = openssl("x509", "-in", cert, "-noout", "-subject", "-nameopt", "RFC2253").strip()
        rfc2253 = rfc2253.partition("subject=")[2].strip()
        return Cert(cert, key, names, KEY_TYPES[kind], end, rfc2253)


_SELF_SIGNED_CONF = """\
[req]
distinguished_name = dn
[dn]
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = {san}
"""


def self_signed(directory, stem, ips=(), names=(), days=2):
    """A self-signed server certificate stem.pem (key stem.key) for the IP
    addresses and DNS names given: one no CA vouches for."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    conf = d / (stem + ".cnf")
    conf.write_text(_SELF_SIGNED_CONF.format(san=", ".join(["IP:" + a for a in ips] + ["DNS:" + n for n in names])))
    key = make_key(d / (stem + ".key"))
    cert = d / (stem + ".pem")
    cn = (list(ips) + list(names) + [stem])[0]
    openssl("req", "-x509", "-new", "-config", conf, "-extensions", "leaf", "-key", key, "-subj", "/CN=" + cn,
            "-days", days, "-out", cert)
    return Cert(cert, key, names, KEY_TYPES["ec"])


def bundle(cert, directory, stem, chain=()):
    """One file holding cert's certificate, then the chain files, then its
    key: a --cert given without --key."""
    path = Path(directory) / (stem + ".pem")
    parts = [Path(cert.cert).read_text()] + [Path(c).read_text() for c in chain] + [Path(cert.key).read_text()]
    path.write_text("".join(parts))
    return Cert(path, None, cert.names, cert.key_type, cert.not_after, cert.subject)


class TestCerts:
    """The certificates of the TLS tests (see the module's docstring)."""

    __test__ = False  # not a pytest class

    def __init__(self, directory):
        d = Path(directory)
        self.dir = d
        self.ca = Authority(d, "usher test CA")
        self.ca_pem = self.ca.cert
        self.a_ec = self.ca.issue("a-ec", ["a.test", "www.a.test"])
        self.a_rsa = self.ca.issue("a-rsa", ["a.test", "www.a.test"], kind="rsa")
        self.a_rsa_bundle = bundle(self.a_rsa, self.ca.dir, "a-rsa-bundle", chain=[self.ca_pem])
        self.b = self.ca.issue("b", ["b.test"])
        self.wild = self.ca.issue("wild", ["*.wild.test"])
        self.expired = self.ca.issue("expired", ["a.test"], start_days=-60, days=-30)
        self.soon = self.ca.issue("soon", ["soon.test"], days=10)
        self.mismatch = Cert(self.a_ec.cert, self.b.key, self.a_ec.names, self.a_ec.key_type, self.a_ec.not_after)
        self.client_ca = Authority(d, "usher test client CA")
        self.alice = self.client_ca.issue("alice", subject="/O=Example/CN=alice", client=True)
        self.other_ca = Authority(d, "some other CA")
        self.mallory = self.other_ca.issue("mallory", subject="/O=Elsewhere/CN=mallory", client=True)


def make_test_certs(directory):
    return TestCerts(directory)
