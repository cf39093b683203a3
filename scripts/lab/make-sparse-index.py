#!/usr/bin/env python3
"""Write a Cargo sparse registry (RFC 2789 index tree + download tree) over a directory of .crate files.

Usage: scripts/lab/make-sparse-index.py CRATE_DIR INDEX_DIR [--dl-dir DL_DIR] [--yank NAME@VERSION]...
       scripts/lab/make-sparse-index.py --config FILE --dl URL [--dl-style markers|plain] [--auth-required]

First form: reads every CRATE_DIR/*.crate (the Cargo.toml `cargo package` normalised into the
tarball) and writes
  INDEX_DIR/{1/n, 2/nn, 3/c/ccc, ab/cd/name}  one JSON line per version, versions ascending, as a
                            registry writes them: name, vers, deps [{name, req, features, optional,
                            default_features, target, kind, registry, package}], cksum (sha256 of
                            the .crate), features, yanked (--yank NAME@VERSION marks one), links,
                            v (2 with features2 when a feature uses "dep:" or "?/"), rust_version.
                            Paths are lowercase; the "name" keeps the crate's case.
  DL_DIR (with --dl-dir)    every .crate under both download layouts, hard-linked (one inode, so
                            changing one file changes both):
                              {crate}/{version}/download                      (dl without markers)
                              crates/{prefix}/{crate}/{crate}-{version}.crate (the markers template)
No config.json: the second form writes one (the ports are known only when the servers start;
scripts/lab/start-sparse-registry.sh calls it). INDEX_DIR is also a valid cargo local-registry
index when the .crate files sit in its parent as {name}-{version}.crate
(scripts/lab/make-cargo-fixtures.sh packages the fixtures against one).

Second form: FILE gets {"dl": TEMPLATE} (+ "auth-required": true) where TEMPLATE is
  markers (default)  URL/crates/{prefix}/{crate}/{crate}-{version}.crate
  plain              URL   (cargo appends /{crate}/{version}/download)
"""
import argparse, hashlib, io, json, os, re, tarfile, tomllib

DEP_KINDS = (("dependencies", "normal"), ("build-dependencies", "build"), ("dev-dependencies", "dev"))


def index_path(name):
    """The index file of NAME, relative to the index root (RFC 2789: lowercase)."""
    n = name.lower()
    if len(n) <= 2:
        return f"{len(n)}/{n}"
    if len(n) == 3:
        return f"3/{n[0]}/{n}"
    return f"{n[:2]}/{n[2:4]}/{n}"


def prefix(name):
    """Cargo's {prefix} download marker: as the index path's directory, but NAME's case kept."""
    if len(name) <= 2:
        return str(len(name))
    if len(name) == 3:
        return f"3/{name[0]}"
    return f"{name[:2]}/{name[2:4]}"


def requirement(req):
    """A version requirement as cargo publishes it: a bare version means caret."""
    req = req.strip()
    return ", ".join(("^" + part.strip()) if re.match(r"\d", part.strip()) else part.strip()
                    for part in req.split(","))


def dependencies(table, kind, target):
    deps = []
    for key, spec in sorted(table.items()):
        if isinstance(spec, str):
            spec = {"version": spec}
        package = spec.get("package")
        deps.append({
            "name": key,
            "req": requirement(spec.get("version", "*")),
            "features": list(spec.get("features", [])),
            "optional": bool(spec.get("optional", False)),
            "default_features": bool(spec.get("default-features", spec.get("default_features", True))),
            "target": target,
            "kind": kind,
            # Absent: the dependency is in this same registry.
            "registry": spec.get("registry-index"),
            **({"package": package} if package else {}),
        })
    return deps


