//! Warming a package group (npm, PyPI, Maven, Go, Cargo) as its clients would fill it: a
//! package's document (the abbreviated packument `npm install` asks for; the PEP 691 project page
//! pip asks for; `maven-metadata.xml`; `@v/list`; the crate's index file) through the proxy, then
//! every file of the version asked for — npm's tarball, PyPI's wheels, sdist and the PEP 658
//! `.metadata` files the page lists, Maven's pom and jar, Go's `.info`, `.mod` and `.zip`, the
//! `.crate` — read to their end and discarded: the proxy verifies and keeps what passes through.
//!
//! A version is the package's own text: npm `lodash@4.17.21` (none: the `latest` dist-tag), PyPI
//! `requests==2.32.3` or `requests@2.32.3` (none: the newest final release the page lists). The
//! group's format is asked of the proxy itself (`group_format`): the proxy is what decides.

use cache::{Format, newest_first};
use indicatif::HumanBytes;

use super::bounded::bounded;
use super::client::Client;
pub use super::package_args::{PackageArg, parse_package};
use super::progress::Progress;
use super::report::{ObjectError, WarmFailure, WarmKind, WarmSummary};

/// What `npm install` sends for a packument (the abbreviated form, which builds read).
pub const NPM_ACCEPT: &str = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*";
/// What pip sends for a project page (PEP 691 JSON first).
pub const PYPI_ACCEPT: &str =
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.1, text/html;q=0.01";
/// A document larger than this is not read (the proxy's own limit is `max_blob_size`).
const MAX_DOCUMENT_BYTES: usize = 256 << 20;

/// A file a document lists, as the proxy serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    pub version: String,
    /// Its path on the proxy (`/npm/js/lodash/-/lodash-4.17.21.tgz`).
    pub path: String,
}

/// What a package's document lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageListing {
    /// Every version with a file, in the document's order, each once.
    pub versions: Vec<String>,
    /// npm's `latest` dist-tag.
    pub latest: Option<String>,
    pub files: Vec<ListedFile>,
    /// Bytes of the document.
    pub bytes: u64,
}

impl PackageListing {
    /// The version `asked` names (`None`: npm's `latest` dist-tag, else the newest final release
    /// listed, else the newest), when the document lists it.
    pub fn resolve(&self, asked: Option<&str>) -> Result<String, String> {
        match asked {
            Some(version) if self.versions.iter().any(|listed| listed == version) => Ok(version.to_owned()),
            Some(version) => Err(format!("version {version} is not listed ({})", self.some_versions())),
            None => self
                .latest
                .clone()
                .or_else(|| self.newest(|version| !is_prerelease(version)))
                .or_else(|| self.newest(|_| true))
                .ok_or_else(|| "the document lists no version with a file".to_owned()),
        }
    }

    fn newest(&self, eligible: impl Fn(&str) -> bool) -> Option<String> {
        self.versions.iter().filter(|version| eligible(version)).min_by(|a, b| newest_first(a, b)).cloned()
    }

    /// A few of the newest versions listed, for a message.
    fn some_versions(&self) -> String {
        let mut versions: Vec<&String> = self.versions.iter().collect();
        versions.sort_by(|a, b| newest_first(a, b));
        let shown: Vec<&str> = versions.iter().take(5).map(|version| version.as_str()).collect();
        match (shown.len(), versions.len()) {
            (0, _) => "none is".to_owned(),
            (shown_count, all) if shown_count < all => format!("newest: {}, …", shown.join(", ")),
            _ => format!("listed: {}", shown.join(", ")),
        }
    }

    /// The files of `version`.
    pub fn files_of(&self, version: &str) -> Vec<&ListedFile> {
        self.files.iter().filter(|file| file.version == version).collect()
    }
}

/// A PEP 440 pre-release or development release (`2.0.0rc1`, `1.0a2`, `3.1.dev0`); a
/// post-release (`2.9.0.post0`) is final. npm versions are read by the dist-tag instead.
fn is_prerelease(version: &str) -> bool {
    let lower = version.to_ascii_lowercase();
    let rest = lower.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == 'v');
    let rest = rest.replace("post", "");
    rest.chars().any(|c| c.is_ascii_alphabetic())
}

