#!/usr/bin/env python3
"""Helpers for bench/run.sh (Python 3 stdlib only).

  bench.py layout-info LAYOUT_DIR NAME      -> "MANIFEST_DIGEST LAYER_DIGEST LAYER_SIZE"
  bench.py static-tree OUT LAYOUTS [B4_LIST] hard-links blobs/manifests into OUT/v2/lab/... for nginx static
  bench.py b4-blobs DIR COUNT MIB REGISTRY  generates COUNT distinct blobs of MIB MiB, pushes any missing
                                             to REGISTRY/lab/b4, writes DIR/list ("digest size" lines)
  bench.py hwm PID...                       -> peak RSS in MB: sum of VmHWM over PIDs and their children
  bench.py curl-stats FILE...               -> JSON of per-client curl -w lines (see CURL_FMT in run.sh)
  bench.py streams DIR                      -> JSON {ttfb_p50, ttfb_p90, failed} of B4's stream outcomes
  bench.py wrk FILE                         -> JSON {rps, p50_ms, p99_ms, errors}
  bench.py hey FILE                         -> JSON {rps, p50_ms, p99_ms, max_ms, errors} from hey -o csv
  bench.py sampler OUT PID...               appends "time load1 other_cpu top" every 2 s (see sampler())
  bench.py fold PERF_SCRIPT_TXT              folded stacks (flamegraph input) from perf script output
  bench.py meta OUT_DIR                     writes OUT_DIR/meta.json (META_* environment variables)
  bench.py report RESULTS_JSONL META_JSON OUT_MD
"""
import hashlib, http.client, json, os, random, re, statistics, sys, urllib.parse

MIB = 1 << 20


def layout_info(layout, name):
    root = os.path.join(layout, name)
    index = json.load(open(os.path.join(root, "index.json")))
    mdesc = index["manifests"][0]
    manifest = json.load(open(os.path.join(root, "blobs", *mdesc["digest"].split(":"))))
    layer = max(manifest["layers"], key=lambda d: d["size"])
    print(mdesc["digest"], layer["digest"], layer["size"])


