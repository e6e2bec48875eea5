//! Docker credentials: `$DOCKER_CONFIG/config.json` (or `~/.docker/config.json`)
//! with `auths`, `credsStore` and `credHelpers`, read and written like docker.

use super::RegistryError;
use super::reference::{DOCKER_HUB, canonical_registry};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The key docker uses for Docker Hub in config.json.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A credential for one registry. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// Username and password (or a registry token used as password).
    Basic {
        /// User name.
        username: String,
        /// Password or token.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken`).
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => {
                write!(
                    f,
                    "Basic {{ username: {username:?}, password: <redacted> }}"
                )
            }
            Credential::IdentityToken(_) => write!(f, "IdentityToken(<redacted>)"),
        }
    }
}

/// Where docker keeps its configuration: `$DOCKER_CONFIG` or `~/.docker`.
pub fn docker_config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir));
    }
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".docker"))
}

/// The Docker configuration file, as JSON kept verbatim so that writing it
/// back preserves keys cogpack does not know.
#[derive(Clone)]
pub struct DockerConfig {
    path: PathBuf,
    json: Map<String, Value>,
}

impl fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DockerConfig({})", self.path.display())
    }
}

impl DockerConfig {
    /// Loads `config.json` from the default directory; a missing file is an
    /// empty configuration.
    pub fn load_default() -> Result<Self, RegistryError> {
        let dir = docker_config_dir().ok_or_else(|| RegistryError::Config {
            detail: "cannot find the Docker config directory: neither DOCKER_CONFIG nor HOME is set; hint: set DOCKER_CONFIG".into(),
        })?;
        Self::load(&dir.join("config.json"))
    }

    /// Loads a config file; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let json = match std::fs::read(path) {
            Ok(bytes) => parse_config(path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => {
                return Err(RegistryError::Config {
                    detail: format!(
                        "cannot read {}: {e}; hint: check its permissions",
                        path.display()
                    ),
                });
            }
        };
        Ok(DockerConfig {
            path: path.to_path_buf(),
            json,
        })
    }

    /// The file this configuration was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credential helper for a host: `credHelpers[host]`, else `credsStore`.
    pub fn helper_for(&self, host: &str) -> Option<String> {
        let host = canonical_registry(host);
        if let Some(Value::Object(helpers)) = self.json.get("credHelpers") {
            for (key, value) in helpers {
                if key_host(key) == host
                    && let Some(name) = value.as_str()
                {
                    return Some(name.to_string());
                }
            }
        }
        self.json
            .get("credsStore")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    /// Finds the credential for a registry host, or `None` for anonymous access.
    pub fn credential_for(&self, host: &str) -> Result<Option<Credential>, RegistryError> {
        let host = canonical_registry(host);
        if let Some(helper) = self.helper_for(&host)
            && let Some(cred) = helper_get(&helper, &server_key(&host))?
        {
            return Ok(Some(cred));
        }
        self.auths_entry(&host)
    }

    fn auths_entry(&self, host: &str) -> Result<Option<Credential>, RegistryError> {
        let Some(Value::Object(auths)) = self.json.get("auths") else {
            return Ok(None);
        };
        for (key, entry) in auths {
            if key_host(key) == host {
                return entry_credential(&self.path, key, entry);
            }
        }
        Ok(None)
    }

    /// Stores a credential like `docker login`: through the host's helper if
    /// one is configured, else base64 `auth` in `auths` (file written atomically).
    pub fn store(
        &mut self,
        host: &str,
        username: &str,
        password: &str,
    ) -> Result<(), RegistryError> {
        let host = canonical_registry(host);
        if let Some(helper) = self.helper_for(&host) {
            return helper_store(&helper, &server_key(&host), username, password);
        }
        let auths = self
            .json
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(auths) = auths else {
            return Err(RegistryError::Config {
                detail: format!(
                    "{}: field \"auths\" is not an object; hint: fix or remove it",
                    self.path.display()
                ),
            });
        };
        let encoded = STANDARD.encode(format!("{username}:{password}"));
        let mut entry = Map::new();
        entry.insert("auth".into(), Value::String(encoded));
        auths.insert(server_key(&host), Value::Object(entry));
        self.save()
    }

    fn save(&self) -> Result<(), RegistryError> {
        let fail = |e: std::io::Error| RegistryError::Config {
            detail: format!(
                "cannot write {}: {e}; hint: check the directory permissions",
                self.path.display()
            ),
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(fail)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
        let text = serde_json::to_string_pretty(&self.json).unwrap_or_default();
        tmp.write_all(text.as_bytes()).map_err(fail)?;
        set_private_permissions(tmp.path()).map_err(fail)?;
        tmp.persist(&self.path).map_err(|e| fail(e.error))?;
        Ok(())
    }
}

fn set_private_permissions(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

fn parse_config(path: &Path, bytes: &[u8]) -> Result<Map<String, Value>, RegistryError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(RegistryError::Config {
            detail: format!(
                "{}: top level is not a JSON object; hint: fix or remove the file",
                path.display()
            ),
        }),
        Err(e) => Err(RegistryError::Config {
            detail: format!(
                "{}: invalid JSON at line {} column {}; hint: fix or remove the file",
                path.display(),
                e.line(),
                e.column()
            ),
        }),
    }
}

