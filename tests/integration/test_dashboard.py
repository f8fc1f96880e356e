"""The dashboard at the admin listener's / (issue 13 item 5), in a real headless
Chromium (Debian's chromium and chromium-driver, driven with python3-selenium:
harness/browser.py), against the real usher with two demo backends and
traffic going through it.

What a person would see is checked: the page loads without a console error,
shows both backends and their states, its charts have data drawn (Chart.js's
data and the canvas pixels), the last minutes are charted on a page just
opened, a killed backend shows DOWN with its reason, the drain button takes a
backend out end to end (new requests all go to the other one, the API says
drain), a change asks for the token when one is set and works once it is
given, API errors are shown in words, and a 400 px wide window has no
horizontal overflow. Screenshots go to build/dashboard*.png.

Skipped only when Chromium itself is not installed (scripts/deps.sh test
installs it); with Chromium there, a missing driver or selenium is an error.
"""

import time

import httpx
import pytest

from harness import browser as _browser
from harness import procs as _procs
from harness.load import LoadClient

HOST = "127.0.0.1"
SHOTS = _procs.REPO_ROOT / "build"
TOKEN = "s3cret-dashboard-token"
WAIT = 30.0  # generous: the machine is shared

_why_not = _browser.missing()
pytestmark = pytest.mark.skipif(_why_not is not None, reason=_why_not or "")


@pytest.fixture
def browser():
    why = _browser.incomplete()
    if why:
        pytest.fail(why, pytrace=False)
    b = _browser.Browser(1280, 1000)
    yield b
    b.close()


class Admin:
    """usher's admin API, read with httpx (what the page says is compared
    with it)."""

    def __init__(self, port, token=None):
        self.port = port
        self.url = "http://%s:%d" % (HOST, port)
        self.token = token

    def get(self, path):
        with httpx.Client(base_url=self.url, trust_env=False, timeout=10.0) as c:
            r = c.get(path)
        assert r.status_code == 200, "%s: %d %s" % (path, r.status_code, r.text)
        return r.json()

    def backend(self, pool, name):
        for p in self.get("/api/v1/pools")["pools"]:
            if p["name"] == pool:
                for b in p["backends"]:
                    if b["name"] == name:
                        return b
        raise AssertionError("no backend %s in pool %s" % (name, pool))


def wait_admin(proc, port):
    if not proc.wait_ready(port):
        pytest.fail("usher's admin listener on %d did not accept:\n%s" % (port, proc.describe()), pytrace=False)


@pytest.fixture
def traffic():
    """traffic(port) starts a LoadClient on usher's port (a few requests a
    second, bounded), stopped at teardown."""
    started = []

    def start(port, pause=0.02, target="/"):
        c = LoadClient(port, name="dash-load", pause=pause, target=target, max_seconds=180.0, timeout=5.0)
        c.start()
        started.append(c)
        return c

    yield start
    for c in started:
        c.stop.set()
    for c in started:
        c.join(15)


def quick_usher(start_usher, backends, *extra):
    """usher in quick mode with the admin on a free port: (Usher, Admin)."""
    port = _procs.free_port()
    u = start_usher(backends, "--balance", "round-robin", "--admin", "%s:%d" % (HOST, port), *extra)
    wait_admin(u.proc, port)
    return u, Admin(port)


def names_of(backends):
    return ["%s:%d" % (HOST, b.port) for b in backends]


def severe(entries, allow=()):
    """The console entries that are errors, except those naming an allowed text."""
    return [e for e in entries if e.get("level") == "SEVERE" and not any(a in e.get("message", "") for a in allow)]


# -- reading the page -----------------------------------------------------------------

ROWS_JS = """
return Array.from(document.querySelectorAll('tr[data-backend]')).map(function (tr) {
  return {name: tr.dataset.backend, state: tr.dataset.state,
          badge: tr.querySelector('.state').textContent,
          why: tr.querySelector('td.why').textContent,
          pool: tr.closest('section').dataset.pool};
});
"""

