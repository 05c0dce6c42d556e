#!/usr/bin/env bash
# Installs what the tests need when it is missing: Debian's chromium (the
# browser e2e test), ffmpeg (ffprobe decodes what e2e clients received),
# adb, redis-server, redis-sentinel and redis-tools (redis-cli creates the
# test Redis Cluster), prometheus (with promtool, for the alert rules),
# firefox-esr (the Firefox e2e tests) and coturn (the TURN relay e2e test).
# Idempotent; needs root or sudo
# only when something is missing.
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v adb >/dev/null 2>&1 || need+=(adb)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || need+=(redis-sentinel)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
# Debian's prometheus package ships promtool too.
{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } || need+=(prometheus)
command -v firefox-esr >/dev/null 2>&1 || need+=(firefox-esr)
command -v turnserver >/dev/null 2>&1 || need+=(coturn)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

echo "installing: ${need[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt/dpkg to finish rather than failing on its lock.
for _ in $(seq 1 60); do
  if ! fuser /var/lib/dpkg/lock-frontend >/dev/null 2>&1; then break; fi
  sleep 5
done
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