/// The path of `package`'s document on the proxy: the one that lists its versions.
fn document_path(format: Format, group: &str, package: &str) -> Result<String, String> {
    Ok(match format {
        Format::Pypi => format!("/pypi/{group}/simple/{package}/"),
        Format::Maven => {
            let (group_id, artifact) =
                package.split_once(':').ok_or_else(|| format!("{package:?} is not groupId:artifactId"))?;
            format!("/maven/{group}/{}/{artifact}/maven-metadata.xml", group_id.replace('.', "/"))
        }
        Format::Go => {
            let escaped = gomod::escape_path(package).map_err(|error| error.to_string())?;
            format!("/go/{group}/{escaped}/@v/list")
        }
        Format::Cargo => {
            let name = cargo_sparse::CrateName::parse(package).map_err(|error| error.to_string())?;
            format!("/cargo/{group}/{}", name.index_path())
        }
        // The form npm asks for: a scope's `/` encoded.
        Format::Npm | Format::Oci => format!("/npm/{group}/{}", package.replace('/', "%2f")),
    })
}

/// The path on the proxy of a file URL a document served at `document_path` names, when it is
/// under the group (the proxy rewrote it to itself, or it is relative).
fn path_in_group(format: Format, group: &str, document_path: &str, url: &str) -> Option<String> {
    let base = url::Url::parse("http://proxy.invalid").ok()?.join(document_path).ok()?;
    let resolved = base.join(url).ok()?;
    let prefix = format!("/{format}/{group}/");
    let path = resolved.path();
    path.starts_with(&prefix).then(|| path.to_owned())
}

/// Whether a listed file at `path` (on the proxy) may be missing from its version: Maven's jar.
/// The metadata lists versions, not what each published: a `pom`-packaged artifact (a parent,
/// a BOM) has only its pom, so the jar's 404 says it has none, not that warming failed.
fn may_be_absent(path: &str) -> bool {
    path.starts_with("/maven/") && path.ends_with(".jar")
}

/// Reads a document's files: `body` as the proxy served it at `document_path`.
fn read_listing(
    format: Format,
    group: &str,
    document_path: &str,
    body: &[u8],
    content_type: &str,
) -> Result<PackageListing, String> {
    let mut listing = PackageListing { bytes: body.len() as u64, ..PackageListing::default() };
    let mut add = |version: String, path: String| {
        if !listing.versions.contains(&version) {
            listing.versions.push(version.clone());
        }
        listing.files.push(ListedFile { version, path });
    };
    let outside = |url: &str| format!("{url} is not under the group: the proxy does not serve it");
    let directory = document_path.rsplit_once('/').map_or("", |(directory, _)| directory);
    match format {
        Format::Maven => {
            let versions = maven::artifact_versions(body).map_err(|error| error.to_string())?;
            let artifact = directory.rsplit('/').next().unwrap_or_default();
            for version in versions.versions {
                // The pom always; the jar when the artifact has one (a 404 says it has not).
                add(version.clone(), format!("{directory}/{version}/{artifact}-{version}.pom"));
                add(version.clone(), format!("{directory}/{version}/{artifact}-{version}.jar"));
            }
            listing.latest = versions.release.or(versions.latest);
        }
        Format::Go => {
            let module = directory.strip_suffix("/@v").unwrap_or(directory);
            let text = std::str::from_utf8(body).map_err(|error| error.to_string())?;
            for version in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
                let escaped = gomod::escape_version(version).map_err(|error| error.to_string())?;
                for extension in ["info", "mod", "zip"] {
                    add(version.to_owned(), format!("{module}/@v/{escaped}.{extension}"));
                }
            }
        }
        Format::Cargo => {
            let group_base = format!("/cargo/{group}");
            let entries = cargo_sparse::index_entries(body).map_err(|error| error.to_string())?;
            for entry in entries.into_iter().filter(|entry| !entry.yanked) {
                let path = injector::cargo_download_path(&entry.name, &entry.version);
                add(entry.version, format!("{group_base}/{path}"));
            }
        }
        Format::Pypi => {
            let json = content_type.split(';').next().is_some_and(|essence| essence.trim().ends_with("json"));
            let files = if json { pypi::json_files(body) } else { pypi::html_files(body) }
                .map_err(|error| error.to_string())?;
            for file in files {
                let Some(version) = pypi::version_of_filename(&file.filename) else { continue };
                let path = path_in_group(format, group, document_path, &file.url)
                    .ok_or_else(|| outside(&file.url))?;
                if file.metadata_sha256.is_some() {
                    add(version.clone(), format!("{path}.metadata"));
                }
                add(version, path);
            }
        }
        Format::Npm | Format::Oci => {
            #[derive(serde::Deserialize)]
            struct Tags {
                #[serde(rename = "dist-tags", default)]
                dist_tags: std::collections::HashMap<String, String>,
            }
            let files = npm::packument_files(body).map_err(|error| error.to_string())?;
            for file in files {
                let path = path_in_group(format, group, document_path, &file.url)
                    .ok_or_else(|| outside(&file.url))?;
                add(file.version, path);
            }
            let tags: Tags = serde_json::from_slice(body).map_err(|error| error.to_string())?;
            listing.latest = tags.dist_tags.get("latest").cloned();
        }
    }
    Ok(listing)
}

