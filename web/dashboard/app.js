// usher's live dashboard: reads /api/v1 once a second and draws what it reads.
// No framework; Chart.js (the global `Chart`) draws the charts. Every string
// that comes from the API goes into the page as text (textContent), never as
// HTML. The admin token, when one is needed, is kept in sessionStorage.
"use strict";

(function () {
  const API = "/api/v1";
  const WINDOW_S = 600; // the charts show the last 10 minutes
  const REFRESH_MS = 1000;
  const MAX_EVENTS = 200;
  const TOKEN_KEY = "usher-admin-token";
  const STATES = ["up", "down", "drain", "maint"];
  const METRICS = ["rps", "rate_4xx", "rate_5xx", "p50_ms", "p95_ms", "p99_ms", "inflight"];
  // Distinct colours, each dark enough to read as a thin line on white.
  const PALETTE = ["#0550ae", "#bc4c00", "#116329", "#8250df", "#a40e26", "#1b7c83",
    "#6e5600", "#bf3989", "#24292f", "#953800"];

  const CHART_WORDS = {
    rps: "Requests per second", errors: "4xx and 5xx answers per second",
    latency: "Latency in milliseconds", inflight: "Requests in flight",
  };

  const $ = (id) => document.getElementById(id);

  // -- what the page knows -------------------------------------------------------------
  const model = {
    pools: [], // the last /pools answer
    status: null,
    // pools: pool -> backend -> metric -> [{x,y}] (the charted backends only);
    // totals: pool -> metric -> [{x,y}]; last: "pool\0backend" -> newest values;
    // charted: pool -> {total, charted} backends
    series: { end: null, pools: new Map(), totals: new Map(), last: new Map(), charted: new Map() },
    events: [],
    eventsLast: null,
    lastOk: null, // Date.now() of the last complete refresh
    failing: null, // the error of the last refresh, if it failed
    ticks: 0,
  };
  const views = new Map(); // pool name -> {section, tbody, rows: Map, charts: {}}
  const colours = new Map(); // "pool/backend" -> colour
  let pendingChange = null; // the change waiting for a token

  // -- small helpers -------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (k === "class") e.className = v;
        else if (k === "text") e.textContent = v;
        else e.setAttribute(k, v);
      }
    }
    for (const c of children) e.append(c);
    return e;
  }

  // A path segment: ':' and '@' may stay as they are (RFC 3986 3.3 pchar), so a
  // HOST:PORT name reads as itself; the rest is percent-encoded.
  function segment(s) {
    return encodeURIComponent(s).replace(/%3A/gi, ":").replace(/%40/g, "@");
  }

  function pad2(n) { return String(n).padStart(2, "0"); }

  function clock(unix) {
    const d = new Date(unix * 1000);
    return pad2(d.getHours()) + ":" + pad2(d.getMinutes()) + ":" + pad2(d.getSeconds());
  }

  function duration(s) {
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
  }

  function num(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return "\u2013";
    if (digits === undefined) digits = Math.abs(v) < 10 && v !== Math.round(v) ? 1 : 0;
    return Number(v).toFixed(digits);
  }

  function colourOf(pool, backend) {
    const key = pool + "/" + backend;
    if (!colours.has(key)) colours.set(key, PALETTE[colours.size % PALETTE.length]);
    return colours.get(key);
  }

  function stateWord(s) { return STATES.includes(s) ? s.toUpperCase() : String(s || "?").toUpperCase(); }

  function apiError(method, path, status, body) {
    let why = "";
    if (body && typeof body === "object" && typeof body.error === "string") why = body.error;
    const e = new Error(method + " " + path + " failed: HTTP " + status + (why ? ": " + why : ""));
    e.status = status;
    e.why = why;
    return e;
  }

  async function readBody(r) {
    const text = await r.text();
    if (!text) return null;
    try { return JSON.parse(text); } catch (_) { return { error: text.slice(0, 200) }; }
  }

  async function getJSON(path) {
    let r;
    try {
      r = await fetch(API + path, { cache: "no-store", headers: { Accept: "application/json" } });
    } catch (e) {
      throw new Error("usher's admin API is not reachable (" + e.message + ")");
    }
    const body = await readBody(r);
    if (!r.ok) throw apiError("GET", API + path, r.status, body);
    if (body === null || typeof body !== "object") throw new Error("GET " + API + path + ": the answer is not JSON");
    return body;
  }

  // -- messages to the operator --------------------------------------------------------
  let noticeTimer = null;
  function showError(text) {
    const box = $("error");
    box.textContent = text;
    box.hidden = false;
    box.classList.add("error");
    box.classList.remove("notice");
    clearTimeout(noticeTimer);
  }

  function showNotice(text) {
    const box = $("error");
    box.textContent = text;
    box.hidden = false;
    box.classList.remove("error");
    box.classList.add("notice");
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { box.hidden = true; }, 6000);
  }

  // -- loading -------------------------------------------------------------------------
  async function loadPools() {
    const body = await getJSON("/pools");
    if (!Array.isArray(body.pools)) throw new Error("GET /api/v1/pools: no \"pools\" list in the answer");
    model.pools = body.pools;
  }

  async function loadStatus() {
    model.status = await getJSON("/status");
  }

  async function loadEvents() {
    const q = model.eventsLast === null ? "" : "?since=" + encodeURIComponent(model.eventsLast);
    const body = await getJSON("/events" + q);
    const list = Array.isArray(body.events) ? body.events : [];
    if (q === "") model.events = list.slice();
    else for (const ev of list) if (ev.seq > model.eventsLast) model.events.push(ev);
    model.events.sort((a, b) => a.seq - b.seq);
    if (model.events.length > MAX_EVENTS) model.events.splice(0, model.events.length - MAX_EVENTS);
    if (typeof body.last === "number") model.eventsLast = body.last;
    else if (list.length) model.eventsLast = list[list.length - 1].seq;
  }

  // The series of every pool's total and of its TOP busiest backends (by
  // traffic over the last 10 minutes); the others' newest values only, for
  // the table: a poll stays small with 1,000 backends (docs/API.md).
  const TOP = 10;

  function emptyMetrics() {
    const m = {};
    for (const k of METRICS) m[k] = [];
    return m;
  }

  // Appends the points of answer object b (arrays ending at end) to m.
  function mergeArrays(m, b, end, step) {
    for (const k of METRICS) {
      const vals = Array.isArray(b[k]) ? b[k] : [];
      const n = vals.length;
      const arr = m[k];
      for (let i = 0; i < n; i++) {
        const x = end - (n - 1 - i) * step;
        if (arr.length && arr[arr.length - 1].x >= x) continue; // already have it
        arr.push({ x: x, y: vals[i] === null ? null : Number(vals[i]) });
      }
    }
  }

  function trim(m, oldest) {
    for (const k of METRICS) {
      const arr = m[k];
      let cut = 0;
      while (cut < arr.length && arr[cut].x <= oldest) cut++;
      if (cut) arr.splice(0, cut);
    }
  }

  function checkSeries(body) {
    if (typeof body.end !== "number" || !Array.isArray(body.pools)) {
      throw new Error("GET /api/v1/series: no \"end\" or \"pools\" in the answer");
    }
  }

  // A backend that just became one of the charted: its last 10 minutes, once.
  async function loadHistory(poolName, backendName) {
    const body = await getJSON("/series?pool=" + encodeURIComponent(poolName) +
      "&backend=" + encodeURIComponent(backendName));
    checkSeries(body);
    const p = body.pools.find((x) => x.name === poolName);
    const b = p && (p.backends || []).find((x) => x.name === backendName);
    const bmap = model.series.pools.get(poolName);
    if (!b || !bmap || !bmap.has(backendName)) return; // gone meanwhile
    const m = emptyMetrics();
    mergeArrays(m, b, body.end, body.step || 1);
    // and what the polls since brought
    const had = bmap.get(backendName);
    for (const k of METRICS) for (const pt of had[k]) if (!m[k].length || pt.x > m[k][m[k].length - 1].x) m[k].push(pt);
    bmap.set(backendName, m);
  }

  async function loadSeries() {
    const s = model.series;
    const full = s.end === null;
    const body = await getJSON("/series?top=" + TOP + (full ? "" : "&since=" + s.end));
    const step = body.step || 1;
    const end = body.end;
    checkSeries(body);
    if (!full && end < s.end) {
      // usher restarted (its clock of samples went back): start over
      s.end = null;
      s.pools.clear();
      s.totals.clear();
      s.last.clear();
      return loadSeries();
    }
    const newcomers = [];
    for (const p of body.pools) {
      if (!s.pools.has(p.name)) s.pools.set(p.name, new Map());
      if (!s.totals.has(p.name)) s.totals.set(p.name, emptyMetrics());
      if (p.total && typeof p.total === "object") mergeArrays(s.totals.get(p.name), p.total, end, step);
      s.charted.set(p.name, { total: p.backends_total, charted: p.backends_charted });
      const bmap = s.pools.get(p.name);
      const charted = new Set();
      for (const b of p.backends || []) {
        if (b.last && typeof b.last === "object") s.last.set(p.name + "\u0000" + b.name, b.last);
        if (!Array.isArray(b.rps)) continue; // not one of the charted
        charted.add(b.name);
        if (!bmap.has(b.name)) {
          bmap.set(b.name, emptyMetrics());
          if (!full) newcomers.push([p.name, b.name]);
        }
        mergeArrays(bmap.get(b.name), b, end, step);
      }
      // a backend no longer among the charted leaves the charts
      for (const name of [...bmap.keys()]) if (!charted.has(name)) bmap.delete(name);
    }
    if (full || end > s.end) s.end = end;
    const oldest = s.end - WINDOW_S;
    for (const bmap of s.pools.values()) for (const m of bmap.values()) trim(m, oldest);
    for (const m of s.totals.values()) trim(m, oldest);
    await Promise.all(newcomers.map(([pn, bn]) => loadHistory(pn, bn)));
  }

  // The newest sample of a backend (usher sends it for every backend, charted or not).
  function latest(poolName, backendName, metric) {
    const last = model.series.last.get(poolName + "\u0000" + backendName);
    const v = last ? last[metric] : null;
    return v === null || v === undefined ? null : Number(v);
  }

  // -- drawing: the summary ------------------------------------------------------------
  function renderSummary() {
    const problems = [];
    let total = 0;
    const counts = { up: 0, down: 0, drain: 0, maint: 0 };
    const now = Date.now() / 1000;
    const emptyPools = [];
    for (const p of model.pools) {
      let usable = 0;
      for (const b of p.backends || []) {
        total++;
        counts[b.state] = (counts[b.state] || 0) + 1;
        if (b.state === "up") usable++;
        else problems.push({ pool: p.name, b: b });
      }
      if (usable === 0) emptyPools.push(p.name);
    }
    // down first: those are the incident
    problems.sort((a, b) => (a.b.state === "down" ? 0 : 1) - (b.b.state === "down" ? 0 : 1));
    const box = $("summary");
    const text = $("summary-text");
    const list = $("problems");
    list.replaceChildren();
    if (total === 0) {
      text.textContent = "No backends configured.";
      box.className = "summary bad";
    } else if (problems.length === 0) {
      text.textContent = "All " + total + " backend" + (total === 1 ? " is" : "s are") + " up.";
      box.className = "summary ok";
    } else {
      const parts = [];
      if (counts.down) parts.push(counts.down + " of " + total + " DOWN");
      if (counts.drain) parts.push(counts.drain + " draining");
      if (counts.maint) parts.push(counts.maint + " in maintenance");
      text.textContent = "Backends: " + parts.join(", ") + ".";
      box.className = counts.down ? "summary bad" : "summary";
      for (const pr of problems) {
        const b = pr.b;
        const li = el("li", null,
          el("span", { class: "state state-" + b.state, text: stateWord(b.state) }), " ",
          el("strong", { text: b.name }), " in pool " + pr.pool,
          typeof b.since === "number" ? " for " + duration(now - b.since) + " (since " + clock(b.since) + ")" : "",
          b.reason ? ": " + b.reason : "");
        list.append(li);
      }
    }
    for (const name of emptyPools) {
      list.append(el("li", { class: "empty-pool" },
        el("strong", { text: "Pool " + name }), " has no backend up: its requests get 503."));
    }
    document.title = (counts.down ? "(" + counts.down + " down) " : "") + "usher dashboard";
  }

  function renderStatus() {
    const st = model.status;
    const line = $("status-line");
    if (!st) return;
    const parts = [];
    if (st.version) parts.push("version " + st.version);
    const up = st.uptime_seconds !== undefined ? st.uptime_seconds : st.uptime;
    if (typeof up === "number") parts.push("up " + duration(up));
    const file = st.config_file !== undefined ? st.config_file : st.config;
    parts.push(file ? "config " + file : "quick mode (no config file)");
    const rl = st.last_reload;
    const warn = $("reload-warning");
    if (rl && typeof rl === "object" && typeof rl.time === "number") {
      parts.push("last reload " + clock(rl.time) + " " + (rl.result || ""));
      // a failed reload: usher runs the previous configuration, not the file
      if (rl.result === "failed") {
        warn.textContent = "The last reload (" + clock(rl.time) + ") failed, so usher still runs the " +
          "previous configuration" + (rl.message ? ": " + rl.message : ".");
        warn.hidden = false;
      } else {
        warn.hidden = true;
      }
    } else {
      parts.push("no reload yet");
      warn.hidden = true;
    }
    line.textContent = parts.join(" \u00b7 ");
  }

  // Tells screen readers what changed since the last refresh, not the whole
  // page every second.
  let wasDown = null;
  let wasFailing = false;
  function announce() {
    const parts = [];
    const down = new Map();
    for (const p of model.pools) {
      for (const b of p.backends || []) if (b.state === "down") down.set(p.name + "/" + b.name, b);
    }
    if (wasDown !== null) {
      for (const [k, b] of down) if (!wasDown.has(k)) parts.push(b.name + " is DOWN" + (b.reason ? ": " + b.reason : ""));
      for (const k of wasDown.keys()) if (!down.has(k)) parts.push(k.split("/").slice(1).join("/") + " is no longer down");
    }
    if (model.failing && !wasFailing) parts.push("The dashboard is not updating: " + model.failing);
    if (!model.failing && wasFailing) parts.push("The dashboard is updating again");
    if (!model.failing) wasDown = down;
    wasFailing = !!model.failing;
    if (parts.length) $("announce").textContent = parts.join(". ") + ".";
  }

  function renderLive() {
    announce();
    const live = $("live");
    if (model.failing) {
      live.textContent = model.lastOk
        ? "Not updating since " + clock(model.lastOk / 1000) + ": " + model.failing
        : "Cannot read usher: " + model.failing;
      live.classList.add("stale");
    } else {
      live.textContent = "Live, updated " + clock(Date.now() / 1000);
      live.classList.remove("stale");
    }
  }

  // -- drawing: a pool ---------------------------------------------------------------------
  function chartOptions(kind) {
    const isLatency = kind === "latency";
    const stacked = kind === "rps"; // the total and each backend's share
    return {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      parsing: false,
      normalized: true,
      spanGaps: false,
      elements: { point: { radius: 0, hitRadius: 6 }, line: { borderWidth: 2, tension: 0 } },
      interaction: { mode: "nearest", axis: "x", intersect: false },
      plugins: {
        legend: { position: "bottom", labels: { boxWidth: 10, color: "#1b1f24", font: { size: 11 } } },
        tooltip: {
          callbacks: {
            title: (items) => (items.length ? clock(items[0].parsed.x) : ""),
            label: (item) => item.dataset.label + ": " + num(item.parsed.y, isLatency ? 1 : undefined),
          },
        },
      },
      scales: {
        x: {
          type: "linear",
          ticks: {
            maxTicksLimit: 6,
            color: "#545b64",
            // HH:MM over more than 5 minutes, HH:MM:SS over less
            callback: function (v) { return this.max - this.min > 300 ? clock(v).slice(0, 5) : clock(v); },
          },
          grid: { color: "#e6e9ed" },
        },
        y: {
          stacked: stacked,
          beginAtZero: true,
          ticks: { color: "#545b64", maxTicksLimit: 5 },
          grid: { color: "#e6e9ed" },
        },
      },
    };
  }

  function makePoolView(pool) {
    const tpl = $("pool-template").content.cloneNode(true);
    const section = tpl.querySelector("section");
    section.dataset.pool = pool.name;
    section.setAttribute("aria-label", "Pool " + pool.name);
    section.querySelector(".pool-name").textContent = "Pool " + pool.name;
    section.querySelector("caption").textContent = "Backends of pool " + pool.name;
    const view = { section: section, tbody: section.querySelector("tbody"), rows: new Map(), charts: {} };
    $("pools").append(section);
    for (const canvas of section.querySelectorAll("canvas")) {
      const kind = canvas.dataset.chart;
      canvas.setAttribute("aria-label", CHART_WORDS[kind] + " of pool " + pool.name + ", last 10 minutes");
      view.charts[kind] = new Chart(canvas, { type: "line", data: { datasets: [] }, options: chartOptions(kind) });
    }
    return view;
  }

  function cell(label, cls) {
    const td = el("td", { "data-label": label });
    if (cls) td.className = cls;
    return td;
  }

  function makeRow(poolName, b) {
    const tr = el("tr");
    tr.dataset.backend = b.name;
    const c = {
      name: cell("Backend"), state: cell("State"), why: cell("Since / why", "why"),
      rps: cell("Req/s", "num"), r4: cell("4xx/s", "num"), r5: cell("5xx/s", "num"),
      lat: cell("p50/95/99 ms", "num"), inflight: cell("In flight", "num"),
      weight: cell("Weight", "num"), actions: cell("Actions"),
    };
    c.name.append(el("div", null, el("div", { class: "backend-name" }), el("div", { class: "backend-url" })));
    c.state.append(el("span", { class: "state" }));
    const acts = el("div", { class: "actions" });
    const label = b.name + " in pool " + poolName;
    for (const [act, word] of [["drain", "Drain"], ["ready", "Ready"], ["maint", "Maint"]]) {
      const btn = el("button", { type: "button", "data-action": act, "aria-label": word + " " + label, text: word });
      btn.addEventListener("click", () => {
        change(poolName, b.name, { state: act }, "set " + b.name + " to " + act);
      });
      acts.append(btn);
    }
    const wid = "w-" + Math.random().toString(36).slice(2);
    const input = el("input", { id: wid, type: "number", min: "0", step: "1", inputmode: "numeric", name: "weight" });
    const form = el("form", { class: "weight-form" },
      el("label", { for: wid, class: "visually-hidden", text: "New weight for " + label }),
      input, el("button", { type: "submit", text: "Set weight", "aria-label": "Set weight of " + label }));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const v = input.value.trim();
      if (!/^\d+$/.test(v)) {
        showError("The weight of " + b.name + " must be a whole number, not \u201c" + v + "\u201d.");
        return;
      }
      change(poolName, b.name, { weight: Number(v) }, "set the weight of " + b.name + " to " + v)
        .then((ok) => { if (ok) input.value = ""; });
    });
    acts.append(form);
    c.actions.append(acts);
    for (const k of Object.keys(c)) tr.append(c[k]);
    return { tr: tr, c: c, input: input, buttons: acts.querySelectorAll("button[data-action]") };
  }

  // Writes only what changed: with 1,000 rows, writing every cell every second
  // (the same text again) made a refresh take longer than a second.
  function setText(e, v) { if (e.textContent !== v) e.textContent = v; }
  function setAttr(e, k, v) { if (e[k] !== v) e[k] = v; }

  function updateRow(row, poolName, b) {
    const c = row.c;
    const now = Date.now() / 1000;
    if (row.tr.dataset.state !== b.state) row.tr.dataset.state = b.state;
    setAttr(row.tr, "className", b.state === "down" ? "is-down" : "");
    if (!row.nameEl) {
      row.nameEl = c.name.querySelector(".backend-name");
      row.urlEl = c.name.querySelector(".backend-url");
    }
    setText(row.nameEl, b.name);
    setText(
      row.urlEl,
      (b.url || "") +
        (b.source === "api" ? " (added by API)" : "") +
        (b.source === "dns"
          ? " (from DNS" + (b.priority !== undefined ? ", priority " + b.priority + (b.standby ? ", standby" : "") : "") + ")"
          : "")
    );
    const badge = c.state.firstChild;
    setAttr(badge, "className", "state state-" + b.state);
    setText(badge, stateWord(b.state));
    let why = "";
    if (typeof b.since === "number" && b.since > 0) why = duration(now - b.since) + " (since " + clock(b.since) + ")";
    if (b.reason) why += (why ? ": " : "") + b.reason;
    setText(c.why, why || "\u2013");
    setText(c.rps, num(latest(poolName, b.name, "rps"), 1));
    setText(c.r4, num(latest(poolName, b.name, "rate_4xx"), 1));
    setText(c.r5, num(latest(poolName, b.name, "rate_5xx"), 1));
    const p50 = latest(poolName, b.name, "p50_ms");
    const p95 = latest(poolName, b.name, "p95_ms");
    const p99 = latest(poolName, b.name, "p99_ms");
    // the last second's, as the rates are (a backend without traffic has none)
    setText(c.lat, num(p50, 1) + " / " + num(p95, 1) + " / " + num(p99, 1));
    setText(c.inflight, num(b.inflight, 0));
    setText(c.weight, num(b.weight, 0));
    setAttr(row.input, "placeholder", String(b.weight !== undefined ? b.weight : ""));
    for (const btn of row.buttons) {
      if (btn.dataset.busy) continue;
      const a = btn.dataset.action;
      setAttr(btn, "disabled", (a === "drain" && b.state === "drain") || (a === "maint" && b.state === "maint") ||
        (a === "ready" && b.state === "up"));
    }
  }

  // total - the sum of the charted backends, second by second: what the
  // backends that are not charted did.
  function othersOf(total, charted) {
    const sum = new Map();
    for (const arr of charted) for (const p of arr) if (p.y !== null) sum.set(p.x, (sum.get(p.x) || 0) + p.y);
    return total.map((p) => ({ x: p.x, y: p.y === null ? null : Math.max(0, p.y - (sum.get(p.x) || 0)) }));
  }

  function datasetsFor(pool, kind) {
    const bmap = model.series.pools.get(pool.name) || new Map();
    const out = [];
    const line = (label, data, colour, dash) => ({
      label: label, data: data, borderColor: colour, backgroundColor: colour,
      borderDash: dash || [], pointRadius: 0,
    });
    const shown = [];
    for (const b of pool.backends || []) {
      const m = bmap.get(b.name);
      if (!m) continue;
      shown.push(m);
      const colour = colourOf(pool.name, b.name);
      if (kind === "rps") {
        // stacked areas: the top edge is the pool's total
        const l = line(b.name, m.rps, colour);
        l.fill = out.length ? "-1" : "origin";
        l.backgroundColor = colour + "40";
        out.push(l);
      }
      else if (kind === "inflight") out.push(line(b.name, m.inflight, colour));
      else if (kind === "errors") {
        out.push(line(b.name + " 5xx", m.rate_5xx, colour));
        out.push(line(b.name + " 4xx", m.rate_4xx, colour, [5, 4]));
      } else if (kind === "latency") {
        out.push(line(b.name + " p99", m.p99_ms, colour));
        out.push(line(b.name + " p50", m.p50_ms, colour, [5, 4]));
      }
    }
    // more backends than charted: the rest as one line, from the pool's total
    const c = model.series.charted.get(pool.name);
    const total = model.series.totals.get(pool.name);
    const rest = c && total ? c.total - shown.length : 0;
    if (rest > 0) {
      const grey = "#8c959f";
      const word = rest + " other" + (rest === 1 ? "" : "s");
      if (kind === "rps") {
        const l = line(word, othersOf(total.rps, shown.map((m) => m.rps)), grey);
        l.fill = out.length ? "-1" : "origin";
        l.backgroundColor = grey + "40";
        out.push(l);
      } else if (kind === "inflight") {
        out.push(line(word, othersOf(total.inflight, shown.map((m) => m.inflight)), grey));
      } else if (kind === "errors") {
        out.push(line(word + " 5xx", othersOf(total.rate_5xx, shown.map((m) => m.rate_5xx)), grey));
        out.push(line(word + " 4xx", othersOf(total.rate_4xx, shown.map((m) => m.rate_4xx)), grey, [5, 4]));
      } else if (kind === "latency") {
        // a quantile does not subtract: the pool's own
        out.push(line("pool p99", total.p99_ms, grey));
        out.push(line("pool p50", total.p50_ms, grey, [5, 4]));
      }
    }
    return out;
  }

  // The charts span the last 10 minutes, or less when usher has been up for
  // less (from its first sample, at least a minute), so a young usher's
  // traffic is not a sliver at the right edge.
  function oldestSample(pool) {
    const bmap = model.series.pools.get(pool.name);
    const total = model.series.totals.get(pool.name);
    let oldest = null;
    if (!bmap) return null;
    for (const m of [...bmap.values(), ...(total ? [total] : [])]) {
      for (const k of METRICS) {
        const hit = m[k].find((p) => p.y !== null);
        if (hit && (oldest === null || hit.x < oldest)) oldest = hit.x;
      }
    }
    return oldest;
  }

  function updateCharts(pool, view) {
    const end = model.series.end;
    const oldest = oldestSample(pool);
    const start = end === null ? null
      : Math.min(end - 60, Math.max(end - WINDOW_S, oldest === null ? end - WINDOW_S : oldest));
    for (const [kind, chart] of Object.entries(view.charts)) {
      const sets = datasetsFor(pool, kind);
      // keep the dataset objects (and Chart.js's state) when the backends did not change
      const same = sets.length === chart.data.datasets.length &&
        sets.every((s, i) => chart.data.datasets[i].label === s.label);
      if (same) sets.forEach((s, i) => { chart.data.datasets[i].data = s.data; });
      else chart.data.datasets = sets;
      if (end !== null) {
        chart.options.scales.x.min = start;
        chart.options.scales.x.max = end;
      }
      chart.update("none");
    }
  }

  // A pool of more than ROW_LIMIT backends lists, until asked for all, those
  // not up first, then the charted (busiest) ones, at most ROW_LIMIT: a table
  // of 1,000 rows is no help to read, and laying it out every second took
  // longer than the second.
  const ROW_LIMIT = 50;

  function rowsToShow(pool, view) {
    const all = pool.backends || [];
    if (all.length <= ROW_LIMIT || view.showAll) return all;
    const bmap = model.series.pools.get(pool.name) || new Map();
    const pick = new Set();
    for (const b of all) if (pick.size < ROW_LIMIT && b.state !== "up") pick.add(b.name);
    for (const b of all) if (pick.size < ROW_LIMIT && bmap.has(b.name)) pick.add(b.name);
    for (const b of all) if (pick.size < ROW_LIMIT) pick.add(b.name);
    return all.filter((b) => pick.has(b.name));
  }

  function updateRowsNote(pool, view, shown) {
    const total = (pool.backends || []).length;
    if (!view.note) {
      view.noteText = el("span");
      view.noteButton = el("button", { type: "button", class: "secondary" });
      view.noteButton.addEventListener("click", () => {
        view.showAll = !view.showAll;
        renderPools();
      });
      view.note = el("p", { class: "rows-note" }, view.noteText, " ", view.noteButton);
      view.section.querySelector(".table-wrap").after(view.note);
    }
    view.note.hidden = total <= ROW_LIMIT;
    setText(view.noteText, view.showAll ? "All " + total + " backends." :
      "Showing " + shown + " of " + total + " backends: those not up, then the busiest.");
    setText(view.noteButton, view.showAll ? "Show fewer" : "Show all " + total);
  }

  function renderPools() {
    const seen = new Set();
    const drawn = [];
    for (const pool of model.pools) {
      seen.add(pool.name);
      let view = views.get(pool.name);
      if (!view) {
        view = makePoolView(pool);
        views.set(pool.name, view);
      }
      setText(view.section.querySelector(".pool-balance"), pool.balance ? "(" + pool.balance + ")" : "");
      const names = new Set();
      let order = 0;
      const shown = rowsToShow(pool, view);
      for (const b of shown) {
        names.add(b.name);
        let row = view.rows.get(b.name);
        if (!row) {
          row = makeRow(pool.name, b);
          view.rows.set(b.name, row);
        }
        if (view.tbody.children[order] !== row.tr) view.tbody.insertBefore(row.tr, view.tbody.children[order] || null);
        order++;
        updateRow(row, pool.name, b);
      }
      for (const [name, row] of view.rows) {
        if (!names.has(name)) {
          row.tr.remove();
          view.rows.delete(name);
        }
      }
      updateRowsNote(pool, view, shown.length);
      drawn.push([pool, view]);
    }
    // the charts after every table: a chart's update reads the layout, once
    for (const [pool, view] of drawn) updateCharts(pool, view);
    for (const [name, view] of views) {
      if (!seen.has(name)) {
        for (const ch of Object.values(view.charts)) ch.destroy();
        view.section.remove();
        views.delete(name);
      }
    }
  }

  function renderEvents() {
    const list = $("events");
    const shown = model.events.slice().reverse(); // newest first
    $("events-empty").hidden = shown.length > 0;
    if (list.dataset.last === String(model.eventsLast) && list.children.length === shown.length) return;
    list.dataset.last = String(model.eventsLast);
    list.replaceChildren();
    for (const ev of shown) {
      // usher's message names the backend already, most of the time
      const msg = ev.message || "";
      const who = ev.backend && msg.includes(ev.backend) ? (ev.pool ? "pool " + ev.pool : "")
        : [ev.pool, ev.backend].filter(Boolean).join(" / ");
      list.append(el("li", { "data-kind": ev.kind || "" },
        el("span", { class: "event-time", text: typeof ev.time === "number" ? clock(ev.time) : "" }),
        el("span", { class: "event-kind kind-" + (ev.kind || ""), text: String(ev.kind || "").toUpperCase() }),
        el("span", { class: "event-msg", text: (who ? who + ": " : "") + msg })));
    }
  }

  // -- changes ---------------------------------------------------------------------------
  function setBusy(poolName, backendName, busy) {
    const view = views.get(poolName);
    const row = view && view.rows.get(backendName);
    if (!row) return;
    for (const btn of row.tr.querySelectorAll("button")) {
      if (busy) { btn.dataset.busy = "1"; btn.disabled = true; } else { delete btn.dataset.busy; btn.disabled = false; }
    }
  }

  // Sends one PATCH; resolves to true when usher accepted it.
  async function change(poolName, backendName, body, what) {
    const path = "/pools/" + segment(poolName) + "/backends/" + segment(backendName);
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    setBusy(poolName, backendName, true);
    let r, answer;
    try {
      r = await fetch(API + path, { method: "PATCH", headers: headers, body: JSON.stringify(body), cache: "no-store" });
      answer = await readBody(r);
    } catch (e) {
      showError("Could not " + what + ": usher's admin API is not reachable (" + e.message + ").");
      return false;
    } finally {
      setBusy(poolName, backendName, false);
    }
    if (r.status === 401 || r.status === 403) {
      if (r.status === 403) sessionStorage.removeItem(TOKEN_KEY);
      askToken(r.status, answer, () => change(poolName, backendName, body, what), what);
      return false;
    }
    if (!r.ok) {
      const why = answer && answer.error ? answer.error : "HTTP " + r.status;
      showError("Could not " + what + ": " + why + " (HTTP " + r.status + ").");
      return false;
    }
    showNotice("Done: " + what + ".");
    refreshSoon();
    return true;
  }

  function askToken(status, answer, retry, what) {
    pendingChange = retry;
    const why = answer && answer.error ? " usher said: " + answer.error + "." : "";
    $("token-why").textContent = (status === 403
      ? "usher refused the token given for this tab, so it could not " + what + "."
      : "To " + what + ", usher needs its admin token (admin: token in its configuration).") + why;
    const form = $("token-form");
    form.hidden = false;
    const input = $("token-input");
    input.value = "";
    input.focus();
  }

  function setupTokenForm() {
    const form = $("token-form");
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const v = $("token-input").value;
      if (!v) return;
      sessionStorage.setItem(TOKEN_KEY, v);
      $("token-input").value = "";
      form.hidden = true;
      const retry = pendingChange;
      pendingChange = null;
      if (retry) retry();
    });
    $("token-cancel").addEventListener("click", () => {
      form.hidden = true;
      pendingChange = null;
      showNotice("Change cancelled: no token given.");
    });
  }

  // -- the refresh loop --------------------------------------------------------------------
  let timer = null;
  let running = false;
  let again = false; // a refresh was asked for while one was running

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(refresh, ms);
  }

  async function refresh() {
    if (running) { again = true; return; }
    running = true;
    clearTimeout(timer);
    const started = Date.now();
    try {
      const jobs = [loadPools(), loadSeries(), loadEvents(), loadStatus()];
      const results = await Promise.allSettled(jobs);
      const failed = results.find((r) => r.status === "rejected");
      model.failing = failed ? failed.reason.message : null;
      if (!failed) model.lastOk = Date.now();
      model.ticks++;
      renderSummary();
      renderStatus();
      renderPools();
      renderEvents();
    } catch (e) {
      model.failing = "the page could not draw what usher sent (" + e.message + ")";
    } finally {
      renderLive();
      running = false;
      schedule(again ? 0 : Math.max(200, REFRESH_MS - (Date.now() - started)));
      again = false;
    }
  }

  function refreshSoon() {
    if (running) again = true;
    else schedule(50);
  }

  setupTokenForm();
  refresh();
})();
