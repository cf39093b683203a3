//! pip through depproxy end to end, with real parts: pypiserver as the upstream serving wheels and
//! sdists built offline by `scripts/lab/make-python-fixtures.sh` (projects depending on each
//! other, a name to normalise), a static PEP 503 index (Python's http.server) where a file must not
//! match its listed sha256 or where the download URLs point at another host (`files_url`), depproxy
//! as a real process with a PyPI group at `/pypi/python/simple/`, and the real pip
//! (`pip install`, `pip download`) with no cache. Upstream requests are counted in the servers'
//! logs.
//!
//! Needs python3 with pip, pypiserver (in its venv) and curl (`scripts/install-test-deps.sh`).

use std::process::Command;

use crate::support::packages::{
    LabServer, PythonFixtures, create_token, curl_get, curl_head_and_body, file_hashes, files_with_hash,
    package_proxy, pip, pip_command, proxy_warnings, pypi_index, pypiserver, run_all, static_index,
};
use crate::support::processes::{Depproxy, repo_root, require_tools, run};

fn tools() {
    require_tools(&["python3", "curl", "flock"]);
}

fn pypi_proxy(upstream: &LabServer, upstream_extra: &str, group_extra: &str) -> Depproxy {
    package_proxy("pypi", &upstream.url(), "python", upstream_extra, group_extra)
}

/// `pip download Dp.Gamma` into a new directory: the files, with their sha256.
fn download_gamma(index: &str) -> Result<Vec<(String, String)>, String> {
    let dir = tempfile::tempdir().unwrap();
    pip(&["download", "--index-url", index, "-d", dir.path().to_str().unwrap(), "Dp.Gamma"])?;
    Ok(file_hashes(dir.path()))
}

/// The wheels `Dp.Gamma` resolves to, as built.
fn gamma_wheels(fixtures: &PythonFixtures) -> Vec<(String, String)> {
    let mut wheels: Vec<(String, String)> =
        fixtures.gamma_wheels().into_iter().map(|file| (file.file, file.sha256)).collect();
    wheels.sort();
    wheels
}

/// `pip install --target` of Dp.Gamma, then the three modules' versions as Python sees them.
fn install_gamma(index: &str) -> Result<String, String> {
    let target = tempfile::tempdir().unwrap();
    pip(&["install", "--index-url", index, "--target", target.path().to_str().unwrap(), "Dp.Gamma"])?;
    Ok(run(Command::new("python3")
        .args([
            "-c",
            "import dp_gamma, dp_alpha, dp_beta; print(dp_gamma.VERSION, dp_alpha.VERSION, dp_beta.VERSION)",
        ])
        .env("PYTHONPATH", target.path())))
}

/// Each of `files` was fetched from `upstream` exactly once (pypiserver serves them at
/// `/packages/<file>`).
fn assert_one_upstream_get_per_file(
    upstream: &LabServer,
    files: &[(String, String)],
    proxy: Option<&Depproxy>,
) {
    let requests = upstream.requests();
    let warnings = proxy.map(proxy_warnings).unwrap_or_default();
    for (file, _) in files {
        assert_eq!(
            upstream.count("GET", &format!("/packages/{file}")),
            1,
            "upstream GETs of {file}; all upstream requests: {requests:#?}\nproxy warnings:\n{warnings}"
        );
    }
}

/// The `href`s of an HTML page, resolved against its URL, fragments kept.
fn links(page_url: &str, html: &str) -> Vec<String> {
    let base = reqwest::Url::parse(page_url).unwrap();
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|href| base.join(&href.replace("&amp;", "&")).unwrap().to_string())
        .collect()
}

/// The proxy's page for `project`: the absolute URL of the link to `file` (fragment cut off).
fn file_url(proxy: &Depproxy, project: &str, file: &str) -> String {
    let page = format!("{}{project}/", pypi_index(proxy, "python"));
    let (status, body, _) = curl_get(&page, &["Accept: text/html"]);
    assert_eq!(status, 200, "{page}: {}", String::from_utf8_lossy(&body));
    let html = String::from_utf8(body).unwrap();
    let link = links(&page, &html)
        .into_iter()
        .find(|link| link.split('#').next().unwrap().ends_with(&format!("/{file}")))
        .unwrap_or_else(|| panic!("no link to {file} on {page}:\n{html}"));
    link.split('#').next().unwrap().to_owned()
}

