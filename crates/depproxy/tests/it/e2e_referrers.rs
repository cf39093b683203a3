//! End to end with real parts, signatures and attestations that work offline: a real
//! `distribution` registry, `depproxy serve` as a real process, oras-py (the Python ORAS client)
//! attaching an SBOM to an image (a manifest with a `subject`) and pushing a cosign-style
//! `sha256-<hex>.sig` tag. The lab's `distribution` (2.8) does not serve the referrers API
//! (`/v2/<name>/referrers/<digest>` answers 404), so the artifact is found the way ORAS and
//! notation find it there: through the referrers tag schema, an index tagged `sha256-<hex>`.
//! Pulled through the proxy, then the registry is stopped, and every pull works again from the
//! cache — the referrers API still answering 404 (not 502), so clients keep falling back.
//!
//! Needs docker-registry, skopeo, python3 with oras, curl (`scripts/install-test-deps.sh`).

use std::process::Command;

use crate::support::processes::{Depproxy, Registry, push_test_images, require_tools, run};

/// oras-py against the lab registry (`push`) or through the proxy (`pull`).
///
/// `push REGISTRY`: attaches an SBOM to `lab/tiny:v1` (an artifact whose `subject` is the image,
/// its type the config's media type), pushes a cosign-style signature tag `sha256-<hex>.sig`, and
/// the referrers tag schema's index `sha256-<hex>` listing the SBOM (what ORAS pushes to a
/// registry without the referrers API). `pull PROXY OUT`: what a verifier does — the referrers
/// API's status, then the tag-schema index, each referrer pulled with its files, the signature
/// tag pulled — printed as JSON.
const ORAS_SCRIPT: &str = r#"
import hashlib, json, os, sys
import oras.client, oras.oci, requests

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
SBOM_TYPE = "application/vnd.example.sbom.v1"
mode, host = sys.argv[1], sys.argv[2]
client = oras.client.OrasClient(hostname=host, insecure=True)
image = requests.get(f"http://{host}/v2/lab/tiny/manifests/v1", headers={"Accept": MANIFEST + ", " + INDEX})
image.raise_for_status()
subject = image.headers["Docker-Content-Digest"]
fallback_tag = subject.replace(":", "-")

if mode == "push":
    os.chdir(sys.argv[3])
    with open("sbom.spdx.json", "w") as f:
        f.write('{"spdxVersion": "SPDX-2.3", "name": "lab/tiny"}')
    with open("signature.json", "w") as f:
        f.write('{"critical": {"image": {"docker-manifest-digest": "%s"}}}' % subject)
    attached = oras.oci.Subject(mediaType=image.headers["Content-Type"], digest=subject,
                                size=len(image.content))
    pushed = client.push(target=f"{host}/lab/tiny:sbom", files=["sbom.spdx.json:application/spdx+json"],
                         manifest_config=f"/dev/null:{SBOM_TYPE}", subject=attached)
    sbom = pushed.headers["Docker-Content-Digest"]
    sbom_size = int(requests.head(f"http://{host}/v2/lab/tiny/manifests/{sbom}",
                                  headers={"Accept": MANIFEST}).headers["Content-Length"])
    client.push(target=f"{host}/lab/tiny:{fallback_tag}.sig",
                files=["signature.json:application/vnd.dev.cosign.simplesigning.v1+json"])
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [
        {"mediaType": MANIFEST, "digest": sbom, "size": sbom_size, "artifactType": SBOM_TYPE}]}
    body = json.dumps(index).encode()
    put = requests.put(f"http://{host}/v2/lab/tiny/manifests/{fallback_tag}", data=body,
                       headers={"Content-Type": INDEX})
    put.raise_for_status()
    print(json.dumps({"subject": subject, "sbom": sbom,
                      "index": "sha256:" + hashlib.sha256(body).hexdigest()}))