def link(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.exists(dst):
        os.unlink(dst)
    os.link(src, dst)


def static_tree(out, layouts, b4_list=None):
    """Registry-shaped file tree: v2/lab/NAME/{blobs/DIGEST, manifests/v1, manifests/DIGEST}."""
    for name in sorted(os.listdir(layouts)):
        root = os.path.join(layouts, name)
        if not os.path.isfile(os.path.join(root, "index.json")):
            continue
        repo = os.path.join(out, "v2", "lab", name)
        blob = lambda d: os.path.join(root, "blobs", *d.split(":"))
        for d in os.listdir(os.path.join(root, "blobs", "sha256")):
            if not d.startswith("."):
                link(os.path.join(root, "blobs", "sha256", d), os.path.join(repo, "blobs", "sha256:" + d))
        mdesc = json.load(open(os.path.join(root, "index.json")))["manifests"][0]
        for ref in ("v1", mdesc["digest"]):
            link(blob(mdesc["digest"]), os.path.join(repo, "manifests", ref))
    if b4_list:
        b4_dir = os.path.dirname(b4_list)
        for line in open(b4_list):
            digest, _ = line.split()
            link(os.path.join(b4_dir, digest.split(":")[1]), os.path.join(out, "v2", "lab", "b4", "blobs", digest))


def registry_has(conn, digest):
    conn.request("HEAD", f"/v2/lab/b4/blobs/{digest}")
    r = conn.getresponse()
    r.read()
    return r.status == 200


def push_blob(registry, path, digest, size):
    conn = http.client.HTTPConnection(registry, timeout=120)
    conn.request("POST", "/v2/lab/b4/blobs/uploads/")
    r = conn.getresponse()
    r.read()
    if r.status != 202:
        raise SystemExit(f"upload start: HTTP {r.status}")
    loc = urllib.parse.urlsplit(r.headers["Location"])
    query = (loc.query + "&" if loc.query else "") + "digest=" + urllib.parse.quote(digest)
    with open(path, "rb") as body:
        conn.request("PUT", f"{loc.path}?{query}", body=body,
                     headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"})
        r = conn.getresponse()
        r.read()
    if r.status != 201:
        raise SystemExit(f"upload {digest}: HTTP {r.status}")


def b4_blobs(out, count, mib, registry):
    """COUNT distinct blobs: a unique first line + shared random bytes (cheap to generate)."""
    os.makedirs(out, exist_ok=True)
    listfile = os.path.join(out, "list")
    entries = []
    if os.path.exists(listfile):
        entries = [line.split() for line in open(listfile)]
    if len(entries) != count:
        payload = random.Random(f"b4:{mib}").randbytes(mib * MIB)
        entries = []
        for i in range(count):
            data = f"depproxy bench B4 blob {i} of {count} x {mib} MiB\n".encode() + payload
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            with open(os.path.join(out, digest.split(":")[1]), "wb") as f:
                f.write(data)
            entries.append([digest, str(len(data))])
        with open(listfile + ".tmp", "w") as f:
            f.writelines(f"{d} {s}\n" for d, s in entries)
        os.replace(listfile + ".tmp", listfile)
    conn = http.client.HTTPConnection(registry, timeout=60)
    pushed = 0
    for digest, size in entries:
        if not registry_has(conn, digest):
            push_blob(registry, os.path.join(out, digest.split(":")[1]), digest, int(size))
            pushed += 1
    print(f"b4 blobs: {count} x {mib} MiB in {out}, {pushed} pushed to {registry}/lab/b4")


def children(pid):
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    kids = []
    for t in tasks:
        try:
            kids += [int(c) for c in open(f"/proc/{pid}/task/{t}/children").read().split()]
        except OSError:
            pass
    return kids


def hwm(pids):
    seen, todo, total = set(), [int(p) for p in pids], 0
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo += children(pid)
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    print(f"{total / 1024:.1f}")


def curl_stats(files):
    """Each file holds one line: HTTP_CODE SIZE TTFB TOTAL."""
    rows = []
    for f in files:
        parts = open(f).read().split()
        rows.append({"code": int(parts[0]), "size": int(parts[1]), "ttfb": float(parts[2]), "total": float(parts[3])})
    print(json.dumps({
        "clients": len(rows),
        "ok": sum(r["code"] == 200 for r in rows),
        "bytes": sum(r["size"] for r in rows),
        "min_size": min(r["size"] for r in rows),
        "max_total": max(r["total"] for r in rows),
        "max_ttfb": max(r["ttfb"] for r in rows),
        "min_ttfb": min(r["ttfb"] for r in rows),
    }))


def streams(directory):
    """B4 stream outcomes: TTFB percentiles (s) of the streams that got a 200, and how many did not."""
    ttfb, failed = [], 0
    for name in os.listdir(directory):
        parts = open(os.path.join(directory, name)).read().split()
        if len(parts) == 4 and parts[0] == "200" and float(parts[2]) > 0:
            ttfb.append(float(parts[2]))
        else:
            failed += 1
    ttfb.sort()
    print(json.dumps({"ttfb_p50": round(percentile(ttfb, 50), 3) if ttfb else 0,
                      "ttfb_p90": round(percentile(ttfb, 90), 3) if ttfb else 0, "failed": failed}))


def to_ms(value, unit):
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "secs": 1e3, "m": 60e3}[unit]


def parse_wrk(path):
    text = open(path).read()
    out = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1])}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        out[f"p{pct}_ms"] = round(to_ms(*m.groups()), 3)
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errs = int(m[1]) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errs += sum(map(int, m.groups())) if m else 0
    out["errors"] = errs
    out["requests"] = int(re.search(r"(\d+) requests in", text)[1])
    print(json.dumps(out))


def percentile(sorted_values, pct):
    """Nearest-rank percentile of an ascending list."""
    import math
    return sorted_values[max(0, math.ceil(pct / 100 * len(sorted_values)) - 1)]


def parse_hey(path):
    """hey -o csv: one row per completed request (response-time in seconds, ..., status-code, offset).
    Requests that failed at the connection level are not listed by hey."""
    lats, bad = [], 0
    for line in open(path):
        parts = line.strip().split(",")
        if len(parts) < 8 or not parts[0][:1].isdigit():
            continue
        lats.append(float(parts[0]) * 1e3)
        bad += parts[6] != "200"
        end = float(parts[7])
    if not lats:
        raise SystemExit(f"{path}: no completed requests")
    lats.sort()
    out = {"requests": len(lats), "errors": bad, "rps": len(lats) / end if lats and end else 0.0,
           "p50_ms": round(percentile(lats, 50), 3), "p99_ms": round(percentile(lats, 99), 3),
           "max_ms": round(lats[-1], 3)}
    print(json.dumps(out))


