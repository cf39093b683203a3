#!/usr/bin/env bash
# Usage: scripts/lab/stop-sparse-registry.sh INDEX_PORT DL_PORT
# Stops the two servers started by start-sparse-registry.sh INDEX_PORT DL_PORT (via their pid
# files in T=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}). Logs and the config.json are kept. No-op
# for one that is not running.
set -euo pipefail
usage="usage: stop-sparse-registry.sh INDEX_PORT DL_PORT"
index_port=${1:?$usage}
dl_port=${2:?$usage}
T=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}
for pidf in "$T/sparse-index-$index_port.pid" "$T/sparse-dl-$dl_port.pid"; do
  [ -f "$pidf" ] || continue
  pid=$(cat "$pidf")
  if grep -qa sparse-server "/proc/$pid/cmdline" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 40); do grep -qa sparse-server "/proc/$pid/cmdline" 2>/dev/null || break; sleep 0.25; done
    if grep -qa sparse-server "/proc/$pid/cmdline" 2>/dev/null; then kill -9 "$pid"; fi
    echo "stopped $(basename "$pidf" .pid) (pid $pid)"
  fi
  rm -f "$pidf"
done
