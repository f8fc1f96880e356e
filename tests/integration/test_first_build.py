"""The first `make` of a fresh checkout on a machine without node-llhttp.

The bug (issue 14 item 2): `make: *** No rule to make target
'build/llhttp/llhttp.o'`: make looked for llhttp's sources, which the Debian
package node-llhttp ships, while it read the Makefile, before scripts/deps.sh
had installed the package. Removing the package here would break the other
builds of this machine, so the absence is made up: the Makefile's LLHTTP_SRC
and LLHTTP_INC point at a directory that does not exist yet, and DEPS_SH (what
the Makefile runs to install the packages) is a stand-in that copies the
package's files there, as apt-get would put them in /usr/share. The copy of
the tree is the working tree's tracked files, so the test checks this
Makefile, committed or not.

What must hold: one `make` builds usher and the unit tests, the stand-in
runs before the first compile, and once more when the sources are gone
again (the package removed after a build: the stamp build/.deps-ok no longer
vouches for them).

The real check, with the package really removed, is in docs/OPERATIONS.md
("A fresh machine").
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.procs import REPO_ROOT

PKG_SRC = Path("/usr/share/llhttp")
PKG_INC = Path("/usr/share/include/llhttp")
BUILD_TIMEOUT = 900  # a whole build on a loaded 2-core machine


def tracked_copy(dest):
    p = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "-z"], capture_output=True, timeout=60)
    if p.returncode != 0:
        pytest.skip("the tree is not a git checkout: %s" % p.stderr.decode().strip())
    for rel in p.stdout.decode().split("\0"):
        if not rel:
            continue
        src = REPO_ROOT / rel
        if not src.exists():  # deleted in the working tree
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)


def stand_in(tmp_path, pkg):
    """A DEPS_SH that logs its call and 'installs' llhttp into pkg."""
    log = tmp_path / "deps.log"
    script = tmp_path / "deps.sh"
    script.write_text(
        "#!/bin/sh\n"
        "set -e\n"
        'echo "deps-stand-in $*" >>%(log)s\n'
        'echo "deps-stand-in: installing llhttp into %(pkg)s"\n'
        "mkdir -p %(pkg)s/llhttp %(pkg)s/include/llhttp\n"
        "cp %(src)s/llhttp.c %(src)s/api.c %(src)s/http.c %(pkg)s/llhttp/\n"
        "cp %(inc)s/llhttp.h %(pkg)s/include/llhttp/\n" % {"log": log, "pkg": pkg, "src": PKG_SRC, "inc": PKG_INC}
    )
    script.chmod(0o755)
    return script, log


def run_make(tree, pkg, script, *targets):
    # what an outer make passes on (make SANITIZE=... test exports its command-line variables)
    outer = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "SANITIZE", "CFLAGS", "LDFLAGS", "BUILD")
    env = {k: v for k, v in os.environ.items() if k not in outer}
    args = [
        "make",
        "--no-print-directory",
        "-C",
        str(tree),
        "-j2",
        "DEPS_SH=%s" % script,
        "LLHTTP_SRC=%s/llhttp" % pkg,
        "LLHTTP_INC=%s/include/llhttp" % pkg,
        # the same rules, built faster: no optimisation, no link-time step
        "OPT=-O0",
        "LTO=",
        "SANITIZE=",
    ] + list(targets)
    p = subprocess.run(args, capture_output=True, env=env, timeout=BUILD_TIMEOUT)
    return p.returncode, p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")


def test_first_make_installs_llhttp_before_it_needs_it(tmp_path):
    if not (PKG_SRC / "llhttp.c").exists() or not (PKG_INC / "llhttp.h").exists():
        pytest.skip("node-llhttp is not installed here, nothing to copy from (scripts/deps.sh build installs it)")
    tree, pkg = tmp_path / "usher", tmp_path / "pkg"
    tree.mkdir()
    tracked_copy(tree)
    script, log = stand_in(tmp_path, pkg)
    assert not pkg.exists()

    rc, out = run_make(tree, pkg, script, "all", "unit")
    assert rc == 0, "the first make of a fresh tree failed:\n" + out[-6000:]
    assert "No rule to make target" not in out
    lines = out.splitlines()
    first_cc = next(i for i, line in enumerate(lines) if line.startswith("cc "))
    installed = next(i for i, line in enumerate(lines) if line.startswith("deps-stand-in:"))
    assert installed < first_cc, "something was compiled before the packages were installed:\n" + out[:3000]
    assert log.read_text().splitlines() == ["deps-stand-in build test"]
    for binary in ("usher", "demo-backend"):
        assert (tree / "build" / binary).is_file(), out[-3000:]
    v = subprocess.run([str(tree / "build" / "usher"), "--version"], capture_output=True, timeout=30)
    assert v.returncode == 0 and v.stdout.startswith(b"usher "), v
    assert "== build/tests/test_" in out and "FAILED" not in out, out[-3000:]

    # the package removed after a build: the stamp is not trusted, deps run again
    shutil.rmtree(pkg)
    (tree / "src" / "http" / "h1.c").touch()  # it includes llhttp.h
    rc, out = run_make(tree, pkg, script, "all")
    assert rc == 0, "make after the package was removed failed:\n" + out[-6000:]
    assert log.read_text().splitlines() == ["deps-stand-in build test"] * 2
    assert (pkg / "llhttp" / "llhttp.c").exists()

    # and with the sources in place the stand-in is not run for nothing
    rc, out = run_make(tree, pkg, script, "all")
    assert rc == 0, out[-3000:]
    assert len(log.read_text().splitlines()) == 2, "deps ran although nothing was missing"
