#!/usr/bin/env bash
# What one /metrics scrape costs with 1,000 backends, and whether scraping
# raises the workers' p99.
#
#   bench/scrape_1000.sh [-b BUILD_DIR] [-n BACKENDS] [-s SCRAPES] [-d SECONDS]
#
# usher gets two pools: "web" with two demo backends (the listener's traffic)
# and "many" with BACKENDS (default 1000) backends on closed loopback ports,
# health checks off (so nothing but the scrape walks them). It times SCRAPES
# scrapes of /metrics (and one of /api/v1/pools and /api/v1/series) with curl
# (wall time, and usher's own CPU time per scrape, steadier on a shared machine),
# then runs wrk twice for SECONDS against "web": without scrapes, and with a
# scrape every second in a loop beside it (as Prometheus at 1 s), and prints both p99s.
# Ports from SCRAPE_PORT_BASE (default 19600). Needs wrk, curl, python3.
set -euo pipefail

B=build
N=1000
S=20
DUR=10
while getopts "b:n:s:d:h" o; do
  case $o in
    b) B=$OPTARG ;; n) N=$OPTARG ;; s) S=$OPTARG ;; d) DUR=$OPTARG ;;
    *) sed -n '2,14p' "$0"; exit 2 ;;
  esac
done
BASE=${SCRAPE_PORT_BASE:-19600}
B1=$((BASE+1)) B2=$((BASE+2)) PU=$((BASE+10)) PA=$((BASE+11))
W=$(mktemp -d /tmp/usher-scrape.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

{
  echo "admin: { bind: 127.0.0.1:$PA }"
  echo "listeners: [ { bind: 127.0.0.1:$PU, pool: web } ]"
  echo "pools:"
  echo "  web:"
  echo "    health: { type: off }"
  echo "    backends: [ http://127.0.0.1:$B1, http://127.0.0.1:$B2 ]"
  echo "  many:"
  echo "    health: { type: off }"
  echo "    backends:"
  # closed ports: 127.0.0.2..127.0.0.5 port 1..N (nothing listens there)
  for i in $(seq 1 "$N"); do echo "      - http://127.0.0.$((2 + i % 4)):$((1 + i))"; done
} >"$W/usher.yaml"

"$B/demo-backend" --port $B1 --name b1 --host 127.0.0.1 >"$W/b1.log" 2>&1 & PIDS+=($!)
"$B/demo-backend" --port $B2 --name b2 --host 127.0.0.1 >"$W/b2.log" 2>&1 & PIDS+=($!)
"$B/usher" -c "$W/usher.yaml" --threads 2 >"$W/usher.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PA/healthz" && break; sleep 0.1; done
curl -s -o /dev/null "http://127.0.0.1:$PU/" || { echo "scrape_1000.sh: usher did not start" >&2; cat "$W/usher.log" >&2; exit 1; }
wrk -t1 -c8 -d2s "http://127.0.0.1:$PU/" >/dev/null # some counts in the histograms

USHER_PID=${PIDS[2]}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$USHER_PID/stat"; }
T0=$(cpu_ticks)
times=()
for _ in $(seq 1 "$S"); do
  times+=("$(curl -s -o "$W/metrics.txt" -w '%{time_total}' "http://127.0.0.1:$PA/metrics")")
done
T1=$(cpu_ticks)
echo "usher's CPU time per scrape (user + system, /proc): $(( (T1 - T0) * 1000 / $(getconf CLK_TCK) / S )) ms"
lines=$(grep -vc '^#' "$W/metrics.txt")
bytes=$(wc -c <"$W/metrics.txt")
printf '%s\n' "${times[@]}" | python3 -c '
import sys
t = sorted(float(x) * 1000 for x in sys.stdin)
print("GET /metrics with %s backends: %d scrapes, median %.1f ms, max %.1f ms (%s samples, %s bytes)"
      % (sys.argv[1], len(t), t[len(t) // 2], t[-1], sys.argv[2], sys.argv[3]))' "$((N + 2))" "$lines" "$bytes"
for path in /api/v1/pools /api/v1/series; do
  printf 'GET %s: %.1f ms (%s bytes)\n' "$path" \
    "$(curl -s -o "$W/out" -w '%{time_total}' "http://127.0.0.1:$PA$path" | awk '{print $1 * 1000}')" \
    "$(wc -c <"$W/out")"
done

p99() { awk '$1 == "99%" {print $2}' "$1"; }
wrk -t1 -c16 -d"${DUR}s" --latency "http://127.0.0.1:$PU/" >"$W/quiet.txt"
( while :; do curl -s -o /dev/null "http://127.0.0.1:$PA/metrics"; sleep 1; done ) & SCRAPER=$!
PIDS+=($SCRAPER)
wrk -t1 -c16 -d"${DUR}s" --latency "http://127.0.0.1:$PU/" >"$W/scraped.txt"
kill $SCRAPER 2>/dev/null || true
echo "wrk p99 without scrapes: $(p99 "$W/quiet.txt") ($(awk '/^Requests\/sec:/ {print $2}' "$W/quiet.txt") req/s)"
echo "wrk p99 with a scrape every second: $(p99 "$W/scraped.txt") ($(awk '/^Requests\/sec:/ {print $2}' "$W/scraped.txt") req/s)"
