# BN (npm) and BP (pip): whole installs of a generated project of BN_PACKAGES npm packages /
# BP_PROJECTS Python projects through depproxy and its package peers. Sourced by run.sh.
#
# Upstreams (scripts/lab/): Verdaccio with the generated packages published (origin, no uplinks)
# and pypiserver serving the generated wheels. In front of each, a "meter" nginx that only passes
# requests through (no cache, no buffering) and logs method, path, status and body bytes of every
# response: every system's upstream URL is a meter, so upstream requests and bytes are counted the
# same way for all of them (the upstreams' own logs do not give response sizes). The meter asks
# the origin for identity encoding, so every response has a Content-Length and the byte counts
# are exact and repeatable.
#
# Systems (each fresh — empty data or cache directory — for every cold measurement):
#   depproxy     [[upstream]] format npm / pypi → the meters; groups js (/npm/js/) and python
#                (/pypi/python/simple/)
#   verdaccio    (BN) a second Verdaccio, uplink = the npm meter, maxage 5m, tarballs cached
#   devpi        (BP) devpi-server with a mirror index root/lab, mirror_url = the pypi meter's /simple/
#   nginx-cache  proxy_cache: npm packuments 5 min (keyed with Accept), tarballs 7 d, packument
#                tarball URLs rewritten to nginx with sub_filter (upstream asked for identity
#                encoding); PyPI pages 5 min, files 7 d (pypiserver's links are host-relative);
#                proxy_cache_lock on

BN_PACKAGES=${BN_PACKAGES:-220}
BP_PROJECTS=${BP_PROJECTS:-210}
BN_CLIENTS=${BN_CLIENTS:-8}
BP_CLIENTS=${BP_CLIENTS:-8}
PKG_CLIENT_TIMEOUT=${PKG_CLIENT_TIMEOUT:-600}   # seconds: a client still running then is killed (and noted)
PKG_DIR=$BENCH_DIR/pkg
PKG_PY=$REPO/bench/lib/pkgbench.py
VERDACCIO_HOME=${VERDACCIO_HOME:-$HOME/.cache/depproxy/verdaccio}
PYPI_LAB_VENV=${PYPI_LAB_VENV:-$HOME/.cache/depproxy/pypiserver-venv}
DEVPI_VENV=${DEVPI_VENV:-$HOME/.cache/depproxy/devpi-venv}
DEVPI_SERVER_VERSION=6.20.3
DEVPI_CLIENT_VERSION=7.3.0

PORT[npm-up]=$((PORT_BASE + 21))
PORT[npm-meter]=$((PORT_BASE + 22))
PORT[pypi-up]=$((PORT_BASE + 23))
PORT[pypi-meter]=$((PORT_BASE + 24))
PORT[verdaccio]=$((PORT_BASE + 25))
PORT[devpi]=$((PORT_BASE + 26))
for _name in npm-up npm-meter pypi-up pypi-meter verdaccio devpi; do URL[$_name]=http://127.0.0.1:${PORT[$_name]}; done
METER_LOG=$PKG_DIR/meter-access.log

# The systems each scenario runs: SYSTEMS when given, else all that speak the format.
pkg_systems() {
  local format=$1 s out=()
  local all="depproxy depproxy-ref verdaccio nginx-cache"
  [ "$format" != pypi ] || all="depproxy depproxy-ref devpi nginx-cache"
  case $format in cargo | maven | go) all="depproxy depproxy-ref nginx-cache direct" ;; esac
  if [ -n "${SYSTEMS_GIVEN:-}" ]; then
    for s in "${SYSTEMS[@]}"; do [[ " $all " == *" $s "* ]] && out+=("$s"); done
  else
    for s in $all; do
      [ "$s" = depproxy-ref ] && [[ " ${SYSTEMS[*]} " != *" depproxy-ref "* ]] && continue
      out+=("$s")
    done
  fi
  echo "${out[*]}"
}

# ---------------------------------------------------------------- tools

