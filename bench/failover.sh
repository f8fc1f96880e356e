#!/usr/bin/env bash
# Kills one of two backends while wrk drives GETs through usher at full speed,
# restarts it, and reports what wrk saw (errors and non-2xx answers must be 0).
#
#   bench/failover.sh [-d SECONDS] [-c CONNECTIONS] [-t THREADS]
#
# Backends are nginx (one worker each, like ../shared/bench/peers.sh), so that
# the proxy, not the backend, is what is measured. Loopback only.
set -euo pipefail
DUR=10 CONNS=64 THREADS=1
while getopts "d:c:t:h" o; do
  case $o in d) DUR=$OPTARG ;; c) CONNS=$OPTARG ;; t) THREADS=$OPTARG ;; *) sed -n '2,9p' "$0"; exit 2 ;; esac
done
BIN=${USHER_BIN:-build/usher}
W=$(mktemp -d /tmp/usher-failover.XXXXXX); chmod 755 "$W"
PIDS=()
cleanup() {
  cp "$W/usher.log" /tmp/failover-usher.log 2>/dev/null || true
  # nginx masters were started in subshells: kill their workers by parent pid too
  for p in "${PIDS[@]}"; do pkill -9 -P "$p" 2>/dev/null || true; kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true; rm -rf "$W"
}
trap cleanup EXIT
BASE=${FAILOVER_PORT_BASE:-19300}
B1=$((BASE+1)) B2=$((BASE+2)) P=$((BASE+3))
backend() { # name port
  cat > "$W/$1.conf" <<EOF2
worker_processes 1; daemon off; pid $W/$1.pid; error_log $W/$1.err warn;
events { worker_connections 8192; }
http { access_log off; server { listen 127.0.0.1:$2 backlog=4096;
  location / { return 200 "hello from $1\n"; } location /health { return 200 "ok\n"; } } }
EOF2
  nginx -c "$W/$1.conf" -p "$W" > "$W/$1.out" 2>&1 & echo $!
}
P1=$(backend backend1 $B1); PIDS+=("$P1")
P2=$(backend backend2 $B2); PIDS+=("$P2")
"$BIN" --listen 127.0.0.1:$P --backend http://127.0.0.1:$B1 --backend http://127.0.0.1:$B2 \
  --health-path /health --health-interval 500ms --threads "$THREADS" > "$W/usher.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 50); do curl -fs -o /dev/null http://127.0.0.1:$P/ && break; sleep 0.1; done
wrk -t1 -c"$CONNS" -d"${DUR}s" --latency http://127.0.0.1:$P/ > "$W/wrk.out" 2>&1 & WRK=$!
sleep $((DUR / 4)); echo "t=$((DUR / 4))s: killing backend1 (SIGKILL)"; pkill -9 -P "$P1" || true; kill -9 "$P1"
sleep $((DUR / 4)); echo "t=$((DUR / 2))s: restarting backend1"
P1=$(backend backend1 $B1); PIDS+=("$P1")
wait $WRK
cat "$W/wrk.out"
echo "--- usher log (transitions) ---"; grep -E " is (DOWN|UP) " "$W/usher.log" || true
errs=$(awk '/Socket errors/ {gsub(/,/,""); e+=$4+$6+$8+$10} /Non-2xx/ {e+=$NF} END {print e+0}' "$W/wrk.out")
echo "errors+non-2xx: $errs"
[ "$errs" -eq 0 ]
