//! Credentials from a `docker-credential-*` helper script, against an
//! htpasswd registry and a token-auth registry. One test in this binary: it
//! puts the helper on PATH before any other thread runs.

#[path = "common/registry.rs"]
mod registry;
#[path = "common/token_server.rs"]
mod token_server;

use cogpack::registry::{
    Client, ClientOptions, DockerConfig, NoProgress, Progress, Reference, UploadOptions,
};
use registry::images::{TestImage, TestLayer};
use registry::{Registry, TokenAuth};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

const PASSWORD: &str = "helper-Pa55";

/// Writes `docker-credential-cogtest`, answering `get` for every known host
/// and logging each call, and returns the directory to add to PATH.
fn install_helper(dir: &Path, hosts: &[&str]) {
    let mut cases = String::new();
    for host in hosts {
        cases.push_str(&format!(
            "  {host}) printf '{{\"ServerURL\":\"%s\",\"Username\":\"dana\",\"Secret\":\"{PASSWORD}\"}}' \"$server\" ;;\n"
        ));
    }
    let script = format!(
        "#!/bin/sh\nread server\necho \"$1 $server\" >> '{log}'\n[ \"$1\" = get ] || exit 1\ncase \"$server\" in\n{cases}  *) echo 'credentials not found in native keychain'; exit 1 ;;\nesac\n",
        log = dir.join("helper.log").display()
    );
    let path = dir.join("docker-credential-cogtest");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn image() -> TestImage {
    TestImage::new(
        &[("run.cog.config", "{}")],
        vec![TestLayer::tar_gz(&[("a", b"helper")])],
    )
}

#[test]
fn credential_helper_supplies_basic_and_token_credentials() {
    let helper_dir = tempfile::tempdir().unwrap();
    let path = format!(
        "{}:{}",
        helper_dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // SAFETY: this binary has a single test and no other thread exists yet.
    unsafe { std::env::set_var("PATH", path) };

    let basic = Registry::builder().htpasswd("dana", PASSWORD).start();
    let server = token_server::TokenServer::start(&[("dana", PASSWORD, "pull,push")]);
    let token = Registry::builder()
        .token_auth(TokenAuth {
            realm: server.realm.clone(),
            service: server.service.clone(),
            issuer: server.issuer.clone(),
            cert: server.cert.clone(),
        })
        .start();
    install_helper(helper_dir.path(), &[&basic.host, &token.host]);

    let config_dir = tempfile::tempdir().unwrap();
    let config_path = config_dir.path().join("config.json");
    std::fs::write(
        &config_path,
        serde_json::json!({"credsStore": "missing-store", "credHelpers": {basic.host.clone(): "cogtest", token.host.clone(): "cogtest"}})
            .to_string(),
    )
    .unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = Client::new(ClientOptions {
            docker_config: Some(DockerConfig::load(&config_path).unwrap()),
            ..Default::default()
        })
        .unwrap();
        let progress: Arc<dyn Progress> = Arc::new(NoProgress);
        for host in [&basic.host, &token.host] {
            let target = Reference::parse(&format!("{host}/dana/model:v1")).unwrap();
            let image = image();
            client
                .push_image(&target, &image, &UploadOptions::default(), &progress)
                .await
                .unwrap();
            let (_, fetched) = client.get_manifest(&target).await.unwrap();
            assert_eq!(fetched.bytes, image.manifest);
        }
    });
    let log = std::fs::read_to_string(helper_dir.path().join("helper.log")).unwrap();
    assert!(log.contains(&format!("get {}", basic.host)), "{log}");
    assert!(log.contains(&format!("get {}", token.host)), "{log}");
    assert!(server.requests().iter().any(|t| t["subject"] == "dana"));
}
