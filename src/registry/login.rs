//! `cogpack login`: verify credentials against a registry and store them the
//! way docker does; Replicate's token flow for r8.im (spec §9.6).

use super::RegistryError;
use super::client::{Client, network_error};
use super::credentials::{Credential, DockerConfig};
use std::io::Read;

/// Reads a password or token from stdin (`--password-stdin`), trimming the
/// trailing newline.
pub fn read_secret_stdin() -> Result<String, RegistryError> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| RegistryError::Config {
            detail: format!("cannot read the password from stdin: {e}"),
        })?;
    let secret = text.trim_end_matches(['\n', '\r']).to_string();
    if secret.is_empty() {
        return Err(RegistryError::Config {
            detail: "no password on stdin; hint: pipe it in, e.g. `echo \"$TOKEN\" | cogpack login --password-stdin`".into(),
        });
    }
    Ok(secret)
}

impl Client {
    /// Logs in to a generic registry: checks the credentials with `/v2/`
    /// (and its token server), then stores them in `config`.
    pub async fn login(
        &self,
        host: &str,
        username: &str,
        password: &str,
        config: &mut DockerConfig,
    ) -> Result<(), RegistryError> {
        self.set_credential(
            host,
            Some(Credential::Basic {
                username: username.to_string(),
                password: password.to_string(),
            }),
        );
        self.ping(host).await?;
        config.store(host, username, password)
    }

    /// Replicate's login (r8.im): rejects API tokens (`r8_…`), exchanges the
    /// CLI token for a username at `/cog/v1/verify-token`, checks it against
    /// the registry and stores username + token. Returns the username.
    pub async fn login_replicate(
        &self,
        host: &str,
        token: &str,
        config: &mut DockerConfig,
    ) -> Result<String, RegistryError> {
        if token.starts_with("r8_") {
            return Err(RegistryError::Config {
                detail: format!(
                    "that looks like a Replicate API token (r8_…), not a CLI login token; hint: open the URL from `https://{host}/cog/v1/display-token-url` and paste the token shown there"
                ),
            });
        }
        let url = format!("{}/cog/v1/verify-token", self.base_url(host));
        let response = self
            .http()
            .post(&url)
            .form(&[("token", token)])
            .send()
            .await
            .map_err(|e| network_error(host, &e))?;
        let status = response.status();
        if status.as_u16() == 404 {
            return Err(RegistryError::Config {
                detail: format!(
                    "{host} is not the Replicate registry (no /cog/v1/verify-token); hint: use a username and password"
                ),
            });
        }
        if !status.is_success() {
            return Err(RegistryError::Unauthorized {
                registry: host.to_string(),
                detail: format!("the token was not accepted (HTTP {})", status.as_u16()),
            });
        }
        let body: serde_json::Value = response.json().await.map_err(|e| network_error(host, &e))?;
        let username = body
            .get("username")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| RegistryError::Unauthorized {
                registry: host.to_string(),
                detail: "verify-token answered without a username".into(),
            })?
            .to_string();
        config.store(host, &username, token)?;
        Ok(username)
    }
}
