"""What an installed usher is made of, and that it cannot drift from the code.

- The man pages: usher(8) has an entry for every flag of `usher --help` and
  nothing else; usher.yaml(5) has an entry for every key of the settings
  table (src/config/settings.c) and of the keys yaml.c reads itself, and
  nothing else; each states the table's default. `man -l` renders both
  without a warning. Their version is src/version.h's, as is debian/'s.
- The default /etc/usher/usher.yaml (packaging/usher.yaml) passes `usher -t`
  and shows every key.
- `make install DESTDIR=... PREFIX=...` puts every file where it belongs, with
  the final paths in the unit, and never overwrites a usher.yaml;
  `make uninstall` takes them back, leaving usher.yaml.
- The unit passes `systemd-analyze verify` (its Documentation= man pages
  found among the installed ones) and its offline security analysis, and is
  what the package and the rest expect: Type=notify, the check before start
  and reload, the stop timeout above the grace period, the usher user.
- The logrotate rule parses and covers the default access log.
- The notify protocol, with a real AF_UNIX datagram socket: READY=1 once
  usher listens, STATUS= with backends up that follows health changes,
  RELOADING=1 with MONOTONIC_USEC then READY=1 around a reload (a failed one
  too), STOPPING=1 on SIGTERM; a path or an abstract (@) name; datagrams
  from usher's own pid (NotifyAccess=main); a NOTIFY_SOCKET that cannot be
  used changes nothing but a warning.

The checks that need systemd-analyze, man or logrotate skip, saying so,
only where the tool is missing; `scripts/deps.sh test` installs them.
"""

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from harness.procs import REPO_ROOT, free_port, tcp_connectable

MAN8 = REPO_ROOT / "man" / "usher.8"
MAN5 = REPO_ROOT / "man" / "usher.yaml.5"
DEFAULT_CONF = REPO_ROOT / "packaging" / "usher.yaml"
UNIT_IN = REPO_ROOT / "packaging" / "usher.service.in"
LOGROTATE = REPO_ROOT / "packaging" / "usher.logrotate"
SYSUSERS = REPO_ROOT / "packaging" / "usher.sysusers"
DEBIAN = REPO_ROOT / "debian"
MAKE_TIMEOUT = 60
NOTIFY_TIMEOUT = 10.0


# -- the settings table, --help, the man pages ------------------------------------------


def settings_table():
    """[(key, flag or None, scope, default or None)] from src/config/settings.c:
    each entry starts with `{.key = "..."` and names its scope with TOP(...),
    LISTENER(...), POOL(...), BACKEND(...) or `.scope = SETTING_...`."""
    src = (REPO_ROOT / "src" / "config" / "settings.c").read_text()
    start = src.index("settings_table[] = {")
    table = src[start : src.index("{.key = NULL}", start)]
    out = []
    for entry in re.split(r"\{\.key = ", table)[1:]:
        key = re.match(r'"([^"]+)"', entry).group(1)
        flag = re.search(r'\.flag = "([^"]+)"', entry)
        scopes = re.findall(r"\b(TOP|POOL|LISTENER|BACKEND)\(", entry)
        scopes += re.findall(r"\.scope = SETTING_(TOP|POOL|LISTENER|BACKEND)\b", entry)
        assert len(scopes) == 1, "settings.c: cannot tell the scope of %r (found %r)" % (key, scopes)
        d = re.search(r'\.def = ((?:"[^"]*"\s*)+)', entry)
        default = "".join(re.findall(r'"([^"]*)"', d.group(1))) if d else None
        out.append((key, flag.group(1) if flag else None, scopes[0], default))
    assert len(out) >= 40, "settings.c: only %d settings found; has the table's layout changed?" % len(out)
    return out


SCOPE_PREFIX = {"TOP": "", "LISTENER": "listeners[].", "POOL": "pools.NAME.", "BACKEND": "pools.NAME.backends[]."}

# Keys that src/config/yaml.c reads itself (not in the table), as the man page
# names them, with the name yaml.c looks for (it must still be there).
YAML_OWN_KEYS = {
    "listeners": "listeners",
    "pools": "pools",
    "listeners[].bind": "bind",
    "listeners[].pool": "pool",
    "listeners[].routes[]": "routes",
    "listeners[].routes[].host": "host",
    "listeners[].routes[].path_prefix": "path_prefix",
    "listeners[].routes[].pool": "pool",
    "listeners[].tls.certificates[]": "certificates",
    "listeners[].tls.certificates[].cert": "cert",
    "listeners[].tls.certificates[].key": "key",
    "pools.NAME.backends[]": "backends",
    "pools.NAME.backends[].url": "url",
    "pools.NAME.discover.resolvers[]": "resolvers",
}


