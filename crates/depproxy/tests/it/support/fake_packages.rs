//! A small package upstream in this process: npm packuments and tarballs under `/npm/`, PyPI
//! project pages (HTML or PEP 691 JSON, as `Accept` chooses) and files under `/pypi/`, each file
//! published with its checksum; every request logged. For the operator-side tests (purge, pins,
//! stats, warming) of package groups; the real clients' tests use real registries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use base64::Engine as _;
use http::{Method, StatusCode};

#[derive(Default)]
struct Served {
    /// Path → (content type, body), and the JSON form of a PyPI page at the same path.
    documents: HashMap<String, (String, Vec<u8>)>,
    json_pages: HashMap<String, Vec<u8>>,
    log: Vec<(Method, String)>,
}

/// The running upstream.
#[derive(Clone)]
pub struct FakePackages {
    url: String,
    served: Arc<Mutex<Served>>,
}

/// A version and its tarball (npm), or a file name and its bytes (PyPI).
pub type Published<'a> = (&'a str, &'a [u8]);

impl FakePackages {
    pub async fn start() -> FakePackages {
        let served = Arc::new(Mutex::new(Served::default()));
        let router = axum::Router::new().fallback(serve).with_state(served.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakePackages { url, served }
    }

    /// The npm registry's URL (an upstream's `url`).
    pub fn npm_url(&self) -> String {
        format!("{}/npm", self.url)
    }

    /// The PyPI index's URL (an upstream's `url`: it serves `simple/`).
    pub fn pypi_url(&self) -> String {
        format!("{}/pypi", self.url)
    }

    /// Publishes an npm package: its packument (`dist-tags.latest` = `latest`) listing each
    /// version's tarball with its sha512 integrity.
    pub fn npm_package(&self, name: &str, latest: &str, versions: &[Published<'_>]) {
        let bare = name.rsplit('/').next().unwrap_or(name);
        let mut listed = serde_json::Map::new();
        let mut served = self.served.lock().unwrap();
        for (version, bytes) in versions {
            let path = format!("/npm/{name}/-/{bare}-{version}.tgz");
            let integrity =
                format!("sha512-{}", base64::engine::general_purpose::STANDARD.encode(sha512(bytes)));
            listed.insert(
                (*version).to_owned(),
                serde_json::json!({
                    "name": name,
                    "version": version,
                    "dist": { "tarball": format!("{}{path}", self.url), "integrity": integrity },
                }),
            );
            served.documents.insert(path, ("application/octet-stream".into(), bytes.to_vec()));
        }
        let packument = serde_json::json!({
            "name": name,
            "dist-tags": { "latest": latest },
            "versions": listed,
        });
        let body = serde_json::to_vec(&packument).unwrap();
        // Registries are asked for `@scope%2fname`; both spellings answer.
        served
            .documents
            .insert(format!("/npm/{}", name.replace('/', "%2f")), ("application/json".into(), body.clone()));
        served.documents.insert(format!("/npm/{name}"), ("application/json".into(), body));
    }

    /// Publishes a PyPI project: its page (`/pypi/simple/<name>/`) links each file by absolute
    /// URL with its sha256.
    pub fn pypi_project(&self, name: &str, files: &[Published<'_>]) {
        let mut served = self.served.lock().unwrap();
        let mut anchors = String::new();
        let mut entries = Vec::new();
        for (file, bytes) in files {
            let path = format!("/pypi/packages/{file}");
            let sha256 = oci::Digest::of(bytes).hex().to_owned();
            let url = format!("{}{path}", self.url);
            anchors.push_str(&format!("<a href=\"{url}#sha256={sha256}\">{file}</a><br/>\n"));
            entries.push(serde_json::json!({ "filename": file, "url": url, "hashes": { "sha256": sha256 } }));
            served.documents.insert(path, ("application/octet-stream".into(), bytes.to_vec()));
        }
        let page = format!("<!DOCTYPE html><html><body><h1>Links for {name}</h1>\n{anchors}</body></html>\n");
        let path = format!("/pypi/simple/{name}/");
        let json = serde_json::json!({ "meta": { "api-version": "1.1" }, "name": name, "files": entries });
        served.json_pages.insert(path.clone(), serde_json::to_vec(&json).unwrap());
        served.documents.insert(path, ("text/html".into(), page.into_bytes()));
    }

    /// How many `method` requests had a path containing `part`.
    pub fn count(&self, method: &str, part: &str) -> usize {
        let served = self.served.lock().unwrap();
        served.log.iter().filter(|(logged, path)| logged.as_str() == method && path.contains(part)).count()
    }

    /// Every request so far, `METHOD path`.
    pub fn log(&self) -> Vec<String> {
        self.served.lock().unwrap().log.iter().map(|(method, path)| format!("{method} {path}")).collect()
    }

    pub fn clear_log(&self) {
        self.served.lock().unwrap().log.clear();
    }
}

fn sha512(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha512::digest(bytes).to_vec()
}

async fn serve(State(served): State<Arc<Mutex<Served>>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let json = request
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("application/vnd.pypi.simple.v1+json"));
    let mut served = served.lock().unwrap();
    served.log.push((request.method().clone(), path.clone()));
    let found = match served.json_pages.get(&path) {
        Some(page) if json => Some(("application/vnd.pypi.simple.v1+json".to_owned(), page.clone())),
        _ => served.documents.get(&path).cloned(),
    };
    let Some((content_type, body)) = found else {
        let mut response = Response::new(Body::from("not found"));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    };
    let length = body.len();
    let mut response =
        Response::new(if request.method() == Method::HEAD { Body::empty() } else { Body::from(body) });
    response.headers_mut().insert(http::header::CONTENT_TYPE, content_type.parse().unwrap());
    response.headers_mut().insert(http::header::CONTENT_LENGTH, length.into());
    response
}