# ---------------------------------------------------------------- report

SYSTEMS = [("depproxy", "depproxy"), ("depproxy-ref", "depproxy (reference build)"), ("distribution", "distribution proxy"),
           ("nginx-cache", "nginx proxy_cache"), ("nginx-static", "nginx static"), ("direct", "upstream direct")]

# (row id, label, unit, better) — better: "high", "low" or "" (no ratio direction)
ROWS = [
    ("B1.1", "B1 hit, 1 client", "GB/s", "high"),
    ("B1.8", "B1 hit, 8 clients (aggregate)", "GB/s", "high"),
    ("B2.total", "B2 cold pull of the large blob: wall time", "s", "low"),
    ("B2.ttfb", "B2 cold pull: time to first byte", "ms", "low"),
    ("B3.single", "B3 cold pull of the big blob, 1 client", "s", "low"),
    ("B3.slowest", "B3 herd: slowest of N clients", "s", "low"),
    ("B3.slowest_ratio", "B3 herd: slowest ÷ single cold pull", "×", "low"),
    ("B3.upstream_x", "B3 herd: upstream blob bytes ÷ blob size", "×", "low"),
    ("B3.upstream_gets", "B3 herd: upstream blob GETs", "", "low"),
    ("B4.manifest_p50", "B4 manifest GET p50 under slow cold streams", "ms", "low"),
    ("B4.manifest_p99", "B4 manifest GET p99 under slow cold streams", "ms", "low"),
    ("B4.base_p50", "B4 /v2/ p50 under slow cold streams", "ms", "low"),
    ("B4.base_p99", "B4 /v2/ p99 under slow cold streams", "ms", "low"),
    ("B4.requests", "B4 completed requests (manifest + /v2/)", "", "high"),
    ("B4.stream_ttfb_p50", "B4 cold streams: time to first byte, p50", "s", "low"),
    ("B4.stream_ttfb_p90", "B4 cold streams: time to first byte, p90", "s", "low"),
    ("B4.stream_failed", "B4 cold streams without a 200 / first byte", "", "low"),
    ("B4.errors", "B4 non-200 responses (manifest + /v2/)", "", "low"),
    ("B5.rps", "B5 manifest by tag, 64 conns: req/s", "req/s", "high"),
    ("B5.p99", "B5 manifest by tag: p99", "ms", "low"),
    ("B5d.rps", "B5 manifest by digest, 64 conns: req/s", "req/s", "high"),
    ("B5d.p99", "B5 manifest by digest: p99", "ms", "low"),
    ("B5a.anon.rps", "B5a manifest by tag, anonymous group: req/s", "req/s", "high"),
    ("B5a.bearer.rps", "B5a manifest by tag, token group, Bearer JWT: req/s", "req/s", "high"),
    ("B5a.basic.rps", "B5a manifest by tag, token group, Basic access token: req/s", "req/s", "high"),
    ("B5a.bearer.p99", "B5a token group, Bearer JWT: p99", "ms", "low"),
    ("B5a.token.rps", "B5a token endpoint: grants/s (GET with Basic)", "req/s", "high"),
    ("B5a.token.p99", "B5a token endpoint: p99", "ms", "low"),
    ("B6.B3", "B6 peak RSS during B3 herd", "MB", "low"),
    ("B6.B4", "B6 peak RSS during B4", "MB", "low"),
]

