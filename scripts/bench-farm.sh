#!/usr/bin/env bash
# Device-farm A/B: for each arm label=binary, e2e/cmd/loadgen -devices D
# -viewers V (a private adb server with D emulated devices looping CLIP,
# V WHEP viewers each) with a 15 s CPU profile of the server.
# Usage: LOADGEN=path CLIP=clip.h264 scripts/bench-farm.sh OUT D V DURATION ARM...
# CLIP: e2e/adbdevice/media/generate.sh's gop10 recipe at -b:v 2000k
# (see BENCHMARKS.md); LOADGEN: go build -o /tmp/loadgen ./e2e/cmd/loadgen.
set -u
out=$1 d=$2 v=$3 dur=$4; shift 4
loadgen=${LOADGEN:?set LOADGEN to a built e2e/cmd/loadgen} clip=${CLIP:?set CLIP to an Annex-B clip}
mkdir -p "$out"
for arm in "$@"; do
  label=${arm%%=*}; bin=${arm#*=}
  echo "$(date -u +%FT%TZ) $label load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/load.txt"
  ( sleep 15; curl -fs "http://127.0.0.1:18791/debug/pprof/profile?seconds=15" -o "$out/$label.cpu.pprof" ) &
  "$loadgen" -devices "$d" -viewers "$v" -server "$bin" -clip "$clip" -duration "$dur" -ramp 5s -json \
    -server-yaml 'debug: {pprof_addr: "127.0.0.1:18791"}' > "$out/$label.txt" 2>&1
  wait
  grep -E "per device|server CPU|RSS|lost|frame age|datagrams" "$out/$label.txt" | grep -v '"' | sed "s/^/$label  /"
done