/// The control: the fixtures download straight from pypiserver and the static index, each file
/// fetched once, and pip itself refuses the tampered file, so what the tests below see through the
/// proxy is the proxy's doing.
#[test]
fn pip_downloads_the_fixtures_straight_from_pypiserver_and_the_static_index() {
    tools();
    let fixtures = PythonFixtures::get();
    let upstream = pypiserver(&fixtures.packages());
    let wheels = gamma_wheels(&fixtures);
    let direct = format!("{}/simple/", upstream.url());
    assert_eq!(download_gamma(&direct).unwrap_or_else(|error| panic!("from pypiserver: {error}")), wheels);
    assert_one_upstream_get_per_file(&upstream, &wheels, None);
    assert_eq!(install_gamma(&direct).unwrap().trim(), "1.0 1.1 1.1");

    let pages = static_index(&fixtures.static_tree());
    let direct = format!("{}/simple/", pages.url());
    assert_eq!(
        download_gamma(&direct).unwrap_or_else(|error| panic!("from the static index: {error}")),
        wheels
    );
    let dir = tempfile::tempdir().unwrap();
    let error =
        pip(&["download", "--index-url", &direct, "-d", dir.path().to_str().unwrap(), "dp-tampered==1.0"])
            .unwrap_err();
    assert!(error.contains("THESE PACKAGES DO NOT MATCH THE HASHES"), "{error}");
}

#[test]
fn the_simple_pages_link_every_file_through_the_group_in_html_and_json() {
    tools();
    let fixtures = PythonFixtures::get();
    let upstream = pypiserver(&fixtures.packages());
    let proxy = pypi_proxy(&upstream, "", "");
    let index = pypi_index(&proxy, "python");
    let group = format!("{}/pypi/python/", proxy.url());

    // The HTML page (PEP 503): every link on the proxy, with the sha256 the files were built with.
    let page = format!("{index}dp-alpha/");
    let (status, headers, body) = curl_head_and_body(&page, &["Accept: text/html"]);
    assert_eq!(status, 200, "{page}: {}", String::from_utf8_lossy(&body));
    assert!(headers.get("content-type").is_some_and(|value| value.starts_with("text/html")), "{headers:?}");
    let html = String::from_utf8(body).unwrap();
    let built: Vec<_> = fixtures.files().into_iter().filter(|file| file.project == "dp-alpha").collect();
    let found = links(&page, &html);
    assert_eq!(found.len(), built.len(), "{html}");
    for file in &built {
        let link = found
            .iter()
            .find(|link| link.split('#').next().unwrap().ends_with(&format!("/{}", file.file)))
            .unwrap_or_else(|| panic!("no link to {} in:\n{html}", file.file));
        assert!(link.starts_with(&group), "{link} is not in the proxy's group {group}");
        assert!(link.ends_with(&format!("#sha256={}", file.sha256)), "{link}: not the built file's sha256");
    }
    // Asked for JSON (PEP 691): pypiserver serves HTML only, and PEP 691 lets a server answer a
    // type it has; the proxy passes that on (pip reads either), marked as chosen by Accept. The
    // JSON form's rewrite is covered against an upstream that serves it (`packages::`).
    let (status, headers, body) = curl_head_and_body(&page, &["Accept: application/vnd.pypi.simple.v1+json"]);
    assert_eq!(status, 200, "{page} as JSON: {}", String::from_utf8_lossy(&body));
    assert!(
        headers.get("vary").is_some_and(|value| value.to_ascii_lowercase().contains("accept")),
        "{headers:?}"
    );
    assert!(headers.get("content-type").is_some_and(|value| value.starts_with("text/html")), "{headers:?}");
    assert_eq!(links(&page, &String::from_utf8(body).unwrap()), found, "the same files, through the proxy");
}

#[test]
fn pip_install_through_the_proxy_and_again_with_the_upstream_down() {
    tools();
    let fixtures = PythonFixtures::get();
    let mut upstream = pypiserver(&fixtures.packages());
    let proxy = pypi_proxy(&upstream, "", "");
    let index = pypi_index(&proxy, "python");

    // Cold: pip resolves Dp.Gamma → dp-alpha 1.1 → dp_beta 1.1 through the proxy.
    let versions = install_gamma(&index).unwrap_or_else(|error| panic!("cold pip install: {error}"));
    assert_eq!(versions.trim(), "1.0 1.1 1.1");
    let wheels = gamma_wheels(&fixtures);
    assert_eq!(download_gamma(&index).unwrap_or_else(|error| panic!("pip download: {error}")), wheels);
    assert_one_upstream_get_per_file(&upstream, &wheels, Some(&proxy));

    // Warm, with the upstream gone.
    upstream.stop();
    assert_eq!(
        download_gamma(&index).unwrap_or_else(|error| panic!("warm pip download, upstream down: {error}")),
        wheels
    );
    let versions =
        install_gamma(&index).unwrap_or_else(|error| panic!("warm pip install, upstream down: {error}"));
    assert_eq!(versions.trim(), "1.0 1.1 1.1");
}

