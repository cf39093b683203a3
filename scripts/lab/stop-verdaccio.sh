#!/usr/bin/env bash
# Usage: scripts/lab/stop-verdaccio.sh PORT
# Stops the Verdaccio started by start-verdaccio.sh PORT (via its pid file). Storage, config and
# log are kept. No-op if it is not running.
set -euo pipefail
port=${1:?usage: stop-verdaccio.sh PORT}
pidf=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}/verdaccio-$port.pid
[ -f "$pidf" ] || { echo "no verdaccio on port $port"; exit 0; }
pid=$(cat "$pidf")
alive() { grep -qa verdaccio "/proc/$pid/cmdline" 2>/dev/null; }
if alive; then
  kill "$pid"
  for _ in $(seq 40); do alive || break; sleep 0.25; done
  if alive; then kill -9 "$pid"; fi
  echo "stopped verdaccio on port $port (pid $pid)"
fi
rm -f "$pidf"
