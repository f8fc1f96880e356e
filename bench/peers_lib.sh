# bench/peers_lib.sh: what several bench scripts set up as ../shared/bench/peers.sh
# does, so that they measure the same programs with the same settings. Sourced
# (". bench/peers_lib.sh"), not run.
#
#   peers_cert DIR               DIR/tls.key, DIR/tls.crt and DIR/tls.pem (both):
#                                a self-signed ECDSA P-256 certificate for
#                                localhost and 127.0.0.1, valid 2 days
#   peers_backend_conf DIR B1 B2 DIR/backend.conf: one nginx worker, two ports,
#                                "hello from backend1|2\n" at /, "ok\n" at /health
#   peers_haproxy_cfg FILE B1 B2 BIND...  HAProxy as peers.sh runs it (nbthread 1,
#                                keep-alive, http-reuse always, round robin over
#                                127.0.0.1:B1 and :B2 checked every 2 s), one
#                                frontend line "bind BIND" per BIND

peers_cert() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1/tls.key" -out "$1/tls.crt" \
    -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
  cat "$1/tls.crt" "$1/tls.key" >"$1/tls.pem"
}

peers_backend_conf() {
  cat >"$1/backend.conf" <<EOF
worker_processes 1; daemon off; pid $1/backend.pid; error_log $1/backend.err warn;
events { worker_connections 8192; }
http { access_log off;
  server { listen 127.0.0.1:$2 backlog=4096; location / { return 200 "hello from backend1\n"; } location /health { return 200 "ok\n"; } }
  server { listen 127.0.0.1:$3 backlog=4096; location / { return 200 "hello from backend2\n"; } location /health { return 200 "ok\n"; } }
}
EOF
}

peers_haproxy_cfg() {
  local f=$1 b1=$2 b2=$3 b
  shift 3
  {
    printf '%s\n' global "  nbthread 1" "  maxconn 8000" defaults "  mode http" "  timeout connect 2s" \
      "  timeout client 30s" "  timeout server 30s" "  option http-keep-alive" "frontend fe"
    for b in "$@"; do echo "  bind $b"; done
    printf '%s\n' "  default_backend be" "backend be" "  balance roundrobin" "  option httpchk GET /health" \
      "  http-reuse always" "  server b1 127.0.0.1:$b1 check inter 2s" "  server b2 127.0.0.1:$b2 check inter 2s"
  } >"$f"
}
