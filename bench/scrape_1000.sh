#!/usr/bin/env bash
# What one /metrics scrape costs with 1,000 backends, and whether scraping
# raises the workers' p99.
#
#   bench/scrape_1000.sh [-b BUILD_DIR] [-n BACKENDS] [-s SCRAPES] [-d SECONDS] [-r PAIRS] [-c CPUS]
#
# usher (--threads 1) gets two pools: "web" with two demo backends (the
# listener's traffic) and "many" with BACKENDS (default 1000) backends on
# closed loopback ports, health checks off (so nothing but the scrape walks
# them). usher runs pinned to CPU U, curl, wrk and the backends to CPU L
# (CPUS "U,L", default 0,1): the scrape then competes with the worker for its
# CPU (the control thread shares it), the worst case for the p99.
# 1. SCRAPES (default 100) scrapes of /metrics one after the other with curl
#    (to /dev/null): the wall time to the last byte and to the first (median,
#    p90, p99, max) and usher's own CPU time per scrape (/proc/PID/stat),
#    steadier on a shared machine;
# 2. GET /api/v1/pools and /api/v1/series (the dashboard's first poll, a later
#    poll with since=, and the whole ?top=all): time and size;
# 3. PAIRS (default 3) rounds of three wrk runs of SECONDS (default 10) against
#    "web", -c16: without scrapes; with one curl on CPU L fetching, every
#    second on one keep-alive connection, a static file of the size of the
#    exposition from an nginx on CPU L
#    (the control: the scraper's own cost on the load generator's CPU, which
#    usher does not cause; an overestimate, as nginx's sending runs on CPU L
#    too, usher's on CPU U); and with the same curl scraping usher every
#    second (as Prometheus at 1 s): each run's p99, the medians, and the
#    rounds' differences scraped minus quiet and scraped minus control
#    (median, mean and its 95 % CI);
# 4. one wrk run of SECONDS with scrapes back to back beside it (the worst
#    case): wrk's p99 and rate, and the scrapes served a second.
# Ports from SCRAPE_PORT_BASE (default 19600). Needs wrk, curl, nginx, taskset,
# python3.
set -euo pipefail

B=build
N=1000
S=100
DUR=10
PAIRS=3
CPUS=0,1
while getopts "b:n:s:d:r:c:h" o; do
  case $o in
    b) B=$OPTARG ;; n) N=$OPTARG ;; s) S=$OPTARG ;; d) DUR=$OPTARG ;; r) PAIRS=$OPTARG ;; c) CPUS=$OPTARG ;;
    *) sed -n "2,32p" "$0"; exit 2 ;;
  esac
