# The upstream registry, the throttling proxy and the systems under test. Sourced by run.sh.
#
# Every system gets its own directory $RUN/<name> (config, data/cache, logs), wiped by a cold
# start. URL[<name>] is its base URL. All listen on 127.0.0.1 only.

declare -A PORT=(
  [upstream]=$((PORT_BASE + 1)) [throttle]=$((PORT_BASE + 2))
  [depproxy]=$((PORT_BASE + 10)) [distribution]=$((PORT_BASE + 11))
  [nginx-cache]=$((PORT_BASE + 12)) [nginx-static]=$((PORT_BASE + 13))
  [depproxy-ref]=$((PORT_BASE + 14)) [depproxy-auth]=$((PORT_BASE + 15))
  [depproxy-admin]=$((PORT_BASE + 16))
)
declare -A URL=()
for _name in "${!PORT[@]}"; do URL[$_name]=http://127.0.0.1:${PORT[$_name]}; done
URL[direct]=${URL[upstream]}
UPSTREAM_LOG=$BENCH_DIR/registry-${PORT[upstream]}.log

# ---------------------------------------------------------------- upstream (real registry)

start_upstream() {
  DEPPROXY_TEST_DIR=$BENCH_DIR "$REPO/scripts/lab/start-registry.sh" "${PORT[upstream]}" "$BENCH_DIR/upstream-data" >&2
  UPSTREAM_STARTED=1
}

stop_upstream() {
  if [ "${UPSTREAM_STARTED:-0}" = 1 ]; then
    DEPPROXY_TEST_DIR=$BENCH_DIR "$REPO/scripts/lab/stop-registry.sh" "${PORT[upstream]}" >&2 || true
    UPSTREAM_STARTED=0
  fi
}

upstream_lines() { python3 "$REPO/scripts/lab/count-upstream.py" "$UPSTREAM_LOG" --lines; }

# upstream_since LINE DIGEST — JSON counts of upstream requests for DIGEST after LINE.
upstream_since() {
  python3 "$REPO/scripts/lab/count-upstream.py" "$UPSTREAM_LOG" --since-line "$1" --pattern "blobs/$2\$"
}

# upstream_settle — waits (max 60 s) until the access log stops growing for 2 s: background
# fetches (distribution's storeLocal) show up in the log only when they finish.
upstream_settle() {
  local last now stable=0
  last=$(upstream_lines)
  for _ in $(seq 120); do
    sleep 0.5
    now=$(upstream_lines)
    if [ "$now" = "$last" ]; then stable=$((stable + 1)); else stable=0; fi
    last=$now
    [ "$stable" -ge 4 ] && return 0
  done
}

# ---------------------------------------------------------------- nginx

# nginx_conf DIR PORT SERVER_BODY [HTTP_EXTRA] — writes DIR/nginx.conf. NGINX_CONNS (default
# 8192) is worker_connections per worker; BC raises it for its 11 000 connections.
nginx_conf() {
  local dir=$1 port=$2 body=$3 extra=${4:-} user="" conns=${NGINX_CONNS:-8192}
  [ "$(id -u)" = 0 ] && user="user root root;"
  mkdir -p "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
$user
worker_processes auto;
worker_rlimit_nofile $((conns * 2));
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections $conns; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  $extra
  server {
    listen 127.0.0.1:$port;
$body
  }
}
EOF
}

# start_nginx NAME DIR — nginx in the foreground (daemon off) as our background child.
start_nginx() {
  local name=$1 dir=$2
  nginx -t -q -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' || die "bad nginx config $dir/nginx.conf"
  start_bg "$name" "$dir/stderr.log" nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;'
}

# shellcheck disable=SC2016 # nginx variables, not shell ones
NGINX_PROXY_COMMON='
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    proxy_read_timeout 10m;'

upstream_block() { printf 'upstream up { server %s; keepalive 64; }' "${1#http://}"; }

