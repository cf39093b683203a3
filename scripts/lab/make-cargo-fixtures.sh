#!/usr/bin/env bash
# Usage: scripts/lab/make-cargo-fixtures.sh OUT_DIR [N]
#
# Builds Cargo fixture crates with real `cargo package`, offline: the crates depend only on each
# other, and each is packaged (and verified: `cargo package` builds the packaged sources) against
# a cargo local registry holding the ones packaged before it, as if they had been published to a
# registry in dependency order. Then writes a sparse registry of them for
# scripts/lab/start-sparse-registry.sh (index tree by scripts/lab/make-sparse-index.py).
# The crates (each lib exports NAME, VERSION and describe(): "name version" and, in brackets, the
# describe() of its dependencies; the named ones also carry 256 KiB of incompressible data.bin, so
# a transfer takes long enough for concurrent clients to overlap):
#   dp-alpha    1.0.0, 1.1.0, 1.2.0 (1.2.0 is yanked in the index: a `^1` requirement gets 1.1.0)
#   dp-beta     0.1.0              depends on dp-alpha ^1.0
#   dp_gamma    0.1.0              depends on dp-beta ^0.1; feature "extra" = ["dep:dpx"] (index v2)
#   x           0.1.0              a 1-character name: index path 1/x
#   dz          0.1.0              2 characters: 2/dz
#   dpx         0.1.0              3 characters: 3/d/dpx; depends on x ^0.1
#   Dp-Mixed    0.1.0              upper case: index path dp/-m/dp-mixed, {prefix} Dp/-M
#   dp-tampered 1.0.0              for scripts/lab/tamper-crate.sh (no consumer depends on it)
#   dp-gen-000 … dp-gen-(N-1)      N generated crates (default 0): a dependency tree under the
#                                  first min(N, 12) (the roots), some shared dependencies; every
#                                  5th has 1.0.0 (no deps) and 1.1.0, the others 1.0.0; 2–100 KB
#                                  of data.bin each; deterministic in N
# Writes:
#   OUT_DIR/crates/{name}-{version}.crate   what `cargo package` made, byte for byte (with
#                                           crates/index: the local registry they were packaged against)
#   OUT_DIR/index/                          the sparse index tree (no config.json: the start script
#                                           writes it, with the download server's port)
#   OUT_DIR/dl/{crate}/{version}/download   the .crate files for a `dl` without markers, and
#   OUT_DIR/dl/crates/{prefix}/{crate}/{crate}-{version}.crate   for the markers template (hard links)
#   OUT_DIR/consumer/                       a binary depending on dp-beta, dp_gamma (feature extra),
#                                           x, dz, dpx, Dp-Mixed: resolves to 7 crates (dp-alpha
#                                           1.1.0, dp-beta, dp_gamma, dpx, x, dz, Dp-Mixed);
#                                           .cargo/config.toml.template replaces the default registry:
#                                             [source.crates-io] replace-with = "proxy"
#                                             [source.proxy] registry = "sparse+@PROXY_URL@"
#   OUT_DIR/consumer-dp/                    the same dependencies with registry = "dp";
#                                           .cargo/config.toml.template: [registries.dp]
#                                           index = "sparse+@PROXY_URL@", credential-provider =
#                                           "cargo:token" (token: `cargo login --registry dp TOKEN`
#                                           or CARGO_REGISTRIES_DP_TOKEN; cargo sends it only to a
#                                           registry whose config.json says "auth-required": true)
#   OUT_DIR/consumer-tampered/              depends on dp-tampered ^1 (source replacement template)
#   OUT_DIR/consumer-gen/                   (N > 0) depends on the generated roots; resolves to N crates
#   OUT_DIR/fixtures.json                   [{"name","version","file","cksum","size","index_path",
#                                           "dl_plain","dl_markers","yanked"}]
# @PROXY_URL@ is the registry's index root with a trailing slash, e.g.
# http://127.0.0.1:PORT/cargo/rust/ — `sed "s|@PROXY_URL@|$url|" T > .cargo/config.toml`.
# The sources are regenerated each run; `cargo package` writes the same bytes for the same sources.
# Uses CARGO_TARGET_DIR when set (else OUT_DIR/target) and a CARGO_HOME of its own (OUT_DIR/cargo-home).
set -euo pipefail
out=${1:?usage: make-cargo-fixtures.sh OUT_DIR [N]}
n=${2:-0}
[[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -le 999 ] || { echo "N must be 0..999" >&2; exit 1; }
command -v cargo >/dev/null || { echo "cargo is not installed" >&2; exit 1; }
here=$(dirname "$(realpath "$0")")
rm -rf "$out"
mkdir -p "$out/src" "$out/crates/index" "$out/cargo-home"
out=$(realpath "$out")
target=${CARGO_TARGET_DIR:-$out/target}

# Every fixture resolves from the crates packaged before it, never from elsewhere.
cat >"$out/cargo-home/config.toml" <<TOML
[source.crates-io]
replace-with = "fixtures"

[source.fixtures]
local-registry = "$out/crates"

[net]
offline = true
TOML

# Sources of every crate, and the order to package them in (dependencies first).
python3 - "$out" "$n" <<'PY'
import hashlib, json, random, sys
out, n = sys.argv[1], int(sys.argv[2])
plan = []

def data(seed, size):
    """Deterministic, incompressible: sha256 in counter mode."""
    chunks, i = [], 0
    while 32 * len(chunks) < size:
        chunks.append(hashlib.sha256(seed.encode() + i.to_bytes(8, "big")).digest()); i += 1
    return b"".join(chunks)[:size]

def lib(name):
    return name.replace("-", "_")

def crate(name, version, deps=(), optional=(), features=None, size=256 * 1024):
    """deps, optional: (name, requirement) pairs; features: {feature: [values]}."""
    d = f"{out}/src/{name}-{version}"
    toml = [
        "[package]", f'name = "{name}"', f'version = "{version}"', 'edition = "2021"',
        f'description = "depproxy test fixture {name}"', 'license = "MIT"', "",
        "[lib]", "doctest = false", "", "[dependencies]",
    ]
    toml += [f'{dep} = "{req}"' for dep, req in deps]
    toml += [f'{dep} = {{ version = "{req}", optional = true }}' for dep, req in optional]
    if features:
        toml += ["", "[features]"] + [f"{f} = {json.dumps(v)}" for f, v in features.items()]
    body = [f"//! depproxy test fixture {name} {version}.", "",
            f'pub const NAME: &str = "{name}";', f'pub const VERSION: &str = "{version}";', "",
            "/// This crate's name and version, then those of its dependencies in brackets.",
            "pub fn describe() -> String {",
            "    #[allow(unused_mut)]",
            "    let mut parts: Vec<String> = Vec::new();"]
    body += [f"    parts.push({lib(dep)}::describe());" for dep, _ in deps]
    body += [f'    #[cfg(feature = "{f}")]\n    parts.push({lib(dep)}::describe());'
             for dep, _ in optional for f, v in (features or {}).items() if f"dep:{dep}" in v]
    body += ['    if parts.is_empty() {', '        format!("{NAME} {VERSION}")', "    } else {",
             '        format!("{NAME} {VERSION} [{}]", parts.join(", "))', "    }", "}"]
    import os
    os.makedirs(f"{d}/src")
    open(f"{d}/Cargo.toml", "w").write("\n".join(toml) + "\n")
    open(f"{d}/src/lib.rs", "w").write("\n".join(body) + "\n")
    open(f"{d}/data.bin", "wb").write(data(f"{name}@{version}", size))
    plan.append(f"{name} {version}")

crate("dp-alpha", "1.0.0")
crate("dp-alpha", "1.1.0")
crate("dp-alpha", "1.2.0")
crate("dp-beta", "0.1.0", deps=[("dp-alpha", "1.0")])
crate("x", "0.1.0")
crate("dz", "0.1.0")
crate("dpx", "0.1.0", deps=[("x", "0.1")])
crate("dp_gamma", "0.1.0", deps=[("dp-beta", "0.1")], optional=[("dpx", "0.1")],
      features={"default": [], "extra": ["dep:dpx"]})
crate("Dp-Mixed", "0.1.0")
crate("dp-tampered", "1.0.0")

# Generated: node i depends on nodes j > i (a tree under the roots plus shared edges), so packaging
# from the highest number down packages every dependency first.
rng = random.Random(f"depproxy-cargo-{n}")
roots = min(n, 12)
edges = {i: set() for i in range(n)}
for j in range(roots, n):
    edges[rng.randrange(max(0, j - 40), j)].add(j)
for i in range(n):
    for _ in range(rng.choice((0, 0, 1, 2))):
        if i + 1 < n:
            edges[i].add(rng.randrange(i + 1, n))
for i in reversed(range(n)):
    name = f"dp-gen-{i:03d}"
    size = int(2000 * (50 ** rng.random()))
    deps = [(f"dp-gen-{j:03d}", "1") for j in sorted(edges[i])]
    if i % 5 == 0:
        crate(name, "1.0.0", size=size)
    crate(name, "1.1.0" if i % 5 == 0 else "1.0.0", deps=deps, size=size)
open(f"{out}/plan.txt", "w").write("\n".join(plan) + "\n")
json.dump([f"dp-gen-{i:03d}" for i in range(roots)], open(f"{out}/gen-roots.json", "w"))
PY

# package NAME VERSION: `cargo package` against the local registry, then into it.
package() {
  local name=$1 version=$2 dir="$out/src/$1-$2"
  (cd "$dir" && CARGO_HOME="$out/cargo-home" CARGO_TARGET_DIR="$target" \
    cargo package --offline --quiet >"$dir.log" 2>&1) \
    || { cat "$dir.log" >&2; echo "cargo package of $name $version failed" >&2; exit 1; }
  cp "$target/package/$name-$version.crate" "$out/crates/"
  local yank=()
  if [ -f "$out/crates/dp-alpha-1.2.0.crate" ]; then yank=(--yank dp-alpha@1.2.0); fi
  python3 "$here/make-sparse-index.py" "$out/crates" "$out/crates/index" "${yank[@]}" >/dev/null
}

count=0
while read -r name version; do
  package "$name" "$version"
  count=$((count + 1))
  if [ $((count % 20)) = 0 ]; then echo "packaged $count crate versions"; fi
done <"$out/plan.txt"
echo "packaged $count crate versions with $(cargo --version)"

python3 "$here/make-sparse-index.py" "$out/crates" "$out/index" --dl-dir "$out/dl" --yank dp-alpha@1.2.0

# consumer DIR MODE DEPS_TOML: a binary that prints describe() of each dependency.
consumer() {
  local dir="$out/$1" mode=$2 deps=$3 libs=$4
  mkdir -p "$dir/src" "$dir/.cargo"
  printf '[package]\nname = "dp-consumer"\nversion = "0.1.0"\nedition = "2021"\npublish = false\n\n[dependencies]\n%s\n' \
    "$deps" >"$dir/Cargo.toml"
  {
    echo "//! Prints what each fixture dependency says it is."
    echo "fn main() {"
    for lib in $libs; do echo "    println!(\"{}\", $lib::describe());"; done
    echo "}"
  } >"$dir/src/main.rs"
  if [ "$mode" = replace ]; then
    cat >"$dir/.cargo/config.toml.template" <<'TOML'
[source.crates-io]
replace-with = "proxy"

[source.proxy]
registry = "sparse+@PROXY_URL@"
TOML
  else
    cat >"$dir/.cargo/config.toml.template" <<'TOML'
[registries.dp]
index = "sparse+@PROXY_URL@"
# Without a provider cargo refuses an auth-required registry; this one reads
# CARGO_REGISTRIES_DP_TOKEN or what `cargo login --registry dp` stored.
credential-provider = "cargo:token"
TOML
  fi
}

named_deps='dp-beta = "0.1"
dp_gamma = { version = "0.1", features = ["extra"] }
x = "0.1"
dz = "0.1"
dpx = "0.1"
Dp-Mixed = "0.1"'
named_libs="dp_beta dp_gamma x dz dpx Dp_Mixed"
consumer consumer replace "$named_deps" "$named_libs"
consumer consumer-dp registry "$(sed -E 's/^([A-Za-z_-]+) = "([^"]+)"$/\1 = { version = "\2", registry = "dp" }/; t;
  s/^([A-Za-z_-]+) = \{ (.*) \}$/\1 = { \2, registry = "dp" }/' <<<"$named_deps")" "$named_libs"
consumer consumer-tampered replace 'dp-tampered = "1"' dp_tampered
if [ "$n" -gt 0 ]; then
  consumer consumer-gen replace \
    "$(python3 -c 'import json,sys; print("\n".join(f"{r} = \"1\"" for r in json.load(open(sys.argv[1]))))' "$out/gen-roots.json")" \
    "$(python3 -c 'import json,sys; print(" ".join(r.replace("-", "_") for r in json.load(open(sys.argv[1]))))' "$out/gen-roots.json")"
fi

python3 - "$out" "$here" <<'PY'
import hashlib, importlib.util, json, os, sys
out, here = sys.argv[1], sys.argv[2]
spec = importlib.util.spec_from_file_location("msi", f"{here}/make-sparse-index.py")
msi = importlib.util.module_from_spec(spec); spec.loader.exec_module(msi)
found = []
for file in sorted(os.listdir(f"{out}/crates")):
    if not file.endswith(".crate"):
        continue
    line = msi.entry(f"{out}/crates/{file}")
    name, version = line["name"], line["vers"]
    found.append({"name": name, "version": version, "file": file, "cksum": line["cksum"],
                  "size": os.path.getsize(f"{out}/crates/{file}"), "index_path": msi.index_path(name),
                  "dl_plain": f"{name}/{version}/download",
                  "dl_markers": f"crates/{msi.prefix(name)}/{name}/{name}-{version}.crate",
                  "yanked": f"{name}@{version}" == "dp-alpha@1.2.0"})
open(f"{out}/fixtures.json", "w").write(json.dumps(found, indent=2) + "\n")
PY
echo "cargo fixtures in $out (index/, dl/, consumer/, consumer-dp/, consumer-tampered/$([ "$n" -gt 0 ] && echo ", consumer-gen/"))"
