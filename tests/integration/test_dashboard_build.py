"""How the dashboard page gets into usher (scripts/embed.py, docs/DASHBOARD.md):
the page usher serves at the admin's / is web/dashboard with Chart.js inlined,
byte for byte the page embed.py built, and it refers to nothing outside itself;
embed.py refuses, naming the file, what would break that. No browser needed.
"""

import re
import shutil
import subprocess
import sys

import httpx
import pytest

from harness import procs as _procs

ROOT = _procs.REPO_ROOT
EMBED = ROOT / "scripts" / "embed.py"
BUILT = ROOT / "build" / "gen" / "dashboard.html"
CHARTJS = "/usr/share/javascript/chart.js/chart.min.js"


def test_usher_serves_the_built_page(backends, start_usher):
    port = _procs.free_port()
    u = start_usher(backends, "--admin", "127.0.0.1:%d" % port)
    assert u.proc.wait_ready(port), u.proc.describe()
    with httpx.Client(trust_env=False, timeout=10.0) as c:
        r = c.get("http://127.0.0.1:%d/" % port)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp, csp
    page = r.content
    # the binary under test may be another build (sanitizers, valgrind): the same
    # sources make the same page
    assert BUILT.exists(), "%s is missing: `make` builds it with the page" % BUILT
    assert page == BUILT.read_bytes()
    text = page.decode("utf-8")
    # Chart.js, the script and the style are inside; nothing is loaded from elsewhere
    assert "Chart.js v" in text and "Released under the MIT License" in text
    assert "function renderPools" in text and ".backends" in text
    assert not re.search(r"<(script|link|img|iframe)[^>]*\s(src|href)=\"(?!data:,\")", text), \
        re.findall(r"<(?:script|link|img|iframe)[^>]*>", text)[:5]


def run_embed(tmp_path, files, chartjs=CHARTJS):
    web = tmp_path / "web"
    web.mkdir()
    for name, body in files.items():
        (web / name).write_text(body)
    out = tmp_path / "page.c"
    html = tmp_path / "page.html"
    r = subprocess.run([sys.executable, str(EMBED), "--chartjs", str(chartjs), "--html", str(html), str(web), str(out)],
                       capture_output=True, text=True, timeout=60)
    return r, out, html


PAGE = """<!doctype html><html><head><link rel="stylesheet" href="style.css"></head>
<body><p>x</p><script src="chart.js"></script><script src="app.js"></script></body></html>
"""


@pytest.fixture
def small_chartjs(tmp_path):
    p = tmp_path / "chart.min.js"
    p.write_text("/*! Chart.js test */ var Chart = function () {};\n")
    return p


def test_embed_writes_c_that_holds_the_page(tmp_path, small_chartjs):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler (scripts/deps.sh build installs gcc)", pytrace=False)
    r, out, html = run_embed(tmp_path, {"index.html": PAGE, "style.css": "p { color: #111; }\n",
                                        "app.js": "var s = '\\u00e9 <b>';\n"}, small_chartjs)
    assert r.returncode == 0, r.stderr
    page = html.read_bytes()
    assert b"<style>\np { color: #111; }\n</style>" in page
    assert b"<script>\n/*! Chart.js test */" in page and b"<script>\nvar s = " in page
    assert b"src=" not in page and b"href=" not in page
    # the C array is exactly the page
    main = tmp_path / "dump.c"
    main.write_text('#include <stdio.h>\n#include "admin/dashboard.h"\n'
                    "int main(void) { fwrite(dashboard_html, 1, dashboard_html_len, stdout); return 0; }\n")
    exe = tmp_path / "dump"
    cr = subprocess.run([cc, "-std=gnu11", "-Wall", "-Werror", "-I", str(ROOT / "src"), str(main), str(out), "-o", str(exe)],
                        capture_output=True, text=True, timeout=120)
    assert cr.returncode == 0, cr.stderr
    assert subprocess.run([str(exe)], capture_output=True, timeout=30).stdout == page


@pytest.mark.parametrize("files, expected", [
    ({"index.html": PAGE.replace('<script src="app.js"></script>', ""), "style.css": "", "app.js": ""},
     'index.html: expected the tag <script src="app.js"></script> exactly once, found it 0 times'),
    ({"index.html": PAGE, "style.css": "", "app.js": "document.write('</script>');"},
     "app.js holds </script, which would end the inline element early"),
    ({"index.html": PAGE, "style.css": "a{}</STYLE>", "app.js": ""},
     "style.css holds </style, which would end the inline element early"),
    ({"index.html": PAGE.replace("<p>x</p>", '<img src="https://cdn.example/x.png">'), "style.css": "", "app.js": ""},
     "index.html still refers to 'https://cdn.example/x.png' (every file must be inlined)"),
    ({"index.html": PAGE, "app.js": ""}, "cannot read"),
])
def test_embed_refuses_what_would_break_the_page(tmp_path, small_chartjs, files, expected):
    r, out, _ = run_embed(tmp_path, files, small_chartjs)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert expected in r.stderr, r.stderr
    assert r.stderr.startswith("embed.py: ")
    assert not out.exists()


def test_embed_names_the_missing_chartjs(tmp_path):
    r, out, _ = run_embed(tmp_path, {"index.html": PAGE, "style.css": "", "app.js": ""}, tmp_path / "nope.js")
    assert r.returncode == 1 and "nope.js not found: install Debian's libjs-chart.js" in r.stderr, r.stderr
    assert not out.exists()
