#!/usr/bin/env bash
# A real Prometheus scrapes usher's /metrics every second during a wrk run;
# then its HTTP API is asked for the request rate and the p99, printed beside
# wrk's own figures (docs/METRICS.md shows a run).
#
#   bench/prometheus.sh [-b BUILD_DIR] [-d SECONDS] [-c CONNECTIONS] [-t THREADS]
#
# Everything listens on loopback, on ports from PROM_PORT_BASE (default 19500):
# two demo backends (BASE+1, BASE+2; /slow?ms=N gives a known latency), usher
# (BASE+10, admin on BASE+11) and Prometheus (BASE+20, data in a temporary
# directory). The wrk run asks for /slow?ms=2 so that the latency is well
# above the scheduling noise and falls inside one histogram bucket range.
#
# Needs wrk and prometheus (scripts/deps.sh bench), curl, python3.
set -euo pipefail

B=build
DUR=40
CONNS=32
WT=2
while getopts "b:d:c:t:h" o; do
  case $o in
    b) B=$OPTARG ;; d) DUR=$OPTARG ;; c) CONNS=$OPTARG ;; t) WT=$OPTARG ;;
    *) sed -n '2,14p' "$0"; exit 2 ;;
  esac
done
for tool in wrk prometheus curl python3; do
  command -v $tool >/dev/null || { echo "prometheus.sh: needs $tool (scripts/deps.sh bench)" >&2; exit 2; }
done
BASE=${PROM_PORT_BASE:-19500}
B1=$((BASE+1)) B2=$((BASE+2)) PU=$((BASE+10)) PA=$((BASE+11)) PP=$((BASE+20))
W=$(mktemp -d /tmp/usher-prom.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

wait_port() { # port, what
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
    sleep 0.1
  done
  echo "prometheus.sh: $2 did not start on port $1" >&2; exit 1
}

"$B/demo-backend" --port $B1 --name b1 --host 127.0.0.1 >"$W/b1.log" 2>&1 & PIDS+=($!)
"$B/demo-backend" --port $B2 --name b2 --host 127.0.0.1 >"$W/b2.log" 2>&1 & PIDS+=($!)
wait_port $B1 demo-backend; wait_port $B2 demo-backend
"$B/usher" --listen 127.0.0.1:$PU --backend http://127.0.0.1:$B1 --backend http://127.0.0.1:$B2 \
  --admin 127.0.0.1:$PA --threads 2 >"$W/usher.log" 2>&1 & PIDS+=($!)
wait_port $PU usher

cat >"$W/prometheus.yml" <<EOF
global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: usher
    static_configs: [ { targets: [ "127.0.0.1:$PA" ] } ]
EOF
prometheus --config.file="$W/prometheus.yml" --storage.tsdb.path="$W/data" \
  --web.listen-address=127.0.0.1:$PP >"$W/prometheus.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PP/-/ready" && break; sleep 0.2; done
sleep 3 # a few scrapes before the load

echo "wrk -t$WT -c$CONNS -d${DUR}s --latency http://127.0.0.1:$PU/slow?ms=2"
wrk -t"$WT" -c"$CONNS" -d"${DUR}s" --latency "http://127.0.0.1:$PU/slow?ms=2" | tee "$W/wrk.txt"
END=$(date +%s)
sleep 2 # the last scrapes of the run
AT=$((END - 2)) # a 30 s window that lies inside the run

q() {
  curl -s --get "http://127.0.0.1:$PP/api/v1/query" --data-urlencode "query=$1" --data-urlencode "time=$AT" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "no data")'
}
RATE_Q='sum(rate(usher_backend_responses_total[30s]))'
P99_Q='histogram_quantile(0.99, sum by (le) (rate(usher_backend_total_time_seconds_bucket[30s])))'
P50_Q='histogram_quantile(0.5, sum by (le) (rate(usher_backend_total_time_seconds_bucket[30s])))'
RATE=$(q "$RATE_Q")
P99=$(q "$P99_Q")
P50=$(q "$P50_Q")
SCRAPES=$(q 'count_over_time(up{job="usher"}[30s])')
WRK_RPS=$(awk '/^Requests\/sec:/ {print $2}' "$W/wrk.txt")
WRK_P99=$(awk '$1 == "99%" {print $2}' "$W/wrk.txt")
WRK_P50=$(awk '$1 == "50%" {print $2}' "$W/wrk.txt")
echo
echo "at $AT (a 30 s window inside the run; $SCRAPES scrapes of usher in it):"
printf '  %-85s %s\n' "$RATE_Q" "$RATE"
printf '  %-85s %s\n' "wrk Requests/sec (whole run)" "$WRK_RPS"
printf '  %-85s %s s\n' "$P99_Q" "$P99"
printf '  %-85s %s\n' "wrk 99%" "$WRK_P99"
printf '  %-85s %s s\n' "$P50_Q" "$P50"
printf '  %-85s %s\n' "wrk 50%" "$WRK_P50"
