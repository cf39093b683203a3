# Scenarios B1–B5 (B6 is measured inside B3 and B4) and the hashing micro-benchmark.
# Sourced by run.sh. Blob/manifest facts come from the layouts: LARGE_DIGEST/LARGE_SIZE,
# BIG_DIGEST/BIG_SIZE, TINY_MANIFEST (see load_data in run.sh).

MT_MANIFEST=application/vnd.oci.image.manifest.v1+json
PROXIES=()   # systems with an upstream (all but nginx-static), filled by run.sh

blob_url() { echo "${URL[$1]}/v2/lab/$2/blobs/$3"; }

is_proxy() { [ "$1" != nginx-static ]; }

# warm_blob SYSTEM REPO DIGEST — GETs until a GET no longer reaches upstream (max 20 tries),
# and checks the sha256 of one response.
warm_blob() {
  local sys=$1 repo=$2 digest=$3 url line got i
  url=$(blob_url "$sys" "$repo" "$digest")
  got=$(curl -sf "$url" | sha256sum | cut -d' ' -f1)
  [ "sha256:$got" = "$digest" ] || note "$sys: body of $repo blob did not hash to $digest (got sha256:$got)"
  is_proxy "$sys" || return 0
  for ((i = 0; i < 20; i++)); do
    upstream_settle
    line=$(upstream_lines)
    fetch "$url" "$RUN/warm.txt"
    [ "$(upstream_since "$line" "$digest" | jget requests)" = 0 ] && return 0
  done
  note "$sys: $repo blob still fetched from upstream after 20 warm-up GETs"
}

warm_manifests() {
  local sys=$1 i
  for ((i = 0; i < 2; i++)); do
    curl -sf -o /dev/null -H "Accept: $MT_MANIFEST" "${URL[$sys]}/v2/lab/tiny/manifests/v1" ||
      note "$sys: manifest by tag failed"
    curl -sf -o /dev/null -H "Accept: $MT_MANIFEST" "${URL[$sys]}/v2/lab/tiny/manifests/$TINY_MANIFEST" ||
      note "$sys: manifest by digest failed"
  done
}

# ---------------------------------------------------------------- B1 hit throughput

