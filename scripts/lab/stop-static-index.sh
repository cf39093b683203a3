#!/usr/bin/env bash
# Usage: scripts/lab/stop-static-index.sh PORT
# Stops the static index server started by start-static-index.sh PORT (via its pid file). Its log is kept.
# No-op if it is not running.
set -euo pipefail
port=${1:?usage: stop-static-index.sh PORT}
pidf=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}/static-index-$port.pid
[ -f "$pidf" ] || { echo "no static index on port $port"; exit 0; }
pid=$(cat "$pidf")
alive() { grep -qa http.server "/proc/$pid/cmdline" 2>/dev/null; }
if alive; then
  kill "$pid"
  for _ in $(seq 40); do alive || break; sleep 0.25; done
  if alive; then kill -9 "$pid"; fi
  echo "stopped static index on port $port (pid $pid)"
fi
rm -f "$pidf"
