# BM (Maven) and BG (Go modules): a whole dependency resolution of a generated project through
# depproxy's maven and go groups and nginx proxy_cache, beside the upstream served straight.
# Sourced by run.sh after packages.sh and cargo.sh (it uses the meters, the clients'
# bookkeeping and pkg_scenario from packages.sh).
#
# Upstreams (scripts/lab/), each behind its own meter nginx (packages.sh: pass-through, logs
# every response's size), so every system's upstream requests and bytes are counted alike:
#   maven  Debian's Maven repository (/usr/share/maven-repo) served as plain files by
#          start-static-index.sh; the project of make-maven-bench-project.sh resolves 184 files
#          from it (maven-core + maven-compat 3.8.7 and maven-dependency-plugin 3.5.0 with their
#          trees). Debian's tree has no checksum sidecars: every .sha1/.md5 Maven asks is a 404.
#   go     the GOPROXY tree of make-go-fixtures.sh OUT BG_MODULES served by start-goproxy.sh;
#          the consumer requires alpha, Beta and every generated module example.com/dp/gen/mNN.
#
# Systems (each fresh — empty cache — for every cold measurement):
#   depproxy     [[upstream]] format maven / go → the meters; groups java (/maven/java/) and
#                golang (/go/golang)
#   nginx-cache  proxy_cache: Maven files 7 d, maven-metadata.xml (and its sidecars) 5 min; Go
#                .info/.mod/.zip 7 d, @v/list, @latest (and anything else) 5 min; 404s (Go: and
#                410s) 1 min, like depproxy's negative_ttl; proxy_cache_lock on
#   direct       no proxy: clients use the meter

BM_CLIENTS=${BM_CLIENTS:-8}
BG_MODULES=${BG_MODULES:-60}
BG_CLIENTS=${BG_CLIENTS:-8}
DEBIAN_MAVEN_REPO=${DEBIAN_MAVEN_REPO:-/usr/share/maven-repo}
BM_READY_PATH=/commons-io/commons-io/2.11.0/commons-io-2.11.0.pom

PORT[maven-up]=$((PORT_BASE + 31))
PORT[maven-meter]=$((PORT_BASE + 32))
PORT[go-up]=$((PORT_BASE + 33))
PORT[go-meter]=$((PORT_BASE + 34))
for _name in maven-up maven-meter go-up go-meter; do URL[$_name]=http://127.0.0.1:${PORT[$_name]}; done

ensure_mg_tools() {
  if ! command -v mvn >/dev/null || ! command -v go >/dev/null \
    || [ ! -d "$DEBIAN_MAVEN_REPO/org/apache/maven/plugins/maven-dependency-plugin/3.5.0" ] \
    || [ ! -d /usr/share/gocode/src/golang.org/x/mod/sumdb ]; then
    log "mvn, go, Debian's maven-dependency-plugin or golang.org/x/mod missing: scripts/install-test-deps.sh"
    "$REPO/scripts/install-test-deps.sh" >&2
  fi
}

mg_versions() {
  local v=""
  if wants BM; then v+="|mvn=$(mvn -v 2>/dev/null | sed -n '1s/\x1b\[[0-9;]*m//g;1p')"; fi
  if wants BG; then v+="|go=$(go version | cut -d' ' -f3-)"; fi
  echo "$v"
}

# The fixtures (generated once, reused while the scripts that make them are unchanged) and the
# upstreams serving them.
prepare_maven_data() {
  MAVEN_FIX=$PKG_DIR/maven-bench
  local stamp
  stamp="$(md5sum <"$REPO/scripts/lab/make-maven-bench-project.sh" | cut -c1-16) $DEBIAN_MAVEN_REPO"
  if [ "$(cat "$MAVEN_FIX/stamp" 2>/dev/null)" != "$stamp" ] || [ ! -s "$MAVEN_FIX/expected-files.txt" ]; then
    log "BM: the Maven project and its expected files (scripts/lab/make-maven-bench-project.sh)"
    rm -rf "$MAVEN_FIX"
    DEBIAN_MAVEN_REPO=$DEBIAN_MAVEN_REPO "$REPO/scripts/lab/make-maven-bench-project.sh" "$MAVEN_FIX" >&2
    echo "$stamp" >"$MAVEN_FIX/stamp"
  fi
  pkg_lab "$REPO/scripts/lab/start-static-index.sh" "${PORT[maven-up]}" "$DEBIAN_MAVEN_REPO" "$BM_READY_PATH" >&2
  MAVEN_UP_STARTED=1
  BM_EXPECTED=$(wc -l <"$MAVEN_FIX/expected-files.txt")
}