ensure_pkg_tools() {
  local missing=()
  command -v npm >/dev/null || missing+=(npm)
  command -v node >/dev/null || missing+=(nodejs)
  if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
  if [ ! -x "$VERDACCIO_HOME/node_modules/.bin/verdaccio" ] || [ ! -x "$PYPI_LAB_VENV/bin/pypi-server" ]; then
    log "Verdaccio or pypiserver missing: scripts/install-test-deps.sh"
    "$REPO/scripts/install-test-deps.sh" >&2
  fi
  if wants BP && [ ! -x "$DEVPI_VENV/bin/devpi-server" ]; then
    log "installing devpi-server $DEVPI_SERVER_VERSION + devpi-client $DEVPI_CLIENT_VERSION into $DEVPI_VENV"
    python3 -m venv "$DEVPI_VENV"
    "$DEVPI_VENV/bin/pip" install -q --disable-pip-version-check "devpi-server==$DEVPI_SERVER_VERSION" \
      "devpi-client==$DEVPI_CLIENT_VERSION" >&2
  fi
}

pkg_versions() {
  local v=""
  v+="node=$(node --version)|npm=$(npm --version)|pip=$(python3 -m pip --version | cut -d' ' -f1-2)"
  v+="|Verdaccio=$("$VERDACCIO_HOME/node_modules/.bin/verdaccio" --version 2>/dev/null)"
  v+="|pypiserver=$("$PYPI_LAB_VENV/bin/pypi-server" --version 2>/dev/null)"
  if [ -x "$DEVPI_VENV/bin/devpi-server" ]; then v+="|devpi-server=$("$DEVPI_VENV/bin/devpi-server" --version 2>/dev/null)"; fi
  if wants BR; then v+="|cargo=$(cargo --version | cut -d' ' -f2)"; fi
  v+=$(mg_versions)
  echo "$v"
}

# ---------------------------------------------------------------- upstreams and meters