fn entry_credential(
    path: &Path,
    key: &str,
    entry: &Value,
) -> Result<Option<Credential>, RegistryError> {
    let field = |name: &str| {
        entry
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(token) = field("identitytoken") {
        return Ok(Some(Credential::IdentityToken(token.to_string())));
    }
    if let Some(auth) = field("auth") {
        return decode_auth(auth).map(Some).ok_or_else(|| RegistryError::Config {
            detail: format!(
                "{}: auths[{key:?}].auth is not base64 of \"user:password\"; hint: run `cogpack login` again",
                path.display()
            ),
        });
    }
    if let (Some(username), Some(password)) = (field("username"), field("password")) {
        return Ok(Some(Credential::Basic {
            username: username.into(),
            password: password.into(),
        }));
    }
    if let Some(token) = field("registrytoken") {
        return Ok(Some(Credential::IdentityToken(token.to_string())));
    }
    Ok(None)
}

fn decode_auth(auth: &str) -> Option<Credential> {
    let padded = auth.trim();
    let bytes = STANDARD
        .decode(padded)
        .or_else(|_| {
            base64::engine::general_purpose::STANDARD_NO_PAD.decode(padded.trim_end_matches('='))
        })
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (username, password) = text.split_once(':')?;
    Some(Credential::Basic {
        username: username.into(),
        password: password.into(),
    })
}

/// The host a config.json key names (`https://host/v1/` → `host`).
fn key_host(key: &str) -> String {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    canonical_registry(without_scheme.split('/').next().unwrap_or(""))
}

/// The key docker writes for a host (Docker Hub has a URL key).
fn server_key(host: &str) -> String {
    if host == DOCKER_HUB {
        DOCKER_HUB_KEY.to_string()
    } else {
        host.to_string()
    }
}

fn helper_program(helper: &str) -> String {
    format!("docker-credential-{helper}")
}

/// Runs `docker-credential-<helper> get`; `None` when it has no entry.
fn helper_get(helper: &str, server: &str) -> Result<Option<Credential>, RegistryError> {
    let output = run_helper(helper, "get", server.as_bytes())?;
    if !output.status.success() {
        let stdout = String::from_utf8_lossy(&output.stdout);
        if stdout.contains("credentials not found") || output.stdout.is_empty() {
            return Ok(None);
        }
        return Err(helper_failure(helper, "get", &output));
    }
    let value: Value =
        serde_json::from_slice(&output.stdout).map_err(|_| RegistryError::Config {
            detail: format!(
                "{} get: output is not JSON {{\"Username\",\"Secret\"}}; hint: check the helper",
                helper_program(helper)
            ),
        })?;
    let username = value.get("Username").and_then(Value::as_str).unwrap_or("");
    let secret = value.get("Secret").and_then(Value::as_str).unwrap_or("");
    if secret.is_empty() {
        return Ok(None);
    }
    if username == "<token>" {
        return Ok(Some(Credential::IdentityToken(secret.into())));
    }
    Ok(Some(Credential::Basic {
        username: username.into(),
        password: secret.into(),
    }))
}

fn helper_store(
    helper: &str,
    server: &str,
    username: &str,
    password: &str,
) -> Result<(), RegistryError> {
    let payload =
        serde_json::json!({"ServerURL": server, "Username": username, "Secret": password});
    let output = run_helper(helper, "store", payload.to_string().as_bytes())?;
    if !output.status.success() {
        return Err(helper_failure(helper, "store", &output));
    }
    Ok(())
}

fn run_helper(
    helper: &str,
    action: &str,
    input: &[u8],
) -> Result<std::process::Output, RegistryError> {
    let program = helper_program(helper);
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RegistryError::Config {
            detail: format!(
                "cannot run credential helper {program}: {e}; hint: install it on PATH or remove it from your Docker config.json"
            ),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    child.wait_with_output().map_err(|e| RegistryError::Config {
        detail: format!("credential helper {program} {action} failed: {e}"),
    })
}

fn helper_failure(helper: &str, action: &str, output: &std::process::Output) -> RegistryError {
    let stderr = String::from_utf8_lossy(&output.stderr);
    RegistryError::Config {
        detail: format!(
            "credential helper {} {action} exited with {}: {}; hint: check the helper's own configuration",
            helper_program(helper),
            output.status,
            stderr.trim().chars().take(200).collect::<String>()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> DockerConfig {
        DockerConfig {
            path: PathBuf::from("/nonexistent/config.json"),
            json: serde_json::from_str(json).unwrap(),
        }
    }

    #[test]
    fn reads_auth_username_password_and_identity_token() {
        let c = config(
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},
                "r8.im":{"username":"u","password":"p"},
                "http://ghcr.io":{"identitytoken":"tok"}}}"#,
        );
        let basic = |u: &str, p: &str| Credential::Basic {
            username: u.into(),
            password: p.into(),
        };
        assert_eq!(
            c.credential_for("docker.io").unwrap(),
            Some(basic("user", "pass"))
        );
        assert_eq!(c.credential_for("r8.im").unwrap(), Some(basic("u", "p")));
        assert_eq!(
            c.credential_for("ghcr.io").unwrap(),
            Some(Credential::IdentityToken("tok".into()))
        );
        assert_eq!(c.credential_for("quay.io").unwrap(), None);
    }

    #[test]
    fn per_registry_helper_wins_over_store() {
        let c = config(r#"{"credsStore":"desktop","credHelpers":{"r8.im":"r8"}}"#);
        assert_eq!(c.helper_for("r8.im").as_deref(), Some("r8"));
        assert_eq!(c.helper_for("ghcr.io").as_deref(), Some("desktop"));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let cred = Credential::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{cred:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credential::IdentityToken("tok123".into())).contains("tok123"));
    }

    #[test]
    fn bad_auth_field_names_file_and_key() {
        let c = config(r#"{"auths":{"r8.im":{"auth":"!!!"}}}"#);
        let err = c.credential_for("r8.im").unwrap_err().to_string();
        assert!(err.contains("auths[\"r8.im\"].auth"), "{err}");
    }
}
