//! Client settings: registry mirrors and insecure (plain HTTP) registries,
//! from a config file, the environment and the command line.
//!
//! Config file (TOML; `$COGPACK_REGISTRIES_CONFIG`, else
//! `$XDG_CONFIG_HOME/cogpack/registries.toml`, else
//! `~/.config/cogpack/registries.toml`):
//!
//! ```toml
//! insecure = ["registry.lan:5000"]
//! secure = ["127.0.0.1:5443"]   # HTTPS even though loopback
//! [mirrors]
//! "docker.io" = ["127.0.0.1:5000"]
//! "r8.im" = ["127.0.0.1:5000"]
//! ```
//!
//! Environment: `COGPACK_REGISTRY_MIRRORS="docker.io=127.0.0.1:5000,r8.im=127.0.0.1:5000"`
//! and `COGPACK_INSECURE_REGISTRIES="host:port,…"`.

use super::RegistryError;
use super::reference::canonical_registry;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Environment variable with `SOURCE=MIRROR` pairs, comma separated.
pub const MIRRORS_ENV: &str = "COGPACK_REGISTRY_MIRRORS";
/// Environment variable with insecure registry hosts, comma separated.
pub const INSECURE_ENV: &str = "COGPACK_INSECURE_REGISTRIES";
/// Environment variable naming the registries config file.
pub const CONFIG_ENV: &str = "COGPACK_REGISTRIES_CONFIG";

/// Mirrors and insecure hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrySettings {
    /// Source registry host → mirror hosts, tried in order before the source.
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// Hosts spoken to over plain HTTP even though they are not loopback.
    pub insecure: Vec<String>,
    /// Hosts always spoken to over HTTPS, even on loopback (a local
    /// registry with TLS).
    pub secure: Vec<String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    #[serde(default)]
    insecure: Vec<String>,
    #[serde(default)]
    secure: Vec<String>,
    #[serde(default)]
    mirrors: BTreeMap<String, Vec<String>>,
}

impl RegistrySettings {
    /// Settings from the config file, then the environment, then the given
    /// command-line `--registry-mirror` and `--insecure-registry` values.
    pub fn load(cli_mirrors: &[String], cli_insecure: &[String]) -> Result<Self, RegistryError> {
        let mut settings = match default_config_path() {
            Some(path) if path.exists() => Self::from_file(&path)?,
            _ => Self::default(),
        };
        if let Ok(value) = std::env::var(MIRRORS_ENV) {
            for item in split_list(&value) {
                settings.add_mirror_mapping(item, MIRRORS_ENV)?;
            }
        }
        if let Ok(value) = std::env::var(INSECURE_ENV) {
            settings
                .insecure
                .extend(split_list(&value).map(str::to_string));
        }
        for item in cli_mirrors {
            settings.add_mirror_mapping(item, "--registry-mirror")?;
        }
        settings.insecure.extend(cli_insecure.iter().cloned());
        Ok(settings)
    }

    /// Reads the TOML config file.
    pub fn from_file(path: &Path) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|e| RegistryError::Config {
            detail: format!(
                "cannot read {}: {e}; hint: check the file or unset {CONFIG_ENV}",
                path.display()
            ),
        })?;
        let file: SettingsFile = toml::from_str(&text).map_err(|e| RegistryError::Config {
            detail: format!(
                "{}: {}; hint: expected `insecure = [\"host\"]` and a `[mirrors]` table of `\"source\" = [\"mirror\"]`",
                path.display(),
                e.to_string().trim()
            ),
        })?;
        let mut settings = RegistrySettings {
            insecure: file.insecure,
            secure: file.secure,
            ..Default::default()
        };
        for (source, mirrors) in file.mirrors {
            for mirror in mirrors {
                settings.add_mirror(&source, &mirror);
            }
        }
        Ok(settings)
    }

    /// Adds one `SOURCE=MIRROR` mapping, e.g. `docker.io=127.0.0.1:5000`.
    pub fn add_mirror_mapping(&mut self, mapping: &str, origin: &str) -> Result<(), RegistryError> {
        let parsed = mapping
            .split_once('=')
            .map(|(s, m)| (s.trim(), m.trim()))
            .filter(|(s, m)| {
                !s.is_empty() && !strip_scheme(m).is_empty() && !strip_scheme(m).contains('/')
            });
        let Some((source, mirror)) = parsed else {
            return Err(RegistryError::Config {
                detail: format!(
                    "{origin}: invalid mirror mapping {mapping:?}; hint: use SOURCE=MIRROR with registry hosts, e.g. docker.io=127.0.0.1:5000"
                ),
            });
        };
        self.add_mirror(source, mirror);
        Ok(())
    }

    /// Adds a mirror; an explicit `http://` prefix marks the mirror host as
    /// plain HTTP (an explicit choice, never a fallback).
    fn add_mirror(&mut self, source: &str, mirror: &str) {
        let host = strip_scheme(mirror).to_string();
        if mirror.starts_with("http://") && !self.insecure.contains(&host) {
            self.insecure.push(host.clone());
        }
        let list = self.mirrors.entry(canonical_registry(source)).or_default();
        let mirror = host;
        if !list.contains(&mirror) {
            list.push(mirror);
        }
    }

    /// Mirrors of a source registry, in the order to try them.
    pub fn mirrors_for(&self, registry: &str) -> &[String] {
        self.mirrors
            .get(&canonical_registry(registry))
            .map_or(&[], Vec::as_slice)
    }

    /// True if the host is spoken to over plain HTTP: loopback or listed
    /// insecure, unless listed secure. Never decided by trying HTTPS first.
    pub fn allows_plain_http(&self, host: &str) -> bool {
        let listed = |list: &[String]| list.iter().any(|h| strip_scheme(h) == host);
        !listed(&self.secure) && (is_loopback_host(host) || listed(&self.insecure))
    }
}

