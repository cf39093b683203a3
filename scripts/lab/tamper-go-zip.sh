#!/usr/bin/env bash
# Usage: scripts/lab/tamper-go-zip.sh DIR MODULE VERSION
#
# Changes MODULE@VERSION's zip in a GOPROXY tree: DIR is make-go-fixtures.sh's OUT_DIR (its
# proxy/ is used) or a GOPROXY tree itself. The zip stays a valid module zip (same file names)
# whose package source is altered: Version() returns "tampered " + what it returned. The .info
# and .mod files, and the checksum database (start-goproxy.sh serves OUT_DIR/sumdb/gosum, written
# when the fixtures were made), keep the original: the go command refuses the zip
# ("verifying <module>@<version>: checksum mismatch"), and so must a proxy that verifies.
# Prints:
#   listed_h1 <the go.sum hash in OUT_DIR/sumdb/gosum, or "-" without one>
#   served_h1 <the hash of the zip as it now is>
# Example: tamper-go-zip.sh OUT_DIR example.com/dp/Beta v1.0.0
set -euo pipefail
dir=${1:?usage: tamper-go-zip.sh DIR MODULE VERSION}
module=${2:?usage: tamper-go-zip.sh DIR MODULE VERSION}
version=${3:?usage: tamper-go-zip.sh DIR MODULE VERSION}
proxy=$dir
[ -d "$dir/proxy" ] && proxy=$dir/proxy
# The proxy protocol's case encoding: each upper-case letter becomes "!" + its lower case.
escaped=$(printf '%s' "$module" | sed 's/[A-Z]/!\L&/g')
zip=$proxy/$escaped/@v/$version.zip
[ -f "$zip" ] || { echo "no zip $zip" >&2; exit 1; }
gosum=$dir/sumdb/gosum
listed=-
if [ -f "$gosum" ]; then
  listed=$(awk -v m="$module" -v v="$version" '$1 == m && $2 == v { print $3 }' "$gosum")
  [ -n "$listed" ] || listed=-
fi
python3 - "$zip" <<'PY'
import io, re, sys, zipfile
path = sys.argv[1]
with zipfile.ZipFile(path) as archive:
    entries = [(info, archive.read(info)) for info in archive.infolist()]
changed = False
buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
    for info, data in entries:
        if info.filename.endswith(".go"):
            data, n = re.subn(rb'return "', b'return "tampered " + "', data, count=1)
            changed |= n > 0
        archive.writestr(info, data)
if not changed:
    sys.exit(f"no Version() to alter in {path}")
open(path, "wb").write(buffer.getvalue())
PY
# h1: base64(sha256 of the lines "<sha256 hex>  <file name>\n", sorted by name), as dirhash.Hash1.
served=$(python3 - "$zip" <<'PY'
import base64, hashlib, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as archive:
    names = sorted(archive.namelist())
    summary = "".join(f"{hashlib.sha256(archive.read(n)).hexdigest()}  {n}\n" for n in names)
print("h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode())
PY
)
[ "$served" != "$listed" ] || { echo "zip hash unchanged" >&2; exit 1; }
echo "listed_h1 $listed"
echo "served_h1 $served"
