#!/usr/bin/env bash
# The "h2" scenario of ../shared/bench/peers.sh, with nginx allowed to finish it.
#
#   bench/h2_nginx.sh [-b BIN] [-r ROUNDS] [-d SECONDS]
#
# peers.sh's nginx keeps its default keepalive_requests (1000), which since
# nginx 1.19.7 also bounds the requests of one HTTP/2 connection: after 1000
# it sends GOAWAY, h2load does not reconnect, and nginx's h2 row is INVALID
# (a few hundred to 1,400 failed requests, 12,800 req/s = 64 clients x 200).
# This script runs the same scenario with the same programs and settings as
# peers.sh (one nginx with two ports as the backends; one worker thread for
# each proxy; h2load -c 64 -m 10 -t 1 over TLS 1.3 with ALPN h2, ECDSA P-256;
# GET / of the 20-byte body; ROUNDS interleaved rounds of SECONDS, median),
# except that the nginx in front has "keepalive_requests 100000000", so that
# its connections stay open for the whole run, as HAProxy's and usher's do.
# cpu_us/req is the proxy's user + system CPU time per completed request.
# A row is INVALID when h2load saw a failed request or a protocol other than h2.
# Ports from H2_NGINX_PORT_BASE (default 19800). Needs h2load, nginx, haproxy,
# openssl, curl.
set -euo pipefail

BIN=build/usher
ROUNDS=3
DUR=5
while getopts "b:r:d:h" o; do
  case $o in
    b) BIN=$OPTARG ;; r) ROUNDS=$OPTARG ;; d) DUR=$OPTARG ;;
    *) sed -n '2,19p' "$0"; exit 2 ;;
  esac
done
for tool in h2load nginx haproxy openssl curl; do
  command -v $tool >/dev/null || { echo "h2_nginx.sh: needs $tool" >&2; exit 2; }
done
[ -x "$BIN" ] || { echo "h2_nginx.sh: no executable $BIN (make first)" >&2; exit 2; }
ulimit -n 20000 2>/dev/null || true

W=$(mktemp -d /tmp/usher-h2nginx.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

BASE=${H2_NGINX_PORT_BASE:-19800}
B1=$((BASE+1)) B2=$((BASE+2)) T_HA=$((BASE+21)) T_NG=$((BASE+22)) T_US=$((BASE+23))
. "$(dirname "$0")/peers_lib.sh"
peers_cert "$W"

peers_backend_conf "$W" $B1 $B2
cat >"$W/nginxlb.conf" <<EOF
worker_processes 1; daemon off; pid $W/nginxlb.pid; error_log $W/nginxlb.err warn;
events { worker_connections 8192; }
http { access_log off;
  upstream be { server 127.0.0.1:$B1; server 127.0.0.1:$B2; keepalive 128; }
  server { listen 127.0.0.1:$T_NG ssl http2 backlog=4096; ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate $W/tls.crt; ssl_certificate_key $W/tls.key;
    keepalive_requests 100000000;
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
EOF
peers_haproxy_cfg "$W/haproxy.cfg" $B1 $B2 "127.0.0.1:$T_HA ssl crt $W/tls.pem alpn h2,http/1.1"

nginx -c "$W/backend.conf" -p "$W" & PIDS+=($!)
nginx -c "$W/nginxlb.conf" -p "$W" & PIDS+=($!)
haproxy -f "$W/haproxy.cfg" -db >"$W/haproxy.log" 2>&1 & PIDS+=($!); HA_PID=$!
"$BIN" --listen "https://127.0.0.1:$T_US" --cert "$W/tls.crt" --key "$W/tls.key" \
  --backend "http://127.0.0.1:$B1" --backend "http://127.0.0.1:$B2" --balance round-robin --threads 1 \
  >"$W/usher.log" 2>&1 & PIDS+=($!); US_PID=$!
declare -A PORT=([haproxy]=$T_HA [nginx]=$T_NG [usher]=$T_US) PID=([haproxy]=$HA_PID [usher]=$US_PID)

for t in haproxy nginx usher; do
  for _ in $(seq 1 100); do curl -kfs -o /dev/null "https://127.0.0.1:${PORT[$t]}/" && break; sleep 0.1; done
  curl -kfs -o /dev/null "https://127.0.0.1:${PORT[$t]}/" || { echo "h2_nginx.sh: $t does not answer" >&2; exit 1; }
done
PID[nginx]=$(cat "$W/nginxlb.pid")
sleep 2.5 # health checks have seen both backends

ticks() { local t=0 p; for p in $1 $(pgrep -P "$1" 2>/dev/null); do
  t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }
HZ=$(getconf CLK_TCK)

run() { # target -> "rps p50_ms p99_ms errors requests cpu_us/req"
  local t=$1 t0 t1
  rm -f "$W/h2load.log"
  t0=$(ticks "${PID[$t]}")
  h2load -c 64 -m 10 -t 1 -D "$DUR" --log-file="$W/h2load.log" "https://127.0.0.1:${PORT[$t]}/" >"$W/h2load.out" 2>&1 || true
  t1=$(ticks "${PID[$t]}")
  read -r p50 p99 < <(cut -f3 "$W/h2load.log" 2>/dev/null | sort -n | awk '{a[NR]=$1}
    END { if (NR == 0) { print 0, 0 } else { i = int(NR * 0.99); if (i < 1) i = 1; printf "%.3f %.3f\n", a[int((NR+1)/2)]/1000, a[i]/1000 } }')
  awk -v p50="$p50" -v p99="$p99" -v dt=$((t1 - t0)) -v hz="$HZ" '
    /^finished in/ {rps=$4} /^Application protocol:/ {proto=$3}
    /^requests:/ {e+=$10+$12+$14; n=$8} /^status codes:/ {e+=$5+$7+$9}
    END {if (proto != "h2") e+=1; printf "%.0f %s %s %d %d %.2f\n", rps, p50, p99, e, n, n ? dt*1e6/hz/n : 0}' "$W/h2load.out"
}

printf "# h2_nginx.sh: rounds=%s duration=%ss cpus=%s load %s\n" "$ROUNDS" "$DUR" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
: >"$W/rows"
for r in $(seq 1 "$ROUNDS"); do
  for t in haproxy nginx usher; do echo "$t $(run $t)" >>"$W/rows"; done
done
printf "%-8s %10s %9s %9s %7s %11s\n" target req/s p50_ms p99_ms errors cpu_us/req
python3 - "$W/rows" <<'EOF'
import sys
rows = {}
for line in open(sys.argv[1]):
    t, rps, p50, p99, e, n, cpu = line.split()
    rows.setdefault(t, []).append((float(rps), float(p50), float(p99), int(e), int(n), float(cpu)))
med = {}
for t in ("haproxy", "nginx", "usher"):
    rs = sorted(rows[t])
    m = rs[len(rs) // 2]
    errs = sum(r[3] for r in rs)
    med[t] = m
    print("%-8s %10.0f %9.3f %9.3f %7d %11.2f%s" % (t, m[0], m[1], m[2], errs, m[5], " INVALID" if errs else ""))
for peer in ("haproxy", "nginx"):
    print("ratio h2 usher/%s=%.2f p99 usher/%s=%.2f cpu/req usher/%s=%.2f" % (
        peer, med["usher"][0] / med[peer][0], peer, med["usher"][2] / med[peer][2],
        peer, med["usher"][5] / med[peer][5]))
EOF
