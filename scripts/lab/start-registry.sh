#!/usr/bin/env bash
# Usage: scripts/lab/start-registry.sh PORT [DATA_DIR]
#
# Starts the distribution registry (/usr/bin/docker-registry) in the background on
# 127.0.0.1:PORT with filesystem storage in DATA_DIR, deletes enabled and the
# access log on. Files (T=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}):
#   T/registry-PORT/      default DATA_DIR
#   T/registry-PORT.yml   generated config
#   T/registry-PORT.log   stdout+stderr: app log (stderr) + Apache combined access log (stdout)
#   T/registry-PORT.pid
# Waits (max 20 s) until GET /v2/ returns 200. No-op if already running from that pid file.
# Stop with scripts/lab/stop-registry.sh PORT.
set -euo pipefail
port=${1:?usage: start-registry.sh PORT [DATA_DIR]}
T=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}
data=${2:-$T/registry-$port}
conf=$T/registry-$port.yml log=$T/registry-$port.log pidf=$T/registry-$port.pid
url=http://127.0.0.1:$port/v2/
mkdir -p "$T" "$data"

alive() { grep -qa docker-registry "/proc/$1/cmdline" 2>/dev/null; }
up() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 200 ]; }

if [ -f "$pidf" ] && alive "$(cat "$pidf")"; then
  if up; then echo "registry already running on 127.0.0.1:$port (pid $(cat "$pidf"))"; exit 0; fi
  echo "pid $(cat "$pidf") alive but $url not answering 200" >&2; exit 1
fi
rm -f "$pidf"
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "127.0.0.1:$port is already in use by another process" >&2; exit 1
fi

cat > "$conf" <<YAML
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $(realpath "$data")
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: depproxy-test-secret
YAML

setsid nohup /usr/bin/docker-registry serve "$conf" >>"$log" 2>&1 </dev/null &
echo $! > "$pidf"
for _ in $(seq 80); do
  if up; then echo "registry on 127.0.0.1:$port (pid $(cat "$pidf"), data $data, log $log)"; exit 0; fi
  alive "$(cat "$pidf")" || break
  sleep 0.25
done
echo "registry on port $port failed to start; log tail:" >&2
tail -n 20 "$log" >&2
kill "$(cat "$pidf")" 2>/dev/null || true
rm -f "$pidf"
exit 1
