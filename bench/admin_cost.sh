#!/usr/bin/env bash
# What the metrics cost: ../shared/bench/peers.sh (scenario small) with usher's
# admin listener off, and on with /metrics scraped every second, interleaved,
# ROUNDS times each; prints usher's row (req/s, p99, cpu_us/req) of every run.
#
#   bench/admin_cost.sh [-b BIN] [-o OTHER_BIN] [-n RUNS] [-s SCENARIO]
#
# BIN        usher (default build/usher)
# OTHER_BIN  another usher to run beside, admin off (e.g. a build of main from
#            before the counters), for the cost of counting itself
# RUNS       runs of each side (default 3)
#
# "on" starts usher through a wrapper that exec()s it with --admin
# 127.0.0.1:19099 (so peers.sh measures usher's own CPU time, scrapes included),
# and a loop that scrapes /metrics every second for the whole run (its own CPU
# time is not usher's, as a Prometheus elsewhere would not be).
set -euo pipefail

BIN=build/usher
OTHER=
RUNS=3
SC=small
while getopts "b:o:n:s:h" o; do
  case $o in
    b) BIN=$OPTARG ;; o) OTHER=$OPTARG ;; n) RUNS=$OPTARG ;; s) SC=$OPTARG ;;
    *) sed -n '2,17p' "$0"; exit 2 ;;
  esac
done
PEERS=$(dirname "$0")/../../shared/bench/peers.sh
[ -x "$PEERS" ] || PEERS=/work/shared/bench/peers.sh
W=$(mktemp -d /tmp/usher-cost.XXXXXX)
SCRAPER=
cleanup() { [ -n "$SCRAPER" ] && kill "$SCRAPER" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
ABS=$(readlink -f "$BIN")
cat >"$W/usher-admin" <<EOF
#!/bin/sh
exec "$ABS" "\$@" --admin 127.0.0.1:19099
EOF
chmod +x "$W/usher-admin"

row() { # label, peers.sh output
  awk -v l="$1" '$2 == "usher" {printf "%-10s req/s %8s  p99_ms %8s  cpu_us/req %6s%s\n", l, $3, $5, $7, ($8 ? " " $8 : "")}' "$2"
}
for r in $(seq 1 "$RUNS"); do
  "$PEERS" -b "$BIN" -s "$SC" >"$W/off.txt" 2>&1
  row "off" "$W/off.txt"
  ( while :; do curl -s -o /dev/null http://127.0.0.1:19099/metrics || true; sleep 1; done ) &
  SCRAPER=$!
  "$PEERS" -b "$W/usher-admin" -s "$SC" >"$W/on.txt" 2>&1
  kill "$SCRAPER" 2>/dev/null || true
  wait "$SCRAPER" 2>/dev/null || true
  SCRAPER=
  row "on+scrape" "$W/on.txt"
  if [ -n "$OTHER" ]; then
    "$PEERS" -b "$OTHER" -s "$SC" >"$W/other.txt" 2>&1
    row "other" "$W/other.txt"
  fi
done