def file_keys():
    """{full key in the file: table default or None}."""
    keys = {SCOPE_PREFIX[scope] + key: default for key, _, scope, default in settings_table()}
    keys.update({k: None for k in YAML_OWN_KEYS})
    return keys


def help_flags(run_usher):
    text = run_usher("--help").stdout.decode()
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-z])(?![\w-])", text))
    assert {"--listen", "--backend", "-c", "-t", "-h", "--help", "--version"} <= flags, flags
    return flags


def roff_plain(s):
    """The words of a roff line, without escapes and font changes."""
    s = re.sub(r"\\f[BIRP]|\\f\(..|\\f\[[A-Z]*\]", "", s)
    for esc, plain in (("\\-", "-"), ("\\:", ""), ("\\&", ""), ("\\c", ""), ("\\~", " "), ("\\(dq", '"'),
                       ("\\(+-", "+-"), ("\\e", "\\")):
        s = s.replace(esc, plain)
    return s


def macro_words(line):
    """The text a line prints: a .B/.BI/.BR/.I/.IR/.RB/.RI line's words (quotes
    removed), a text line's; nothing for other requests (.na, .ad, .br)."""
    if not line.startswith("."):
        return roff_plain(line)
    m = re.match(r"^\.(?:B|I|BI|BR|IB|IR|RB|RI)\s+(.*)$", line)
    return roff_plain(m.group(1).replace('"', "")) if m else ""


def man_entries(path, sections):
    """[(tag, body)] of the .TP entries in the given .SH sections of a man
    page: tag is the text of the line after .TP, body the rest of the entry
    as plain words on one line."""
    entries, current, tag, body = [], None, None, []
    for line in path.read_text().splitlines() + [".SH END"]:
        if line.startswith(".SH") or line.startswith(".TP") or line.startswith(".SS"):
            if tag is not None:
                entries.append((tag, " ".join(" ".join(body).split())))
            tag, body = None, []
            if line.startswith(".SH"):
                current = line[3:].strip().strip('"')
            if line.startswith(".TP") and current in sections:
                tag = ""
            continue
        if tag == "":
            tag = macro_words(line).strip()
        elif tag is not None and not line.startswith('.\\"'):
            body.append(macro_words(line))
    return entries


def check_default(where, body, default):
    want = "Default: %s." % default
    assert want in body, "%s: its entry must say %r (the table's default); it says: %s" % (where, want, body)


def test_usher_8_has_every_flag_of_help_and_no_other(run_usher):
    in_help = help_flags(run_usher)
    entries = man_entries(MAN8, {"OPTIONS"})
    in_man = {}
    for tag, body in entries:
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-z])(?![\w-])", tag):
            in_man[flag] = body
    missing = sorted(in_help - set(in_man))
    extra = sorted(set(in_man) - in_help)
    assert not missing, "flags of usher --help without an entry in man/usher.8 (OPTIONS): %s" % missing
    assert not extra, "man/usher.8 documents flags that usher --help does not list: %s" % extra
    for key, flag, _, default in settings_table():
        if flag:
            assert flag in in_help, "settings.c: %s (%s) is not in usher --help" % (flag, key)
            if default is not None:
                check_default("man/usher.8 %s" % flag, in_man[flag], default)


def test_usher_yaml_5_has_every_key_and_no_other():
    want = file_keys()
    yaml_c = (REPO_ROOT / "src" / "config" / "yaml.c").read_text()
    for key, name in YAML_OWN_KEYS.items():
        assert '"%s"' % name in yaml_c, "yaml.c no longer reads %r (%s): update YAML_OWN_KEYS and the man page" % (
            name,
            key,
        )
    entries = dict(man_entries(MAN5, {"TOP-LEVEL KEYS", "LISTENERS", "POOLS"}))
    missing = sorted(set(want) - set(entries))
    extra = sorted(set(entries) - set(want))
    assert not missing, "keys without an entry (.TP, then .B KEY) in man/usher.yaml.5: %s" % missing
    assert not extra, "man/usher.yaml.5 documents keys usher does not know: %s" % extra
    for key, default in want.items():
        if default is not None:
            check_default("man/usher.yaml.5 %s" % key, entries[key], default)


