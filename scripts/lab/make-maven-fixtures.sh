#!/usr/bin/env bash
# Usage: scripts/lab/make-maven-fixtures.sh OUT_DIR
#
# Writes real Maven repository trees made by real mvn, offline: javac + jar build each artifact,
# maven-deploy-plugin (deploy:deploy-file, Debian's libmaven-deploy-plugin-java) deploys it to a
# file:// repository, resolving the plugin from Debian's tree ($DEBIAN_MAVEN_REPO, default
# /usr/share/maven-repo) as the only repository. mvn writes the .sha1/.md5 sidecars (this mvn,
# 3.8 with resolver 1.6, writes no .sha256/.sha512) and the artifact-level maven-metadata.xml.
# Every jar carries 256 KiB of incompressible data.bin (a transfer takes long enough for concurrent
# clients to overlap) and a class com.example.dp.<Name> whose VERSION is its version.
# Artifacts, all groupId com.example.dp:
#   repo-a  dp-core 1.0            jar + pom
#           dp-core 1.1            jar + pom + -sources.jar; depends on dp-util 1.0
#           dp-util 1.0            jar + pom
#           dp-snap 1.0-SNAPSHOT   deployed twice: 1.0-SNAPSHOT/maven-metadata.xml lists the
#                                  timestamped files of build 2, build 1's stay beside them
#           dp-tampered 1.0        for scripts/lab/tamper-maven-artifact.sh
#   repo-b  dp-extra 1.0           jar + pom; depends on dp-util 1.0 (which only repo-a has):
#                                  the second of ordered upstreams serves what the first lacks
#   repo-nosum  dp-util 1.0 and its maven-metadata.xml without any checksum sidecar (an internal
#                                  repository that publishes none)
# Files written:
#   OUT_DIR/repo-a/, repo-b/, repo-nosum/   the repositories (serve with start-static-index.sh
#                                  PORT DIR /com/example/dp/dp-core/maven-metadata.xml)
#   OUT_DIR/mirror/                one tree to serve as the single mirror: a symlink farm of
#                                  Debian's tree + repo-a + repo-b (Maven needs its plugins, e.g.
#                                  maven-dependency-plugin 3.5.0, from the mirror too). A proxy test
#                                  rather lists the upstreams [repo-a, repo-b, Debian's tree].
#   OUT_DIR/project/pom.xml        depends on dp-core 1.1, dp-extra 1.0, dp-snap 1.0-SNAPSHOT (so
#                                  dp-util 1.0 transitively); binds maven-dependency-plugin 3.5.0
#                                  (Debian's tree has no maven-metadata.xml to resolve the
#                                  "dependency:" prefix or a plugin version from)
#   OUT_DIR/project/settings.xml.template   a <mirror> of * at @PROXY_URL@ with id "depproxy", a
#                                  <server> "depproxy" with @USERNAME@/@PASSWORD@ (Maven sends them
#                                  only after a 401 with WWW-Authenticate: Basic; drop the <server>
#                                  for an anonymous group), and a profile enabling snapshots on
#                                  "central" (a mirror takes the policies of what it mirrors, and
#                                  the built-in central disables snapshots). A test runs:
#       sed -e "s#@PROXY_URL@#$url#" -e "s#@USERNAME@#ci#" -e "s#@PASSWORD@#$token#" \
#         OUT_DIR/project/settings.xml.template > settings.xml
#       mvn -B -s settings.xml -Dmaven.repo.local="$(mktemp -d)" -f OUT_DIR/project/pom.xml \
#         dependency:resolve
#     (stdout lists "com.example.dp:dp-core:jar:1.1:compile" etc.; a failed download fails it)
#   OUT_DIR/fixtures.json          [{"repo","path","sha1","sha256","size"}] of every file under
#                                  repo-a/ and repo-b/ (sidecars and metadata included)
# Everything is rebuilt each time (jars and timestamps differ between runs: compare against
# fixtures.json of the same run). Takes ~30 s (one mvn per deploy).
set -euo pipefail
out=${1:?usage: make-maven-fixtures.sh OUT_DIR}
debian_repo=${DEBIAN_MAVEN_REPO:-/usr/share/maven-repo}
deploy_plugin=org.apache.maven.plugins:maven-deploy-plugin:3.0.0
for tool in mvn javac jar; do
  command -v "$tool" >/dev/null || { echo "no $tool: run scripts/install-test-deps.sh" >&2; exit 1; }
