#!/usr/bin/env bash
# Usage: scripts/lab/make-go-fixtures.sh OUT_DIR [N]
#
# Writes Go module fixtures made by real Go tooling: scripts/lab/gofixtures (built by
# build-go-tool.sh) zips each module with golang.org/x/mod/zip and hashes it with
# golang.org/x/mod/sumdb/dirhash, the code the go command itself uses. Modules:
#   example.com/dp/alpha  v1.0.0, v1.1.0        v1.1.0 requires example.com/dp/Beta v1.0.0
#   example.com/dp/Beta   v1.0.0, v1.1.0        (upper case: its proxy path is example.com/dp/!beta)
#   example.com/dp/gen/mNN v1.0.0, NN = 00..N-1 (N, default 0, at most 100: the bench asks ~60)
# Each carries data.bin of deterministic pseudo-random bytes (256 KiB; 64 KiB for gen/), so a
# transfer takes a moment, and a package whose Version() names its module@version (and, for
# alpha v1.1.0, Beta's). Every run writes the same bytes: same zips, hashes, key, sumdb tree.
# Files written:
#   OUT_DIR/proxy/         the GOPROXY tree, plain files: <escaped module>/@v/list,
#                          @v/<v>.info ({"Version","Time"}), @v/<v>.mod, @v/<v>.zip, <module>/@latest.
#                          Serve with start-goproxy.sh PORT OUT_DIR (with the checksum database)
#                          or start-static-index.sh PORT OUT_DIR/proxy /example.com/dp/alpha/@v/list
#                          (plain files only); a GOPROXY=file://OUT_DIR/proxy works too.
#   OUT_DIR/sumdb/gosum    every go.sum line of every module version (what the database holds)
#   OUT_DIR/sumdb/skey     the checksum database's signing key (name sum.example.com)
#   OUT_DIR/sumdb.key      its verifier key, the GOSUMDB value: sum.example.com+<hash>+<key>
#   OUT_DIR/src/<module>@<version>/   the module sources
#   OUT_DIR/consumer/      module example.com/dp/consumer: go.mod requires alpha v1.1.0, Beta v1.1.0
#                          and every gen module (no go.sum: the go command looks every hash up);
#                          main.go prints each dependency's Version(). A test runs, in a copy:
#     GOPROXY=$url GOSUMDB="$(cat OUT_DIR/sumdb.key)" GOFLAGS=-mod=mod GOPATH=$(mktemp -d) \
#       GOMODCACHE=$(mktemp -d) GONOSUMDB= GOPRIVATE= go mod download -x && go run .
#     (go run prints "example.com/dp/alpha@v1.1.0 (example.com/dp/Beta@v1.1.0)", ...). Keep GOPATH
#     fresh or per-upstream: the go command remembers the database's tree head in
#     $GOPATH/pkg/sumdb/sum.example.com/latest.
# Before it finishes it checks the tree with the go command itself (GOPROXY=file://, GOSUMDB=off:
# go mod download, go run of the consumer in a scratch copy).
set -euo pipefail
out=${1:?usage: make-go-fixtures.sh OUT_DIR [N]}
generated=${2:-0}
here=$(dirname "$(realpath "$0")")
bin=$("$here/build-go-tool.sh" gofixtures)
rm -rf "$out"
mkdir -p "$out"
out=$(realpath "$out")
"$bin" -out "$out" -n "$generated"

mkdir -p "$out/consumer"
{
  printf 'module example.com/dp/consumer\n\ngo 1.19\n\nrequire (\n'
  printf '\texample.com/dp/Beta v1.1.0\n\texample.com/dp/alpha v1.1.0\n'
  for ((i = 0; i < generated; i++)); do printf '\texample.com/dp/gen/m%02d v1.0.0\n' "$i"; done
  printf ')\n'
} > "$out/consumer/go.mod"
{
  printf '// Command consumer prints the version of every fixture module it was built with.\n'
  printf 'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/dp/Beta"\n\t"example.com/dp/alpha"\n'
  for ((i = 0; i < generated; i++)); do printf '\t"example.com/dp/gen/m%02d"\n' "$i"; done
  printf ')\n\nfunc main() {\n\tfmt.Println(alpha.Version())\n\tfmt.Println(beta.Version())\n'
  for ((i = 0; i < generated; i++)); do printf '\tfmt.Println(m%02d.Version())\n' "$i"; done
  printf '}\n'
} > "$out/consumer/main.go"
gofmt -l "$out/consumer" | grep . && { echo "consumer/main.go is not gofmt-clean" >&2; exit 1; }

scratch=$(mktemp -d)
trap 'chmod -R u+w "$scratch" 2>/dev/null; rm -rf "$scratch"' EXIT
cp -r "$out/consumer" "$scratch/consumer"
(
  cd "$scratch/consumer"
  export GOPROXY=file://$out/proxy GOSUMDB=off GOFLAGS=-mod=mod GOPATH=$scratch/gopath \
    GOMODCACHE=$scratch/modcache GO111MODULE=on
  go mod download
  go run . > "$scratch/run.out"
)
lines=$(wc -l < "$scratch/run.out")
[ "$lines" = $((2 + generated)) ] || { echo "consumer printed $lines lines:" >&2; cat "$scratch/run.out" >&2; exit 1; }
head -n 2 "$scratch/run.out"
echo "go fixtures in $out: $((4 + generated)) module versions in proxy/, sumdb key $(cat "$out/sumdb.key")"