# For each chart: Chart.js's points with a value, the newest x, and how many
# canvas pixels are drawn in a saturated colour (the lines; grid and text are grey).
CHARTS_JS = """
var out = {};
document.querySelectorAll('canvas[data-chart]').forEach(function (cv) {
  var ch = Chart.getChart(cv), pts = 0, nonzero = 0, oldest = null;
  ch.data.datasets.forEach(function (ds) {
    ds.data.forEach(function (p) {
      if (p.y !== null) { pts++; if (p.y > 0) nonzero++; if (oldest === null || p.x < oldest) oldest = p.x; }
    });
  });
  var ctx = cv.getContext('2d'), img = ctx.getImageData(0, 0, cv.width, cv.height).data, coloured = 0;
  for (var i = 0; i < img.length; i += 4) {
    var r = img[i], g = img[i + 1], b = img[i + 2], a = img[i + 3];
    if (a > 128 && Math.max(r, g, b) - Math.min(r, g, b) > 90) coloured++;
  }
  out[cv.closest('section').dataset.pool + '/' + cv.dataset.chart] =
    {datasets: ch.data.datasets.length, points: pts, nonzero: nonzero, oldest: oldest, coloured: coloured};
});
return out;
"""


def rows(b):
    return b.js(ROWS_JS)


def row(b, name):
    for r in rows(b):
        if r["name"] == name:
            return r
    return None


def click_action(b, name, action):
    btn = b.js(
        "var name = arguments[0], action = arguments[1];"
        " var tr = Array.from(document.querySelectorAll('tr[data-backend]')).find(function (t) {"
        " return t.dataset.backend === name; });"
        " return tr && tr.querySelector('button[data-action=\"' + action + '\"]');",
        name, action)
    assert btn is not None, "no %s button for %s" % (action, name)
    b.wait("the %s button of %s to be enabled" % (action, name), lambda: btn.is_enabled())
    btn.click()


# -- the tests ------------------------------------------------------------------------


def test_page_shows_backends_states_and_charts(browser, backends, start_usher, traffic):
    u, admin = quick_usher(start_usher, backends)
    load = traffic(u.port)
    # and some 404 and 500 answers from the backends (answers, not failures:
    # the backends stay up)
    bad = traffic(u.port, pause=0.05, target=lambda i: "/status/404" if i % 2 else "/status/500")
    # traffic for a few seconds before the page is opened: those seconds must be
    # charted at once (the page reads the last 10 minutes from /api/v1/series)
    browser.wait("requests through usher", lambda: load.count() >= 30 and len(bad.records()) >= 20, timeout=WAIT)
    time.sleep(3)
    opened = time.time()
    browser.open(admin.url + "/")
    assert browser.js("return document.title").endswith("usher dashboard")

    want = set(names_of(backends))
    got = browser.wait("both backends shown UP",
                       lambda: {r["name"] for r in rows(browser) if r["state"] == "up" and r["badge"] == "UP"} == want
                       and rows(browser))
    assert {r["pool"] for r in got} == {"default"}
    for name in want:
        assert admin.backend("default", name)["state"] == "up"

    charts = browser.wait(
        "the request-rate chart to have data drawn",
        lambda: (lambda c: c if c.get("default/rps", {}).get("nonzero", 0) > 0 and c["default/rps"]["coloured"] > 50
                 else None)(browser.js(CHARTS_JS)))
    rps = charts["default/rps"]
    assert rps["datasets"] == 2, charts
    # samples from before the page was opened are on the chart
    assert rps["oldest"] is not None and rps["oldest"] < opened - 2, (rps, opened)
    for kind in ("rps", "latency", "inflight", "errors"):
        assert charts["default/" + kind]["points"] > 0, charts
    assert charts["default/latency"]["nonzero"] > 0, charts
    assert charts["default/errors"]["nonzero"] > 0 and charts["default/errors"]["coloured"] > 20, charts

    # the table's rate is what the chart's newest sample says, a number > 0
    rate = browser.js("return Array.from(document.querySelectorAll('tr[data-backend] td[data-label=\"Req/s\"]'))"
                      ".map(function (td) { return parseFloat(td.textContent); })")
    assert len(rate) == 2 and all(r > 0 for r in rate), rate
    # 4xx and 5xx rates: what the backends answered, counted per class
    for label in ("4xx/s", "5xx/s"):
        got_rates = browser.wait(
            "a %s rate > 0 in the table" % label,
            lambda: (lambda v: v if any(x > 0 for x in v) else None)(browser.js(
                "return Array.from(document.querySelectorAll('tr[data-backend] td[data-label=\"' + arguments[0] +"
                " '\"]')).map(function (td) { return parseFloat(td.textContent) || 0; })", label)))
        assert len(got_rates) == 2, got_rates
    pools = admin.get("/api/v1/pools")["pools"][0]["backends"]
    assert sum(b["responses"]["4xx"] for b in pools) > 0 and sum(b["responses"]["5xx"] for b in pools) > 0, pools
    summary = browser.js("return document.getElementById('summary-text').textContent")
    assert summary == "All 2 backends are up.", summary
    assert "version" in browser.js("return document.getElementById('status-line').textContent")

    browser.screenshot(str(SHOTS / "dashboard.png"))
    errors = severe(browser.console())
    assert not errors, errors