def usher_version():
    text = (REPO_ROOT / "src" / "version.h").read_text()
    return re.search(r'#define USHER_VERSION "([^"]+)"', text).group(1)


def test_man_pages_and_package_carry_the_version():
    version = usher_version()
    for page in (MAN8, MAN5):
        th = next(line for line in page.read_text().splitlines() if line.startswith(".TH"))
        assert '"usher %s"' % version in th, "%s: .TH must name usher %s: %s" % (page.name, version, th)
    first = (DEBIAN / "changelog").read_text().splitlines()[0]
    m = re.match(r"usher \(([^)-]+)(?:-[^)]+)?\) ", first)
    assert m and m.group(1) == version, "debian/changelog: the top entry must be version %s: %s" % (version, first)


@pytest.mark.parametrize("page", [MAN8, MAN5], ids=lambda p: p.name)
def test_man_renders_without_warnings(page):
    if not shutil.which("man"):
        pytest.skip("man not installed (package man-db; scripts/deps.sh test installs it)")
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="")
    p = subprocess.run(["man", "--warnings", "-l", str(page)], capture_output=True, env=env, timeout=30)
    out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    assert p.returncode == 0, err
    assert err.strip() == "", "man --warnings -l %s:\n%s" % (page.name, err)
    assert "NAME" in out and "SEE ALSO" in out, out[:2000]


def test_debian_build_depends_are_deps_sh_build():
    """debian/control builds with what scripts/deps.sh build installs (gcc and make
    come with build-essential)."""
    deps = (REPO_ROOT / "scripts" / "deps.sh").read_text()
    build = re.search(r"^\s*build\)\s*pkgs\+=\(([^)]*)\)", deps, re.M).group(1).split()
    control = (DEBIAN / "control").read_text()
    bd = re.search(r"^Build-Depends:((?:.*\n)(?:[ \t].*\n)*)", control, re.M).group(1)
    names = {re.match(r"\s*([a-z0-9.+-]+)", d).group(1) for d in bd.split(",") if d.strip()}
    missing = sorted(set(build) - {"gcc", "make"} - names)
    assert not missing, "debian/control Build-Depends lacks %s (scripts/deps.sh build installs them)" % missing


# -- the default configuration ------------------------------------------------------------


def test_default_config_passes_check(run_usher):
    p = run_usher("-t", "-c", DEFAULT_CONF)
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout.decode().strip() == "configuration ok"


def test_default_config_shows_every_key():
    """Each key of the table and each section appears, set or commented out."""
    text = DEFAULT_CONF.read_text()
    names = set()
    for key in file_keys():
        for part in key.replace("[]", "").split("."):
            if part != "NAME":
                names.add(part)
    missing = sorted(n for n in names if not re.search(r"(?<![\w])%s:" % re.escape(n), text))
    assert not missing, "packaging/usher.yaml does not show (even commented out): %s" % missing


# -- make install / uninstall --------------------------------------------------------------


def install_bin(usher_bin):
    """The usher binary to install: USHER_BIN, unless that is a wrapper
    (make valgrind), then build/usher."""
    if Path(usher_bin).name == "usher":
        return usher_bin
    fallback = REPO_ROOT / "build" / "usher"
    if not fallback.exists():
        pytest.skip("USHER_BIN is a wrapper and build/usher does not exist")
    return str(fallback)


def make(*args):
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    p = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO_ROOT)] + [str(a) for a in args],
        capture_output=True,
        env=env,
        timeout=MAKE_TIMEOUT,
    )
    assert p.returncode == 0, "make %s:\n%s%s" % (" ".join(map(str, args)), p.stdout.decode(), p.stderr.decode())
    return p.stdout.decode()


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


INSTALLED = {
    # path under DESTDIR (PREFIX=/usr/local): mode
    "usr/local/sbin/usher": 0o755,
    "usr/local/share/man/man8/usher.8": 0o644,
    "usr/local/share/man/man5/usher.yaml.5": 0o644,
    "usr/local/lib/systemd/system/usher.service": 0o644,
    "usr/local/lib/sysusers.d/usher.conf": 0o644,
    "etc/usher/usher.yaml": 0o644,
    "etc/logrotate.d/usher": 0o644,
}