done
UCPU=${CPUS%,*} LCPU=${CPUS#*,}
BASE=${SCRAPE_PORT_BASE:-19600}
B1=$((BASE+1)) B2=$((BASE+2)) PU=$((BASE+10)) PA=$((BASE+11)) PF=$((BASE+12))
W=$(mktemp -d /tmp/usher-scrape.XXXXXX)
PIDS=()
SCRAPER=
cleanup() { for p in $SCRAPER "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$W"; }
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

L() { taskset -c "$LCPU" "$@"; }
# what runs in the background is started by taskset itself (which execs it), not
# through L: $! is then the program's own PID, the one cleanup stops
taskset -c "$LCPU" "$B/demo-backend" --port $B1 --name b1 --host 127.0.0.1 >"$W/b1.log" 2>&1 & PIDS+=($!)
taskset -c "$LCPU" "$B/demo-backend" --port $B2 --name b2 --host 127.0.0.1 >"$W/b2.log" 2>&1 & PIDS+=($!)
taskset -c "$UCPU" "$B/usher" -c "$W/usher.yaml" --threads 1 >"$W/usher.log" 2>&1 & PIDS+=($!)
USHER_PID=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PA/healthz" && break; sleep 0.1; done
curl -s -o /dev/null "http://127.0.0.1:$PU/" || { echo "scrape_1000.sh: usher did not start" >&2; cat "$W/usher.log" >&2; exit 1; }
L wrk -t1 -c8 -d3s "http://127.0.0.1:$PU/" >/dev/null # some counts in the histograms, some seconds of series
printf '# scrape_1000.sh: %s backends, usher on CPU %s, the rest on CPU %s, %s CPUs, load %s\n' \
  "$((N + 2))" "$UCPU" "$LCPU" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$USHER_PID/stat"; }
T0=$(cpu_ticks)
for _ in $(seq 1 "$S"); do
  L curl -s -o /dev/null -w '%{time_starttransfer} %{time_total}\n' "http://127.0.0.1:$PA/metrics"
done >"$W/times"
T1=$(cpu_ticks)
curl -s -o "$W/metrics.txt" "http://127.0.0.1:$PA/metrics"
lines=$(grep -vc '^#' "$W/metrics.txt")
bytes=$(wc -c <"$W/metrics.txt")
python3 - "$W/times" "$((N + 2))" "$lines" "$bytes" "$(( (T1 - T0) * 1000000 / $(getconf CLK_TCK) / S ))" <<'EOF2'
import sys
rows = [l.split() for l in open(sys.argv[1])]
def qs(col):
    t = sorted(float(r[col]) * 1000 for r in rows)
    q = lambda p: t[min(len(t) - 1, int(p * len(t)))]
    return "median %.1f ms, p90 %.1f, p99 %.1f, max %.1f" % (q(0.5), q(0.9), q(0.99), t[-1])
print("GET /metrics with %s backends (%s samples, %s bytes), %d scrapes one after the other:"
      % (sys.argv[2], sys.argv[3], sys.argv[4], len(rows)))
print("  to the last byte (curl's time_total): " + qs(1))
print("  to the first byte (the exposition written): " + qs(0))
print("  usher's CPU time: %s us per scrape" % sys.argv[5])
EOF2
END=$(curl -s "http://127.0.0.1:$PA/api/v1/series?top=0" | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"])')
for path in /api/v1/pools /api/v1/series "/api/v1/series?since=$((END - 2))" "/api/v1/series?top=all"; do
  best=
  for _ in 1 2 3; do
    ms=$(L curl -s -o "$W/out" -w '%{time_total}' "http://127.0.0.1:$PA$path" | awk '{print $1 * 1000}')
    best=$(awk -v a="$ms" -v b="${best:-1e9}" 'BEGIN {print (a < b ? a : b)}')
  done
  printf 'GET %s: %.1f ms (best of 3), %s bytes\n' "$path" "$best" "$(wc -c <"$W/out")"
done

# the control's file server: a static file as large as the exposition, on CPU L
mkdir -p "$W/www"; chmod 755 "$W" "$W/www"
head -c "$bytes" /dev/zero | tr '\0' 'x' >"$W/www/metrics"; chmod 644 "$W/www/metrics"
cat >"$W/files.conf" <<EOF
worker_processes 1; daemon off; pid $W/files.pid; error_log $W/files.err warn;
events { worker_connections 64; }
http { access_log off; root $W/www; server { listen 127.0.0.1:$PF; } }
EOF
taskset -c "$LCPU" nginx -c "$W/files.conf" -p "$W" & PIDS+=($!)
for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$PF/metrics" && break; sleep 0.1; done

p99() { awk '$1 == "99%" {print $2}' "$1"; }
rps() { awk '/^Requests\/sec:/ {print $2}' "$1"; }
loaded() { # url out: a wrk run with that URL fetched every second beside it
  # one curl for the whole run, as a Prometheus keeps its connection: the
  # URL's glob makes DUR+5 fetches on one keep-alive connection, at most one
  # a second (a curl started every second would cost wrk's CPU a fork, an exec
  # and a TLS library's start each time, and the p99 would show those)
  taskset -c "$LCPU" curl -s --rate 1/s "$1?scrape=[1-$((DUR + 5))]" >/dev/null & SCRAPER=$!
  L wrk -t1 -c16 -d"${DUR}s" --latency "http://127.0.0.1:$PU/" >"$2"
  kill $SCRAPER 2>/dev/null || true; wait $SCRAPER 2>/dev/null || true; SCRAPER=
}
for r in $(seq 1 "$PAIRS"); do
  L wrk -t1 -c16 -d"${DUR}s" --latency "http://127.0.0.1:$PU/" >"$W/quiet.$r"
  loaded "http://127.0.0.1:$PF/metrics" "$W/control.$r"
  loaded "http://127.0.0.1:$PA/metrics" "$W/scraped.$r"
  echo "round $r: wrk p99 without scrapes $(p99 "$W/quiet.$r") ($(rps "$W/quiet.$r") req/s)," \
    "control $(p99 "$W/control.$r") ($(rps "$W/control.$r") req/s)," \
    "with a scrape every second $(p99 "$W/scraped.$r") ($(rps "$W/scraped.$r") req/s)"
done
ms_of() { awk '{ v = $1; if (v ~ /us$/) v = v / 1000; else if (v ~ /ms$/) v = v + 0; else if (v ~ /s$/) v = v * 1000; print v }'; }
med() { ms_of | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
for r in $(seq 1 "$PAIRS"); do
  echo "$(p99 "$W/quiet.$r" | ms_of) $(p99 "$W/control.$r" | ms_of) $(p99 "$W/scraped.$r" | ms_of)"
done >"$W/pairs"
echo "median wrk p99: without scrapes $(for r in $(seq 1 "$PAIRS"); do p99 "$W/quiet.$r"; done | med) ms," \
  "control (a $bytes-byte file fetched every second) $(for r in $(seq 1 "$PAIRS"); do p99 "$W/control.$r"; done | med) ms," \
  "with a scrape every second $(for r in $(seq 1 "$PAIRS"); do p99 "$W/scraped.$r"; done | med) ms"
python3 - "$W/pairs" <<'EOF3'
import statistics, sys
rows = [[float(x) for x in l.split()] for l in open(sys.argv[1])]
T = {1: 12.71, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
     10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 19: 2.093, 29: 2.045}
for name, k in (("quiet", 0), ("control", 1)):
    d = [r[2] - r[k] for r in rows]
    line = "scraped minus %s, per round: %s ms; above in %d of %d rounds; median %+.3f ms" % (
        name, " ".join("%+.3f" % x for x in d), sum(x > 0 for x in d), len(d), statistics.median(d))
    if len(d) > 1:
        m, se = statistics.mean(d), statistics.stdev(d) / len(d) ** 0.5
        t = T.get(len(d) - 1, T[max(k for k in T if k <= len(d) - 1)])
        line += "; mean %+.3f ms, 95 %% CI %+.3f .. %+.3f" % (m, m - t * se, m + t * se)
    print(line)
EOF3

# 4. the worst case for the workers: scrapes back to back (a curl that never
# waits) beside the same wrk run: wrk's p99 and rate against the quiet runs',
# and how many scrapes the control thread served meanwhile (it yields the CPU
# to the worker between chunks, so it gets what the worker leaves)
taskset -c "$LCPU" curl -s -w '%{stderr}.' "http://127.0.0.1:$PA/metrics?scrape=[1-1000000]" >/dev/null 2>"$W/b2b" & SCRAPER=$!
L wrk -t1 -c16 -d"${DUR}s" --latency "http://127.0.0.1:$PU/" >"$W/b2b.wrk"
kill $SCRAPER 2>/dev/null || true; wait $SCRAPER 2>/dev/null || true; SCRAPER=
echo "scrapes back to back beside wrk: wrk p99 $(p99 "$W/b2b.wrk") ($(rps "$W/b2b.wrk") req/s)," \
  "$(( $(wc -c <"$W/b2b") / DUR )) scrapes a second"
