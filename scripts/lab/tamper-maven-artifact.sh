#!/usr/bin/env bash
# Usage: scripts/lab/tamper-maven-artifact.sh REPO FILE_PATH
#
# Changes the bytes of one file of a Maven repository tree (make-maven-fixtures.sh's repo-a/ etc.)
# and leaves its .sha1/.md5 sidecars as they were, so they no longer match it (a compromised or
# corrupted upstream: a proxy that verifies against the sidecar must refuse the file).
# FILE_PATH is relative to REPO, e.g. com/example/dp/dp-tampered/1.0/dp-tampered-1.0.jar.
# A .jar/.war/.zip stays a valid archive (`jar --update` adds TAMPERED.txt); any other file (a
# .pom) gets an XML comment appended. Symlinks to the file (make-maven-fixtures.sh's mirror/) see
# the change. Prints:
#   listed_sha1 <the sidecar's sha1>
#   served_sha1 <the file's new sha1>
# Tampering twice changes the bytes again.
set -euo pipefail
repo=${1:?usage: tamper-maven-artifact.sh REPO FILE_PATH}
rel=${2:?usage: tamper-maven-artifact.sh REPO FILE_PATH}
file=$repo/$rel
[ -f "$file" ] || { echo "no file $file" >&2; exit 1; }
[ -f "$file.sha1" ] || { echo "no sidecar $file.sha1 (nothing to contradict)" >&2; exit 1; }
before=$(sha1sum "$file" | cut -d' ' -f1)
case "$file" in
  *.jar | *.war | *.zip)
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    date +%s%N > "$scratch/TAMPERED.txt"
    jar --update --file "$file" -C "$scratch" TAMPERED.txt
    ;;
  *) printf '<!-- tampered %s -->\n' "$(date +%s%N)" >> "$file" ;;
esac
after=$(sha1sum "$file" | cut -d' ' -f1)
[ "$before" != "$after" ] || { echo "bytes of $file did not change" >&2; exit 1; }
echo "listed_sha1 $(cut -c1-40 "$file.sha1")"
echo "served_sha1 $after"
