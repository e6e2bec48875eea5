//! `cogpack login [REGISTRY] [-u USER] [--password-stdin]` (spec §9.6):
//! Replicate's token flow for the Replicate registry host, a checked
//! username/password login for any other registry; credentials are stored
//! like `docker login` and never printed.

use super::CliError;
use super::args::LoginArgs;
use super::env::Environment;
use crate::registry::{Client, ClientOptions, DockerConfig, login::read_secret_stdin};
use std::io::BufRead;
use std::path::PathBuf;

/// Runs `cogpack login`.
pub fn run(args: &LoginArgs, env: &Environment) -> Result<(), CliError> {
    let host = env.registry_host(args.registry.as_deref());
    let mut config = DockerConfig::load(&docker_config_path(env)?).map_err(registry_error)?;
    let options = ClientOptions::from_env(
        &args.registry_flags.registry_mirrors,
        &args.registry_flags.insecure_registries,
    )
    .map_err(registry_error)?;
    let client = Client::new(options).map_err(registry_error)?;
    let runtime = super::build::tokio_runtime()?;
    if uses_token_flow(&host, args, env) {
        let token = if args.password_stdin {
            read_secret_stdin().map_err(registry_error)?
        } else {
            prompt_token(&client, &runtime, &host)?
        };
        let username = runtime
            .block_on(client.login_replicate(&host, &token, &mut config))
            .map_err(registry_error)?;
        println!(
            "You've successfully authenticated as {username}! You can now use the '{host}' registry."
        );
        return Ok(());
    }
    let username = args.username.clone().ok_or_else(|| {
        CliError::new(
            format!("logging in to {host} needs a username"),
            format!(
                "run `cogpack login {host} -u USER --password-stdin` with the password on stdin"
            ),
        )
    })?;
    if !args.password_stdin {
        return Err(CliError::new(
            format!("logging in to {host} needs a password"),
            format!("pipe it in: `cogpack login {host} -u {username} --password-stdin`"),
        ));
    }
    let password = read_secret_stdin().map_err(registry_error)?;
    runtime
        .block_on(client.login(&host, &username, &password, &mut config))
        .map_err(registry_error)?;
    println!(
        "Login succeeded: credentials for {username} on {host} stored in {}",
        config.path().display()
    );
    Ok(())
}

fn registry_error(err: crate::registry::RegistryError) -> CliError {
    CliError::plain(err.to_string())
}

/// Replicate's token flow: the default Replicate host (r8.im or
/// `COG_REGISTRY_HOST`) when no username is given.
fn uses_token_flow(host: &str, args: &LoginArgs, env: &Environment) -> bool {
    args.username.is_none() && host == env.registry_host(None)
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
fn docker_config_path(env: &Environment) -> Result<PathBuf, CliError> {
    let dir = match (env.get("DOCKER_CONFIG"), env.get("HOME")) {
        (Some(dir), _) => PathBuf::from(dir),
        (None, Some(home)) => PathBuf::from(home).join(".docker"),
        (None, None) => {
            return Err(CliError::new(
                "cannot find the Docker config directory: neither DOCKER_CONFIG nor HOME is set",
                "set DOCKER_CONFIG to a directory",
            ));
        }
    };
    Ok(dir.join("config.json"))
}

/// Shows where to get a CLI token (`/cog/v1/display-token-url`) and reads
/// the pasted token from stdin.
fn prompt_token(
    client: &Client,
    runtime: &tokio::runtime::Runtime,
    host: &str,
) -> Result<String, CliError> {
    let url = format!("{}/cog/v1/display-token-url", client.base_url(host));
    let not_replicate = || {
        CliError::new(
            format!("{host} is not the Replicate registry (no /cog/v1/display-token-url)"),
            format!("log in with a username: `cogpack login {host} -u USER --password-stdin`"),
        )
    };
    let answer = runtime
        .block_on(async {
            let response = client.http().get(&url).send().await?;
            if response.status().as_u16() == 404 {
                return Ok(None);
            }
            response
                .error_for_status()?
                .json::<serde_json::Value>()
                .await
                .map(Some)
        })
        .map_err(|e| {
            CliError::new(
                format!("cannot reach {host} to start the login: {e}"),
                "check the host name and your network, or use --password-stdin",
            )
        })?
        .ok_or_else(not_replicate)?;
    let token_url = answer
        .get("url")
        .and_then(|v| v.as_str())
        .ok_or_else(not_replicate)?;
    println!("This command authenticates Docker with Replicate's '{host}' registry.");
    println!("Open {token_url} in a browser, copy the CLI auth token, and paste it here:");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::plain(format!("cannot read the token from stdin: {e}")))?;
    let token = line.trim().to_string();
    if token.is_empty() {
        return Err(CliError::new(
            "no token was entered",
            "paste the token shown on the web page, or pipe it with --password-stdin",
        ));
    }
    Ok(token)
}
