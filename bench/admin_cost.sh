#!/usr/bin/env bash
# What the admin listener and its metrics cost the request path: usher with
# the admin off, against usher with the admin on and /metrics scraped every
# second, run alternately (off, on, off, on, ...) under the same wrk load as
# ../shared/bench/peers.sh's scenario "small" (GET of a 20-byte body from two
# nginx backends, keep-alive, 64 connections, usher --threads 1, round robin,
# its default health checks).
#
#   bench/admin_cost.sh [-b BIN] [-n PAIRS] [-d SECONDS] [-c CPUS] [-s]
#
# BIN      usher (default build/usher)
# PAIRS    off/on pairs (default 8; a pair takes about 2 * (SECONDS + 2) s)
# SECONDS  measured seconds per run (default 8)
# CPUS     "U,L": usher pinned to CPU U, wrk, nginx and the scraper to CPU L
#          (default 0,1), so that the load generator does not steal usher's CPU
# -s       same scraper on both sides: on the "off" side the same curl loop
#          fetches a backend's /health every second, so that both sides carry
#          the scraper's own cost (a fork and exec of curl each second, on the
#          CPU of wrk) and only usher's admin differs
#
# Per run, over the measured seconds (after one second of warm-up):
#   cpu_us/req  usher's user + system time from /proc/PID/stat (all its threads,
#               scrapes included: the scrape runs in usher's control thread)
#               divided by the requests wrk completed;
#   instr/req   usher's instructions (perf stat -e instructions, user + kernel)
#               divided by the same requests, when the CPU has a PMU (a VM often
#               has none: then "n/a", and bench/admin_instr.py counts them with
#               callgrind instead);
#   req/s, p99  wrk's.
# Then, for each figure: mean and standard deviation of each side, and the
# difference on - off as the mean of the paired differences (a pair's two runs
# are adjacent in time, which cancels the drift of a shared machine) with its
# 95 % confidence interval (Student's t, PAIRS - 1 degrees of freedom), in
# percent of off. Ports from ADMIN_COST_PORT_BASE (default 19700).
# Needs: wrk, nginx, curl, taskset, python3; perf (optional).
set -euo pipefail

BIN=build/usher
PAIRS=8
DUR=8
CPUS=0,1
SAME=
while getopts "b:n:d:c:sh" o; do
  case $o in
    b) BIN=$OPTARG ;; n) PAIRS=$OPTARG ;; d) DUR=$OPTARG ;; c) CPUS=$OPTARG ;; s) SAME=1 ;;
    *) sed -n '2,35p' "$0"; exit 2 ;;
  esac
done
for tool in wrk nginx curl taskset python3; do
  command -v $tool >/dev/null || { echo "admin_cost.sh: needs $tool" >&2; exit 2; }
