#!/usr/bin/env bash
# Usage: scripts/lab/make-python-fixtures.sh OUT_DIR
#
# Builds real wheels and sdists (setuptools, `python -m build --no-isolation`, offline; the tools
# are in the venv scripts/install-test-deps.sh makes: $PYPI_LAB_VENV, default
# $HOME/.cache/depproxy/pypiserver-venv) for a few projects that depend on each other:
#   dp-alpha  1.0, 1.1      1.1 requires dp_beta>=1.0
#   dp_beta   1.0, 1.1      (the name is not normalised on purpose)
#   Dp.Gamma  1.0           requires dp-alpha>=1.1 (normalises to dp-gamma)
#   dp-tampered 1.0         tampered in the static index (below)
# File names are as setuptools 65 (pinned by install-test-deps.sh) writes them, not all normalised:
#   Dp.Gamma-1.0-py3-none-any.whl, Dp.Gamma-1.0.tar.gz, dp-alpha-1.0.tar.gz, dp_alpha-1.0-py3-none-any.whl
# (pip and pypiserver take them; a proxy must too).
# `pip install Dp.Gamma` installs dp-gamma 1.0, dp-alpha 1.1, dp-beta 1.1 (3 wheels). Every
# distribution carries 256 KiB of incompressible data (a transfer takes long enough for concurrent
# clients to overlap); each package's __init__ sets NAME and VERSION. Writes:
#   OUT_DIR/packages/    every wheel and sdist: pypiserver's PACKAGES_DIR (start-pypiserver.sh)
#   OUT_DIR/static/      the same as a static PEP 503 tree (scripts/lab/make-simple-index.py) for
#                        scripts/lab/start-static-index.sh: simple/<project>/index.html with
#                        #sha256= and PEP 658 metadata, files/ — where dp_tampered's wheel has been
#                        changed AFTER its page was written, so its bytes no longer match #sha256.
#                        (pypiserver cannot serve a tampered file: it hashes the files it lists on
#                        every request, so the page always matches what is on disk.)
#   OUT_DIR/fixtures.json  [{"project","version","file","sha256","size"}] of packages/ (untampered)
#   OUT_DIR/tampered.json  {"file","listed_sha256","served_sha256"} for static/
# Distributions are rebuilt each time (sdists and wheels are not byte-reproducible across runs:
# compare against fixtures.json of the same run).
set -euo pipefail
out=${1:?usage: make-python-fixtures.sh OUT_DIR}
venv=${PYPI_LAB_VENV:-$HOME/.cache/depproxy/pypiserver-venv}
py=$venv/bin/python
"$py" -c 'import build, setuptools, wheel' 2>/dev/null \
  || { echo "$venv lacks build/setuptools/wheel: run scripts/install-test-deps.sh" >&2; exit 1; }
here=$(dirname "$(realpath "$0")")
rm -rf "$out"
mkdir -p "$out/src" "$out/packages"
out=$(realpath "$out")

# project NAME VERSION MODULE REQUIREMENTS_TOML_LIST
project() {
  local name=$1 version=$2 module=$3 requires=$4 dir="$out/src/$1-$2"
  mkdir -p "$dir/src/$module"
  cat > "$dir/pyproject.toml" <<TOML
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "$name"
version = "$version"
description = "depproxy test fixture $name"
requires-python = ">=3.8"
dependencies = $requires

[tool.setuptools.package-data]
$module = ["data.bin"]
TOML
  printf 'NAME = "%s"\nVERSION = "%s"\n' "$name" "$version" > "$dir/src/$module/__init__.py"
  "$py" - "$dir/src/$module/data.bin" "$name==$version" <<'PY'
import hashlib, sys
seed, data, i = sys.argv[2].encode(), bytearray(), 0
while len(data) < 256 * 1024:
    data += hashlib.sha256(seed + i.to_bytes(8, "big")).digest(); i += 1
open(sys.argv[1], "wb").write(bytes(data))
PY
  # Offline: no isolated build environment (it would download setuptools).
  (cd "$dir" && "$py" -m build --no-isolation --sdist --wheel --outdir "$out/packages" . >build.log 2>&1) \
    || { cat "$dir/build.log" >&2; exit 1; }
  echo "built $name $version"
}

project dp-alpha 1.0 dp_alpha '[]'
project dp-alpha 1.1 dp_alpha '["dp_beta>=1.0"]'
project dp_beta 1.0 dp_beta '[]'
project dp_beta 1.1 dp_beta '[]'
project Dp.Gamma 1.0 dp_gamma '["dp-alpha>=1.1"]'
project dp-tampered 1.0 dp_tampered '[]'

"$py" - "$out" <<'PY'
import hashlib, json, os, re, sys
out = sys.argv[1]
found = []
for file in sorted(os.listdir(f"{out}/packages")):
    data = open(f"{out}/packages/{file}", "rb").read()
    if file.endswith(".whl"):
        project, version = file.split("-")[:2]
    else:
        project, version = file[:-len(".tar.gz")].rsplit("-", 1)
    found.append({"project": re.sub(r"[-_.]+", "-", project).lower(), "version": version, "file": file,
                  "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
open(f"{out}/fixtures.json", "w").write(json.dumps(found, indent=2) + "\n")
PY

"$py" "$here/make-simple-index.py" "$out/packages" "$out/static"
tampered=$(cd "$out/static/files" && ls dp_tampered-1.0-*.whl)
"$py" - "$out" "$tampered" <<'PY'
import hashlib, io, json, sys, zipfile
out, file = sys.argv[1], sys.argv[2]
path = f"{out}/static/files/{file}"
original = open(path, "rb").read()
# Another valid wheel: same members, the module's code changed.
buffer = io.BytesIO()
with zipfile.ZipFile(io.BytesIO(original)) as source, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
    for info in source.infolist():
        data = source.read(info)
        if info.filename == "dp_tampered/__init__.py":
            data = b'NAME = "dp-tampered"\nVERSION = "1.0"\nTAMPERED = True\n'
        target.writestr(info, data)
served = buffer.getvalue()
assert served != original
open(path, "wb").write(served)
json.dump({"file": file, "listed_sha256": hashlib.sha256(original).hexdigest(),
           "served_sha256": hashlib.sha256(served).hexdigest()}, open(f"{out}/tampered.json", "w"), indent=2)
PY
rm -rf "$out/src"
echo "python fixtures in $out (packages/ for pypiserver, static/ with $tampered tampered)"