else:
    out = sys.argv[3]
    api = requests.get(f"http://{host}/v2/lab/tiny/referrers/{subject}")
    index = client.get_manifest(f"{host}/lab/tiny:{fallback_tag}", allowed_media_type=[INDEX])
    found = {}
    for descriptor in index["manifests"]:
        target = os.path.join(out, descriptor["digest"].replace(":", "-"))
        files = client.pull(target=f"{host}/lab/tiny@{descriptor['digest']}", outdir=target)
        found[descriptor["digest"]] = {
            "artifactType": descriptor.get("artifactType"),
            "files": {os.path.basename(p): open(p).read() for p in files},
        }
    signature = client.pull(target=f"{host}/lab/tiny:{fallback_tag}.sig", outdir=os.path.join(out, "sig"))
    print(json.dumps({
        "referrers_api": api.status_code,
        "referrers_api_code": api.json()["errors"][0]["code"] if api.status_code == 404 else None,
        "referrers": found,
        "signature": {os.path.basename(p): open(p).read() for p in signature},
    }, sort_keys=True))
"#;

fn oras(args: &[&str]) -> serde_json::Value {
    let printed = run(Command::new("python3").arg("-c").arg(ORAS_SCRIPT).args(args));
    let last = printed.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|error| panic!("{error}: {printed}"))
}

/// `curl -sI`: the status line and headers of `url`, lowercased.
fn head(url: &str) -> String {
    run(Command::new("curl").args(["-s", "-o", "/dev/null", "-D", "-", url])).to_lowercase()
}

#[test]
fn an_attached_sbom_and_a_signature_pulled_through_the_proxy_are_pulled_again_with_the_registry_down() {
    require_tools(&["docker-registry", "skopeo", "python3", "curl"]);
    let mut registry = Registry::start();
    push_test_images(&registry);
    let work = tempfile::tempdir().unwrap();
    let pushed = oras(&["push", &registry.address(), &work.path().display().to_string()]);
    let subject = pushed["subject"].as_str().unwrap().to_owned();
    let sbom = pushed["sbom"].as_str().unwrap().to_owned();
    // The lab registry has no referrers API: the fallback below is what clients use with it.
    let direct = head(&format!("http://{}/v2/lab/tiny/referrers/{subject}", registry.address()));
    assert!(direct.starts_with("http/1.1 404"), "{direct}");

    // Every tag is rechecked on every request, so the pulls after the registry stops can only
    // come from the cache served stale.
    let proxy = Depproxy::serve_with_config(&format!(
        "[[upstream]]\nname = \"lab\"\nurl = \"http://{}\"\n\n[[group]]\npath = \"default\"\nupstream = \"lab\"\n\
         manifest_recheck = \"0s\"\n\n[timeouts]\nconnect = \"1s\"\nrecheck = \"2s\"\n",
        registry.address()
    ));
    let online_dir = work.path().join("online");
    let online = oras(&["pull", &proxy.address(), &online_dir.display().to_string()]);
    assert_eq!(online["referrers_api"], 404, "{online}");
    assert_eq!(online["referrers_api_code"], "MANIFEST_UNKNOWN", "{online}");
    let attached = &online["referrers"][&sbom];
    assert_eq!(attached["artifactType"], "application/vnd.example.sbom.v1", "{online}");
    assert!(attached["files"]["sbom.spdx.json"].as_str().unwrap().contains("SPDX-2.3"), "{online}");
    assert!(online["signature"]["signature.json"].as_str().unwrap().contains(&subject), "{online}");
    assert!(registry.count("GET", &format!("/referrers/{subject}")) >= 1, "the proxy asked upstream");

    registry.stop();
    let offline_dir = work.path().join("offline");
    let offline = oras(&["pull", &proxy.address(), &offline_dir.display().to_string()]);
    assert_eq!(offline, online, "the same answers from the cache");
    // What the cache served without its upstream is marked stale.
    let fallback = head(&format!("{}/v2/lab/tiny/manifests/{}", proxy.url(), subject.replace(':', "-")));
    assert!(fallback.starts_with("http/1.1 200"), "{fallback}");
    assert!(fallback.contains("warning: 110"), "{fallback}");
    assert!(
        fallback.contains(&format!("docker-content-digest: {}", pushed["index"].as_str().unwrap())),
        "{fallback}"
    );
    let referrers = head(&format!("{}/v2/lab/tiny/referrers/{subject}", proxy.url()));
    assert!(referrers.starts_with("http/1.1 404"), "still the fallback's signal, not a 502: {referrers}");
}
