#!/usr/bin/env python3
"""Helpers for bench/run.sh (Python 3 stdlib only).

  bench.py layout-info LAYOUT_DIR NAME      -> "MANIFEST_DIGEST LAYER_DIGEST LAYER_SIZE"
  bench.py static-tree OUT LAYOUTS [[REPO=]LIST...] hard-links blobs/manifests into OUT/v2/lab/... for
                                             nginx static; each LIST (of b4-blobs) into lab/REPO (default b4)
  bench.py b4-blobs DIR COUNT MIB REGISTRY [REPO [nofiles]]
                                             generates COUNT distinct blobs of MIB MiB, pushes any missing
                                             to REGISTRY/lab/REPO (default b4), writes DIR/list ("digest
                                             size" lines); nofiles: keeps only the list (blobs regenerated
                                             in memory when one is missing upstream)
  bench.py hwm PID...                       -> peak RSS in MB: sum of VmHWM over PIDs and their children
  bench.py peak OUT_JSON PID...             until killed, every 0.5 s: max over samples of the summed
                                             Threads, VmRSS, RssAnon, RssFile of PIDs + children
                                             -> OUT_JSON (rewritten)
  bench.py hits SECONDS QPS URL RAW [HEADER...]
                                             steady client: a GET every 1/QPS s, each on a new connection;
                                             RAW gets one JSON line per request; -> JSON {requests, ok,
                                             failed, p50_ms, p99_ms, max_ms, errors} (TTFB of the 200s)
  bench.py storm URL_PREFIX LIST N SECONDS RAMP SOURCES
                                             N concurrent GETs of URL_PREFIX/DIGEST (first N of LIST), from
                                             SOURCES loopback addresses, each hangs up after the response
                                             head -> JSON {fills, status counts, no_head, errors, ...}
  bench.py readers URL N SECONDS RATE RAMP RCVBUF
                                             N concurrent GETs of URL each reading the body at RATE bytes/s
                                             for SECONDS -> JSON {readers, ok, early_eof, ..., mbps_p50}
  bench.py conns URL IDLE HALF HOLD READY_FILE [WINDOW [SOURCES]]
                                             IDLE keep-alive connections (one GET /v2/ each, then idle) +
                                             HALF half-sent request heads, from SOURCES loopback addresses;
                                             touches READY_FILE, holds HOLD s
                                             -> JSON {idle_ok, idle_closed, half_sent, half_closed, ...}
  bench.py abuse URL H1 H2 STREAMS BODY H1_SENT H2_SENT HOLD READY_FILE SOURCES DEADLINE
                                             H1 connections holding a half-sent POST /v2/token body + H2
                                             HTTP/2-without-TLS connections x STREAMS streams each holding a
                                             partial body, from SOURCES addresses other than 127.0.0.1;
                                             touches READY_FILE, holds HOLD s -> JSON {held, closed_in_time,
                                             late, still_open, close_max_s, h2_streams, h1_answers, ...}
  bench.py listen-drops                     -> the machine's TcpExt ListenDrops counter
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


def static_tree(out, layouts, *lists):
    """Registry-shaped file tree: v2/lab/NAME/{blobs/DIGEST, manifests/v1, manifests/DIGEST}; each
    "[REPO=]LIST" of b4-blobs (with its files) adds v2/lab/REPO/blobs/DIGEST (REPO default b4)."""
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
    for arg in lists:
        repo, _, listfile = arg.rpartition("=")
        blob_dir = os.path.dirname(listfile)
        for line in open(listfile):
            digest, _ = line.split()
            link(os.path.join(blob_dir, digest.split(":")[1]),
                 os.path.join(out, "v2", "lab", repo or "b4", "blobs", digest))


def registry_has(conn, digest, repo="b4"):
    conn.request("HEAD", f"/v2/lab/{repo}/blobs/{digest}")
    r = conn.getresponse()
    r.read()
    return r.status == 200


def push_blob(registry, body, digest, size, repo="b4"):
    """body: a file path or the bytes."""
    conn = http.client.HTTPConnection(registry, timeout=120)
    conn.request("POST", f"/v2/lab/{repo}/blobs/uploads/")
    r = conn.getresponse()
    r.read()
    if r.status != 202:
        raise SystemExit(f"upload start: HTTP {r.status}")
    loc = urllib.parse.urlsplit(r.headers["Location"])
    query = (loc.query + "&" if loc.query else "") + "digest=" + urllib.parse.quote(digest)
    headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
    if isinstance(body, bytes):
        conn.request("PUT", f"{loc.path}?{query}", body=body, headers=headers)
    else:
        with open(body, "rb") as f:
            conn.request("PUT", f"{loc.path}?{query}", body=f, headers=headers)
    r = conn.getresponse()
    r.read()
    if r.status != 201:
        raise SystemExit(f"upload {digest}: HTTP {r.status}")


def b4_blobs(out, count, mib, registry, repo="b4", keep_files=True):
    """COUNT distinct blobs: a unique first line + shared random bytes (cheap to generate), pushed
    to REGISTRY/lab/REPO. B4's blobs keep their original first line (same digests as before); other
    sets name only the index, so a smaller set is a prefix of a larger one (same digests)."""
    os.makedirs(out, exist_ok=True)
    listfile = os.path.join(out, "list")
    payload = []

    def data(i):
        if not payload:
            payload.append(random.Random(f"{repo}:{mib}").randbytes(mib * MIB))
        head = (f"depproxy bench B4 blob {i} of {count} x {mib} MiB\n" if repo == "b4"
                else f"depproxy bench {repo} blob {i} x {mib} MiB\n")
        return head.encode() + payload[0]

    entries = []
    if os.path.exists(listfile):
        entries = [line.split() for line in open(listfile)]
    if len(entries) != count or (keep_files and not all(
            os.path.exists(os.path.join(out, d.split(":")[1])) for d, _ in entries)):
        entries = []
        for i in range(count):
            blob = data(i)
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            if keep_files:
                with open(os.path.join(out, digest.split(":")[1]), "wb") as f:
                    f.write(blob)
            entries.append([digest, str(len(blob))])
        with open(listfile + ".tmp", "w") as f:
            f.writelines(f"{d} {s}\n" for d, s in entries)
        os.replace(listfile + ".tmp", listfile)
    conn = http.client.HTTPConnection(registry, timeout=60)
    pushed = 0
    for i, (digest, size) in enumerate(entries):
        if not registry_has(conn, digest, repo):
            body = os.path.join(out, digest.split(":")[1]) if keep_files else data(i)
            push_blob(registry, body, digest, int(size), repo)
            pushed += 1
    print(f"{repo} blobs: {count} x {mib} MiB in {out}, {pushed} pushed to {registry}/lab/{repo}")


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


def tree(pids):
    """PIDS and all their descendants."""
    seen, todo = set(), [int(p) for p in pids]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo += children(pid)
    return seen


def status_sum(pids, fields):
    """{field: sum over PIDS of the number in /proc/PID/status} (kB for Vm* fields)."""
    total = dict.fromkeys(fields, 0)
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/status"):
                key = line.split(":", 1)[0]
                if key in total:
                    total[key] += int(line.split()[1])
        except OSError:
            pass
    return total


def hwm(pids):
    print(f"{status_sum(tree(pids), ['VmHWM'])['VmHWM'] / 1024:.1f}")


def peak(out, pids, interval=0.5):
    """Until killed: every INTERVAL s, the summed Threads and VmRSS of PIDS and their descendants
    (re-walked each time: nginx workers, Go's threads); OUT gets the maxima so far (rewritten
    atomically each sample, so a kill loses nothing)."""
    import time
    best = {"threads_max": 0, "rss_max_mb": 0.0, "samples": 0}
    while True:
        now = status_sum(tree(pids), ["Threads", "VmRSS", "VmHWM", "RssAnon", "RssFile"])
        best["threads_max"] = max(best["threads_max"], now["Threads"])
        best["rss_max_mb"] = max(best["rss_max_mb"], round(now["VmRSS"] / 1024, 1))
        best["anon_max_mb"] = max(best.get("anon_max_mb", 0), round(now["RssAnon"] / 1024, 1))
        best["file_max_mb"] = max(best.get("file_max_mb", 0), round(now["RssFile"] / 1024, 1))
        best["hwm_mb"] = round(now["VmHWM"] / 1024, 1)
        best["samples"] += 1
        with open(out + ".tmp", "w") as f:
            json.dump(best, f)
        os.replace(out + ".tmp", out)
        time.sleep(interval)


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


# ---------------------------------------------------------------- load tools (B6s, B7, BC)
# Raw HTTP/1.1 over plain sockets (stdlib only): the shapes of traffic these scenarios need (hang
# up after the head, read at a fixed pace, half-sent heads, thousands of idle connections) are
# not what curl/wrk/hey do, and thousands of curl processes would load the 2 CPUs themselves.


def parse_rate(text):
    """"1m" / "512k" / "1048576" (bytes per second, nginx/curl style) -> bytes per second."""
    text = text.strip().lower()
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:], 1)
    return int(float(text.rstrip("kmg")) * mult)


def listen_drops():
    """The machine's TcpExt ListenDrops counter (SYNs/connections dropped at a full accept queue)."""
    lines = [l.split() for l in open("/proc/net/netstat") if l.startswith("TcpExt:")]
    return int(dict(zip(lines[0][1:], lines[1][1:]))["ListenDrops"])


