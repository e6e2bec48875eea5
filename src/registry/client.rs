//! The HTTP client: URLs, TLS, authentication and retries.

use super::RegistryError;
use super::auth::{Challenge, Scope, Token};
use super::credentials::{Credential, DockerConfig};
use super::settings::RegistrySettings;
use reqwest::{RequestBuilder, Response, StatusCode, header};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How failed requests are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in total (first try included).
    pub attempts: u32,
    /// Delay before the first retry.
    pub initial_delay: Duration,
    /// Growth factor of the delay.
    pub factor: f64,
    /// Upper bound of one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            initial_delay: Duration::from_millis(500),
            factor: 2.0,
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (1-based), with up to 20 % jitter.
    pub fn delay(&self, retry: u32) -> Duration {
        let base =
            self.initial_delay.as_secs_f64() * self.factor.powi(retry.saturating_sub(1) as i32);
        let capped = base.min(self.max_delay.as_secs_f64());
        Duration::from_secs_f64(capped * (1.0 + 0.2 * fastrand::f64()))
    }
}

/// Options for building a [`Client`].
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Mirrors and insecure hosts.
    pub settings: RegistrySettings,
    /// Docker configuration for credentials; `None` loads the default file.
    pub docker_config: Option<DockerConfig>,
    /// Retry policy for network errors and 408/429/5xx.
    pub retry: RetryPolicy,
}

impl ClientOptions {
    /// Options from the registries config file, the environment
    /// (`COGPACK_REGISTRY_MIRRORS`, `COGPACK_INSECURE_REGISTRIES`) and the
    /// command line (`--registry-mirror`, `--insecure-registry`), with
    /// credentials from the default Docker config.
    pub fn from_env(
        cli_mirrors: &[String],
        cli_insecure: &[String],
    ) -> Result<Self, RegistryError> {
        Ok(ClientOptions {
            settings: RegistrySettings::load(cli_mirrors, cli_insecure)?,
            docker_config: None,
            retry: RetryPolicy::default(),
        })
    }
}

/// How a registry host wants to be authenticated, learnt from its challenge.
#[derive(Debug, Clone)]
enum HostAuth {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

struct Inner {
    http: reqwest::Client,
    settings: RegistrySettings,
    docker_config: Option<DockerConfig>,
    retry: RetryPolicy,
    credentials: Mutex<HashMap<String, Option<Credential>>>,
    host_auth: Mutex<HashMap<String, HostAuth>>,
    tokens: Mutex<HashMap<(String, String), Token>>,
}

/// A registry client. Cheap to clone; clones share connections and tokens.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds a client: HTTPS with the system roots plus `SSL_CERT_FILE`;
    /// plain HTTP only for loopback and explicitly insecure hosts.
    pub fn new(options: ClientOptions) -> Result<Self, RegistryError> {
        let http = build_http_client()?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                settings: options.settings,
                docker_config: options.docker_config,
                retry: options.retry,
                credentials: Mutex::new(HashMap::new()),
                host_auth: Mutex::new(HashMap::new()),
                tokens: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The settings the client was built with.
    pub fn settings(&self) -> &RegistrySettings {
        &self.inner.settings
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    /// The underlying HTTP client (no authentication attached).
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// `scheme://host` for a registry host.
    pub fn base_url(&self, host: &str) -> String {
        let scheme = if self.inner.settings.allows_plain_http(host) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}")
    }

    /// Full URL of a `/v2/` API path on a host.
    pub fn api_url(&self, host: &str, path: &str) -> String {
        format!("{}/v2/{path}", self.base_url(host))
    }

    /// Resolves a `Location` header (relative or absolute) against a host.
    pub fn resolve_location(&self, host: &str, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            format!("{}{location}", self.base_url(host))
        } else {
            format!("{}/{location}", self.base_url(host))
        }
    }

    /// Replaces the credential used for a host (login verification).
    pub(crate) fn set_credential(&self, host: &str, credential: Option<Credential>) {
        lock(&self.inner.credentials).insert(host.to_string(), credential);
        lock(&self.inner.tokens).retain(|(h, _), _| h != host);
    }

    fn credential(&self, host: &str) -> Result<Option<Credential>, RegistryError> {
        if let Some(found) = lock(&self.inner.credentials).get(host) {
            return Ok(found.clone());
        }
        let config = match &self.inner.docker_config {
            Some(config) => config.clone(),
            None => DockerConfig::load_default()?,
        };
        let found = config.credential_for(host)?;
        lock(&self.inner.credentials).insert(host.to_string(), found.clone());
        Ok(found)
    }

