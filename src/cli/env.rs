//! The process environment, read once by the CLI and passed down as values:
//! nothing below the CLI reads environment variables itself.

use std::collections::HashMap;
use std::path::PathBuf;

/// A snapshot of the environment variables cogpack honours.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: HashMap<String, String>,
}

impl Environment {
    /// Captures the current process environment.
    pub fn capture() -> Self {
        Environment {
            vars: std::env::vars().collect(),
        }
    }

    /// A non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A non-empty value of `name` as an owned string.
    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }

    /// `SOURCE_DATE_EPOCH` as seconds, or an error naming the variable.
    pub fn source_date_epoch(&self) -> Result<Option<u64>, String> {
        match self.get("SOURCE_DATE_EPOCH") {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                format!(
                    "SOURCE_DATE_EPOCH={v:?} is not a number of seconds since 1970\nhint: set it to an integer such as `$(git log -1 --format=%ct)` or unset it"
                )
            }),
        }
    }

    /// The replicate-compatible registry host (`COG_REGISTRY_HOST`, default r8.im).
    pub fn registry_host(&self, flag: Option<&str>) -> String {
        flag.map(str::to_string)
            .or_else(|| self.string("COG_REGISTRY_HOST"))
            .unwrap_or_else(|| "r8.im".to_string())
    }

    /// The local store root: `$COGPACK_HOME`, else `$XDG_CACHE_HOME/cogpack`,
    /// else `$HOME/.cache/cogpack`.
    pub fn store_root(&self) -> Option<PathBuf> {
        if let Some(home) = self.get("COGPACK_HOME") {
            return Some(PathBuf::from(home));
        }
        crate::oci::store::Store::default_root(
            self.get("XDG_CACHE_HOME").map(std::path::Path::new),
            self.get("HOME").map(std::path::Path::new),
        )
    }
}
