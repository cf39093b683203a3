#!/usr/bin/env bash
# Usage: scripts/lab/stop-goproxy.sh PORT
# Stops the Go module upstream started by start-goproxy.sh PORT (via its pid file). Its log is kept.
# No-op if it is not running.
set -euo pipefail
port=${1:?usage: stop-goproxy.sh PORT}
pidf=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}/goproxy-$port.pid
[ -f "$pidf" ] || { echo "no goproxy on port $port"; exit 0; }
pid=$(cat "$pidf")
alive() { grep -qa gosumdb "/proc/$pid/cmdline" 2>/dev/null; }
if alive; then
  kill "$pid"
  for _ in $(seq 40); do alive || break; sleep 0.25; done
  if alive; then kill -9 "$pid"; fi
  echo "stopped goproxy on port $port (pid $pid)"
fi
rm -f "$pidf"