def split_url(url):
    """"http://HOST:PORT/PATH?Q" -> (host, port, "/PATH?Q")."""
    u = urllib.parse.urlsplit(url)
    return u.hostname, u.port or 80, (u.path or "/") + ("?" + u.query if u.query else "")


def get_request(host, port, path, headers=(), close=True):
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "User-Agent: depproxy-bench"]
    lines += list(headers) + (["Connection: close"] if close else [])
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def raise_nofile(need=0):
    """Soft RLIMIT_NOFILE up to the hard one (root: hard too, to NEED); returns the soft limit."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if need > hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return need
        except (ValueError, OSError):
            pass
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft
    return hard


def parse_head(head):
    """(status, {lowercase name: value}) of a response head (bytes up to the blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return status, fields


def hits(seconds, qps, url, raw, headers):
    """A steady client: every 1/QPS s (or right after the previous request when that one was
    late) one GET on a new connection, the whole body read. TTFB = connect start → first byte of
    the response (curl's time_starttransfer). A request fails on a non-200, a transport error, a
    body shorter than its Content-Length or 10 s without progress. Percentiles are nearest-rank
    over the 200s."""
    import socket, time
    host, port, path = split_url(url)
    request = get_request(host, port, path, headers)
    buf = bytearray(1 << 20)
    t_start = time.monotonic()
    end, due, rows = t_start + seconds, t_start, []
    with open(raw, "w") as log:
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if due > now:
                time.sleep(due - now)
            due = max(due + 1 / qps, time.monotonic() - 1 / qps)
            t0 = time.monotonic()
            row = {"t": round(t0 - t_start, 3), "status": 0, "bytes": 0, "ttfb_ms": None}
            try:
                with socket.create_connection((host, port), timeout=10) as sock:
                    sock.sendall(request)
                    head = b""
                    while b"\r\n\r\n" not in head:
                        n = sock.recv_into(buf)
                        if n == 0:
                            raise ConnectionError("closed before the response head")
                        if row["ttfb_ms"] is None:
                            row["ttfb_ms"] = round((time.monotonic() - t0) * 1e3, 3)
                        head += bytes(buf[:n])
                    head, _, rest = head.partition(b"\r\n\r\n")
                    row["status"], fields = parse_head(head)
                    length = int(fields["content-length"]) if "content-length" in fields else None
                    got = len(rest)
                    while length is None or got < length:
                        n = sock.recv_into(buf)
                        if n == 0:
                            break
                        got += n
                    row["bytes"] = got
                    if length is not None and got < length:
                        row["error"] = f"short body {got}/{length}"
                    elif row["status"] != 200:
                        row["error"] = f"HTTP {row['status']}"
            except OSError as e:  # refused, reset, timed out (10 s without progress), closed early
                row["error"] = type(e).__name__
            except (ValueError, IndexError) as e:
                row["error"] = f"bad response: {str(e)[:60]}"
            row["total_ms"] = round((time.monotonic() - t0) * 1e3, 3)
            rows.append(row)
            log.write(json.dumps(row) + "\n")
    ok = sorted(r["ttfb_ms"] for r in rows if "error" not in r)
    errors = {}
    for r in rows:
        if "error" in r:
            key = r["error"].split(" ")[0] if r["error"].startswith("short") else r["error"]
            errors[key] = errors.get(key, 0) + 1
    print(json.dumps({"requests": len(rows), "ok": len(ok), "failed": len(rows) - len(ok),
                      "p50_ms": percentile(ok, 50) if ok else None, "p99_ms": percentile(ok, 99) if ok else None,
                      "max_ms": ok[-1] if ok else None, "errors": errors}))


def source_socket(i, sources, always=False):
    """A non-blocking TCP socket; with SOURCES > 1 (or ALWAYS) bound to 127.0.0.(2 + i % SOURCES),
    so the server sees SOURCES client addresses (per-client limits apply per address), none of them
    127.0.0.1."""
    import socket
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    if sources > 1 or always:
        sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24), 1)
        sock.bind((f"127.0.0.{2 + i % sources}", 0))
    return sock


def storm(prefix, listfile, n, seconds, ramp, sources):
    """N concurrent GETs of distinct blobs (PREFIX/DIGEST), started evenly over RAMP s; each
    client closes its connection as soon as the response head (status line + headers) is in,
    or when SECONDS have passed since the start without one."""
    import asyncio
    raise_nofile(n + 100)
    digests = [line.split()[0] for line in open(listfile)][:n]
    if len(digests) < n:
        raise SystemExit(f"{listfile}: only {len(digests)} blobs, {n} asked")
    host, port, path = split_url(prefix)
    results = []

    async def one(i, digest, t0, deadline):
        loop = asyncio.get_running_loop()
        await asyncio.sleep(ramp * i / n)
        start, sock, out = loop.time(), source_socket(i, sources), {"status": None}
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (host, port)), max(0.001, deadline - loop.time()))
            await loop.sock_sendall(sock, get_request(host, port, f"{path.rstrip('/')}/{digest}"))
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), max(0.001, deadline - loop.time()))
                if not chunk:
                    raise ConnectionError("closed")
                head += chunk
            out["status"] = parse_head(head.partition(b"\r\n\r\n")[0])[0]
            out["head_s"] = loop.time() - start
        except asyncio.TimeoutError:
            out["error"] = "no_head"
        except (OSError, ValueError, IndexError) as e:
            out["error"] = "closed" if type(e) is ConnectionError else type(e).__name__
            out["error_s"] = loop.time() - start
        finally:
            sock.close()
        results.append(out)

    async def run():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.gather(*(one(i, d, t0, t0 + seconds) for i, d in enumerate(digests)))

    asyncio.run(run())
    status = {}
    for r in results:
        key = str(r["status"]) if r["status"] is not None else r["error"]
        status[key] = status.get(key, 0) + 1
    heads = sorted(r["head_s"] for r in results if "head_s" in r)
    by_status = {}
    for r in results:
        if "head_s" in r:
            by_status.setdefault(str(r["status"]), []).append(r["head_s"])
        elif "error_s" in r:
            by_status.setdefault(r["error"], []).append(r["error_s"])
    print(json.dumps({
        "fills": n, "status": status,
        "ok": status.get("200", 0), "busy": status.get("503", 0), "no_head": status.get("no_head", 0),
        "other": n - status.get("200", 0) - status.get("503", 0) - status.get("no_head", 0),
        "head_p50_s": round(percentile(heads, 50), 3) if heads else None,
        "head_p90_s": round(percentile(heads, 90), 3) if heads else None,
        "head_max_s": round(heads[-1], 3) if heads else None,
        # when each outcome arrived (s after the request was sent): min, median, max
        "when_s": {k: [round(min(v), 2), round(statistics.median(v), 2), round(max(v), 2)] for k, v in by_status.items()},
    }))


