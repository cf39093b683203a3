#!/usr/bin/env bash
# Usage: scripts/install-test-deps.sh
#
# Installs (only when missing) what the depproxy integration tests need:
#   - apt: docker-registry skopeo containerd podman curl jq, htpasswd (apache2-utils),
#     chromium + chromium-driver (the status page's browser test drives headless Chromium)
#   - PostgreSQL listening on 127.0.0.1:5432 with trust auth for user postgres
#   - moto_server (S3 test server) via `pip install 'moto[server]'`, oras-py via `pip install oras`
#     (oras-py attaches signatures and SBOMs to images for the referrers tests)
#   - the package-format upstreams (scripts/lab/start-verdaccio.sh, start-pypiserver.sh):
#     Verdaccio 6.8.0 (the last that runs on Node 20) with `npm install --prefix` into
#     $HOME/.cache/depproxy/verdaccio; a venv $HOME/.cache/depproxy/pypiserver-venv with
#     pypiserver + waitress (its threaded server) and setuptools, wheel, build (the Python
#     fixtures are built offline with `python -m build --no-isolation`)
#   - the Maven and Go module upstreams and fixtures (scripts/lab/make-maven-fixtures.sh,
#     make-maven-bench-project.sh, make-go-fixtures.sh, start-goproxy.sh), all apt: maven, a JDK
#     for javac and jar (default-jdk-headless), Debian's Maven plugins libmaven-deploy-plugin-java
#     (deploy:deploy-file makes the fixture repositories offline) and libmaven-dependency-plugin-java
#     (3.5.0: the clients' dependency:resolve/get), junit4; they land in /usr/share/maven-repo, which
#     is also the upstream tree the tests serve. golang-go (1.19) and golang-golang-x-mod-dev
#     (golang.org/x/mod: module zips and the checksum database, under /usr/share/gocode)
# Safe to run repeatedly; prints what it installed/started. Needs root (Debian 12).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  echo "installed apt packages: $*"
}

# command -> apt package
missing=()
for pair in docker-registry:docker-registry skopeo:skopeo containerd:containerd podman:podman \
  htpasswd:apache2-utils curl:curl jq:jq chromium:chromium chromedriver:chromium-driver; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi

# PostgreSQL on 127.0.0.1:5432
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then apt_install postgresql; fi
  ver=$(ls /etc/postgresql | head -1)
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
  pg_isready -h 127.0.0.1 -p 5432
  echo "started postgresql $ver/main"
fi
if ! env -u PGPASSWORD psql -h 127.0.0.1 -U postgres -w -Atc 'select 1' >/dev/null 2>&1; then
  ver=$(ls /etc/postgresql | head -1)
  hba=/etc/postgresql/$ver/main/pg_hba.conf
  # pg_hba is first-match: put the trust rule at the top.
  sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
  sleep 1
  env -u PGPASSWORD psql -h 127.0.0.1 -U postgres -w -Atc 'select 1' >/dev/null
  echo "enabled trust auth for postgres@127.0.0.1 in $hba"
fi

# moto S3 server; oras-py (a registry client library: the access-control tests, and attaching
# artifacts with a subject for the referrers tests)
if ! python3 -c 'import moto.server' 2>/dev/null; then
  python3 -m pip install -q 'moto[server]'
  echo "installed moto[server]"
fi
if ! python3 -c 'import oras.client' 2>/dev/null; then
  python3 -m pip install -q oras
  echo "installed oras (oras-py)"
fi

# npm and PyPI upstreams for the package-format tests. Node.js and npm come with the machine;
# Debian's are the fallback.
command -v npm >/dev/null || apt_install nodejs npm
verdaccio_home=$HOME/.cache/depproxy/verdaccio
verdaccio_version=6.8.0
if [ "$(node -p "require('$verdaccio_home/node_modules/verdaccio/package.json').version" 2>/dev/null)" \
  != "$verdaccio_version" ]; then
  mkdir -p "$verdaccio_home"
  npm install --prefix "$verdaccio_home" --no-audit --no-fund --omit=dev --loglevel error \
    "verdaccio@$verdaccio_version" >/dev/null
  echo "installed verdaccio $verdaccio_version in $verdaccio_home"
fi
pypi_venv=$HOME/.cache/depproxy/pypiserver-venv
# Pinned: the fixtures' file names depend on setuptools (65 keeps names as written, e.g.
# Dp.Gamma-1.0-py3-none-any.whl and dp-alpha-1.0.tar.gz, which later versions normalise).
pypi_pins=(pypiserver==2.4.2 waitress==3.0.2 setuptools==65.5.0 wheel==0.48.0 build==1.6.1)
if [ "$("$pypi_venv/bin/pip" freeze --all 2>/dev/null | grep -cxF -f <(printf '%s\n' "${pypi_pins[@]}"))" \
  != "${#pypi_pins[@]}" ]; then
  rm -rf "$pypi_venv"
  python3 -m venv "$pypi_venv"
  "$pypi_venv/bin/pip" install -q --disable-pip-version-check "${pypi_pins[@]}"
  echo "installed ${pypi_pins[*]} in $pypi_venv"
fi

# Maven and Go: by package, not command (the plugins and x/mod are files, not commands).
missing=()
for pkg in maven libmaven-deploy-plugin-java libmaven-dependency-plugin-java \
  junit4 golang-go golang-golang-x-mod-dev; do
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" = installed ] || missing+=("$pkg")
done
command -v javac >/dev/null && command -v jar >/dev/null || missing+=(default-jdk-headless)
if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi

echo "test deps OK"