def test_killed_backend_shows_down_with_its_reason(browser, start_backend, start_usher, traffic):
    b1, b2 = start_backend("dash-a"), start_backend("dash-b")
    u, admin = quick_usher(start_usher, [b1, b2], "--health-interval", "500ms")
    traffic(u.port)
    browser.open(admin.url + "/")
    n1, n2 = names_of([b1, b2])
    browser.wait("both backends up", lambda: all(r["state"] == "up" for r in rows(browser)) and len(rows(browser)) == 2)
    b1.proc.kill()
    api = browser.wait("the API to mark %s down" % n1,
                       lambda: (lambda b: b if b["state"] == "down" else None)(admin.backend("default", n1)))
    assert api["reason"], api
    r = browser.wait("the page to show %s DOWN" % n1,
                     lambda: (lambda r: r if r and r["badge"] == "DOWN" else None)(row(browser, n1)))
    assert api["reason"] in r["why"], (api, r)
    assert row(browser, n2)["state"] == "up"
    # said to screen readers once, when it happened
    said = browser.js("return document.getElementById('announce').textContent")
    assert said == "%s is DOWN: %s." % (n1, api["reason"]), said
    summary = browser.js("return document.getElementById('summary').textContent")
    assert "1 of 2 DOWN" in summary and n1 in summary and api["reason"] in summary, summary
    browser.wait("a down event in the list",
                 lambda: browser.js("return Array.from(document.querySelectorAll('#events li[data-kind=down]'))"
                                    ".map(function (li) { return li.textContent; }).join('\\n')"))
    browser.screenshot(str(SHOTS / "dashboard-down.png"))
    errors = severe(browser.console())
    assert not errors, errors


def test_drain_button_takes_a_backend_out(browser, backends, start_usher, traffic):
    u, admin = quick_usher(start_usher, backends)
    traffic(u.port)
    browser.open(admin.url + "/")
    n1, n2 = names_of(backends)
    browser.wait("both backends up", lambda: len([r for r in rows(browser) if r["state"] == "up"]) == 2)

    click_action(browser, n1, "drain")
    browser.wait("the API to say drain", lambda: admin.backend("default", n1)["state"] == "drain")
    r = browser.wait("the page to show DRAIN", lambda: (lambda r: r if r["badge"] == "DRAIN" else None)(row(browser, n1)))
    assert r["state"] == "drain"
    browser.wait("a drain event in the list",
                 lambda: browser.js("return document.querySelectorAll('#events li[data-kind=drain]').length"))

    # new requests all go to the other backend
    seen = []
    with u.client() as c:
        for _ in range(40):
            resp = c.get("/", headers={"Connection": "close"})
            assert resp.status_code == 200, resp.text
            seen.append(resp.headers.get("X-Backend"))
    assert seen == [backends[1].name] * 40, seen
    summary = browser.js("return document.getElementById('summary').textContent")
    assert "1 draining" in summary and n1 in summary, summary

    # and Ready takes it back
    click_action(browser, n1, "ready")
    browser.wait("the API to say up again", lambda: admin.backend("default", n1)["state"] == "up")
    errors = severe(browser.console())
    assert not errors, errors
    # leave the shared backends as they were
    assert admin.backend("default", n1)["state"] == "up"