def readers(url, n, seconds, rate, ramp, rcvbuf):
    """N concurrent GETs of URL started over RAMP s; each reads at most RATE bytes/s (a 0.1 s
    tick, at most 1 s of unused allowance carried) through a receive buffer of RCVBUF bytes, so
    the server's socket buffers fill and it has to hold the rest; all stop SECONDS after the start
    (they need not finish)."""
    import asyncio, socket
    raise_nofile(n + 100)
    host, port, path = split_url(url)
    request = get_request(host, port, path)
    results = []

    async def one(i, deadline):
        loop = asyncio.get_running_loop()
        await asyncio.sleep(ramp * i / n)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        buf = bytearray(min(rcvbuf, 256 << 10))
        out = {"status": None, "body": 0, "eof": False}
        start = loop.time()
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (host, port)), 10)
            await loop.sock_sendall(sock, request)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), max(0.001, deadline - loop.time()))
                if not chunk:
                    raise ConnectionError("closed")
                head += chunk
            head, _, rest = head.partition(b"\r\n\r\n")
            out["status"], fields = parse_head(head)
            out["length"] = int(fields.get("content-length", -1))
            out["body"] = len(rest)
            body_start = loop.time()
            allowed = 0.0
            last = body_start
            while loop.time() < deadline and out["body"] != out["length"]:
                now = loop.time()
                allowed = min(allowed + rate * (now - last), float(rate))
                last = now
                want = int(allowed)
                while want > 0 and loop.time() < deadline:
                    try:
                        got = await asyncio.wait_for(loop.sock_recv_into(sock, memoryview(buf)[:min(want, len(buf))]),
                                                     max(0.001, deadline - loop.time()))
                    except asyncio.TimeoutError:  # the window ended while waiting for data
                        break
                    if got == 0:
                        out["eof"] = True
                        break
                    out["body"] += got
                    allowed -= got
                    want -= got
                if out["eof"]:
                    break
                await asyncio.sleep(0.1)
            out["secs"] = max(1e-3, loop.time() - body_start)
        except asyncio.TimeoutError:
            out["error"] = "no_head"
        except (OSError, ValueError, IndexError) as e:
            out["error"] = type(e).__name__
        finally:
            sock.close()
        results.append(out)

    async def run():
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        await asyncio.gather(*(one(i, deadline) for i in range(n)))

    asyncio.run(run())
    done = [r for r in results if r["status"] == 200 and r["body"] == r.get("length")]
    ok = [r for r in results if r["status"] == 200 and "error" not in r
          and (not r["eof"] or r["body"] == r.get("length"))]
    rates = sorted(r["body"] / r["secs"] / 1e6 for r in results if r["status"] == 200 and "secs" in r)
    print(json.dumps({
        "readers": n, "ok": len(ok), "finished": len(done),
        "early_eof": sum(r["eof"] and r["body"] != r.get("length") for r in results),
        "not_200": sum(r["status"] not in (None, 200) for r in results),
        "errors": sum("error" in r for r in results),
        "mbps_p50": round(percentile(rates, 50), 3) if rates else 0,
        "mbps_max": round(rates[-1], 3) if rates else 0,
        "mb_total": round(sum(r["body"] for r in results) / 1e6, 1),
    }))


def conns(url, idle, half, hold, ready_file, window=0.0, sources=1):
    """IDLE keep-alive connections, each sends GET /v2/, reads the whole response and then stays
    idle; then HALF connections that send only 'GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ', all from
    SOURCES loopback addresses (127.0.0.1 when 1; see source_socket). Opens
    at most 64 at a time (below a 128-entry listen backlog: a burst would measure SYN drops, not
    idle connections). Touches READY_FILE when all are open, then holds them HOLD s, watching which
    the server closes (and whether it answered something first, e.g. 408); then closes them all.
    idle_closed_window: idle connections the server closed within WINDOW s of READY_FILE."""
    import asyncio
    limit = raise_nofile(idle + half + 200)
    if limit < idle + half + 100:
        raise SystemExit(f"RLIMIT_NOFILE {limit} < {idle + half + 100}: raise ulimit -n")
    host, port, _ = split_url(url)
    request = get_request(host, port, "/v2/", close=False)
    partial = b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: "
    idle_socks, half_socks = [], []
    failed = {"idle": 0, "half": 0}

    async def open_idle(i, gate):
        loop = asyncio.get_running_loop()
        async with gate:
            sock = source_socket(i, sources)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, (host, port)), 30)
                await loop.sock_sendall(sock, request)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), 30)
                    if not chunk:
                        raise ConnectionError("closed")
                    data += chunk
                head, _, rest = data.partition(b"\r\n\r\n")
                status, fields = parse_head(head)
                length = int(fields.get("content-length", 0))
                while len(rest) < length:
                    chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), 30)
                    if not chunk:
                        raise ConnectionError("closed")
                    rest += chunk
                if status != 200:
                    raise ValueError(f"HTTP {status}")
                idle_socks.append(sock)
            except (OSError, ValueError, IndexError, asyncio.TimeoutError):
                failed["idle"] += 1
                sock.close()

    async def open_half(i, gate):
        loop = asyncio.get_running_loop()
        async with gate:
            sock = source_socket(i, sources)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, (host, port)), 30)
                await loop.sock_sendall(sock, partial)
                half_socks.append((sock, loop.time()))
            except (OSError, asyncio.TimeoutError):
                failed["half"] += 1
                sock.close()

    closed = {"idle": [], "half": [], "idle_window": []}
    ready_at = [0.0]

    async def watch(kind, sock, sent):
        loop = asyncio.get_running_loop()
        answered = b""
        try:
            while True:
                chunk = await loop.sock_recv(sock, 4096)
                if not chunk:
                    break
                answered += chunk[:64]
        except OSError:
            pass
        closed[kind].append((loop.time() - sent, answered[:12].decode("latin-1")))
        if kind == "idle" and loop.time() - ready_at[0] <= window:
            closed["idle_window"].append(1)

    async def run():
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(64)  # in-flight connects: below a 128 listen backlog
        t0 = loop.time()
        await asyncio.gather(*(open_idle(i, gate) for i in range(idle)))
        t_idle = loop.time() - t0
        await asyncio.gather(*(open_half(i, gate) for i in range(half)))
        t_open = loop.time() - t0
        now = ready_at[0] = loop.time()
        watchers = [asyncio.ensure_future(watch("idle", s, now)) for s in idle_socks]
        watchers += [asyncio.ensure_future(watch("half", s, sent)) for s, sent in half_socks]
        open(ready_file, "w").write(f"{t_open:.3f}\n")
        await asyncio.sleep(hold)
        for w in watchers:
            w.cancel()
        for s in idle_socks + [s for s, _ in half_socks]:
            s.close()
        return t_idle, t_open

    t_idle, t_open = asyncio.run(run())
    half_times = sorted(t for t, _ in closed["half"])
    answers = {}
    for _, a in closed["half"]:
        key = a.split(" ")[1] if a.startswith("HTTP/") and " " in a else ("nothing" if not a else "other")
        answers[key] = answers.get(key, 0) + 1
    print(json.dumps({
        "idle": idle, "idle_ok": len(idle_socks), "idle_failed": failed["idle"], "idle_closed": len(closed["idle"]),
        "idle_closed_window": len(closed["idle_window"]),
        "half": half, "half_sent": len(half_socks), "half_failed": failed["half"],
        "half_closed": len(closed["half"]), "half_open": len(half_socks) - len(closed["half"]),
        "half_close_min_s": round(half_times[0], 2) if half_times else None,
        "half_close_max_s": round(half_times[-1], 2) if half_times else None,
        "half_answers": answers, "open_idle_s": round(t_idle, 2), "open_all_s": round(t_open, 2), "hold_s": hold,
    }))