def test_install_into_destdir(tmp_path, usher_bin):
    dest = tmp_path / "stage"
    binary = install_bin(usher_bin)
    make("install", "DESTDIR=%s" % dest, "INSTALL_BIN=%s" % binary)
    for rel, m in INSTALLED.items():
        f = dest / rel
        assert f.is_file(), "make install did not install %s" % rel
        assert mode(f) == m, "%s: mode %o, expected %o" % (rel, mode(f), m)
    assert (dest / "usr/local/sbin/usher").read_bytes() == Path(binary).read_bytes()
    assert (dest / "etc/usher/usher.yaml").read_text() == DEFAULT_CONF.read_text()
    assert (dest / "usr/local/share/man/man8/usher.8").read_text() == MAN8.read_text()
    unit = (dest / "usr/local/lib/systemd/system/usher.service").read_text()
    assert "@" not in unit.replace("@system-service", "").replace("@privileged", ""), unit
    assert "\nExecStart=/usr/local/sbin/usher -c /etc/usher/usher.yaml\n" in unit, unit
    assert str(dest) not in unit, "DESTDIR leaked into the unit"
    # nothing else
    found = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert found == sorted(INSTALLED), found

    # a usher.yaml that is there stays as it is
    conf = dest / "etc/usher/usher.yaml"
    conf.write_text("# mine\n")
    out = make("install", "DESTDIR=%s" % dest, "INSTALL_BIN=%s" % binary)
    assert conf.read_text() == "# mine\n", "make install overwrote an existing usher.yaml"
    assert "kept" in out

    make("uninstall", "DESTDIR=%s" % dest)
    left = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert left == ["etc/usher/usher.yaml"], left


def test_install_prefix_usr(tmp_path, usher_bin):
    dest = tmp_path / "stage"
    make("install", "DESTDIR=%s" % dest, "PREFIX=/usr", "INSTALL_BIN=%s" % install_bin(usher_bin))
    assert (dest / "usr/sbin/usher").is_file()
    assert (dest / "usr/share/man/man5/usher.yaml.5").is_file()
    assert (dest / "etc/usher/usher.yaml").is_file(), "SYSCONFDIR is /etc whatever PREFIX is"
    unit = (dest / "usr/lib/systemd/system/usher.service").read_text()
    assert "\nExecStart=/usr/sbin/usher -c /etc/usher/usher.yaml\n" in unit, unit
    assert "\nExecReload=/usr/sbin/usher -t -c /etc/usher/usher.yaml\nExecReload=/bin/kill -HUP $MAINPID\n" in unit


# -- the systemd unit --------------------------------------------------------------------