TOKEN_CONFIG = """
listeners:
  - bind: <L0>
    pool: web
admin:
  bind: <L1>
  token: %s
pools:
  web:
    balance: round-robin
    backends:
      - { url: "http://127.0.0.1:%d", name: one }
      - { url: "http://127.0.0.1:%d", name: two }
"""


def test_change_asks_for_the_token_and_works_with_it(browser, backends, start_usher_file, traffic):
    u = start_usher_file(TOKEN_CONFIG % (TOKEN, backends[0].port, backends[1].port), 2)
    admin = Admin(u.ports[1], TOKEN)
    traffic(u.ports[0])
    browser.open(admin.url + "/")
    browser.wait("both backends up", lambda: len([r for r in rows(browser) if r["state"] == "up"]) == 2)
    form_shown = "return !document.getElementById('token-form').hidden"

    click_action(browser, "one", "drain")
    browser.wait("the token form", lambda: browser.js(form_shown))
    assert admin.backend("web", "one")["state"] == "up"  # nothing changed without the token
    assert browser.js("return document.activeElement.id") == "token-input"

    # a wrong token: usher answers 403 and the form asks again
    field = browser.driver.find_element("id", "token-input")
    field.send_keys("not-the-token")
    browser.driver.find_element("css selector", "#token-form button[type=submit]").click()
    browser.wait("the form again after a wrong token",
                 lambda: browser.js(form_shown) and "refused" in browser.js(
                     "return document.getElementById('token-why').textContent"))
    assert admin.backend("web", "one")["state"] == "up"

    field.send_keys(TOKEN)
    browser.driver.find_element("css selector", "#token-form button[type=submit]").click()
    browser.wait("the API to say drain once the token is given", lambda: admin.backend("web", "one")["state"] == "drain")
    browser.wait("the page to show DRAIN", lambda: row(browser, "one")["badge"] == "DRAIN")
    assert not browser.js(form_shown)
    assert TOKEN not in browser.driver.current_url
    assert browser.js("return sessionStorage.getItem('usher-admin-token')") == TOKEN

    # the next change uses the kept token without asking
    click_action(browser, "one", "ready")
    browser.wait("the API to say up", lambda: admin.backend("web", "one")["state"] == "up")
    assert not browser.js(form_shown)
    # the only console errors are the 401 and 403 answers the test asked for
    errors = severe(browser.console(), allow=("status of 401", "status of 403"))
    assert not errors, errors


def test_failed_reload_is_shown(browser, backends, start_usher_file):
    text = TOKEN_CONFIG % (TOKEN, backends[0].port, backends[1].port)
    u = start_usher_file(text, 2)
    admin = Admin(u.ports[1], TOKEN)
    browser.open(admin.url + "/")
    browser.wait("the status line", lambda: "no reload yet" in browser.js(
        "return document.getElementById('status-line').textContent"))
    assert browser.js("return document.getElementById('reload-warning').hidden")
    assert u.path in browser.js("return document.getElementById('status-line').textContent")

    u.write(text.replace("balance: round-robin", "balance: no-such-algorithm"))
    outcome, _ = u.hup()
    assert outcome == "failed"
    st = admin.get("/api/v1/status")["last_reload"]
    assert st["result"] == "failed" and st["message"], st
    warning = browser.wait("the reload warning", lambda: browser.js(
        "var w = document.getElementById('reload-warning'); return !w.hidden && w.textContent"))
    assert "failed, so usher still runs the previous configuration" in warning and st["message"] in warning, \
        (warning, st)
    browser.wait("a reload event", lambda: browser.js("return document.querySelectorAll('#events li[data-kind=reload]').length"))

    u.reload(text)  # a good file again: the warning goes
    browser.wait("the warning to go", lambda: browser.js("return document.getElementById('reload-warning').hidden"))
    assert "reload" in browser.js("return document.getElementById('status-line').textContent")
    errors = severe(browser.console())
    assert not errors, errors