fn strip_scheme(host: &str) -> &str {
    host.strip_prefix("http://")
        .or_else(|| host.strip_prefix("https://"))
        .unwrap_or(host)
        .trim_end_matches('/')
}

fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn default_config_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(CONFIG_ENV) {
        return Some(PathBuf::from(path));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))?;
    Some(base.join("cogpack").join("registries.toml"))
}

/// True for `localhost`, `127.x.x.x` and `::1`, with or without a port.
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        assert!(is_loopback_host("127.0.0.1:5000"));
        assert!(is_loopback_host("localhost"));
        assert!(is_loopback_host("[::1]:5000"));
        assert!(!is_loopback_host("r8.im"));
        assert!(!is_loopback_host("10.0.0.1:5000"));
    }

    #[test]
    fn mirror_mappings_normalise_docker_hub() {
        let mut s = RegistrySettings::default();
        s.add_mirror_mapping("docker.io=127.0.0.1:5000", "test")
            .unwrap();
        s.add_mirror_mapping("r8.im=http://127.0.0.1:5001", "test")
            .unwrap();
        assert_eq!(s.mirrors_for("index.docker.io"), ["127.0.0.1:5000"]);
        assert_eq!(s.mirrors_for("r8.im"), ["127.0.0.1:5001"]);
        s.add_mirror_mapping("ghcr.io=http://mirror.lan:5000", "test")
            .unwrap();
        assert!(
            s.allows_plain_http("mirror.lan:5000"),
            "explicit http:// mirrors are plain HTTP"
        );
        assert!(!s.allows_plain_http("ghcr.io"));
        assert_eq!(s.mirrors_for("ghcr.io"), ["mirror.lan:5000"]);
        assert!(s.mirrors_for("quay.io").is_empty());
        let err = s
            .add_mirror_mapping("docker.io", "--registry-mirror")
            .unwrap_err();
        assert!(err.to_string().contains("--registry-mirror"));
    }

    #[test]
    fn insecure_only_when_listed() {
        let s = RegistrySettings {
            insecure: vec!["registry.lan:5000".into()],
            ..Default::default()
        };
        assert!(s.allows_plain_http("registry.lan:5000"));
        assert!(!s.allows_plain_http("registry.lan:5001"));
    }

    #[test]
    fn reads_toml_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registries.toml");
        std::fs::write(
            &path,
            "insecure = [\"a:1\"]\n[mirrors]\n\"docker.io\" = [\"127.0.0.1:5000\"]\n",
        )
        .unwrap();
        let s = RegistrySettings::from_file(&path).unwrap();
        assert_eq!(s.mirrors_for("docker.io"), ["127.0.0.1:5000"]);
        assert_eq!(s.insecure, ["a:1"]);
        std::fs::write(&path, "mirrorz = 1\n").unwrap();
        assert!(
            RegistrySettings::from_file(&path)
                .unwrap_err()
                .to_string()
                .contains("registries.toml")
        );
    }
}
