"""The admin API (docs/API.md): every call and every error, the token
rules, the loopback rule, runtime state across a reload, the rule for
backends the API added (they stay until the API removes them), DELETE
draining first, /healthz, /readyz, and the events.
"""

import subprocess
import threading
import time

import httpx
import pytest

from harness.procs import HOST, free_port
from http_raw import RawHTTPConnection


class Admin:
    def __init__(self, port, token=None):
        self.base = "http://%s:%d" % (HOST, port)
        self.token = token
        # the admin listener opens after the traffic listeners (slow under valgrind)
        end = time.monotonic() + 30
        while True:
            try:
                httpx.get(self.base + "/healthz", timeout=5, trust_env=False)
                break
            except httpx.TransportError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.1)

    def call(self, method, path, body=None, token=None, raw=None, headers=None):
        h = dict(headers or {})
        t = token if token is not None else self.token
        if t:
            h["Authorization"] = "Bearer " + t
        kw = {"json": body} if body is not None else {}
        if raw is not None:
            kw = {"content": raw}
        return httpx.request(method, self.base + path, headers=h, timeout=10, trust_env=False, **kw)

    def pool(self, name="default"):
        r = self.call("GET", "/api/v1/pools/" + name)
        assert r.status_code == 200
        return r.json()

    def backend(self, name, pool="default"):
        return next(b for b in self.pool(pool)["backends"] if b["name"] == name)

    def events(self, since=0):
        return self.call("GET", "/api/v1/events?since=%d" % since).json()


def hit(port, path="/"):
    with RawHTTPConnection(HOST, port, timeout=10) as c:
        r = c.roundtrip("GET", path, [("Connection", "close")])
    return r.status, r.header("X-Backend")


def name_of(b):
    return "%s:%d" % (HOST, b.port)


