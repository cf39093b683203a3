#!/bin/bash
# Instructions per cached manifest hit, counted by callgrind: repeatable for a binary whatever
# else the machine does (wall-clock req/s on a shared 2-vCPU host moves by ±20 % between runs).
#
# Usage: bench/hitcost.sh [BINARY...]        (default: the release build in $CARGO_TARGET_DIR)
#        N=2000 (GETs per form)  BENCH_DIR=/tmp/depproxy-bench (upstream data from bench/run.sh)
#
# For each binary: one `depproxy serve` under valgrind --tool=callgrind, an anonymous and a token
# group (B5a's config); for each URL form — anonymous short form, anonymous group form, token group
# with a Bearer JWT, token group with Basic — 200 warm-up GETs on one keep-alive connection, the
# counters zeroed, N GETs, the counters dumped. Prints instructions per request of the whole
# process (every thread: the connection, gateway, control plane, access log). The kernel's share
# (socket calls) is not counted. Needs the upstream data a bench/run.sh B5 run leaves in BENCH_DIR.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-2000}
BENCH_DIR=${BENCH_DIR:-/tmp/depproxy-bench}
PORT_UP=${PORT_UP:-5901}
PORT=${PORT:-5972}
[ $# -gt 0 ] || set -- "${CARGO_TARGET_DIR:-$HOME/.cache/depproxy/target}/release/depproxy"
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
[ -d "$BENCH_DIR/upstream-data" ] || { echo "no upstream data in $BENCH_DIR: run bench/run.sh B5 first" >&2; exit 1; }
DEPPROXY_TEST_DIR=$BENCH_DIR "$REPO/scripts/lab/start-registry.sh" "$PORT_UP" "$BENCH_DIR/upstream-data" >/dev/null
trap 'DEPPROXY_TEST_DIR=$BENCH_DIR "$REPO/scripts/lab/stop-registry.sh" "$PORT_UP" >/dev/null 2>&1 || true' EXIT
printf '%-40s %10s %10s %10s %10s\n' binary anon anongroup bearer basic
for bin in "$@"; do
  out=$(mktemp -d /tmp/hitcost.XXXXXX)
  printf '%s\n' '[[upstream]]' 'name = "lab"' "url = \"http://127.0.0.1:$PORT_UP\"" \
    '[[group]]' 'path = "default"' 'upstream = "lab"' 'access = "anonymous"' \
    '[[group]]' 'path = "private"' 'upstream = "lab"' 'access = "token"' >"$out/depproxy.toml"
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" --dump-instr=no \
    "$bin" serve --listen "127.0.0.1:$PORT" --data-dir "$out/data" --config "$out/depproxy.toml" \
    >"$out/log" 2>&1 &
  vg=$!
  for _ in $(seq 120); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 1; done
  url=http://127.0.0.1:$PORT
  # After the start: the command line creates no database (serve does).
  secret=$("$bin" token create --name bench --group private --config "$out/depproxy.toml" \
    --data-dir "$out/data" 2>/dev/null | sed -n 1p)
  jwt=$(curl -sf -u "bench:$secret" \
    "$url/v2/token?service=depproxy&scope=repository:private/dependency_proxy/containers/lab/tiny:pull" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  python3 - "$url" "$N" "$jwt" "Basic $(printf 'bench:%s' "$secret" | base64 -w0)" "$vg" <<'PY'
import http.client, subprocess, sys
base, n, jwt, basic, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
private = "/v2/private/dependency_proxy/containers/lab/tiny/manifests/v1"
forms = [("anon", "/v2/lab/tiny/manifests/v1", {}),
         ("anongroup", "/v2/default/dependency_proxy/containers/lab/tiny/manifests/v1", {}),
         ("bearer", private, {"Authorization": "Bearer " + jwt}),
         ("basic", private, {"Authorization": basic})]
connection = http.client.HTTPConnection(base.split("//")[1])
def get(path, headers, count):
    for _ in range(count):
        connection.request("GET", path, headers={**accept, **headers})
        response = connection.getresponse()
        response.read()
        assert response.status == 200, (path, response.status)
for name, path, headers in forms:
    get(path, headers, 200)
    subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
    get(path, headers, n)
    subprocess.run(["callgrind_control", "-d", name, pid], check=True, capture_output=True)
PY
  kill "$vg"
  wait "$vg" 2>/dev/null || true
  row=()
  for form in anon anongroup bearer basic; do
    file=$(grep -l "^desc: Trigger: dump $form\$" "$out"/cg.*.* | head -1)
    total=$(sed -n 's/^summary: //p' "$file")
    row+=("$((total / N))")
  done
  printf '%-40s %10s %10s %10s %10s\n' "$(basename "$bin")" "${row[@]}"
  echo "  (callgrind files in $out)"
done