READING = [
    "All systems run on the same 2-core machine as the clients and the upstream; every byte crosses "
    "loopback. Client tools (curl, wrk, hey) compete for the same CPUs, which is why nginx static is "
    "the practical ceiling rather than an absolute one.",
    "B1/B5: systems warmed first (GETs repeated until one no longer reaches the upstream's access log), "
    "not restarted between repetitions. B2/B3/B4: each system is restarted with an empty cache before "
    "each measurement (nginx static has nothing to be cold about: its B3 row is 32 clients reading the "
    "file, the floor for the herd).",
    "B3 'slowest ÷ single': the herd delivers N× the bytes of a single pull over the same two cores, so "
    "with an unthrottled local upstream the ratio is bounded below by delivery cost, not by the "
    "upstream; compare it with nginx static's ratio in the same run.",
    "B4: the upstream of every proxy is an nginx 'limit_rate' reverse proxy in front of the registry, so "
    "each of the B4_STREAMS cold blob streams trickles at B4_RATE while hey sends a fixed rate "
    "(B4_CONC workers × B4_QPS req/s) of cached-manifest and /v2/ GETs; latency is per request, "
    "nearest-rank percentiles. 'completed requests' falls when responses take longer than 1/B4_QPS.",
    "B5: by tag, depproxy and nginx proxy_cache answer from cache (5 min freshness), distribution "
    "revalidates every tag GET with the upstream (its design); by digest all of them may answer "
    "locally.",
    "B6: sum of VmHWM (peak resident set) over the system's processes (nginx: master + workers, the "
    "shared cache zone counted per worker), read at the end of the B3 herd / B4 window; every "
    "repetition starts a fresh process.",
]

HASH_COLS = [("sha256sum", "sha256sum"), ("read", "read only"), ("hash", "read + Sha256Hasher"),
             ("write_path", "write path (queue+write+hash, no fsync)"), ("commit", "write path + commit (fsync, rename)")]


def fmt(v):
    if v is None:
        return "–"
    if v == 0:
        return "0"
    a = abs(v)
    return f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 1 else f"{v:.3f}"


LOWER_BOUNDS = set()  # (row, system) cells with a value that is only a lower bound


def load_results(path):
    values = {}
    for line in open(path):
        line = line.strip()
        if not line:
            continue
        r = json.loads(line)
        values.setdefault((r["row"], r["system"]), []).append(r["value"])
        if r.get("lb"):
            LOWER_BOUNDS.add((r["row"], r["system"]))
    return values


def median(xs):
    return statistics.median(xs) if xs else None


def target_lines(med, meta):
    """(target text, measured text, ok) for every issue-4 target whose inputs were measured."""
    g = lambda row, sysname: med.get((row, sysname))
    out = []

    def add(text, value, ok):
        out.append((text, value, "met" if ok else "**MISSED**"))

    for n in ("1", "8"):
        d, s, r = g(f"B1.{n}", "depproxy"), g(f"B1.{n}", "nginx-static"), g(f"B1.{n}", "distribution")
        if d and s:
            add(f"B1 ({n} client{'s' if n != '1' else ''}) ≥ 0.9× nginx static", f"{d / s:.2f}×", d / s >= 0.9)
        if d and r:
            add(f"B1 ({n} client{'s' if n != '1' else ''}) ≥ 2× distribution", f"{d / r:.2f}×", d / r >= 2)
    d, x = g("B2.total", "depproxy"), g("B2.total", "direct")
    if d and x:
        add("B2 wall ≤ 1.10× direct upstream GET", f"{d / x:.2f}×", d / x <= 1.10)
    d, x = g("B2.ttfb", "depproxy"), g("B2.ttfb", "direct")
    if d is not None and x is not None:
        add("B2 TTFB overhead ≤ 5 ms", f"{d - x:+.1f} ms", d - x <= 5)
    v = meta_max(meta, "B3.upstream_x")
    if v is not None:
        add("B3 upstream bytes exactly 1× the blob (every rep)", f"max {v:.2f}×", abs(v - 1) < 1e-9)
    v = g("B3.slowest_ratio", "depproxy")
    if v:
        floor = g("B3.slowest_ratio", "nginx-static")
        extra = f" (nginx static, no upstream at all: {floor:.2f}×)" if floor else ""
        add("B3 slowest client ≤ 1.3× a single pull", f"{v:.2f}×{extra}", v <= 1.3)
    for row, what in (("B4.manifest_p99", "manifest"), ("B4.base_p99", "/v2/")):
        v = g(row, "depproxy")
        if v is not None:
            add(f"B4 {what} p99 < 20 ms", f"{v:.1f} ms", v < 20)
    a, b, s = g("B5a.anon.rps", "depproxy"), g("B5a.bearer.rps", "depproxy"), g("B5a.basic.rps", "depproxy")
    if a and b:
        add("B5a token group (Bearer) ≥ 0.95× anonymous req/s", f"{b / a:.2f}×", b / a >= 0.95)
    if a and s:
        add("B5a token group (Basic) ≥ 0.95× anonymous req/s", f"{s / a:.2f}×", s / a >= 0.95)
    v = g("B5a.token.rps", "depproxy")
    if v:
        add("B5a token endpoint ≥ 5 000 grants/s", f"{v:.0f}/s", v >= 5000)
    for row in ("B6.B3", "B6.B4"):
        v = g(row, "depproxy")
        if v is not None:
            add(f"B6 peak RSS during {row[3:]} < 150 MB", f"{v:.0f} MB", v < 150)
    return out


