//! End to end with real parts: a real `distribution` registry as upstream holding images built
//! offline by `scripts/make-images.py`, depproxy as a real process (serve mode and split mode), and
//! `skopeo` pulling every image through it in both URL forms.
//!
//! Needs docker-registry, skopeo, python3 and curl (`scripts/install-test-deps.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::processes::{
    Depproxy, Registry, dir_contents, push_test_images, require_tools, skopeo_pull, stored_object_hashes,
};

/// (repository, needs --all)
const IMAGES: &[(&str, bool)] = &[
    ("lab/tiny", false),
    ("lab/tiny-docker", false),
    ("lab/layers", false),
    ("lab/medium", false),
    ("lab/multi", true),
];

fn pull_everything_through(proxy: &Depproxy, registry: &Registry) {
    let work = tempfile::tempdir().unwrap();
    for &(image, all) in IMAGES {
        let direct = work.path().join("direct");
        skopeo_pull(&format!("{}/{image}:v1", registry.address()), &direct, all);
        let expected = dir_contents(&direct);
        let forms = [
            format!("{}/{image}:v1", proxy.address()),
            format!("{}/default/dependency_proxy/containers/{image}:v1", proxy.address()),
        ];
        for reference in &forms {
            let before = registry.count("GET", "/blobs/");
            let out = work.path().join("proxied");
            skopeo_pull(reference, &out, all);
            assert_eq!(dir_contents(&out), expected, "{reference}: content differs from the upstream's");
            if reference != &forms[0] {
                assert_eq!(
                    registry.count("GET", "/blobs/"),
                    before,
                    "{reference}: a second pull fetched blobs upstream"
                );
            }
        }
        // Once more in mirror form: everything comes from the cache.
        let before_blobs = registry.count("GET", "/blobs/");
        let before_manifests = registry.count("GET", "/manifests/");
        skopeo_pull(&forms[0], &work.path().join("again"), all);
        assert_eq!(
            registry.count("GET", "/blobs/"),
            before_blobs,
            "{image}: warm pull fetched blobs upstream"
        );
        assert_eq!(
            registry.count("GET", "/manifests/"),
            before_manifests,
            "{image}: warm pull fetched manifests upstream"
        );
    }
    let objects = stored_object_hashes(proxy.data_dir.path());
    assert!(objects.len() > 20, "expected the pulled images in storage, found {}", objects.len());
    for (name, hash) in objects {
        assert_eq!(name, hash, "a stored object does not hash to its name");
    }
    assert_eq!(
        std::fs::read_dir(proxy.data_dir.path().join("tmp")).unwrap().count(),
        0,
        "temp data left behind"
    );
}

#[test]
fn skopeo_pulls_every_image_through_serve_mode() {
    require_tools(&["docker-registry", "skopeo", "python3", "curl"]);
    let registry = Registry::start();
    push_test_images(&registry);
    let proxy = Depproxy::serve(&format!("http://{}", registry.address()));
    pull_everything_through(&proxy, &registry);
}

#[test]
fn skopeo_pulls_every_image_through_split_mode() {
    require_tools(&["docker-registry", "skopeo", "python3", "curl"]);
    let registry = Registry::start();
    push_test_images(&registry);
    let proxy = Depproxy::split(&format!("http://{}", registry.address()));
    pull_everything_through(&proxy, &registry);
}