def wait_until(pred, timeout=15.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    pytest.fail("timed out waiting for " + what)


@pytest.fixture
def two(start_backend, start_usher):
    b1, b2 = start_backend("a1"), start_backend("a2")
    port = free_port()
    u = start_usher([b1, b2], "--admin", "%s:%d" % (HOST, port), "--health-interval", "200ms",
                    "--balance", "weighted-round-robin")
    return u, Admin(port), b1, b2


def test_reads_and_their_shapes(two):
    u, a, b1, b2 = two
    for _ in range(6):
        assert hit(u.port)[0] == 200
    r = a.call("GET", "/api/v1/status")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    st = r.json()
    assert st["version"] and st["uptime"] >= 0 and st["config_file"] is None
    pools = a.call("GET", "/api/v1/pools").json()["pools"]
    assert [p["name"] for p in pools] == ["default"]
    assert pools[0]["balance"] == "weighted-round-robin"
    be = {b["name"]: b for b in pools[0]["backends"]}
    assert set(be) == {name_of(b1), name_of(b2)}
    one = be[name_of(b1)]
    for k in ("name", "url", "state", "since", "reason", "weight", "inflight", "requests",
              "responses", "p50_ms", "p99_ms", "last_check", "source", "file", "runtime"):
        assert k in one, k
    assert one["url"] == "http://" + name_of(b1)
    assert one["state"] == "up" and one["source"] == "file"
    assert one["file"] == {"weight": 1, "drain": False} and one["runtime"] == {}
    assert sum(b["requests"] for b in be.values()) == 6
    assert sum(b["responses"]["2xx"] for b in be.values()) == 6
    assert set(one["responses"]) == {"1xx", "2xx", "3xx", "4xx", "5xx"}
    assert a.call("GET", "/api/v1/pools/default/backends/" + name_of(b1)).json()["name"] == name_of(b1)
    # health checks ran: last_check is filled
    wait_until(lambda: a.backend(name_of(b1))["last_check"], what="a health check")
    lc = a.backend(name_of(b1))["last_check"]
    assert lc["ok"] is True and lc["time"] > 0 and lc["detail"]
    # the series: per-second samples appear; the p50 is there after a second of traffic
    def sampled():
        for _ in range(3):
            hit(u.port)
        s = a.call("GET", "/api/v1/series").json()
        b = s["pools"][0]["backends"][0]
        return s if s["points"] >= 2 and any(v for v in b["rps"] if v) else None
    s = wait_until(sampled, what="series samples")
    assert s["step"] == 1 and s["points"] <= 600
    b = s["pools"][0]["backends"][0]
    for k in ("rps", "rate_4xx", "rate_5xx", "p50_ms", "p95_ms", "p99_ms", "inflight"):
        assert len(b[k]) == s["points"], k
    later = a.call("GET", "/api/v1/series?since=%d" % (s["end"] - 1)).json()
    assert later["points"] in (1, 2, 3) and later["end"] >= s["end"]
    assert a.call("GET", "/healthz").json() == {"status": "ok"}
    assert a.call("GET", "/readyz").status_code == 200
    r = a.call("GET", "/")
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert "<html" in r.text


def test_errors_are_json_with_reasons(two):
    u, a, b1, b2 = two
    n1 = name_of(b1)
    cases = [
        ("GET", "/nope", None, None, 404, "no such path"),
        ("GET", "/api/v1/nope", None, None, 404, "no such path"),
        ("GET", "/api/v1/pools/nopool", None, None, 404, "no pool named 'nopool'"),
        ("PATCH", "/api/v1/pools/default/backends/1.2.3.4:5", {"state": "drain"}, None, 404,
         "has no backend"),
        ("PATCH", "/api/v1/pools/default/backends/" + n1, None, b"{\"state\":", 400, "bad JSON"),
        ("PATCH", "/api/v1/pools/default/backends/" + n1, None, b"[1]", 400, "bad JSON"),
        ("PATCH", "/api/v1/pools/default/backends/" + n1, {"colour": "red"}, None, 400,
         "unknown field 'colour'"),
        ("PATCH", "/api/v1/pools/default/backends/" + n1, {}, None, 400, "expected \"state\""),
        ("PATCH", "/api/v1/pools/default/backends/" + n1, {"weight": 0}, None, 422,
         "invalid weight"),
        ("PATCH", "/api/v1/pools/default/backends/" + n1, {"weight": 1001}, None, 422,
         "invalid weight"),
        ("PATCH", "/api/v1/pools/default/backends/" + n1, {"weight": 2.5}, None, 422,
         "invalid weight"),
        ("PATCH", "/api/v1/pools/default/backends/" + n1, {"weight": "5"}, None, 422,
         "invalid weight"),
        ("PATCH", "/api/v1/pools/default/backends/" + n1, {"state": "sleep"}, None, 422,
         "invalid state"),
        ("POST", "/api/v1/pools/default/backends", {"weight": 1}, None, 422, "\"url\" is required"),
        ("POST", "/api/v1/pools/default/backends", {"url": "ftp://x:1"}, None, 422, "invalid url"),
        ("POST", "/api/v1/pools/default/backends", {"url": "http://" + n1}, None, 409,
         "already has backend"),
        ("POST", "/api/v1/pools/nopool/backends", {"url": "http://127.0.0.1:1"}, None, 404,
         "no pool named"),
        ("DELETE", "/api/v1/pools/default/backends/9.9.9.9:9", None, None, 404, "has no backend"),
        ("POST", "/api/v1/status", None, b"", 405, "not allowed"),
        ("DELETE", "/metrics", None, None, 405, "only GET"),
        ("GET", "/api/v1/reload", None, None, 405, "not allowed"),
        ("PUT", "/api/v1/pools/default/backends", None, b"{}", 405, "not allowed"),
    ]
    for method, path, body, raw, status, words in cases:
        r = a.call(method, path, body=body, raw=raw)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        assert r.headers["content-type"] == "application/json"
        assert words in r.json()["error"], (method, path, r.json())
        if status == 405:
            assert r.headers["allow"]
    # removing the last backend of a pool
    assert a.call("DELETE", "/api/v1/pools/default/backends/" + name_of(b2)).status_code == 202
    r = a.call("DELETE", "/api/v1/pools/default/backends/" + n1)
    assert r.status_code == 409 and "last of pool 'default'" in r.json()["error"]
    # a request whose body comes in a second packet is answered once it is whole
    import socket
    with socket.create_connection((HOST, int(a.base.rsplit(":", 1)[1])), timeout=10) as sk:
        body = b'{"weight": 2}'
        sk.sendall(b"PATCH /api/v1/pools/default/backends/%s HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (n1.encode(), len(body)))
        time.sleep(0.2)
        sk.sendall(body)
        got = b""
        while not got.endswith(b"}") or b"\r\n\r\n" not in got:
            chunk = sk.recv(65536)
            if not chunk:
                break
            got += chunk
        assert got.startswith(b"HTTP/1.1 200 ") and b'"weight":2' in got
    # a malformed request line
    with RawHTTPConnection(HOST, int(a.base.rsplit(":", 1)[1]), timeout=10) as c:
        c.sock.sendall(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
        assert b"400 Bad Request" in c.sock.recv(4096)


def test_drain_maint_ready_weight_and_events(two):
    u, a, b1, b2 = two
    n1, n2 = name_of(b1), name_of(b2)
    last = a.events()["last"]
    r = a.call("PATCH", "/api/v1/pools/default/backends/" + n1, {"state": "drain"})
    assert r.status_code == 200
    body = r.json()
    assert body["state"] == "drain" and body["runtime"] == {"state": "drain"}
    assert "drained by the admin API" in body["reason"]
    assert {hit(u.port)[1] for _ in range(6)} == {"a2"}
    r = a.call("PATCH", "/api/v1/pools/default/backends/" + n1, {"state": "maint"})
    assert r.json()["state"] == "maint"
    assert {hit(u.port)[1] for _ in range(6)} == {"a2"}
    r = a.call("PATCH", "/api/v1/pools/default/backends/" + n1, {"state": "ready"})
    assert r.json()["state"] == "up"
    assert {hit(u.port)[1] for _ in range(6)} == {"a1", "a2"}
    r = a.call("PATCH", "/api/v1/pools/default/backends/" + n2, {"weight": 4})
    assert r.status_code == 200
    assert r.json()["weight"] == 4 and r.json()["runtime"] == {"weight": 4}
    assert r.json()["file"] == {"weight": 1, "drain": False}
    seen = [hit(u.port)[1] for _ in range(50)]
    assert seen.count("a2") == 40 and seen.count("a1") == 10
    ev = a.events(last)
    kinds = [e["kind"] for e in ev["events"]]
    assert kinds == ["drain", "maint", "ready", "weight"]
    assert all(e["pool"] == "default" and e["seq"] > last for e in ev["events"])
    assert ev["last"] == ev["events"][-1]["seq"]
    assert "weight 1 -> 4" in ev["events"][-1]["message"]
    assert "from 127.0.0.1" in ev["events"][0]["message"]
    log = u.proc.read_log()
    assert "admin: 127.0.0.1:" in log and "drains: no new requests" in log


def test_readyz_when_a_pool_has_no_usable_backend(start_usher):
    port = free_port()
    u = start_usher([free_port()], "--admin", "%s:%d" % (HOST, port), "--health-interval",
                    "100ms", "--health-fall", "1")
    a = Admin(port)
    wait_until(lambda: a.call("GET", "/readyz").status_code == 503, what="readyz 503")
    r = a.call("GET", "/readyz")
    assert r.json() == {"ready": False, "unready_pools": ["default"]}
    assert a.call("GET", "/healthz").status_code == 200
    ev = a.events()["events"]
    assert any(e["kind"] == "down" and "connection refused" in e["message"].lower() for e in ev)


FILE = """
admin: { bind: "%(admin)s"%(token)s }
listeners:
  - { bind: "<L0>", pool: web }
pools:
  web:
    balance: weighted-round-robin
    health: { interval: 200ms }
    backends:
      - { url: "http://%(b1)s", name: one }
      - { url: "http://%(b2)s"%(w2)s }
"""


def file_text(admin, b1, b2, token="", w2=""):
    return FILE % {"admin": admin, "token": ', token: "%s"' % token if token else "",
                   "b1": name_of(b1), "b2": name_of(b2), "w2": w2}


def test_token_rules(start_backend, start_usher_file):
    b1, b2 = start_backend("t1"), start_backend("t2")
    port = free_port()
    start_usher_file(file_text("%s:%d" % (HOST, port), b1, b2, token="s3cret"))
    a = Admin(port)
    path = "/api/v1/pools/web/backends/one"
    r = a.call("PATCH", path, {"state": "drain"})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert "Bearer" in r.json()["error"]
    r = a.call("PATCH", path, {"state": "drain"}, token="wrong")
    assert r.status_code == 403 and r.json()["error"] == "wrong token"
    r = a.call("PATCH", path, {"state": "drain"}, token="s3cre")  # a prefix is not the token
    assert r.status_code == 403
    r = a.call("PATCH", path, {"state": "drain"}, headers={"Authorization": "Basic eA=="})
    assert r.status_code == 401
    assert a.backend("one", "web")["state"] == "up"
    for m, p in (("POST", "/api/v1/reload"), ("DELETE", path),
                 ("POST", "/api/v1/pools/web/backends")):
        assert a.call(m, p, raw=b"{}").status_code == 401, (m, p)
    assert a.call("PATCH", path, {"state": "drain"}, token="s3cret").status_code == 200
    assert a.backend("one", "web")["state"] == "drain"
    # reads need no token
    assert a.call("GET", "/metrics").status_code == 200
    assert a.call("GET", "/api/v1/pools").status_code == 200


def test_loopback_rule(usher_bin, tmp_path, start_backend):
    b = start_backend("l1")
    f = tmp_path / "u.yaml"
    text = file_text("0.0.0.0:%d" % free_port(), b, b).replace(
        '      - { url: "http://%s" }\n' % name_of(b), "").replace("<L0>", "127.0.0.1:%d" % free_port())
    f.write_text(text)
    r = subprocess.run([usher_bin, "-t", "-c", str(f)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    line = text.split("\n").index([l for l in text.split("\n") if l.startswith("admin:")][0]) + 1
    assert "%s:%d:" % (f, line) in r.stderr
    assert "not a loopback address" in r.stderr and "token" in r.stderr
    f.write_text(file_text("0.0.0.0:%d" % free_port(), b, b, token="x").replace(
        '      - { url: "http://%s" }\n' % name_of(b), "").replace("<L0>", "127.0.0.1:%d" % free_port()))
    r = subprocess.run([usher_bin, "-t", "-c", str(f)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([usher_bin, "-t", "--backend", "http://127.0.0.1:1", "--admin",
                        "0.0.0.0:9"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "not a loopback address" in r.stderr
    env = {"USHER_ADMIN_TOKEN": "fromenv", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([usher_bin, "-t", "--backend", "http://127.0.0.1:1", "--admin",
                        "0.0.0.0:9"], capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 0, r.stderr


def test_runtime_state_and_api_backends_survive_a_reload(start_backend, start_usher_file):
    b1, b2, b3 = start_backend("r1"), start_backend("r2"), start_backend("r3")
    port = free_port()
    text = file_text("%s:%d" % (HOST, port), b1, b2)
    u = start_usher_file(text)
    a = Admin(port)
    assert a.call("PATCH", "/api/v1/pools/web/backends/one", {"state": "drain"}).status_code == 200
    assert a.call("PATCH", "/api/v1/pools/web/backends/" + name_of(b2),
                  {"weight": 3}).status_code == 200
    r = a.call("POST", "/api/v1/pools/web/backends", {"url": "http://" + name_of(b3),
                                                      "weight": 2, "name": "three"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "three" and r.json()["source"] == "api" and r.json()["file"] is None
    assert {hit(u.ports[0])[1] for _ in range(10)} == {"r2", "r3"}
    # the file changes the weight of b2: the runtime weight still wins
    u.reload(file_text("%s:%d" % (HOST, port), b1, b2, w2=", weight: 7"))
    pool = {b["name"]: b for b in a.pool("web")["backends"]}
    assert set(pool) == {"one", name_of(b2), "three"}
    assert pool["one"]["state"] == "drain" and pool["one"]["runtime"] == {"state": "drain"}
    assert pool[name_of(b2)]["weight"] == 3
    assert pool[name_of(b2)]["file"] == {"weight": 7, "drain": False}
    assert pool["three"]["source"] == "api" and pool["three"]["weight"] == 2
    seen = [hit(u.ports[0])[1] for _ in range(50)]
    assert seen.count("r2") == 30 and seen.count("r3") == 20
    # POST /api/v1/reload is the same as SIGHUP
    r = a.call("POST", "/api/v1/reload")
    assert r.status_code == 200 and r.json()["result"] == "ok"
    assert {b["name"] for b in a.pool("web")["backends"]} == {"one", name_of(b2), "three"}
    st = a.call("GET", "/api/v1/status").json()
    assert st["last_reload"]["result"] == "ok" and st["config_file"] == u.path
    # a broken file: the reload fails, with the reason, and nothing changes
    u.write("pools: [ broken")
    r = a.call("POST", "/api/v1/reload")
    assert r.status_code == 422 and "reload failed" in r.json()["error"]
    assert a.call("GET", "/api/v1/status").json()["last_reload"]["result"] == "failed"
    assert len(a.pool("web")["backends"]) == 3
    kinds = [e["kind"] for e in a.events()["events"]]
    assert kinds.count("reload") == 3 and "add" in kinds


def test_delete_drains_then_removes(start_backend, start_usher):
    b1, b2 = start_backend("d1"), start_backend("d2")
    port = free_port()
    u = start_usher([b1, b2], "--admin", "%s:%d" % (HOST, port), "--health-interval", "off")
    a = Admin(port)
    n1, n2 = name_of(b1), name_of(b2)
    # the slow request goes to b2: b1 drains meanwhile
    a.call("PATCH", "/api/v1/pools/default/backends/" + n1, {"state": "drain"})
    result = {}

    def slow():
        result["r"] = hit(u.port, "/slow?ms=1500")

    t = threading.Thread(target=slow)
    t.start()
    wait_until(lambda: a.backend(n2)["inflight"] == 1, what="the slow request in flight")
    a.call("PATCH", "/api/v1/pools/default/backends/" + n1, {"state": "ready"})
    r = a.call("DELETE", "/api/v1/pools/default/backends/" + n2)
    assert r.status_code == 202
    assert r.json()["state"] == "drain" and r.json()["runtime"].get("removing") is True
    # while it drains, new requests go to b1 only; it is still listed
    assert {hit(u.port)[1] for _ in range(4)} == {"d1"}
    assert n2 in [b["name"] for b in a.pool()["backends"]]
    t.join(10)
    assert result["r"] == (200, "d2")
    wait_until(lambda: [b["name"] for b in a.pool()["backends"]] == [n1], what="the removal")
    kinds = [e["kind"] for e in a.events()["events"]]
    assert kinds[-2:] == ["drain", "remove"]
    # it can be added again (a file backend: its counters go on)
    r = a.call("POST", "/api/v1/pools/default/backends", {"url": "http://" + n2})
    assert r.status_code == 201 and r.json()["requests"] >= 1
    assert r.json()["source"] == "api"
    # names are path segments: %-escapes are decoded
    r = a.call("PATCH", "/api/v1/pools/default/backends/" + n2.replace(":", "%3A"), {"weight": 2})
    assert r.status_code == 200 and r.json()["weight"] == 2
    r = a.call("POST", "/api/v1/pools/default/backends", {"url": "http://127.0.0.1:1", "name": "b 3/x"})
    assert r.status_code == 201 and r.json()["name"] == "b 3/x"
    assert a.call("GET", "/api/v1/pools/default/backends/b%203%2Fx").json()["name"] == "b 3/x"
    assert a.call("GET", "/api/v1/pools/default/backends/b%2").status_code == 404
    # a backend being removed cannot be changed meanwhile
    a.call("PATCH", "/api/v1/pools/default/backends/" + n1, {"state": "drain"})
    slow2 = {}
    t2 = threading.Thread(target=lambda: slow2.update(r=hit(u.port, "/slow?ms=1000")))
    t2.start()
    wait_until(lambda: a.backend(n2)["inflight"] == 1, what="a request in flight on the re-added backend")
    assert a.call("DELETE", "/api/v1/pools/default/backends/" + n2).status_code == 202
    r = a.call("PATCH", "/api/v1/pools/default/backends/" + n2, {"state": "ready"})
    assert r.status_code == 409 and "being removed" in r.json()["error"]
    t2.join(10)
    assert slow2["r"] == (200, "d2")


SERIES_FILE = """
admin: { bind: "%(admin)s" }
listeners:
  - { bind: "<L0>", pool: web }
pools:
  web:
    balance: weighted-round-robin
    health: { type: off }
    backends:
      - { url: "http://%(b2)s", name: "light:1" }
      - { url: "http://%(b1)s", name: "heavy", weight: 3 }
  many:
    health: { type: off }
    backends:
%(many)s
"""
METRICS = ("rps", "rate_4xx", "rate_5xx", "p50_ms", "p95_ms", "p99_ms", "inflight")


def test_series_totals_top_pool_backend_and_errors(start_backend, start_usher_file):
    b1, b2 = start_backend("s1"), start_backend("s2")
    port = free_port()
    # 13 backends that get no traffic (closed ports, checks off): more than the 10 charted
    many = "\n".join("      - http://127.0.0.%d:%d" % (2 + i % 3, 1 + i) for i in range(13))
    u = start_usher_file(SERIES_FILE % {"admin": "%s:%d" % (HOST, port), "b1": name_of(b1),
                                        "b2": name_of(b2), "many": many})
    a = Admin(port)
    port_u = u.ports[0]

    # traffic for a few seconds: heavy gets 3 of 4 requests
    def busy():
        for _ in range(8):
            hit(port_u)
        s = a.call("GET", "/api/v1/series?pool=web&top=all").json()
        web = s["pools"][0]
        rates = {b["name"]: sum(v for v in b["rps"] if v) for b in web["backends"]}
        return s if rates["heavy"] > 0 and rates["light:1"] > 0 and web["total"]["rps"].count(None) < 598 else None
    wait_until(busy, timeout=60, what="samples of both web backends")
    time.sleep(2.5)

    # the default: every pool's total and at most 10 backends with arrays; all with "last"
    s = a.call("GET", "/api/v1/series").json()
    assert s["top"] == 10 and s["step"] == 1
    pools = {p["name"]: p for p in s["pools"]}
    assert set(pools) == {"web", "many"}
    m = pools["many"]
    assert m["backends_total"] == 13 and m["backends_charted"] == 10
    assert len(m["backends"]) == 13
    assert sum(1 for b in m["backends"] if "rps" in b) == 10
    for b in m["backends"]:
        assert set(b["last"]) == set(METRICS), b
    for k in METRICS:
        assert len(m["total"][k]) == s["points"], k
        assert len(pools["web"]["total"][k]) == s["points"], k
    # idle backends: no requests, none in flight
    assert all(v in (None, 0) for v in m["total"]["rps"])

    # the pool's total is the sum of its backends, second by second
    s = a.call("GET", "/api/v1/series?pool=web&top=all").json()
    assert [p["name"] for p in s["pools"]] == ["web"]
    web = s["pools"][0]
    by = {b["name"]: b for b in web["backends"]}
    summed = 0
    for i, t in enumerate(web["total"]["rps"]):
        parts = [by[n]["rps"][i] for n in by if by[n]["rps"][i] is not None]
        if t is None:
            assert not parts, i
            continue
        assert abs(t - sum(parts)) < 0.01, (i, t, parts)
        summed += t > 0
    assert summed >= 2
    assert web["total"]["last"]["rps"] == web["total"]["rps"][-1]

    # top=1: the busier backend (by requests over the ring) keeps its arrays,
    # though the file names it second
    s = a.call("GET", "/api/v1/series?pool=web&top=1").json()
    web = s["pools"][0]
    assert web["backends_charted"] == 1 and s["top"] == 1
    assert [b["name"] for b in web["backends"] if "rps" in b] == ["heavy"]
    assert [b["name"] for b in web["backends"]] == ["light:1", "heavy"]
    # top=0: the totals only
    s = a.call("GET", "/api/v1/series?top=0").json()
    assert all("rps" not in b for p in s["pools"] for b in p["backends"])
    assert all(p["backends_charted"] == 0 and len(p["total"]["rps"]) == s["points"] for p in s["pools"])

    # one backend, its name %-encoded (':' as %3A), with since=
    full = a.call("GET", "/api/v1/series?pool=web&backend=light%3A1").json()
    assert [b["name"] for b in full["pools"][0]["backends"]] == ["light:1"]
    assert len(full["pools"][0]["backends"][0]["rps"]) == full["points"] == 600
    later = a.call("GET", "/api/v1/series?pool=web&backend=light:1&since=%d" % (full["end"] - 2)).json()
    assert later["points"] in (2, 3, 4) and len(later["pools"][0]["backends"][0]["p99_ms"]) == later["points"]
    assert len(later["pools"][0]["total"]["rps"]) == later["points"]

    # bad parameters: 400, unknown names: 404, each a JSON error saying what
    for q, want in (("top=x", "top must be"), ("top=-1", "top must be"), ("top=", "top must be"),
                    ("top=100001", "top must be"), ("since=abc", "since must be"),
                    ("since=-5", "since must be"), ("since", "no value"),
                    ("color=red", "unknown parameter 'color'"), ("top=1&top=2", "given twice"),
                    ("backend=heavy", "needs pool="), ("pool=%zz", "%-escape"),
                    ("pool=", "empty"), ("pool=" + "p" * 70, "longer than a name")):
        # sent as written (httpx would escape the '%')
        with RawHTTPConnection(HOST, port, timeout=10) as c:
            r = c.roundtrip("GET", "/api/v1/series?" + q, [("Connection", "close")])
        assert r.status == 400, (q, r)
        assert r.header("Content-Type") == "application/json" and want in r.json()["error"], (q, r.json())
    for q, want in (("pool=nope", "no pool named 'nope'"),
                    ("pool=web&backend=nope", "pool 'web' has no backend 'nope'")):
        r = a.call("GET", "/api/v1/series?" + q)
        assert r.status_code == 404 and want in r.json()["error"], (q, r.text)
    assert a.call("POST", "/api/v1/series", raw=b"{}").status_code == 405
