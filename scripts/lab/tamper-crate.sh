#!/usr/bin/env bash
# Usage: scripts/lab/tamper-crate.sh DIR CRATE VERSION
#
# Overwrites CRATE VERSION's .crate in the download tree of a sparse registry made by
# scripts/lab/make-cargo-fixtures.sh (DIR = its OUT_DIR: DIR/dl/CRATE/VERSION/download and its hard
# link DIR/dl/crates/{prefix}/CRATE/CRATE-VERSION.crate, changed in place, so both layouts serve the
# new bytes) with another valid .crate of the same package: same Cargo.toml, src/lib.rs with one
# more item (`pub const TAMPERED: bool = true;`). The index keeps the old cksum, so the bytes no
# longer match it (a compromised or corrupted CDN; cargo refuses it with "checksum ... did not
# match"). Works on a running registry (files are served from disk on each request).
# Prints {"crate","version","listed_cksum","served_cksum"}. Example: tamper-crate.sh OUT dp-tampered 1.0.0
set -euo pipefail
usage="usage: tamper-crate.sh DIR CRATE VERSION"
dir=${1:?$usage}
crate=${2:?$usage}
version=${3:?$usage}
file="$dir/dl/$crate/$version/download"
[ -f "$file" ] || { echo "no .crate $file" >&2; exit 1; }
python3 - "$file" "$dir/index" "$crate" "$version" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
path, index, crate, version = sys.argv[1:]
n = crate.lower()
rel = f"{len(n)}/{n}" if len(n) <= 2 else f"3/{n[0]}/{n}" if len(n) == 3 else f"{n[:2]}/{n[2:4]}/{n}"
listed = next(line["cksum"] for line in map(json.loads, open(os.path.join(index, rel)))
              if line["vers"] == version)
original = open(path, "rb").read()
with tarfile.open(fileobj=io.BytesIO(original), mode="r:gz") as tar:
    members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]
buffer = io.BytesIO()
changed = False
with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
    for member, data in members:
        if member.name == f"{crate}-{version}/src/lib.rs":
            data += b"\n/// Not what was published.\npub const TAMPERED: bool = true;\n"
            member.size = len(data)
            changed = True
        tar.addfile(member, io.BytesIO(data) if data is not None else None)
if not changed:
    sys.exit(f"no {crate}-{version}/src/lib.rs in {path}")
tampered = gzip.compress(buffer.getvalue(), mtime=0)
assert tampered != original
# In place (same inode): the hard-linked markers layout changes too.
with open(path, "r+b") as f:
    f.write(tampered)
    f.truncate()
served = hashlib.sha256(tampered).hexdigest()
print(json.dumps({"crate": crate, "version": version, "listed_cksum": listed, "served_cksum": served}))
PY