def meta_max(meta, row):
    vals = meta["_values"].get((row, "depproxy"))
    return max(vals) if vals else None


def report(results, meta_path, out_md):
    meta = json.load(open(meta_path))
    values = load_results(results)
    meta["_values"] = values
    med = {k: median(v) for k, v in values.items()}
    lines = [
        "# depproxy benchmark results",
        "",
        f"Generated by `{meta['command']}` on {meta['date']} (run id `{meta['run_id']}`). "
        "Regenerated on every run; raw per-repetition values are in the last section.",
        "",
        f"Machine: {meta['nproc']} CPUs ({meta['cpu']}), {meta['mem']}, kernel {meta['kernel']}. "
        f"Load average (1, 5, 15 min) when started: {meta.get('load_start', '?')}; before the scenarios: "
        f"{meta['load_before']}; after: {meta.get('load_after', '?')}.",
    ]
    busy = busy_note(os.path.join(os.path.dirname(meta_path), "load.txt"), meta.get("load_start", "")) \
        if os.path.exists(os.path.join(os.path.dirname(meta_path), "load.txt")) else meta.get("busy_note")
    if busy:
        lines += ["", f"**{busy}**"]
    lines += ["", f"Parameters: {meta['params']}", ""]
    lines += ["## Results (medians)", "",
              "Each cell is the median over the repetitions; in brackets, that system's value ÷ depproxy's. "
              "↑ higher is better, ↓ lower is better. `–`: not applicable or not measured.", ""]
    cols = [(k, n) for k, n in SYSTEMS if any(sysname == k for (_, sysname) in values)]
    lines.append("| scenario | unit | " + " | ".join(n for _, n in cols) + " |")
    lines.append("| --- | --- |" + " --- |" * len(cols))
    for row, label, unit, better in ROWS:
        if not any(r == row for (r, _) in values):
            continue
        base = med.get((row, "depproxy"))
        cells = []
        for k, _ in cols:
            v = med.get((row, k))
            lb = "≥" if (row, k) in LOWER_BOUNDS else ""
            cell = lb + fmt(v)
            if v is not None and k != "depproxy" and base:
                r = v / base
                cell += f" ({lb}{r:.2f}×)" if r >= 0.1 else f" ({lb}{r:.2g}×)"
            cells.append(cell)
        arrow = {"high": " ↑", "low": " ↓"}.get(better, "")
        lines.append(f"| {label}{arrow} | {unit} | " + " | ".join(cells) + " |")
    targets = target_lines(med, meta)
    if targets:
        lines += ["", "## Issue-4 targets (depproxy, this run)", "", "| target | measured | |", "| --- | --- | --- |"]
        lines += [f"| {t} | {v} | {ok} |" for t, v, ok in targets]
    hash_vals = {k: median(values.get(("hash." + k, "micro"), [])) for k, _ in HASH_COLS}
    if any(v is not None for v in hash_vals.values()):
        lines += ["", "## Micro: hashing throughput on the large layer file (GB/s, medians)", "",
                  "| " + " | ".join(n for _, n in HASH_COLS) + " |", "|" + " --- |" * len(HASH_COLS),
                  "| " + " | ".join(fmt(hash_vals[k]) for k, _ in HASH_COLS) + " |", "",
                  meta.get("hash_note", "")]
    findings = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "FINDINGS.md")
    if os.path.exists(findings):
        lines += ["", "## Findings (bench/FINDINGS.md, kept across runs)", ""]
        lines += [l.replace("# ", "### ", 1) if l.startswith("# ") else
                  l.replace("## ", "### ", 1) if l.startswith("## ") else l
                  for l in open(findings).read().rstrip().splitlines()[1:]]
    lines += ["", "## How to read it", ""] + [f"- {t}" for t in READING]
    lines += ["", "## Tool versions", ""] + [f"- {k}: {v}" for k, v in meta["versions"].items()]
    lines += ["", "## Exact commands", "", "```sh"] + meta["commands"] + ["```"]
    if meta.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in meta["notes"]]
    lines += ["", "## Raw values (every repetition, in order)", "",
              "| row | " + " | ".join(k for k, _ in cols) + " |", "| --- |" + " --- |" * len(cols)]
    for row in sorted({r for (r, sysname) in values if sysname != "micro"}):
        lines.append(f"| {row} | " + " | ".join(("≥ " if (row, k) in LOWER_BOUNDS else "")
                                               + (" ".join(fmt(v) for v in values.get((row, k), [])) or "–")
                                               for k, _ in cols) + " |")
    for row in sorted({r for (r, sysname) in values if sysname == "micro"}):
        lines.append(f"| {row} | " + " ".join(fmt(v) for v in values[(row, "micro")]) + " |" + " |" * (len(cols) - 1))
    with open(out_md, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")

def fold(path):
    """perf script (-F comm,tid,ip,sym) → folded stacks ("comm;outer;...;leaf count"), for
    flamegraph.pl / inferno-flamegraph and for grepping inclusive shares."""
    import collections
    stacks, frames, comm = collections.Counter(), [], None

    def flush():
        if comm is not None and frames:
            stacks[";".join([comm] + frames[::-1])] += 1

    for line in open(path, errors="replace"):
        if not line.strip():
            continue
        if not line[0].isspace():
            flush()
            comm, frames = line.split()[0], []
        else:
            parts = line.strip().split(None, 1)
            frames.append((parts[1] if len(parts) > 1 else parts[0]).replace(";", ":").replace(" (inlined)", ""))
    flush()
    for stack, n in stacks.most_common():
        print(stack, n)


def proc_table():
    """pid -> (ppid, comm, cpu seconds) for every process."""
    tick = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2:].split()
        table[int(entry)] = (int(fields[1]), comm, (int(fields[11]) + int(fields[12])) / tick)
    return table


