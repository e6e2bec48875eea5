//! Docker-style image references: `[REGISTRY/]REPOSITORY[:TAG][@DIGEST]`.

use super::RegistryError;
use crate::oci::Digest;
use std::fmt;
use std::str::FromStr;

/// Docker Hub's canonical registry host.
pub const DOCKER_HUB: &str = "index.docker.io";

/// A parsed image reference.
///
/// Parsing follows Docker: the first path component is a registry only if it
/// contains `.` or `:` or is `localhost`; otherwise the registry is Docker
/// Hub and single-component names get `library/`. Without tag or digest the
/// tag is `latest`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host (and port), e.g. `r8.im` or `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path, e.g. `library/python`.
    pub repository: String,
    /// Tag, if any.
    pub tag: Option<String>,
    /// Digest, if any (wins over the tag when fetching).
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses a reference the way `docker pull` does.
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let invalid = |reason: &str| RegistryError::InvalidReference {
            reference: text.to_string(),
            reason: reason.to_string(),
        };
        if text.is_empty() {
            return Err(invalid("empty"));
        }
        let (name_and_tag, digest) = match text.split_once('@') {
            Some((left, right)) => (
                left,
                Some(
                    right
                        .parse::<Digest>()
                        .map_err(|e| invalid(&e.to_string()))?,
                ),
            ),
            None => (text, None),
        };
        let (name, tag) = split_tag(name_and_tag);
        if let Some(tag) = tag {
            validate_tag(tag).map_err(|r| invalid(&r))?;
        }
        let (registry, repository) = split_registry(name);
        validate_repository(&repository).map_err(|r| invalid(&r))?;
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The same repository with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> Self {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository pinned to a digest (tag dropped).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same reference on another registry host (used for mirrors).
    pub fn on_registry(&self, registry: &str) -> Self {
        Reference {
            registry: registry.to_string(),
            ..self.clone()
        }
    }

    /// What to put after `/manifests/`: the digest if pinned, else the tag.
    pub fn manifest_key(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// `registry/repository` without tag or digest.
    pub fn repository_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl FromStr for Reference {
    type Err = RegistryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Maps Docker Hub's aliases to its canonical host; other hosts unchanged.
pub fn canonical_registry(host: &str) -> String {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        other => other.to_string(),
    }
}

fn split_tag(name_and_tag: &str) -> (&str, Option<&str>) {
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    match name_and_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_and_tag[..last_slash + i],
            Some(&name_and_tag[last_slash + i + 1..]),
        ),
        None => (name_and_tag, None),
    }
}

fn split_registry(name: &str) -> (String, String) {
    if let Some((first, rest)) = name.split_once('/')
        && (first.contains('.') || first.contains(':') || first == "localhost")
    {
        return (canonical_registry(first), rest.to_string());
    }
    if name.contains('/') {
        (DOCKER_HUB.to_string(), name.to_string())
    } else {
        (DOCKER_HUB.to_string(), format!("library/{name}"))
    }
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let valid_first = tag
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let valid_rest = tag
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if tag.is_empty() || tag.len() > 128 || !valid_first || !valid_rest {
        return Err(format!(
            "tag {tag:?} must be 1-128 characters of letters, digits, '_', '.', '-', not starting with '.' or '-'"
        ));
    }
    Ok(())
}

fn validate_repository(repository: &str) -> Result<(), String> {
    if repository.is_empty() {
        return Err("repository name is empty".into());
    }
    for component in repository.split('/') {
        if !valid_path_component(component) {
            return Err(format!(
                "repository component {component:?} must be lowercase letters and digits, separated by '.', '_', '__' or '-'"
            ));
        }
    }
    Ok(())
}

fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut separator_run = String::new();
    for &b in bytes {
        if alnum(b) {
            if !matches!(separator_run.as_str(), "" | "." | "_" | "__")
                && !is_dashes(&separator_run)
            {
                return false;
            }
            separator_run.clear();
        } else if matches!(b, b'.' | b'_' | b'-') {
            separator_run.push(b as char);
        } else {
            return false;
        }
    }
    true
}

fn is_dashes(run: &str) -> bool {
    !run.is_empty() && run.bytes().all(|b| b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> (String, String, Option<String>, Option<String>) {
        let r = Reference::parse(text).unwrap();
        (
            r.registry,
            r.repository,
            r.tag,
            r.digest.map(|d| d.to_string()),
        )
    }

    #[test]
    fn docker_hub_names_get_library_and_latest() {
        assert_eq!(
            parts("python"),
            (
                "index.docker.io".into(),
                "library/python".into(),
                Some("latest".into()),
                None
            )
        );
        assert_eq!(parts("python:3.11-slim").2.as_deref(), Some("3.11-slim"));
        assert_eq!(parts("docker.io/nvidia/cuda:12.1").0, "index.docker.io");
        assert_eq!(parts("nvidia/cuda:12.1").1, "nvidia/cuda");
    }

    #[test]
    fn hosts_are_recognised_by_dot_colon_or_localhost() {
        assert_eq!(parts("r8.im/user/model").0, "r8.im");
        assert_eq!(parts("127.0.0.1:5000/a/b:t").0, "127.0.0.1:5000");
        assert_eq!(parts("localhost/a").0, "localhost");
        assert_eq!(parts("user/model").0, "index.docker.io");
    }

    #[test]
    fn digests_and_tags_combine() {
        let d = format!("sha256:{}", "a".repeat(64));
        let (_, _, tag, digest) = parts(&format!("r8.im/u/m@{d}"));
        assert_eq!(tag, None);
        assert_eq!(digest.as_deref(), Some(d.as_str()));
        let (_, _, tag, _) = parts(&format!("r8.im/u/m:v1@{d}"));
        assert_eq!(tag.as_deref(), Some("v1"));
        assert_eq!(
            Reference::parse(&format!("r8.im/u/m:v1@{d}"))
                .unwrap()
                .manifest_key(),
            d
        );
    }

    #[test]
    fn rejects_bad_references_with_reason() {
        for bad in [
            "",
            "UPPER/case",
            "a//b",
            "r8.im/u/m:",
            "r8.im/u/m:-x",
            "u/m@sha256:12",
            "a/-b",
        ] {
            let err = Reference::parse(bad).unwrap_err().to_string();
            assert!(err.contains("invalid image reference"), "{bad}: {err}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "r8.im/u/m:v1",
            "127.0.0.1:5000/a/b:latest",
            "index.docker.io/library/python:3.11",
        ] {
            assert_eq!(Reference::parse(text).unwrap().to_string(), text);
        }
    }
}
