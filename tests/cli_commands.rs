//! `cogpack inspect`, `cogpack login` and `cogpack gc` run as the built
//! binary against a real loopback registry and a temp local store.

mod common;

use base64::Engine as _;
use cogpack::oci::media;
use cogpack::oci::store::Store;
use cogpack::oci::{Descriptor, Digest};
use cogpack::registry::{Client, ClientOptions, NoProgress, Progress, Reference, UploadOptions};
use common::registry::Registry;
use common::registry::images::{TestImage, TestLayer};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

/// Runs cogpack with every state directory inside `home`, feeding `stdin`.
fn cogpack(home: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cogpack"))
        .args(args)
        .current_dir(home)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("COGPACK_HOME", home.join("store"))
        .env("COG_CACHE_DIR", home.join("cache"))
        .env("DOCKER_CONFIG", home.join("docker"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cogpack");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn push(registry: &Registry, name: &str, image: &TestImage) {
    let reference = Reference::parse(&format!("{}/{name}", registry.host)).unwrap();
    let client = Client::new(ClientOptions::default()).unwrap();
    let progress: Arc<dyn Progress> = Arc::new(NoProgress);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(client.push_image(&reference, image, &UploadOptions::default(), &progress))
        .unwrap();
}

fn small_layer() -> TestLayer {
    TestLayer::tar_gz(&[("hello.txt", b"hello")])
}

#[test]
fn inspect_reads_cog_labels_and_refuses_other_images() {
    let registry = Registry::start();
    let home = tempfile::tempdir().unwrap();
    let config = r#"{"build":{"python_version":"3.12"},"predict":"predict.py:Predictor"}"#;
    let cog = TestImage::new(
        &[
            ("run.cog.config", config),
            ("run.cog.version", "0.19.0"),
            ("run.cog.openapi_schema", ""),
        ],
        vec![small_layer()],
    );
    push(&registry, "test/cog-model:v1", &cog);
    let plain = TestImage::new(&[("maintainer", "nobody")], vec![small_layer()]);
    push(&registry, "test/plain:v1", &plain);

    let cog_ref = format!("{}/test/cog-model:v1", registry.host);
    let out = cogpack(home.path(), &["inspect", &cog_ref], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    assert!(summary.contains("cog        0.19.0"), "{summary}");
    assert!(
        summary.contains("predict    predict.py:Predictor"),
        "{summary}"
    );

    let out = cogpack(home.path(), &["inspect", "--json", &cog_ref], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["format"], "image");
    assert_eq!(doc["config"]["build"]["python_version"], "3.12");
    assert_eq!(
        doc["digest"],
        Digest::of_bytes(&cog.manifest).to_string().as_str()
    );

    let plain_ref = format!("{}/test/plain:v1", registry.host);
    let out = cogpack(home.path(), &["inspect", &plain_ref], b"");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("image is not a Cog model"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(out.stdout.is_empty());

    let missing = format!("{}/test/absent:v1", registry.host);
    let out = cogpack(home.path(), &["inspect", &missing], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not found"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn inspect_falls_back_to_the_local_store() {
    let registry = Registry::start();
    let home = tempfile::tempdir().unwrap();
    let store = Store::open(home.path().join("store")).unwrap();
    let plain = TestImage::new(&[("maintainer", "nobody")], vec![]);
    store.put_bytes(&plain.config).unwrap();
    let digest = store.put_bytes(&plain.manifest).unwrap();
    let name = format!("{}/test/local-only:v1", registry.host);
    let descriptor = Descriptor::new(media::OCI_MANIFEST, plain.manifest.len() as u64, digest);
    store.tag_image(&name, &descriptor).unwrap();

    let out = cogpack(home.path(), &["inspect", &name], b"");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("image is not a Cog model"), "{stderr}");
    assert!(stderr.contains("local-only"), "{stderr}");
}

fn stored_auth(home: &Path, host: &str) -> Option<String> {
    let bytes = std::fs::read(home.join("docker/config.json")).ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    doc["auths"][host]["auth"].as_str().map(str::to_string)
}

#[test]
fn login_checks_and_stores_credentials_without_printing_them() {
    let registry = Registry::builder()
        .htpasswd("alice", "correct-horse-7")
        .start();
    let home = tempfile::tempdir().unwrap();

    let out = cogpack(
        home.path(),
        &["login", &registry.host, "-u", "alice", "--password-stdin"],
        b"wrong-battery-9\n",
    );
    assert!(!out.status.success());
    let shown = text(&out.stdout) + &text(&out.stderr);
    assert!(!shown.contains("wrong-battery-9"), "{shown}");
    assert!(shown.contains(&registry.host), "{shown}");
    assert_eq!(stored_auth(home.path(), &registry.host), None);

    let out = cogpack(
        home.path(),
        &["login", &registry.host, "-u", "alice", "--password-stdin"],
        b"correct-horse-7\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout) + &text(&out.stderr);
    assert!(!shown.contains("correct-horse-7"), "{shown}");
    let expected = base64::engine::general_purpose::STANDARD.encode("alice:correct-horse-7");
    assert_eq!(
        stored_auth(home.path(), &registry.host).as_deref(),
        Some(expected.as_str())
    );

    let out = cogpack(
        home.path(),
        &["login", &registry.host, "--password-stdin"],
        b"x\n",
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("-u USER"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn gc_removes_unreferenced_blobs_and_keeps_referenced_ones() {
    let home = tempfile::tempdir().unwrap();
    let store = Store::open(home.path().join("store")).unwrap();
    let layer = small_layer();
    let image = TestImage::new(&[("a", "b")], vec![layer.clone()]);
    let layer_digest = store.put_bytes(&image.layers[0].bytes()).unwrap();
    let config_digest = store.put_bytes(&image.config).unwrap();
    let manifest_digest = store.put_bytes(&image.manifest).unwrap();
    let descriptor = Descriptor::new(
        media::OCI_MANIFEST,
        image.manifest.len() as u64,
        manifest_digest.clone(),
    );
    store.tag_image("local/kept:1", &descriptor).unwrap();
    let orphan = store.put_bytes(b"nobody points at me").unwrap();
    let referenced = [layer_digest, config_digest, manifest_digest];

    let out = cogpack(home.path(), &["gc", "--dry-run"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(
        listing.contains(&format!("would remove {orphan}")),
        "{listing}"
    );
    assert!(store.has_blob(&orphan), "dry run deleted a blob");
    for digest in &referenced {
        assert!(!listing.contains(&digest.to_string()), "{listing}");
    }

    let out = cogpack(home.path(), &["gc"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(listing.contains(&format!("removed {orphan}")), "{listing}");
    assert!(listing.contains("Removed 1 blob(s)"), "{listing}");
    assert!(!store.has_blob(&orphan));
    for digest in &referenced {
        assert!(store.has_blob(digest), "gc removed referenced {digest}");
    }
}