done
[ -x "$BIN" ] || { echo "admin_cost.sh: no executable $BIN (make first)" >&2; exit 2; }
UCPU=${CPUS%,*} LCPU=${CPUS#*,}
BASE=${ADMIN_COST_PORT_BASE:-19700}
B1=$((BASE+1)) B2=$((BASE+2)) PU=$((BASE+10)) PA=$((BASE+11))
W=$(mktemp -d /tmp/usher-cost.XXXXXX)
PIDS=()
US_PID= SCRAPER=
stop() { # pid: stop one process we started, and wait for it
  [ -n "$1" ] || return 0
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() { stop "$SCRAPER"; stop "$US_PID"; for p in "${PIDS[@]}"; do stop "$p"; done; rm -rf "$W"; }
trap cleanup EXIT
ulimit -n 20000 2>/dev/null || true

PERF=
if command -v perf >/dev/null && perf stat -e instructions -x, -- true 2>&1 | grep -q '^[0-9]'; then PERF=1; fi

. "$(dirname "$0")/peers_lib.sh"
peers_backend_conf "$W" $B1 $B2
taskset -c "$LCPU" nginx -c "$W/backend.conf" -p "$W" & PIDS+=($!)

wait_url() { for _ in $(seq 1 100); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "admin_cost.sh: nothing answers at $1" >&2; tail -5 "$W"/*.log "$W"/*.err 2>/dev/null >&2; exit 1; }
wait_url "http://127.0.0.1:$B1/"

HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$US_PID/stat"; }

run() { # off|on -> one line: side cpu_us/req instr/req req/s p99_ms requests scrapes
  local side=$1 extra=()
  [ "$side" = on ] && extra=(--admin "127.0.0.1:$PA")
  taskset -c "$UCPU" "$BIN" --listen "127.0.0.1:$PU" --backend "http://127.0.0.1:$B1" \
    --backend "http://127.0.0.1:$B2" --balance round-robin --threads 1 "${extra[@]}" \
    >"$W/usher.log" 2>&1 &
  US_PID=$!
  wait_url "http://127.0.0.1:$PU/"
  [ "$side" = on ] && wait_url "http://127.0.0.1:$PA/healthz"
  sleep 2.5 # both backends up (health checks)
  taskset -c "$LCPU" wrk -t1 -c64 -d1s "http://127.0.0.1:$PU/" >/dev/null 2>&1 # warm-up
  rm -f "$W/scrapes"
  local url="http://127.0.0.1:$PA/metrics"
  [ "$side" = off ] && url="http://127.0.0.1:$B1/health"
  if [ "$side" = on ] || [ -n "$SAME" ]; then
    # a scrape every second, as Prometheus with scrape_interval: 1s (its own CPU is not usher's)
    ( while :; do curl -s -o /dev/null -w '%{http_code}\n' "$url" >>"$W/scrapes" || true
        sleep 1; done ) &
    SCRAPER=$!
    taskset -cp "$LCPU" "$SCRAPER" >/dev/null
  fi
  local perf_pid= t0 t1
  if [ -n "$PERF" ]; then
    perf stat -e instructions -x, -o "$W/perf.out" -p "$US_PID" &
    perf_pid=$!
  fi
  t0=$(ticks)
  taskset -c "$LCPU" wrk -t1 -c64 -d"${DUR}s" --latency "http://127.0.0.1:$PU/" >"$W/wrk.out" 2>&1 || true
  t1=$(ticks)
  local instr=
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    instr=$(awk -F, '$3 ~ /^instructions/ && $1 ~ /^[0-9]+$/ {print $1}' "$W/perf.out")
  fi
  stop "$SCRAPER"; SCRAPER=
  stop "$US_PID"; US_PID=
  local scrapes=0
  [ -f "$W/scrapes" ] && scrapes=$(grep -c '^200$' "$W/scrapes" || true)
  awk -v side="$side" -v dt=$((t1 - t0)) -v hz="$HZ" -v instr="${instr:-}" -v sc="$scrapes" '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec/ {rps=$2} / 99%/ {p99=ms($2)} /requests in/ {n=$1}
    /Socket errors/ {gsub(/,/,""); e+=$4+$6+$8+$10} /Non-2xx/ {e+=$NF}
    END { if (!n || e) { printf "%s INVALID errors=%d requests=%d\n", side, e, n; exit }
          printf "%s %.4f %s %.0f %.3f %d %d\n", side, dt * 1e6 / hz / n,
                 instr == "" ? "n/a" : sprintf("%.1f", instr / n), rps, p99, n, sc }' "$W/wrk.out"
}

printf "# admin_cost.sh: %s pairs of %ss runs, usher on CPU %s, wrk/nginx/scraper on CPU %s, %s CPUs, load %s%s\n" \
  "$PAIRS" "$DUR" "$UCPU" "$LCPU" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" \
  "${SAME:+, off side curls /health of a backend each second}"
printf "# %-4s %12s %10s %9s %8s %9s %7s\n" side cpu_us/req instr/req req/s p99_ms requests scrapes
: >"$W/runs"
for i in $(seq 1 "$PAIRS"); do
  for side in off on; do
    line=$(run "$side")
    echo "$line" >>"$W/runs"
    echo "$line" | awk '{ if ($2 == "INVALID") print "  " $0; else printf "  %-4s %12s %10s %9s %8s %9s %7s\n", $1, $2, $3, $4, $5, $6, $7 }'
  done
done

python3 - "$W/runs" <<'EOF'
import math, sys
runs = [l.split() for l in open(sys.argv[1]) if l.strip()]
bad = [r for r in runs if r[1] == "INVALID"]
if bad:
    print("INVALID runs (errors from wrk): %d; their pairs are left out" % len(bad))
# pairs in order: off, on
pairs = [(runs[i], runs[i + 1]) for i in range(0, len(runs) - 1, 2)
         if runs[i][1] != "INVALID" and runs[i + 1][1] != "INVALID"]
# Student's t, 97.5 % quantile, by degrees of freedom
T = {1: 12.71, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
     10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 20: 2.086, 30: 2.042}
def t975(df):
    return T.get(df) or next(T[k] for k in sorted(T) if k >= df) if df <= 30 else 1.96
def stats(v):
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else float("nan")
    return m, sd
for col, name, higher_is in ((1, "cpu_us/req", "cost"), (2, "instr/req", "cost"),
                             (3, "req/s", "speed"), (4, "p99_ms", "latency")):
    if any(r[col] == "n/a" for p in pairs for r in p):
        print("%-11s n/a (no PMU for perf stat here: see bench/admin_instr.py)" % name)
        continue
    off = [float(a[col]) for a, _ in pairs]
    on = [float(b[col]) for _, b in pairs]
    if len(pairs) < 2:
        print("%-11s too few valid pairs" % name)
        continue
    mo, so = stats(off)
    mn, sn = stats(on)
    d = [(b - a) / a * 100 for a, b in zip(off, on)]
    md, sd = stats(d)
    half = t975(len(d) - 1) * sd / math.sqrt(len(d))
    print("%-11s off %10.4g +- %-9.3g on %10.4g +- %-9.3g on-off %+6.2f %% (95 %% CI %+.2f .. %+.2f %%, %d pairs)"
          % (name, mo, so, mn, sn, md, md - half, md + half, len(d)))
EOF