def entry(path):
    """The index line of one .crate file."""
    data = open(path, "rb").read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        member = next(m for m in tar.getmembers() if re.fullmatch(r"[^/]+/Cargo\.toml", m.name))
        manifest = tomllib.loads(tar.extractfile(member).read().decode())
    package = manifest["package"]
    deps = []
    for section, kind in DEP_KINDS:
        deps += dependencies(manifest.get(section, {}), kind, None)
    for target, tables in sorted(manifest.get("target", {}).items()):
        for section, kind in DEP_KINDS:
            deps += dependencies(tables.get(section, {}), kind, target)
    features, features2 = {}, {}
    for feature, enables in manifest.get("features", {}).items():
        new_syntax = any(e.startswith("dep:") or "?/" in e for e in enables)
        (features2 if new_syntax else features)[feature] = list(enables)
    line = {
        "name": package["name"],
        "vers": package["version"],
        "deps": deps,
        "cksum": hashlib.sha256(data).hexdigest(),
        "features": features,
        "yanked": False,
        "links": package.get("links"),
    }
    if features2:
        line["features2"] = features2
        line["v"] = 2
    if "rust-version" in package:
        line["rust_version"] = package["rust-version"]
    return line


def version_key(version):
    """Semver order: numbers numerically, a pre-release before its release."""
    core, _, pre = version.partition("+")[0].partition("-")
    parts = tuple(int(p) for p in core.split("."))
    pre_key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")) if pre else None
    return parts, (1,) if pre_key is None else (0, pre_key)


def build(args):
    yanked = set(args.yank)
    lines = {}
    files = {}
    for file in sorted(os.listdir(args.crate_dir)):
        if not file.endswith(".crate"):
            continue
        path = os.path.join(args.crate_dir, file)
        line = entry(path)
        if f"{line['name']}@{line['vers']}" in yanked:
            line["yanked"] = True
        lines.setdefault(line["name"].lower(), []).append(line)
        files[(line["name"], line["vers"])] = path
    unknown = yanked - {f"{n}@{v}" for n, v in files}
    if unknown:
        raise SystemExit(f"--yank: no such crate version {sorted(unknown)}")
    for name, versions in lines.items():
        target = os.path.join(args.index_dir, index_path(name))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target + ".tmp", "w") as f:
            for line in sorted(versions, key=lambda l: version_key(l["vers"])):
                f.write(json.dumps(line, separators=(",", ":")) + "\n")
        os.replace(target + ".tmp", target)
    if args.dl_dir:
        for (name, version), path in files.items():
            plain = os.path.join(args.dl_dir, name, version, "download")
            marked = os.path.join(args.dl_dir, "crates", prefix(name), name, f"{name}-{version}.crate")
            for link in (plain, marked):
                os.makedirs(os.path.dirname(link), exist_ok=True)
                if os.path.exists(link):
                    os.remove(link)
            with open(path, "rb") as source, open(plain, "wb") as target:
                target.write(source.read())
            os.link(plain, marked)
    print(f"index of {len(files)} crate versions ({len(lines)} crates) in {args.index_dir}"
          + (f", downloads in {args.dl_dir}" if args.dl_dir else ""))


def config(args):
    url = args.dl.rstrip("/")
    dl = url if args.dl_style == "plain" else url + "/crates/{prefix}/{crate}/{crate}-{version}.crate"
    document = {"dl": dl}
    if args.auth_required:
        document["auth-required"] = True
    with open(args.config + ".tmp", "w") as f:
        f.write(json.dumps(document, indent=2) + "\n")
    os.replace(args.config + ".tmp", args.config)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("crate_dir", nargs="?")
    ap.add_argument("index_dir", nargs="?")
    ap.add_argument("--dl-dir")
    ap.add_argument("--yank", action="append", default=[])
    ap.add_argument("--config")
    ap.add_argument("--dl")
    ap.add_argument("--dl-style", choices=["markers", "plain"], default="markers")
    ap.add_argument("--auth-required", action="store_true")
    args = ap.parse_args()
    if args.config:
        if not args.dl:
            ap.error("--config needs --dl URL")
        config(args)
    elif args.crate_dir and args.index_dir:
        build(args)
    else:
        ap.error("give CRATE_DIR INDEX_DIR, or --config FILE --dl URL")


if __name__ == "__main__":
    main()