#[test]
fn eight_concurrent_cold_pip_downloads_fetch_each_file_once() {
    tools();
    let fixtures = PythonFixtures::get();
    let upstream = pypiserver(&fixtures.packages());
    let proxy = pypi_proxy(&upstream, "", "");
    let index = pypi_index(&proxy, "python");

    let dirs: Vec<tempfile::TempDir> = (0..8).map(|_| tempfile::tempdir().unwrap()).collect();
    let commands = dirs
        .iter()
        .map(|dir| {
            pip_command(&["download", "--index-url", &index, "-d", dir.path().to_str().unwrap(), "Dp.Gamma"])
        })
        .collect();
    for (i, result) in run_all(commands).iter().enumerate() {
        if let Err(error) = result {
            panic!("download {i} failed: {error}");
        }
    }
    let wheels = gamma_wheels(&fixtures);
    for dir in &dirs {
        assert_eq!(file_hashes(dir.path()), wheels);
    }
    assert_one_upstream_get_per_file(&upstream, &wheels, Some(&proxy));
}

#[test]
fn a_file_that_does_not_match_its_listed_sha256_is_refused_and_not_recorded() {
    tools();
    let fixtures = PythonFixtures::get();
    let (file, listed, served) = fixtures.tampered();
    let upstream = static_index(&fixtures.static_tree());
    let proxy = pypi_proxy(&upstream, "", "");
    let index = pypi_index(&proxy, "python");

    for attempt in 1..=2 {
        let dir = tempfile::tempdir().unwrap();
        let downloaded = pip(&[
            "download",
            "--index-url",
            &index,
            "--only-binary",
            ":all:",
            "-d",
            dir.path().to_str().unwrap(),
            "dp-tampered==1.0",
        ]);
        assert!(downloaded.is_err(), "attempt {attempt}: pip downloaded the tampered wheel:\n{downloaded:?}");
        // The proxy's answer for the file: an error, or a body cut short — never the bytes as a
        // complete answer.
        let url = file_url(&proxy, "dp-tampered", &file);
        let (status, body, complete) = curl_get(&url, &[]);
        assert!(
            !(status == 200 && complete),
            "attempt {attempt}: the proxy answered 200 with a complete body for {file} ({} bytes, sha256 {}; listed {listed})",
            body.len(),
            oci::Digest::of(&body).hex()
        );
        let kept = files_with_hash(proxy.data_dir.path(), &served);
        assert!(kept.is_empty(), "attempt {attempt}: the tampered bytes are stored: {kept:?}");
    }
    // Refused after fetching it (not for want of a route): the upstream was asked for the file.
    assert!(upstream.count("GET", &format!("/files/{file}")) >= 1, "{:#?}", upstream.requests());
    // An intact file from the same upstream still downloads.
    let dir = tempfile::tempdir().unwrap();
    pip(&[
        "download",
        "--index-url",
        &index,
        "-d",
        dir.path().to_str().unwrap(),
        "--no-deps",
        "dp-beta==1.1",
    ])
    .unwrap_or_else(|error| panic!("intact download: {error}"));
    let beta = fixtures.files().into_iter().find(|f| f.file == "dp_beta-1.1-py3-none-any.whl").unwrap();
    assert_eq!(file_hashes(dir.path()), vec![(beta.file, beta.sha256)]);
}

#[test]
fn a_token_group_refuses_anonymous_pip_and_takes_credentials_in_the_index_url() {
    tools();
    let fixtures = PythonFixtures::get();
    let upstream = pypiserver(&fixtures.packages());
    let proxy = pypi_proxy(&upstream, "", "access = \"token\"");
    let index = pypi_index(&proxy, "python");

    let (status, body, _) = curl_get(&format!("{index}dp-gamma/"), &[]);
    assert_eq!(status, 401, "anonymous page: {}", String::from_utf8_lossy(&body));
    // pip, without credentials and not interactive, reports the 401 as no versions found.
    let error = download_gamma(&index).unwrap_err();
    assert!(error.contains("No matching distribution found for Dp.Gamma"), "anonymous download: {error}");

    let secret = create_token(&proxy, "python");
    let with_credentials = format!("http://ci:{secret}@127.0.0.1:{}/pypi/python/simple/", proxy.port);
    assert_eq!(
        download_gamma(&with_credentials).unwrap_or_else(|error| panic!("download with the token: {error}")),
        gamma_wheels(&fixtures)
    );
    let versions =
        install_gamma(&with_credentials).unwrap_or_else(|error| panic!("install with the token: {error}"));
    assert_eq!(versions.trim(), "1.0 1.1 1.1");
    let wrong = format!("http://ci:dpp_0123456789abcdef_wrong@127.0.0.1:{}/pypi/python/simple/", proxy.port);
    assert!(download_gamma(&wrong).is_err(), "a wrong token downloads");
}

