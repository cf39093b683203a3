#!/usr/bin/env bash
# Usage: bench/pulls.sh [REPS]        (default 3)
#
# Whole-pull timings on real parts, for the figures the issues ask for:
#   - `skopeo copy` of lab/medium (one ~50 MB layer) straight from a distribution registry, and
#     through depproxy cold (empty cache) and warm;
#   - `curl` of the lab/big layer (BIG_MB MiB, default 256; body to tmpfs, checked against its
#     digest after the timing) through depproxy cold and warm, on
#     local disk + SQLite and on S3 (moto_server) + PostgreSQL.
# Each repetition starts from an empty cache (fresh data dir, fresh bucket, fresh database).
# Prints a markdown table of medians (and every value) to stdout. Everything binds 127.0.0.1
# and is stopped on exit. Needs what scripts/test.sh installs; builds depproxy (release) unless
# SKIP_BUILD=1.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
REPS=${1:-3}
BIG_MB=${BIG_MB:-256}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/depproxy/target}
WORK=${PULLS_DIR:-/tmp/depproxy-pulls}
LAYOUTS=$WORK/layouts-big$BIG_MB
PG=${DEPPROXY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
REG_PORT=5811 PROXY_PORT=5812 S3_PORT=5813
SIGNED=(--aws-sigv4 aws:amz:us-east-1:s3 --user test:test)
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test

"$REPO/scripts/install-test-deps.sh" >&2
if [ "${SKIP_BUILD:-0}" != 1 ]; then cargo build --release --locked -p depproxy >&2; fi
BIN=$CARGO_TARGET_DIR/release/depproxy
mkdir -p "$WORK"
WITH_BIG=1 BIG_MB=$BIG_MB python3 "$REPO/scripts/make-images.py" "$LAYOUTS" >&2

proxy_pid="" moto_pid=""
cleanup() {
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null || true
  [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null || true
  DEPPROXY_TEST_DIR=$WORK "$REPO/scripts/lab/stop-registry.sh" $REG_PORT >&2 || true
}
trap cleanup EXIT

rm -rf "$WORK/registry-data"
DEPPROXY_TEST_DIR=$WORK "$REPO/scripts/lab/start-registry.sh" $REG_PORT "$WORK/registry-data" >&2
"$REPO/scripts/lab/push-images.sh" 127.0.0.1:$REG_PORT "$LAYOUTS" >&2
big_digest=$(python3 - "$LAYOUTS/big" <<'EOF'
import json, sys
root = sys.argv[1]
manifest = json.load(open(f"{root}/index.json"))["manifests"][0]["digest"].split(":")[1]
print(json.load(open(f"{root}/blobs/sha256/{manifest}"))["layers"][0]["digest"])
EOF
)

python3 -m moto.server -H 127.0.0.1 -p $S3_PORT >"$WORK/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$S3_PORT/moto-api/ && break; sleep 0.1; done

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
wait_up() { for _ in $(seq 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done; return 1; }

skopeo_pull() { # skopeo_pull REGISTRY_HOSTPORT → seconds
  rm -rf "$WORK/pulled"
  local t0; t0=$(now)
  skopeo copy -q --src-tls-verify=false "docker://$1/lab/medium:v1" "dir:$WORK/pulled" >&2
  elapsed "$t0"
}
curl_big() { # curl_big → curl's time_total in seconds; the body (in tmpfs) must hash to its digest
  local out=/dev/shm/depproxy-pulls-big took sum
  took=$(curl -sf -o "$out" -w '%{time_total}' "http://127.0.0.1:$PROXY_PORT/v2/lab/big/blobs/$big_digest")
  sum=$(sha256sum "$out" | cut -d' ' -f1)
  rm -f "$out"
  [ "sha256:$sum" = "$big_digest" ] || { echo "big blob digest mismatch: $sum" >&2; exit 1; }
  echo "$took"
}

start_proxy() { # start_proxy BACKEND REP
  local dir=$WORK/proxy-$1-$2 db
  rm -rf "$dir"; mkdir -p "$dir"
  {
    echo "listen = \"127.0.0.1:$PROXY_PORT\""
    echo "data_dir = \"$dir/data\""
    if [ "$1" = s3-postgres ]; then
      db=depproxy_pulls_$2
      psql "$PG/postgres" -qc "drop database if exists $db" -c "create database $db" >&2
      echo "database_url = \"$PG/$db\""
    fi
    printf '[[upstream]]\nname = "lab"\nurl = "http://127.0.0.1:%s"\n' $REG_PORT
    printf '[[group]]\npath = "default"\nupstream = "lab"\n'
    if [ "$1" = s3-postgres ]; then
      curl -sf "${SIGNED[@]}" -X PUT "http://127.0.0.1:$S3_PORT/pulls$2" >/dev/null
      printf '[storage]\nkind = "s3"\nendpoint = "http://127.0.0.1:%s"\nbucket = "pulls%s"\nregion = "us-east-1"\n' $S3_PORT "$2"
    fi
  } >"$dir/depproxy.toml"
  RUST_LOG=warn "$BIN" serve --config "$dir/depproxy.toml" >"$dir/depproxy.log" 2>&1 &
  proxy_pid=$!
  wait_up "http://127.0.0.1:$PROXY_PORT/v2/"
}
stop_proxy() { kill "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true; proxy_pid=""; }

declare -A values=()
add() { values[$1]="${values[$1]:-} $2"; }
for rep in $(seq "$REPS"); do
  add "skopeo direct" "$(skopeo_pull 127.0.0.1:$REG_PORT)"
  for backend in disk-sqlite s3-postgres; do
    start_proxy "$backend" "$rep"
    add "skopeo $backend cold" "$(skopeo_pull 127.0.0.1:$PROXY_PORT)"
    add "skopeo $backend warm" "$(skopeo_pull 127.0.0.1:$PROXY_PORT)"
    add "big $backend cold" "$(curl_big)"
    add "big $backend warm" "$(curl_big)"
    stop_proxy
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "| pull | median (s) | runs (s) |"
echo "| --- | --- | --- |"
for key in "skopeo direct" "skopeo disk-sqlite cold" "skopeo disk-sqlite warm" "skopeo s3-postgres cold" \
  "skopeo s3-postgres warm" "big disk-sqlite cold" "big disk-sqlite warm" "big s3-postgres cold" "big s3-postgres warm"; do
  echo "| $key | $(echo "${values[$key]}" | median) |${values[$key]} |"
done
