#!/usr/bin/env bash
# Usage: scripts/test-deb.sh
#
# Builds the Debian package (`cargo deb -p depproxy`), installs it on THIS machine with dpkg, and
# checks it end to end without systemd:
#   - the files are where they belong, the config is a conffile and passes check-config, the
#     system user `depproxy` exists, /var/lib/depproxy belongs to it; a reinstall (the upgrade
#     path of the maintainer scripts) keeps a local edit of the config;
#   - the unit's ExecStart= line is read from /lib/systemd/system/depproxy.service and run as the
#     unit's User=/Group= (setpriv: no new privileges, no capabilities, the unit's Environment=,
#     WorkingDirectory= and UMask=), plus --listen/--upstream/--admin-listen on free loopback
#     ports and a local `distribution` registry as upstream;
#   - a small image pushed to that registry is pulled through it with skopeo, arrives intact, is
#     stored under /var/lib/depproxy (everything there owned by depproxy), and is pulled again
#     from the cache with the upstream stopped; SIGTERM stops the proxy cleanly.
# At exit (success or not) everything started is stopped and the package purged; the user
# `depproxy` is deleted again if this script created it. Exits non-zero on any failure.
#
# Needs root and Debian (dpkg, adduser), docker-registry, skopeo, curl (installed with apt-get
# when missing), and cargo-deb (installed with `cargo install cargo-deb --locked` when missing).
# Refuses to run when a depproxy package is already installed, or /var/lib/depproxy exists.
# The release build is the slow part (~11 min from scratch on 2 cores; seconds when
# $CARGO_TARGET_DIR already holds it).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/depproxy/target}
UNIT=/lib/systemd/system/depproxy.service
CONF=/etc/depproxy/depproxy.toml
STATE=/var/lib/depproxy

t_start=$EPOCHREALTIME
elapsed() { awk "BEGIN{printf \"%.1f\", $EPOCHREALTIME - $1}"; }
step() { printf '\n== %s (at %ss)\n' "$*" "$(elapsed "$t_start")"; }
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# wait_http URL SECONDS PID: until URL answers 200; fails early when process PID has exited.
wait_http() {
  local url=$1 deadline=$((SECONDS + $2)) pid=$3
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)" = 200 ]; do
    kill -0 "$pid" 2>/dev/null || fail "process $pid exited before $url answered"
    [ "$SECONDS" -lt "$deadline" ] || fail "$url did not answer 200 within $2 s"
    sleep 0.2
  done
}

[ "$(id -u)" = 0 ] || fail "needs root: it installs the package with dpkg"
command -v dpkg >/dev/null || fail "needs dpkg (Debian)"
if dpkg-query -W -f='${Status}' depproxy 2>/dev/null | grep -q 'installed'; then
  fail "a depproxy package is already installed; this test would purge it (dpkg --purge depproxy first)"
fi
[ ! -e "$STATE" ] || fail "$STATE exists; this test would delete it on purge (move it away first)"

missing=()
for pair in docker-registry:docker-registry skopeo:skopeo curl:curl setpriv:util-linux; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  step "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

user_existed=0
getent passwd depproxy >/dev/null && user_existed=1
group_existed=0
getent group depproxy >/dev/null && group_existed=1

work=$(mktemp -d /tmp/depproxy-test-deb.XXXXXX)
chmod 755 "$work"
proxy_pid=
registry_pid=
installed=0
cleanup() {
  local status=$?
  set +e
  if [ -n "$proxy_pid" ] && kill -0 "$proxy_pid" 2>/dev/null; then
    kill -KILL "$proxy_pid"
    wait "$proxy_pid" 2>/dev/null
  fi
  if [ -n "$registry_pid" ] && kill -0 "$registry_pid" 2>/dev/null; then
    kill -KILL "$registry_pid"
    wait "$registry_pid" 2>/dev/null
  fi
  if [ "$status" != 0 ]; then
    for log in "$work/depproxy.log" "$work/registry.log" "$work/cargo-deb.log"; do
      [ -s "$log" ] && { echo "--- last lines of $log" >&2; tail -n 30 "$log" >&2; }
    done
  fi
  if [ "$installed" = 1 ]; then
    dpkg --purge depproxy >"$work/purge.log" 2>&1 || { echo "dpkg --purge depproxy failed:" >&2; cat "$work/purge.log" >&2; status=1; }
    [ ! -e "$STATE" ] || { echo "$STATE still exists after purge" >&2; status=1; }
  fi
  if [ "$user_existed" = 0 ] && getent passwd depproxy >/dev/null; then userdel depproxy; fi
  if [ "$group_existed" = 0 ] && getent group depproxy >/dev/null; then groupdel depproxy; fi
  rm -rf "$work"
  if [ "$status" = 0 ]; then
    echo "test-deb: PASS in $(elapsed "$t_start")s"
  else
    echo "test-deb: FAIL (exit $status) after $(elapsed "$t_start")s" >&2
  fi
  exit "$status"
}
trap cleanup EXIT

