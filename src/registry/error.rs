//! The one error type of the registry client.

use crate::oci::Digest;

/// Everything that can go wrong while talking to a registry.
///
/// Messages say what failed, where, and end with a hint. They never contain
/// credentials or tokens.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The text is not a valid image reference.
    #[error(
        "invalid image reference {reference:?}: {reason}; expected [REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST], e.g. r8.im/user/model:latest"
    )]
    InvalidReference {
        /// The text given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The registry says the manifest, blob or repository does not exist.
    #[error(
        "{what} not found on {registry} ({code}); check the name and tag, and that you may read it"
    )]
    NotFound {
        /// What was looked up (`manifest r8.im/x/y:tag`, `blob sha256:…`).
        what: String,
        /// The registry host.
        registry: String,
        /// Registry error code or HTTP status.
        code: String,
    },
    /// The registry or its token server rejected the credentials.
    #[error(
        "authentication to {registry} failed: {detail}; hint: check the credentials with `cogpack login {registry}` (or your Docker config.json / credential helper)"
    )]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// What was rejected.
        detail: String,
    },
    /// Authenticated, but the token does not grant the actions asked for.
    #[error(
        "insufficient scope on {registry}: {detail} (needed {scope}); hint: log in with an account that may push to this repository (`cogpack login {registry}`)"
    )]
    InsufficientScope {
        /// The registry host.
        registry: String,
        /// The scope asked for, e.g. `repository:user/model:pull,push`.
        scope: String,
        /// What the registry said.
        detail: String,
    },
    /// An unexpected HTTP status.
    #[error("{method} {url} failed: HTTP {status}{body}; hint: {hint}")]
    Http {
        /// Request method.
        method: String,
        /// Request URL (without credentials).
        url: String,
        /// HTTP status code.
        status: u16,
        /// Short excerpt of the response body, prefixed with ": " when present.
        body: String,
        /// What to do about it.
        hint: String,
    },
    /// Connection-level failure (DNS, TCP, TLS, reset, timeout).
    #[error(
        "network error talking to {registry}: {detail}; hint: check that the registry is reachable (plain HTTP is used only for loopback hosts and --insecure-registry hosts)"
    )]
    Network {
        /// The registry host.
        registry: String,
        /// The underlying error text.
        detail: String,
    },
    /// Content did not hash to the digest it was fetched or pushed under.
    #[error(
        "digest mismatch for {what}: expected {expected}, got {actual}; hint: the content is corrupt or was changed while it was read — rebuild it or clear the cache entry"
    )]
    DigestMismatch {
        /// What was hashed.
        what: String,
        /// The digest it should have.
        expected: Digest,
        /// The digest it has.
        actual: Digest,
    },
    /// A manifest or index could not be understood.
    #[error(
        "invalid manifest for {reference}: {detail}; hint: the registry served something that is not an OCI/Docker image manifest"
    )]
    InvalidManifest {
        /// The reference being resolved.
        reference: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The image exists but carries no `run.cog.config` label.
    #[error(
        "image is not a Cog model: {reference} has no run.cog.config label; hint: build it with `cogpack build` or `cog build`"
    )]
    NotCogModel {
        /// The image inspected.
        reference: String,
    },
    /// Docker config, credential helper or mirror configuration problem.
    #[error("{detail}")]
    Config {
        /// Full message including location and hint.
        detail: String,
    },
    /// Reading local content failed.
    #[error("reading {what}: {source}; hint: check that the local store is intact")]
    Io {
        /// What was being read.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    /// True if the failure may go away when the request is repeated:
    /// network errors and HTTP 408, 429 and 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Network { .. } => true,
            RegistryError::Http { status, .. } => {
                matches!(*status, 408 | 429 | 499 | 500..=599)
            }
            _ => false,
        }
    }

    /// True for "does not exist" answers.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RegistryError::NotFound { .. })
    }
}
