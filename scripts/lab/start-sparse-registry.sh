#!/usr/bin/env bash
# Usage: scripts/lab/start-sparse-registry.sh INDEX_PORT DL_PORT DIR
#
# Serves the Cargo sparse registry of scripts/lab/make-cargo-fixtures.sh (DIR = its OUT_DIR) as two
# servers, as a registry and its CDN are: DIR/index on 127.0.0.1:INDEX_PORT (the index root:
# /config.json, /1/x, /3/d/dpx, /dp/-a/dp-alpha, ...) and DIR/dl on 127.0.0.1:DL_PORT (the .crate
# files). Both are scripts/lab/sparse-server.py (Python's threading http.server: Last-Modified,
# If-Modified-Since → 304, no ETag), in the background. config.json is written at start, as
#   {"dl": "http://127.0.0.1:DL_PORT/crates/{prefix}/{crate}/{crate}-{version}.crate"}
# so a client (or proxy) must read it to find the download server. Environment:
#   SPARSE_DL_STYLE=plain    dl = "http://127.0.0.1:DL_PORT" (cargo appends /{crate}/{version}/download)
#   SPARSE_DL_URL=URL        config.json names URL instead of http://127.0.0.1:DL_PORT (something in
#                            front of the download server: a CDN, bench/run.sh BR's meter)
#   SPARSE_AUTH_TOKEN=TOKEN  config.json says "auth-required": true and both servers answer 401 to
#                            any request without `Authorization: TOKEN` (config.json included)
# Files (T=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}):
#   T/sparse-index-INDEX_PORT.config.json   the config.json served
#   T/sparse-index-INDEX_PORT.log           access lines, Apache common format with body sizes:
#   T/sparse-dl-DL_PORT.log                   127.0.0.1 - - [07/Dec/2026 16:35:24] "GET /1/x HTTP/1.1" 200 171
#                                           (count with scripts/lab/count-upstream.py)
#   T/sparse-index-INDEX_PORT.pid, T/sparse-dl-DL_PORT.pid
# Waits (max 20 s) until both answer. No-op if both are already running from those pid files (the
# config is not rewritten then: stop first to change it). Stop with
# scripts/lab/stop-sparse-registry.sh INDEX_PORT DL_PORT.
set -euo pipefail
usage="usage: start-sparse-registry.sh INDEX_PORT DL_PORT DIR"
index_port=${1:?$usage}
dl_port=${2:?$usage}
dir=${3:?$usage}
T=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}
here=$(dirname "$(realpath "$0")")
token=${SPARSE_AUTH_TOKEN:-}
[ -d "$dir/index" ] && [ -d "$dir/dl" ] || { echo "$dir has no index/ and dl/ (make-cargo-fixtures.sh)" >&2; exit 1; }
mkdir -p "$T"
config=$T/sparse-index-$index_port.config.json

alive() { grep -qa sparse-server "/proc/$1/cmdline" 2>/dev/null; }
# up PORT PATH: 200, or 401 when a token is required (what an unauthenticated probe gets).
up() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' ${token:+-H "Authorization: $token"} "http://127.0.0.1:$1$2")
  [ "$code" = 200 ] || [ "$code" = 404 ]
}
running() { local pidf=$1; [ -f "$pidf" ] && alive "$(cat "$pidf")"; }

index_pidf=$T/sparse-index-$index_port.pid dl_pidf=$T/sparse-dl-$dl_port.pid
if running "$index_pidf" && running "$dl_pidf"; then
  if up "$index_port" /config.json && up "$dl_port" /; then
    echo "sparse registry already running on 127.0.0.1:$index_port (dl :$dl_port)"; exit 0
  fi
  echo "sparse registry pids alive but not answering on $index_port/$dl_port" >&2; exit 1
fi
# One half left over: stop it, start both afresh.
"$here/stop-sparse-registry.sh" "$index_port" "$dl_port" >/dev/null
for port in "$index_port" "$dl_port"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "127.0.0.1:$port is already in use by another process" >&2; exit 1
  fi
done

python3 "$here/make-sparse-index.py" --config "$config" --dl "${SPARSE_DL_URL:-http://127.0.0.1:$dl_port}" \
  --dl-style "${SPARSE_DL_STYLE:-markers}" ${token:+--auth-required}

# start NAME PORT ROOT [ARGS...]: one server in the background, its pid file written.
start() {
  local name=$1 port=$2 root=$3
  shift 3
  # -u: the access log (stderr) is written line by line.
  setsid nohup python3 -u "$here/sparse-server.py" "$port" "$(realpath "$root")" \
    ${token:+--token "$token"} "$@" >>"$T/sparse-$name-$port.log" 2>&1 </dev/null &
  echo $! >"$T/sparse-$name-$port.pid"
}
start index "$index_port" "$dir/index" --config-json "$config"
start dl "$dl_port" "$dir/dl"

for _ in $(seq 80); do
  if up "$index_port" /config.json && up "$dl_port" /; then
    echo "sparse registry: index http://127.0.0.1:$index_port/ (pid $(cat "$index_pidf"), log $T/sparse-index-$index_port.log)," \
      "dl http://127.0.0.1:$dl_port (pid $(cat "$dl_pidf"), log $T/sparse-dl-$dl_port.log)${token:+, token required}"
    exit 0
  fi
  # Not `alive`: until the child has exec'd, its command line is still this script's.
  kill -0 "$(cat "$index_pidf")" 2>/dev/null && kill -0 "$(cat "$dl_pidf")" 2>/dev/null || break
  sleep 0.25
done
echo "sparse registry on ports $index_port/$dl_port failed to start; log tails:" >&2
tail -n 20 "$T/sparse-index-$index_port.log" "$T/sparse-dl-$dl_port.log" >&2 || true
"$here/stop-sparse-registry.sh" "$index_port" "$dl_port" >&2 || true
exit 1
