#!/usr/bin/env bash
# Device-farm A/B: for each arm label=binary, e2e/cmd/loadgen -devices D
# -viewers V (a private adb server with D emulated devices looping CLIP,
# V WHEP viewers each) with a CPU profile of the server.
# PPROF_PORT: the server's pprof port (default 18791); PROF: the profile's
# seconds (default 15), taken from 15 s into the run.
# Usage: LOADGEN=path CLIP=clip.h264 scripts/bench-farm.sh OUT D V DURATION ARM...
# CLIP: e2e/adbdevice/media/generate.sh's gop10 recipe at -b:v 2000k
# (see BENCHMARKS.md); LOADGEN: go build -o /tmp/loadgen ./e2e/cmd/loadgen.
# Each arm also prints the device's own share: the profile's samples in the
# device path (the adb reader and AU splitting, the capture, the hub pump
# and packetizing, without the viewers' sending that the pump does inline)
# as a fraction of all samples, times the server's /proc CPU, per device.
# The scheduler and GC time its wake-ups and garbage cause are not in it.
set -u
port=${PPROF_PORT:-18791} prof=${PROF:-15}
out=$1 d=$2 v=$3 dur=$4; shift 4
loadgen=${LOADGEN:?set LOADGEN to a built e2e/cmd/loadgen} clip=${CLIP:?set CLIP to an Annex-B clip}
mkdir -p "$out"
for arm in "$@"; do
  label=${arm%%=*}; bin=${arm#*=}
  echo "$(date -u +%FT%TZ) $label load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/load.txt"
  ( sleep 15; curl -fs "http://127.0.0.1:$port/debug/pprof/profile?seconds=$prof" -o "$out/$label.cpu.pprof" ) &
  "$loadgen" -devices "$d" -viewers "$v" -server "$bin" -clip "$clip" -duration "$dur" -ramp 5s -json \
    -server-yaml "debug: {pprof_addr: \"127.0.0.1:$port\"}" > "$out/$label.txt" 2>&1
  wait
  grep -E "per device|server CPU|RSS|lost|frame age|datagrams" "$out/$label.txt" | grep -v '"' | sed "s/^/$label  /"
  mc=$(grep -o '"server_millicores": *[0-9.]*' "$out/$label.txt" | grep -o '[0-9.]*$')
  frac=$(go tool pprof -top -nodecount=100000 \
    -focus='adb\.\(\*segment\)\.read|adb\.\(\*screenCapture\)|adb\.\(\*scrcpy|app\.\(\*Hub\)\.(pump|control)' \
    -ignore='sendPool' "$out/$label.cpu.pprof" 2>/dev/null | sed -n 's/.*accounting for [^,]*, \([0-9.]*\)% of.*/\1/p')
  [ -n "${mc:-}" ] && [ -n "${frac:-}" ] && awk -v l="$label" -v f="$frac" -v m="$mc" -v d="$d" \
    'BEGIN { printf "%s  device path (profile %.1f %% of samples x server CPU) %.2f millicores per device\n", l, f, f / 100 * m / d }'
done