def unit_settings(text):
    """{key: [values]} of the unit's [Service] (and other) lines."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("["):
            continue
        k, _, v = line.partition("=")
        out.setdefault(k, []).append(v)
    return out


def seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", text)
    assert m, text
    return int(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


def test_unit_is_what_the_rest_expects():
    u = unit_settings(UNIT_IN.read_text())
    one = {k: v[0] for k, v in u.items() if len(v) == 1}
    assert one["Type"] == "notify"
    assert one["NotifyAccess"] == "main"
    conf = "@SYSCONFDIR@/usher/usher.yaml"
    assert one["ExecStartPre"] == "@SBINDIR@/usher -t -c " + conf
    assert one["ExecStart"] == "@SBINDIR@/usher -c " + conf
    assert u["ExecReload"] == ["@SBINDIR@/usher -t -c " + conf, "/bin/kill -HUP $MAINPID"]
    assert one["KillSignal"] == "SIGTERM"
    grace = next(seconds(d) for k, _, s, d in settings_table() if k == "timeouts.grace" and s == "TOP")
    assert grace < seconds(one["TimeoutStopSec"]) <= grace + 30, "TimeoutStopSec must allow for the %ss grace" % grace
    for k, v in {
        "AmbientCapabilities": "CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "LogsDirectory": "usher",
        "ConfigurationDirectory": "usher",
        "User": "usher",
        "Group": "usher",
        "WantedBy": "multi-user.target",
    }.items():
        assert one.get(k) == v, "usher.service: %s=%s expected, found %r" % (k, v, u.get(k))
    # the user the unit runs as is the one the package and sysusers.d make
    assert re.search(r"^u usher ", SYSUSERS.read_text(), re.M)
    assert re.search(r"adduser --system --group .*\\\n.* usher$", (DEBIAN / "usher.postinst").read_text(), re.M)
    # the default access log is in the LogsDirectory, which logrotate rotates
    assert "path: /var/log/usher/access.log" in DEFAULT_CONF.read_text()
    assert LOGROTATE.read_text().startswith("#") and "\n/var/log/usher/*.log {" in LOGROTATE.read_text()


@pytest.fixture
def installed_in_prefix(tmp_path, usher_bin):
    """make install with PREFIX and SYSCONFDIR in tmp_path (no DESTDIR): the
    unit names files that exist, as on a real machine."""
    prefix, etc = tmp_path / "prefix", tmp_path / "etc"
    make("install", "PREFIX=%s" % prefix, "SYSCONFDIR=%s" % etc, "INSTALL_BIN=%s" % install_bin(usher_bin))
    return prefix, etc


def test_unit_passes_systemd_analyze_verify(installed_in_prefix):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed (package systemd; scripts/deps.sh test installs it)")
    prefix, _ = installed_in_prefix
    unit = prefix / "lib/systemd/system/usher.service"
    # MANPATH: Documentation=man:usher(8) man:usher.yaml(5) must be found
    env = dict(os.environ, MANPATH=str(prefix / "share/man"), SYSTEMD_LOG_LEVEL="notice")
    p = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, env=env, timeout=60)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode == 0 and out.strip() == "", "systemd-analyze verify %s:\n%s" % (unit, out)


def test_unit_sandbox_exposure_is_low(installed_in_prefix):
    """systemd-analyze security --offline: at most 2.0 ("OK") on its 0-10 scale."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed (package systemd; scripts/deps.sh test installs it)")
    prefix, _ = installed_in_prefix
    unit = prefix / "lib/systemd/system/usher.service"
    p = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=20", "--no-pager", str(unit)],
        capture_output=True,
        timeout=60,
    )
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    m = re.search(r"Overall exposure level for usher.service: ([\d.]+)", out)
    assert m, out
    assert p.returncode == 0 and float(m.group(1)) <= 2.0, out


def test_logrotate_rule_parses(tmp_path):
    """logrotate -d on the rule, for a user that exists here (the rule's usher
    user exists where the package is installed)."""
    if not shutil.which("logrotate"):
        pytest.skip("logrotate not installed (scripts/deps.sh test installs it)")
    text = LOGROTATE.read_text()
    assert "su usher usher" in text and "create 0640 usher usher" in text
    assert "systemctl kill --signal=USR1 usher.service" in text and "pkill -USR1 -x -u usher usher" in text
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "access.log").write_text("a line\n")
    conf = tmp_path / "usher.logrotate"
    conf.write_text(
        text.replace("su usher usher", "su %s %s" % (user, group))
        .replace("create 0640 usher usher", "create 0640 %s %s" % (user, group))
        .replace("/var/log/usher/", str(logs) + "/")
    )
    os.chmod(conf, 0o644)
    p = subprocess.run(
        ["logrotate", "-d", "-s", str(tmp_path / "state"), str(conf)], capture_output=True, timeout=30
    )
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode == 0 and "error" not in out.lower(), out
    assert "rotating pattern: %s/*.log" % logs in out, out


# -- the notify protocol ----------------------------------------------------------------------


class NotifySocket:
    """The service manager's end: an AF_UNIX datagram socket bound to a path
    or an abstract name, receiving with the sender's credentials."""

    def __init__(self, name):
        self.name = name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind("\0" + name[1:] if name.startswith("@") else name)
        self.seen = []  # (pid, {key: value}) in order

    def recv(self, timeout=NOTIFY_TIMEOUT):
        """The next datagram as (sender pid, {key: value}), or None at timeout."""
        self.sock.settimeout(timeout)
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            return None
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = int.from_bytes(payload[0:4], "little")
        fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
        self.seen.append((pid, fields))
        return pid, fields

    def wait_for(self, pred, what, timeout=NOTIFY_TIMEOUT):
        """Datagrams until pred(fields); returns the ones read, the last matching."""
        got = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.recv(max(0.01, deadline - time.monotonic()))
            if r is None:
                break
            got.append(r)
            if pred(r[1]):
                return got
        pytest.fail("no notification with %s within %.0f s; got: %r" % (what, timeout, got), pytrace=False)

    def close(self):
        self.sock.close()
        if not self.name.startswith("@"):
            try:
                os.unlink(self.name)
            except FileNotFoundError:
                pass


