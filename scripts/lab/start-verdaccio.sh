#!/usr/bin/env bash
# Usage: scripts/lab/start-verdaccio.sh PORT [STORAGE_DIR]
#
# Starts Verdaccio (an npm registry server; installed by scripts/install-test-deps.sh into
# $VERDACCIO_HOME, default $HOME/.cache/depproxy/verdaccio) in the background on 127.0.0.1:PORT as
# an origin registry: packages in STORAGE_DIR, NO uplinks (nothing is fetched from anywhere), no
# web UI, no audit middleware. Anyone may read; a registered user may publish. Files
# (T=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}):
#   T/verdaccio-PORT/            default STORAGE_DIR
#   T/verdaccio-PORT.yaml        generated config
#   T/verdaccio-PORT.htpasswd    its users
#   T/verdaccio-PORT.log         JSON lines (pino), level http: one line per request on arrival
#                                ({"req":{"method":"GET","url":"/dp-left-pad",...},"msg":"... requested 'GET /dp-left-pad'"}),
#                                then the outcome (logged twice by Verdaccio: do not count those);
#                                count with scripts/lab/count-upstream.py --format verdaccio
#   T/verdaccio-PORT.out         stdout+stderr (startup warnings)
#   T/verdaccio-PORT.npmrc       an npm userconfig that publishes to it: registry= and
#                                //127.0.0.1:PORT/:_authToken=… of the user dp-publisher
#   T/verdaccio-PORT.pid
# Waits (max 30 s) until GET /-/ping answers 200, then logs dp-publisher in (registering it the
# first time). No-op if already running from that pid file.
# Stop with scripts/lab/stop-verdaccio.sh PORT.
set -euo pipefail
port=${1:?usage: start-verdaccio.sh PORT [STORAGE_DIR]}
T=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}
storage=${2:-$T/verdaccio-$port}
home=${VERDACCIO_HOME:-$HOME/.cache/depproxy/verdaccio}
bin=$home/node_modules/.bin/verdaccio
conf=$T/verdaccio-$port.yaml log=$T/verdaccio-$port.log out=$T/verdaccio-$port.out
pidf=$T/verdaccio-$port.pid htpasswd=$T/verdaccio-$port.htpasswd npmrc=$T/verdaccio-$port.npmrc
url=http://127.0.0.1:$port
user=dp-publisher password=dp-publisher-pass
[ -x "$bin" ] || { echo "$bin is missing: run scripts/install-test-deps.sh" >&2; exit 1; }
mkdir -p "$T" "$storage"

# Verdaccio sets its process title to "verdaccio".
alive() { grep -qa verdaccio "/proc/$1/cmdline" 2>/dev/null; }
up() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/-/ping")" = 200 ]; }

# A token for dp-publisher: register it (201 with a token), or when it exists already (409), log in
# with Basic credentials (Verdaccio only authenticates a PUT whose Authorization names the user).
login() {
  local body=$T/verdaccio-$port.login.json status
  local data="{\"name\":\"$user\",\"password\":\"$password\"}"
  local target="$url/-/user/org.couchdb.user:$user"
  status=$(curl -s -o "$body" -w '%{http_code}' -X PUT -H 'content-type: application/json' -d "$data" "$target")
  if [ "$status" = 409 ]; then
    status=$(curl -s -o "$body" -w '%{http_code}' -X PUT -u "$user:$password" \
      -H 'content-type: application/json' -d "$data" "$target")
  fi
  local token
  token=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("token") or "")' "$body" 2>/dev/null || true)
  if [ "$status" != 201 ] || [ -z "$token" ]; then
    echo "verdaccio on port $port: logging $user in answered $status: $(cat "$body")" >&2
    return 1
  fi
  printf 'registry=%s/\n//127.0.0.1:%s/:_authToken=%s\n' "$url" "$port" "$token" > "$npmrc"
  rm -f "$body"
}

if [ -f "$pidf" ] && alive "$(cat "$pidf")"; then
  if up; then echo "verdaccio already running on 127.0.0.1:$port (pid $(cat "$pidf"))"; exit 0; fi
  echo "pid $(cat "$pidf") alive but $url/-/ping not answering 200" >&2; exit 1
fi
rm -f "$pidf"
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "127.0.0.1:$port is already in use by another process" >&2; exit 1
fi
touch "$htpasswd"

cat > "$conf" <<YAML
storage: $(realpath "$storage")
auth:
  htpasswd:
    file: $htpasswd
    algorithm: bcrypt
    rounds: 4
# The origin: nothing is proxied from anywhere.
uplinks: {}
packages:
  '@*/*':
    access: \$all
    publish: \$authenticated
    unpublish: \$authenticated
  '**':
    access: \$all
    publish: \$authenticated
    unpublish: \$authenticated
web:
  enabled: false
server:
  keepAliveTimeout: 60
# Tests publish many packages at once.
userRateLimit:
  windowMs: 1000
  max: 10000
max_body_size: 50mb
listen: 127.0.0.1:$port
log:
  type: file
  path: $log
  format: json
  level: http
YAML

# Node 20 works with 6.8.0; it warns that it recommends 22 (into .out).
setsid nohup "$bin" --config "$conf" >>"$out" 2>&1 </dev/null &
echo $! > "$pidf"
for _ in $(seq 120); do
  if up; then
    if ! login; then kill "$(cat "$pidf")"; rm -f "$pidf"; exit 1; fi
    echo "verdaccio on $url (pid $(cat "$pidf"), storage $storage, log $log, npmrc $npmrc)"
    exit 0
  fi
  # Not `alive`: until the child has exec'd, its command line is still this script's.
  kill -0 "$(cat "$pidf")" 2>/dev/null || break
  sleep 0.25
done
echo "verdaccio on port $port failed to start; output tail:" >&2
tail -n 20 "$out" "$log" >&2 2>/dev/null || true
kill "$(cat "$pidf")" 2>/dev/null || true
rm -f "$pidf"
exit 1