# HTTP/2 frames (RFC 9113), enough to open streams and follow what the server answers.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_DATA, H2_HEADERS, H2_RST_STREAM, H2_SETTINGS, H2_PING, H2_GOAWAY, H2_WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
H2_END_HEADERS, H2_ACK = 0x4, 0x1


def h2_frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def h2_frames(pending):
    """([(kind, flags, stream, payload)], rest) of the complete frames at the start of PENDING."""
    frames = []
    while len(pending) >= 9:
        length = int.from_bytes(pending[:3], "big")
        if len(pending) < 9 + length:
            break
        frames.append((pending[3], pending[4], int.from_bytes(pending[5:9], "big") & 0x7FFFFFFF,
                       pending[9:9 + length]))
        pending = pending[9 + length:]
    return frames, pending


def hpack_literal(name, value):
    """A header as an HPACK literal without indexing, new name, no Huffman (RFC 7541 §6.2.2)."""
    n, v = name.encode(), value.encode()
    assert len(n) < 127 and len(v) < 127
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


def abuse(url, h1, h2, streams, body, h1_sent, h2_sent, hold, ready_file, sources, deadline):
    """Connections that hold request bodies half-sent, against one server:
    - H1 connections each send the head of `POST /v2/token` announcing a BODY-byte form, and
      H1_SENT bytes of it;
    - H2 connections speak HTTP/2 without TLS (prior knowledge: the preface and SETTINGS; the
      server's SETTINGS acknowledged) and open STREAMS such POSTs each (at most what the server's
      SETTINGS_MAX_CONCURRENT_STREAMS allows), each with H2_SENT bytes of body — fewer when the
      server's flow-control windows (as its SETTINGS and WINDOW_UPDATE say before any byte of body
      is sent) do not take STREAMS × H2_SENT. A server that does not speak HTTP/2 without TLS
      counts them as failed (with the reason).
    Every connection comes from 127.0.0.(2 + i % SOURCES): never 127.0.0.1, the address of the
    normal clients measured meanwhile. At most 64 connect at a time. READY_FILE is touched when
    all are open; they are then held HOLD s while the server's answers and closes are watched; a
    connection is 'closed in time' when the server closed it within DEADLINE s of its last byte
    sent (the body deadline under test + 1 s). Prints one JSON object."""
    import asyncio
    limit = raise_nofile(h1 + h2 + 300)
    if limit < h1 + h2 + 200:
        raise SystemExit(f"RLIMIT_NOFILE {limit} < {h1 + h2 + 200}: raise ulimit -n")
    host, port, _ = split_url(url)
    authority = f"{host}:{port}"
    h1_head = (f"POST /v2/token HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: depproxy-bench\r\n"
               f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {body}\r\n\r\n").encode()
    h1_request = h1_head + b"a" * min(h1_sent, body - 1)
    block = b"".join(hpack_literal(n, v) for n, v in (
        (":method", "POST"), (":scheme", "http"), (":path", "/v2/token"), (":authority", authority),
        ("content-type", "application/x-www-form-urlencoded"), ("content-length", str(body))))
    held = []  # (kind, sock, sent_at, pending bytes)
    failed = {"h1": 0, "h2": 0}
    reasons = {}
    h2_opened, h2_body = [], []

    def fail(kind, why):
        failed[kind] += 1
        reasons[why] = reasons.get(why, 0) + 1

    async def open_h1(i, gate):
        loop = asyncio.get_running_loop()
        async with gate:
            sock = source_socket(i, sources, always=True)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, (host, port)), 30)
                await loop.sock_sendall(sock, h1_request)
                held.append(("h1", sock, loop.time(), b""))
            except (OSError, asyncio.TimeoutError) as e:
                fail("h1", type(e).__name__)
                sock.close()

    async def open_h2(i, gate):
        loop = asyncio.get_running_loop()
        async with gate:
            sock = source_socket(h1 + i, sources, always=True)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, (host, port)), 30)
                await loop.sock_sendall(sock, H2_PREFACE + h2_frame(H2_SETTINGS, 0, 0))
                conn_window, stream_window, max_streams = 65535, 65535, None
                settings = window_update = False
                pending = b""
                give_up = loop.time() + 10
                while not (settings and window_update):
                    wait = give_up - loop.time() if not settings else 0.2
                    try:
                        chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), max(wait, 0.01))
                    except asyncio.TimeoutError:
                        if settings:
                            break  # no WINDOW_UPDATE: the initial windows apply
                        raise
                    if not chunk:
                        raise ConnectionError("closed before its SETTINGS")
                    pending += chunk
                    if not settings and pending[:5] == b"HTTP/":
                        raise ConnectionError("answered in HTTP/1")
                    frames, pending = h2_frames(pending)
                    for kind, flags, stream, payload in frames:
                        if kind == H2_SETTINGS and not flags & H2_ACK:
                            settings = True
                            for off in range(0, len(payload) - 5, 6):
                                ident = int.from_bytes(payload[off:off + 2], "big")
                                value = int.from_bytes(payload[off + 2:off + 6], "big")
                                if ident == 3:
                                    max_streams = value
                                elif ident == 4:
                                    stream_window = value
                            await loop.sock_sendall(sock, h2_frame(H2_SETTINGS, H2_ACK, 0))
                        elif kind == H2_WINDOW_UPDATE and stream == 0:
                            conn_window += int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
                            window_update = True
                        elif kind == H2_GOAWAY:
                            raise ConnectionError("GOAWAY before any stream")
                n = streams if max_streams is None else min(streams, max_streams)
                per_stream = max(0, min(h2_sent, body - 1, stream_window, conn_window // max(n, 1)))
                out = bytearray()
                for s in range(n):
                    out += h2_frame(H2_HEADERS, H2_END_HEADERS, 2 * s + 1, block)
                    if per_stream:
                        out += h2_frame(H2_DATA, 0, 2 * s + 1, b"a" * per_stream)
                await loop.sock_sendall(sock, bytes(out))
                held.append(("h2", sock, loop.time(), pending))
                h2_opened.append(n)
                h2_body.append(per_stream)
            except (OSError, ValueError, asyncio.TimeoutError) as e:
                fail("h2", str(e) if isinstance(e, ConnectionError) and str(e) else type(e).__name__)
                sock.close()

    outcome = {"h1": [], "h2": []}  # (seconds from the last byte sent to the close, or None; answer)
    h2_seen = {"answered": 0, "reset": 0, "goaway": 0}

    async def watch(kind, sock, sent, pending):
        loop = asyncio.get_running_loop()
        answered = b""
        try:
            while True:
                chunk = await loop.sock_recv(sock, 65536)
                if not chunk:
                    break
                if kind == "h1":
                    answered += chunk[:64] if len(answered) < 64 else b""
                    continue
                frames, pending = h2_frames(pending + chunk)
                for k, flags, stream, payload in frames:
                    if k == H2_HEADERS and stream:
                        h2_seen["answered"] += 1
                    elif k == H2_RST_STREAM:
                        h2_seen["reset"] += 1
                    elif k == H2_GOAWAY:
                        h2_seen["goaway"] += 1
                    elif k == H2_PING and not flags & H2_ACK:
                        await loop.sock_sendall(sock, h2_frame(H2_PING, H2_ACK, 0, payload))
        except OSError:
            pass
        except asyncio.CancelledError:
            outcome[kind].append((None, answered[:12].decode("latin-1")))
            raise
        outcome[kind].append((loop.time() - sent, answered[:12].decode("latin-1")))

    async def run():
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(64)  # in-flight connects: below a 128 listen backlog
        t0 = loop.time()
        await asyncio.gather(*(open_h2(i, gate) for i in range(h2)), *(open_h1(i, gate) for i in range(h1)))
        t_open = loop.time() - t0
        watchers = [asyncio.ensure_future(watch(kind, sock, sent, pending)) for kind, sock, sent, pending in held]
        open(ready_file, "w").write(f"{t_open:.3f}\n")
        await asyncio.sleep(hold)
        for w in watchers:
            w.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        for _, sock, _, _ in held:
            sock.close()
        return t_open

    t_open = asyncio.run(run())
    closes = [t for kind in outcome for t, _ in outcome[kind] if t is not None]
    in_time = sum(1 for t in closes if t <= deadline)
    answers = {}
    for _, a in outcome["h1"]:
        key = a.split(" ")[1] if a.startswith("HTTP/") and " " in a else ("nothing" if not a else "other")
        answers[key] = answers.get(key, 0) + 1
    print(json.dumps({
        "h1": h1, "h1_held": sum(1 for k, *_ in held if k == "h1"), "h1_failed": failed["h1"], "h1_answers": answers,
        "h2": h2, "h2_held": sum(1 for k, *_ in held if k == "h2"), "h2_failed": failed["h2"],
        "h2_streams": sum(h2_opened), "h2_body_bytes": max(h2_body) if h2_body else None,
        "h2_answered": h2_seen["answered"], "h2_reset": h2_seen["reset"], "h2_goaway": h2_seen["goaway"],
        "failed_reasons": reasons, "held": len(held), "closed": len(closes), "closed_in_time": in_time,
        "late": len(held) - in_time, "still_open": len(held) - len(closes),
        "close_max_s": round(max(closes), 2) if closes else None, "deadline_s": deadline,
        "open_all_s": round(t_open, 2), "hold_s": hold,
    }))


# ---------------------------------------------------------------- report

SYSTEMS = [("depproxy", "depproxy"), ("depproxy-ref", "depproxy (reference build)"), ("distribution", "distribution proxy"),
           ("verdaccio", "Verdaccio proxy-cache"), ("devpi", "devpi-server mirror"),
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
    ("B5a.anongroup.rps", "B5a manifest by tag, anonymous group in the group URL form: req/s", "req/s", "high"),
    ("B5a.bearer.rps", "B5a manifest by tag, token group, Bearer JWT: req/s", "req/s", "high"),
    ("B5a.basic.rps", "B5a manifest by tag, token group, Basic access token: req/s", "req/s", "high"),
    ("B5a.bearer.p99", "B5a token group, Bearer JWT: p99", "ms", "low"),
    ("B5a.token.rps", "B5a token endpoint: grants/s (GET with Basic)", "req/s", "high"),
    ("B5a.token.p99", "B5a token endpoint: p99", "ms", "low"),
    ("B5p.plain.rps", "B5p manifest by tag, group without rules: req/s", "req/s", "high"),
    ("B5p.rules.rps", "B5p manifest by tag, group with 100 allow/deny rules: req/s", "req/s", "high"),
    ("B5p.rules.p99", "B5p group with 100 rules: p99", "ms", "low"),
    ("B6.B3", "B6 peak RSS during B3 herd", "MB", "low"),
] + [
    row
    for db, name in (("sqlite", "SQLite"), ("postgres", "PostgreSQL"))
    for row in (
        (f"BS.{db}.seconds", f"BS sweep of the expired objects, {name}: wall time", "s", "low"),
        (f"BS.{db}.evicted", f"BS objects removed by the sweep, {name}", "", ""),
        (f"BS.{db}.files_left", f"BS object files left after the sweep, {name}", "", ""),
        (f"BS.{db}.rss_before", f"BS RSS before the sweep, {name}", "MB", "low"),
        (f"BS.{db}.rss", f"BS peak RSS (VmHWM) after the sweep, {name}", "MB", "low"),
        (f"BS.{db}.p99_before", f"BS hit p99 before the sweep (B5 load), median 1-s slice, {name}", "ms", "low"),
        (f"BS.{db}.p99_median", f"BS hit p99 during the sweep, median 1-s slice, {name}", "ms", "low"),
        (f"BS.{db}.p99_during", f"BS hit p99 during the sweep, worst 1-s slice, {name}", "ms", "low"),
        (f"BS.{db}.rps_before", f"BS hits req/s before the sweep, {name}", "req/s", "high"),
        (f"BS.{db}.rps_during", f"BS hits req/s during the sweep, median slice, {name}", "req/s", "high"),
    )
] + [
    ("B6.B4", "B6 peak RSS during B4", "MB", "low"),
    ("B6s.rss", "B6s peak RSS, slow readers of one cached blob", "MB", "low"),
    ("B6s.threads", "B6s peak threads, slow readers", "", "low"),
    ("B6s.readers_ok", "B6s readers answered 200 and still reading", "", "high"),
    ("B6s.reader_mbps", "B6s per-reader rate, median (paced by the client)", "MB/s", ""),
    ("B7.manifest_p50", "B7 manifest hit TTFB p50 during the fill storm", "ms", "low"),
    ("B7.manifest_p99", "B7 manifest hit TTFB p99 during the fill storm", "ms", "low"),
    ("B7.blob_p50", "B7 cached blob hit TTFB p50 during the fill storm", "ms", "low"),
    ("B7.blob_p99", "B7 cached blob hit TTFB p99 during the fill storm", "ms", "low"),
    ("B7.manifest_failed", "B7 failed manifest hits", "", "low"),
    ("B7.blob_failed", "B7 failed blob hits", "", "low"),
    ("B7.rss", "B7 peak RSS during the fill storm", "MB", "low"),
    ("B7.threads", "B7 peak threads during the fill storm", "", "low"),
    ("B7.fills_200", "B7 fills answered 200 within the window", "", ""),
    ("B7.fills_503", "B7 fills answered 503 (busy, Retry-After)", "", ""),
    ("B7.fills_no_head", "B7 fills without a response head by the end of the window", "", ""),
    ("B7.fills_other", "B7 fills with another status or a transport error", "", ""),
    ("B7.listen_drops", "B7 listen-queue drops on the machine during the window", "", "low"),
    ("BC.manifest_p50", "BC manifest hit TTFB p50 with the connections open", "ms", "low"),
    ("BC.manifest_p99", "BC manifest hit TTFB p99 with the connections open", "ms", "low"),
    ("BC.blob_p50", "BC cached blob hit TTFB p50 with the connections open", "ms", "low"),
    ("BC.blob_p99", "BC cached blob hit TTFB p99 with the connections open", "ms", "low"),
    ("BC.manifest_failed", "BC failed manifest hits", "", "low"),
    ("BC.blob_failed", "BC failed blob hits", "", "low"),
    ("BC.rss", "BC peak RSS with the connections open", "MB", "low"),
    ("BC.threads", "BC peak threads with the connections open", "", "low"),
    ("BC.idle_ok", "BC idle keep-alive connections established", "", "high"),
    ("BC.idle_closed", "BC idle connections closed by the server while held", "", ""),
    ("BC.half_sent", "BC half-sent heads established", "", ""),
    ("BC.half_open", "BC half-sent heads still open at the end of the hold", "", "low"),
    ("BC.half_close_s", "BC slowest close of a half-sent head, after sending", "s", "low"),
    ("BC.open_s", "BC time to open all connections", "s", "low"),
    ("BC.listen_drops", "BC listen-queue drops on the machine during the hold", "", "low"),
    ("BA.manifest_p50", "BA manifest hit TTFB p50 under half-sent bodies", "ms", "low"),
    ("BA.manifest_p99", "BA manifest hit TTFB p99 under half-sent bodies", "ms", "low"),
    ("BA.blob_p50", "BA cached blob hit TTFB p50 under half-sent bodies", "ms", "low"),
    ("BA.blob_p99", "BA cached blob hit TTFB p99 under half-sent bodies", "ms", "low"),
    ("BA.manifest_failed", "BA failed manifest hits", "", "low"),
    ("BA.blob_failed", "BA failed blob hits", "", "low"),
    ("BA.rss", "BA peak RSS under half-sent bodies", "MB", "low"),
    ("BA.threads", "BA peak threads under half-sent bodies", "", "low"),
    ("BA.held", "BA abusive connections established (HTTP/1 + HTTP/2)", "", ""),
    ("BA.h2_held", "BA HTTP/2-without-TLS connections established", "", ""),
    ("BA.h2_streams", "BA HTTP/2 streams opened with a partial body", "", ""),
    ("BA.late", "BA held connections not closed within the body deadline + 1 s", "", "low"),
    ("BA.still_open", "BA held connections still open at the end of the hold", "", "low"),
    ("BA.close_max_s", "BA slowest close of a held connection, after its last byte", "s", "low"),
    ("BA.open_s", "BA time to open the abusive connections", "s", "low"),
] + [
    row
    for sc, what, clients in (("BN", "npm install", "BN_CLIENTS"), ("BP", "pip install", "BP_CLIENTS"))
    for row in (
        (f"{sc}.cold", f"{sc} cold {what} (fresh proxy, empty client cache): wall", "s", "low"),
        (f"{sc}.warm", f"{sc} warm {what} (proxy filled, empty client cache): wall", "s", "low"),
    ) + ((
        ("BN.ci_cold", "BN cold npm ci (lockfile; fresh proxy, empty client cache): wall", "s", "low"),
        ("BN.ci_warm", "BN warm npm ci (proxy filled, empty client cache): wall", "s", "low"),
    ) if sc == "BN" else ()) + (
        (f"{sc}.herd_slowest", f"{sc} concurrent cold installs ({clients}): slowest wall", "s", "low"),
        (f"{sc}.herd_failed", f"{sc} concurrent cold installs: clients that failed", "", "low"),
        (f"{sc}.herd_up_x", f"{sc} concurrent cold installs: upstream bytes ÷ one cold install's", "×", "low"),
        (f"{sc}.herd_up_reqs", f"{sc} concurrent cold installs: upstream requests", "", "low"),
        (f"{sc}.cold_up_reqs", f"{sc} one cold install: upstream requests", "", "low"),
        (f"{sc}.cold_up_mb", f"{sc} one cold install: upstream bytes", "MB", "low"),
        (f"{sc}.warm_up_reqs", f"{sc} warm install: upstream requests", "", "low"),
    )
] + [
    ("BR.cold", "BR cold cargo fetch (fresh proxy, empty CARGO_HOME): wall", "s", "low"),
    ("BR.warm", "BR warm cargo fetch (proxy filled, empty CARGO_HOME): wall", "s", "low"),
    ("BR.herd_slowest", "BR concurrent cold fetches (BR_CLIENTS): slowest wall", "s", "low"),
    ("BR.herd_failed", "BR concurrent cold fetches: clients that failed", "", "low"),
    ("BR.herd_up_x", "BR concurrent cold fetches: upstream bytes ÷ one cold fetch's", "×", "low"),
    ("BR.herd_up_reqs", "BR concurrent cold fetches: upstream requests (index + dl)", "", "low"),
    ("BR.cold_up_reqs", "BR one cold fetch: upstream requests (index + dl)", "", "low"),
    ("BR.cold_up_mb", "BR one cold fetch: upstream bytes", "MB", "low"),
    ("BR.warm_up_reqs", "BR warm fetch: upstream requests", "", "low"),
] + [
    row
    for sc, what, client, clients in (
        ("BM", "mvn dependency:resolve", "empty local repository", "BM_CLIENTS"),
        ("BG", "go mod download", "empty GOMODCACHE", "BG_CLIENTS"))
    for row in (
        (f"{sc}.cold", f"{sc} cold {what} (fresh proxy, {client}): wall", "s", "low"),
        (f"{sc}.warm", f"{sc} warm {what} (proxy filled, {client}): wall", "s", "low"),
        (f"{sc}.herd_slowest", f"{sc} concurrent cold runs ({clients}): slowest wall", "s", "low"),
        (f"{sc}.herd_failed", f"{sc} concurrent cold runs: clients that failed", "", "low"),
        (f"{sc}.herd_up_x", f"{sc} concurrent cold runs: upstream bytes ÷ one cold run's", "×", "low"),
        (f"{sc}.herd_up_reqs", f"{sc} concurrent cold runs: upstream requests", "", "low"),
        (f"{sc}.cold_up_reqs", f"{sc} one cold run: upstream requests", "", "low"),
        (f"{sc}.cold_up_mb", f"{sc} one cold run: upstream bytes", "MB", "low"),
        (f"{sc}.warm_up_reqs", f"{sc} warm run: upstream requests", "", "low"),
    )
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
    "B6s, B7, BC, BA: 'peak RSS' is the same sum of VmHWM, read at the end of the window; 'peak threads' is "
    "the largest sum of Threads over the system's processes in samples taken every 0.5 s during the "
    "window. Every repetition starts a fresh process.",
    "B6s: the readers are one asyncio client (bench.py readers) that reads each body at B6S_RATE with a "
    "small receive buffer, so the server's send buffers fill and it must hold the unsent part of "
    "every stream; 'per-reader rate' shows the pacing held.",
    "B7, BC and BA hits: a steady client per kind (bench.py hits), one GET every 1/HIT_QPS s, each on a new "
    "connection (accept latency is part of the TTFB), whole body read; TTFB = connect start → first "
    "response byte (curl's time_starttransfer), nearest-rank percentiles over the 200s. A hit fails on a "
    "non-200, a transport error, a short body or 10 s without progress.",
    "B7: the storm's clients (bench.py storm) come from B7_SOURCES loopback addresses, so a per-client "
    "fill limit does not cap the whole storm at one address's share, and close their connection as soon "
    "as the response head is in: the fills go on (or not) without a client. depproxy admits at most "
    "[limits] max_concurrent_fills (256) fills and answers the rest 503 + Retry-After after its fill "
    "queue timeout (30 s), so '503' and 'no head' are expected there; distribution revalidates the "
    "manifest tag with the (throttled) upstream on every GET. nginx static, with no upstream, is not run.",
    "BC: depproxy runs with [server] header_read_timeout = BC_HEADER_TIMEOUT and max_connections = "
    "BC_MAX_CONN (the default 10 000 is below the connections opened), nginx with worker_connections "
    "raised to fit; everyone else at their defaults (nginx's client_header_timeout is 60 s, so it keeps "
    "half-sent heads open within the hold). The hits run right after the last connection is open; the "
    "hold lasts BC_HEADER_TIMEOUT + 3 s (at least BC_SECONDS) + 1 s. depproxy's header timer also runs "
    "while a kept-alive connection waits for its next request, so it closes the idle connections at "
    "BC_HEADER_TIMEOUT too ('idle closed'): BC_HEADER_TIMEOUT (default 15 s) must exceed the time to "
    "open the connections + BC_SECONDS, or the hits do not see them all open (the run says so in its "
    "notes). The connections come from BC_SOURCES loopback addresses, so depproxy's per-address cap "
    "(max_connections_per_client, a tenth of max_connections) is not what closes them.",
    "BN, BP (issue 26): whole installs of a generated project (bench/lib/pkgbench.py): BN a tree of "
    "BN_PACKAGES npm packages (10% scoped, every 5th with 3 versions, tarballs of 2–100 KB) published to "
    "a Verdaccio upstream; BP BP_PROJECTS wheels (every 5th with 2 versions) served by pypiserver. Every "
    "system's upstream is a 'meter' nginx in front of the origin that only passes requests through and logs "
    "each response's size: upstream requests and bytes are counted there for all systems alike. 'cold' = "
    "the system restarted with an empty cache just before, 'warm' = right after the cold install; the client "
    "always starts empty (new project directory, new npm --cache / pip --no-cache-dir). npm install runs "
    "without a lockfile (it resolves every packument, then fetches tarballs); npm ci with a lockfile "
    "resolved against the upstream whose 'resolved' URLs are moved to the system under test (npm fetches "
    "them as written). Verdaccio's uplink maxage and nginx's packument/page freshness are 5 min, like "
    "depproxy's document_recheck. The concurrent installs start together on a fresh system; 'upstream "
    "bytes ÷ one cold install's' is 1.00× when every file and document crossed once.",
    "BR (issue 27): `cargo fetch` with an empty CARGO_HOME and no lockfile (cargo resolves through the "
    "sparse index: config.json, then one index file per crate, wave by wave down the tree, then every "
    ".crate) of a project whose tree is BR_CRATES crates made by `cargo package` "
    "(scripts/lab/make-cargo-fixtures.sh). The upstream is a sparse registry of two servers "
    "(scripts/lab/start-sparse-registry.sh): the index, whose config.json names the download server as "
    "its `dl`, and the download server; a meter nginx in front of each counts what every system takes "
    "from either ('direct' is the client using the registry through the meters, no proxy: its herd ratio "
    "is BR_CLIENTS× by construction). nginx proxy_cache keeps index files 5 min and .crate files 7 d, "
    "config.json's dl rewritten to its own /dl/ with sub_filter; depproxy reads config.json itself.",
    "BM, BG (issue 27): BM is `mvn -B -s settings.xml -Dmaven.repo.local=<new> dependency:resolve` of a "
    "project resolving 184 files — maven-core and maven-compat 3.8.7 and maven-dependency-plugin 3.5.0 with "
    "their trees (scripts/lab/make-maven-bench-project.sh) — with the system as the mirror of everything; "
    "the upstream is Debian's /usr/share/maven-repo served as plain files by Python's http.server, which "
    "has no checksum sidecars, so every .sha1/.md5 Maven (and depproxy: .sha1, .sha512, .sha256) asks "
    "there is a 404. BG is `go mod download` (GOSUMDB=off, GOFLAGS=-mod=mod, new GOPATH, GOMODCACHE, "
    "GOCACHE) of a consumer of BG_MODULES generated modules plus alpha and Beta "
    "(scripts/lab/make-go-fixtures.sh; .info, .mod and .zip of each) served by scripts/lab/start-goproxy.sh. "
    "A meter nginx in front of each origin counts what every system takes from it ('direct' is the "
    "client on the meter, no proxy: its herd ratio is the client count by construction; 404 bodies count "
    "as bytes too). nginx proxy_cache keeps Maven files and Go .info/.mod/.zip 7 d, maven-metadata.xml and "
    "Go lists/@latest 5 min, 404s (Go: and 410s) 1 min like depproxy's negative_ttl, with proxy_cache_lock.",
    "BA (issue 23): BA_H1 connections send the head of POST /v2/token announcing a BA_BODY-byte form and "
    "BA_H1_SENT bytes of it, and BA_H2 connections speak HTTP/2 without TLS (prior knowledge) with "
    "BA_STREAMS streams each (capped at the server's SETTINGS), each such a POST with BA_H2_SENT bytes of "
    "body; then nothing more (bench.py abuse). They come from BA_SOURCES loopback addresses other than "
    "127.0.0.1 (the hit clients' address), so no per-address cap is what stops them; the hits run for "
    "BA_SECONDS from the moment the abusive connections start opening. depproxy runs with [server] "
    "body_read_timeout = BA_BODY_TIMEOUT and http2 = true (h2c is off by default: off, its HTTP/2 "
    "connections would be refused at once and the stream limits not exercised); the others at their "
    "defaults (nginx's client_body_timeout is 60 s; a server that does not speak HTTP/2 without TLS "
    "shows 0 HTTP/2 connections established). 'late' counts connections the server did not close within "
    "BA_BODY_TIMEOUT + 1 s of their last byte (still open at the end of the hold, BA_BODY_TIMEOUT + 3 s, "
    "included).",
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
    """(target text, measured text, ok) for every target whose inputs were measured: issue 4's
    (B1–B6), the data plane's under load (cold streams against the fastest peer, hits against
    nginx proxy_cache) and those of the fill storm, slow readers and connections (B7, B6s, BC)."""
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
    # The data plane under load (cold streams against the fastest peer, hits against nginx).
    d = g("B2.total", "depproxy")
    peers = {p: g("B2.total", p) for p in ("distribution", "nginx-cache") if g("B2.total", p)}
    if d and peers:
        fastest = min(peers, key=peers.get)
        add(f"B2 wall ≤ 1.0× the fastest peer ({fastest})", f"{d / peers[fastest]:.2f}×", d <= peers[fastest])
    d, r = g("B3.single", "depproxy"), g("B3.single", "distribution")
    if d and r:
        add("B3 single cold pull ≤ 1.0× distribution", f"{d / r:.2f}×", d <= r)
    d, n = g("B4.stream_ttfb_p50", "depproxy"), g("B4.stream_ttfb_p50", "nginx-cache")
    if d and n:
        add("B4 cold-stream TTFB p50 ≤ 1.0× nginx proxy_cache", f"{d / n:.2f}×", d <= n)
    for row, what in (("B5.rps", "by tag"), ("B5d.rps", "by digest")):
        d, n = g(row, "depproxy"), g(row, "nginx-cache")
        if d and n:
            add(f"B5 manifest {what} ≥ 1.0× nginx proxy_cache req/s", f"{d / n:.2f}×", d >= n)
    v = g("B6.B3", "depproxy")
    if v is not None:
        add("B6 peak RSS during the B3 herd ≤ 60 MB", f"{v:.0f} MB", v <= 60)
    for row, what in (("B4.manifest_p99", "manifest"), ("B4.base_p99", "/v2/")):
        v = g(row, "depproxy")
        if v is not None:
            add(f"B4 {what} p99 < 20 ms", f"{v:.1f} ms", v < 20)
    a, b, s = g("B5a.anon.rps", "depproxy"), g("B5a.bearer.rps", "depproxy"), g("B5a.basic.rps", "depproxy")
    if a and b:
        add("B5a token group (Bearer) ≥ 0.95× anonymous req/s", f"{b / a:.2f}×", b / a >= 0.95)
    if a and s:
        add("B5a token group (Basic) ≥ 0.95× anonymous req/s", f"{s / a:.2f}×", s / a >= 0.95)
    ag = g("B5a.anongroup.rps", "depproxy")
    if ag and b:
        add("B5a token group (Bearer) ≥ 0.95× anonymous, same URL form", f"{b / ag:.2f}×", b / ag >= 0.95)
    if ag and s:
        add("B5a token group (Basic) ≥ 0.95× anonymous, same URL form", f"{s / ag:.2f}×", s / ag >= 0.95)
    plain, ruled = g("B5p.plain.rps", "depproxy"), g("B5p.rules.rps", "depproxy")
    if plain and ruled:
        add("B5p 100 allow/deny rules ≥ 0.95× no rules, req/s", f"{ruled / plain:.2f}×", ruled / plain >= 0.95)
    v = g("B5a.token.rps", "depproxy")
    if v:
        add("B5a token endpoint ≥ 5 000 grants/s", f"{v:.0f}/s", v >= 5000)
    for db in ("sqlite", "postgres"):
        v = g(f"BS.{db}.p99_during", "depproxy")
        if v is not None:
            add(f"BS hit p99 during the sweep < 20 ms ({db}, worst 1-s slice)", f"{v:.1f} ms", v < 20)
    # BN, BP (issue 26): installs against the fastest package peer; one upstream fetch per file.
    for sc, rows in (("BN", (("cold", "cold npm install", 1.0), ("ci_cold", "cold npm ci", 1.0),
                             ("warm", "warm npm install", 0.8), ("ci_warm", "warm npm ci", 0.8))),
                     ("BP", (("cold", "cold pip install", 1.0), ("warm", "warm pip install", 0.8)))):
        for row, what, limit in rows:
            d = g(f"{sc}.{row}", "depproxy")
            peers = {p: g(f"{sc}.{row}", p) for p in ("verdaccio", "devpi", "nginx-cache") if g(f"{sc}.{row}", p)}
            if d and peers:
                fastest = min(peers, key=peers.get)
                add(f"{sc} {what} wall ≤ {limit:.1f}× the fastest peer ({fastest})",
                    f"{d / peers[fastest]:.2f}×", d <= limit * peers[fastest])
        v = meta_max(meta, f"{sc}.herd_up_x")
        if v is not None:
            add(f"{sc} concurrent cold installs: upstream bytes 1× one install's (every rep)", f"max {v:.4f}×",
                v <= 1 + 1e-9)
    # BR (issue 27): cargo fetch against nginx proxy_cache; one upstream fetch per file.
    d, n = g("BR.warm", "depproxy"), g("BR.warm", "nginx-cache")
    if d and n:
        add("BR warm cargo fetch wall ≤ 1.0× nginx proxy_cache", f"{d / n:.2f}×", d <= n)
    v = meta_max(meta, "BR.herd_up_x")
    if v is not None:
        add("BR concurrent cold fetches: upstream bytes 1× one fetch's (every rep)", f"max {v:.4f}×",
            v <= 1 + 1e-9)
    # BM, BG (issue 27): Maven resolves and Go module downloads against nginx proxy_cache.
    for sc, what in (("BM", "mvn dependency:resolve"), ("BG", "go mod download")):
        d, n = g(f"{sc}.warm", "depproxy"), g(f"{sc}.warm", "nginx-cache")
        if d and n:
            add(f"{sc} warm {what} wall ≤ 1.0× nginx proxy_cache", f"{d / n:.2f}×", d <= n)
        v = meta_max(meta, f"{sc}.herd_up_x")
        if v is not None:
            add(f"{sc} concurrent cold runs: upstream bytes 1× one run's (every rep)", f"max {v:.4f}×",
                v <= 1 + 1e-9)
    for row in ("B6.B3", "B6.B4"):
        v = g(row, "depproxy")
        if v is not None:
            add(f"B6 peak RSS during {row[3:]} < 150 MB", f"{v:.0f} MB", v < 150)
    lb = lambda row: "≥ " if (row, "depproxy") in LOWER_BOUNDS else ""
    for sc, what, rss in (("B6s", "slow readers", 150), ("B7", "fill storm", 300), ("BC", "connections", 300)):
        if sc != "B6s":
            for kind in ("manifest", "blob"):
                v = g(f"{sc}.{kind}_p99", "depproxy")
                if v is not None:
                    add(f"{sc} {kind} hit TTFB p99 < 20 ms ({what})", f"{lb(f'{sc}.{kind}_p99')}{v:.1f} ms", v < 20)
        if sc == "B7":
            for kind in ("manifest", "blob"):
                v = meta_max(meta, f"B7.{kind}_failed")
                if v is not None:
                    add(f"B7 no failed {kind} hit (every rep)", f"max {v:.0f}", v == 0)
        v = g(f"{sc}.rss", "depproxy")
        if v is not None:
            add(f"{sc} peak RSS < {rss} MB ({what})", f"{v:.0f} MB", v < rss)
        v = g(f"{sc}.threads", "depproxy")
        if v is not None:
            add(f"{sc} peak threads < 64 ({what})", f"{v:.0f}", v < 64)
    # BA: half-sent bodies over HTTP/1 and HTTP/2 without TLS (issue 23).
    v = g("BA.manifest_p99", "depproxy")
    if v is not None:
        add("BA manifest hit TTFB p99 < 20 ms (half-sent bodies)", f"{lb('BA.manifest_p99')}{v:.1f} ms", v < 20)
    failed = [meta_max(meta, f"BA.{kind}_failed") for kind in ("manifest", "blob")]
    if any(f is not None for f in failed):
        worst = max(f for f in failed if f is not None)
        add("BA no failed normal request, manifest or blob (every rep)", f"max {worst:.0f}", worst == 0)
    v = g("BA.rss", "depproxy")
    if v is not None:
        add("BA peak RSS < 300 MB (half-sent bodies)", f"{v:.0f} MB", v < 300)
    v, held = meta_max(meta, "BA.late"), g("BA.held", "depproxy")
    if v is not None and held is not None:
        m = re.search(r"BA_BODY_TIMEOUT=(\S+)", meta.get("params", ""))
        timeout = f"body_read_timeout {m[1]}s + 1 s" if m else "body_read_timeout + 1 s"
        add(f"BA every held connection closed within {timeout} (every rep)",
            f"max {v:.0f} of {held:.0f} late or open", v == 0)
    v, sent = meta_max(meta, "BC.half_open"), g("BC.half_sent", "depproxy")
    if v is not None:
        m = re.search(r"BC_HEADER_TIMEOUT=(\S+)", meta.get("params", ""))
        timeout = f" (header_read_timeout {m[1]}s)" if m else ""
        add(f"BC every half-sent head closed by the server{timeout} (every rep)",
            f"max {v:.0f} of {sent:.0f} still open", v == 0)
    return out


def meta_max(meta, row):
    vals = meta["_values"].get((row, "depproxy"))
    return max(vals) if vals else None


def earlier_runs(out_md, measured_labels):
    """The result rows of earlier runs for scenarios this run did not measure (a run of a few
    scenarios must not wipe the others' figures): each earlier run's rows as a table of their own,
    under the command and run id that measured them, never mixed with this run's."""
    if not os.path.exists(out_md):
        return []
    text = open(out_md).read().splitlines()
    runs = {}  # (command, run id) -> (header line, [rows])
    header, current = None, None
    for line in text:
        m = re.match(r"Generated by `(.*)` on (.*) \(run id `([^`]*)`\)", line)
        if m:
            current = (m.group(1), m.group(3), m.group(2))
            continue
        m = re.match(r"### Earlier run: `(.*)` on (.*) \(run id `([^`]*)`\)", line)
        if m:
            current = (m.group(1), m.group(3), m.group(2))
            continue
        if line.startswith("| scenario |"):
            header = line
            continue
        if current and line.startswith("| ") and not line.startswith("| ---") and not line.startswith("| target"):
            label = line[2:].split(" | ")[0].rstrip(" ↑↓").strip()
            cells = line.split(" | ")
            if len(cells) >= 3 and label and not label.startswith("row"):
                if label not in measured_labels and header:
                    runs.setdefault(current, (header, []))[1].append(line)
        if line.startswith("## Targets") or line.startswith("## Micro") or line.startswith("## Findings"):
            current = None if not line.startswith("## Targets") else None
    out = []
    for (command, run_id, date), (head, rows) in runs.items():
        if not rows:
            continue
        if not out:
            out += ["", "## Results of earlier runs (scenarios this run did not measure)", "",
                    "Each table is one earlier run, as it was reported then (same reading as above)."]
        cols = head.count(" | ") + 1
        out += ["", f"### Earlier run: `{command}` on {date} (run id `{run_id}`)", "", head,
                "| --- |" + " --- |" * (cols - 1)] + rows
    return out

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
    lines += earlier_runs(out_md, {label for row, label, _, _ in ROWS if any(r == row for (r, _) in values)})
    targets = target_lines(med, meta)
    if targets:
        lines += ["", "## Targets (depproxy, this run)", "", "| target | measured | |", "| --- | --- | --- |"]
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
            **dict(kv.split("=", 1) for kv in env("EXTRA_VERSIONS").split("|") if "=" in kv),
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
        b4_blobs(args[0], int(args[1]), int(args[2]), args[3], *(args[4:5] or ["b4"]),
                 keep_files=args[5:6] != ["nofiles"])
    elif cmd == "hwm":
        hwm(args)
    elif cmd == "peak":
        peak(args[0], args[1:])
    elif cmd == "hits":
        hits(float(args[0]), float(args[1]), args[2], args[3], args[4:])
    elif cmd == "storm":
        storm(args[0], args[1], int(args[2]), float(args[3]), float(args[4]), int(args[5]))
    elif cmd == "readers":
        readers(args[0], int(args[1]), float(args[2]), parse_rate(args[3]), float(args[4]), int(args[5]))
    elif cmd == "conns":
        conns(args[0], int(args[1]), int(args[2]), float(args[3]), args[4], *map(float, args[5:6]),
              *map(int, args[6:7]))
    elif cmd == "abuse":
        abuse(args[0], *map(int, args[1:7]), float(args[7]), args[8], int(args[9]), float(args[10]))
    elif cmd == "listen-drops":
        print(listen_drops())
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