    /// Sends a request with authentication, answering one 401 challenge.
    ///
    /// `build` is called once per attempt, so bodies must be cheap to rebuild.
    pub async fn send(
        &self,
        host: &str,
        scope: &Scope,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let authorization = self.authorization(host, scope).await?;
        let response = self
            .execute(host, build(&self.inner.http), authorization.as_deref())
            .await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge = challenge_of(&response);
        self.learn_challenge(host, challenge.as_ref());
        self.drop_token(host, scope);
        let authorization = self.authorization(host, scope).await?;
        if authorization.is_none() {
            return Err(missing_credentials(host, scope));
        }
        let response = self
            .execute(host, build(&self.inner.http), authorization.as_deref())
            .await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            let challenge = challenge_of(&response);
            return Err(unauthorized_reply(host, scope, challenge.as_ref(), true));
        }
        Ok(response)
    }

    /// Sends a request once with whatever authorization is cached (for
    /// streaming bodies that cannot be rebuilt). A 401 drops the cached token
    /// and comes back as a retryable error.
    pub async fn send_once(
        &self,
        host: &str,
        scope: &Scope,
        request: RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let authorization = self.authorization(host, scope).await?;
        let response = self
            .execute(host, request, authorization.as_deref())
            .await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            self.drop_token(host, scope);
            return Err(RegistryError::Network {
                registry: host.to_string(),
                detail: "authorization expired during an upload".into(),
            });
        }
        Ok(response)
    }

    /// Like [`Client::send`], retrying network errors and 408/429/5xx with
    /// exponential backoff and jitter.
    pub async fn send_retrying(
        &self,
        host: &str,
        scope: &Scope,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let mut attempt = 1;
        loop {
            let result = self.send(host, scope, &build).await;
            let retry = match &result {
                Err(e) => e.is_retryable(),
                Ok(r) => is_retryable_status(r.status()),
            };
            if !retry || attempt >= self.inner.retry.attempts {
                return result;
            }
            tokio::time::sleep(self.inner.retry.delay(attempt)).await;
            attempt += 1;
        }
    }

    async fn execute(
        &self,
        host: &str,
        request: RequestBuilder,
        authorization: Option<&str>,
    ) -> Result<Response, RegistryError> {
        let request = match authorization {
            Some(value) => request.header(header::AUTHORIZATION, value),
            None => request,
        };
        request.send().await.map_err(|e| network_error(host, &e))
    }

    fn learn_challenge(&self, host: &str, challenge: Option<&Challenge>) {
        let Some(challenge) = challenge else { return };
        let learnt = match challenge.scheme.as_str() {
            "basic" => Some(HostAuth::Basic),
            "bearer" => challenge.param("realm").map(|realm| HostAuth::Bearer {
                realm: realm.to_string(),
                service: challenge.param("service").map(str::to_string),
            }),
            _ => None,
        };
        if let Some(learnt) = learnt {
            lock(&self.inner.host_auth).insert(host.to_string(), learnt);
        }
    }

    fn drop_token(&self, host: &str, scope: &Scope) {
        lock(&self.inner.tokens).remove(&(host.to_string(), scope.describe()));
    }

    /// The `Authorization` header value for a request, fetching a token when
    /// the host is known to use bearer tokens. `None` means anonymous.
    async fn authorization(
        &self,
        host: &str,
        scope: &Scope,
    ) -> Result<Option<String>, RegistryError> {
        let known = lock(&self.inner.host_auth).get(host).cloned();
        match known {
            None => Ok(None),
            Some(HostAuth::Basic) => Ok(self.credential(host)?.and_then(|c| basic_header(&c))),
            Some(HostAuth::Bearer { realm, service }) => {
                let key = (host.to_string(), scope.describe());
                if let Some(token) = lock(&self.inner.tokens).get(&key).filter(|t| t.is_fresh()) {
                    return Ok(Some(format!("Bearer {}", token.value)));
                }
                let token = self
                    .fetch_token(host, &realm, service.as_deref(), scope)
                    .await?;
                let header = format!("Bearer {}", token.value);
                lock(&self.inner.tokens).insert(key, token);
                Ok(Some(header))
            }
        }
    }

    async fn fetch_token(
        &self,
        host: &str,
        realm: &str,
        service: Option<&str>,
        scope: &Scope,
    ) -> Result<Token, RegistryError> {
        let credential = self.credential(host)?;
        let scopes = scope.strings();
        let request = match &credential {
            Some(Credential::IdentityToken(refresh)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token".to_string()),
                    ("refresh_token", refresh.clone()),
                    ("client_id", "cogpack".to_string()),
                ];
                if let Some(service) = service {
                    form.push(("service", service.to_string()));
                }
                if !scopes.is_empty() {
                    form.push(("scope", scopes.join(" ")));
                }
                self.inner.http.post(realm).form(&form)
            }
            other => {
                let mut query: Vec<(&str, &str)> = Vec::new();
                if let Some(service) = service {
                    query.push(("service", service));
                }
                for s in &scopes {
                    query.push(("scope", s));
                }
                let request = self.inner.http.get(realm).query(&query);
                match other {
                    Some(Credential::Basic { username, password }) => {
                        request.basic_auth(username, Some(password))
                    }
                    _ => request,
                }
            }
        };
        let response = request.send().await.map_err(|e| network_error(host, &e))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let who = match &credential {
                Some(Credential::Basic { username, .. }) => {
                    format!("the password for user {username:?}")
                }
                Some(Credential::IdentityToken(_)) => "the stored identity token".to_string(),
                None => "anonymous access".to_string(),
            };
            return Err(RegistryError::Unauthorized {
                registry: host.to_string(),
                detail: format!(
                    "the token server {realm} rejected {who} (HTTP {})",
                    status.as_u16()
                ),
            });
        }
        if !status.is_success() {
            return Err(http_error(
                "GET",
                realm,
                status,
                "",
                "check that the token server is up",
            ));
        }
        let body: serde_json::Value = response.json().await.map_err(|e| network_error(host, &e))?;
        let value = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| RegistryError::Unauthorized {
                registry: host.to_string(),
                detail: format!("the token server {realm} returned no token"),
            })?;
        let expires_in = body.get("expires_in").and_then(|v| v.as_u64());
        Ok(Token::new(value.to_string(), expires_in))
    }

    /// Checks that the registry answers `/v2/` with the configured
    /// credentials (or anonymously); used by login.
    pub async fn ping(&self, host: &str) -> Result<(), RegistryError> {
        let url = self.api_url(host, "");
        let response = self
            .send(host, &Scope::none(), |http| http.get(&url))
            .await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(http_error(
                "GET",
                &url,
                response.status(),
                "",
                "is this a container registry?",
            ))
        }
    }
}