def test_api_error_is_shown_in_words(browser, backends, start_usher, traffic):
    u, admin = quick_usher(start_usher, backends)
    browser.open(admin.url + "/")
    n1 = names_of(backends)[0]
    browser.wait("the backends", lambda: row(browser, n1))
    before = admin.backend("default", n1)["weight"]
    # usher refuses the weight (settings.c: 1..1000 in the file); what it says is shown
    with httpx.Client(base_url=admin.url, trust_env=False, timeout=10.0) as c:
        r = c.patch("/api/v1/pools/default/backends/" + n1, json={"weight": 100000})
    assert 400 <= r.status_code < 500, r.text
    said = r.json()["error"]
    field = browser.js("return document.querySelector('tr[data-backend=\"' + arguments[0] + '\"] input[name=weight]')", n1)
    field.send_keys("100000")
    browser.js("arguments[0].form.querySelector('button[type=submit]').click()", field)
    shown = browser.wait("the error on the page",
                         lambda: browser.js("var e = document.getElementById('error');"
                                            " return !e.hidden && e.classList.contains('error') && e.textContent"))
    assert said in shown and "HTTP %d" % r.status_code in shown, (said, shown)
    assert admin.backend("default", n1)["weight"] == before
    errors = severe(browser.console(), allow=("status of 4",))
    assert not errors, errors


def test_narrow_window_has_no_horizontal_overflow(browser, backends, start_usher, traffic):
    u, admin = quick_usher(start_usher, backends)
    traffic(u.port)
    browser.set_size(400, 900)
    browser.open(admin.url + "/")
    browser.wait("the backends", lambda: len(rows(browser)) == 2)
    browser.wait("the charts drawn", lambda: browser.js(CHARTS_JS)["default/rps"]["points"] > 0)
    time.sleep(1.5)  # a refresh or two
    width = browser.js("return [document.documentElement.scrollWidth, document.documentElement.clientWidth,"
                       " window.innerWidth]")
    assert width[2] == 400, width
    assert width[0] <= width[1], "the page is %d px wide in a %d px window" % (width[0], width[1])
    # no element sticks out on the right either (scrollWidth misses some cases)
    wide = browser.js("""
        var out = [];
        document.querySelectorAll('body *').forEach(function (e) {
          var r = e.getBoundingClientRect();
          if (r.width > 0 && r.right > document.documentElement.clientWidth + 0.5 &&
              getComputedStyle(e).position !== 'absolute') out.push(e.tagName + '.' + e.className + ' ' + r.right);
        });
        return out.slice(0, 10);""")
    assert not wide, wide
    # the buttons stay usable: at least 24 px tall (WCAG 2.2 target size)
    small = browser.js("return Array.from(document.querySelectorAll('button')).filter(function (b) {"
                       " var r = b.getBoundingClientRect(); return r.height > 0 && r.height < 24; }).length")
    assert small == 0
    browser.screenshot(str(SHOTS / "dashboard-narrow.png"), width=400)
    errors = severe(browser.console())
    assert not errors, errors


# Datasets of one chart: label, points with a value, points > 0.
DATASETS_JS = """
var cv = document.querySelector('section[data-pool="' + arguments[0] + '"] canvas[data-chart="' + arguments[1] + '"]');
return Chart.getChart(cv).data.datasets.map(function (ds) {
  var pts = 0, nonzero = 0;
  ds.data.forEach(function (p) { if (p.y !== null) { pts++; if (p.y > 0) nonzero++; } });
  return {label: ds.label, points: pts, nonzero: nonzero};
});
"""