step "cargo-deb"
if ! cargo deb --version >/dev/null 2>&1; then
  echo "cargo-deb missing: cargo install cargo-deb --locked"
  nice -n 10 cargo install cargo-deb --locked
fi
cargo deb --version

step "cargo deb -p depproxy (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
t=$EPOCHREALTIME
set +e +o pipefail
nice -n 10 cargo deb -p depproxy --locked -o "$work/" 2>&1 | tee "$work/cargo-deb.log" | grep -v '^ *Compiling '
rc=${PIPESTATUS[0]}
set -e -o pipefail
[ "$rc" = 0 ] || fail "cargo deb failed (exit $rc)"
deb=$(find "$work" -maxdepth 1 -name 'depproxy_*.deb' | head -n 1)
[ -n "$deb" ] || fail "no .deb in $work"
echo "built $(basename "$deb") ($(du -h "$deb" | cut -f1)) in $(elapsed "$t")s"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$deb"
conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)
grep -qx "$CONF" <<<"$conffiles" || fail "$CONF is not a conffile (conffiles: $conffiles)"

step "dpkg -i"
installed=1
dpkg -i "$deb"
for file in /usr/bin/depproxy "$CONF" "$UNIT" /usr/share/doc/depproxy/configuration.md \
  /usr/share/doc/depproxy/operations.md; do
  [ -f "$file" ] || fail "$file missing"
done
[ -x /usr/bin/depproxy ] || fail "/usr/bin/depproxy is not executable"
dpkg-query -W -f='${Conffiles}\n' depproxy | grep -q "$CONF" || fail "dpkg does not list $CONF as a conffile"
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd depproxy) || fail "user depproxy missing"
[ "$uid" -lt 1000 ] || fail "depproxy is not a system user (uid $uid)"
[ "$home" = "$STATE" ] || fail "home of depproxy is $home, not $STATE"
case "$shell" in */nologin | /bin/false) ;; *) fail "depproxy has a login shell: $shell" ;; esac
[ "$(getent group depproxy | cut -d: -f3)" = "$gid" ] || fail "depproxy's primary group is not depproxy"
[ "$(stat -c %U:%G "$STATE")" = depproxy:depproxy ] || fail "$STATE is not owned by depproxy"
echo "user: $(getent passwd depproxy); $STATE: $(stat -c '%U:%G %a' "$STATE")"
/usr/bin/depproxy --version
/usr/bin/depproxy check-config "$CONF"
if command -v systemd-analyze >/dev/null; then
  # Offline check of the unit's syntax and directives (no systemd needs to run).
  verify=$(systemd-analyze verify "$UNIT" 2>&1) || fail "systemd-analyze verify: $verify"
  if [ -n "$verify" ]; then echo "systemd-analyze verify: $verify"; fi
  # The hardening score, for information (offline: reads the unit file only).
  systemd-analyze security --offline=true "$UNIT" 2>/dev/null | tail -n 1 || true
fi

step "reinstall (the upgrade path) keeps a local edit of $CONF"
echo "# local edit by test-deb.sh" >>"$CONF"
dpkg -i "$deb" >"$work/reinstall.log" 2>&1 || { cat "$work/reinstall.log"; fail "reinstall failed"; }
grep -q '^# local edit by test-deb.sh$' "$CONF" || fail "the reinstall overwrote the edited conffile"

step "read the unit"
unit_value() { sed -n "s/^$1=//p" "$UNIT"; }
exec_line=$(unit_value ExecStart)
if [ -z "$exec_line" ] || [ "$(printf '%s\n' "$exec_line" | wc -l)" != 1 ]; then
  fail "expected one ExecStart= in $UNIT"
fi
case "$exec_line" in [-@+!:]*) fail "ExecStart= has a prefix this test does not emulate: $exec_line" ;; esac
read -r -a exec_argv <<<"$exec_line"
unit_user=$(unit_value User)
unit_group=$(unit_value Group)
workdir=$(unit_value WorkingDirectory)
umask_value=$(unit_value UMask)
mapfile -t unit_env < <(unit_value Environment)
if [ "$unit_user" != depproxy ] || [ "$unit_group" != depproxy ]; then fail "User=/Group= are not depproxy"; fi
for directive in StateDirectory=depproxy ProtectSystem=strict NoNewPrivileges=yes \
  ReadWritePaths=/var/lib/depproxy Restart=on-failure 'CapabilityBoundingSet=$' PrivateTmp=yes \
  ProtectHome=yes MemoryDenyWriteExecute=yes SystemCallFilter=@system-service; do
  grep -q "^$directive" "$UNIT" || fail "$UNIT lacks $directive"
done
echo "ExecStart: $exec_line"
echo "as $unit_user:$unit_group in ${workdir:-/}, umask ${umask_value:-0022}, env: ${unit_env[*]}"

