//! Authentication against real registries: htpasswd (Basic) and token auth
//! with our own token server; credentials from a test config.json.

#[path = "common/registry.rs"]
mod registry;
#[path = "common/token_server.rs"]
mod token_server;

use cogpack::registry::{
    Client, ClientOptions, DockerConfig, NoProgress, Progress, Reference, RegistryError,
    RetryPolicy, UploadOptions,
};
use registry::images::{TestImage, TestLayer};
use registry::{Registry, TokenAuth};
use std::sync::Arc;
use std::time::Duration;
use token_server::TokenServer;

const PASSWORD: &str = "s3cret-Pa55";

fn config_with_auths(
    dir: &std::path::Path,
    host: &str,
    user: &str,
    password: &str,
) -> DockerConfig {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let path = dir.join("config.json");
    std::fs::write(
        &path,
        serde_json::json!({"auths": {host: {"auth": auth}}}).to_string(),
    )
    .unwrap();
    DockerConfig::load(&path).unwrap()
}

fn client(config: DockerConfig) -> Client {
    Client::new(ClientOptions {
        docker_config: Some(config),
        retry: RetryPolicy {
            attempts: 2,
            initial_delay: Duration::from_millis(20),
            factor: 2.0,
            max_delay: Duration::from_millis(100),
        },
        ..Default::default()
    })
    .unwrap()
}

fn quiet() -> Arc<dyn Progress> {
    Arc::new(NoProgress)
}

fn image() -> TestImage {
    TestImage::new(
        &[("run.cog.config", "{}")],
        vec![TestLayer::tar_gz(&[("src/predict.py", b"auth test")])],
    )
}

fn token_registry(server: &TokenServer) -> Registry {
    Registry::builder()
        .token_auth(TokenAuth {
            realm: server.realm.clone(),
            service: server.service.clone(),
            issuer: server.issuer.clone(),
            cert: server.cert.clone(),
        })
        .start()
}

