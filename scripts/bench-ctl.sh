#!/usr/bin/env bash
# Control under media load, the probe in a process of its own: for each arm
# (label=binary[=yaml]) and round, a fresh server, one load generator with
# VIEWERS WHEP viewers (at nice NICE, default 0) and a second one with 0
# viewers and CONTROL control-only WebSockets timing input → answer. With
# PERF=1 a 12 s `perf record -g` of the server is taken in the steady
# window (OUT/<label>-<round>.perf.data; see scripts/perf-split.py).
# CTL_ARGS: more flags for the probe (e.g. -control-interval 1s).
# Usage: [NICE=n] [CONTROL=500] [CTL_ARGS=...] [PERF=1] scripts/bench-ctl.sh VIEWERS ROUNDS DURATION LOADGEN OUT ARM...
set -euo pipefail
# shellcheck source=scripts/bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
viewers=$1 rounds=$2 duration=$3 loadgen=$4 out=$5
shift 5
mkdir -p "$out"
port=${PORT:-18480}
ramp=${RAMP:-10s}
nv=${NICE:-0}
control=${CONTROL:-500}
for round in $(seq 1 "$rounds"); do
  for arm in "$@"; do
    label=${arm%%=*}
    # Every refused input is a bad message: the cap is raised for the probe.
    start_arm "$out" "$label" "$round" "$port" "$arm" "ws: {max_bad_messages: 100000000}"
    perfpid=""
    if [ -n "${PERF:-}" ]; then
      ( sleep $(( ${ramp%s} + 5 ))
        perf record -F 999 -e cpu-clock -g -p "$pid" -o "$out/$label-$round.perf.data" -- sleep 12 >/dev/null 2>&1 ) &
      perfpid=$!
    fi
    nice -n "$nv" "$loadgen" -url "http://127.0.0.1:$port" -viewers "$viewers" -duration "$duration" -ramp "$ramp" -pid "$pid" -json \
      > "$out/$label-$round.media.txt" 2>&1 &
    media=$!
    "$loadgen" -url "http://127.0.0.1:$port" -viewers 0 -control "$control" ${CTL_ARGS:-} -duration "$duration" -ramp "$ramp" -json \
      > "$out/$label-$round.ctl.txt" 2>&1 || true
    wait "$media" || true
    [ -n "$perfpid" ] && wait "$perfpid"
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    python3 - "$out/$label-$round.media.txt" "$out/$label-$round.ctl.txt" "$label" "$round" <<'PY'
import json, sys
def report(p):
    t = open(p).read()
    i = t.find("\n{")
    return json.loads(t[i + 1:t.rfind("}") + 1]) if i >= 0 else {}
m, c = report(sys.argv[1]), report(sys.argv[2])
if not m or not c:
    print(sys.argv[3], sys.argv[4], "no report"); sys.exit()
wl = 100 * m["window_lost"] / max(1, m["window_lost"] + m["window_packets"])
print(f'{sys.argv[3]:>10} r{sys.argv[4]} viewers {m["connected"]} {m.get("server_millicores_per_viewer", 0):.2f} mc/viewer '
      f'{m.get("server_us_per_sent_packet", 0):.2f} us/sent wloss {wl:.2f}% egress p50/p99 {m.get("server_egress_p50_ms", 0):.1f}/{m.get("server_egress_p99_ms", 0):.1f} ms '
      f'(bound {m.get("server_egress_bound_ms", 0):.1f}, ratio p99 {m.get("server_egress_bound_ratio_p99", 0):.2f}) client age p99 {m["frame_age_p99_ms"]:.1f} | '
      f'control n={c.get("control_rtt_samples", 0)} p50/p99/max {c.get("control_rtt_p50_ms", 0):.2f}/{c.get("control_rtt_p99_ms", 0):.2f}/{c.get("control_rtt_max_ms", 0):.1f} ms '
      f'fail {c.get("control_failures", 0)} | loadgen {m["client_millicores"]:.0f} mc, probe {c["client_millicores"]:.0f} mc')
PY
  done
done
