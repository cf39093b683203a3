#!/usr/bin/env bash
# Usage: scripts/lab/make-maven-bench-project.sh OUT_DIR
#
# Writes a Maven project whose dependency resolution pulls a big tree out of Debian's Maven
# repository ($DEBIAN_MAVEN_REPO, default /usr/share/maven-repo): it depends on maven-core 3.8.7
# and maven-compat 3.8.7 (Maven's own libraries, which Debian ships with the maven package) and
# binds maven-dependency-plugin 3.5.0 (Debian's tree has no maven-metadata.xml to resolve a plugin
# prefix or version from). Then it resolves it once, offline (a file:// mirror of Debian's tree
# into a scratch local repository), and counts what Maven fetched. Files written:
#   OUT_DIR/pom.xml
#   OUT_DIR/settings.xml.template   as make-maven-fixtures.sh's (mirror of * at @PROXY_URL@)
#   OUT_DIR/expected-files.txt      every repository path (.jar, .pom) that resolution fetched,
#                                   plugin and its dependencies included, sorted
# Prints "N files resolved (M jars, K poms)". A bench runs, against a proxy whose upstream is
# Debian's tree served over HTTP (start-static-index.sh PORT /usr/share/maven-repo
# /commons-io/commons-io/2.11.0/commons-io-2.11.0.pom):
#   sed "s#@PROXY_URL@#$url#" OUT_DIR/settings.xml.template > settings.xml
#   mvn -B -s settings.xml -Dmaven.repo.local="$(mktemp -d)" -f OUT_DIR/pom.xml dependency:resolve
set -euo pipefail
out=${1:?usage: make-maven-bench-project.sh OUT_DIR}
debian_repo=${DEBIAN_MAVEN_REPO:-/usr/share/maven-repo}
command -v mvn >/dev/null || { echo "no mvn: run scripts/install-test-deps.sh" >&2; exit 1; }
[ -d "$debian_repo/org/apache/maven/plugins/maven-dependency-plugin/3.5.0" ] \
  || { echo "$debian_repo lacks maven-dependency-plugin 3.5.0: run scripts/install-test-deps.sh" >&2; exit 1; }
mkdir -p "$out"
out=$(realpath "$out")

cat > "$out/pom.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>com.example.dp</groupId>
  <artifactId>dp-bench</artifactId>
  <version>1.0</version>
  <packaging>jar</packaging>
  <dependencies>
    <dependency><groupId>org.apache.maven</groupId><artifactId>maven-core</artifactId><version>3.8.7</version></dependency>
    <dependency><groupId>org.apache.maven</groupId><artifactId>maven-compat</artifactId><version>3.8.7</version></dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>3.5.0</version>
      </plugin>
    </plugins>
  </build>
</project>
EOF
cat > "$out/settings.xml.template" <<'EOF'
<settings>
  <mirrors>
    <mirror>
      <id>depproxy</id>
      <mirrorOf>*</mirrorOf>
      <url>@PROXY_URL@</url>
    </mirror>
  </mirrors>
</settings>
EOF

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
sed "s#@PROXY_URL@#file://$debian_repo#" "$out/settings.xml.template" > "$scratch/settings.xml"
if ! mvn -B -Dstyle.color=never -s "$scratch/settings.xml" -Dmaven.repo.local="$scratch/m2" \
  -f "$out/pom.xml" dependency:resolve > "$scratch/mvn.log" 2>&1; then
  tail -n 30 "$scratch/mvn.log" >&2
  exit 1
fi
# "Downloaded from depproxy: file:///usr/share/maven-repo/<path> (size ...)"
sed -n "s#^\[INFO\] Downloaded from depproxy: file://$debian_repo/\([^ ]*\) .*#\1#p" "$scratch/mvn.log" \
  | sort -u > "$out/expected-files.txt"
total=$(wc -l < "$out/expected-files.txt")
jars=$(grep -c '\.jar$' "$out/expected-files.txt" || true)
poms=$(grep -c '\.pom$' "$out/expected-files.txt" || true)
echo "$total files resolved ($jars jars, $poms poms): $out/expected-files.txt"
