#!/usr/bin/env bash
# Usage: bench/run.sh [SCENARIO...]      SCENARIO: B1 B2 B3 B4 B5 B5a B5p B6 B6s B7 BC BA BS BN BP BR BM BG hash
#                                         (default: all)
#
# Benchmarks depproxy against the distribution registry in proxy mode, nginx proxy_cache
# (+ proxy_cache_lock) and nginx serving the same files statically, on one machine, same data,
# same run. Builds depproxy (release), generates the test images (scripts/make-images.py), starts
# a real upstream registry, runs every scenario against every system REPS times and writes the
# medians, ratios to depproxy, machine, versions and exact commands to bench/RESULTS.md.
# Everything listens on 127.0.0.1 and is stopped on exit. B6 (peak RSS) is measured during B3
# and B4, so asking for B6 runs those two.
#
#   B1  hit throughput: one cached LARGE_MB blob, 1 and B1_CLIENTS clients, GB/s
#   B2  cold pull of the LARGE_MB blob: wall time and TTFB, beside a GET straight from upstream
#   B3  herd: B3_CLIENTS concurrent cold GETs of the BIG_MB blob: upstream bytes, slowest client
#   B4  B4_STREAMS cold streams from an upstream throttled to B4_RATE per stream, while hey
#       measures cached manifest and /v2/ latency
#   B5  cached manifest GETs with B5_CONN connections (wrk): req/s and p99
#   B5a B5 on one depproxy with access control: anonymous group vs token group (Bearer JWT, Basic
#       access token), and the token endpoint's grants/s
#   B5p B5 on one depproxy through 100 allow/deny rules vs a group without rules (same URL form)
#   B6  peak RSS (sum of VmHWM) of each system during B3 and B4
#   B6s B6S_READERS slow readers (B6S_RATE each) of one cached HOT_MB blob for B6S_SECONDS: peak
#       RSS and peak thread count of each system
#   B7  fill storm: B7_FILLS concurrent cold GETs of distinct B7_BLOB_MB blobs from an upstream
#       throttled to B7_RATE per response, each client hanging up after the response head, while
#       steady clients GET the cached manifest and HOT_MB blob: hit TTFB p50/p99, failed hits,
#       fills answered 200/503, peak RSS and threads (nginx static has no upstream: not run)
#   BC  connections: BC_IDLE idle keep-alive connections + BC_HALF half-sent request heads, then
#       cached manifest/blob TTFB while they are open, RSS, threads, and how many half-sent heads
#       the server closed within BC_HEADER_TIMEOUT + 3 s (depproxy gets
#       [server] header_read_timeout = BC_HEADER_TIMEOUT, max_connections = BC_MAX_CONN); the
#       connections come from BC_SOURCES loopback addresses
#   BA  abuse after the request head: BA_H1 connections holding a half-sent POST /v2/token body
#       (Content-Length BA_BODY, BA_H1_SENT bytes sent) + BA_H2 HTTP/2-without-TLS connections ×
#       BA_STREAMS streams each holding BA_H2_SENT bytes of such a body, from BA_SOURCES loopback
#       addresses other than 127.0.0.1, while steady clients GET the cached manifest and HOT_MB blob
#       for BA_SECONDS: hit TTFB p50/p99, failed hits, peak RSS and threads, and how many held
#       connections the server did not close within BA_BODY_TIMEOUT + 1 s of their last byte
#       (depproxy gets [server] body_read_timeout = BA_BODY_TIMEOUT, http2 = true)
#   BS  the sweeper at scale: BS_OBJECTS expired objects of BS_SIZE bytes (seeded by
#       bench/hashbench's sweepseed) removed by one sweep on SQLite and PostgreSQL (BS_POSTGRES)
#       while the B5 load runs in 1-s slices: sweep wall time, peak RSS, hit p99 during the sweep
#   BN  npm: `npm install` (no lockfile) and `npm ci` of a project whose tree is BN_PACKAGES
#       generated packages (bench/lib/pkgbench.py) published to a Verdaccio upstream, cold (fresh
#       proxy, empty client cache) and warm (proxy filled, empty client cache), and BN_CLIENTS
#       concurrent cold installs: slowest wall, upstream requests and bytes ÷ one install's —
#       depproxy beside Verdaccio as a proxy-cache and nginx proxy_cache (bench/lib/packages.sh)
#   BP  pip: `pip install --target` of BP_PROJECTS generated wheels served by pypiserver, cold,
#       warm and BP_CLIENTS concurrent cold installs, beside devpi-server (mirror index) and
#       nginx proxy_cache
#   BR  cargo: `cargo fetch` (empty CARGO_HOME, no lockfile) of a project whose tree is BR_CRATES
#       crates made by `cargo package` (scripts/lab/make-cargo-fixtures.sh) in a sparse registry
#       (index server + download server, scripts/lab/start-sparse-registry.sh), cold, warm and
#       BR_CLIENTS concurrent cold fetches — depproxy's cargo group beside nginx proxy_cache and
#       the registry used directly (bench/lib/cargo.sh)
#   BM  Maven: `mvn dependency:resolve` (fresh -Dmaven.repo.local) of a project resolving 184 files
#       (scripts/lab/make-maven-bench-project.sh) from Debian's /usr/share/maven-repo served as plain
#       files, cold, warm and BM_CLIENTS concurrent cold resolves: slowest wall, upstream requests
#       and bytes ÷ one resolve's — depproxy's maven group beside nginx proxy_cache and the
#       repository used directly (bench/lib/maven_go.sh)
#   BG  Go modules: `go mod download` (fresh GOPATH/GOMODCACHE, GOSUMDB=off) of a consumer of
#       BG_MODULES generated modules + 2 (scripts/lab/make-go-fixtures.sh) served by
#       start-goproxy.sh, cold, warm and BG_CLIENTS concurrent cold downloads, same three systems
#   hash  sha256sum vs depproxy's write path (bench/hashbench) on the large layer file
#
# Knobs (environment) and defaults — the defaults are the sizes of issue 4:
#   REPS=3 BIG_MB=256 LARGE_MB=1024 B1_CLIENTS=8 B3_CLIENTS=32
#   B4_STREAMS=200 B4_BLOB_MB=16 B4_RATE=1m B4_RAMP=3 B4_SECONDS=10 B4_CONC=4 B4_QPS=25
#   B5_CONN=64 B5_THREADS=2 B5_SECONDS=10 HASH_CHUNK=65536
#   HOT_MB=50 HIT_QPS=10 HIT_BLOB_QPS=2   (B7/BC: the cached blob, GETs/s of the steady clients)
#   B6S_READERS=500 B6S_RATE=1m B6S_SECONDS=20 B6S_RAMP=1 B6S_RCVBUF=262144
#   B7_FILLS=1000 B7_BLOB_MB=4 B7_RATE=100k B7_SECONDS=35 B7_RAMP=1 B7_SOURCES=16
#   BC_IDLE=10000 BC_HALF=1000 BC_SECONDS=10 BC_HEADER_TIMEOUT=15 BC_MAX_CONN=20000 BC_SOURCES=16
#   BA_H1=2000 BA_H2=200 BA_STREAMS=64 BA_BODY=65536 BA_H1_SENT=32768 BA_H2_SENT=4096
#   BA_BODY_TIMEOUT=10 BA_SECONDS=15 BA_SOURCES=4
#   BS_OBJECTS=100000 BS_SIZE=1024 BS_POSTGRES=postgres://postgres@127.0.0.1:5432
#   BN_PACKAGES=220 BN_CLIENTS=8 BP_PROJECTS=210 BP_CLIENTS=8 BR_CRATES=110 BR_CLIENTS=8
#   BR_FIXTURE_TARGET=$BENCH_DIR/pkg/cargo-target (cargo package's builds of the BR fixture)
#   BM_CLIENTS=8 BG_MODULES=60 BG_CLIENTS=8 DEBIAN_MAVEN_REPO=/usr/share/maven-repo
#   (BN/BP/BR/BM/BG run the systems of SYSTEMS that speak the format; SYSTEMS unset: depproxy
#   verdaccio nginx-cache for BN, depproxy devpi nginx-cache for BP, depproxy nginx-cache direct
#   for BR, BM and BG)
#   SYSTEMS="depproxy distribution nginx-cache nginx-static"   PORT_BASE=5900
#   BENCH_DIR=/tmp/depproxy-bench (images, upstream registry data, caches)
#   RESULTS=bench/RESULTS.md   SKIP_BUILD=1 (use the existing binaries)
#   PERF="B5 ..." perf record -e cpu-clock (DWARF call graphs) on depproxy during those scenarios:
#   bench/out/<run>/perf-<scenario>-<n>.{data,txt}
#   DEPPROXY_BIN=PATH HASHBENCH_BIN=PATH (with SKIP_BUILD=1: use these binaries, e.g. built
#   from another checkout; DEPPROXY_SOURCE=TEXT says which in RESULTS.md)
#   DEPPROXY_REF=PATH  a second depproxy binary (e.g. the previous commit's release build), run as
#   the system "depproxy-ref" beside the others, so before/after is measured in one run;
#   DEPPROXY_REF_SOURCE=TEXT says which build it is
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/depproxy/target}
REPS=${REPS:-3}
BIG_MB=${BIG_MB:-256}
LARGE_MB=${LARGE_MB:-1024}
B1_CLIENTS=${B1_CLIENTS:-8}
B3_CLIENTS=${B3_CLIENTS:-32}
B4_STREAMS=${B4_STREAMS:-200}
B4_BLOB_MB=${B4_BLOB_MB:-16}
B4_RATE=${B4_RATE:-1m}
B4_RAMP=${B4_RAMP:-3}
B4_SECONDS=${B4_SECONDS:-10}
B4_CONC=${B4_CONC:-4}
B4_QPS=${B4_QPS:-25}
B5_CONN=${B5_CONN:-64}
B5_THREADS=${B5_THREADS:-2}
B5_SECONDS=${B5_SECONDS:-10}
HASH_CHUNK=${HASH_CHUNK:-65536}
HOT_MB=${HOT_MB:-50}
HIT_QPS=${HIT_QPS:-10}
HIT_BLOB_QPS=${HIT_BLOB_QPS:-2}
B6S_READERS=${B6S_READERS:-500}
B6S_RATE=${B6S_RATE:-1m}
B6S_SECONDS=${B6S_SECONDS:-20}
B6S_RAMP=${B6S_RAMP:-1}
B6S_RCVBUF=${B6S_RCVBUF:-262144}
B7_FILLS=${B7_FILLS:-1000}
B7_BLOB_MB=${B7_BLOB_MB:-4}
B7_RATE=${B7_RATE:-100k}
B7_SECONDS=${B7_SECONDS:-35}
B7_RAMP=${B7_RAMP:-1}
B7_SOURCES=${B7_SOURCES:-16}
BC_IDLE=${BC_IDLE:-10000}
BC_HALF=${BC_HALF:-1000}
BC_SECONDS=${BC_SECONDS:-10}
BC_HEADER_TIMEOUT=${BC_HEADER_TIMEOUT:-15}
BC_MAX_CONN=${BC_MAX_CONN:-20000}
BC_SOURCES=${BC_SOURCES:-16}
BA_H1=${BA_H1:-2000}
BA_H2=${BA_H2:-200}
BA_STREAMS=${BA_STREAMS:-64}
BA_BODY=${BA_BODY:-65536}
BA_H1_SENT=${BA_H1_SENT:-32768}
BA_H2_SENT=${BA_H2_SENT:-4096}
BA_BODY_TIMEOUT=${BA_BODY_TIMEOUT:-10}
BA_SECONDS=${BA_SECONDS:-15}
BA_SOURCES=${BA_SOURCES:-4}
BS_OBJECTS=${BS_OBJECTS:-100000}
BS_SIZE=${BS_SIZE:-1024}
BS_POSTGRES=${BS_POSTGRES:-postgres://postgres@127.0.0.1:5432}
PORT_BASE=${PORT_BASE:-5900}
BENCH_DIR=${BENCH_DIR:-/tmp/depproxy-bench}
RESULTS=${RESULTS:-$REPO/bench/RESULTS.md}
SYSTEMS_GIVEN=${SYSTEMS:+1}
read -r -a SYSTEMS <<<"${SYSTEMS:-depproxy distribution nginx-cache nginx-static}"

RUN_ID=$(date +%Y%m%d-%H%M%S)
OUT=$REPO/bench/out/$RUN_ID       # results.jsonl, notes, commands, meta, raw tool output (gitignored)
RUN=$BENCH_DIR/run                # per-system state, wiped per cold start
LAYOUTS=$BENCH_DIR/layouts-big${BIG_MB}-large${LARGE_MB}
BENCH_PY=$REPO/bench/lib/bench.py
if [ -n "${DEPPROXY_BIN:-}" ]; then
  BUILT_BIN=$DEPPROXY_BIN
  DEPPROXY_SOURCE=${DEPPROXY_SOURCE:-"$DEPPROXY_BIN (given with DEPPROXY_BIN)"}
else
  BUILT_BIN=$CARGO_TARGET_DIR/release/depproxy
  DEPPROXY_SOURCE="built from $REPO at $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')"
  if [ -n "$(git -C "$REPO" status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ]; then
    DEPPROXY_SOURCE+=" with uncommitted changes in crates/ or Cargo.*"
  else
    DEPPROXY_SOURCE+=" (crates/ and Cargo.* as committed)"
  fi
fi
DEPPROXY_BIN=$RUN/bin/depproxy    # a copy: a rebuild during the run cannot swap the binary
DEPPROXY_REF_BIN=$RUN/bin/depproxy-ref
if [ -n "${DEPPROXY_REF:-}" ] && [[ " ${SYSTEMS[*]} " != *" depproxy-ref "* ]]; then
  SYSTEMS=(depproxy depproxy-ref "${SYSTEMS[@]/depproxy/}")
  read -r -a SYSTEMS <<<"${SYSTEMS[*]}"
fi
HASHBENCH_BIN=${HASHBENCH_BIN:-$CARGO_TARGET_DIR/release/hashbench}

# shellcheck source=bench/lib/common.sh
source "$REPO/bench/lib/common.sh"
# shellcheck source=bench/lib/systems.sh
source "$REPO/bench/lib/systems.sh"
# shellcheck source=bench/lib/scenarios.sh
source "$REPO/bench/lib/scenarios.sh"
# shellcheck source=bench/lib/packages.sh
source "$REPO/bench/lib/packages.sh"
# shellcheck source=bench/lib/cargo.sh
source "$REPO/bench/lib/cargo.sh"
# shellcheck source=bench/lib/maven_go.sh
source "$REPO/bench/lib/maven_go.sh"

# ---------------------------------------------------------------- setup

select_scenarios() {
  local s
  SCENARIOS=()
  [ $# -gt 0 ] || set -- B1 B2 B3 B4 B5 B5a B5p B6s B7 BC BA BS BN BP BR BM BG hash
  for s in "$@"; do
    case $s in
      B1 | B2 | B3 | B4 | B5 | B5a | B5p | B6s | B7 | BC | BA | BS | BN | BP | BR | BM | BG | hash) SCENARIOS+=("$s") ;;
      B6) SCENARIOS+=(B3 B4) ;;
      *) die "unknown scenario $s (B1 B2 B3 B4 B5 B5a B5p B6 B6s B7 BC BA BS BN BP BR BM BG hash)" ;;
    esac
  done
  # Unique, in canonical order.
  read -r -a SCENARIOS <<<"$(printf '%s\n' B1 B2 B3 B4 B5 B5a B5p B6s B7 BC BA BS BN BP BR BM BG hash | grep -xF -f <(printf '%s\n' "${SCENARIOS[@]}") | tr '\n' ' ')"
}

