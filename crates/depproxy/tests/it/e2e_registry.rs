//! End to end with real parts: a real `distribution` registry as upstream holding images built
//! offline by `scripts/make-images.py`, depproxy as a real process (serve mode and split mode), and
//! `skopeo` pulling every image through it in both URL forms.
//!
//! Needs docker-registry, skopeo, python3 and curl (`scripts/install-test-deps.sh`).

use crate::support::backends::{S3Server, postgres_url};
use crate::support::processes::{
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

/// Every stored object as (name, sha256 of its content).
type StoredObjects<'a> = &'a dyn Fn() -> Vec<(String, String)>;

fn pull_everything_through(proxy: &Depproxy, registry: &Registry, stored: StoredObjects<'_>) {
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
    let objects = stored();
    assert!(objects.len() > 20, "expected the pulled images in storage, found {}", objects.len());
    for (name, hash) in objects {
        assert_eq!(name, hash, "a stored object does not hash to its name");
    }
    for temp in ["tmp", "spool/tmp"] {
        let entries = std::fs::read_dir(proxy.data_dir.path().join(temp)).map(|dir| dir.count()).unwrap_or(0);
        assert_eq!(entries, 0, "temp data left behind in {temp}");
    }
}

#[test]
fn skopeo_pulls_every_image_through_serve_mode() {
    require_tools(&["docker-registry", "skopeo", "python3", "curl"]);
    let registry = Registry::start();
    push_test_images(&registry);
    let proxy = Depproxy::serve(&format!("http://{}", registry.address()));
    pull_everything_through(&proxy, &registry, &|| stored_object_hashes(proxy.data_dir.path()));
}

#[test]
fn skopeo_pulls_every_image_through_split_mode() {
    require_tools(&["docker-registry", "skopeo", "python3", "curl"]);
    let registry = Registry::start();
    push_test_images(&registry);
    let proxy = Depproxy::split(&format!("http://{}", registry.address()));
    pull_everything_through(&proxy, &registry, &|| stored_object_hashes(proxy.data_dir.path()));
}

#[test]
fn skopeo_pulls_every_image_through_s3_and_postgres() {
    require_tools(&["docker-registry", "skopeo", "python3", "curl", "psql"]);
    let registry = Registry::start();
    push_test_images(&registry);
    let s3 = S3Server::start();
    let config = format!(
        "database_url = \"{}\"\n[[upstream]]\nname = \"lab\"\nurl = \"http://{}\"\n[[group]]\npath = \"default\"\nupstream = \"lab\"\n{}",
        postgres_url(),
        registry.address(),
        s3.storage_toml()
    );
    let proxy = Depproxy::serve_with_config(&config);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let in_bucket = || {
        runtime.block_on(async {
            let mut objects = Vec::new();
            for key in s3.keys() {
                let bytes = s3.object(&key).await.unwrap();
                let name = key.rsplit('/').next().unwrap().to_owned();
                objects.push((name, oci::Digest::of(&bytes).hex().to_owned()));
            }
            objects
        })
    };
    pull_everything_through(&proxy, &registry, &in_bucket);
    assert!(
        stored_object_hashes(proxy.data_dir.path()).is_empty(),
        "objects went to the bucket, not to disk"
    );
}
