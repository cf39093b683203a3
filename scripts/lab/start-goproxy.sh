#!/usr/bin/env bash
# Usage: scripts/lab/start-goproxy.sh PORT DIR
#
# Starts the lab's Go module upstream, scripts/lab/gosumdb (built once by build-go-tool.sh into
# $HOME/.cache/depproxy/bin/gosumdb), in the background on 127.0.0.1:PORT, for DIR made by
# scripts/lab/make-go-fixtures.sh. It serves, on that one port:
#   - the GOPROXY tree DIR/proxy as plain files: /<escaped module>/@v/list, /@v/<v>.info|.mod|.zip,
#     /<escaped module>/@latest (read from disk on every request: tamper-go-zip.sh shows at once)
#   - the checksum database sum.example.com of the fixtures' original go.sum lines, as a proxy
#     fronting it does: /sumdb/sum.example.com/supported (200), .../lookup/<module>@<v>,
#     .../tile/..., .../latest; its verifier key is DIR/sumdb.key. The go command, given
#       GOPROXY=http://127.0.0.1:PORT GOSUMDB="$(cat DIR/sumdb.key)"
#     asks <GOPROXY>/sumdb/sum.example.com/supported, then looks up and fetches tiles through
#     GOPROXY (never a host of its own). The signed tree is the same on every start (same key,
#     records added in sorted order), so a client's remembered tree head stays consistent.
# Files (T=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}):
#   T/goproxy-PORT.log   one access line per request, Apache common format:
#                          127.0.0.1 - - [07/Dec/2026:16:35:24 +0000] "GET /example.com/dp/alpha/@v/list HTTP/1.1" 200 14
#                        (count with scripts/lab/count-upstream.py: kinds list, info, mod, zip,
#                        latest, sumdb)
#   T/goproxy-PORT.out   its stdout+stderr
#   T/goproxy-PORT.pid
# Waits (max 20 s) until GET /sumdb/sum.example.com/supported answers 200. No-op if already
# running from that pid file. Stop with scripts/lab/stop-goproxy.sh PORT.
set -euo pipefail
port=${1:?usage: start-goproxy.sh PORT DIR}
dir=${2:?usage: start-goproxy.sh PORT DIR}
T=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}
log=$T/goproxy-$port.log out=$T/goproxy-$port.out pidf=$T/goproxy-$port.pid
url=http://127.0.0.1:$port
here=$(dirname "$(realpath "$0")")
[ -d "$dir/proxy" ] && [ -f "$dir/sumdb/skey" ] && [ -f "$dir/sumdb/gosum" ] \
  || { echo "$dir is not a make-go-fixtures.sh output (proxy/, sumdb/skey, sumdb/gosum)" >&2; exit 1; }
mkdir -p "$T"

alive() { grep -qa gosumdb "/proc/$1/cmdline" 2>/dev/null; }
up() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/sumdb/sum.example.com/supported")" = 200 ]; }

if [ -f "$pidf" ] && alive "$(cat "$pidf")"; then
  if up; then echo "goproxy already running on 127.0.0.1:$port (pid $(cat "$pidf"))"; exit 0; fi
  echo "pid $(cat "$pidf") alive but $url/sumdb/sum.example.com/supported not answering 200" >&2; exit 1
fi
rm -f "$pidf"
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "127.0.0.1:$port is already in use by another process" >&2; exit 1
fi
bin=$("$here/build-go-tool.sh" gosumdb)

setsid nohup "$bin" -addr "127.0.0.1:$port" -dir "$(realpath "$dir")" -log "$log" \
  >>"$out" 2>&1 </dev/null &
echo $! > "$pidf"
for _ in $(seq 80); do
  if up; then echo "goproxy on $url (pid $(cat "$pidf"), dir $dir, log $log)"; exit 0; fi
  kill -0 "$(cat "$pidf")" 2>/dev/null || break
  sleep 0.25
done
echo "goproxy on port $port failed to start; output tail:" >&2
tail -n 20 "$out" >&2 || true
kill "$(cat "$pidf")" 2>/dev/null || true
rm -f "$pidf"
exit 1