prepare_go_data() {
  GO_FIX=$PKG_DIR/go-$BG_MODULES
  local stamp
  stamp="n=$BG_MODULES $(cat "$REPO/scripts/lab/make-go-fixtures.sh" "$REPO"/scripts/lab/gofixtures/*.go | md5sum | cut -c1-16)"
  if [ "$(cat "$GO_FIX/stamp" 2>/dev/null)" != "$stamp" ]; then
    log "BG: $BG_MODULES generated Go modules and their consumer (scripts/lab/make-go-fixtures.sh)"
    "$REPO/scripts/lab/make-go-fixtures.sh" "$GO_FIX" "$BG_MODULES" >&2
    echo "$stamp" >"$GO_FIX/stamp"
  fi
  pkg_lab "$REPO/scripts/lab/start-goproxy.sh" "${PORT[go-up]}" "$GO_FIX" >&2
  GO_UP_STARTED=1
  # alpha, Beta (the version alpha v1.1.0 selects) and every generated module: one .zip each.
  BG_EXPECTED=$((BG_MODULES + 2))
}

stop_mg_upstreams() {
  if [ "${MAVEN_UP_STARTED:-0}" = 1 ]; then pkg_lab "$REPO/scripts/lab/stop-static-index.sh" "${PORT[maven-up]}" >&2 || true; fi
  if [ "${GO_UP_STARTED:-0}" = 1 ]; then pkg_lab "$REPO/scripts/lab/stop-goproxy.sh" "${PORT[go-up]}" >&2 || true; fi
  MAVEN_UP_STARTED=0 GO_UP_STARTED=0
}

mg_upstream_pids() {
  local f
  for f in "$PKG_DIR/static-index-${PORT[maven-up]}.pid" "$PKG_DIR/goproxy-${PORT[go-up]}.pid"; do
    [ -f "$f" ] && cat "$f"
  done
  return 0
}

# The meters' server blocks (inside start_meters' http block).
mg_meter_servers() {
  if wants BM; then meter_server "${PORT[maven-meter]}" "${URL[maven-up]}" maven; fi
  if wants BG; then meter_server "${PORT[go-meter]}" "${URL[go-up]}" goproxy; fi
  return 0
}

mg_meters_ready() {
  if wants BM; then wait_http "${URL[maven-meter]}$BM_READY_PATH" "${PIDS[meter]}" || die "maven meter did not start"; fi
  if wants BG; then wait_http "${URL[go-meter]}/example.com/dp/alpha/@v/list" "${PIDS[meter]}" || die "go meter did not start"; fi
  return 0
}

# The Maven mirror URL (trailing slash) / the GOPROXY a client is given for SYSTEM.
maven_url() {
  case $1 in
    depproxy | depproxy-ref) echo "${URL[$1]}/maven/java/" ;;
    direct) echo "${URL[maven-meter]}/" ;;
    *) echo "${URL[$1]}/" ;;
  esac
}

goproxy_url() {
  case $1 in
    depproxy | depproxy-ref) echo "${URL[$1]}/go/golang" ;;
    direct) echo "${URL[go-meter]}" ;;
    *) echo "${URL[$1]}" ;;
  esac
}

depproxy_mg_toml() {
  if [ "$1" = maven ]; then
    cat <<EOF
[[upstream]]
name = "maven-lab"
format = "maven"
url = "${URL[maven-meter]}"

[[group]]
path = "java"
upstream = "maven-lab"
format = "maven"
EOF
  else
    cat <<EOF
[[upstream]]
name = "go-lab"
format = "go"
url = "${URL[go-meter]}"

[[group]]
path = "golang"
upstream = "go-lab"
format = "go"
EOF
  fi
}

