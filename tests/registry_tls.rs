//! TLS: a registry serving HTTPS on 127.0.0.1 with a certificate from a test
//! CA. Untrusted ⇒ clear TLS error; plain-HTTP server where HTTPS is required
//! ⇒ error, never a fallback to HTTP; trusted through `SSL_CERT_FILE` ⇒ push
//! and pull work. One test in this binary: it sets SSL_CERT_FILE before any
//! other thread runs.

#[path = "common/registry.rs"]
mod registry;

use cogpack::registry::{
    Client, ClientOptions, DockerConfig, NoProgress, Progress, Reference, RegistryError,
    RegistrySettings, RetryPolicy, UploadOptions,
};
use registry::Registry;
use registry::images::{TestImage, TestLayer};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Writes ca.pem, and server.pem/server.key for IP 127.0.0.1 signed by it.
fn make_certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ca.key",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-days",
            "2",
            "-subj",
            "/CN=cogpack test CA",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "server.key",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "server.key",
            "-subj",
            "/CN=127.0.0.1",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
    );
}

fn client_for(hosts: &[&str], config_dir: &Path) -> Client {
    Client::new(ClientOptions {
        settings: RegistrySettings {
            secure: hosts.iter().map(|h| h.to_string()).collect(),
            ..Default::default()
        },
        docker_config: Some(DockerConfig::load(&config_dir.join("config.json")).unwrap()),
        retry: RetryPolicy {
            attempts: 1,
            initial_delay: Duration::from_millis(10),
            factor: 2.0,
            max_delay: Duration::from_millis(10),
        },
    })
    .unwrap()
}

#[test]
fn https_registry_needs_a_trusted_certificate_and_never_falls_back_to_http() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let tls_registry = Registry::builder()
        .tls(
            &certs.path().join("server.pem"),
            &certs.path().join("server.key"),
        )
        .start();
    let plain_registry = Registry::start();
    let config_dir = tempfile::tempdir().unwrap();
    let image = TestImage::new(
        &[("run.cog.config", "{}")],
        vec![TestLayer::tar_gz(&[("a", b"tls")])],
    );
    let progress: Arc<dyn Progress> = Arc::new(NoProgress);
    let tls_target = Reference::parse(&format!("{}/user/model:tls", tls_registry.host)).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let untrusted = client_for(
        &[&tls_registry.host, &plain_registry.host],
        config_dir.path(),
    );
    let err = runtime
        .block_on(untrusted.manifest_exists(&tls_target))
        .unwrap_err();
    assert!(matches!(err, RegistryError::Network { .. }), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    let plain_target =
        Reference::parse(&format!("{}/user/model:plain", plain_registry.host)).unwrap();
    let err = runtime
        .block_on(untrusted.push_image(&plain_target, &image, &UploadOptions::default(), &progress))
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Network { .. }),
        "HTTPS was required: {err}"
    );
    assert!(
        plain_registry
            .requests()
            .iter()
            .all(|r| !r.path.starts_with("/v2/user")),
        "no request fell back to plain HTTP"
    );

    // SAFETY: single-test binary; the runtime's worker threads do not read
    // the environment concurrently with this write.
    unsafe { std::env::set_var("SSL_CERT_FILE", certs.path().join("ca.pem")) };
    let trusted = client_for(&[&tls_registry.host], config_dir.path());
    runtime
        .block_on(trusted.push_image(&tls_target, &image, &UploadOptions::default(), &progress))
        .unwrap();
    let (_, fetched) = runtime.block_on(trusted.get_manifest(&tls_target)).unwrap();
    assert_eq!(fetched.bytes, image.manifest);
    assert!(tls_registry.requests().iter().any(|r| r.method == "PUT"));
}
