#!/usr/bin/env bash
# Starts demo backend1 on 8001, backend2 on 8002 and usher on 8000 (its admin
# API and dashboard on 127.0.0.1:9000) in the
# foreground. Ctrl-C stops all three.
set -euo pipefail
B=${1:-build}
pids=()
stop() { trap - INT TERM EXIT; kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop INT TERM EXIT
"$B/demo-backend" --port 8001 --name backend1 & pids+=($!)
"$B/demo-backend" --port 8002 --name backend2 & pids+=($!)
echo "usher: serving on http://localhost:8000 (backend1 on 8001, backend2 on 8002); Ctrl-C stops all three"
echo "usher: dashboard on http://127.0.0.1:9000/ (API: /api/v1/pools, metrics: /metrics)"
"$B/usher" --listen 0.0.0.0:8000 --backend http://127.0.0.1:8001 --backend http://127.0.0.1:8002 \
  --admin 127.0.0.1:9000 &
pids+=($!)
wait -n "${pids[@]}" || true