# nginx-cache's locations: immutable files 7 d, documents 5 min, 404s 1 min.
nginx_mg_body() {
  local format=$1 meter
  [ "$format" = maven ] && meter=maven-meter || meter=go-meter
  pkg_proxy_common "$meter"
  # shellcheck disable=SC2016 # nginx variables
  echo '    proxy_cache pkg;
    proxy_cache_lock on;
    proxy_cache_lock_timeout 10m;
    proxy_cache_lock_age 10m;
    proxy_ignore_headers Cache-Control Expires Set-Cookie Vary;
    proxy_cache_key $uri;
    # Readiness probe that takes nothing from upstream.
    location = /-/ready { return 200; }'
  if [ "$format" = maven ]; then
    # shellcheck disable=SC2016
    echo '    location ~ "/maven-metadata\.xml(\.(md5|sha1|sha256|sha512))?$" {
      proxy_pass http://up;
      proxy_cache_valid 200 5m;
      proxy_cache_valid 404 1m;
    }
    location / {
      proxy_pass http://up;
      proxy_cache_valid 200 7d;
      proxy_cache_valid 404 1m;
    }'
  else
    # shellcheck disable=SC2016
    echo '    location ~ "/@v/[^/]+\.(info|mod|zip)$" {
      proxy_pass http://up;
      proxy_cache_valid 200 7d;
      proxy_cache_valid 404 410 1m;
    }
    location / {
      proxy_pass http://up;
      proxy_cache_valid 200 5m;
      proxy_cache_valid 404 410 1m;
    }'
  fi
}

# start_mg_system NAME FORMAT — fresh start (empty cache) of NAME for BM (maven) or BG (go);
# start_pkg_system has stopped and wiped it.
start_mg_system() {
  local name=$1 format=$2 dir=$RUN/$1
  case $name in
    depproxy | depproxy-ref)
      local binary=$DEPPROXY_BIN
      [ "$name" = depproxy ] || binary=$DEPPROXY_REF_BIN
      depproxy_mg_toml "$format" >"$dir/depproxy.toml"
      start_bg "$name" "$dir/depproxy.log" "$binary" serve --listen "127.0.0.1:${PORT[$name]}" \
        --admin-listen "127.0.0.1:$((PORT[$name] + 100))" --data-dir "$dir/data" --config "$dir/depproxy.toml"
      wait_http "${URL[$name]}/healthz" "${PIDS[$name]}" 60 || die "$name did not start (logs in $dir)"
      ;;
    nginx-cache)
      local meter
      [ "$format" = maven ] && meter=maven-meter || meter=go-meter
      nginx_conf "$dir" "${PORT[$name]}" "$(nginx_mg_body "$format")" \
        "$(upstream_block "${URL[$meter]}") proxy_cache_path $dir/cache levels=1:2 keys_zone=pkg:16m max_size=16g inactive=7d use_temp_path=off;"
      start_nginx "$name" "$dir"
      wait_http "${URL[$name]}/-/ready" "${PIDS[$name]}" 60 || die "$name did not start (logs in $dir)"
      ;;
    direct)
      if [ "$format" = maven ]; then
        [ "$(http_code "${URL[maven-meter]}$BM_READY_PATH")" = 200 ] || die "the maven meter does not answer"
      else
        [ "$(http_code "${URL[go-meter]}/example.com/dp/alpha/@v/list")" = 200 ] || die "the go meter does not answer"
      fi
      ;;
    *) die "unknown $format system $name" ;;
  esac
}

# maven_client SYSTEM TAG — dependency:resolve of the bench project with SYSTEM as the mirror of
# everything and a new, empty local repository; writes "$RUN/clients/TAG.{wall,count,rc}" (count:
# how many of the expected files are in the local repository) and the output to $OUT/raw/TAG.log.
maven_client() {
  local sys=$1 tag=$2 dir=$RUN/clients/$2 t0 rc=0 path n=0
  rm -rf "$dir"
  mkdir -p "$dir/project" "$dir/m2"
  cp "$MAVEN_FIX/pom.xml" "$dir/project/"
  sed "s#@PROXY_URL@#$(maven_url "$sys")#" "$MAVEN_FIX/settings.xml.template" >"$dir/settings.xml"
  t0=$EPOCHREALTIME
  # No Maven configuration from this machine: -s (user settings), no ~/.mavenrc, MAVEN_OPTS or MAVEN_ARGS.
  (cd "$dir/project" && env -u MAVEN_OPTS -u MAVEN_ARGS MAVEN_SKIP_RC=1 timeout "$PKG_CLIENT_TIMEOUT" \
    mvn -B -Dstyle.color=never -s "$dir/settings.xml" -Dmaven.repo.local="$dir/m2" dependency:resolve) \
    >"$OUT/raw/$tag.log" 2>&1 || rc=$?
  calc "$EPOCHREALTIME - $t0" >"$RUN/clients/$tag.wall"
  echo "$rc" >"$RUN/clients/$tag.rc"
  while read -r path; do [ -f "$dir/m2/$path" ] && n=$((n + 1)); done <"$MAVEN_FIX/expected-files.txt"
  echo "$n" >"$RUN/clients/$tag.count"
  rm -rf "$dir"
}

