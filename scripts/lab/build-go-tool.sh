#!/usr/bin/env bash
# Usage: scripts/lab/build-go-tool.sh NAME
#
# Builds the lab's Go program scripts/lab/NAME/ (gofixtures, gosumdb) into
# $HOME/.cache/depproxy/bin/NAME when that binary is missing or older than its source, and prints
# the binary's path. The programs use only the standard library and golang.org/x/mod, which Debian's
# golang-golang-x-mod-dev puts under /usr/share/gocode (scripts/install-test-deps.sh installs it
# and golang-go): they build in GOPATH mode with that tree as GOPATH, offline. Concurrent callers
# (tests starting in parallel) build once: the build holds a lock and renames the binary in place.
set -euo pipefail
name=${1:?usage: build-go-tool.sh NAME}
here=$(dirname "$(realpath "$0")")
src=$here/$name
gocode=${DEBIAN_GOCODE:-/usr/share/gocode}
bin_dir=$HOME/.cache/depproxy/bin
bin=$bin_dir/$name
[ -f "$src/main.go" ] || { echo "no Go program $src" >&2; exit 1; }
command -v go >/dev/null || { echo "no go: run scripts/install-test-deps.sh" >&2; exit 1; }
[ -d "$gocode/src/golang.org/x/mod/sumdb" ] \
  || { echo "$gocode lacks golang.org/x/mod: run scripts/install-test-deps.sh" >&2; exit 1; }
fresh() { [ -x "$bin" ] && [ -z "$(find "$src" -name '*.go' -newer "$bin")" ]; }
mkdir -p "$bin_dir"
if ! fresh; then
  exec 9>"$bin_dir/.$name.lock"
  flock 9
  if ! fresh; then
    # GOPATH mode takes a directory outside GOPATH only as ".", not as an absolute path.
    (cd "$src" && GO111MODULE=off GOPATH=$gocode GOFLAGS= CGO_ENABLED=0 \
      nice -n 10 go build -o "$bin.tmp.$$" . >&2)
    mv -f "$bin.tmp.$$" "$bin"
    echo "built $bin" >&2
  fi
fi
echo "$bin"