meter_server() {
  local port=$1 up=$2
  cat <<EOF
  upstream ${3}_up { server ${up#http://}; keepalive 32; }
  server {
    listen 127.0.0.1:$port;
    access_log $METER_LOG meter;
    location / {
      proxy_pass http://${3}_up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      # Identity encoding from the origin: Verdaccio gzips even tarballs for a client that accepts
      # it, chunked, and the chunk framing (counted in \$body_bytes_sent) varies from run to run.
      proxy_set_header Accept-Encoding "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 10m;
    }
  }
EOF
}

start_meters() {
  local dir=$RUN/meter user=""
  [ "$(id -u)" = 0 ] && user="user root root;"
  rm -rf "$dir"
  mkdir -p "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
$user
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  client_max_body_size 100m;
  log_format meter '\$msec \$server_port \$request_method \$request_uri \$status \$body_bytes_sent "\$http_user_agent"';
$(wants BN && meter_server "${PORT[npm-meter]}" "${URL[npm-up]}" npm)
$(wants BP && meter_server "${PORT[pypi-meter]}" "${URL[pypi-up]}" pypi)
$(wants BR && cargo_meter_servers)
$(mg_meter_servers)
}
EOF
  start_nginx meter "$dir"
  if wants BN; then wait_http "${URL[npm-meter]}/-/ping" "${PIDS[meter]}" || die "npm meter did not start ($dir)"; fi
  if wants BP; then wait_http "${URL[pypi-meter]}/simple/" "${PIDS[meter]}" || die "pypi meter did not start ($dir)"; fi
  if wants BR; then wait_http "${URL[cargo-index-meter]}/config.json" "${PIDS[meter]}" || die "cargo meter did not start ($dir)"; fi
  mg_meters_ready
}

meter_lines() { if [ -f "$METER_LOG" ]; then wc -l <"$METER_LOG"; else echo 0; fi; }

# meter_since LINE PORT — JSON {requests, bytes, kinds...} of the meter on PORT (PORT,PORT: several) after LINE.
meter_since() { python3 "$PKG_PY" meter-count "$METER_LOG" "$1" "$2"; }

# meter_settle — until the meter log stops growing for 1 s (max 30 s).
meter_settle() {
  local last now stable=0
  last=$(meter_lines)
  for _ in $(seq 120); do
    sleep 0.25
    now=$(meter_lines)
    if [ "$now" = "$last" ]; then stable=$((stable + 1)); else stable=0; fi
    last=$now
    [ "$stable" -ge 4 ] && return 0
  done
}

pkg_lab() { DEPPROXY_TEST_DIR=$PKG_DIR VERDACCIO_HOME=$VERDACCIO_HOME PYPI_LAB_VENV=$PYPI_LAB_VENV "$@"; }

stop_pkg_upstreams() {
  if [ "${NPM_UP_STARTED:-0}" = 1 ]; then pkg_lab "$REPO/scripts/lab/stop-verdaccio.sh" "${PORT[npm-up]}" >&2 || true; fi
  if [ "${PYPI_UP_STARTED:-0}" = 1 ]; then pkg_lab "$REPO/scripts/lab/stop-pypiserver.sh" "${PORT[pypi-up]}" >&2 || true; fi
  NPM_UP_STARTED=0 PYPI_UP_STARTED=0
  stop_cargo_upstreams
  stop_mg_upstreams
}

# The pids of the upstreams (for the load sampler: not "other work").
pkg_upstream_pids() {
  local f
  for f in "$PKG_DIR/verdaccio-${PORT[npm-up]}.pid" "$PKG_DIR/pypiserver-${PORT[pypi-up]}.pid"; do
    [ -f "$f" ] && cat "$f"
  done
  cargo_upstream_pids
  mg_upstream_pids
}

# Fixtures (generated once, reused), upstreams with them, the meters, the npm lockfile.
prepare_pkg_data() {
  mkdir -p "$PKG_DIR"
  printf 'fund=false\naudit=false\nupdate-notifier=false\nloglevel=warn\n' >"$PKG_DIR/npmrc"
  if wants BN; then
    NPM_FIX=$PKG_DIR/npm-$BN_PACKAGES
    python3 "$PKG_PY" npm-fixture "$NPM_FIX" "$BN_PACKAGES"
    # The storage belongs to one fixture (its integrity values): keyed by the fixture's stamp.
    local storage
    storage=$PKG_DIR/verdaccio-storage-$(md5sum <"$NPM_FIX/stamp" | cut -c1-8)
    pkg_lab "$REPO/scripts/lab/start-verdaccio.sh" "${PORT[npm-up]}" "$storage" >&2
    NPM_UP_STARTED=1
    python3 "$PKG_PY" npm-publish "$NPM_FIX" "${URL[npm-up]}" "$PKG_DIR/verdaccio-${PORT[npm-up]}.npmrc"
    BN_EXPECTED=$(python3 "$PKG_PY" npm-project "$NPM_FIX" "$NPM_FIX/project")
  fi
  if wants BP; then
    PIP_FIX=$PKG_DIR/pip-$BP_PROJECTS
    python3 "$PKG_PY" pip-fixture "$PIP_FIX" "$BP_PROJECTS"
    pkg_lab "$REPO/scripts/lab/start-pypiserver.sh" "${PORT[pypi-up]}" "$PIP_FIX/packages" >&2
    PYPI_UP_STARTED=1
    BP_EXPECTED=$BP_PROJECTS
  fi
  if wants BR; then prepare_cargo_data; fi
  if wants BM; then prepare_maven_data; fi
  if wants BG; then prepare_go_data; fi
  start_meters
  if wants BN; then
    # package-lock.json resolved against the npm meter (npm ci fetches "resolved" as written; each
    # system gets a copy with the URLs moved to it).
    local lock=$NPM_FIX/project/package-lock.json stamp
    stamp="$(cat "$NPM_FIX/stamp") ${URL[npm-meter]}"
    if [ ! -s "$lock" ] || [ "$(cat "$lock.stamp" 2>/dev/null)" != "$stamp" ]; then
      log "BN: package-lock.json against ${URL[npm-meter]}"
      rm -f "$lock"
      local cache
      cache=$(mktemp -d "$RUN/npm-cache.XXXX")
      (cd "$NPM_FIX/project" && npm install --userconfig "$PKG_DIR/npmrc" --package-lock-only \
        --registry "${URL[npm-meter]}/" --cache "$cache" >&2)
      rm -rf "$cache"
      echo "$stamp" >"$lock.stamp"
    fi
  fi
  if wants BP; then
    prepare_devpi_template
  fi
}

# ---------------------------------------------------------------- systems

# The registry / index URL a client is given for SYSTEM.
npm_registry() {
  case $1 in
    depproxy | depproxy-ref) echo "${URL[$1]}/npm/js/" ;;
    *) echo "${URL[$1]}/" ;;
  esac
}

