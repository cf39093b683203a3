# BR (Cargo): `cargo fetch` of a project whose dependency tree is BR_CRATES generated crates,
# through depproxy's cargo group and nginx proxy_cache, beside the upstream served straight.
# Sourced by run.sh after packages.sh (it uses the meters, the clients' bookkeeping and
# pkg_scenario from there).
#
# Upstream: the sparse registry of scripts/lab/start-sparse-registry.sh over the crates that
# scripts/lab/make-cargo-fixtures.sh packages with `cargo package` — an index server and a
# download server, as a registry and its CDN are. A meter nginx (packages.sh) in front of EACH:
# the index's config.json names the download meter as its `dl` (SPARSE_DL_URL), so every byte a
# client or a proxy takes from either server is counted.
#
# Systems (each fresh — empty cache — for every cold measurement):
#   depproxy     [[upstream]] format cargo → the index meter (redirect_allow 127.0.0.1: the dl
#                host is a private address); group rust; clients use sparse+URL/cargo/rust/
#   nginx-cache  proxy_cache: index files and config.json 5 min (like depproxy's document_recheck),
#                .crate files 7 d under /dl/ → the dl meter, config.json's dl rewritten to /dl/ with
#                sub_filter; proxy_cache_lock on
#   direct       no proxy: clients use the index meter, and download from the dl meter

BR_CRATES=${BR_CRATES:-110}
BR_CLIENTS=${BR_CLIENTS:-8}
# Where `cargo package` builds the fixtures (verification): not the depproxy build's target dir.
BR_FIXTURE_TARGET=${BR_FIXTURE_TARGET:-$PKG_DIR/cargo-target}

PORT[cargo-index]=$((PORT_BASE + 27))
PORT[cargo-dl]=$((PORT_BASE + 28))
PORT[cargo-index-meter]=$((PORT_BASE + 29))
PORT[cargo-dl-meter]=$((PORT_BASE + 30))
for _name in cargo-index cargo-dl cargo-index-meter cargo-dl-meter; do URL[$_name]=http://127.0.0.1:${PORT[$_name]}; done

# The fixture (generated once, reused while the scripts that make it are unchanged) and the
# sparse registry serving it.
prepare_cargo_data() {
  CARGO_FIX=$PKG_DIR/cargo-$BR_CRATES
  local stamp
  stamp="n=$BR_CRATES $(cat "$REPO/scripts/lab/make-cargo-fixtures.sh" "$REPO/scripts/lab/make-sparse-index.py" | md5sum | cut -c1-16)"
  if [ "$(cat "$CARGO_FIX/stamp" 2>/dev/null)" != "$stamp" ]; then
    log "BR: packaging $BR_CRATES generated crates with cargo package (scripts/lab/make-cargo-fixtures.sh)"
    CARGO_TARGET_DIR=$BR_FIXTURE_TARGET CARGO_INCREMENTAL=0 nice -n 10 \
      "$REPO/scripts/lab/make-cargo-fixtures.sh" "$CARGO_FIX" "$BR_CRATES" >&2
    echo "$stamp" >"$CARGO_FIX/stamp"
  fi
  pkg_lab env SPARSE_DL_URL="${URL[cargo-dl-meter]}" \
    "$REPO/scripts/lab/start-sparse-registry.sh" "${PORT[cargo-index]}" "${PORT[cargo-dl]}" "$CARGO_FIX" >&2
  CARGO_UP_STARTED=1
  BR_EXPECTED=$BR_CRATES
}

stop_cargo_upstreams() {
  if [ "${CARGO_UP_STARTED:-0}" = 1 ]; then
    pkg_lab "$REPO/scripts/lab/stop-sparse-registry.sh" "${PORT[cargo-index]}" "${PORT[cargo-dl]}" >&2 || true
  fi
  CARGO_UP_STARTED=0
}

cargo_upstream_pids() {
  local f
  for f in "$PKG_DIR/sparse-index-${PORT[cargo-index]}.pid" "$PKG_DIR/sparse-dl-${PORT[cargo-dl]}.pid"; do
    [ -f "$f" ] && cat "$f"
  done
  return 0
}

# The meters' server blocks (inside start_meters' http block).
cargo_meter_servers() {
  meter_server "${PORT[cargo-index-meter]}" "${URL[cargo-index]}" cargo_index
  meter_server "${PORT[cargo-dl-meter]}" "${URL[cargo-dl]}" cargo_dl
}

# The sparse index URL (with its trailing slash) a client is given for SYSTEM.
cargo_index_url() {
  case $1 in
    depproxy | depproxy-ref) echo "${URL[$1]}/cargo/rust/" ;;
    direct) echo "${URL[cargo-index-meter]}/" ;;
    *) echo "${URL[$1]}/" ;;
  esac
}

depproxy_cargo_toml() {
  cat <<EOF
[[upstream]]
name = "crates"
format = "cargo"
url = "${URL[cargo-index-meter]}"
# config.json's dl names the download meter, a private address.
redirect_allow = ["127.0.0.1"]

[[group]]
path = "rust"
format = "cargo"
upstreams = ["crates"]
EOF
}