# start_throttle [RATE] — nginx in front of the upstream registry, every response limited to RATE
# (default $B4_RATE) per request (no temp files, so the limit paces the upstream read too;
# limit_rate is ignored when proxy_buffering is off). lab/hot (the blob B7 warms before its storm)
# is not limited.
start_throttle() {
  local dir=$RUN/throttle rate=${1:-$B4_RATE}
  rm -rf "$dir"
  mkdir -p "$dir"
  nginx_conf "$dir" "${PORT[throttle]}" "$NGINX_PROXY_COMMON
    location / { proxy_pass http://up; proxy_max_temp_file_size 0; limit_rate $rate; }
    location ^~ /v2/lab/hot/ { proxy_pass http://up; }" "$(upstream_block "${URL[upstream]}")"
  start_nginx throttle "$dir"
  wait_http "${URL[throttle]}/v2/" "${PIDS[throttle]}" || die "throttle nginx did not start (see $dir)"
}

nginx_cache_body() {
  local dir=$1
  cat <<EOF
$NGINX_PROXY_COMMON
    proxy_cache_lock on;
    proxy_cache_lock_timeout 10m;
    proxy_cache_lock_age 10m;
    proxy_ignore_headers Cache-Control Expires Set-Cookie;
    location ~ "^/v2/.+/blobs/sha256:[0-9a-f]{64}\$" {
      proxy_pass http://up;
      proxy_cache oci;
      proxy_cache_key \$uri;
      proxy_cache_valid 200 7d;
    }
    location ~ ^/v2/.+/manifests/[^/]+\$ {
      proxy_pass http://up;
      proxy_cache oci;
      proxy_cache_key \$uri\$http_accept;
      proxy_cache_valid 200 5m;
    }
    location / { proxy_pass http://up; }
EOF
}

nginx_static_body() {
  cat <<EOF
    root $STATIC;
    location = /v2/ { default_type application/json; return 200 '{}'; }
    location ~ ^/v2/.+/manifests/ {
      types { }
      default_type application/vnd.oci.image.manifest.v1+json;
    }
    location ~ ^/v2/.+/blobs/ {
      types { }
      default_type application/octet-stream;
    }
    # B4's slow streams: no upstream here, so the server paces them like a throttled upstream would.
    location ^~ /v2/lab/b4/blobs/ {
      types { }
      default_type application/octet-stream;
      limit_rate $B4_RATE;
    }
EOF
}

# ---------------------------------------------------------------- systems under test

# start_system NAME UPSTREAM_URL — fresh (empty cache) start; waits until /v2/ answers 200.
# DEPPROXY_TOML, when set, is written to DIR/depproxy.toml and given to depproxy with --config
# (BC: [server] limits).
start_system() {
  local name=$1 up=$2 dir=$RUN/$1
  stop_system "$name"
  rm -rf "$dir"
  mkdir -p "$dir"
  # The cold scenarios write gigabytes (B4: 200 × 16 MiB per system); without this, the page
  # cache writes back what the previous system left while this one is being measured.
  sync
  case $name in
    depproxy | depproxy-ref)
      local binary=$DEPPROXY_BIN
      [ "$name" = depproxy ] || binary=$DEPPROXY_REF_BIN
      local config=()
      if [ -n "${DEPPROXY_TOML:-}" ]; then
        printf '%s\n' "$DEPPROXY_TOML" >"$dir/depproxy.toml"
        config=(--config "$dir/depproxy.toml")
      fi
      # Each its own admin port (a taken one stops the start): depproxy and depproxy-ref run side by side.
      start_bg "$name" "$dir/depproxy.log" "$binary" serve --listen "127.0.0.1:${PORT[$name]}" \
        --admin-listen "127.0.0.1:$((PORT[$name] + 100))" --data-dir "$dir/data" --upstream "$up" "${config[@]}"
      ;;
    distribution)
      cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  formatter: text
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  cache:
    blobdescriptor: inmemory
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${PORT[$name]}
  secret: depproxy-bench
proxy:
  remoteurl: $up
EOF
      start_bg "$name" "$dir/registry.log" /usr/bin/docker-registry serve "$dir/config.yml"
      ;;
    nginx-cache)
      nginx_conf "$dir" "${PORT[$name]}" "$(nginx_cache_body "$dir")" \
        "$(upstream_block "$up") proxy_cache_path $dir/cache levels=1:2 keys_zone=oci:16m max_size=64g inactive=7d use_temp_path=off;"
      start_nginx "$name" "$dir"
      ;;
    nginx-static)
      nginx_conf "$dir" "${PORT[$name]}" "$(nginx_static_body)"
      start_nginx "$name" "$dir"
      ;;
    *) die "unknown system $name" ;;
  esac
  wait_http "${URL[$name]}/v2/" "${PIDS[$name]}" 30 || die "$name did not start (logs in $dir)"
  if [ "$name" = depproxy ] && [ -n "${PERF:-}" ] && [[ " $PERF " == *" ${SCENARIO:-none} "* ]]; then perf_start "$name"; fi
}

stop_system() {
  perf_stop "$1"
  stop_bg "$1"
}

# PERF="B5 ..." — perf record (cpu-clock, DWARF call graphs) on depproxy during those scenarios;
# $OUT/perf-<scenario>-<n>.data and a text report next to it.
perf_start() {
  PERF_N=$((${PERF_N:-0} + 1))
  PERF_DATA=$OUT/perf-$SCENARIO-$PERF_N.data
  start_bg "perf-$1" "$OUT/perf.log" perf record -e cpu-clock -F "${PERF_FREQ:-499}" \
    --call-graph dwarf,16384 -o "$PERF_DATA" -p "${PIDS[$1]}"
  sleep 0.5
}

perf_stop() {
  local pid=${PIDS[perf-$1]:-}
  [ -n "$pid" ] || return 0
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "PIDS[perf-$1]"
  perf report -i "$PERF_DATA" --stdio --no-children --percent-limit 0.3 --sort dso,symbol -g none \
    2>/dev/null | sed 's/ *$//' | cut -c1-240 >"${PERF_DATA%.data}.txt" || true
  perf report -i "$PERF_DATA" --stdio --children --percent-limit 3 --sort symbol -g none \
    2>/dev/null | sed 's/ *$//' | cut -c1-240 >"${PERF_DATA%.data}-children.txt" || true
}

# system_pid NAME — the main pid (nginx: master; bench.py hwm adds its workers).
system_pid() { echo "${PIDS[$1]}"; }