pip_index() {
  case $1 in
    depproxy | depproxy-ref) echo "${URL[$1]}/pypi/python/simple/" ;;
    devpi) echo "${URL[devpi]}/root/lab/+simple/" ;;
    *) echo "${URL[$1]}/simple/" ;;
  esac
}

# No files_url: pypiserver's links name its own host (root-relative /packages/...).
depproxy_pkg_toml() {
  cat <<EOF
[[upstream]]
name = "npm-lab"
format = "npm"
url = "${URL[npm-meter]}"

[[group]]
path = "js"
upstream = "npm-lab"
format = "npm"

[[upstream]]
name = "pypi-lab"
format = "pypi"
url = "${URL[pypi-meter]}"

[[group]]
path = "python"
upstream = "pypi-lab"
format = "pypi"
EOF
}

verdaccio_proxy_config() {
  local dir=$1
  cat <<EOF
storage: $dir/storage
auth:
  htpasswd:
    file: $dir/htpasswd
    max_users: -1
uplinks:
  up:
    url: ${URL[npm-meter]}/
    maxage: 5m
    timeout: 60s
    cache: true
packages:
  '@*/*':
    access: \$all
    proxy: up
  '**':
    access: \$all
    proxy: up
web:
  enabled: false
server:
  keepAliveTimeout: 60
listen: 127.0.0.1:${PORT[verdaccio]}
log:
  type: stdout
  format: pretty
  level: warn
EOF
}

# devpi: one server directory initialised with the mirror index, copied for every fresh start.
prepare_devpi_template() {
  local tpl=$PKG_DIR/devpi-template port=${PORT[devpi]} client
  local options=("mirror_url=${URL[pypi-meter]}/simple/" mirror_cache_expiry=300 mirror_no_project_list=True volatile=False)
  local want="${options[*]} devpi-server $("$DEVPI_VENV/bin/devpi-server" --version)"
  [ "$(cat "$tpl.stamp" 2>/dev/null)" = "$want" ] && return 0
  log "devpi: initialising $tpl (index root/lab, mirror of ${URL[pypi-meter]}/simple/)"
  rm -rf "$tpl" "$tpl.stamp"
  "$DEVPI_VENV/bin/devpi-init" --serverdir "$tpl" --no-root-pypi >&2
  start_bg devpi-init "$RUN/devpi-init.log" "$DEVPI_VENV/bin/devpi-server" --serverdir "$tpl" \
    --host 127.0.0.1 --port "$port"
  wait_http "${URL[devpi]}/+api" "${PIDS[devpi-init]}" 60 || die "devpi-server did not start (see $RUN/devpi-init.log)"
  client=$RUN/devpi-client
  rm -rf "$client"
  "$DEVPI_VENV/bin/devpi" --clientdir "$client" use "${URL[devpi]}" >&2
  "$DEVPI_VENV/bin/devpi" --clientdir "$client" login root --password '' >&2
  # mirror_no_project_list: no fetch of the upstream's whole /simple/ listing to learn which
  # projects exist (devpi's documented setting for upstreams whose listing is late or absent;
  # with the list, concurrent first requests answered "project does not exist" while it loaded).
  "$DEVPI_VENV/bin/devpi" --clientdir "$client" index -c root/lab type=mirror "${options[@]}" >&2
  stop_bg devpi-init
  echo "$want" >"$tpl.stamp"
}

