# Shared helpers for bench/run.sh: logging, background processes, HTTP waits, result records.
# Sourced, not executed.

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Background processes we started, by name → pid. Only these are ever stopped.
declare -A PIDS=()

# start_bg NAME LOGFILE CMD... — runs CMD in the background, remembers its pid under NAME.
start_bg() {
  local name=$1 logfile=$2
  shift 2
  "$@" >>"$logfile" 2>&1 </dev/null &
  PIDS[$name]=$!
}

alive() { kill -0 "$1" 2>/dev/null; }

# stop_pid PID — TERM, wait up to 10 s, then KILL; reaps it if it is our child.
stop_pid() {
  local pid=$1
  alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}

stop_bg() {
  local name=$1
  [ -n "${PIDS[$name]:-}" ] || return 0
  stop_pid "${PIDS[$name]}"
  unset "PIDS[$name]"
}

stop_all_bg() {
  local name
  for name in "${!PIDS[@]}"; do stop_bg "$name"; done
}

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true; }

# wait_http URL PID [SECONDS] — until URL answers 200; fails early when PID died.
wait_http() {
  local url=$1 pid=$2 limit=${3:-30} i
  for ((i = 0; i < limit * 10; i++)); do
    [ "$(http_code "$url")" = 200 ] && return 0
    alive "$pid" || return 1
    sleep 0.1
  done
  return 1
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# JSON field of stdin.
jget() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# calc EXPR — floating-point arithmetic.
calc() { python3 -c "print(round($1, 6))"; }

# record ROW SYSTEM VALUE — one measurement.
record() {
  printf '{"row":"%s","system":"%s","value":%s}\n' "$1" "$2" "$3" >>"$OUT/results.jsonl"
  log "  $1 $2 = $3"
}

# record_lb ROW SYSTEM VALUE — a lower bound (the real value was not reached in the window).
record_lb() {
  printf '{"row":"%s","system":"%s","value":%s,"lb":true}\n' "$1" "$2" "$3" >>"$OUT/results.jsonl"
  log "  $1 $2 ≥ $3"
}

# note TEXT — goes to RESULTS.md "Notes" (warnings, failed checks).
note() {
  log "NOTE: $*"
  printf '%s\n' "$*" >>"$OUT/notes.txt"
}

# note_cmd TEXT — an exact command (or a comment) for the "Exact commands" of RESULTS.md.
note_cmd() { printf '%s\n' "$*" >>"$OUT/commands.txt"; }

CURL_FMT='%{http_code} %{size_download} %{time_starttransfer} %{time_total}\n'

# fetch URL OUTFILE [curl args...] — one GET to /dev/null; OUTFILE gets "code size ttfb total".
fetch() {
  local url=$1 out=$2
  shift 2
  curl -s -o /dev/null -w "$CURL_FMT" "$@" "$url" >"$out" 2>/dev/null || true
  [ -s "$out" ] || echo "000 0 0 0" >"$out"
}

# fetch_many N DIR URL — N concurrent GETs; prints the wall time in seconds.
fetch_many() {
  local n=$1 dir=$2 url=$3 i t0 pids=()
  rm -rf "$dir"
  mkdir -p "$dir"
  t0=$EPOCHREALTIME
  for ((i = 1; i <= n; i++)); do
    fetch "$url" "$dir/$i" &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || true; done
  calc "$EPOCHREALTIME - $t0"
}

# check_fetch STATS_JSON EXPECTED_SIZE WHAT — notes (does not abort) when a client failed.
check_fetch() {
  local stats=$1 size=$2 what=$3 ok clients min
  ok=$(jget ok <<<"$stats")
  clients=$(jget clients <<<"$stats")
  min=$(jget min_size <<<"$stats")
  if [ "$ok" != "$clients" ] || [ "$min" != "$size" ]; then
    note "$what: only $ok/$clients clients got HTTP 200, smallest body $min bytes (expected $size)"
    return 1
  fi
}