@pytest.fixture
def notify_path(tmp_path):
    # sun_path holds 107 characters: a deep tmp_path may not fit
    path = tmp_path / "notify.sock"
    if len(str(path)) > 100:
        path = Path("/tmp/usher-notify-%d-%d.sock" % (os.getpid(), time.monotonic_ns()))
    s = NotifySocket(str(path))
    yield s
    s.close()


def monotonic_usec():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def file_config(dead_port):
    return (
        "threads: 2\n"
        "listeners:\n"
        "  - bind: <L0>\n"
        "    pool: web\n"
        "pools:\n"
        "  web:\n"
        "    health: { type: tcp, interval: 100ms, timeout: 100ms, rise: 1, fall: 1 }\n"
        "    backends: [ \"http://127.0.0.1:%d\" ]\n" % dead_port
    )


def test_notify_ready_status_reload_stop(notify_path, monkeypatch, start_usher_file):
    monkeypatch.setenv("NOTIFY_SOCKET", notify_path.name)
    u = start_usher_file(file_config(free_port()))
    pid = u.proc.pid

    first = notify_path.recv()
    assert first is not None, "no READY=1 from usher"
    sender, fields = first
    assert sender == pid, "the datagram must come from usher's main pid (NotifyAccess=main)"
    assert fields.get("READY") == "1", fields
    assert re.fullmatch(r"[01] of 1 backend up, \d+ connections?", fields.get("STATUS", "")), fields

    # the backend is down: STATUS follows the health checks
    notify_path.wait_for(lambda f: f.get("STATUS", "").startswith("0 of 1 backend up"), "STATUS=0 of 1 backend up")

    for text, outcome in ((None, "reloaded"), ("listeners: [", "failed")):
        if text is not None:
            u.write(text)
        before = monotonic_usec()
        got, _ = u.hup()
        after = monotonic_usec()
        assert got == outcome
        msgs = notify_path.wait_for(lambda f: f.get("READY") == "1", "READY=1 after the %s reload" % outcome)
        reloading = [f for _, f in msgs if f.get("RELOADING") == "1"]
        assert len(reloading) == 1, msgs
        assert before <= int(reloading[0]["MONOTONIC_USEC"]) <= after, (before, reloading, after)
        assert [f for _, f in msgs].index(reloading[0]) < len(msgs) - 1, "RELOADING=1 must come before READY=1"
        assert all(p == pid for p, _ in msgs)

    u.proc.proc.send_signal(signal.SIGTERM)
    msgs = notify_path.wait_for(lambda f: f.get("STOPPING") == "1", "STOPPING=1 after SIGTERM")
    assert msgs[-1][1].get("STATUS", "").startswith("stopping:"), msgs
    assert u.proc.wait_exit(15) == 0


def test_notify_abstract_socket(monkeypatch, start_usher):
    s = NotifySocket("@usher-test-%d-%d" % (os.getpid(), time.monotonic_ns()))
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", s.name)
        u = start_usher([free_port()], "--threads", "1")
        r = s.recv()
        assert r is not None and r[1].get("READY") == "1" and r[0] == u.proc.pid, r
        u.proc.proc.send_signal(signal.SIGTERM)
        s.wait_for(lambda f: f.get("STOPPING") == "1", "STOPPING=1")
        assert u.proc.wait_exit(15) == 0
    finally:
        s.close()


@pytest.mark.parametrize(
    "value, warning",
    [
        ("/nonexistent/usher-notify.sock", "cannot notify the service manager (NOTIFY_SOCKET)"),
        ("relative/notify.sock", "NOTIFY_SOCKET=relative/notify.sock: not a socket name"),
    ],
    ids=["no-such-socket", "relative"],
)
def test_notify_socket_unusable_changes_nothing(value, warning, monkeypatch, start_usher, backends):
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    u = start_usher(backends, "--threads", "1")
    with u.client() as c:
        assert c.get("/").status_code == 200
    u.proc.proc.send_signal(signal.SIGHUP)
    u.proc.proc.send_signal(signal.SIGTERM)
    assert u.proc.wait_exit(15) == 0
    log = u.proc.read_log()
    assert log.count(warning) == 1, log
    assert not tcp_connectable(u.port)
