# Shared by bench-ab.sh and bench-ctl.sh (source it): one arm's server.
#
# start_arm OUT LABEL ROUND PORT ARM [EXTRA_YAML]: parses ARM
# (label=binary[=yaml]), writes OUT/LABEL.yaml (loopback, limits out of the
# way, warn logs, EXTRA_YAML, then the arm's yaml), starts the binary with
# it, waits for /readyz, appends the load average to OUT/load.txt and sets
# $pid to the server's pid.
start_arm() {
  local out=$1 label=$2 round=$3 port=$4 arm=$5 extra=${6:-}
  local rest=${arm#*=}
  local bin=${rest%%=*} yaml=""
  [ "$rest" != "$bin" ] && yaml=${rest#*=}
  local cfg="$out/$label.yaml"
  cat > "$cfg" <<YAML
http: {addr: "127.0.0.1:$port"}
limits: {sessions_total: 10000, sessions_per_device: 10000, sessions_per_owner: 10000, create_rate: 1000, create_burst: 1000, global_create_rate: 1000, global_create_burst: 1000}
log: {level: warn}
$extra
$yaml
YAML
  "$bin" -config "$cfg" > "$out/$label-$round.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  echo "$(date -u +%FT%TZ) $label round $round load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/load.txt"
}
