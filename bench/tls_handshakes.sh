#!/usr/bin/env bash
# Full and resumed TLS handshakes per second of usher, HAProxy and nginx, measured
# the same way in one run, all in front of the same plain nginx backend on loopback.
#
#   bench/tls_handshakes.sh [-b BIN] [-s SCENARIOS] [-r ROUNDS] [-d SECONDS] [-c CLIENTS] [-V 1.3|1.2] [-u]
#
# BIN        the usher binary (default: build/usher)
# SCENARIOS  comma list of (default: new,resumed):
#            new      full handshakes: the client offers no session (every connection
#                     does ECDHE + the server's ECDSA P-256 signature)
#            resumed  resumed handshakes: each connection offers the session of the one
#                     before (in TLS 1.3 the newest ticket the server sent: PSK + ECDHE).
#                     A TLS 1.3 ticket is used once, as RFC 8446 C.4 asks and browsers
#                     and OpenSSL's client cache do: a proxy that sends no new ticket on
#                     a resumed handshake gets a full one next (counted in wrongkind)
#            Every connection sends "GET / HTTP/1.1" with "Connection: close" and reads
#            the whole 200 answer, so the proxy serves a request through the backend.
# ROUNDS     interleaved rounds per proxy and scenario (default 3); the median is reported
# SECONDS    duration of one round (default 5)
# CLIENTS    client processes run in parallel, their counts summed (default 2: one
#            sequential client keeps a one-thread proxy idle while it does its own half
#            of the handshake; see the core% column)
# -V         TLS version of both scenarios (default 1.3)
# -u         offer again a ticket that the proxy did not replace (a copy of it), so that
#            "resumed" measures resumption even against such a proxy
#
# The client is bench/hs_client.c (OpenSSL, compiled at run time), not openssl s_time:
# s_time reads each answer to the end of the connection, and OpenSSL 3 takes an end
# without close_notify for an error that makes the session unresumable, so s_time
# -reuse resumes against a server only if that server sends close_notify: it would
# measure the close, not the resumption. hs_client reads up to the end of the body.
# Before measuring, openssl s_client checks each proxy: -sess_out/-sess_in must say
# "Reused", and whether the proxy sends close_notify is printed.
# Proxies: one worker/thread each, logging off, keep-alive to the backend; one
# self-signed ECDSA P-256 certificate made at run time; TLS 1.2-1.3, ALPN http/1.1;
# nginx with ssl_session_cache shared:SSL:10m and ssl_session_tickets on.
#   usher:   BIN --listen https://127.0.0.1:PORT --cert C --key K --backend http://127.0.0.1:B --threads 1
# hs/s is handshakes completed (with their 200 answer) per second of the round, summed
# over the clients; cpu_us/hs is the CPU time (user + system, /proc/PID/stat, nginx's
# workers included) of the proxy's processes divided by those handshakes: the steadiest
# figure on a shared machine; sys_us is its system (kernel) part. core% is that CPU time
# over the round's duration (100 = the proxy's one thread was never idle). tickets/hs is
# how many sessions (TLS 1.3 tickets) the proxy sent per connection: part of its cost.
# wrongkind counts "new" connections that resumed or "resumed" ones that did not.
# A row is INVALID if any connection failed (connect, handshake, non-200 or short
# answer), if wrongkind is not 0, or if the s_client resumption check failed.
#
# Needs: nginx, haproxy, openssl, curl, a C compiler and the OpenSSL headers (libssl-dev).
set -euo pipefail

BIN=build/usher
SCEN=new,resumed
ROUNDS=3
DUR=5
CLIENTS=2
TLSV=1.3
REUSE=
while getopts "b:s:r:d:c:V:uh" o; do
  case $o in
    u) REUSE=1 ;;
    b) BIN=$OPTARG ;; s) SCEN=$OPTARG ;; r) ROUNDS=$OPTARG ;; d) DUR=$OPTARG ;; c) CLIENTS=$OPTARG ;;
    V) TLSV=$OPTARG ;;
    *) awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0"; exit 2 ;;
  esac
