#!/usr/bin/env bash
# Usage: bench/soak.sh DEPPROXY_BINARY SECONDS [OUT_DIR]
#
# The eviction-and-purge soak of issue 22: `depproxy serve` with a store quota small enough that the
# sweeper evicts every few seconds ([cache] max_size = 80MiB, sweep_interval = 5s), in front of a
# local distribution registry holding three ~24 MiB images and the small lab images; skopeo pulls
# every image round after round for SECONDS, and every third round purges lab/layers through the
# admin API. At the end it prints what the proxy said about hits it could not read:
#   pulls / failed pulls, misses and hits (gateway decisions, from /metrics),
#   depproxy_unreadable_hits (hits whose stored object was gone when read),
#   WARN lines about unreadable stored objects in the serve log.
# Before issue 22 nearly every evicted object's next request first failed a storage read; after
# it, evictions and purges reach the catalog before the objects go, and the count is 0.
#
# Ports 5951 (registry), 5952 (proxy), 5953 (admin). Needs docker-registry, skopeo, curl, python3.
set -euo pipefail
bin=$(realpath "${1:?usage: soak.sh DEPPROXY_BINARY SECONDS [OUT_DIR]}")
seconds=${2:?usage: soak.sh DEPPROXY_BINARY SECONDS [OUT_DIR]}
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${3:-$(mktemp -d /tmp/depproxy-soak.XXXXXX)}
mkdir -p "$out"
export DEPPROXY_TEST_DIR=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}
layouts=$DEPPROXY_TEST_DIR/soak-layouts
reg_port=5951 port=5952 admin_port=5953

# Images: the lab's small ones and three medium ones of distinct content.
for seed in 2 3 4; do
  if [ ! -f "$layouts/m$seed/index.json" ]; then
    SEED=$seed MEDIUM_MB=24 SKIP_LARGE=1 python3 "$repo/scripts/make-images.py" "$layouts/seed$seed" >/dev/null
    rm -rf "$layouts/m$seed"
    mv "$layouts/seed$seed/medium" "$layouts/m$seed"
    rm -rf "$layouts/seed$seed"
  fi
done
if [ ! -f "$layouts/small/layers/index.json" ]; then
  SKIP_LARGE=1 MEDIUM_MB=1 python3 "$repo/scripts/make-images.py" "$layouts/small" >/dev/null
fi
"$repo/scripts/lab/start-registry.sh" "$reg_port" "$out/registry" >/dev/null
trap '"$repo/scripts/lab/stop-registry.sh" "$reg_port" >/dev/null 2>&1 || true; kill "$serve" 2>/dev/null || true' EXIT
for seed in 2 3 4; do
  skopeo copy -q --dest-tls-verify=false --preserve-digests "oci:$layouts/m$seed:v1" \
    "docker://127.0.0.1:$reg_port/lab/m$seed:v1"
done
for name in layers tiny multi; do
  args=(--preserve-digests)
  [ "$name" = multi ] && args+=(--all)
  skopeo copy -q --dest-tls-verify=false "${args[@]}" "oci:$layouts/small/$name:v1" \
    "docker://127.0.0.1:$reg_port/lab/$name:v1"
done

cat > "$out/soak.toml" <<TOML
listen = "127.0.0.1:$port"
admin_listen = "127.0.0.1:$admin_port"
data_dir = "$out/data"

[[upstream]]
name = "lab"
url = "http://127.0.0.1:$reg_port"

[[group]]
path = "default"
upstream = "lab"

[cache]
max_size = "80MiB"
sweep_interval = "5s"
TOML
"$bin" serve --config "$out/soak.toml" >"$out/serve.log" 2>&1 &
serve=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break
  sleep 0.1
done
# The first line of stdout is the secret (older builds printed advice after it).
token=$("$bin" token create --name soak --admin --config "$out/soak.toml" 2>/dev/null | head -1)

pulls=0 failed=0 round=0 purges=0
deadline=$((SECONDS + seconds))
while [ "$SECONDS" -lt "$deadline" ]; do
  round=$((round + 1))
  for image in m2 m3 m4 layers tiny multi; do
    rm -rf "$out/pulled"
    pulls=$((pulls + 1))
    if ! skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$port/lab/$image:v1" "dir:$out/pulled" \
      2>>"$out/skopeo.log"; then
      failed=$((failed + 1))
    fi
  done
  if [ $((round % 3)) = 0 ]; then
    purges=$((purges + 1))
    curl -s -o /dev/null -X DELETE -H "Authorization: Bearer $token" \
      "http://127.0.0.1:$admin_port/api/v1/groups/default/cache?image=lab/layers"
  fi
done
metrics=$(curl -s "http://127.0.0.1:$port/metrics")
metric() { echo "$metrics" | awk -v name="$1" -v label="$2" '$1 ~ "^"name && index($1, label) {sum += $2} END {print sum + 0}'; }
echo "binary:             $bin"
echo "seconds:            $seconds ($round rounds, $purges purges through the admin API)"
echo "pulls:              $pulls ($failed failed)"
echo "misses:             $(metric depproxy_gateway_responses 'decision="miss"')"
echo "hits:               $(metric depproxy_gateway_responses 'decision="hit"')"
echo "unreadable hits:    $(metric depproxy_unreadable_hits '')"
echo "unreadable WARN lines in the serve log: $(grep -c 'WARN.*unreadable' "$out/serve.log" || true)"
echo "out:                $out"