# go_client SYSTEM TAG — `go mod download` of the consumer (a copy, no go.sum) with GOPROXY =
# SYSTEM, GOSUMDB=off and a new GOPATH, GOMODCACHE and GOCACHE; count: module .zip files downloaded.
go_client() {
  local sys=$1 tag=$2 dir=$RUN/clients/$2 t0 rc=0
  rm -rf "$dir"
  mkdir -p "$dir"
  cp -r "$GO_FIX/consumer" "$dir/project"
  t0=$EPOCHREALTIME
  # No Go configuration from this machine: GOENV=off and no GO* variables but those set here.
  # shellcheck disable=SC2046 # one word per variable to unset
  (cd "$dir/project" && env $(env | sed -n 's/^\(GO[A-Z0-9_]*\)=.*/-u \1/p') GOENV=off GO111MODULE=on \
    GOPROXY="$(goproxy_url "$sys")" GOSUMDB=off GONOSUMDB= GONOPROXY= GOPRIVATE= GOFLAGS=-mod=mod \
    GOPATH="$dir/gopath" GOMODCACHE="$dir/modcache" GOCACHE="$dir/gocache" \
    timeout "$PKG_CLIENT_TIMEOUT" go mod download) >"$OUT/raw/$tag.log" 2>&1 || rc=$?
  calc "$EPOCHREALTIME - $t0" >"$RUN/clients/$tag.wall"
  echo "$rc" >"$RUN/clients/$tag.rc"
  find "$dir/modcache/cache/download" -name '*.zip' 2>/dev/null | wc -l >"$RUN/clients/$tag.count"
  # The module cache is read-only.
  chmod -R u+w "$dir" 2>/dev/null || true
  rm -rf "$dir"
}

mg_note_cmds() {
  if [ "$1" = BM ]; then
    note_cmd "# BM (Maven, $BM_EXPECTED files; every system fresh before the cold runs; each client a new project directory and an empty local repository):"
    note_cmd "scripts/lab/make-maven-bench-project.sh $MAVEN_FIX   # pom.xml (maven-core, maven-compat 3.8.7, maven-dependency-plugin 3.5.0), settings.xml.template, expected-files.txt"
    note_cmd "DEPPROXY_TEST_DIR=$PKG_DIR scripts/lab/start-static-index.sh ${PORT[maven-up]} $DEBIAN_MAVEN_REPO $BM_READY_PATH   # the upstream: Debian's Maven repository as plain files"
    note_cmd "sed 's#@PROXY_URL@#\$MIRROR#' $MAVEN_FIX/settings.xml.template > settings.xml; MAVEN_SKIP_RC=1 mvn -B -s settings.xml -Dmaven.repo.local=\$(mktemp -d) dependency:resolve   # cold, then warm; \$MIRROR: depproxy $(maven_url depproxy), nginx $(maven_url nginx-cache), direct $(maven_url direct)"
    note_cmd "# BM herd: $BM_CLIENTS × the mvn above at once on a fresh system; upstream requests/bytes from the meter nginx's log"
  else
    note_cmd "# BG (Go modules, $BG_EXPECTED modules; every system fresh before the cold runs; each client a new GOPATH/GOMODCACHE/GOCACHE):"
    note_cmd "scripts/lab/make-go-fixtures.sh $GO_FIX $BG_MODULES   # modules zipped by golang.org/x/mod; consumer/ requires every one"
    note_cmd "DEPPROXY_TEST_DIR=$PKG_DIR scripts/lab/start-goproxy.sh ${PORT[go-up]} $GO_FIX   # the upstream: the GOPROXY tree as plain files"
    note_cmd "cp -r $GO_FIX/consumer p && cd p && GOENV=off GOPROXY=\$GOPROXY GOSUMDB=off GOFLAGS=-mod=mod GOPATH=\$(mktemp -d) GOMODCACHE=\$(mktemp -d) GOCACHE=\$(mktemp -d) go mod download   # cold, then warm; \$GOPROXY: depproxy $(goproxy_url depproxy), nginx $(goproxy_url nginx-cache), direct $(goproxy_url direct)"
    note_cmd "# BG herd: $BG_CLIENTS × the go mod download above at once on a fresh system; upstream requests/bytes from the meter nginx's log"
  fi
}

scenario_BM() { mg_note_cmds BM; pkg_scenario BM maven; }
scenario_BG() { mg_note_cmds BG; pkg_scenario BG go; }
