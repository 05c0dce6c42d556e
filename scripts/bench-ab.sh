#!/usr/bin/env bash
# Interleaved A/B runs of the fan-out: each round starts a fresh server per
# arm and points e2e/cmd/loadgen at it, arms alternating, so that every arm
# sees the same (shared, noisy) machine. An arm is label=binary[=yaml], the
# yaml text being appended to the base config (e.g. "webrtc: {send_batch: 1}").
# Usage: scripts/bench-ab.sh VIEWERS ROUNDS DURATION LOADGEN OUTDIR ARM...
# Each run writes OUTDIR/<label>-<round>.json (the loadgen report) and a
# line to stdout; load average before each run goes to OUTDIR/load.txt.
# PROF=SECONDS also takes a CPU profile of that length from each server
# (OUTDIR/<label>-<round>.cpu.pprof, a goroutine count in .gor.txt), starting
# 5 s after the ramp.
set -euo pipefail
# shellcheck source=scripts/bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
viewers=$1 rounds=$2 duration=$3 loadgen=$4 out=$5
shift 5
mkdir -p "$out"
port=${PORT:-18480}
mode=${MODE:-whep}
ramp=${RAMP:-10s}
extra_args=${LOADGEN_ARGS:-}
prof=${PROF:-}
pprof_port=$((port + 1))
for round in $(seq 1 "$rounds"); do
  for arm in "$@"; do
    label=${arm%%=*}
    pprof_yaml=""
    [ -n "$prof" ] && pprof_yaml="debug: {pprof_addr: \"127.0.0.1:$pprof_port\"}"
    start_arm "$out" "$label" "$round" "$port" "$arm" "$pprof_yaml"
    if [ -n "$prof" ]; then
      ( sleep $(( ${ramp%s} + 5 ))
        curl -fs "http://127.0.0.1:$pprof_port/debug/pprof/profile?seconds=$prof" -o "$out/$label-$round.cpu.pprof"
        curl -fs "http://127.0.0.1:$pprof_port/debug/pprof/goroutine?debug=1" | head -1 > "$out/$label-$round.gor.txt" ) &
    fi
    # shellcheck disable=SC2086
    "$loadgen" -url "http://127.0.0.1:$port" -viewers "$viewers" -mode "$mode" -duration "$duration" -ramp "$ramp" -pid "$pid" -json $extra_args \
      > "$out/$label-$round.txt" 2>&1 || true
    sed -n '/^{/,/^}/p' "$out/$label-$round.txt" > "$out/$label-$round.json"
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    python3 - "$out/$label-$round.json" "$label" "$round" <<'PY'
import json,sys
try: r=json.load(open(sys.argv[1]))
except Exception as e: print(sys.argv[2], sys.argv[3], "no report", e); sys.exit()
lost=r["lost_packets"]; tot=lost+r["received_packets"]
print(f'{sys.argv[2]:>10} r{sys.argv[3]} viewers {r["connected"]}/{r["viewers"]} cpu {r.get("server_millicores",0):.0f} mc {r.get("server_us_per_sent_packet",0):.2f} us/sent {r.get("server_us_per_packet",0):.2f} us/rcvd {r.get("datagrams_per_send_call",0):.1f} d/call wloss {100*r["window_lost"]/max(1,r["window_lost"]+r["window_packets"]):.2f}% = {r.get("server_millicores_per_viewer",0):.2f}/viewer  rss/viewer {r.get("server_rss_per_viewer_kib",0):.0f} KiB  loss {100*lost/max(tot,1):.3f}%  age p50/p99 {r["frame_age_p50_ms"]:.1f}/{r["frame_age_p99_ms"]:.1f} ms  egress p50/p99 {r.get("server_egress_p50_ms",0):.1f}/{r.get("server_egress_p99_ms",0):.1f} ms (bound {r.get("server_egress_bound_ms",0):.1f}, p99 ratio {r.get("server_egress_bound_ratio_p99",0):.2f})  kbps {r["bitrate_per_viewer_mean_kbps"]:.0f}  client {r["client_millicores"]:.0f} mc')
PY
  done
done