# pkg_proxy_common METER — nginx-cache's proxy settings towards a meter (Host: the meter's, as a
# client of that registry would send).
pkg_proxy_common() {
  cat <<EOF
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host ${URL[$1]#http://};
    proxy_read_timeout 10m;
EOF
}

# start_pkg_system NAME FORMAT — fresh start (empty cache) of NAME for FORMAT (npm, pypi, cargo, maven, go).
start_pkg_system() {
  local name=$1 format=$2 dir=$RUN/$1 ready
  stop_system "$name"
  rm -rf "$dir"
  mkdir -p "$dir"
  sync
  if [ "$format" = cargo ]; then start_cargo_system "$name"; return; fi
  if [ "$format" = maven ] || [ "$format" = go ]; then start_mg_system "$name" "$format"; return; fi
  case $name in
    depproxy | depproxy-ref)
      local binary=$DEPPROXY_BIN
      [ "$name" = depproxy ] || binary=$DEPPROXY_REF_BIN
      depproxy_pkg_toml >"$dir/depproxy.toml"
      start_bg "$name" "$dir/depproxy.log" "$binary" serve --listen "127.0.0.1:${PORT[$name]}" \
        --admin-listen "127.0.0.1:$((PORT[$name] + 100))" --data-dir "$dir/data" --config "$dir/depproxy.toml"
      ready=${URL[$name]}/healthz
      ;;
    verdaccio)
      verdaccio_proxy_config "$dir" >"$dir/config.yaml"
      start_bg "$name" "$dir/verdaccio.log" "$VERDACCIO_HOME/node_modules/.bin/verdaccio" --config "$dir/config.yaml"
      ready=${URL[$name]}/-/ping
      ;;
    devpi)
      cp -a "$PKG_DIR/devpi-template" "$dir/server"
      start_bg "$name" "$dir/devpi.log" "$DEVPI_VENV/bin/devpi-server" --serverdir "$dir/server" \
        --host 127.0.0.1 --port "${PORT[$name]}"
      ready=${URL[$name]}/+api
      ;;
    nginx-cache)
      local body extra
      # shellcheck disable=SC2016 # nginx variables
      if [ "$format" = npm ]; then
        extra="$(upstream_block "${URL[npm-meter]}") proxy_cache_path $dir/cache levels=1:2 keys_zone=pkg:16m max_size=16g inactive=7d use_temp_path=off;"
        body="$(pkg_proxy_common npm-meter)
    proxy_cache pkg;
    proxy_cache_lock on;
    proxy_cache_lock_timeout 10m;
    proxy_cache_lock_age 10m;
    proxy_ignore_headers Cache-Control Expires Set-Cookie Vary;
    location ~ \"^/.+/-/[^/]+\\.tgz\$\" {
      proxy_pass http://up;
      proxy_cache_key \$uri;
      proxy_cache_valid 200 7d;
    }
    location / {
      proxy_pass http://up;
      proxy_cache_key \$request_uri\$http_accept;
      proxy_cache_valid 200 5m;
      # A proxy_set_header here replaces the server level's: all three again.
      proxy_set_header Connection \"\";
      proxy_set_header Host ${URL[npm-meter]#http://};
      proxy_set_header Accept-Encoding \"\";
      sub_filter_types application/json application/vnd.npm.install-v1+json;
      sub_filter_once off;
      sub_filter '${URL[npm-meter]}/' '${URL[nginx-cache]}/';
    }"
        ready=${URL[$name]}/-/ping
      else
        extra="$(upstream_block "${URL[pypi-meter]}") proxy_cache_path $dir/cache levels=1:2 keys_zone=pkg:16m max_size=16g inactive=7d use_temp_path=off;"
        body="$(pkg_proxy_common pypi-meter)
    proxy_cache pkg;
    proxy_cache_lock on;
    proxy_cache_lock_timeout 10m;
    proxy_cache_lock_age 10m;
    proxy_ignore_headers Cache-Control Expires Set-Cookie Vary;
    location /packages/ {
      proxy_pass http://up;
      proxy_cache_key \$uri;
      proxy_cache_valid 200 7d;
    }
    location / {
      proxy_pass http://up;
      proxy_cache_key \$request_uri\$http_accept;
      proxy_cache_valid 200 5m;
    }"
        ready=${URL[$name]}/simple/
      fi
      nginx_conf "$dir" "${PORT[$name]}" "$body" "$extra"
      start_nginx "$name" "$dir"
      ;;
    *) die "unknown package system $name" ;;
  esac
  wait_http "$ready" "${PIDS[$name]}" 60 || die "$name did not start (logs in $dir)"
}

# ---------------------------------------------------------------- clients