fn build_http_client() -> Result<reqwest::Client, RegistryError> {
    reqwest::Client::builder()
        .user_agent(concat!("cogpack/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(300))
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .tls_backend_preconfigured(tls_config()?)
        .build()
        .map_err(|e| RegistryError::Config {
            detail: format!("cannot set up the HTTP client: {e}; hint: check SSL_CERT_FILE and the system certificates"),
        })
}

/// The TLS settings every client of this process shares: the system
/// certificate store plus the roots of `SSL_CERT_FILE`, loaded once per value
/// of that variable (loading the store costs tens of milliseconds, which a
/// no-op push would otherwise pay per client). Clients stay per runtime; only
/// this read-only config is shared.
fn tls_config() -> Result<rustls::ClientConfig, RegistryError> {
    type Configs = HashMap<Option<std::ffi::OsString>, Result<rustls::ClientConfig, String>>;
    static SHARED: std::sync::OnceLock<Mutex<Configs>> = std::sync::OnceLock::new();
    let cert_file = std::env::var_os("SSL_CERT_FILE");
    let mut configs = lock(SHARED.get_or_init(Default::default));
    configs
        .entry(cert_file.clone())
        .or_insert_with(|| load_tls_config(cert_file.as_deref().map(std::path::Path::new)))
        .clone()
        .map_err(|detail| RegistryError::Config { detail })
}

fn load_tls_config(cert_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let extra_roots = match cert_file {
        Some(path) => extra_roots(path)?,
        None => Vec::new(),
    };
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider.clone())
            .map_err(|e| {
                format!("cannot load the system certificates: {e}; hint: check SSL_CERT_FILE and the system certificates")
            })?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The certificates of the PEM bundle `SSL_CERT_FILE` names.
fn extra_roots(
    path: &std::path::Path,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject as _;
    let hint = "hint: point it at a PEM bundle or unset it";
    let pem = std::fs::read(path)
        .map_err(|e| format!("SSL_CERT_FILE={}: {e}; {hint}", path.display()))?;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "SSL_CERT_FILE={}: not a PEM certificate bundle ({e:?}); {hint}",
                path.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "SSL_CERT_FILE={}: no certificate in it; {hint}",
            path.display()
        ));
    }
    Ok(certs)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn basic_header(credential: &Credential) -> Option<String> {
    use base64::Engine as _;
    match credential {
        Credential::Basic { username, password } => Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
        )),
        Credential::IdentityToken(_) => None,
    }
}

