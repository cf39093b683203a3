#!/usr/bin/env bash
# Usage: scripts/lab/make-npm-fixtures.sh REGISTRY_URL OUT_DIR
#
# Writes the npm fixture packages to OUT_DIR and publishes them with `npm publish` to
# REGISTRY_URL (a Verdaccio from scripts/lab/start-verdaccio.sh; its credentials are taken from
# $NPMRC, default T/verdaccio-PORT.npmrc, T=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}).
# The packages (every tarball also carries 256 KiB of incompressible data.bin, so a transfer
# takes long enough for concurrent clients to overlap):
#   dp-left-pad   1.0.0, 1.1.0, 2.0.0 (latest), 3.0.0-beta.1 (dist-tag next)
#   dp-right-pad  1.0.0                 depends on dp-left-pad ^1.0.0
#   @dp/util      0.9.0, 1.0.0          1.0.0 depends on dp-left-pad ^2.0.0
#   dp-app        1.0.0                 depends on dp-left-pad ^1.0.0, dp-right-pad ~1.0.0, @dp/util ^1.0.0
#   dp-tampered   1.0.0                 for scripts/lab/tamper-npm-tarball.sh
# A project depending on dp-app ^1.0.0 installs (5 tarballs):
#   node_modules/dp-app@1.0.0, dp-left-pad@1.1.0, dp-right-pad@1.0.0, @dp/util@1.0.0,
#   node_modules/@dp/util/node_modules/dp-left-pad@2.0.0
# Each package's index.js exports {name, version}. Files written:
#   OUT_DIR/src/<name>@<version>/   package sources
#   OUT_DIR/tarballs/<file>.tgz     what was published (npm pack output, byte for byte)
#   OUT_DIR/project/package.json    the project above
#   OUT_DIR/fixtures.json           [{"name","version","file","tarball_path","integrity","shasum","size"}]:
#                                   tarball_path is the registry path, e.g. /@dp/util/-/util-1.0.0.tgz
# Tarballs are deterministic (npm pack fixes mtimes), so integrity is the same on every run.
# Publishing a version that exists already fails: use a fresh registry storage.
set -euo pipefail
registry=${1:?usage: make-npm-fixtures.sh REGISTRY_URL OUT_DIR}
out=${2:?usage: make-npm-fixtures.sh REGISTRY_URL OUT_DIR}
registry=${registry%/}
T=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}
port=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.urlsplit(sys.argv[1]).port or 80)' "$registry")
npmrc=${NPMRC:-$T/verdaccio-$port.npmrc}
[ -f "$npmrc" ] || { echo "no npm credentials at $npmrc (start-verdaccio.sh writes them)" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out/src" "$out/tarballs" "$out/project" "$out/npm-cache"
out=$(realpath "$out")

# package NAME VERSION DEPENDENCIES_JSON: writes the sources.
package() {
  local name=$1 version=$2 deps=$3 dir="$out/src/$1@$2"
  mkdir -p "$dir"
  python3 - "$dir" "$name" "$version" "$deps" <<'PY'
import hashlib, json, sys
dir, name, version, deps = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
manifest = {"name": name, "version": version, "description": f"depproxy test fixture {name}",
            "main": "index.js", "license": "MIT", "dependencies": deps}
open(f"{dir}/package.json", "w").write(json.dumps(manifest, indent=2) + "\n")
open(f"{dir}/index.js", "w").write(
    f"module.exports = {{ name: {json.dumps(name)}, version: {json.dumps(version)} }};\n")
open(f"{dir}/README.md", "w").write(f"# {name}\n\nA depproxy test fixture, version {version}.\n")
# Deterministic, incompressible: sha256 in counter mode, seeded by name@version.
seed, data, i = f"{name}@{version}".encode(), bytearray(), 0
while len(data) < 256 * 1024:
    data += hashlib.sha256(seed + i.to_bytes(8, "big")).digest(); i += 1
open(f"{dir}/data.bin", "wb").write(bytes(data))
PY
}

package dp-left-pad 1.0.0 '{}'
package dp-left-pad 1.1.0 '{}'
package dp-left-pad 2.0.0 '{}'
package dp-left-pad 3.0.0-beta.1 '{}'
package dp-right-pad 1.0.0 '{"dp-left-pad": "^1.0.0"}'
package @dp/util 0.9.0 '{}'
package @dp/util 1.0.0 '{"dp-left-pad": "^2.0.0"}'
package dp-app 1.0.0 '{"dp-left-pad": "^1.0.0", "dp-right-pad": "~1.0.0", "@dp/util": "^1.0.0"}'
package dp-tampered 1.0.0 '{}'

# The user's and the machine's npm settings are not ours: only $npmrc counts.
npm_() {
  npm --userconfig "$npmrc" --globalconfig /dev/null --cache "$out/npm-cache" \
    --registry "$registry/" --no-audit --no-fund --loglevel error "$@"
}

# publish DIR [TAG]: packs (kept in tarballs/) and publishes that tarball.
publish() {
  local dir=$1 tag=${2:-latest} file
  file=$(cd "$out/tarballs" && npm_ pack "$dir" | tail -n 1)
  npm_ publish --tag "$tag" "$out/tarballs/$file" >/dev/null
  echo "published $file"
}

# Versions of one package in order (dist-tag latest ends on the highest); packages in parallel.
pids=()
( publish "$out/src/dp-left-pad@1.0.0" && publish "$out/src/dp-left-pad@1.1.0" \
  && publish "$out/src/dp-left-pad@2.0.0" && publish "$out/src/dp-left-pad@3.0.0-beta.1" next ) & pids+=($!)
( publish "$out/src/@dp/util@0.9.0" && publish "$out/src/@dp/util@1.0.0" ) & pids+=($!)
( publish "$out/src/dp-right-pad@1.0.0" && publish "$out/src/dp-app@1.0.0" ) & pids+=($!)
( publish "$out/src/dp-tampered@1.0.0" ) & pids+=($!)
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
[ "$failed" = 0 ] || { echo "publishing to $registry failed" >&2; exit 1; }

cat > "$out/project/package.json" <<'JSON'
{
  "name": "dp-fixture-project",
  "version": "1.0.0",
  "private": true,
  "dependencies": {
    "dp-app": "^1.0.0"
  }
}
JSON

python3 - "$out" <<'PY'
import base64, hashlib, json, os, sys, tarfile
out = sys.argv[1]
found = []
for file in sorted(os.listdir(f"{out}/tarballs")):
    path = f"{out}/tarballs/{file}"
    data = open(path, "rb").read()
    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile("package/package.json"))
    name, version = manifest["name"], manifest["version"]
    basename = name.split("/")[-1]
    found.append({
        "name": name, "version": version, "file": file,
        "tarball_path": f"/{name}/-/{basename}-{version}.tgz",
        "integrity": "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode(),
        "shasum": hashlib.sha1(data).hexdigest(),
        "size": len(data),
    })
open(f"{out}/fixtures.json", "w").write(json.dumps(found, indent=2) + "\n")
PY
rm -rf "$out/npm-cache"
echo "npm fixtures in $out, published to $registry"