# npm_client SYSTEM MODE TAG — one install (MODE install: package.json only; ci: with the
# lockfile moved to SYSTEM) in a new directory with an empty npm cache; writes
# "$RUN/clients/TAG.{wall,count,rc}" and the output to $OUT/raw/TAG.log.
npm_client() {
  local sys=$1 mode=$2 tag=$3 dir=$RUN/clients/$3 t0 rc=0
  rm -rf "$dir"
  mkdir -p "$dir/project" "$dir/cache"
  cp "$NPM_FIX/project/package.json" "$dir/project/"
  if [ "$mode" = ci ]; then
    python3 "$PKG_PY" npm-lock-for "$NPM_FIX/project/package-lock.json" "${URL[npm-meter]}/" \
      "$(npm_registry "$sys")" >"$dir/project/package-lock.json"
  fi
  t0=$EPOCHREALTIME
  # No npm configuration from this machine: --userconfig, and no npm_config_* variables.
  # shellcheck disable=SC2046 # one word per variable to unset
  (cd "$dir/project" && env $(env | sed -n 's/^\([Nn][Pp][Mm]_[Cc][Oo][Nn][Ff][Ii][Gg]_[^=]*\)=.*/-u \1/p') \
    timeout "$PKG_CLIENT_TIMEOUT" npm "$mode" --userconfig "$PKG_DIR/npmrc" --prefer-online --registry "$(npm_registry "$sys")" \
    --cache "$dir/cache") >"$OUT/raw/$tag.log" 2>&1 || rc=$?
  calc "$EPOCHREALTIME - $t0" >"$RUN/clients/$tag.wall"
  echo "$rc" >"$RUN/clients/$tag.rc"
  python3 "$PKG_PY" npm-count "$dir/project" >"$RUN/clients/$tag.count"
  rm -rf "$dir"
}

# pip_client SYSTEM TAG — pip install --target (new directory) with no pip cache.
pip_client() {
  local sys=$1 tag=$2 dir=$RUN/clients/$2 t0 rc=0
  rm -rf "$dir"
  mkdir -p "$dir"
  t0=$EPOCHREALTIME
  # No pip configuration from this machine (files or PIP_* variables, e.g. PIP_FIND_LINKS).
  # shellcheck disable=SC2046 # one word per variable to unset
  env $(env | sed -n 's/^\(PIP_[A-Z_]*\)=.*/-u \1/p') PIP_CONFIG_FILE=/dev/null \
    timeout "$PKG_CLIENT_TIMEOUT" python3 -m pip install --no-cache-dir --disable-pip-version-check --no-input \
    --target "$dir/site" --index-url "$(pip_index "$sys")" -r "$PIP_FIX/requirements.txt" \
    >"$OUT/raw/$tag.log" 2>&1 || rc=$?
  calc "$EPOCHREALTIME - $t0" >"$RUN/clients/$tag.wall"
  echo "$rc" >"$RUN/clients/$tag.rc"
  python3 "$PKG_PY" pip-count "$dir/site" >"$RUN/clients/$tag.count"
  rm -rf "$dir"
}

# client_ok TAG EXPECTED WHAT — notes a failed install (exit status, packages installed).
client_ok() {
  local tag=$1 expected=$2 what=$3 rc count
  rc=$(cat "$RUN/clients/$tag.rc") count=$(cat "$RUN/clients/$tag.count")
  if [ "$rc" != 0 ] || [ "$count" != "$expected" ]; then
    note "$what: exit $rc, $count of $expected packages installed (log: bench/out/$RUN_ID/raw/$tag.log: $(grep -m1 -iE 'err|error' "$OUT/raw/$tag.log" | cut -c1-200))"
    return 1
  fi
}

# pkg_client FORMAT SYSTEM MODE TAG
pkg_client() {
  case $1 in
    npm) npm_client "$2" "$3" "$4" ;;
    cargo) cargo_client "$2" "$4" ;;
    maven) maven_client "$2" "$4" ;;
    go) go_client "$2" "$4" ;;
    *) pip_client "$2" "$4" ;;
  esac
}