step "upstream: distribution registry with a small image"
registry_port=$(free_port)
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $work/registry-data
http:
  addr: 127.0.0.1:$registry_port
  secret: depproxy-test-deb
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
wait_http "http://127.0.0.1:$registry_port/v2/" 30 "$registry_pid"
# A one-layer OCI image, made here (Python standard library): nothing is downloaded.
read -r layer_digest manifest_digest < <(python3 - "$work/layout" <<'EOF'
import gzip, hashlib, io, json, os, sys, tarfile
out = sys.argv[1]
blobs = os.path.join(out, "blobs", "sha256")
os.makedirs(blobs)
def put(data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}
tar = io.BytesIO()
with tarfile.open(fileobj=tar, mode="w", format=tarfile.PAX_FORMAT) as archive:
    content = b"installed from the depproxy .deb\n" * 2000
    info = tarfile.TarInfo("hello.txt")
    info.size, info.mtime, info.mode = len(content), 1704067200, 0o644
    archive.addfile(info, io.BytesIO(content))
layer = put(gzip.compress(tar.getvalue(), mtime=0))
layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
config = put(json.dumps({
    "architecture": "amd64", "os": "linux", "config": {},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar.getvalue()).hexdigest()]},
}).encode())
config["mediaType"] = "application/vnd.oci.image.config.v1+json"
manifest = put(json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": config, "layers": [layer],
}).encode())
manifest["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
manifest["annotations"] = {"org.opencontainers.image.ref.name": "v1"}
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [manifest]}, f)
with open(os.path.join(out, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
print(layer["digest"], manifest["digest"])
EOF
)
[ -n "$manifest_digest" ] || fail "could not make the test image"
skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$work/layout:v1" \
  "docker://127.0.0.1:$registry_port/deb-test/hello:v1"
echo "pushed 127.0.0.1:$registry_port/deb-test/hello:v1 ($manifest_digest, layer $layer_digest)"

step "run the unit's ExecStart as $unit_user (no systemd)"
proxy_port=$(free_port)
admin_port=$(free_port)
extra=(--listen "127.0.0.1:$proxy_port" --upstream "http://127.0.0.1:$registry_port"
  --admin-listen "127.0.0.1:$admin_port")
echo "${exec_argv[*]} ${extra[*]}"
(
  cd "${workdir:-/}"
  umask "${umask_value:-0022}"
  # systemd's environment for a service with User=: a clean one, plus the unit's Environment=.
  exec setpriv --reuid="$unit_user" --regid="$unit_group" --init-groups --no-new-privs \
    --inh-caps=-all --bounding-set=-all -- \
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="$home" \
    USER="$unit_user" LOGNAME="$unit_user" SHELL="$shell" "${unit_env[@]}" \
    "${exec_argv[@]}" "${extra[@]}"
) >"$work/depproxy.log" 2>&1 &
proxy_pid=$!
wait_http "http://127.0.0.1:$proxy_port/v2/" 60 "$proxy_pid"
[ "$(ps -o user= -p "$proxy_pid" | tr -d ' ')" = depproxy ] || fail "the proxy does not run as depproxy"
grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$proxy_pid/status" || fail "NoNewPrivs is not set"
grep -q '^CapBnd:[[:space:]]*0*$' "/proc/$proxy_pid/status" || fail "the capability bounding set is not empty"
echo "depproxy (pid $proxy_pid) answers on 127.0.0.1:$proxy_port as $(ps -o user=,group= -p "$proxy_pid")"

step "pull through it"
t=$EPOCHREALTIME
skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$proxy_port/deb-test/hello:v1" "dir:$work/pulled"
echo "pulled in $(elapsed "$t")s"
for digest in "$layer_digest" "$manifest_digest"; do
  hex=${digest#sha256:}
  if [ "$digest" = "$manifest_digest" ]; then got="$work/pulled/manifest.json"; else got="$work/pulled/$hex"; fi
  cmp "$got" "$work/layout/blobs/sha256/$hex" || fail "pulled $digest differs from the pushed one"
  stored=$(find "$STATE" -type f -name "$hex" | head -n 1)
  [ -n "$stored" ] || fail "$digest is not stored under $STATE"
  cmp "$stored" "$work/layout/blobs/sha256/$hex" || fail "stored $stored differs"
  echo "stored: $stored ($(stat -c '%U:%G %a' "$stored"))"
done
not_ours=$(find "$STATE" ! -user depproxy)
[ -z "$not_ours" ] || fail "not owned by depproxy under $STATE: $not_ours"
ls -la "$STATE"

step "pull again with the upstream stopped: served from the cache"
kill -TERM "$registry_pid"
wait "$registry_pid" 2>/dev/null || true
registry_pid=
skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$proxy_port/deb-test/hello:v1" "dir:$work/pulled-again"
cmp "$work/pulled-again/${layer_digest#sha256:}" "$work/layout/blobs/sha256/${layer_digest#sha256:}" \
  || fail "the layer served from the cache differs"
echo "served from the cache with the upstream down"

step "SIGTERM (systemctl stop)"
t=$EPOCHREALTIME
kill -TERM "$proxy_pid"
status=0
wait "$proxy_pid" || status=$?
proxy_pid=
echo "exited with status $status after $(elapsed "$t")s"
[ "$status" = 0 ] || fail "depproxy exited with status $status on SIGTERM"
