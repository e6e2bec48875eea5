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

    let locked = Registry::builder().htpasswd("bob", "pw-1").start();
    let cog = TestImage::new(
        &[
            ("run.cog.config", r#"{"build":{}}"#),
            ("run.cog.version", "0.18.1"),
        ],
        vec![],
    );
    store.put_bytes(&cog.config).unwrap();
    let digest = store.put_bytes(&cog.manifest).unwrap();
    let name = format!("{}/test/local-cog:v1", locked.host);
    let descriptor = Descriptor::new(
        media::OCI_MANIFEST,
        cog.manifest.len() as u64,
        digest.clone(),
    );
    store.tag_image(&name, &descriptor).unwrap();
    let out = cogpack(home.path(), &["inspect", "--json", &name], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["cog_version"], "0.18.1");
    assert_eq!(doc["digest"], digest.to_string().as_str());
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

/// A stand-in for Replicate's two login endpoints (the real service cannot
/// run on loopback): `GET /cog/v1/display-token-url` and
/// `POST /cog/v1/verify-token`, which accepts exactly `token`.
struct ReplicateLogin {
    host: String,
    bodies: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ReplicateLogin {
    fn start(token: &'static str, username: &'static str) -> ReplicateLogin {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&bodies);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (path, body) = read_request(&stream);
                seen.lock().unwrap().push(body.clone());
                let (status, reply) = match path.as_str() {
                    "/cog/v1/display-token-url" => (
                        "200 OK",
                        r#"{"url":"https://example.invalid/auth/token"}"#.to_string(),
                    ),
                    "/cog/v1/verify-token" if body == format!("token={token}") => {
                        ("200 OK", format!(r#"{{"username":"{username}"}}"#))
                    }
                    "/cog/v1/verify-token" => ("401 Unauthorized", "{}".to_string()),
                    _ => ("404 Not Found", "{}".to_string()),
                };
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                );
            }
        });
        ReplicateLogin { host, bodies }
    }
}

/// Reads one HTTP/1.1 request: its path and body.
fn read_request(stream: &std::net::TcpStream) -> (String, String) {
    use std::io::{BufRead, BufReader, Read};
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        if header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    (path, String::from_utf8_lossy(&body).into_owned())
}

fn cogpack_with_host(home: &Path, host: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cogpack"))
        .args(args)
        .current_dir(home)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("COG_REGISTRY_HOST", host)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cogpack");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn login_to_the_replicate_host_uses_the_token_flow() {
    let server = ReplicateLogin::start("cli-token-4242", "replicate-user");
    let home = tempfile::tempdir().unwrap();

    let out = cogpack_with_host(home.path(), &server.host, &["login"], b"cli-token-4242\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("https://example.invalid/auth/token"),
        "{stdout}"
    );
    assert!(stdout.contains("replicate-user"), "{stdout}");
    assert!(!(stdout + &text(&out.stderr)).contains("cli-token-4242"));
    let expected =
        base64::engine::general_purpose::STANDARD.encode("replicate-user:cli-token-4242");
    assert_eq!(
        stored_auth(home.path(), &server.host).as_deref(),
        Some(expected.as_str())
    );
    assert!(
        server
            .bodies
            .lock()
            .unwrap()
            .contains(&"token=cli-token-4242".to_string())
    );

    let other = tempfile::tempdir().unwrap();
    let out = cogpack_with_host(
        other.path(),
        &server.host,
        &["login", "--password-stdin"],
        b"not-the-token\n",
    );
    assert!(!out.status.success());
    assert!(!text(&out.stderr).contains("not-the-token"));
    assert_eq!(stored_auth(other.path(), &server.host), None);

    let posts_before = server.bodies.lock().unwrap().len();
    let out = cogpack_with_host(
        other.path(),
        &server.host,
        &["login", "--password-stdin"],
        b"r8_api_token_value\n",
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("API token"), "{stderr}");
    assert!(!stderr.contains("r8_api_token_value"), "{stderr}");
    assert_eq!(server.bodies.lock().unwrap().len(), posts_before);
}