def test_many_backends_chart_the_busiest_and_the_others(browser, start_backend, start_usher, traffic):
    # 12 backends: the page charts 10 of them and the other 2 as one line from
    # the pool's total (GET /api/v1/series?top=10); the table shows all 12
    many = [start_backend("m%d" % i) for i in range(12)]
    u, admin = quick_usher(start_usher, many)
    load = traffic(u.port, pause=0.005)
    browser.wait("requests through usher", lambda: load.count() >= 60, timeout=WAIT)
    browser.open(admin.url + "/")
    browser.wait("the 12 backends", lambda: len(rows(browser)) == 12)

    def drawn():
        sets = browser.js(DATASETS_JS, "default", "rps")
        return sets if len(sets) == 11 and all(s["nonzero"] > 0 for s in sets) else None
    sets = browser.wait("10 backends and '2 others' with traffic on the request-rate chart", drawn, timeout=WAIT)
    assert sets[-1]["label"] == "2 others", sets
    assert len({s["label"] for s in sets[:10]} & set(names_of(many))) == 10, sets
    lat = browser.js(DATASETS_JS, "default", "latency")
    assert [s["label"] for s in lat[-2:]] == ["pool p99", "pool p50"], lat
    # every row's rate comes from the newest sample, charted or not
    rate = browser.wait(
        "a request rate > 0 on every row",
        lambda: (lambda v: v if len(v) == 12 and all(x > 0 for x in v) else None)(browser.js(
            "return Array.from(document.querySelectorAll('tr[data-backend] td[data-label=\"Req/s\"]'))"
            ".map(function (td) { return parseFloat(td.textContent); })")), timeout=WAIT)
    assert len(rate) == 12
    errors = severe(browser.console())
    assert not errors, errors


def test_a_big_pool_lists_those_not_up_and_the_busiest_until_asked(browser, backends, start_usher_file):
    # 60 backends that get no traffic (closed ports, checks off: up): the page
    # lists 50, those not up first, and all 60 when asked
    many = "\n".join("      - http://127.0.0.%d:%d" % (2 + i % 3, 1 + i) for i in range(60))
    text = ("listeners:\n  - { bind: <L0>, pool: web }\nadmin: { bind: <L1> }\npools:\n"
            "  web:\n    backends: [ \"http://127.0.0.1:%d\" ]\n"
            "  many:\n    health: { type: off }\n    backends:\n%s\n") % (backends[0].port, many)
    u = start_usher_file(text, 2)
    wait_admin(u.proc, u.ports[1])
    admin = Admin(u.ports[1])
    last = "127.0.0.%d:%d" % (2 + 59 % 3, 60)
    with httpx.Client(base_url=admin.url, trust_env=False, timeout=10.0) as c:
        r = c.patch("/api/v1/pools/many/backends/" + last, json={"state": "maint"})
    assert r.status_code == 200, r.text
    browser.open(admin.url + "/")

    def many_rows():
        return [r for r in rows(browser) if r["pool"] == "many"]
    got = browser.wait("50 rows of pool many", lambda: (lambda m: m if len(m) == 50 else None)(many_rows()))
    # the one in maintenance is listed, though the file names it 60th
    assert [r["state"] for r in got if r["name"] == last] == ["maint"], got
    note = "return document.querySelector('section[data-pool=\"many\"] .rows-note')"
    assert "Showing 50 of 60 backends" in browser.js(note + ".textContent")
    assert browser.js(note + ".hidden") is False
    assert browser.js("return document.querySelector('section[data-pool=\"web\"] .rows-note').hidden") is True
    browser.js(note + ".querySelector('button').click()")
    browser.wait("all 60 rows", lambda: len(many_rows()) == 60)
    assert "All 60 backends" in browser.js(note + ".textContent")
    browser.js(note + ".querySelector('button').click()")
    browser.wait("50 rows again", lambda: len(many_rows()) == 50)
    errors = severe(browser.console())
    assert not errors, errors