# start_cargo_system NAME — fresh start (empty cache) of NAME for BR (stopped and wiped first).
start_cargo_system() {
  local name=$1 dir=$RUN/$1 ready
  case $name in
    depproxy | depproxy-ref)
      local binary=$DEPPROXY_BIN
      [ "$name" = depproxy ] || binary=$DEPPROXY_REF_BIN
      depproxy_cargo_toml >"$dir/depproxy.toml"
      start_bg "$name" "$dir/depproxy.log" "$binary" serve --listen "127.0.0.1:${PORT[$name]}" \
        --admin-listen "127.0.0.1:$((PORT[$name] + 100))" --data-dir "$dir/data" --config "$dir/depproxy.toml"
      wait_http "${URL[$name]}/healthz" "${PIDS[$name]}" 60 || die "$name did not start (logs in $dir)"
      ;;
    nginx-cache)
      local idx=${URL[cargo-index-meter]#http://} dl=${URL[cargo-dl-meter]#http://}
      # shellcheck disable=SC2016 # nginx variables
      nginx_conf "$dir" "${PORT[$name]}" "
    proxy_http_version 1.1;
    proxy_read_timeout 10m;
    proxy_cache pkg;
    proxy_cache_lock on;
    proxy_cache_lock_timeout 10m;
    proxy_cache_lock_age 10m;
    proxy_ignore_headers Cache-Control Expires Set-Cookie Vary;
    # Readiness probe that takes nothing from upstream (config.json would be cached by it).
    location = /-/ready { return 200; }
    location /dl/ {
      proxy_pass http://cargo_dl/;
      proxy_set_header Connection \"\";
      proxy_set_header Host $dl;
      proxy_cache_key \$uri;
      proxy_cache_valid 200 7d;
    }
    location = /config.json {
      proxy_pass http://cargo_index;
      proxy_set_header Connection \"\";
      proxy_set_header Host $idx;
      proxy_set_header Accept-Encoding \"\";
      proxy_cache_key \$uri;
      proxy_cache_valid 200 5m;
      sub_filter_types application/json;
      sub_filter_once off;
      sub_filter '${URL[cargo-dl-meter]}' '${URL[nginx-cache]}/dl';
    }
    location / {
      proxy_pass http://cargo_index;
      proxy_set_header Connection \"\";
      proxy_set_header Host $idx;
      proxy_cache_key \$uri;
      proxy_cache_valid 200 5m;
    }" "upstream cargo_index { server $idx; keepalive 32; }
  upstream cargo_dl { server $dl; keepalive 32; }
  proxy_cache_path $dir/cache levels=1:2 keys_zone=pkg:16m max_size=16g inactive=7d use_temp_path=off;"
      start_nginx "$name" "$dir"
      wait_http "${URL[$name]}/-/ready" "${PIDS[$name]}" 60 || die "$name did not start (logs in $dir)"
      ;;
    direct)
      [ "$(http_code "${URL[cargo-index-meter]}/config.json")" = 200 ] || die "the cargo index meter does not answer"
      ;;
    *) die "unknown cargo system $name" ;;
  esac
}

# cargo_client SYSTEM TAG — `cargo fetch` of the generated consumer in a new directory with a new,
# empty CARGO_HOME (no lockfile: cargo resolves through the index); writes
# "$RUN/clients/TAG.{wall,count,rc}" (count: .crate files downloaded) and the output to $OUT/raw/TAG.log.
cargo_client() {
  local sys=$1 tag=$2 dir=$RUN/clients/$2 t0 rc=0
  rm -rf "$dir"
  mkdir -p "$dir/home"
  cp -r "$CARGO_FIX/consumer-gen" "$dir/project"
  sed "s|@PROXY_URL@|$(cargo_index_url "$sys")|" "$dir/project/.cargo/config.toml.template" \
    >"$dir/project/.cargo/config.toml"
  t0=$EPOCHREALTIME
  # No cargo configuration from this machine: a new CARGO_HOME and no CARGO_* variables.
  # shellcheck disable=SC2046 # one word per variable to unset
  (cd "$dir/project" && env $(env | sed -n 's/^\(CARGO_[A-Z0-9_]*\)=.*/-u \1/p') CARGO_HOME="$dir/home" \
    timeout "$PKG_CLIENT_TIMEOUT" cargo fetch) >"$OUT/raw/$tag.log" 2>&1 || rc=$?
  calc "$EPOCHREALTIME - $t0" >"$RUN/clients/$tag.wall"
  echo "$rc" >"$RUN/clients/$tag.rc"
  find "$dir/home/registry/cache" -name '*.crate' 2>/dev/null | wc -l >"$RUN/clients/$tag.count"
  rm -rf "$dir"
}

cargo_note_cmds() {
  note_cmd "# BR (cargo, $BR_EXPECTED crates; every system fresh before the cold runs; each client a new directory and an empty CARGO_HOME):"
  note_cmd "CARGO_TARGET_DIR=$BR_FIXTURE_TARGET scripts/lab/make-cargo-fixtures.sh $CARGO_FIX $BR_CRATES   # cargo package of every crate, offline, against a local registry of those before it"
  note_cmd "DEPPROXY_TEST_DIR=$PKG_DIR SPARSE_DL_URL=${URL[cargo-dl-meter]} scripts/lab/start-sparse-registry.sh ${PORT[cargo-index]} ${PORT[cargo-dl]} $CARGO_FIX   # index + download servers; config.json's dl = the dl meter"
  note_cmd "sed 's|@PROXY_URL@|\$INDEX|' $CARGO_FIX/consumer-gen/.cargo/config.toml.template > .cargo/config.toml; CARGO_HOME=\$(mktemp -d) cargo fetch   # cold, then warm; \$INDEX: depproxy $(cargo_index_url depproxy), nginx $(cargo_index_url nginx-cache), direct $(cargo_index_url direct)"
  note_cmd "# BR herd: $BR_CLIENTS × the cargo fetch above at once on a fresh system; upstream requests/bytes from the meters (index + dl)"
}

scenario_BR() { cargo_note_cmds; pkg_scenario BR cargo; }
