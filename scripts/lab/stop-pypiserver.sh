#!/usr/bin/env bash
# Usage: scripts/lab/stop-pypiserver.sh PORT
# Stops the pypiserver started by start-pypiserver.sh PORT (via its pid file). Its log is kept.
# No-op if it is not running.
set -euo pipefail
port=${1:?usage: stop-pypiserver.sh PORT}
pidf=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}/pypiserver-$port.pid
[ -f "$pidf" ] || { echo "no pypiserver on port $port"; exit 0; }
pid=$(cat "$pidf")
alive() { grep -qa pypi-server "/proc/$pid/cmdline" 2>/dev/null; }
if alive; then
  kill "$pid"
  for _ in $(seq 40); do alive || break; sleep 0.25; done
  if alive; then kill -9 "$pid"; fi
  echo "stopped pypiserver on port $port (pid $pid)"
fi
rm -f "$pidf"
