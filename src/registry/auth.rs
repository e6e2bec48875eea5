//! `WWW-Authenticate` challenges, token scopes and the token cache.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `basic` or `bearer` (lowercase).
    pub scheme: String,
    /// Parameters such as `realm`, `service`, `scope`, `error`.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// Parses `Bearer realm="…",service="…",scope="…"` (or `Basic realm=…`).
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.is_empty() {
            return None;
        }
        Some(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: parse_params(rest),
        })
    }

    /// A parameter value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

fn parse_params(mut rest: &str) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        let Some((key, after)) = rest.split_once('=') else {
            return params;
        };
        let key = key.trim().to_ascii_lowercase();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            read_quoted(quoted)
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.insert(key, value);
        rest = remaining;
    }
}

fn read_quoted(text: &str) -> (String, &str) {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    value.push(escaped);
                }
            }
            '"' => return (value, &text[i + 1..]),
            other => value.push(other),
        }
    }
    (value, "")
}

/// The access a request needs: pull (and push) on a repository, plus pull on
/// repositories blobs are mounted from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// Repository path on the registry.
    pub repository: String,
    /// Whether push is needed.
    pub push: bool,
    /// Other repositories read from (cross-repository mounts).
    pub mount_from: Vec<String>,
}

impl Scope {
    /// Pull access to a repository.
    pub fn pull(repository: &str) -> Self {
        Scope {
            repository: repository.to_string(),
            push: false,
            mount_from: Vec::new(),
        }
    }

    /// Push and pull access to a repository.
    pub fn push(repository: &str) -> Self {
        Scope {
            push: true,
            ..Scope::pull(repository)
        }
    }

    /// No repository at all (the `/v2/` ping, e.g. when logging in).
    pub fn none() -> Self {
        Scope::pull("")
    }

    /// The token-server scope strings.
    pub fn strings(&self) -> Vec<String> {
        if self.repository.is_empty() {
            return Vec::new();
        }
        let actions = if self.push { "pull,push" } else { "pull" };
        let mut scopes = vec![format!("repository:{}:{actions}", self.repository)];
        scopes.extend(
            self.mount_from
                .iter()
                .filter(|r| **r != self.repository)
                .map(|r| format!("repository:{r}:pull")),
        );
        scopes
    }

    /// One string for messages and cache keys.
    pub fn describe(&self) -> String {
        let strings = self.strings();
        if strings.is_empty() {
            "registry access".to_string()
        } else {
            strings.join(" ")
        }
    }
}

/// A bearer token with its expiry. `Debug` hides the value.
#[derive(Clone)]
pub struct Token {
    /// The token text.
    pub value: String,
    /// When it stops being used (a little before the server's expiry).
    pub expires: Instant,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token(<redacted>, expires {:?})", self.expires)
    }
}

impl Token {
    /// A token valid for `expires_in` seconds (docker's default is 60),
    /// retired a little early (up to 5 s, at most half its lifetime).
    pub fn new(value: String, expires_in: Option<u64>) -> Self {
        let lifetime = expires_in.unwrap_or(60);
        let margin = (lifetime / 2).min(5);
        Token {
            value,
            expires: Instant::now() + Duration::from_secs(lifetime - margin),
        }
    }

    /// True while the token may still be sent.
    pub fn is_fresh(&self) -> bool {
        Instant::now() < self.expires
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenge_with_error() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push",error="insufficient_scope""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.example/token"));
        assert_eq!(c.param("scope"), Some("repository:a/b:pull,push"));
        assert_eq!(c.param("error"), Some("insufficient_scope"));
    }

    #[test]
    fn parses_basic_challenge() {
        let c = Challenge::parse(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.param("realm"), Some("Registry Realm"));
    }

    #[test]
    fn scope_strings_include_mount_sources() {
        let mut s = Scope::push("u/model");
        s.mount_from = vec!["library/python".into(), "u/model".into()];
        assert_eq!(
            s.strings(),
            vec![
                "repository:u/model:pull,push",
                "repository:library/python:pull"
            ]
        );
        assert!(Scope::none().strings().is_empty());
    }
}