def sampler(out, roots, interval=2.0):
    """Until killed, every INTERVAL s appends "time load1 other_cpu top" to OUT: other_cpu = CPU
    (in cores) used by processes that are not descendants of ROOTS (the harness and the upstream)
    and not kernel threads; top = the three busiest of them (comm:cores)."""
    import time
    roots = {int(r) for r in roots}
    before = proc_table()
    while True:
        time.sleep(interval)
        now = proc_table()
        ours = set(roots)
        changed = True
        while changed:
            changed = False
            for pid, (ppid, _, _) in now.items():
                if ppid in ours and pid not in ours:
                    ours.add(pid)
                    changed = True
        other = {}
        for pid, (ppid, comm, cpu) in now.items():
            if pid in ours or pid == 2 or ppid == 2 or pid == os.getpid():
                continue
            used = cpu - before.get(pid, (0, "", cpu if pid in before else 0))[2]
            if used > 0:
                other[comm] = other.get(comm, 0) + used / interval
        before = now
        top = ",".join(f"{c}:{v:.2f}" for c, v in sorted(other.items(), key=lambda kv: -kv[1])[:3]) or "-"
        load1 = open("/proc/loadavg").read().split()[0]
        with open(out, "a") as f:
            f.write(f"{time.time():.0f} {load1} {sum(other.values()):.2f} {top}\n")


# ---------------------------------------------------------------- meta


def first_line(*cmd):
    import subprocess
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return ((p.stdout + p.stderr).strip().splitlines() or ["?"])[0]
    except Exception as e:  # a missing tool is reported, not fatal
        return f"? ({e})"


def read_lines(path):
    return open(path).read().splitlines() if os.path.exists(path) else []


