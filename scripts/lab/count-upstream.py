#!/usr/bin/env python3
"""Count upstream requests in a lab server's log by method and kind (or by path).

Usage: scripts/lab/count-upstream.py LOGFILE [--since-line N] [--pattern REGEX] [--by-path]
                                    [--format auto|apache|verdaccio|pypiserver]
       scripts/lab/count-upstream.py LOGFILE --lines

Reads the request lines of one of these logs (every other line is ignored) and prints JSON such as
  {"lines": 123, "requests": 9, "bytes": 52445323, "GET blob": 4, "HEAD manifest": 2, "GET other": 1}
Formats (auto, the default, recognises each line by its shape):
  apache      Apache common/combined access lines: the distribution registry
              (start-registry.sh), Python's http.server (start-static-index.sh) and the sparse
              registry's servers (start-sparse-registry.sh)
  verdaccio   Verdaccio's JSON log (start-verdaccio.sh): the line it writes when a request arrives,
              {"req": {"method", "url"}, "msg": "... requested '...'"}; its outcome lines are
              written twice per request by Verdaccio and not counted
  pypiserver  pypiserver's log (start-pypiserver.sh): "<date> <time> <thread> request METHOD PATH"
Output:
  lines     total lines in LOGFILE (use as the next --since-line checkpoint)
  requests  requests counted; bytes = sum of their response sizes (apache lines only: the other
            formats log no size on arrival, and count 0)
  kinds     registry: manifest (/v2/NAME/manifests/REF), blob (/v2/NAME/blobs/DIGEST),
                      upload (/v2/NAME/blobs/uploads/...), other (/v2/, tags/list, ...)
            npm:      tarball (/NAME/-/FILE.tgz), packument (/NAME, /@SCOPE%2fNAME, /@SCOPE/NAME),
                      other (/-/ping, /-/user/..., PUT of a publish is "PUT packument")
            pypi:     page (/simple/PROJECT/), index (/simple/), metadata (FILE.metadata),
                      file (.whl, .tar.gz, .zip anywhere: /packages/..., /files/...)
            maven:    maven-metadata (.../maven-metadata.xml), checksum (FILE.sha1, .md5, .sha256,
                      .sha512, of any file), artifact (.jar, .pom, .war, .aar, .module)
            go:       list (MODULE/@v/list), info, mod, zip (MODULE/@v/VERSION.info|.mod|.zip),
                      latest (MODULE/@latest), sumdb (/sumdb/NAME/..., lookups and tiles)
            cargo:    config (/config.json), index-file (/1/x, /2/xy, /3/d/dpx, /dp/-a/dp-alpha),
                      crate (*.crate, /CRATE/VERSION/download) — the sparse registry of
                      start-sparse-registry.sh (its sizes are logged: bytes counts them)
Options:
  --since-line N   only count lines after the first N lines
  --pattern REGEX  only count requests whose path matches REGEX (re.search on the path as logged,
                   query included; npm clients ask for scoped packuments as /@scope%2fname)
  --by-path        also print "paths": {"GET /dp-left-pad/-/dp-left-pad-1.0.0.tgz": 1, ...}
  --lines          just print the current line count
"""
import argparse, collections, json, re

ACCESS = re.compile(r'^\S+ \S+ \S+ \[[^\]]+\] "(\S+) (\S+)[^"]*" (\d{3}) (\d+|-)')
PYPISERVER = re.compile(r"^\S+ \S+ \d+ request (\S+) (\S+)$")


def kind(path):
    path = path.split("?", 1)[0]
    if path.startswith("/v2/"):
        if re.search(r"^/v2/.+/manifests/[^/]+$", path):
            return "manifest"
        if re.search(r"^/v2/.+/blobs/uploads(/|$)", path):
            return "upload"
        if re.search(r"^/v2/.+/blobs/[^/]+$", path):
            return "blob"
        return "other"
    if path.startswith("/sumdb/"):
        return "sumdb"
    if path.endswith("/@v/list"):
        return "list"
    if path.endswith("/@latest"):
        return "latest"
    go = re.search(r"/@v/[^/]+\.(info|mod|zip)$", path)
    if go:
        return go[1]
    if re.search(r"\.(sha1|md5|sha256|sha512)$", path):
        return "checksum"
    if path.endswith("/maven-metadata.xml"):
        return "maven-metadata"
    if re.search(r"\.(jar|pom|war|aar|module)$", path):
        return "artifact"
    if re.search(r"/-/[^/]+\.tgz$", path):
        return "tarball"
    if path.endswith(".metadata"):
        return "metadata"
    if re.search(r"\.(whl|tar\.gz|zip)$", path):
        return "file"
    if path == "/simple/" or path == "/simple":
        return "index"
    if path.startswith("/simple/"):
        return "page"
    if path.endswith(".crate") or re.fullmatch(r"/[^/]+/[^/]+/download", path):
        return "crate"
    if path == "/config.json":
        return "config"
    if re.fullmatch(r"/(1/[^/]+|2/[^/]+|3/[^/]/[^/]+|[^/@]{2}/[^/]{2}/[^/]+)", path):
        return "index-file"
    if re.fullmatch(r"/(@[^/]+(/|%2[fF]))?[^/@-][^/]*", path):
        return "packument"
    return "other"


def parse(line, fmt):
    """(method, path, bytes) of a request line, or None."""
    if fmt in ("auto", "verdaccio") and line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            return None
        request = record.get("req")
        if isinstance(request, dict) and "requested" in str(record.get("msg", "")):
            return request.get("method", "?"), request.get("url", ""), 0
        return None
    if fmt in ("auto", "pypiserver"):
        m = PYPISERVER.match(line.rstrip("\n"))
        if m:
            return m[1], m[2], 0
    if fmt in ("auto", "apache"):
        m = ACCESS.match(line)
        if m:
            return m[1], m[2], 0 if m[4] == "-" else int(m[4])
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("logfile")
    ap.add_argument("--since-line", type=int, default=0)
    ap.add_argument("--pattern")
    ap.add_argument("--by-path", action="store_true")
    ap.add_argument("--format", choices=["auto", "apache", "verdaccio", "pypiserver"], default="auto")
    ap.add_argument("--lines", action="store_true")
    args = ap.parse_args()
    with open(args.logfile, errors="replace") as f:
        lines = f.readlines()
    if args.lines:
        print(len(lines))
        return
    pat = re.compile(args.pattern) if args.pattern else None
    counts, paths, total, nbytes = collections.Counter(), collections.Counter(), 0, 0
    for line in lines[args.since_line:]:
        request = parse(line, args.format)
        if not request or (pat and not pat.search(request[1])):
            continue
        method, path, size = request
        counts[f"{method} {kind(path)}"] += 1
        paths[f"{method} {path}"] += 1
        total += 1
        nbytes += size
    result = {"lines": len(lines), "requests": total, "bytes": nbytes, **dict(sorted(counts.items()))}
    if args.by_path:
        result["paths"] = dict(sorted(paths.items()))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
