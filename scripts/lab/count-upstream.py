#!/usr/bin/env python3
"""Count registry access-log requests by method and kind.

Usage: scripts/lab/count-upstream.py LOGFILE [--since-line N] [--pattern REGEX]
       scripts/lab/count-upstream.py LOGFILE --lines

Reads Apache-combined access-log lines (other lines, e.g. the registry's own
logrus output in the same file, are ignored) and prints JSON such as
  {"lines": 123, "requests": 9, "bytes": 52445323, "GET blob": 4, "HEAD manifest": 2, "GET other": 1}
  lines     total lines in LOGFILE (use as the next --since-line checkpoint)
  requests  access-log requests counted; bytes = sum of their response sizes
  kinds     manifest (/v2/NAME/manifests/REF), blob (/v2/NAME/blobs/DIGEST),
            upload (/v2/NAME/blobs/uploads/...), other (/v2/, tags/list, ...)
Options:
  --since-line N   only count lines after the first N lines
  --pattern REGEX  only count requests whose path matches REGEX (re.search)
  --lines          just print the current line count
"""
import argparse, collections, json, re

ACCESS = re.compile(r'^\S+ \S+ \S+ \[[^\]]+\] "(\S+) (\S+)[^"]*" (\d{3}) (\d+|-)')


def kind(path):
    path = path.split("?", 1)[0]
    if re.search(r"^/v2/.+/manifests/[^/]+$", path):
        return "manifest"
    if re.search(r"^/v2/.+/blobs/uploads(/|$)", path):
        return "upload"
    if re.search(r"^/v2/.+/blobs/[^/]+$", path):
        return "blob"
    return "other"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("logfile")
    ap.add_argument("--since-line", type=int, default=0)
    ap.add_argument("--pattern")
    ap.add_argument("--lines", action="store_true")
    args = ap.parse_args()
    with open(args.logfile, errors="replace") as f:
        lines = f.readlines()
    if args.lines:
        print(len(lines))
        return
    pat = re.compile(args.pattern) if args.pattern else None
    counts, total, nbytes = collections.Counter(), 0, 0
    for line in lines[args.since_line:]:
        m = ACCESS.match(line)
        if not m or (pat and not pat.search(m[2])):
            continue
        counts[f"{m[1]} {kind(m[2])}"] += 1
        total += 1
        nbytes += 0 if m[4] == "-" else int(m[4])
    print(json.dumps({"lines": len(lines), "requests": total, "bytes": nbytes, **dict(sorted(counts.items()))}))


if __name__ == "__main__":
    main()
