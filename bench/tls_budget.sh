#!/usr/bin/env bash
# Where the two CPUs go in peers.sh's scenario tls, for usher and HAProxy, and
# what rate a proxy could reach on this machine if its own code cost nothing.
#
#   bench/tls_budget.sh [-b BIN] [-r ROUNDS] [-d SECONDS]
#
# The setup of ../shared/bench/peers.sh -s tls: one nginx backend (one worker,
# two ports, "hello from backendN"), HAProxy (nbthread 1, ssl crt, alpn
# h2,http/1.1, http-reuse always, checks every 2 s) and usher (--threads 1,
# --listen https:// --cert --key, round robin), one self-signed ECDSA P-256
# certificate, wrk -t1 -c64 over TLS 1.3, keep-alive. ROUNDS (default 3)
# alternated runs per proxy of SECONDS (default 5) measured in the middle of
# a wrk run of SECONDS + 2. Per run, from /proc: the CPU time (user and
# kernel) of the proxy, of wrk and of the backend nginx, and the machine's idle
# time, each in microseconds per request and in % of one CPU. Then, for each
# proxy, "zero-code bound": the rate at which every CPU of the machine would
# be busy if the proxy's own user-space time were 0 and nothing were idle
# (NCPU / (all busy time - the proxy's user time) per request). A ratio
# usher/haproxy of 1.3 is out of reach on this machine when the bound is below
# 1.3 times HAProxy's rate. The bound is generous: it keeps the kernel's work per
# request (the four socket calls any HTTP/1 proxy makes per request, and the
# loopback TCP they run) as measured, and the kernel work per request falls a
# little as the rate rises (more events per wakeup).
# Ports from BUDGET_PORT_BASE (default 19860). Needs wrk, nginx, haproxy, openssl, curl.
set -euo pipefail

BIN=build/usher
ROUNDS=3
DUR=5
while getopts "b:r:d:h" o; do
  case $o in
    b) BIN=$OPTARG ;; r) ROUNDS=$OPTARG ;; d) DUR=$OPTARG ;;
    *) sed -n '2,25p' "$0"; exit 2 ;;
  esac
done
for tool in wrk nginx haproxy openssl curl; do
  command -v $tool >/dev/null || { echo "tls_budget.sh: needs $tool" >&2; exit 2; }
done
[ -x "$BIN" ] || { echo "tls_budget.sh: no executable $BIN (make first)" >&2; exit 2; }
BASE=${BUDGET_PORT_BASE:-19860}
B1=$((BASE + 1)) B2=$((BASE + 2)) T_HA=$((BASE + 3)) T_US=$((BASE + 4)) P_HA=$((BASE + 5)) P_US=$((BASE + 6))
W=$(mktemp -d /tmp/usher-budget.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
NCPU=$(nproc)
TICK=$(getconf CLK_TCK)

. "$(dirname "$0")/peers_lib.sh"
peers_cert "$W"
peers_backend_conf "$W" $B1 $B2
peers_haproxy_cfg "$W/haproxy.cfg" $B1 $B2 "127.0.0.1:$P_HA" "127.0.0.1:$T_HA ssl crt $W/tls.pem alpn h2,http/1.1"
nginx -c "$W/backend.conf" -p "$W" & PIDS+=($!)
haproxy -f "$W/haproxy.cfg" -db >"$W/haproxy.log" 2>&1 & PIDS+=($!)
HA_PID=$!
"$BIN" --listen 127.0.0.1:$P_US --listen "https://127.0.0.1:$T_US" --cert "$W/tls.crt" --key "$W/tls.key" \
  --backend http://127.0.0.1:$B1 --backend http://127.0.0.1:$B2 --balance round-robin --threads 1 \
  >"$W/usher.log" 2>&1 & PIDS+=($!)
US_PID=$!
for port in $T_HA $T_US; do
  for _ in $(seq 1 100); do curl -kfs -o /dev/null "https://127.0.0.1:$port/" && break; sleep 0.1; done
  curl -kfs -o /dev/null "https://127.0.0.1:$port/" || { echo "tls_budget.sh: nothing serves on $port" >&2; cat "$W/usher.log" >&2; exit 1; }
done
sleep 1
BE_PIDS=$(pgrep -f "nginx: worker process" -P "$(cat "$W/backend.pid")" || true)

ticks() { # pids... -> "user system" ticks summed
  local u=0 s=0 p
  for p in "$@"; do
    read -r pu ps < <(awk '{print $14, $15}' "/proc/$p/stat" 2>/dev/null || echo "0 0")
    u=$((u + pu)) s=$((s + ps))
  done
  echo "$u $s"
}
idle() { awk '/^cpu / {print $5 + $6}' /proc/stat; }
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; } # steal left out

