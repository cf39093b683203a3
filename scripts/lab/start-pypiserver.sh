#!/usr/bin/env bash
# Usage: scripts/lab/start-pypiserver.sh PORT PACKAGES_DIR
#
# Starts pypiserver (installed by scripts/install-test-deps.sh into the venv $PYPI_LAB_VENV,
# default $HOME/.cache/depproxy/pypiserver-venv, with waitress: several requests at once) in the
# background on 127.0.0.1:PORT serving the wheels and sdists in PACKAGES_DIR: /simple/ (PEP 503
# HTML, file links ../../packages/<file>#sha256=…, hashed from the file on every listing),
# /packages/<file>. No authentication (-P . -a .), no fallback redirect to any other index.
# Files (T=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}):
#   T/pypiserver-PORT.log   its log, one line per request on arrival:
#                             2025-01-01 12:00:00,000 140001 request GET /simple/dp-alpha/
#                           then one per answer (... response 200 OK); count with
#                           scripts/lab/count-upstream.py --format pypiserver
#   T/pypiserver-PORT.out   stdout+stderr
#   T/pypiserver-PORT.pid
# Waits (max 30 s) until GET /simple/ answers 200. No-op if already running from that pid file.
# Stop with scripts/lab/stop-pypiserver.sh PORT.
set -euo pipefail
port=${1:?usage: start-pypiserver.sh PORT PACKAGES_DIR}
packages=${2:?usage: start-pypiserver.sh PORT PACKAGES_DIR}
T=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}
venv=${PYPI_LAB_VENV:-$HOME/.cache/depproxy/pypiserver-venv}
log=$T/pypiserver-$port.log out=$T/pypiserver-$port.out pidf=$T/pypiserver-$port.pid
url=http://127.0.0.1:$port
[ -x "$venv/bin/pypi-server" ] || { echo "$venv/bin/pypi-server is missing: run scripts/install-test-deps.sh" >&2; exit 1; }
[ -d "$packages" ] || { echo "no packages directory $packages" >&2; exit 1; }
mkdir -p "$T"

alive() { grep -qa pypi-server "/proc/$1/cmdline" 2>/dev/null; }
up() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/simple/")" = 200 ]; }

if [ -f "$pidf" ] && alive "$(cat "$pidf")"; then
  if up; then echo "pypiserver already running on 127.0.0.1:$port (pid $(cat "$pidf"))"; exit 0; fi
  echo "pid $(cat "$pidf") alive but $url/simple/ not answering 200" >&2; exit 1
fi
rm -f "$pidf"
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "127.0.0.1:$port is already in use by another process" >&2; exit 1
fi

# --server auto picks waitress (threaded) when it is installed, as it is in the venv.
# -v: requests are logged at info. The request line is logged before the route runs, once per
# request (bottle's before_request hook), so it counts what the upstream was asked.
setsid nohup "$venv/bin/pypi-server" run -v -i 127.0.0.1 -p "$port" -P . -a . \
  --disable-fallback --server auto --hash-algo sha256 \
  --log-file "$log" --log-stream none \
  --log-frmt '%(asctime)s %(thread)d %(message)s' \
  --log-req-frmt 'request %(REQUEST_METHOD)s %(PATH_INFO)s' \
  --log-res-frmt 'response %(status)s' \
  "$(realpath "$packages")" >>"$out" 2>&1 </dev/null &
echo $! > "$pidf"
for _ in $(seq 120); do
  if up; then echo "pypiserver on $url (pid $(cat "$pidf"), packages $packages, log $log)"; exit 0; fi
  # Not `alive`: until the child has exec'd, its command line is still this script's.
  kill -0 "$(cat "$pidf")" 2>/dev/null || break
  sleep 0.25
done
echo "pypiserver on port $port failed to start; output tail:" >&2
tail -n 20 "$out" "$log" >&2 2>/dev/null || true
kill "$(cat "$pidf")" 2>/dev/null || true
rm -f "$pidf"
exit 1
