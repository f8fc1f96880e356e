#!/usr/bin/env bash
# h2spec (the HTTP/2 conformance suite) against usher, over TLS (ALPN h2)
# and over a plain listener (prior knowledge), both with --protocols h2
# (HTTP/2 only, as HAProxy's proto h2: a port that also serves HTTP/1 must
# answer an invalid preface as HTTP/1, which h2spec 3.5/2 counts as a failure).
#
#   tests/h2spec/run.sh [BUILD_DIR]      (default: build; `make h2spec` runs it)
#
# Starts one demo backend and one usher with a TLS listener and a plain one,
# on free loopback ports, runs `h2spec -t -k` against the first and `h2spec`
# against the second, prints both summaries and every failed case, stops
# what it started by PID, and exits non-zero if a case failed or a run did
# not finish. Environment: H2SPEC (default BUILD_DIR/h2spec, built with
# ../shared/tools/h2spec/build.sh), H2SPEC_ARGS (more h2spec flags, e.g.
# a spec section such as "http2/6.5"), H2SPEC_TIMEOUT (seconds for each
# whole run, default 600), H2SPEC_JUNIT_DIR (where the JUnit reports go;
# default a temporary directory, removed at the end).
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build}
H2SPEC=${H2SPEC:-$B/h2spec}
USHER=${USHER_BIN:-$B/usher}
DEMO=${DEMO_BIN:-$B/demo-backend}
RUN_TIMEOUT=${H2SPEC_TIMEOUT:-600}
for f in "$H2SPEC" "$USHER" "$DEMO"; do
  [ -x "$f" ] || { echo "h2spec/run.sh: $f is missing (make all; /work/shared/tools/h2spec/build.sh $B/h2spec)" >&2; exit 2; }
done

T=$(mktemp -d /tmp/usher-h2spec.XXXXXX)
pids=()
stop() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  [ -n "${H2SPEC_JUNIT_DIR:-}" ] || rm -rf "$T"
}
trap stop EXIT
trap 'exit 130' INT TERM

# three free loopback ports (bound to 0, then released)
read -r PB PT PP < <(/usr/bin/python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
for s in ss: s.close()')

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1 || { echo "h2spec/run.sh: openssl failed" >&2; exit 2; }

"$DEMO" --port "$PB" --name backend1 --host 127.0.0.1 >"$T/demo.log" 2>&1 &
pids+=($!)
"$USHER" --listen "https://127.0.0.1:$PT" --listen "127.0.0.1:$PP" --cert "$T/cert.pem" --key "$T/key.pem" \
  --backend "http://127.0.0.1:$PB" --threads 1 --protocols h2 >"$T/usher.log" 2>&1 &
USHER_PID=$!
pids+=($USHER_PID)

ready() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$PB" "$PT" "$PP"; do
  for i in $(seq 1 200); do ready "$port" && break; sleep 0.05; done
  ready "$port" || { echo "h2spec/run.sh: nothing listens on $port; usher's log:" >&2; cat "$T/usher.log" >&2; exit 2; }
done

[ -n "${H2SPEC_JUNIT_DIR:-}" ] && { mkdir -p "$H2SPEC_JUNIT_DIR"; J=$H2SPEC_JUNIT_DIR; } || J=$T
status=0
run() { # NAME FLAGS...
  local name=$1; shift
  echo "== h2spec $name: $H2SPEC $* ${H2SPEC_ARGS:-}"
  # shellcheck disable=SC2086
  timeout "$RUN_TIMEOUT" "$H2SPEC" "$@" -j "$J/h2spec-$name.xml" ${H2SPEC_ARGS:-} >"$T/h2spec-$name.log" 2>&1
  local rc=$?
  # the failures h2spec lists at the end, then its summary line
  sed -n '/^Failures:/,$p' "$T/h2spec-$name.log" | head -n 400
  local summary
  summary=$(grep -E '^[0-9]+ tests, [0-9]+ passed, [0-9]+ skipped, [0-9]+ failed' "$T/h2spec-$name.log" | tail -n1)
  if [ -z "$summary" ]; then
    echo "h2spec $name did not finish (exit status $rc); its last lines:"
    tail -n 20 "$T/h2spec-$name.log"
    status=1
  else
    echo "h2spec $name: $summary"
    case $summary in *" 0 failed"*) [ "$rc" -eq 0 ] || status=1 ;; *) status=1 ;; esac
  fi
  if ! kill -0 "$USHER_PID" 2>/dev/null; then
    echo "h2spec/run.sh: usher exited during the $name run; its log:"
    tail -n 50 "$T/usher.log"
    status=1
  fi
}
run tls -t -k -h 127.0.0.1 -p "$PT"
run prior-knowledge -h 127.0.0.1 -p "$PP"

# usher must stop cleanly too (exit 0 within its grace time)
kill -TERM "$USHER_PID"
for _ in $(seq 1 300); do kill -0 "$USHER_PID" 2>/dev/null || break; sleep 0.1; done
wait "$USHER_PID"
rc=$?
[ "$rc" -eq 0 ] || { echo "h2spec/run.sh: usher exited with status $rc after SIGTERM; its log:"; tail -n 50 "$T/usher.log"; status=1; }
if grep -qE "ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:" "$T/usher.log"; then
  echo "h2spec/run.sh: sanitizer report in usher's log:"; grep -A30 -m1 -E "ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:" "$T/usher.log"
  status=1
fi
[ $status -eq 0 ] && echo "h2spec: 0 failed over TLS and over prior knowledge" || echo "h2spec: FAILED (see above)"
exit $status
