#!/usr/bin/env bash
# CPU cost of metrics and stats collection: the same 100-viewer load against
# the service with metrics.enabled true and false, alternating, in one run.
# Usage: scripts/bench-metrics.sh [viewers] [rounds] [duration]
set -euo pipefail
viewers=${1:-100}
rounds=${2:-2}
duration=${3:-40s}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/mediasvc" "$root/cmd/mediasvc"
go build -o "$tmp/loadgen" "$root/e2e/cmd/loadgen"
port=18470
for round in $(seq 1 "$rounds"); do
  for enabled in true false; do
    cat > "$tmp/cfg.yaml" <<YAML
http: {addr: "127.0.0.1:$port"}
limits: {sessions_per_owner: 1000, create_rate: 1000, create_burst: 1000, global_create_rate: 1000, global_create_burst: 1000}
log: {level: warn}
metrics: {enabled: $enabled}
YAML
    "$tmp/mediasvc" -config "$tmp/cfg.yaml" > "$tmp/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
    scraper=""
    if [ "$enabled" = true ]; then
      # A Prometheus-like scrape every 5 s, so exposition is in the cost.
      ( while true; do curl -fs "http://127.0.0.1:$port/metrics" >/dev/null || true; sleep 5; done ) &
      scraper=$!
    fi
    echo "== round $round metrics.enabled=$enabled"
    "$tmp/loadgen" -url "http://127.0.0.1:$port" -viewers "$viewers" -mode ws -duration "$duration" -ramp 10s -settle 5s -pid "$pid" 2>&1 | grep -Ei 'server|cpu|rss|viewers|frames' || true
    [ -n "$scraper" ] && kill "$scraper" 2>/dev/null || true
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  done
done