#[test]
fn a_file_asked_first_is_verified_against_the_page_fetched_for_it() {
    tools();
    let fixtures = PythonFixtures::get();
    let upstream = pypiserver(&fixtures.packages());
    // Where the proxy serves files: learned from one proxy's page, asked of another that never
    // had a page.
    let paths: Vec<(String, String)> = {
        let learner = pypi_proxy(&upstream, "", "");
        ["dp_alpha-1.0-py3-none-any.whl", "dp-alpha-1.0.tar.gz"]
            .iter()
            .map(|file| {
                let url = file_url(&learner, "dp-alpha", file);
                let path =
                    url.strip_prefix(&learner.url()).unwrap_or_else(|| panic!("{url} is not on the proxy"));
                ((*file).to_owned(), path.to_owned())
            })
            .collect()
    };
    let proxy = pypi_proxy(&upstream, "", "");
    for (file, path) in &paths {
        let built = fixtures.files().into_iter().find(|f| &f.file == file).unwrap();
        for round in ["cold", "cached"] {
            let (status, body, complete) = curl_get(&format!("{}{path}", proxy.url()), &[]);
            assert_eq!((status, complete), (200, true), "{round} {path}: {}", String::from_utf8_lossy(&body));
            assert_eq!(oci::Digest::of(&body).hex(), built.sha256, "{round} {path}: other bytes");
        }
        assert_eq!(upstream.count("GET", &format!("/packages/{file}")), 1, "{:#?}", upstream.requests());
    }
}

#[test]
fn a_project_name_that_is_not_normalised_redirects_to_the_normalised_page() {
    tools();
    let fixtures = PythonFixtures::get();
    let upstream = pypiserver(&fixtures.packages());
    let proxy = pypi_proxy(&upstream, "", "");
    let index = pypi_index(&proxy, "python");

    for (asked, normalised) in [("Dp.Gamma", "dp-gamma"), ("dp_beta", "dp-beta"), ("DP--Alpha", "dp-alpha")] {
        let (status, headers, _) = curl_head_and_body(&format!("{index}{asked}/"), &[]);
        assert!(status == 301 || status == 308, "{asked}: {status} {headers:?}");
        let location = headers.get("location").unwrap_or_else(|| panic!("{asked}: no Location"));
        // A relative Location is resolved against the URL asked (RFC 9110).
        let target = reqwest::Url::parse(&format!("{index}{asked}/")).unwrap().join(location).unwrap();
        assert_eq!(target.as_str(), format!("{index}{normalised}/"), "{asked} → {location}");
        let (status, _, _) = curl_head_and_body(&format!("{index}{normalised}/"), &[]);
        assert_eq!(status, 200, "{normalised}");
        assert_eq!(upstream.count("GET", &format!("/simple/{asked}/")), 0, "the redirect asked the upstream");
    }
}

#[test]
fn files_on_another_host_come_through_files_url() {
    tools();
    let fixtures = PythonFixtures::get();
    // Two static servers over one PEP 503 tree: the pages from one, whose links (and PEP 658
    // metadata links) point at the other. The tree is written once to start the file host on it,
    // then again with its URL in the links.
    let tree = tempfile::tempdir().unwrap();
    let make_index = |files_url: Option<&str>| {
        let mut command = Command::new("python3");
        command
            .arg(repo_root().join("scripts/lab/make-simple-index.py"))
            .arg(fixtures.packages())
            .arg(tree.path());
        if let Some(url) = files_url {
            command.args(["--files-url", url]);
        }
        run(&mut command);
    };
    make_index(None);
    let files = static_index(tree.path());
    make_index(Some(&format!("{}/files/", files.url())));
    let pages = static_index(tree.path());
    let proxy = pypi_proxy(&pages, &format!("files_url = \"{}\"", files.url()), "");
    let index = pypi_index(&proxy, "python");

    let url = file_url(&proxy, "dp-beta", "dp_beta-1.1-py3-none-any.whl");
    let group = format!("{}/pypi/python/", proxy.url());
    assert!(url.starts_with(&group), "{url}: the file link is not rewritten into the group {group}");
    let wheels = gamma_wheels(&fixtures);
    assert_eq!(download_gamma(&index).unwrap_or_else(|error| panic!("pip download: {error}")), wheels);
    let requests = files.requests();
    for (file, _) in &wheels {
        assert_eq!(
            files.count("GET", &format!("/files/{file}")),
            1,
            "file host GETs of {file}: {requests:#?}\nproxy warnings:\n{}",
            proxy_warnings(&proxy)
        );
    }
    // Not /simple/ itself: the start script's readiness probe asks for it.
    assert_eq!(files.count_matching("GET", "/simple/dp-"), 0, "pages asked of the file host: {requests:#?}");
    assert_eq!(
        pages.count_matching("GET", "/files/"),
        0,
        "files asked of the index host: {:#?}",
        pages.requests()
    );
    assert!(pages.count_matching("GET", "/simple/dp-gamma/") >= 1, "{:#?}", pages.requests());
}