def busy_note(load_file, start):
    """One sentence on whether other work shared the machine during the scenarios."""
    samples = [l.split() for l in read_lines(load_file)]
    samples = [x for x in samples if len(x) >= 3]
    if not samples:
        return ""
    loads = [float(x[1]) for x in samples]
    ncpu = os.cpu_count()
    if len(samples[0]) == 3:  # older format: compiler process count
        busy = sum(int(x[2]) > 0 for x in samples)
        text = (f"Other work's compiler processes were running in {busy} of {len(samples)} samples "
                "taken during the scenarios")
    else:
        other = [float(x[2]) for x in samples]
        busy = sum(o > 0.2 for o in other)
        mean = sum(other) / len(other)
        tops = {}
        for x in samples:
            for item in x[3].split(","):
                if ":" in item:
                    comm, v = item.rsplit(":", 1)
                    tops[comm] = tops.get(comm, 0) + float(v)
        names = ", ".join(c for c, _ in sorted(tops.items(), key=lambda kv: -kv[1])[:4]) or "none"
        text = (f"Processes outside the harness used on average {mean:.2f} of {ncpu} CPUs during the scenarios "
                f"(more than 0.2 CPU in {busy} of {len(samples)} 2-second samples; busiest: {names})")
    verdict = "the machine was shared" if busy > len(samples) * 0.05 else "the machine was otherwise quiet"
    return (f"{text}: {verdict}. Load average during the scenarios ranged {min(loads):.1f}–{max(loads):.1f} "
            f"on {ncpu} CPUs, most of it the harness itself (clients, servers and upstream share the CPUs); "
            f"1-minute load when the harness started (before its own build and data generation): "
            f"{start.split()[0] if start else '?'}.")


def meta(out):
    """Writes OUT/meta.json from META_* variables, the machine and the tools' versions."""
    env = lambda k: os.environ.get("META_" + k, "")
    dpkg = lambda pkg: first_line("dpkg-query", "-W", "-f=${Version}", pkg)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    start, before, after = env("LOAD_START"), env("LOAD_BEFORE"), env("LOAD_AFTER")
    busy = busy_note(os.path.join(out, "load.txt"), start)
    data = {
        "command": env("COMMAND"), "run_id": env("RUN_ID"),
        "date": __import__("datetime").datetime.now(__import__("datetime").timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()), "cpu": cpu, "mem": f"{mem / (1 << 20):.0f} GiB RAM",
        "kernel": os.uname().release, "load_start": start, "load_before": before, "load_after": after, "busy_note": busy,
        "params": env("PARAMS"),
        "versions": {
            "depproxy": first_line(env("DEPPROXY_BIN"), "--version") + ", " + env("DEPPROXY_SOURCE"),
            **({"depproxy-ref": env("DEPPROXY_REF") + ", " + env("DEPPROXY_REF_SOURCE")} if env("DEPPROXY_REF") else {}),
            "rustc": first_line("rustc", "--version"),
            "distribution (apt docker-registry)": dpkg("docker-registry"),
            "nginx": first_line("nginx", "-v"),
            "wrk": first_line("wrk", "-v"),
            "hey (apt)": dpkg("hey"),
            "curl": first_line("curl", "--version"),
            "skopeo": first_line("skopeo", "--version"),
            "sha256sum": first_line("sha256sum", "--version"),
            "python": first_line("python3", "--version"),
        },
        "commands": read_lines(os.path.join(out, "all-commands.txt")),
        "notes": read_lines(os.path.join(out, "notes.txt")),
        "hash_note": f"`read` = reading the file in {env('HASH_CHUNK')}-byte chunks; the next columns add "
                     "depproxy's own code on the same chunks (`oci::Sha256Hasher`; `storage::Upload` "
                     "write → writer thread → verify, then commit with fsync + rename). Source: bench/hashbench.",
    }
    json.dump(data, open(os.path.join(out, "meta.json"), "w"), indent=1)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "layout-info":
        layout_info(*args)
    elif cmd == "static-tree":
        static_tree(*args)
    elif cmd == "b4-blobs":
        b4_blobs(args[0], int(args[1]), int(args[2]), args[3])
    elif cmd == "hwm":
        hwm(args)
    elif cmd == "curl-stats":
        curl_stats(args)
    elif cmd == "streams":
        streams(args[0])
    elif cmd == "wrk":
        parse_wrk(args[0])
    elif cmd == "hey":
        parse_hey(args[0])
    elif cmd == "sampler":
        sampler(args[0], args[1:])
    elif cmd == "fold":
        fold(args[0])
    elif cmd == "meta":
        meta(args[0])
    elif cmd == "report":
        report(*args)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
