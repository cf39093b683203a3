#!/usr/bin/env bash
# Usage: scripts/lab/push-images.sh REGISTRY [LAYOUT_DIR]
#   REGISTRY    host:port of a plain-HTTP registry, e.g. 127.0.0.1:5801
#   LAYOUT_DIR  default ${DEPPROXY_TEST_DATA:-/tmp/depproxy-test/layouts} (see make-images.py)
#
# Pushes every complete layout LAYOUT_DIR/NAME as REGISTRY/lab/NAME:v1 with skopeo
# (digests preserved; --all for the multi-arch index), plus lab/tiny-docker:v1, the
# tiny image converted to Docker schema2. Re-running just re-checks existing blobs.
set -euo pipefail
reg=${1:?usage: push-images.sh REGISTRY [LAYOUT_DIR]}
dir=${2:-${DEPPROXY_TEST_DATA:-/tmp/depproxy-test/layouts}}

push() { # push SRC_LAYOUT DEST_REPO [skopeo args...]
  local src=$1 dest=$2 t0=$EPOCHREALTIME
  shift 2
  skopeo copy -q --dest-tls-verify=false "$@" "oci:$src:v1" "docker://$reg/$dest:v1"
  echo "pushed $reg/$dest:v1 ($(awk "BEGIN{printf \"%.1f\", $EPOCHREALTIME - $t0}")s)"
}

found=0
for layout in "$dir"/*/; do
  layout=${layout%/}
  [ -f "$layout/index.json" ] || continue
  found=1
  name=$(basename "$layout")
  args=(--preserve-digests)
  if [ "$name" = multi ]; then args+=(--all); fi
  push "$layout" "lab/$name" "${args[@]}"
  if [ "$name" = tiny ]; then push "$layout" lab/tiny-docker --format v2s2; fi
done
[ "$found" = 1 ] || { echo "no layouts in $dir (run scripts/make-images.py)" >&2; exit 1; }