scenario_B1() {
  local sys rep stats wall n=$B1_CLIENTS
  log "B1: hit throughput, ${LARGE_SIZE}-byte blob, 1 and $n clients"
  for sys in "${SYSTEMS[@]}"; do
    start_system "$sys" "${URL[upstream]}"
    warm_blob "$sys" large "$LARGE_DIGEST"
  done
  note_cmd "# B1 (per system, after warm-up; 1 client, then $n concurrent):"
  note_cmd "curl -s -o /dev/null -w '$CURL_FMT' \$SYSTEM/v2/lab/large/blobs/$LARGE_DIGEST"
  for ((rep = 1; rep <= REPS; rep++)); do
    for sys in "${SYSTEMS[@]}"; do
      fetch "$(blob_url "$sys" large "$LARGE_DIGEST")" "$RUN/b1-one"
      stats=$(python3 "$BENCH_PY" curl-stats "$RUN/b1-one")
      check_fetch "$stats" "$LARGE_SIZE" "B1 $sys rep $rep (1 client)" || true
      record B1.1 "$sys" "$(calc "$LARGE_SIZE / $(jget max_total <<<"$stats") / 1e9")"
      wall=$(fetch_many "$n" "$RUN/b1-many" "$(blob_url "$sys" large "$LARGE_DIGEST")")
      stats=$(python3 "$BENCH_PY" curl-stats "$RUN"/b1-many/*)
      check_fetch "$stats" "$LARGE_SIZE" "B1 $sys rep $rep ($n clients)" || true
      record B1.8 "$sys" "$(calc "$(jget bytes <<<"$stats") / $wall / 1e9")"
    done
  done
  for sys in "${SYSTEMS[@]}"; do stop_system "$sys"; done
}

# ---------------------------------------------------------------- B2 cold pull

scenario_B2() {
  local sys rep stats
  log "B2: cold pull of the ${LARGE_SIZE}-byte blob"
  note_cmd "# B2 (each proxy restarted with an empty cache before each GET; 'direct' = the upstream):"
  note_cmd "curl -s -o /dev/null -w '$CURL_FMT' \$SYSTEM/v2/lab/large/blobs/$LARGE_DIGEST"
  for ((rep = 1; rep <= REPS; rep++)); do
    for sys in direct "${PROXIES[@]}"; do
      [ "$sys" = direct ] || start_system "$sys" "${URL[upstream]}"
      fetch "$(blob_url "$sys" large "$LARGE_DIGEST")" "$RUN/b2"
      stats=$(python3 "$BENCH_PY" curl-stats "$RUN/b2")
      check_fetch "$stats" "$LARGE_SIZE" "B2 $sys rep $rep" || true
      record B2.total "$sys" "$(jget max_total <<<"$stats")"
      record B2.ttfb "$sys" "$(calc "$(jget max_ttfb <<<"$stats") * 1000")"
      [ "$sys" = direct ] || stop_system "$sys"
    done
  done
}

# ---------------------------------------------------------------- B3 herd (+ B6 memory)

scenario_B3() {
  local sys rep stats single line counts n=$B3_CLIENTS url
  log "B3: $n concurrent cold GETs of the ${BIG_SIZE}-byte blob"
  note_cmd "# B3 (fresh cache; one cold GET, restart, then $n concurrent cold GETs; upstream bytes from the registry access log):"
  note_cmd "curl -s -o /dev/null -w '$CURL_FMT' \$SYSTEM/v2/lab/big/blobs/$BIG_DIGEST"
  note_cmd "scripts/lab/count-upstream.py $UPSTREAM_LOG --since-line N --pattern 'blobs/$BIG_DIGEST\$'"
  note_cmd "bench/lib/bench.py hwm PID   # B6: sum of VmHWM over the system's processes, read after the herd / B4 window"
  for ((rep = 1; rep <= REPS; rep++)); do
    for sys in "${SYSTEMS[@]}"; do
      url=$(blob_url "$sys" big "$BIG_DIGEST")
      start_system "$sys" "${URL[upstream]}"
      fetch "$url" "$RUN/b3-single"
      stats=$(python3 "$BENCH_PY" curl-stats "$RUN/b3-single")
      check_fetch "$stats" "$BIG_SIZE" "B3 $sys rep $rep (single)" || true
      single=$(jget max_total <<<"$stats")
      record B3.single "$sys" "$single"
      is_proxy "$sys" && start_system "$sys" "${URL[upstream]}"
      upstream_settle
      line=$(upstream_lines)
      fetch_many "$n" "$RUN/b3-herd" "$url" >/dev/null
      stats=$(python3 "$BENCH_PY" curl-stats "$RUN"/b3-herd/*)
      check_fetch "$stats" "$BIG_SIZE" "B3 $sys rep $rep (herd)" || true
      record B3.slowest "$sys" "$(jget max_total <<<"$stats")"
      record B3.slowest_ratio "$sys" "$(calc "$(jget max_total <<<"$stats") / $single")"
      if is_proxy "$sys"; then
        upstream_settle
        counts=$(upstream_since "$line" "$BIG_DIGEST")
        record B3.upstream_x "$sys" "$(calc "$(jget bytes <<<"$counts") / $BIG_SIZE")"
        record B3.upstream_gets "$sys" "$(python3 -c 'import json,sys; print(json.load(sys.stdin).get("GET blob", 0))' <<<"$counts")"
      fi
      record B6.B3 "$sys" "$(python3 "$BENCH_PY" hwm "$(system_pid "$sys")")"
      stop_system "$sys"
    done
  done
}

# ---------------------------------------------------------------- B4 slow cold streams (+ B6)

# b4_streams SYSTEM DIR — starts one curl per B4 blob in the background (curl itself, so the
# pids in B4_PIDS are the curls); each writes "code size ttfb total" to DIR/N when it ends.
b4_streams() {
  local sys=$1 dir=$2 digest _size i=0
  B4_PIDS=()
  rm -rf "$dir"
  mkdir -p "$dir"
  while read -r digest _size; do
    i=$((i + 1))
    curl -s -o /dev/null -w "$CURL_FMT" "$(blob_url "$sys" b4 "$digest")" >"$dir/$i" 2>/dev/null &
    B4_PIDS+=($!)
  done <"$B4_LIST"
}

# b4_end_streams — after the system stopped, the streams end (connection closed) and curl
# reports; any still running after 10 s is killed.
b4_end_streams() {
  local pid
  for _ in $(seq 100); do
    for pid in "${B4_PIDS[@]}"; do alive "$pid" && break; done
    alive "$pid" || break
    sleep 0.1
  done
  for pid in "${B4_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${B4_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}

scenario_B4() {
  local sys rep running pid m b
  log "B4: $B4_STREAMS cold streams at $B4_RATE each + manifest and /v2/ latency"
  start_throttle
  # Every stream comes from 127.0.0.1; depproxy's per-address share of the fills (a quarter of
  # max_concurrent_fills) would queue most of them, which is not what 200 clients see.
  DEPPROXY_TOML=$(printf '[limits]\nmax_fills_per_client = 256')
  note_cmd "# B4: depproxy gets [limits] max_fills_per_client = 256 (all $B4_STREAMS streams come from one address)"
  note_cmd "# B4 (fresh cache, upstream = nginx 'limit_rate $B4_RATE' in front of the registry; $B4_STREAMS distinct ${B4_BLOB_MB} MiB blobs streamed with curl — nginx static has no upstream, it sends them with 'limit_rate $B4_RATE' itself; after ${B4_RAMP}s, both load tools at once):"
  note_cmd "hey -z ${B4_SECONDS}s -c $B4_CONC -q $B4_QPS -o csv -H 'Accept: $MT_MANIFEST' \$SYSTEM/v2/lab/tiny/manifests/v1"
  note_cmd "hey -z ${B4_SECONDS}s -c $B4_CONC -q $B4_QPS -o csv \$SYSTEM/v2/   # p50/p99: nearest rank over the CSV rows"
  for ((rep = 1; rep <= REPS; rep++)); do
    for sys in "${SYSTEMS[@]}"; do
      start_system "$sys" "${URL[throttle]}"
      warm_manifests "$sys"
      curl -sf -o /dev/null "${URL[$sys]}/v2/" || note "$sys: /v2/ failed"
      b4_streams "$sys" "$OUT/raw/b4-streams-$sys-$rep"
      sleep "$B4_RAMP"
      hey -z "${B4_SECONDS}s" -c "$B4_CONC" -q "$B4_QPS" -o csv -H "Accept: $MT_MANIFEST" \
        "${URL[$sys]}/v2/lab/tiny/manifests/v1" >"$OUT/raw/b4-manifest-$sys-$rep.txt" 2>&1 &
      m=$!
      hey -z "${B4_SECONDS}s" -c "$B4_CONC" -q "$B4_QPS" -o csv "${URL[$sys]}/v2/" >"$OUT/raw/b4-base-$sys-$rep.txt" 2>&1 &
      b=$!
      wait "$m" || true
      wait "$b" || true
      running=0
      for pid in "${B4_PIDS[@]}"; do alive "$pid" && running=$((running + 1)); done
      record B6.B4 "$sys" "$(python3 "$BENCH_PY" hwm "$(system_pid "$sys")")"
      [ "$running" -ge "$B4_STREAMS" ] ||
        note "B4 $sys rep $rep: only $running of $B4_STREAMS streams were still in flight when the load tools finished"
      stop_system "$sys"
      b4_end_streams
      b4_record "$sys" "$rep"
    done
  done
  unset DEPPROXY_TOML
  stop_bg throttle
}

# b4_record SYSTEM REP — latency rows from hey's CSV; when no request of a kind completed within
# the window, its percentiles are recorded as lower bounds (the window length).
b4_record() {
  local sys=$1 rep=$2 kind stats requests=0 errors=0 s
  for kind in manifest base; do
    if stats=$(python3 "$BENCH_PY" hey "$OUT/raw/b4-$kind-$sys-$rep.txt" 2>/dev/null); then
      record "B4.${kind}_p50" "$sys" "$(jget p50_ms <<<"$stats")"
      record "B4.${kind}_p99" "$sys" "$(jget p99_ms <<<"$stats")"
      requests=$((requests + $(jget requests <<<"$stats")))
      errors=$((errors + $(jget errors <<<"$stats")))
    else
      note "B4 $sys rep $rep: no $kind request completed within ${B4_SECONDS}s (recorded as ≥ ${B4_SECONDS}000 ms)"
      record_lb "B4.${kind}_p50" "$sys" "${B4_SECONDS}000"
      record_lb "B4.${kind}_p99" "$sys" "${B4_SECONDS}000"
    fi
  done
  record B4.requests "$sys" "$requests"
  record B4.errors "$sys" "$errors"
  s=$(python3 "$BENCH_PY" streams "$OUT/raw/b4-streams-$sys-$rep")
  record B4.stream_ttfb_p50 "$sys" "$(jget ttfb_p50 <<<"$s")"
  record B4.stream_ttfb_p90 "$sys" "$(jget ttfb_p90 <<<"$s")"
  record B4.stream_failed "$sys" "$(jget failed <<<"$s")"
}

# ---------------------------------------------------------------- B5 manifest hits

scenario_B5() {
  local sys rep r ref row
  log "B5: cached manifest GETs, $B5_CONN connections"
  for sys in "${SYSTEMS[@]}"; do
    start_system "$sys" "${URL[upstream]}"
    warm_manifests "$sys"
  done
  note_cmd "# B5 (after warm-up; by tag, then by digest):"
  note_cmd "wrk -t$B5_THREADS -c$B5_CONN -d${B5_SECONDS}s --latency -H 'Accept: $MT_MANIFEST' \$SYSTEM/v2/lab/tiny/manifests/v1"
  note_cmd "wrk -t$B5_THREADS -c$B5_CONN -d${B5_SECONDS}s --latency -H 'Accept: $MT_MANIFEST' \$SYSTEM/v2/lab/tiny/manifests/$TINY_MANIFEST"
  for ((rep = 1; rep <= REPS; rep++)); do
    for sys in "${SYSTEMS[@]}"; do
      for ref in v1 "$TINY_MANIFEST"; do
        row=B5
        [ "$ref" = v1 ] || row=B5d
        wrk -t"$B5_THREADS" -c"$B5_CONN" -d"${B5_SECONDS}s" --latency -H "Accept: $MT_MANIFEST" \
          "${URL[$sys]}/v2/lab/tiny/manifests/$ref" >"$OUT/raw/$row-$sys-$rep.txt" 2>&1 || true
        r=$(python3 "$BENCH_PY" wrk "$OUT/raw/$row-$sys-$rep.txt") || { note "B5 $sys: cannot parse wrk output"; continue; }
        [ "$(jget errors <<<"$r")" = 0 ] || note "$row $sys rep $rep: $(jget errors <<<"$r") failed/non-2xx of $(jget requests <<<"$r") requests"
        record "$row.rps" "$sys" "$(jget rps <<<"$r")"
        record "$row.p99" "$sys" "$(jget p99_ms <<<"$r")"
      done
    done
  done
  for sys in "${SYSTEMS[@]}"; do stop_system "$sys"; done
}

# ---------------------------------------------------------------- hashing micro-benchmark

scenario_hash() {
  local file rep t0 secs r key
  file=$LAYOUTS/large/blobs/sha256/${LARGE_DIGEST#sha256:}
  log "hash: sha256sum vs depproxy's write path on $file"
  note_cmd "# hash (file = the large layer, in page cache):"
  note_cmd "sha256sum FILE"
  note_cmd "\$CARGO_TARGET_DIR/release/hashbench FILE $HASH_CHUNK $RUN/hashbench-store   # bench/hashbench"
  cat "$file" >/dev/null
  for ((rep = 1; rep <= REPS; rep++)); do
    t0=$EPOCHREALTIME
    sha256sum "$file" >/dev/null
    secs=$(calc "$EPOCHREALTIME - $t0")
    record hash.sha256sum micro "$(calc "$LARGE_SIZE / $secs / 1e9")"
    r=$("$HASHBENCH_BIN" "$file" "$HASH_CHUNK" "$RUN/hashbench-store")
    [ "$(jget digest <<<"$r")" = "$LARGE_DIGEST" ] || note "hashbench digest mismatch: $r"
    for key in read hash write_path commit; do record "hash.$key" micro "$(jget "$key" <<<"$r")"; done
  done
}

# ---------------------------------------------------------------- B5a access control on the hit path

# B5a: the hit fast path with access control, beside the same proxy's anonymous group, in one run:
# cached manifest by tag from an anonymous group, from a token group with a registry token (Bearer
# JWT) and with the access token sent as Basic on every request; then the token endpoint's grants/s.
scenario_B5a() {
  local dir=$RUN/depproxy-auth port=${PORT[depproxy-auth]} url secret jwt rep r row target basic
  local auth=()
  [[ " ${SYSTEMS[*]} " == *" depproxy "* ]] || { note "B5a needs the depproxy system"; return 0; }
  url=http://127.0.0.1:$port
  log "B5a: hits with access control, $B5_CONN connections"
  rm -rf "$dir"
  mkdir -p "$dir"
  printf '%s\n' '[[upstream]]' 'name = "lab"' "url = \"${URL[upstream]}\"" \
    '[[group]]' 'path = "default"' 'upstream = "lab"' 'access = "anonymous"' \
    '[[group]]' 'path = "private"' 'upstream = "lab"' 'access = "token"' >"$dir/depproxy.toml"
  start_bg depproxy-auth "$dir/depproxy.log" "$DEPPROXY_BIN" serve --listen "127.0.0.1:$port" \
    --admin-listen "127.0.0.1:$((port + 100))" --data-dir "$dir/data" --config "$dir/depproxy.toml"
  wait_http "$url/healthz" "${PIDS[depproxy-auth]}" 30 || die "depproxy (auth) did not start (logs in $dir)"
  secret=$("$DEPPROXY_BIN" token create --name bench --group private --config "$dir/depproxy.toml" \
    --data-dir "$dir/data" 2>/dev/null | sed -n 1p)
  local scope="repository:private/dependency_proxy/containers/lab/tiny:pull"
  jwt=$(curl -sf -u "bench:$secret" "$url/v2/token?service=depproxy&scope=$scope" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  local anon=$url/v2/lab/tiny/manifests/v1
  # The anonymous group in the token group's URL form: the same path work, so the ratio of the
  # two is the cost of access control alone.
  local anongroup=$url/v2/default/dependency_proxy/containers/lab/tiny/manifests/v1
  local private=$url/v2/private/dependency_proxy/containers/lab/tiny/manifests/v1
  basic="Basic $(printf 'bench:%s' "$secret" | base64 -w0)"
  for _ in 1 2; do
    curl -sf -o /dev/null -H "Accept: $MT_MANIFEST" "$anon" || note "B5a: anonymous manifest failed"
    curl -sf -o /dev/null -H "Accept: $MT_MANIFEST" "$anongroup" || note "B5a: anonymous group-form manifest failed"
    curl -sf -o /dev/null -H "Accept: $MT_MANIFEST" -H "Authorization: Bearer $jwt" "$private" ||
      note "B5a: token-group manifest failed"
  done
  note_cmd "# B5a (one depproxy, an anonymous and a token group; \$TOKEN from depproxy token create, \$JWT from /v2/token):"
  note_cmd "wrk -t$B5_THREADS -c$B5_CONN -d${B5_SECONDS}s --latency -H 'Accept: $MT_MANIFEST' $anon"
  note_cmd "wrk ... $anongroup   (the anonymous group in the group URL form)"
  note_cmd "wrk ... -H 'Authorization: Bearer \$JWT' $private"
  note_cmd "wrk ... -H 'Authorization: Basic base64(bench:\$TOKEN)' $private"
  note_cmd "wrk ... -H 'Authorization: Basic base64(bench:\$TOKEN)' '$url/v2/token?service=depproxy&scope=$scope'"
  for ((rep = 1; rep <= REPS; rep++)); do
    for row in anon anongroup bearer basic token; do
      case $row in
        anon) auth=() target=$anon ;;
        anongroup) auth=() target=$anongroup ;;
        bearer) auth=(-H "Authorization: Bearer $jwt") target=$private ;;
        basic) auth=(-H "Authorization: $basic") target=$private ;;
        token) auth=(-H "Authorization: $basic") target="$url/v2/token?service=depproxy&scope=$scope" ;;
      esac
      wrk -t"$B5_THREADS" -c"$B5_CONN" -d"${B5_SECONDS}s" --latency -H "Accept: $MT_MANIFEST" "${auth[@]}" \
        "$target" >"$OUT/raw/B5a-$row-$rep.txt" 2>&1 || true
      r=$(python3 "$BENCH_PY" wrk "$OUT/raw/B5a-$row-$rep.txt") || { note "B5a $row: cannot parse wrk output"; continue; }
      [ "$(jget errors <<<"$r")" = 0 ] || note "B5a $row rep $rep: $(jget errors <<<"$r") failed/non-2xx of $(jget requests <<<"$r") requests"
      record "B5a.$row.rps" depproxy "$(jget rps <<<"$r")"
      record "B5a.$row.p99" depproxy "$(jget p99_ms <<<"$r")"
    done
  done
  stop_bg depproxy-auth
}

# ---------------------------------------------------------------- B5p the pull policy on the hit path

# B5p: B5 on one depproxy with two anonymous groups in the same URL form: one without rules, one
# with 100 allow/deny rules (issue 25), so the ratio is the rules' cost alone.
scenario_B5p() {
  local dir=$RUN/depproxy-auth port=${PORT[depproxy-auth]} url rep r row target i
  [[ " ${SYSTEMS[*]} " == *" depproxy "* ]] || { note "B5p needs the depproxy system"; return 0; }
  url=http://127.0.0.1:$port
  log "B5p: hits through 100 allow/deny rules, $B5_CONN connections"
  rm -rf "$dir"
  mkdir -p "$dir"
  # 50 allow patterns (the last lets lab/* through) and 50 deny patterns, none of which refuses
  # lab/tiny:v1: every request is matched against all of them.
  local allow=() deny=()
  for ((i = 1; i < 50; i++)); do allow+=("\"team-$i/*\""); deny+=("\"lab/secret-$i:*\""); done
  allow+=('"lab/*"')
  deny+=('"lab/tiny:v0-*"')
  printf '%s\n' '[[upstream]]' 'name = "lab"' "url = \"${URL[upstream]}\"" \
    '[[group]]' 'path = "plain"' 'upstream = "lab"' 'access = "anonymous"' \
    '[[group]]' 'path = "ruled"' 'upstream = "lab"' 'access = "anonymous"' \
    "allow = [$(IFS=,; echo "${allow[*]}")]" "deny = [$(IFS=,; echo "${deny[*]}")]" >"$dir/depproxy.toml"
  "$DEPPROXY_BIN" check-config "$dir/depproxy.toml" >/dev/null 2>&1 ||
    { note "B5p: this depproxy does not take the rules (check-config failed)"; return 0; }
  start_bg depproxy-auth "$dir/depproxy.log" "$DEPPROXY_BIN" serve --listen "127.0.0.1:$port" \
    --admin-listen "127.0.0.1:$((port + 100))" --data-dir "$dir/data" --config "$dir/depproxy.toml"
  wait_http "$url/healthz" "${PIDS[depproxy-auth]}" 30 || die "depproxy (rules) did not start (logs in $dir)"
  local plain=$url/v2/plain/dependency_proxy/containers/lab/tiny/manifests/v1
  local ruled=$url/v2/ruled/dependency_proxy/containers/lab/tiny/manifests/v1
  for _ in 1 2; do
    curl -sf -o /dev/null -H "Accept: $MT_MANIFEST" "$plain" || note "B5p: manifest without rules failed"
    curl -sf -o /dev/null -H "Accept: $MT_MANIFEST" "$ruled" || note "B5p: manifest through the rules failed"
  done
  note_cmd "# B5p (one depproxy, two anonymous groups: 'plain' without rules, 'ruled' with 50 allow and 50 deny patterns, none refusing lab/tiny:v1; config in the run dir):"
  note_cmd "wrk -t$B5_THREADS -c$B5_CONN -d${B5_SECONDS}s --latency -H 'Accept: $MT_MANIFEST' $plain"
  note_cmd "wrk ... $ruled"
  for ((rep = 1; rep <= REPS; rep++)); do
    for row in plain rules; do
      target=$plain
      [ "$row" = plain ] || target=$ruled
      wrk -t"$B5_THREADS" -c"$B5_CONN" -d"${B5_SECONDS}s" --latency -H "Accept: $MT_MANIFEST" \
        "$target" >"$OUT/raw/B5p-$row-$rep.txt" 2>&1 || true
      r=$(python3 "$BENCH_PY" wrk "$OUT/raw/B5p-$row-$rep.txt") || { note "B5p $row: cannot parse wrk output"; continue; }
      [ "$(jget errors <<<"$r")" = 0 ] || note "B5p $row rep $rep: $(jget errors <<<"$r") failed/non-2xx of $(jget requests <<<"$r") requests"
      record "B5p.$row.rps" depproxy "$(jget rps <<<"$r")"
      record "B5p.$row.p99" depproxy "$(jget p99_ms <<<"$r")"
    done
  done
  stop_bg depproxy-auth
}

# ---------------------------------------------------------------- shared by B6s, B7, BC

# peak_start SYSTEM FILE — samples the system's summed Threads and VmRSS every 0.5 s into FILE
# (maxima so far) until peak_stop.
peak_start() {
  rm -f "$2"
  start_bg peak "$OUT/raw/peak.log" python3 "$BENCH_PY" peak "$2" "$(system_pid "$1")"
}

peak_stop() { stop_bg peak; }

# json_file FILE — true when FILE holds one JSON object (the load tools print one; a traceback
# otherwise, which goes to the notes).
json_file() { python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$1" 2>/dev/null; }

# hits_start SYSTEM SECONDS TAG — the steady clients in the background: the tiny manifest by tag
# (HIT_QPS/s) and the HOT_MB blob (HIT_BLOB_QPS/s), each GET on a new connection; HIT_PIDS.
hits_start() {
  local sys=$1 secs=$2 tag=$3
  python3 "$BENCH_PY" hits "$secs" "$HIT_QPS" "${URL[$sys]}/v2/lab/tiny/manifests/v1" \
    "$OUT/raw/$tag-manifest.jsonl" "Accept: $MT_MANIFEST" >"$OUT/raw/$tag-manifest.json" 2>&1 &
  HIT_PIDS=($!)
  python3 "$BENCH_PY" hits "$secs" "$HIT_BLOB_QPS" "$(blob_url "$sys" hot "$HOT_DIGEST")" \
    "$OUT/raw/$tag-blob.jsonl" >"$OUT/raw/$tag-blob.json" 2>&1 &
  HIT_PIDS+=($!)
}

hits_wait() {
  local pid
  for pid in "${HIT_PIDS[@]}"; do wait "$pid" || true; done
  HIT_PIDS=()
}

hits_note_cmds() {
  local secs=$1
  note_cmd "bench/lib/bench.py hits $secs $HIT_QPS \$SYSTEM/v2/lab/tiny/manifests/v1 RAW.jsonl 'Accept: $MT_MANIFEST'   # a GET every 1/QPS s, new connection each, whole body read; TTFB = connect start → first response byte"
  note_cmd "bench/lib/bench.py hits $secs $HIT_BLOB_QPS \$SYSTEM/v2/lab/hot/blobs/$HOT_DIGEST RAW.jsonl   # the ${HOT_MB} MiB blob ($HOT_SIZE B)"
}

# hits_record SCENARIO SYSTEM TAG SECONDS — SCENARIO.{manifest,blob}_{p50,p99,failed}; when no hit
# of a kind succeeded, its percentiles are recorded as lower bounds (the window).
hits_record() {
  local sc=$1 sys=$2 tag=$3 secs=$4 kind f s
  for kind in manifest blob; do
    f=$OUT/raw/$tag-$kind.json
    if ! json_file "$f"; then
      note "$sc $sys: the $kind hit client failed: $(tail -1 "$f")"
      continue
    fi
    s=$(cat "$f")
    if [ "$(jget p50_ms <<<"$s")" = None ]; then
      note "$sc $sys ($tag): no $kind hit succeeded within ${secs}s ($(jget errors <<<"$s"))"
      record_lb "$sc.${kind}_p50" "$sys" "$(calc "$secs * 1000")"
      record_lb "$sc.${kind}_p99" "$sys" "$(calc "$secs * 1000")"
    else
      record "$sc.${kind}_p50" "$sys" "$(jget p50_ms <<<"$s")"
      record "$sc.${kind}_p99" "$sys" "$(jget p99_ms <<<"$s")"
    fi
    record "$sc.${kind}_failed" "$sys" "$(jget failed <<<"$s")"
    [ "$(jget failed <<<"$s")" = 0 ] ||
      note "$sc $sys ($tag): $(jget failed <<<"$s") of $(jget requests <<<"$s") $kind hits failed: $(jget errors <<<"$s")"
  done
}

# peak_record SCENARIO SYSTEM FILE — SCENARIO.rss (sum of VmHWM, read now) and SCENARIO.threads
# (max of the 0.5 s samples in FILE).
peak_record() {
  local sc=$1 sys=$2 f=$3
  record "$sc.rss" "$sys" "$(python3 "$BENCH_PY" hwm "$(system_pid "$sys")")"
  if json_file "$f"; then
    record "$sc.threads" "$sys" "$(jget threads_max <"$f")"
    log "  $sc $sys samples (max of the sums, MB): $(cat "$f")"
  else
    note "$sc $sys: no thread samples ($f)"
  fi
}

# ---------------------------------------------------------------- B6s slow readers

scenario_B6s() {
  local sys rep tag s
  log "B6s: $B6S_READERS readers of the cached ${HOT_SIZE}-byte blob at $B6S_RATE each, ${B6S_SECONDS}s"
  note_cmd "# B6s (fresh start, the ${HOT_MB} MiB lab/hot blob warmed; $B6S_READERS concurrent GETs started over ${B6S_RAMP}s, each reading at most $B6S_RATE/s through a ${B6S_RCVBUF}-byte SO_RCVBUF for ${B6S_SECONDS}s — they do not finish):"
  note_cmd "bench/lib/bench.py readers \$SYSTEM/v2/lab/hot/blobs/$HOT_DIGEST $B6S_READERS $B6S_SECONDS $B6S_RATE $B6S_RAMP $B6S_RCVBUF"
  note_cmd "bench/lib/bench.py peak OUT PID   # during the readers: max summed Threads (and VmRSS) of the system's processes, every 0.5 s; then bench/lib/bench.py hwm PID"
  for ((rep = 1; rep <= REPS; rep++)); do
    for sys in "${SYSTEMS[@]}"; do
      tag=b6s-$sys-$rep
      start_system "$sys" "${URL[upstream]}"
      warm_blob "$sys" hot "$HOT_DIGEST"
      peak_start "$sys" "$OUT/raw/$tag-peak.json"
      python3 "$BENCH_PY" readers "$(blob_url "$sys" hot "$HOT_DIGEST")" "$B6S_READERS" "$B6S_SECONDS" \
        "$B6S_RATE" "$B6S_RAMP" "$B6S_RCVBUF" >"$OUT/raw/$tag.json" 2>&1 || true
      peak_stop
      peak_record B6s "$sys" "$OUT/raw/$tag-peak.json"
      if json_file "$OUT/raw/$tag.json"; then
        s=$(cat "$OUT/raw/$tag.json")
        record B6s.readers_ok "$sys" "$(jget ok <<<"$s")"
        record B6s.reader_mbps "$sys" "$(jget mbps_p50 <<<"$s")"
        [ "$(jget ok <<<"$s")" = "$B6S_READERS" ] ||
          note "B6s $sys rep $rep: only $(jget ok <<<"$s") of $B6S_READERS readers got a 200 and kept reading: $s"
      else
        note "B6s $sys rep $rep: the reader tool failed: $(tail -1 "$OUT/raw/$tag.json")"
      fi
      stop_system "$sys"
    done
  done
}

# ---------------------------------------------------------------- B7 hits under a fill storm

scenario_B7() {
  local sys rep tag s storm drops
  log "B7: $B7_FILLS cold fills at $B7_RATE (hang up after the head) + steady hits, ${B7_SECONDS}s"
  start_throttle "$B7_RATE"
  note_cmd "# B7 (fresh start, upstream = nginx 'limit_rate $B7_RATE' in front of the registry, lab/hot not limited; the tiny manifest and the ${HOT_MB} MiB lab/hot blob warmed; then for ${B7_SECONDS}s, all at once — nginx static has no upstream to fill from: not run):"
  note_cmd "bench/lib/bench.py storm \$SYSTEM/v2/lab/b7/blobs $B7_LIST $B7_FILLS $B7_SECONDS $B7_RAMP $B7_SOURCES   # $B7_FILLS distinct ${B7_BLOB_MB} MiB blobs, GETs started over ${B7_RAMP}s from $B7_SOURCES client addresses (127.0.0.2…), each closes its connection once the response head is in (or at the end of the window)"
  hits_note_cmds "$B7_SECONDS"
  note_cmd "bench/lib/bench.py peak OUT PID   # during the window: max summed Threads of the system's processes, every 0.5 s; then bench/lib/bench.py hwm PID"
  for ((rep = 1; rep <= REPS; rep++)); do
    for sys in "${PROXIES[@]}"; do
      tag=b7-$sys-$rep
      start_system "$sys" "${URL[throttle]}"
      warm_manifests "$sys"
      warm_blob "$sys" hot "$HOT_DIGEST"
      peak_start "$sys" "$OUT/raw/$tag-peak.json"
      drops=$(python3 "$BENCH_PY" listen-drops)
      python3 "$BENCH_PY" storm "${URL[$sys]}/v2/lab/b7/blobs" "$B7_LIST" "$B7_FILLS" "$B7_SECONDS" \
        "$B7_RAMP" "$B7_SOURCES" >"$OUT/raw/$tag-storm.json" 2>&1 &
      storm=$!
      hits_start "$sys" "$B7_SECONDS" "$tag"
      wait "$storm" || true
      hits_wait
      peak_stop
      record B7.listen_drops "$sys" $(($(python3 "$BENCH_PY" listen-drops) - drops))
      peak_record B7 "$sys" "$OUT/raw/$tag-peak.json"
      stop_system "$sys"
      hits_record B7 "$sys" "$tag" "$B7_SECONDS"
      if json_file "$OUT/raw/$tag-storm.json"; then
        s=$(cat "$OUT/raw/$tag-storm.json")
        record B7.fills_200 "$sys" "$(jget ok <<<"$s")"
        record B7.fills_503 "$sys" "$(jget busy <<<"$s")"
        record B7.fills_no_head "$sys" "$(jget no_head <<<"$s")"
        record B7.fills_other "$sys" "$(jget other <<<"$s")"
        log "  B7 $sys fills: $(jget status <<<"$s"), response head p50 $(jget head_p50_s <<<"$s") s, p90 $(jget head_p90_s <<<"$s") s; arrival [min, median, max] s by outcome: $(jget when_s <<<"$s")"
      else
        note "B7 $sys rep $rep: the storm tool failed: $(tail -1 "$OUT/raw/$tag-storm.json")"
      fi
    done
  done
  stop_bg throttle
}

# ---------------------------------------------------------------- BC connections

scenario_BC() {
  local sys rep tag s conns i drops need=$((BC_IDLE + BC_HALF + 1000)) wait_s=$((BC_HEADER_TIMEOUT + 3)) hold
  hold=$((BC_SECONDS > wait_s ? BC_SECONDS : wait_s))
  hold=$((hold + 1))
  log "BC: $BC_IDLE idle keep-alive + $BC_HALF half-sent heads, hits for ${BC_SECONDS}s, held ${hold}s"
  # File descriptors for the client (11 000 sockets) and the servers (as many, + upstream, files).
  if [ "$(ulimit -n)" -lt "$need" ]; then
    { ulimit -Hn "$need" && ulimit -n "$need"; } 2>/dev/null ||
      note "BC: could not raise ulimit -n to $need (now $(ulimit -n)); connections may be refused for lack of descriptors"
  fi
  DEPPROXY_TOML=$(printf '[server]\nheader_read_timeout = "%ss"\nmax_connections = %s' "$BC_HEADER_TIMEOUT" "$BC_MAX_CONN")
  NGINX_CONNS=$need
  note_cmd "# BC (fresh start; depproxy with --config: [server] header_read_timeout = \"${BC_HEADER_TIMEOUT}s\", max_connections = $BC_MAX_CONN; nginx with worker_connections $need; the others at their defaults (nginx client_header_timeout 60s); ulimit -n $(ulimit -n); the tiny manifest and the ${HOT_MB} MiB lab/hot blob warmed):"
  note_cmd "bench/lib/bench.py conns \$SYSTEM $BC_IDLE $BC_HALF $hold READY $BC_SECONDS $BC_SOURCES   # $BC_IDLE connections each GET /v2/ (keep-alive) then idle, then $BC_HALF send 'GET /v2/ HTTP/1.1\\r\\nHost: x\\r\\nX-Slow: ' only, from $BC_SOURCES loopback addresses; all held ${hold}s after the last is open; counts which the server closed"
  hits_note_cmds "$BC_SECONDS"
  note_cmd "# (the hit clients start once all connections are open)"
  note_cmd "bench/lib/bench.py peak OUT PID   # while the connections are held: max summed Threads of the system's processes, every 0.5 s; then bench/lib/bench.py hwm PID"
  note_cmd "bench/lib/bench.py listen-drops   # TcpExt ListenDrops of the machine, before and after the hold (B7: the window)"
  for ((rep = 1; rep <= REPS; rep++)); do
    for sys in "${SYSTEMS[@]}"; do
      tag=bc-$sys-$rep
      # A reference build from before the [server] keys existed refuses this config.
      if [ "$sys" = depproxy-ref ] && ! "$DEPPROXY_REF_BIN" check-config <(printf '%s\n' "$DEPPROXY_TOML") \
        >/dev/null 2>&1; then
        note "BC: depproxy-ref skipped (it does not know the [server] keys)"
        continue
      fi
      start_system "$sys" "${URL[upstream]}"
      warm_manifests "$sys"
      warm_blob "$sys" hot "$HOT_DIGEST"
      rm -f "$RUN/bc-ready"
      python3 "$BENCH_PY" conns "${URL[$sys]}" "$BC_IDLE" "$BC_HALF" "$hold" "$RUN/bc-ready" "$BC_SECONDS" \
        "$BC_SOURCES" >"$OUT/raw/$tag-conns.json" 2>&1 &
      conns=$!
      for ((i = 0; i < 1200; i++)); do
        [ -e "$RUN/bc-ready" ] && break
        alive "$conns" || break
        sleep 0.1
      done
      [ -e "$RUN/bc-ready" ] || note "BC $sys rep $rep: the connections were not all open after 120 s"
      drops=$(python3 "$BENCH_PY" listen-drops)
      peak_start "$sys" "$OUT/raw/$tag-peak.json"
      hits_start "$sys" "$BC_SECONDS" "$tag"
      hits_wait
      wait "$conns" || true
      peak_stop
      record BC.listen_drops "$sys" $(($(python3 "$BENCH_PY" listen-drops) - drops))
      peak_record BC "$sys" "$OUT/raw/$tag-peak.json"
      stop_system "$sys"
      hits_record BC "$sys" "$tag" "$BC_SECONDS"
      if json_file "$OUT/raw/$tag-conns.json"; then
        s=$(cat "$OUT/raw/$tag-conns.json")
        record BC.idle_ok "$sys" "$(jget idle_ok <<<"$s")"
        record BC.idle_closed "$sys" "$(jget idle_closed <<<"$s")"
        record BC.half_sent "$sys" "$(jget half_sent <<<"$s")"
        record BC.half_open "$sys" "$(jget half_open <<<"$s")"
        [ "$(jget half_close_max_s <<<"$s")" = None ] || record BC.half_close_s "$sys" "$(jget half_close_max_s <<<"$s")"
        record BC.open_s "$sys" "$(jget open_all_s <<<"$s")"
        log "  BC $sys: $s"
        [ "$(jget idle_closed_window <<<"$s")" = 0 ] ||
          note "BC $sys rep $rep: the server closed $(jget idle_closed_window <<<"$s") of the idle connections while the hits ran (e.g. depproxy's header_read_timeout, which also bounds keep-alive idle time, is ${BC_HEADER_TIMEOUT}s): the hits did not see all of them open"
        [ "$(jget idle_ok <<<"$s")" = "$BC_IDLE" ] && [ "$(jget half_sent <<<"$s")" = "$BC_HALF" ] ||
          note "BC $sys rep $rep: only $(jget idle_ok <<<"$s")/$BC_IDLE idle and $(jget half_sent <<<"$s")/$BC_HALF half-sent connections were established"
      else
        note "BC $sys rep $rep: the connection tool failed: $(tail -1 "$OUT/raw/$tag-conns.json")"
      fi
    done
  done
  unset DEPPROXY_TOML NGINX_CONNS
}

# ---------------------------------------------------------------- BA abuse after the request head

scenario_BA() {
  local sys rep tag s abuse deadline=$((BA_BODY_TIMEOUT + 1)) hold=$((BA_BODY_TIMEOUT + 3))
  local need=$((BA_H1 + BA_H2 + 1000))
  log "BA: $BA_H1 half-sent bodies + $BA_H2 h2c connections × $BA_STREAMS streams with partial bodies, hits for ${BA_SECONDS}s"
  if [ "$(ulimit -n)" -lt "$need" ]; then
    { ulimit -Hn "$need" && ulimit -n "$need"; } 2>/dev/null ||
      note "BA: could not raise ulimit -n to $need (now $(ulimit -n)); connections may be refused for lack of descriptors"
  fi
  DEPPROXY_TOML=$(printf '[server]\nbody_read_timeout = "%ss"\nhttp2 = true' "$BA_BODY_TIMEOUT")
  NGINX_CONNS=$need
  note_cmd "# BA (fresh start; depproxy with --config: [server] body_read_timeout = \"${BA_BODY_TIMEOUT}s\", http2 = true; nginx with worker_connections $need; the others at their defaults; ulimit -n $(ulimit -n); the tiny manifest and the ${HOT_MB} MiB lab/hot blob warmed; the hits start with the abusive connections):"
  note_cmd "bench/lib/bench.py abuse \$SYSTEM $BA_H1 $BA_H2 $BA_STREAMS $BA_BODY $BA_H1_SENT $BA_H2_SENT $hold READY $BA_SOURCES $deadline   # $BA_H1 POST /v2/token heads with Content-Length $BA_BODY + $BA_H1_SENT bytes; $BA_H2 HTTP/2-without-TLS connections × $BA_STREAMS such POSTs with $BA_H2_SENT bytes each; from 127.0.0.2..$((1 + BA_SOURCES)); held ${hold}s after the last is open; 'in time' = closed within ${deadline}s of its last byte"
  hits_note_cmds "$BA_SECONDS"
  note_cmd "bench/lib/bench.py peak OUT PID   # from the start of the abuse: max summed Threads of the system's processes, every 0.5 s; then bench/lib/bench.py hwm PID"
  for ((rep = 1; rep <= REPS; rep++)); do
    for sys in "${SYSTEMS[@]}"; do
      tag=ba-$sys-$rep
      # A reference build from before these [server] keys refuses this config.
      if [ "$sys" = depproxy-ref ] && ! "$DEPPROXY_REF_BIN" check-config <(printf '%s\n' "$DEPPROXY_TOML") \
        >/dev/null 2>&1; then
        note "BA: depproxy-ref skipped (it does not know [server] body_read_timeout / http2)"
        continue
      fi
      start_system "$sys" "${URL[upstream]}"
      warm_manifests "$sys"
      warm_blob "$sys" hot "$HOT_DIGEST"
      rm -f "$RUN/ba-ready"
      peak_start "$sys" "$OUT/raw/$tag-peak.json"
      hits_start "$sys" "$BA_SECONDS" "$tag"
      python3 "$BENCH_PY" abuse "${URL[$sys]}" "$BA_H1" "$BA_H2" "$BA_STREAMS" "$BA_BODY" "$BA_H1_SENT" \
        "$BA_H2_SENT" "$hold" "$RUN/ba-ready" "$BA_SOURCES" "$deadline" >"$OUT/raw/$tag-abuse.json" 2>&1 &
      abuse=$!
      hits_wait
      wait "$abuse" || true
      peak_stop
      peak_record BA "$sys" "$OUT/raw/$tag-peak.json"
      stop_system "$sys"
      hits_record BA "$sys" "$tag" "$BA_SECONDS"
      [ -e "$RUN/ba-ready" ] || note "BA $sys rep $rep: the abusive connections were not all open by the end"
      if json_file "$OUT/raw/$tag-abuse.json"; then
        s=$(cat "$OUT/raw/$tag-abuse.json")
        record BA.held "$sys" "$(jget held <<<"$s")"
        record BA.h2_held "$sys" "$(jget h2_held <<<"$s")"
        record BA.h2_streams "$sys" "$(jget h2_streams <<<"$s")"
        record BA.late "$sys" "$(jget late <<<"$s")"
        record BA.still_open "$sys" "$(jget still_open <<<"$s")"
        [ "$(jget close_max_s <<<"$s")" = None ] || record BA.close_max_s "$sys" "$(jget close_max_s <<<"$s")"
        record BA.open_s "$sys" "$(jget open_all_s <<<"$s")"
        log "  BA $sys: $s"
        [ "$(jget held <<<"$s")" = $((BA_H1 + BA_H2)) ] ||
          note "BA $sys rep $rep: $(jget h1_held <<<"$s")/$BA_H1 HTTP/1 and $(jget h2_held <<<"$s")/$BA_H2 HTTP/2 abusive connections were established ($(jget failed_reasons <<<"$s"))"
      else
        note "BA $sys rep $rep: the abuse tool failed: $(tail -1 "$OUT/raw/$tag-abuse.json")"
      fi
    done
  done
  unset DEPPROXY_TOML NGINX_CONNS
}

# ---------------------------------------------------------------- BS the sweeper at scale

# median VALUE... — the middle value (the upper one of an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int(NR / 2) + 1] }'; }

# metric_sum URL NAME — the sum of a metric's samples (all label sets) in a /metrics text.
metric_sum() {
  curl -sf "$1" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%.6f\n", s + 0 }'
}

# BS: one depproxy (disk store) holding BS_OBJECTS blobs of BS_SIZE bytes that nobody read for 2
# days in a group with ttl = 1d, seeded by bench/hashbench's sweepseed while it runs; the B5 load
# (wrk on the cached tiny manifest) runs in 1-s slices while the admin API's POST /api/v1/sweep
# makes the sweeper remove them. Rows per database: sweep wall time (depproxy_sweep_seconds),
# objects removed, peak RSS (VmHWM) after the sweep vs RSS before it, hit p99 and req/s before
# the sweep and in the worst / median slice during it. SQLite, then PostgreSQL when one answers
# on BS_POSTGRES (a database depproxy_bench_sweep is dropped and created).
scenario_BS() {
  local dir=$RUN/depproxy-sweep port=${PORT[depproxy-auth]} aport=${PORT[depproxy-admin]} url admin db
  local database token r before completed t0 sweep_s evicted slices p99s rpss pid left status slice
  local seed_bin=${SWEEPSEED_BIN:-$CARGO_TARGET_DIR/release/sweepseed}
  [[ " ${SYSTEMS[*]} " == *" depproxy "* ]] || { note "BS needs the depproxy system"; return 0; }
  [ -x "$seed_bin" ] || { note "BS: no $seed_bin (bench/hashbench did not build?): skipped"; return 0; }
  url=http://127.0.0.1:$port
  admin=http://127.0.0.1:$aport
  local dbs=(sqlite)
  if psql "$BS_POSTGRES/postgres" -qAtc 'SELECT 1' >/dev/null 2>&1; then dbs+=(postgres); else
    note "BS: no PostgreSQL at $BS_POSTGRES: SQLite only"; fi
  note_cmd "# BS (depproxy with a group ttl = 1d, then $BS_OBJECTS objects of $BS_SIZE B last read 2 days ago, then a sweep under B5 load):"
  note_cmd "sweepseed \$DATABASE_URL \$DATA_DIR default $BS_OBJECTS $BS_SIZE 172800   # bench/hashbench/src/bin/sweepseed.rs"
  note_cmd "curl -X POST -H 'Authorization: Bearer \$ADMIN_TOKEN' $admin/api/v1/sweep   # then GET until completed passes"
  note_cmd "wrk -t$B5_THREADS -c$B5_CONN -d1s --latency -H 'Accept: $MT_MANIFEST' $url/v2/lab/tiny/manifests/v1   # repeated while the sweep runs"
  for db in "${dbs[@]}"; do
    log "BS: sweep of $BS_OBJECTS objects on $db under B5 load"
    rm -rf "$dir"
    mkdir -p "$dir/data"
    case $db in
      sqlite) database="sqlite:$dir/data/depproxy.db" ;;
      postgres)
        psql "$BS_POSTGRES/postgres" -qAtc 'DROP DATABASE IF EXISTS depproxy_bench_sweep' >/dev/null
        psql "$BS_POSTGRES/postgres" -qAtc 'CREATE DATABASE depproxy_bench_sweep' >/dev/null
        database="$BS_POSTGRES/depproxy_bench_sweep" ;;
    esac
    printf '%s\n' "database_url = \"$database\"" '[[upstream]]' 'name = "lab"' "url = \"${URL[upstream]}\"" \
      '[[group]]' 'path = "default"' 'upstream = "lab"' 'ttl = "1d"' \
      '[cache]' 'sweep_interval = "24h"' >"$dir/depproxy.toml"
    start_bg depproxy-sweep "$dir/depproxy.log" "$DEPPROXY_BIN" serve --listen "127.0.0.1:$port" \
      --admin-listen "127.0.0.1:$aport" --data-dir "$dir/data" --config "$dir/depproxy.toml"
    wait_http "$url/healthz" "${PIDS[depproxy-sweep]}" 30 || die "depproxy (sweep) did not start (logs in $dir)"
    pid=${PIDS[depproxy-sweep]}
    token=$("$DEPPROXY_BIN" token create --name bench --admin --config "$dir/depproxy.toml" \
      --data-dir "$dir/data" 2>/dev/null | sed -n 1p)
    for _ in 1 2; do
      curl -sf -o /dev/null -H "Accept: $MT_MANIFEST" "$url/v2/lab/tiny/manifests/v1" || note "BS: manifest failed"
    done
    r=$("$seed_bin" "$database" "$dir/data" default "$BS_OBJECTS" "$BS_SIZE" 172800) || die "BS: sweepseed failed"
    note "BS $db: seeded $r"
    p99s=() rpss=()
    for slice in 1 2 3 4 5; do
      wrk -t"$B5_THREADS" -c"$B5_CONN" -d1s --latency -H "Accept: $MT_MANIFEST" "$url/v2/lab/tiny/manifests/v1" \
        >"$OUT/raw/BS-$db-before-$slice.txt" 2>&1 || true
      r=$(python3 "$BENCH_PY" wrk "$OUT/raw/BS-$db-before-$slice.txt") || { note "BS $db: cannot parse wrk output"; continue; }
      p99s+=("$(jget p99_ms <<<"$r")") rpss+=("$(jget rps <<<"$r")")
    done
    record "BS.$db.p99_before" depproxy "$(median "${p99s[@]}")"
    record "BS.$db.rps_before" depproxy "$(median "${rpss[@]}")"
    record "BS.$db.rss_before" depproxy "$(awk '/^VmRSS/ { print $2 / 1024 }' "/proc/$pid/status")"
    before=$(metric_sum "$url/metrics" depproxy_sweep_duration_seconds_sum)
    evicted=$(metric_sum "$url/metrics" depproxy_evicted_objects_total)
    completed=$(curl -sf -X POST -H "Authorization: Bearer $token" "$admin/api/v1/sweep" | jget completed) ||
      die "BS: POST /api/v1/sweep failed"
    t0=$EPOCHREALTIME
    slices=0 p99s=() rpss=()
    while :; do
      wrk -t"$B5_THREADS" -c"$B5_CONN" -d1s --latency -H "Accept: $MT_MANIFEST" "$url/v2/lab/tiny/manifests/v1" \
        >"$OUT/raw/BS-$db-slice-$slices.txt" 2>&1 || true
      r=$(python3 "$BENCH_PY" wrk "$OUT/raw/BS-$db-slice-$slices.txt") || r=
      status=$(curl -sf -H "Authorization: Bearer $token" "$admin/api/v1/sweep") || status='{}'
      # A slice counts as "during" only if the sweep was still running when it ended.
      if [ -n "$r" ] && [ "$(jget completed <<<"$status")" = "$completed" ]; then
        p99s+=("$(jget p99_ms <<<"$r")") rpss+=("$(jget rps <<<"$r")")
      elif [ -n "$r" ] && [ "$slices" = 0 ]; then
        p99s+=("$(jget p99_ms <<<"$r")") rpss+=("$(jget rps <<<"$r")")   # a sweep shorter than one slice
      fi
      slices=$((slices + 1))
      [ "$(jget completed <<<"$status")" = "$completed" ] || break
      [ $((${EPOCHREALTIME%.*} - ${t0%.*})) -lt 900 ] || { note "BS $db: sweep still running after 900 s"; break; }
    done
    sweep_s=$(calc "$(metric_sum "$url/metrics" depproxy_sweep_duration_seconds_sum) - $before")
    record "BS.$db.seconds" depproxy "$sweep_s"
    record "BS.$db.evicted" depproxy "$(calc "$(metric_sum "$url/metrics" depproxy_evicted_objects_total) - $evicted")"
    record "BS.$db.rss" depproxy "$(awk '/^VmHWM/ { print $2 / 1024 }' "/proc/$pid/status")"
    record "BS.$db.p99_during" depproxy "$(printf '%s\n' "${p99s[@]}" | sort -g | tail -1)"
    record "BS.$db.p99_median" depproxy "$(median "${p99s[@]}")"
    record "BS.$db.rps_during" depproxy "$(median "${rpss[@]}")"
    left=$(find "$dir/data/blobs" -type f | wc -l)
    record "BS.$db.files_left" depproxy "$left"
    note "BS $db: ${#p99s[@]} wrk slices during a sweep of ${sweep_s} s; $left object files left (the tiny image's)"
    stop_bg depproxy-sweep
  done
}