# The image scenarios need the test images and the upstream registry; BN, BP, BR, BM and BG their own data.
wants_images() {
  local s
  for s in "${SCENARIOS[@]}"; do case $s in BN | BP | BR | BM | BG) ;; *) return 0 ;; esac; done
  return 1
}

wants() { [[ " ${SCENARIOS[*]} " == *" $1 "* ]]; }

apt_install() {
  local guard=0
  [ "$(id -u)" = 0 ] || die "missing $*: run as root or install them (apt-get install $*)"
  # No service may start during the install (nginx would listen on :80).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    guard=1
  fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  if [ "$guard" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
}

ensure_tools() {
  local pair missing=()
  for pair in nginx:nginx wrk:wrk hey:hey docker-registry:docker-registry skopeo:skopeo curl:curl \
    python3:python3 sha256sum:coreutils; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
  done
  if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
  command -v cargo >/dev/null || die "cargo not found (install Rust: https://rustup.rs)"
}

build() {
  if [ "${SKIP_BUILD:-0}" = 1 ]; then
    log "SKIP_BUILD=1: using $BUILT_BIN"
  else
    log "building depproxy (release) in $CARGO_TARGET_DIR"
    (cd "$REPO" && cargo build --release -p depproxy)
    if wants hash || wants BS; then
      # Same lock as the workspace, so shared dependencies are the release binary's artifacts.
      cp "$REPO/Cargo.lock" "$REPO/bench/hashbench/Cargo.lock"
      if ! cargo build --release --manifest-path "$REPO/bench/hashbench/Cargo.toml"; then
        note "bench/hashbench did not build against this tree (storage API changed?): hash and BS skipped"
        read -r -a SCENARIOS <<<"${SCENARIOS[*]/hash/}"
        read -r -a SCENARIOS <<<"${SCENARIOS[*]/BS/}"
      fi
    fi
  fi
  if [[ " ${SYSTEMS[*]} " == *" depproxy "* ]]; then
    [ -x "$BUILT_BIN" ] || die "no $BUILT_BIN"
    mkdir -p "$(dirname "$DEPPROXY_BIN")"
    cp "$BUILT_BIN" "$DEPPROXY_BIN"
  fi
  if [[ " ${SYSTEMS[*]} " == *" depproxy-ref "* ]]; then
    [ -x "${DEPPROXY_REF:-}" ] || die "system depproxy-ref needs DEPPROXY_REF=<a depproxy binary>"
    cp "$DEPPROXY_REF" "$DEPPROXY_REF_BIN"
  fi
  if wants hash; then [ -x "$HASHBENCH_BIN" ] || die "no $HASHBENCH_BIN"; fi
}

check_ports() {
  local name
  for name in "${!PORT[@]}"; do
    port_free "${PORT[$name]}" || die "port ${PORT[$name]} ($name) is in use; set PORT_BASE"
  done
}

# Images (make-images.py), the upstream registry with them pushed, the B4 blobs, the HOT_MB blob
# (B6s, B7, BC, BA), the B7 blobs, the static tree.
prepare_data() {
  log "test images in $LAYOUTS (big ${BIG_MB} MiB, large ${LARGE_MB} MiB)"
  WITH_BIG=1 WITH_LARGE=1 BIG_MB=$BIG_MB LARGE_MB=$LARGE_MB MEDIUM_MB=${MEDIUM_MB:-8} \
    python3 "$REPO/scripts/make-images.py" "$LAYOUTS" >&2
  read -r TINY_MANIFEST _ _ < <(python3 "$BENCH_PY" layout-info "$LAYOUTS" tiny)
  read -r _ BIG_DIGEST BIG_SIZE < <(python3 "$BENCH_PY" layout-info "$LAYOUTS" big)
  read -r _ LARGE_DIGEST LARGE_SIZE < <(python3 "$BENCH_PY" layout-info "$LAYOUTS" large)
  start_upstream
  "$REPO/scripts/lab/push-images.sh" "127.0.0.1:${PORT[upstream]}" "$LAYOUTS" >&2
  B4_LIST=""
  if wants B4; then
    B4_LIST=$BENCH_DIR/b4-${B4_STREAMS}x${B4_BLOB_MB}/list
    python3 "$BENCH_PY" b4-blobs "$(dirname "$B4_LIST")" "$B4_STREAMS" "$B4_BLOB_MB" "127.0.0.1:${PORT[upstream]}" >&2
  fi
  HOT_LIST=""
  if wants B6s || wants B7 || wants BC || wants BA; then
    HOT_LIST=$BENCH_DIR/hot-${HOT_MB}/list
    python3 "$BENCH_PY" b4-blobs "$(dirname "$HOT_LIST")" 1 "$HOT_MB" "127.0.0.1:${PORT[upstream]}" hot >&2
    read -r HOT_DIGEST HOT_SIZE <"$HOT_LIST"
  fi
  B7_LIST=""
  if wants B7; then
    # Only the list is kept (digests; the blobs live in the upstream registry): 1000 x 4 MiB.
    B7_LIST=$BENCH_DIR/b7-${B7_FILLS}x${B7_BLOB_MB}/list
    python3 "$BENCH_PY" b4-blobs "$(dirname "$B7_LIST")" "$B7_FILLS" "$B7_BLOB_MB" "127.0.0.1:${PORT[upstream]}" b7 nofiles >&2
  fi
  STATIC=$RUN/static-tree
  rm -rf "$STATIC"
  python3 "$BENCH_PY" static-tree "$STATIC" "$LAYOUTS" ${B4_LIST:+"$B4_LIST"} ${HOT_LIST:+"hot=$HOT_LIST"}
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_all_bg
  stop_upstream
  stop_pkg_upstreams
  # Anything else this shell started in the background (e.g. B4's curls), by pid.
  local pid
  for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
  exit "$rc"
}

# ---------------------------------------------------------------- report


write_meta() {
  LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
  local systems="" s
  for s in "${SYSTEMS[@]}" direct; do systems+="$s = ${URL[$s]}, "; done
  {
    echo "# setup"
    echo "cargo build --release -p depproxy   # CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
    if wants_images; then
    echo "WITH_BIG=1 WITH_LARGE=1 BIG_MB=$BIG_MB LARGE_MB=$LARGE_MB MEDIUM_MB=${MEDIUM_MB:-8} scripts/make-images.py $LAYOUTS"
    echo "DEPPROXY_TEST_DIR=$BENCH_DIR scripts/lab/start-registry.sh ${PORT[upstream]} $BENCH_DIR/upstream-data   # the upstream"
    echo "scripts/lab/push-images.sh 127.0.0.1:${PORT[upstream]} $LAYOUTS"
    if [ -n "${B4_LIST:-}" ]; then echo "bench/lib/bench.py b4-blobs $(dirname "$B4_LIST") $B4_STREAMS $B4_BLOB_MB 127.0.0.1:${PORT[upstream]}   # B4's blobs, lab/b4"; fi
    if [ -n "${HOT_LIST:-}" ]; then echo "bench/lib/bench.py b4-blobs $(dirname "$HOT_LIST") 1 $HOT_MB 127.0.0.1:${PORT[upstream]} hot   # the cached blob of B6s/B7/BC/BA, lab/hot"; fi
    if [ -n "${B7_LIST:-}" ]; then echo "bench/lib/bench.py b4-blobs $(dirname "$B7_LIST") $B7_FILLS $B7_BLOB_MB 127.0.0.1:${PORT[upstream]} b7 nofiles   # B7's blobs, lab/b7"; fi
    fi
    echo "$DEPPROXY_BIN serve --listen 127.0.0.1:${PORT[depproxy]} --data-dir DIR --upstream UPSTREAM"
    echo "docker-registry serve CONFIG   # proxy.remoteurl: UPSTREAM (config: bench/lib/systems.sh)"
    echo "nginx -p DIR -c DIR/nginx.conf -g 'daemon off;'   # proxy_cache, static and throttle configs: bench/lib/systems.sh"
    echo "# \$SYSTEM: ${systems%, }"
    cat "$OUT/commands.txt" 2>/dev/null || true
  } >"$OUT/all-commands.txt"
  META_LOAD_START=$LOAD_START META_OUT=$OUT META_COMMAND="bench/run.sh${SCENARIO_ARGS[*]:+ ${SCENARIO_ARGS[*]}}" META_RUN_ID=$RUN_ID META_LOAD_BEFORE=$LOAD_BEFORE \
    META_LOAD_AFTER=$LOAD_AFTER META_DEPPROXY_BIN=$DEPPROXY_BIN META_DEPPROXY_SOURCE=$DEPPROXY_SOURCE \
    META_DEPPROXY_REF=${DEPPROXY_REF:-} META_DEPPROXY_REF_SOURCE=${DEPPROXY_REF_SOURCE:-} \
    META_PARAMS="REPS=$REPS BIG_MB=$BIG_MB (${BIG_SIZE:-?} B) LARGE_MB=$LARGE_MB (${LARGE_SIZE:-?} B) B1_CLIENTS=$B1_CLIENTS B3_CLIENTS=$B3_CLIENTS B4_STREAMS=$B4_STREAMS B4_BLOB_MB=$B4_BLOB_MB B4_RATE=$B4_RATE B4_RAMP=$B4_RAMP B4_SECONDS=$B4_SECONDS B4_CONC=$B4_CONC B4_QPS=$B4_QPS B5_CONN=$B5_CONN B5_THREADS=$B5_THREADS B5_SECONDS=$B5_SECONDS HASH_CHUNK=$HASH_CHUNK HOT_MB=$HOT_MB (${HOT_SIZE:-?} B) HIT_QPS=$HIT_QPS HIT_BLOB_QPS=$HIT_BLOB_QPS B6S_READERS=$B6S_READERS B6S_RATE=$B6S_RATE B6S_SECONDS=$B6S_SECONDS B6S_RAMP=$B6S_RAMP B6S_RCVBUF=$B6S_RCVBUF B7_FILLS=$B7_FILLS B7_BLOB_MB=$B7_BLOB_MB B7_RATE=$B7_RATE B7_SECONDS=$B7_SECONDS B7_RAMP=$B7_RAMP B7_SOURCES=$B7_SOURCES BC_IDLE=$BC_IDLE BC_HALF=$BC_HALF BC_SECONDS=$BC_SECONDS BC_HEADER_TIMEOUT=$BC_HEADER_TIMEOUT BC_MAX_CONN=$BC_MAX_CONN BC_SOURCES=$BC_SOURCES BA_H1=$BA_H1 BA_H2=$BA_H2 BA_STREAMS=$BA_STREAMS BA_BODY=$BA_BODY BA_H1_SENT=$BA_H1_SENT BA_H2_SENT=$BA_H2_SENT BA_BODY_TIMEOUT=$BA_BODY_TIMEOUT BA_SECONDS=$BA_SECONDS BA_SOURCES=$BA_SOURCES BN_PACKAGES=$BN_PACKAGES BN_CLIENTS=$BN_CLIENTS BP_PROJECTS=$BP_PROJECTS BP_CLIENTS=$BP_CLIENTS BR_CRATES=$BR_CRATES BR_CLIENTS=$BR_CLIENTS BM_CLIENTS=$BM_CLIENTS BG_MODULES=$BG_MODULES BG_CLIENTS=$BG_CLIENTS; systems: ${SYSTEMS[*]}; scenarios: ${SCENARIOS[*]}" \
    META_HASH_CHUNK=$HASH_CHUNK META_EXTRA_VERSIONS=${PKG_VERSIONS:-} \
    python3 "$BENCH_PY" meta "$OUT"
}

# ---------------------------------------------------------------- main

main() {
  LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
  SCENARIO_ARGS=("$@")
  select_scenarios "$@"
  mkdir -p "$OUT/raw" "$BENCH_DIR" "$RUN"
  : >"$OUT/results.jsonl"
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  trap cleanup EXIT INT TERM
  log "scenarios: ${SCENARIOS[*]}; systems: ${SYSTEMS[*]}; REPS=$REPS; output $OUT"
  ensure_tools
  if wants BN || wants BP; then ensure_pkg_tools; fi
  if wants BM || wants BG; then ensure_mg_tools; fi
  build
  check_ports
  PROXIES=()
  for s in "${SYSTEMS[@]}"; do is_proxy "$s" && PROXIES+=("$s"); done
  if wants_images; then prepare_data; fi
  if wants BN || wants BP || wants BR || wants BM || wants BG; then
    prepare_pkg_data
    PKG_VERSIONS=$(pkg_versions)
  fi
  LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
  log "load average before: $LOAD_BEFORE"
  # Was the machine shared? CPU of processes outside this harness and the upstreams, every 2 s.
  local roots=()
  if wants_images; then roots+=("$(cat "$BENCH_DIR/registry-${PORT[upstream]}.pid")"); fi
  read -r -a roots <<<"${roots[*]} $(pkg_upstream_pids | tr '\n' ' ')"
  start_bg load-sampler "$OUT/sampler.log" python3 "$BENCH_PY" sampler "$OUT/load.txt" $$ "${roots[@]}"
  for SCENARIO in "${SCENARIOS[@]}"; do "scenario_$SCENARIO"; done
  stop_bg load-sampler
  write_meta
  python3 "$BENCH_PY" report "$OUT/results.jsonl" "$OUT/meta.json" "$RESULTS"
  cp "$RESULTS" "$OUT/RESULTS.md"
  log "load average after: $LOAD_AFTER; wrote $RESULTS"
}

main "$@"