done
case $TLSV in 1.2|1.3) ;; *) echo "tls_handshakes.sh: -V is 1.2 or 1.3" >&2; exit 2 ;; esac
IFS=, read -ra SCS <<< "$SCEN"
for sc in "${SCS[@]}"; do case $sc in new|resumed) ;; *) echo "tls_handshakes.sh: unknown scenario $sc" >&2; exit 2 ;; esac; done
for tool in nginx haproxy openssl curl cc; do
  command -v $tool >/dev/null || { echo "tls_handshakes.sh: needs $tool (apt-get install -y nginx-light haproxy openssl curl gcc libssl-dev)" >&2; exit 2; }
done
[ -x "$BIN" ] || { echo "tls_handshakes.sh: no executable $BIN (make first)" >&2; exit 2; }
ulimit -n 20000 2>/dev/null || true
HERE=$(cd "$(dirname "$0")" && pwd)

W=$(mktemp -d /tmp/usher-hs.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

cc -O2 -o "$W/hs_client" "$HERE/hs_client.c" -lssl -lcrypto

# free loopback ports, from HS_PORT_BASE up, skipping any that something listens on
NEXT=${HS_PORT_BASE:-19400}
free_port() { while [ -n "$(ss -Hltn "sport = :$NEXT" 2>/dev/null)" ]; do NEXT=$((NEXT+1)); done
  printf -v "$1" %s "$NEXT"; NEXT=$((NEXT+1)); }
free_port B; free_port P_HA; free_port P_NG; free_port P_US
declare -A PORT=([haproxy]=$P_HA [nginx]=$P_NG [usher]=$P_US)
TARGETS="haproxy nginx usher"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/tls.key" -out "$W/tls.crt" \
  -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
cat "$W/tls.crt" "$W/tls.key" > "$W/tls.pem"
chmod 755 "$W"

cat > "$W/backend.conf" <<EOF
worker_processes 1; daemon off; pid $W/backend.pid; error_log $W/backend.err warn;
events { worker_connections 8192; }
http { access_log off;
  server { listen 127.0.0.1:$B backlog=4096; location / { return 200 "hello from backend\n"; } }
}
EOF
cat > "$W/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:$P_HA ssl crt $W/tls.pem alpn http/1.1
  default_backend be
backend be
  http-reuse always
  server b1 127.0.0.1:$B
EOF
cat > "$W/nginxlb.conf" <<EOF
worker_processes 1; daemon off; pid $W/nginxlb.pid; error_log $W/nginxlb.err warn;
events { worker_connections 8192; }
http { access_log off;
  upstream be { server 127.0.0.1:$B; keepalive 128; }
  server { listen 127.0.0.1:$P_NG ssl backlog=4096;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_certificate $W/tls.crt; ssl_certificate_key $W/tls.key;
    ssl_session_cache shared:SSL:10m; ssl_session_tickets on;
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
EOF

nginx -c "$W/backend.conf" -p "$W" & PIDS+=($!)
nginx -c "$W/nginxlb.conf" -p "$W" & PIDS+=($!); NG_PID=$!
haproxy -f "$W/haproxy.cfg" -db > "$W/haproxy.log" 2>&1 & PIDS+=($!); HA_PID=$!
"$BIN" --listen "https://127.0.0.1:$P_US" --cert "$W/tls.crt" --key "$W/tls.key" \
  --backend "http://127.0.0.1:$B" --threads 1 > "$W/usher.log" 2>&1 & PIDS+=($!); US_PID=$!
declare -A PID=([haproxy]=$HA_PID [nginx]=$NG_PID [usher]=$US_PID)

for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$B/" && break; sleep 0.1; done
declare -A DEAD=()
for t in $TARGETS; do
  ok=
  for _ in $(seq 1 100); do
    curl -kfs -o /dev/null "https://127.0.0.1:${PORT[$t]}/" && { ok=1; break; }
    kill -0 "${PID[$t]}" 2>/dev/null || break; sleep 0.1
  done
  if [ -z "$ok" ]; then
    [ "$t" = usher ] || { echo "tls_handshakes.sh: $t does not answer https on port ${PORT[$t]}" >&2
      tail -5 "$W"/*.log "$W"/*.err 2>/dev/null >&2; exit 1; }
    DEAD[$t]=1; echo "# usher does not serve, its rows are INVALID: $(tail -2 "$W/usher.log" | tr '\n' ' ')"
  fi
done

# CPU time (clock ticks: "user system") of a proxy's processes: the pid and its children
cpu_ticks() { local u=0 s=0 p pu ps
  for p in ${PID[$1]} $(pgrep -P "${PID[$1]}" 2>/dev/null); do
    read -r pu ps < <(awk '{print $14, $15}' /proc/$p/stat 2>/dev/null || echo 0 0)
    u=$((u + pu)) s=$((s + ps)); done; echo "$u $s"; }
HZ=$(getconf CLK_TCK)

ver() { "$@" 2>&1 | head -1 | grep -oE '[0-9]+\.[0-9]+\.[0-9]+[^ ]*' | head -1; }
printf "# tls_handshakes.sh: nproc=%s cpu=\"%s\" kernel=%s openssl=%s haproxy=%s nginx=%s load=%s\n" \
  "$(nproc)" "$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)" "$(uname -r)" \
  "$(ver openssl version)" "$(ver haproxy -v)" "$(ver nginx -v)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf "# TLS %s, ECDSA P-256, SNI localhost, ALPN http/1.1; rounds=%s duration=%ss; client: bench/hs_client, %s processes in parallel, summed; one proxy thread each; resumed: %s\n" \
  "$TLSV" "$ROUNDS" "$DUR" "$CLIENTS" "$([ -n "$REUSE" ] && echo "a ticket the proxy did not replace is offered again (-u)" || echo "each ticket used once")"

# Resumption and close_notify, as openssl s_client sees them, per proxy
declare -A NORESUME=()
for t in $TARGETS; do
  [ -z "${DEAD[$t]:-}" ] || continue
  req='GET / HTTP/1.0\r\n\r\n'
  printf "$req" | timeout 10 openssl s_client -connect "127.0.0.1:${PORT[$t]}" -servername localhost -tls${TLSV/./_} \
    -sess_out "$W/$t.sess" -ign_eof -state > "$W/$t.s1" 2>&1 || true
  printf "$req" | timeout 10 openssl s_client -connect "127.0.0.1:${PORT[$t]}" -servername localhost -tls${TLSV/./_} \
    -sess_in "$W/$t.sess" -ign_eof > "$W/$t.s2" 2>&1 || true
  cipher=$(grep -m1 -oE '(New|Reused), TLSv[0-9.]+, Cipher is [A-Z0-9_-]+' "$W/$t.s1" | awk '{print $NF}')
  if grep -q "^Reused, TLSv$TLSV" "$W/$t.s2"; then res=yes; else res=NO; NORESUME[$t]=1; fi
  if grep -q 'alert read:warning:close notify' "$W/$t.s1"; then cn=yes
  else cn="no (an OpenSSL 3 client reading to the end sees 'unexpected eof' and drops the session: s_time -reuse never resumes)"; fi
  printf "# check %-7s s_client -sess_in: reused=%s cipher=%s close_notify=%s\n" "$t" "$res" "${cipher:-?}" "$cn"
done

median() { sort -g | awk '{a[NR]=$1} END{ if (NR==0) {print 0} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2} }'; }
printf "%-8s %-8s %9s %10s %7s %6s %10s %7s %9s\n" scenario proxy hs/s cpu_us/hs sys_us core% tickets/hs errors wrongkind
ERRNOTES=()
for sc in "${SCS[@]}"; do
  declare -A R=() CPU=() SYS=() CORE=() TIX=() ERR=() WRONG=()
  for r in $(seq 1 "$ROUNDS"); do
    for t in $TARGETS; do
      if [ -n "${DEAD[$t]:-}" ]; then R[$t]+="0 "; CPU[$t]+="0 "; SYS[$t]+="0 "; CORE[$t]+="0 "; TIX[$t]+="0 "; ERR[$t]=1; continue; fi
      read -r u0 s0 < <(cpu_ticks "$t")
      out=$("$W/hs_client" -p "${PORT[$t]}" -m "$sc" -d "$DUR" -c "$CLIENTS" -v "$TLSV" ${REUSE:+-u} 2> "$W/client.err") || true
      read -r u1 s1 < <(cpu_ticks "$t")
      read -r hs resumed full errors secs tix < <(sed -E 's/[a-z]+=//g' <<< "${out:-0 0 0 1 0 0}")
      [ "$sc" = new ] && wrong=$resumed || wrong=$full
      [ -s "$W/client.err" ] && ERRNOTES+=("$sc $t round $r: $(head -1 "$W/client.err")")
      read -r rate cpu sys core tph < <(awk -v n="$hs" -v s="$secs" -v u="$((u1-u0))" -v k="$((s1-s0))" -v hz="$HZ" -v x="$tix" 'BEGIN{
        printf "%.1f %.2f %.2f %.1f %.2f\n", (s > 0 ? n/s : 0), (n > 0 ? (u+k)/hz*1e6/n : 0), (n > 0 ? k/hz*1e6/n : 0),
          (s > 0 ? (u+k)/hz/s*100 : 0), (n > 0 ? x/n : 0) }')
      R[$t]+="$rate "; CPU[$t]+="$cpu "; SYS[$t]+="$sys "; CORE[$t]+="$core "; TIX[$t]+="$tph "
      ERR[$t]=$(( ${ERR[$t]:-0} + errors )); WRONG[$t]=$(( ${WRONG[$t]:-0} + wrong ))
    done
  done
  for t in $TARGETS; do
    m=$(tr ' ' '\n' <<< "${R[$t]}" | grep . | median)
    cpu=$(tr ' ' '\n' <<< "${CPU[$t]}" | grep . | median)
    core=$(tr ' ' '\n' <<< "${CORE[$t]}" | grep . | median)
    sys=$(tr ' ' '\n' <<< "${SYS[$t]}" | grep . | median)
    tph=$(tr ' ' '\n' <<< "${TIX[$t]}" | grep . | median)
    flag=""
    { [ "${ERR[$t]}" -gt 0 ] || [ "${WRONG[$t]:-0}" -gt 0 ] || { [ "$sc" = resumed ] && [ -n "${NORESUME[$t]:-}" ]; }; } && flag=" INVALID"
    printf "%-8s %-8s %9.0f %10.1f %7.1f %6.0f %10.2f %7d %9d%s\n" "$sc" "$t" "$m" "$cpu" "$sys" "$core" "$tph" "${ERR[$t]}" "${WRONG[$t]:-0}" "$flag"
    eval "MED_${t}_$sc=$m; CPU_${t}_$sc=$cpu; BAD_${t}_$sc=\"$flag\""
  done
  unset R CPU SYS CORE TIX ERR WRONG
done
for sc in "${SCS[@]}"; do
  eval "u=\$MED_usher_$sc h=\$MED_haproxy_$sc n=\$MED_nginx_$sc uc=\$CPU_usher_$sc hc=\$CPU_haproxy_$sc nc=\$CPU_nginx_$sc bad=\"\$BAD_usher_$sc\$BAD_haproxy_$sc\$BAD_nginx_$sc\""
  awk -v sc="$sc" -v u="$u" -v h="$h" -v n="$n" -v uc="$uc" -v hc="$hc" -v nc="$nc" -v bad="$bad" 'BEGIN{
    printf "ratio %-8s hs/s usher/haproxy=%.2f usher/nginx=%.2f  cpu_us/hs usher/haproxy=%.2f usher/nginx=%.2f%s\n",
      sc, (h>0?u/h:0), (n>0?u/n:0), (hc>0?uc/hc:0), (nc>0?uc/nc:0), (bad != "" ? " (from INVALID rows)" : "") }'
done
for e in "${ERRNOTES[@]}"; do echo "# $e"; done
