#!/usr/bin/env bash
# Usage: scripts/lab/tamper-npm-tarball.sh STORAGE_DIR NAME VERSION
#
# Overwrites NAME@VERSION's tarball in a Verdaccio storage directory (start-verdaccio.sh's
# STORAGE_DIR, e.g. T/verdaccio-PORT) with another valid tarball of the same package: same
# package.json, index.js exporting {tampered: true}. Verdaccio serves the file as it is, with the
# packument's dist.integrity/shasum still those of what was published, so the bytes no longer match
# them (a compromised or corrupted upstream). Prints the new file's sha512 integrity.
# Example: tamper-npm-tarball.sh T/verdaccio-4873 dp-tampered 1.0.0
set -euo pipefail
storage=${1:?usage: tamper-npm-tarball.sh STORAGE_DIR NAME VERSION}
name=${2:?usage: tamper-npm-tarball.sh STORAGE_DIR NAME VERSION}
version=${3:?usage: tamper-npm-tarball.sh STORAGE_DIR NAME VERSION}
file="$storage/$name/${name##*/}-$version.tgz"
[ -f "$file" ] || { echo "no tarball $file" >&2; exit 1; }
python3 - "$file" <<'PY'
import base64, gzip, hashlib, io, sys, tarfile
path = sys.argv[1]
with tarfile.open(path) as tar:
    members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]
buffer = io.BytesIO()
with tarfile.open(fileobj=buffer, mode="w") as tar:
    for member, data in members:
        if member.name == "package/index.js":
            data = b"module.exports = { tampered: true };\n"
            member.size = len(data)
        tar.addfile(member, io.BytesIO(data) if data is not None else None)
tampered = gzip.compress(buffer.getvalue(), mtime=0)
original = open(path, "rb").read()
assert tampered != original
open(path, "wb").write(tampered)
print("sha512-" + base64.b64encode(hashlib.sha512(tampered).digest()).decode())
PY