impl Client {
    /// A package's document through the proxy, and what it lists.
    pub(super) async fn package_listing(
        &self,
        format: Format,
        package: &str,
        progress: &Progress,
    ) -> Result<PackageListing, ObjectError> {
        let path = document_path(format, self.group().as_str(), package).map_err(ObjectError::other)?;
        let accept = match format {
            Format::Pypi => Some(PYPI_ACCEPT),
            Format::Npm => Some(NPM_ACCEPT),
            Format::Oci | Format::Maven | Format::Go | Format::Cargo => None,
        };
        let mut answer = self.get(&path, accept, progress).await?;
        let content_type = answer
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut body = Vec::new();
        while let Some(chunk) = answer.chunk().await? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                let limit = HumanBytes(MAX_DOCUMENT_BYTES as u64);
                return Err(ObjectError::other(format!("document larger than {limit}")));
            }
            progress.bytes(chunk.len() as u64);
            body.extend_from_slice(&chunk);
        }
        read_listing(format, self.group().as_str(), &path, &body, &content_type).map_err(ObjectError::other)
    }

    /// Reads a file at `path` (on the proxy) to its end; its bytes.
    pub(super) async fn package_file(&self, path: &str, progress: &Progress) -> Result<u64, ObjectError> {
        let mut answer = self.get(path, None, progress).await?;
        let mut received = 0u64;
        while let Some(chunk) = answer.chunk().await? {
            received += chunk.len() as u64;
            progress.bytes(chunk.len() as u64);
        }
        Ok(received)
    }

    /// The format of the group, as the proxy answers: npm's `whoami` is answered by an npm group
    /// itself (200, or 401 without a token), PyPI's root listing by a PyPI group (404 saying so,
    /// or 401), Cargo's `config.json` by a Cargo group; a Maven or Go group answers a path its
    /// format cannot name with 400 (401 without a token), where no such group is 404; an image
    /// group answers none of these.
    pub(super) async fn group_format(&self) -> anyhow::Result<Format> {
        let group = self.group().as_str();
        for (format, probe) in [
            (Format::Cargo, format!("/cargo/{group}/config.json")),
            (Format::Maven, format!("/maven/{group}/not-a-maven-path")),
            (Format::Go, format!("/go/{group}/not-a-go-path")),
        ] {
            if let Ok(answer) = self.send(&probe, None).await {
                let status = answer.status().as_u16();
                let answered = match format {
                    Format::Cargo => matches!(status, 200 | 401),
                    _ => matches!(status, 400 | 401),
                };
                if answered {
                    return Ok(format);
                }
            }
        }
        let whoami = self.send(&format!("/npm/{group}/-/whoami"), None).await;
        if let Ok(answer) = whoami
            && matches!(answer.status().as_u16(), 200 | 401)
        {
            return Ok(Format::Npm);
        }
        let root = self.send(&format!("/pypi/{group}/simple/"), None).await;
        if let Ok(mut answer) = root {
            let status = answer.status().as_u16();
            let mut body = Vec::new();
            while let Ok(Some(chunk)) = answer.chunk().await {
                body.extend_from_slice(&chunk);
                if body.len() > 4096 {
                    break;
                }
            }
            if status == 401 || (status == 404 && String::from_utf8_lossy(&body).contains("root listing")) {
                return Ok(Format::Pypi);
            }
        }
        Ok(Format::Oci)
    }
}