fn challenge_of(response: &Response) -> Option<Challenge> {
    response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .and_then(Challenge::parse)
}

fn missing_credentials(host: &str, scope: &Scope) -> RegistryError {
    RegistryError::Unauthorized {
        registry: host.to_string(),
        detail: format!(
            "{} requires credentials and none are configured for {host}",
            scope.describe()
        ),
    }
}

fn unauthorized_reply(
    host: &str,
    scope: &Scope,
    challenge: Option<&Challenge>,
    sent_auth: bool,
) -> RegistryError {
    let error = challenge.and_then(|c| c.param("error")).unwrap_or("");
    if error == "insufficient_scope"
        || (sent_auth && scope.push && challenge.is_some_and(|c| c.scheme == "bearer"))
    {
        return RegistryError::InsufficientScope {
            registry: host.to_string(),
            scope: scope.describe(),
            detail: "the registry refused the token it was given (insufficient_scope)".into(),
        };
    }
    RegistryError::Unauthorized {
        registry: host.to_string(),
        detail: "the registry rejected the credentials".into(),
    }
}

/// True for statuses worth retrying: 408, 429 and 5xx.
pub fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 499 | 500..=599)
}

/// Turns a reqwest error into a [`RegistryError::Network`].
pub(crate) fn network_error(host: &str, error: &reqwest::Error) -> RegistryError {
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        detail.push_str(": ");
        detail.push_str(&inner.to_string());
        source = inner.source();
    }
    RegistryError::Network {
        registry: host.to_string(),
        detail,
    }
}

/// Builds an HTTP status error with a short body excerpt.
pub(crate) fn http_error(
    method: &str,
    url: &str,
    status: StatusCode,
    body: &str,
    hint: &str,
) -> RegistryError {
    let excerpt: String = body.trim().chars().take(300).collect();
    RegistryError::Http {
        method: method.to_string(),
        url: strip_query(url),
        status: status.as_u16(),
        body: if excerpt.is_empty() {
            String::new()
        } else {
            format!(": {excerpt}")
        },
        hint: hint.to_string(),
    }
}

fn strip_query(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}

/// Reads an error response into a [`RegistryError`], mapping 404 to
/// `NotFound` and 401/403 to auth errors.
pub(crate) async fn status_error(
    host: &str,
    scope: &Scope,
    method: &str,
    url: &str,
    what: &str,
    response: Response,
) -> RegistryError {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let code = registry_error_code(&body).unwrap_or_else(|| status.as_u16().to_string());
    match status.as_u16() {
        404 => RegistryError::NotFound {
            what: what.to_string(),
            registry: host.to_string(),
            code,
        },
        401 | 403 => RegistryError::InsufficientScope {
            registry: host.to_string(),
            scope: scope.describe(),
            detail: format!("{method} {what} was refused ({code})"),
        },
        _ => http_error(
            method,
            url,
            status,
            &body,
            "retry later; if it persists, check the registry's logs",
        ),
    }
}

fn registry_error_code(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let first = value.get("errors")?.get(0)?;
    let code = first.get("code")?.as_str()?;
    let message = first.get("message").and_then(|m| m.as_str()).unwrap_or("");
    Some(if message.is_empty() {
        code.to_string()
    } else {
        format!("{code}: {message}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            attempts: 5,
            initial_delay: Duration::from_millis(100),
            factor: 2.0,
            max_delay: Duration::from_millis(300),
        };
        let first = policy.delay(1);
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(120));
        let second = policy.delay(2);
        assert!(second >= Duration::from_millis(200) && second <= Duration::from_millis(240));
        assert!(policy.delay(5) <= Duration::from_millis(360));
    }

    #[test]
    fn only_loopback_or_insecure_hosts_get_plain_http() {
        let client = Client::new(ClientOptions::default()).unwrap();
        assert_eq!(client.base_url("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(client.base_url("r8.im"), "https://r8.im");
        assert_eq!(
            client.resolve_location("127.0.0.1:5000", "/v2/a/blobs/uploads/x?_state=1"),
            "http://127.0.0.1:5000/v2/a/blobs/uploads/x?_state=1"
        );
    }

    #[test]
    fn registry_error_codes_are_extracted() {
        let body = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
        assert_eq!(
            registry_error_code(body).as_deref(),
            Some("MANIFEST_UNKNOWN: manifest unknown")
        );
    }
}