printf '# tls_budget.sh: %s CPUs, %s s runs, load %s\n' "$NCPU" "$DUR" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %8s | %-15s | %-15s | %-15s | %6s | %9s\n' proxy req/s "proxy usr+sys" "wrk usr+sys" "backend usr+sys" idle% bound
printf '%-8s %8s | %-15s | %-15s | %-15s | %6s | %9s\n' "" "" "us/req (%CPU)" "us/req (%CPU)" "us/req (%CPU)" "" "req/s"
for r in $(seq 1 "$ROUNDS"); do
  for name in haproxy usher; do
    pid=$HA_PID port=$T_HA
    [ $name = usher ] && pid=$US_PID port=$T_US
    wrk -t1 -c64 -d"$((DUR + 2))s" "https://127.0.0.1:$port/" >"$W/wrk.out" 2>&1 & WRK=$!
    sleep 1
    read -r pu0 ps0 < <(ticks "$pid"); read -r wu0 ws0 < <(ticks "$WRK")
    read -r bu0 bs0 < <(ticks $BE_PIDS); i0=$(idle); k0=$(busy)
    sleep "$DUR"
    read -r pu1 ps1 < <(ticks "$pid"); read -r wu1 ws1 < <(ticks "$WRK")
    read -r bu1 bs1 < <(ticks $BE_PIDS); i1=$(idle); k1=$(busy)
    wait $WRK || true
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$W/wrk.out")
    errs=$(awk '/Non-2xx|Socket errors/ {e = 1} END {print e + 0}' "$W/wrk.out")
    awk -v n=$name -v rps="$rps" -v d="$DUR" -v t="$TICK" -v c="$NCPU" -v e="$errs" \
      -v pu=$((pu1 - pu0)) -v ps=$((ps1 - ps0)) -v wu=$((wu1 - wu0)) -v ws=$((ws1 - ws0)) \
      -v bu=$((bu1 - bu0)) -v bs=$((bs1 - bs0)) -v id=$((i1 - i0)) -v bz=$((k1 - k0)) 'BEGIN {
        q = rps * d; us = 1e6 / t / q               # microseconds per tick, per request
        f = 100 / (t * d)                           # % of one CPU per tick
        busy_us = bz * us                           # every busy CPU, per request
        bound = c * 1e6 / (busy_us - pu * us)       # the proxy user time gone, nothing idle
        printf "%-8s %8.0f | %4.1f+%-4.1f (%3.0f) | %4.1f+%-4.1f (%3.0f) | %4.1f+%-4.1f (%3.0f) | %6.1f | %9.0f%s\n",
          n, rps, pu * us, ps * us, (pu + ps) * f, wu * us, ws * us, (wu + ws) * f,
          bu * us, bs * us, (bu + bs) * f, 100 * id / (id + bz), bound, e ? " ERRORS" : ""
      }'
  done
done | tee "$W/rows"
awk '$1 == "haproxy" {h[++nh] = $2} $1 == "usher" {u[++nu] = $2; b[nu] = ($NF == "ERRORS" ? $(NF - 1) : $NF)}
  function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return a[int((n + 1) / 2)] }
  END { mh = med(h, nh); mu = med(u, nu); mb = med(b, nu)
    printf "median: haproxy %.0f req/s, usher %.0f (usher/haproxy %.2f); 1.3 x haproxy = %.0f; usher zero-code bound %.0f (%.2f x haproxy)\n",
      mh, mu, mu / mh, 1.3 * mh, mb, mb / mh }' "$W/rows"