async fn push_and_pull(client: &Client, target: &Reference) -> Result<(), RegistryError> {
    let image = image();
    client
        .push_image(target, &image, &UploadOptions::default(), &quiet())
        .await?;
    let (_, fetched) = client.get_manifest(target).await?;
    assert_eq!(fetched.bytes, image.manifest);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn htpasswd_basic_push_and_pull_with_config_json_credentials() {
    let registry = Registry::builder().htpasswd("alice", PASSWORD).start();
    let dir = tempfile::tempdir().unwrap();
    let client = client(config_with_auths(
        dir.path(),
        &registry.host,
        "alice",
        PASSWORD,
    ));
    let target = Reference::parse(&format!("{}/alice/model:v1", registry.host)).unwrap();
    push_and_pull(&client, &target).await.unwrap();
    let unauthorised = registry
        .requests()
        .iter()
        .filter(|r| r.status == 401)
        .count();
    assert!(
        unauthorised <= 2,
        "credentials are sent up front once the scheme is known"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn htpasswd_wrong_password_is_a_clear_error_without_the_password() {
    let registry = Registry::builder().htpasswd("alice", PASSWORD).start();
    let dir = tempfile::tempdir().unwrap();
    let client = client(config_with_auths(
        dir.path(),
        &registry.host,
        "alice",
        "wrong-guess",
    ));
    let target = Reference::parse(&format!("{}/alice/model:v1", registry.host)).unwrap();
    let err = push_and_pull(&client, &target).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{text}");
    assert!(
        text.contains("authentication to") && text.contains("cogpack login"),
        "{text}"
    );
    assert!(!text.contains("wrong-guess") && !format!("{err:?}").contains("wrong-guess"));
}

#[tokio::test(flavor = "multi_thread")]
async fn htpasswd_without_credentials_says_none_are_configured() {
    let registry = Registry::builder().htpasswd("alice", PASSWORD).start();
    let dir = tempfile::tempdir().unwrap();
    let client = client(DockerConfig::load(&dir.path().join("config.json")).unwrap());
    let target = Reference::parse(&format!("{}/alice/model:v1", registry.host)).unwrap();
    let err = client.manifest_exists(&target).await.unwrap_err();
    assert!(err.to_string().contains("none are configured"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn token_auth_push_and_pull_with_config_json_credentials() {
    let server = TokenServer::start(&[("bob", PASSWORD, "pull,push")]);
    let registry = token_registry(&server);
    let dir = tempfile::tempdir().unwrap();
    let client = client(config_with_auths(
        dir.path(),
        &registry.host,
        "bob",
        PASSWORD,
    ));
    let target = Reference::parse(&format!("{}/bob/model:v1", registry.host)).unwrap();
    push_and_pull(&client, &target).await.unwrap();
    let tokens = server.requests();
    assert!(
        tokens
            .iter()
            .all(|t| t["subject"] == "bob" && t["status"] == 200),
        "{tokens:?}"
    );
    assert!(
        tokens
            .iter()
            .any(|t| t["path"].as_str().unwrap().contains("pull%2Cpush")),
        "a push-scoped token was requested: {tokens:?}"
    );
    assert!(
        tokens.len() <= 3,
        "tokens are cached per scope, not fetched per request: {tokens:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_auth_wrong_password_is_rejected_by_the_token_server() {
    let server = TokenServer::start(&[("bob", PASSWORD, "pull,push")]);
    let registry = token_registry(&server);
    let dir = tempfile::tempdir().unwrap();
    let client = client(config_with_auths(dir.path(), &registry.host, "bob", "nope"));
    let target = Reference::parse(&format!("{}/bob/model:v1", registry.host)).unwrap();
    let err = push_and_pull(&client, &target).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{text}");
    assert!(
        text.contains("rejected the password for user \"bob\""),
        "{text}"
    );
    assert!(!text.contains("nope"));
}

#[tokio::test(flavor = "multi_thread")]
async fn token_auth_anonymous_push_reports_insufficient_scope() {
    let server = TokenServer::start(&[("bob", PASSWORD, "pull,push")]);
    let registry = token_registry(&server);
    let dir = tempfile::tempdir().unwrap();
    let client = client(DockerConfig::load(&dir.path().join("config.json")).unwrap());
    let target = Reference::parse(&format!("{}/bob/model:v1", registry.host)).unwrap();
    assert!(
        !client.manifest_exists(&target).await.unwrap(),
        "anonymous pull works"
    );
    let err = push_and_pull(&client, &target).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::InsufficientScope { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("insufficient scope") && text.contains("repository:bob/model:pull,push"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_auth_pull_only_user_cannot_push() {
    let server = TokenServer::start(&[("reader", PASSWORD, "pull")]);
    let registry = token_registry(&server);
    let dir = tempfile::tempdir().unwrap();
    let client = client(config_with_auths(
        dir.path(),
        &registry.host,
        "reader",
        PASSWORD,
    ));
    let target = Reference::parse(&format!("{}/team/model:v1", registry.host)).unwrap();
    let err = push_and_pull(&client, &target).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::InsufficientScope { .. }),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn login_verifies_then_stores_credentials_like_docker() {
    let registry = Registry::builder().htpasswd("carol", PASSWORD).start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, r#"{"experimental":"keep-me"}"#).unwrap();

    let mut config = DockerConfig::load(&path).unwrap();
    let bad = client(config.clone());
    let err = bad
        .login(&registry.host, "carol", "bad", &mut config)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(
        !std::fs::read_to_string(&path).unwrap().contains("auths"),
        "nothing stored"
    );

    let good = client(config.clone());
    good.login(&registry.host, "carol", PASSWORD, &mut config)
        .await
        .unwrap();
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(stored["experimental"], "keep-me");
    assert!(stored["auths"][&registry.host]["auth"].is_string());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let fresh = client(DockerConfig::load(&path).unwrap());
    let target = Reference::parse(&format!("{}/carol/model:v1", registry.host)).unwrap();
    push_and_pull(&fresh, &target).await.unwrap();
}

/// A loopback stand-in for Replicate's `/cog/v1/verify-token` endpoint:
/// answers `{"username":"replicate-user"}` for the token `good-token`.
fn start_verify_token_server() -> (String, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let handle = std::thread::spawn(move || {
        let mut bodies = Vec::new();
        for _ in 0..2 {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            let body = String::from_utf8(body).unwrap();
            let (status, reply) = if request_line.starts_with("POST /cog/v1/verify-token")
                && body == "token=good-token"
            {
                ("200 OK", r#"{"username":"replicate-user"}"#)
            } else {
                ("401 Unauthorized", r#"{"detail":"bad token"}"#)
            };
            bodies.push(body);
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            )
            .unwrap();
        }
        bodies
    });
    (host, handle)
}

#[tokio::test(flavor = "multi_thread")]
async fn replicate_login_exchanges_the_token_and_stores_it() {
    let (host, server) = start_verify_token_server();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let mut config = DockerConfig::load(&path).unwrap();
    let client = client(config.clone());

    let err = client
        .login_replicate(&host, "r8_apitoken", &mut config)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("API token"), "{err}");

    let err = client
        .login_replicate(&host, "bad-token", &mut config)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(!err.to_string().contains("bad-token"));

    let username = client
        .login_replicate(&host, "good-token", &mut config)
        .await
        .unwrap();
    assert_eq!(username, "replicate-user");
    let stored = DockerConfig::load(&path)
        .unwrap()
        .credential_for(&host)
        .unwrap();
    assert_eq!(
        stored,
        Some(cogpack::registry::Credential::Basic {
            username: "replicate-user".into(),
            password: "good-token".into()
        })
    );
    assert_eq!(
        server.join().unwrap(),
        vec!["token=bad-token", "token=good-token"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_auth_with_an_identity_token_uses_the_oauth2_refresh_grant() {
    let server = TokenServer::start(&[("erin", "refresh-me-123", "pull,push")]);
    let registry = token_registry(&server);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        serde_json::json!({"auths": {registry.host.clone(): {"identitytoken": "refresh-me-123"}}})
            .to_string(),
    )
    .unwrap();
    let client = client(DockerConfig::load(&path).unwrap());
    let target = Reference::parse(&format!("{}/erin/model:v1", registry.host)).unwrap();
    push_and_pull(&client, &target).await.unwrap();
    let tokens = server.requests();
    assert!(!tokens.is_empty());
    assert!(
        tokens
            .iter()
            .all(|t| t["method"] == "POST" && t["subject"] == "erin"),
        "{tokens:?}"
    );
}