# pkg_herd FORMAT SYSTEM MODE N TAG — N clients at once; prints the slowest wall.
pkg_herd() {
  local format=$1 sys=$2 mode=$3 n=$4 tag=$5 i pids=() slowest=0 w
  for ((i = 1; i <= n; i++)); do
    pkg_client "$format" "$sys" "$mode" "$tag-$i" &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || true; done
  for ((i = 1; i <= n; i++)); do
    w=$(cat "$RUN/clients/$tag-$i.wall")
    slowest=$(python3 -c "print(max($slowest, $w))")
  done
  echo "$slowest"
}

# ---------------------------------------------------------------- BN / BP

# pkg_scenario SC FORMAT — BN (npm), BP (pip), BR (cargo, bench/lib/cargo.sh), BM (maven) or BG
# (go, bench/lib/maven_go.sh): per rep and system, from a fresh start: a cold
# install (upstream requests and bytes counted), a warm one (new client, empty client cache); npm
# also a warm and (fresh start) a cold `npm ci`; then (fresh start) N concurrent cold installs.
pkg_scenario() {
  local sc=$1 format=$2 sys rep line counts single_bytes herd expected n meter_port systems i failed
  read -r -a systems <<<"$(pkg_systems "$format")"
  case $format in
    npm) expected=$BN_EXPECTED n=$BN_CLIENTS meter_port=${PORT[npm-meter]} ;;
    # Both meters: the index's and the downloads'.
    cargo) expected=$BR_EXPECTED n=$BR_CLIENTS meter_port=${PORT[cargo-index-meter]},${PORT[cargo-dl-meter]} ;;
    maven) expected=$BM_EXPECTED n=$BM_CLIENTS meter_port=${PORT[maven-meter]} ;;
    go) expected=$BG_EXPECTED n=$BG_CLIENTS meter_port=${PORT[go-meter]} ;;
    *) expected=$BP_EXPECTED n=$BP_CLIENTS meter_port=${PORT[pypi-meter]} ;;
  esac
  [ "${#systems[@]}" -gt 0 ] || { note "$sc: none of SYSTEMS (${SYSTEMS[*]}) speaks $format"; return 0; }
  log "$sc: installs of $expected packages through ${systems[*]}"
  for ((rep = 1; rep <= REPS; rep++)); do
    for sys in "${systems[@]}"; do
      start_pkg_system "$sys" "$format"
      meter_settle
      line=$(meter_lines)
      pkg_client "$format" "$sys" install "$sc-$sys-$rep-cold"
      client_ok "$sc-$sys-$rep-cold" "$expected" "$sc $sys rep $rep cold install" || true
      record "$sc.cold" "$sys" "$(cat "$RUN/clients/$sc-$sys-$rep-cold.wall")"
      meter_settle
      counts=$(meter_since "$line" "$meter_port")
      single_bytes=$(jget bytes <<<"$counts")
      record "$sc.cold_up_mb" "$sys" "$(calc "$single_bytes / 1e6")"
      record "$sc.cold_up_reqs" "$sys" "$(jget requests <<<"$counts")"
      line=$(meter_lines)
      pkg_client "$format" "$sys" install "$sc-$sys-$rep-warm"
      client_ok "$sc-$sys-$rep-warm" "$expected" "$sc $sys rep $rep warm install" || true
      record "$sc.warm" "$sys" "$(cat "$RUN/clients/$sc-$sys-$rep-warm.wall")"
      meter_settle
      record "$sc.warm_up_reqs" "$sys" "$(meter_since "$line" "$meter_port" | jget requests)"
      if [ "$format" = npm ]; then
        pkg_client npm "$sys" ci "$sc-$sys-$rep-ciwarm"
        client_ok "$sc-$sys-$rep-ciwarm" "$expected" "$sc $sys rep $rep warm npm ci" || true
        record "$sc.ci_warm" "$sys" "$(cat "$RUN/clients/$sc-$sys-$rep-ciwarm.wall")"
        start_pkg_system "$sys" "$format"
        pkg_client npm "$sys" ci "$sc-$sys-$rep-cicold"
        client_ok "$sc-$sys-$rep-cicold" "$expected" "$sc $sys rep $rep cold npm ci" || true
        record "$sc.ci_cold" "$sys" "$(cat "$RUN/clients/$sc-$sys-$rep-cicold.wall")"
      fi
      start_pkg_system "$sys" "$format"
      meter_settle
      line=$(meter_lines)
      herd=$(pkg_herd "$format" "$sys" install "$n" "$sc-$sys-$rep-herd")
      failed=0
      for ((i = 1; i <= n; i++)); do
        client_ok "$sc-$sys-$rep-herd-$i" "$expected" "$sc $sys rep $rep herd client $i" || failed=$((failed + 1))
      done
      record "$sc.herd_slowest" "$sys" "$herd"
      record "$sc.herd_failed" "$sys" "$failed"
      meter_settle
      counts=$(meter_since "$line" "$meter_port")
      record "$sc.herd_up_reqs" "$sys" "$(jget requests <<<"$counts")"
      if [ "$single_bytes" -gt 0 ]; then
        record "$sc.herd_up_x" "$sys" "$(calc "$(jget bytes <<<"$counts") / $single_bytes")"
      else
        note "$sc $sys rep $rep: the cold install fetched nothing upstream, no herd ratio"
      fi
      printf '%s %s %s %s\n' "$sc" "$sys" "$rep" "$counts" >>"$OUT/raw/$sc-herd-meter.txt"
      stop_system "$sys"
    done
  done
}