done
[ -d "$debian_repo/org/apache/maven/plugins/maven-deploy-plugin/3.0.0" ] \
  || { echo "$debian_repo lacks maven-deploy-plugin 3.0.0: run scripts/install-test-deps.sh" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out/work"
out=$(realpath "$out")
work=$out/work

# Plugins come from Debian's tree through a file:// mirror into a scratch local repository, so
# Debian's tree is only read.
cat > "$work/settings.xml" <<EOF
<settings>
  <mirrors>
    <mirror><id>debian</id><mirrorOf>*</mirrorOf><url>file://$debian_repo</url></mirror>
  </mirrors>
</settings>
EOF

# pom ARTIFACT VERSION [DEP_ARTIFACT:DEP_VERSION...] > pom.xml
pom() {
  local artifact=$1 version=$2 dep
  shift 2
  printf '<?xml version="1.0" encoding="UTF-8"?>\n'
  printf '<project xmlns="http://maven.apache.org/POM/4.0.0">\n  <modelVersion>4.0.0</modelVersion>\n'
  printf '  <groupId>com.example.dp</groupId>\n  <artifactId>%s</artifactId>\n  <version>%s</version>\n' \
    "$artifact" "$version"
  printf '  <packaging>jar</packaging>\n'
  if [ "$#" -gt 0 ]; then
    printf '  <dependencies>\n'
    for dep in "$@"; do
      printf '    <dependency><groupId>com.example.dp</groupId><artifactId>%s</artifactId><version>%s</version></dependency>\n' \
        "${dep%%:*}" "${dep#*:}"
    done
    printf '  </dependencies>\n'
  fi
  printf '</project>\n'
}

# deploy REPO ARTIFACT VERSION [DEP_ARTIFACT:DEP_VERSION...]: builds the jar (and, for
# SOURCES=1, a -sources.jar) and deploys it with its pom to OUT_DIR/REPO.
deploy() {
  local repo=$1 artifact=$2 version=$3
  shift 3
  local class src dir=$work/build/$artifact-$version
  class=$(echo "${artifact#dp-}" | sed 's/^./\U&/')
  src=$dir/src/com/example/dp
  rm -rf "$dir"
  mkdir -p "$src" "$dir/classes"
  printf 'package com.example.dp;\n\npublic final class %s {\n    public static final String VERSION = "%s";\n}\n' \
    "$class" "$version" > "$src/$class.java"
  javac --release 8 -nowarn -d "$dir/classes" "$src/$class.java" 2>/dev/null
  head -c 262144 /dev/urandom > "$dir/classes/data.bin"
  jar --create --file "$dir/$artifact-$version.jar" -C "$dir/classes" .
  pom "$artifact" "$version" "$@" > "$dir/pom.xml"
  local extra=()
  if [ "${SOURCES:-0}" = 1 ]; then
    jar --create --file "$dir/$artifact-$version-sources.jar" -C "$dir/src" .
    extra+=("-Dsources=$dir/$artifact-$version-sources.jar")
  fi
  mvn -B -Dstyle.color=never -s "$work/settings.xml" -Dmaven.repo.local="$work/m2" "$deploy_plugin:deploy-file" \
    -Dfile="$dir/$artifact-$version.jar" -DpomFile="$dir/pom.xml" "${extra[@]}" \
    -DrepositoryId=fixtures -Durl="file://$out/$repo" > "$work/mvn.log" 2>&1 \
    || { tail -n 30 "$work/mvn.log" >&2; exit 1; }
  echo "deployed com.example.dp:$artifact:$version to $repo"
}

deploy repo-a dp-core 1.0
SOURCES=1 deploy repo-a dp-core 1.1 dp-util:1.0
deploy repo-a dp-util 1.0
deploy repo-a dp-snap 1.0-SNAPSHOT
deploy repo-a dp-snap 1.0-SNAPSHOT
deploy repo-a dp-tampered 1.0
deploy repo-b dp-extra 1.0 dp-util:1.0

mkdir -p "$out/repo-nosum/com/example/dp"
cp -r "$out/repo-a/com/example/dp/dp-util" "$out/repo-nosum/com/example/dp/"
find "$out/repo-nosum" -name '*.sha1' -delete -o -name '*.md5' -delete -o -name '*.sha256' -delete \
  -o -name '*.sha512' -delete

# One tree for a single mirror: symlinks to every file (Debian's own symlinks resolved).
mkdir -p "$out/mirror"
cp -rsL "$(realpath "$debian_repo")/." "$out/mirror/"
cp -rsL "$out/repo-a/." "$out/mirror/"
cp -rsL "$out/repo-b/." "$out/mirror/"

mkdir -p "$out/project"
cat > "$out/project/pom.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>com.example.dp</groupId>
  <artifactId>dp-app</artifactId>
  <version>1.0</version>
  <packaging>jar</packaging>
  <dependencies>
    <dependency><groupId>com.example.dp</groupId><artifactId>dp-core</artifactId><version>1.1</version></dependency>
    <dependency><groupId>com.example.dp</groupId><artifactId>dp-extra</artifactId><version>1.0</version></dependency>
    <dependency><groupId>com.example.dp</groupId><artifactId>dp-snap</artifactId><version>1.0-SNAPSHOT</version></dependency>
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
cat > "$out/project/settings.xml.template" <<'EOF'
<settings>
  <servers>
    <server>
      <id>depproxy</id>
      <username>@USERNAME@</username>
      <password>@PASSWORD@</password>
    </server>
  </servers>
  <mirrors>
    <mirror>
      <id>depproxy</id>
      <mirrorOf>*</mirrorOf>
      <url>@PROXY_URL@</url>
    </mirror>
  </mirrors>
  <profiles>
    <profile>
      <id>snapshots</id>
      <repositories>
        <repository>
          <id>central</id>
          <url>http://mirrored.example.com/</url>
          <releases><enabled>true</enabled></releases>
          <snapshots><enabled>true</enabled></snapshots>
        </repository>
      </repositories>
      <pluginRepositories>
        <pluginRepository>
          <id>central</id>
          <url>http://mirrored.example.com/</url>
          <releases><enabled>true</enabled></releases>
          <snapshots><enabled>true</enabled></snapshots>
        </pluginRepository>
      </pluginRepositories>
    </profile>
  </profiles>
  <activeProfiles>
    <activeProfile>snapshots</activeProfile>
  </activeProfiles>
</settings>
EOF

python3 - "$out" <<'PY'
import hashlib, json, os, sys
out = sys.argv[1]
entries = []
for repo in ("repo-a", "repo-b"):
    root = os.path.join(out, repo)
    for parent, _, names in os.walk(root):
        for name in names:
            data = open(os.path.join(parent, name), "rb").read()
            entries.append({
                "repo": repo,
                "path": os.path.relpath(os.path.join(parent, name), root),
                "sha1": hashlib.sha1(data).hexdigest(),
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
            })
entries.sort(key=lambda e: (e["repo"], e["path"]))
json.dump(entries, open(os.path.join(out, "fixtures.json"), "w"), indent=1)
print(f"{len(entries)} files in repo-a and repo-b (fixtures.json)")
PY
rm -rf "$work"
echo "maven fixtures in $out: repo-a/ repo-b/ repo-nosum/ mirror/ project/"
