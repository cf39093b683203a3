#!/usr/bin/env bash
# Usage: scripts/lab/stop-registry.sh PORT
# Stops the registry started by start-registry.sh PORT (via its pid file). Data and
# log are kept. No-op if it is not running.
set -euo pipefail
port=${1:?usage: stop-registry.sh PORT}
pidf=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}/registry-$port.pid
[ -f "$pidf" ] || { echo "no registry on port $port"; exit 0; }
pid=$(cat "$pidf")
alive() { grep -qa docker-registry "/proc/$pid/cmdline" 2>/dev/null; }
if alive; then
  kill "$pid"
  for _ in $(seq 40); do alive || break; sleep 0.25; done
  if alive; then kill -9 "$pid"; fi
  echo "stopped registry on port $port (pid $pid)"
fi
rm -f "$pidf"