/// `package`'s document through `client`, silently (scheduled warming's read): what it lists,
/// or why it could not be read.
pub async fn read_package(client: &Client, format: Format, package: &str) -> Result<PackageListing, String> {
    let progress = Progress::silent(std::sync::Arc::default());
    client.package_listing(format, package, &progress).await.map_err(|error| error.to_string())
}

/// Reads every file of `targets` (each named as its failures are, e.g. `lodash@4.17.21`, with
/// its files' paths on the proxy) through `client`, `concurrency` at once, counting the bytes
/// into `received`: scheduled warming's pull. `Err` only when the proxy refused the
/// credentials.
pub async fn warm_files(
    client: &Client,
    targets: &[(String, Vec<String>)],
    concurrency: usize,
    received: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> anyhow::Result<WarmSummary> {
    let progress = Progress::silent(received);
    let mut summary =
        WarmSummary { kind: WarmKind::Packages, images: targets.len(), ..WarmSummary::default() };
    let jobs: Vec<(&String, &String)> =
        targets.iter().flat_map(|(written, paths)| paths.iter().map(move |path| (written, path))).collect();
    let mut failed = std::collections::BTreeSet::new();
    let settle = |(written, path, result): (&String, &String, Result<Option<u64>, ObjectError>)| match result
    {
        Ok(Some(bytes)) => {
            summary.blobs += 1;
            summary.bytes += bytes;
        }
        Ok(None) => {}
        Err(error) => {
            failed.insert(written.clone());
            summary.failures.push(WarmFailure {
                image: written.clone(),
                object: format!("file {path}"),
                status: error.status,
                message: error.message,
            });
        }
    };
    bounded(jobs, concurrency, |job| fetch_file(client, &progress, job), settle).await;
    if client.refused() {
        anyhow::bail!(client.refusal_message());
    }
    summary.images_failed = failed.len();
    Ok(summary)
}

/// One package's warm: its document, then its version's files.
struct PackageRun {
    documents: usize,
    files: usize,
    bytes: u64,
    failures: Vec<WarmFailure>,
}

/// Warms `packages` of the client's group (of `format`): each document, then the files of the
/// version asked for, `concurrency` files at once. Failures are in the summary.
pub(super) async fn warm_packages(
    client: &Client,
    format: Format,
    packages: &[PackageArg],
    concurrency: usize,
    progress: &Progress,
) -> WarmSummary {
    let mut summary =
        WarmSummary { kind: WarmKind::Packages, images: packages.len(), ..WarmSummary::default() };
    for package in packages {
        if client.refused() {
            break;
        }
        let run = warm_package(client, format, package, concurrency, progress).await;
        summary.manifests += run.documents;
        summary.blobs += run.files;
        summary.bytes += run.bytes;
        if !run.failures.is_empty() {
            summary.images_failed += 1;
        }
        summary.failures.extend(run.failures);
    }
    summary
}

async fn warm_package(
    client: &Client,
    format: Format,
    package: &PackageArg,
    concurrency: usize,
    progress: &Progress,
) -> PackageRun {
    let mut run = PackageRun { documents: 0, files: 0, bytes: 0, failures: Vec::new() };
    let mut fail = |object: String, error: ObjectError| {
        progress.failure(&format!("{} {object}: {error}", package.written));
        run.failures.push(WarmFailure {
            image: package.written.clone(),
            object,
            status: error.status,
            message: error.message,
        });
    };
    let listing = match client.package_listing(format, &package.name, progress).await {
        Ok(listing) => listing,
        Err(error) => {
            fail(format!("document {}", package.name), error);
            return run;
        }
    };
    let version = match listing.resolve(package.version.as_deref()) {
        Ok(version) => version,
        Err(message) => {
            fail(format!("document {}", package.name), ObjectError::other(message));
            return run;
        }
    };
    run.documents += 1;
    run.bytes += listing.bytes;
    progress.manifest(&format!("document {} ({})", package.name, HumanBytes(listing.bytes)));
    let files = listing.files_of(&version);
    progress.start_blobs(files.len(), 0);
    let mut outcomes = Vec::new();
    let jobs: Vec<(&String, &String)> = files.iter().map(|file| (&package.written, &file.path)).collect();
    bounded(jobs, concurrency, |job| fetch_file(client, progress, job), |outcome| outcomes.push(outcome))
        .await;
    for (_, path, result) in outcomes {
        match result {
            Ok(Some(bytes)) => {
                run.files += 1;
                run.bytes += bytes;
                progress.blob(&format!("{} {version}: {path} ({})", package.name, HumanBytes(bytes)));
            }
            Ok(None) => progress.blob(&format!("{} {version}: {path} (not published)", package.name)),
            Err(error) => fail(format!("file {path}"), error),
        }
    }
    run
}

/// Reads one file (of the package named `written`) through the proxy: its bytes, or `None` for
/// a file its version need not have and does not ([`may_be_absent`]). (A named async fn: see
/// [`bounded`].)
async fn fetch_file<'j>(
    client: &Client,
    progress: &Progress,
    (written, path): (&'j String, &'j String),
) -> (&'j String, &'j String, Result<Option<u64>, ObjectError>) {
    let result = match client.package_file(path, progress).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.status == Some(404) && may_be_absent(path) => Ok(None),
        Err(error) => Err(error),
    };
    (written, path, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_arguments_name_a_version_in_their_ecosystem_s_way() {
        let npm = |written| parse_package(Format::Npm, written);
        let pypi = |written| parse_package(Format::Pypi, written);
        assert_eq!(npm("lodash@4.17.21").unwrap().version.as_deref(), Some("4.17.21"));
        assert_eq!(npm("react").unwrap().version, None);
        let scoped = npm("@types/node@20.1.0").unwrap();
        assert_eq!((scoped.name.as_str(), scoped.version.as_deref()), ("@types/node", Some("20.1.0")));
        assert_eq!(npm("@types/node").unwrap().version, None);
        let requests = pypi("Requests==2.32.3").unwrap();
        assert_eq!((requests.name.as_str(), requests.version.as_deref()), ("requests", Some("2.32.3")));
        assert_eq!(pypi("zope.interface@6.0").unwrap().name, "zope-interface");
        assert!(npm("Lodash").unwrap_err().contains("lowercase"));
        assert!(npm("lodash@").unwrap_err().contains("version"));
        assert!(pypi("requests==").is_err());
        assert!(npm("lodash==4").is_err(), "npm has no ==");
    }

    #[test]
    fn a_maven_version_s_jar_may_be_absent_its_pom_and_other_formats_files_may_not() {
        let metadata = br#"<metadata><groupId>com.example</groupId><artifactId>bom</artifactId>
            <versioning><release>2.0</release><versions><version>2.0</version></versions></versioning></metadata>"#;
        let path = document_path(Format::Maven, "java", "com.example:bom").unwrap();
        assert_eq!(path, "/maven/java/com/example/bom/maven-metadata.xml");
        let listing = read_listing(Format::Maven, "java", &path, metadata, "text/xml").unwrap();
        let files: Vec<&str> = listing.files_of("2.0").iter().map(|file| file.path.as_str()).collect();
        assert_eq!(
            files,
            ["/maven/java/com/example/bom/2.0/bom-2.0.pom", "/maven/java/com/example/bom/2.0/bom-2.0.jar"]
        );
        assert_eq!(files.iter().map(|path| may_be_absent(path)).collect::<Vec<_>>(), [false, true]);
        assert!(!may_be_absent("/go/golang/example.com/m/@v/v1.0.0.zip"));
        assert!(!may_be_absent("/npm/js/x.jar/-/x.jar-1.0.0.tgz"));
    }

    #[test]
    fn a_packument_lists_its_tarballs_on_the_proxy_and_its_latest_tag() {
        let body = br#"{"name":"@acme/tools","dist-tags":{"latest":"1.0.0"},"versions":{
            "1.0.0":{"dist":{"tarball":"http://proxy:5000/npm/js/@acme/tools/-/tools-1.0.0.tgz"}},
            "2.0.0-rc.1":{"dist":{"tarball":"/npm/js/@acme/tools/-/tools-2.0.0-rc.1.tgz"}}}}"#;
        let path = document_path(Format::Npm, "js", "@acme/tools").unwrap();
        assert_eq!(path, "/npm/js/@acme%2ftools");
        let listing = read_listing(Format::Npm, "js", &path, body, "application/json").unwrap();
        assert_eq!(listing.versions, ["1.0.0", "2.0.0-rc.1"]);
        assert_eq!(listing.resolve(None).unwrap(), "1.0.0", "the latest dist-tag, not the newest");
        assert_eq!(listing.files_of("2.0.0-rc.1")[0].path, "/npm/js/@acme/tools/-/tools-2.0.0-rc.1.tgz");
        assert!(
            listing.resolve(Some("3.0.0")).unwrap_err().contains("not listed (listed: 2.0.0-rc.1, 1.0.0)")
        );
        let elsewhere = br#"{"versions":{"1.0.0":{"dist":{"tarball":"http://cdn.example.com/t.tgz"}}}}"#;
        let error = read_listing(Format::Npm, "js", &path, elsewhere, "application/json").unwrap_err();
        assert!(error.contains("not under the group"), "{error}");
    }

    #[test]
    fn a_project_page_lists_every_file_of_each_version_and_latest_is_the_newest_final() {
        let page = br#"{"meta":{"api-version":"1.1"},"name":"requests","files":[
            {"filename":"requests-2.31.0.tar.gz","url":"../../packages/requests-2.31.0.tar.gz","hashes":{}},
            {"filename":"requests-2.32.3-py3-none-any.whl","url":"http://proxy/pypi/python/packages/requests-2.32.3-py3-none-any.whl","hashes":{},"core-metadata":{"sha256":"abababababababababababababababababababababababababababababababab"}},
            {"filename":"requests-2.32.3.tar.gz","url":"../../packages/requests-2.32.3.tar.gz","hashes":{}},
            {"filename":"requests-3.0.0rc1.tar.gz","url":"../../packages/requests-3.0.0rc1.tar.gz","hashes":{}}]}"#;
        let path = document_path(Format::Pypi, "python", "requests").unwrap();
        let listing =
            read_listing(Format::Pypi, "python", &path, page, "application/vnd.pypi.simple.v1+json").unwrap();
        assert_eq!(listing.resolve(None).unwrap(), "2.32.3", "3.0.0rc1 is a pre-release");
        let files: Vec<&str> = listing.files_of("2.32.3").iter().map(|file| file.path.as_str()).collect();
        assert_eq!(
            files,
            [
                "/pypi/python/packages/requests-2.32.3-py3-none-any.whl.metadata",
                "/pypi/python/packages/requests-2.32.3-py3-none-any.whl",
                "/pypi/python/packages/requests-2.32.3.tar.gz"
            ]
        );
        assert!(is_prerelease("1.0a2") && is_prerelease("3.1.dev0") && !is_prerelease("2.9.0.post0"));
    }
}
