#!/usr/bin/env bash
# Usage: scripts/lab/start-static-index.sh PORT DIR [READY_PATH]
#
# Serves DIR with Python's threading http.server on 127.0.0.1:PORT in the background, e.g.:
#   - the static PEP 503 tree of scripts/lab/make-python-fixtures.sh (OUT_DIR/static) or one
#     written by scripts/lab/make-simple-index.py: /simple/<project>/ is simple/<project>/index.html.
#     An index server that lists whatever hashes its pages say, so it can list a file whose bytes
#     no longer match (pypiserver cannot: it hashes files on every listing).
#   - a Maven repository tree (scripts/lab/make-maven-fixtures.sh's repo-a/, repo-b/, mirror/, or
#     Debian's /usr/share/maven-repo). Symlinks are followed, also those leading out of DIR
#     (Debian's jars link to /usr/share/java).
#   - a GOPROXY tree of plain files (scripts/lab/make-go-fixtures.sh's OUT_DIR/proxy).
# READY_PATH (default /simple/; also $STATIC_INDEX_READY_PATH) is the path that must answer 200
# before the server counts as up, e.g. /com/example/dp/dp-core/maven-metadata.xml or
# /example.com/dp/alpha/@v/list. Files
# (T=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}):
#   T/static-index-PORT.log   one access line per request, as the Apache common format:
#                               127.0.0.1 - - [07/Dec/2026 16:35:24] "GET /simple/ HTTP/1.1" 200 -
#                             (count with scripts/lab/count-upstream.py)
#   T/static-index-PORT.pid
# Waits (max 20 s) until GET READY_PATH answers 200. No-op if already running from that pid file.
# Stop with scripts/lab/stop-static-index.sh PORT.
set -euo pipefail
port=${1:?usage: start-static-index.sh PORT DIR [READY_PATH]}
dir=${2:?usage: start-static-index.sh PORT DIR [READY_PATH]}
ready_path=${3:-${STATIC_INDEX_READY_PATH:-/simple/}}
T=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}
log=$T/static-index-$port.log pidf=$T/static-index-$port.pid
url=http://127.0.0.1:$port
[ -d "$dir" ] || { echo "no directory $dir" >&2; exit 1; }
mkdir -p "$T"

alive() { grep -qa http.server "/proc/$1/cmdline" 2>/dev/null; }
up() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$url$ready_path")" = 200 ]; }

if [ -f "$pidf" ] && alive "$(cat "$pidf")"; then
  if up; then echo "static index already running on 127.0.0.1:$port (pid $(cat "$pidf"))"; exit 0; fi
  echo "pid $(cat "$pidf") alive but $url$ready_path not answering 200" >&2; exit 1
fi
rm -f "$pidf"
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "127.0.0.1:$port is already in use by another process" >&2; exit 1
fi

# -u: the access log (stderr) is written line by line.
setsid nohup python3 -u -m http.server "$port" --bind 127.0.0.1 --directory "$(realpath "$dir")" \
  >>"$log" 2>&1 </dev/null &
echo $! > "$pidf"
for _ in $(seq 80); do
  if up; then echo "static index on $url (pid $(cat "$pidf"), dir $dir, log $log)"; exit 0; fi
  # Not `alive`: until the child has exec'd, its command line is still this script's.
  kill -0 "$(cat "$pidf")" 2>/dev/null || break
  sleep 0.25
done
echo "static index on port $port failed to start; log tail:" >&2
tail -n 20 "$log" >&2 || true
kill "$(cat "$pidf")" 2>/dev/null || true
rm -f "$pidf"
exit 1