pkg_note_cmds() {
  local sc=$1
  if [ "$sc" = BN ]; then
    note_cmd "# BN (npm, $BN_EXPECTED packages; every system fresh before the cold runs; each client a new directory and an empty --cache):"
    note_cmd "bench/lib/pkgbench.py npm-fixture $NPM_FIX $BN_PACKAGES && bench/lib/pkgbench.py npm-publish $NPM_FIX ${URL[npm-up]} NPMRC   # the fixture, published to Verdaccio (scripts/lab/start-verdaccio.sh ${PORT[npm-up]})"
    note_cmd "npm install --userconfig $PKG_DIR/npmrc --package-lock-only --registry ${URL[npm-meter]}/   # the lockfile of npm ci, its resolved URLs moved to each system (pkgbench.py npm-lock-for)"
    note_cmd "npm install --userconfig $PKG_DIR/npmrc --prefer-online --registry \$REGISTRY --cache \$(mktemp -d)   # cold, then warm; \$REGISTRY: depproxy $(npm_registry depproxy), others their root"
    note_cmd "npm ci --userconfig $PKG_DIR/npmrc --prefer-online --registry \$REGISTRY --cache \$(mktemp -d)   # warm, then cold after a fresh start"
    note_cmd "# BN herd: $BN_CLIENTS × the npm install above at once on a fresh system; upstream requests/bytes from the meter nginx's log"
  else
    note_cmd "# BP (pip, $BP_EXPECTED projects; every system fresh before the cold runs):"
    note_cmd "bench/lib/pkgbench.py pip-fixture $PIP_FIX $BP_PROJECTS && scripts/lab/start-pypiserver.sh ${PORT[pypi-up]} $PIP_FIX/packages"
    note_cmd "PIP_CONFIG_FILE=/dev/null python3 -m pip install --no-cache-dir --disable-pip-version-check --no-input --target \$(mktemp -d) --index-url \$INDEX -r $PIP_FIX/requirements.txt   # cold, then warm; \$INDEX: depproxy $(pip_index depproxy), devpi $(pip_index devpi), nginx $(pip_index nginx-cache)"
    note_cmd "devpi-init --serverdir DIR --no-root-pypi; devpi index -c root/lab type=mirror mirror_url=${URL[pypi-meter]}/simple/ mirror_cache_expiry=300 mirror_no_project_list=True volatile=False   # devpi-server $DEVPI_SERVER_VERSION, once, copied per fresh start"
    note_cmd "# BP herd: $BP_CLIENTS × the pip install above at once on a fresh system; upstream requests/bytes from the meter nginx's log"
  fi
  note_cmd "nginx (meter, in front of each upstream): proxy_pass, proxy_buffering off, log_format '\$msec \$server_port \$request_method \$request_uri \$status \$body_bytes_sent'   # bench/lib/packages.sh"
}

scenario_BN() { pkg_note_cmds BN; pkg_scenario BN npm; }
scenario_BP() { pkg_note_cmds BP; pkg_scenario BP pypi; }
