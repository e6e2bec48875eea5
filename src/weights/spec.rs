//! Normalised user intent for one weight (§8.2) and source URI
//! normalisation (§8.3).

use super::error::{Result, WeightsError};
use crate::config::WeightDecl;
use std::path::{Component, Path, PathBuf};

/// One source of a weight, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    /// Normalised URI (`file://./x`, `file:///abs`, `hf://org/repo[@ref]`, `https://…`).
    pub uri: String,
    /// Include patterns, trimmed and sorted.
    pub include: Vec<String>,
    /// Exclude patterns, trimmed and sorted.
    pub exclude: Vec<String>,
}

/// A weight declaration after normalisation. Equality ignores the name.
#[derive(Debug, Clone, Eq)]
pub struct WeightSpec {
    /// Weight name.
    pub name: String,
    /// Absolute target directory inside the container.
    pub target: String,
    /// Sources in declaration order.
    pub sources: Vec<SourceSpec>,
}

impl PartialEq for WeightSpec {
    fn eq(&self, other: &Self) -> bool {
        self.target == other.target && self.sources == other.sources
    }
}

impl WeightSpec {
    /// Normalises one `weights:` declaration from cog.yaml.
    pub fn from_decl(decl: &WeightDecl) -> Result<Self> {
        let sources = decl
            .sources
            .iter()
            .map(|s| {
                Ok(SourceSpec {
                    uri: normalize_uri(&s.uri).map_err(|e| {
                        WeightsError::Invalid(format!(
                            "weights \"{}\": source uri {:?}: {e}; hint: use a relative or absolute directory, hf://org/repo[@ref] or https://host/file",
                            decl.name,
                            redact_uri(&s.uri)
                        ))
                    })?,
                    include: normalize_patterns(&s.include),
                    exclude: normalize_patterns(&s.exclude),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(WeightSpec {
            name: decl.name.clone(),
            target: decl.target.clone(),
            sources,
        })
    }

    /// Normalises every declaration and checks that targets are disjoint and
    /// names unique (defence in depth; cog.yaml validation reports the same).
    pub fn from_decls(decls: &[WeightDecl]) -> Result<Vec<Self>> {
        let specs = decls
            .iter()
            .map(Self::from_decl)
            .collect::<Result<Vec<_>>>()?;
        check_disjoint(&specs)?;
        Ok(specs)
    }
}

/// The URI with any `user:password@` part replaced by `***@`, for messages.
pub fn redact_uri(uri: &str) -> String {
    let Some(start) = uri.find("://").map(|i| i + 3) else {
        return uri.to_string();
    };
    let authority_end = uri[start..].find('/').map_or(uri.len(), |i| start + i);
    match uri[start..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &uri[..start], &uri[start + at..]),
        None => uri.to_string(),
    }
}

fn normalize_patterns(patterns: &[String]) -> Vec<String> {
    let mut out: Vec<String> = patterns.iter().map(|p| p.trim().to_string()).collect();
    out.sort();
    out
}

/// Checks unique names and pairwise disjoint cleaned targets.
pub fn check_disjoint(specs: &[WeightSpec]) -> Result<()> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for spec in specs {
        let clean = clean_abs(&spec.target).ok_or_else(|| {
            WeightsError::Invalid(format!(
                "weights \"{}\": invalid target {:?}: must be an absolute path other than /; hint: e.g. target: /src/weights/{}",
                spec.name, spec.target, spec.name
            ))
        })?;
        for (name, prev) in &seen {
            if name == &spec.name {
                return Err(WeightsError::Invalid(format!(
                    "weights \"{}\": duplicate name; hint: give every weight a unique name",
                    spec.name
                )));
            }
            if is_within(&clean, prev) || is_within(prev, &clean) {
                return Err(WeightsError::Invalid(format!(
                    "weights \"{}\": target {:?} overlaps with {:?}; weight targets must be disjoint; hint: give each weight its own directory",
                    spec.name, spec.target, prev
                )));
            }
        }
        seen.push((spec.name.clone(), clean));
    }
    Ok(())
}

fn is_within(path: &str, dir: &str) -> bool {
    path == dir || path.starts_with(&format!("{dir}/"))
}

/// Lexically cleans an absolute path; `None` if relative or `/`.
pub fn clean_abs(target: &str) -> Option<String> {
    if !target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(format!("/{}", parts.join("/")))
    }
}

/// The scheme of a URI: the text before the first `://`, or `""`.
pub fn scheme_of(uri: &str) -> &str {
    uri.find("://").map(|i| &uri[..i]).unwrap_or("")
}

/// Normalises a source URI (§8.3).
pub fn normalize_uri(uri: &str) -> Result<String, String> {
    let uri = uri.trim();
    match scheme_of(uri) {
        "" => normalize_file(uri),
        "file" => normalize_file(&uri["file://".len()..]),
        "hf" | "huggingface" => normalize_hf(&uri[scheme_of(uri).len() + 3..]),
        "http" | "https" => normalize_http(uri),
        other => Err(format!("unsupported scheme {other:?}")),
    }
}

fn normalize_file(path: &str) -> Result<String, String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.starts_with('/') {
        return clean_abs(path)
            .map(|p| format!("file://{p}"))
            .ok_or_else(|| "the root directory cannot be a weight source".into());
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("path escapes the project directory".into());
                }
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err("the project directory itself cannot be a weight source".into());
    }
    Ok(format!("file://./{}", parts.join("/")))
}

fn normalize_hf(rest: &str) -> Result<String, String> {
    let (repo, reference) = match rest.rfind('@') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let parts: Vec<&str> = repo.split('/').collect();
    if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
        return Err("repository must be exactly org/name".into());
    }
    match reference {
        Some("") => Err("empty revision after @".into()),
        Some("main") | None => Ok(format!("hf://{repo}")),
        Some(r) => Ok(format!("hf://{repo}@{r}")),
    }
}

fn normalize_http(uri: &str) -> Result<String, String> {
    let url = url::Url::parse(uri).map_err(|e| format!("not a valid URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are not allowed".into());
    }
    Ok(url.to_string())
}

/// Where a normalised source lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceLocation {
    /// A local directory (absolute, resolved against the project).
    Dir(PathBuf),
    /// A HuggingFace model repository at a revision (`main` when unset).
    HuggingFace {
        /// `org/name`.
        repo: String,
        /// Branch, tag or commit.
        revision: String,
    },
    /// A single file by URL.
    Http(String),
}

/// Resolves a normalised URI against the project directory.
pub fn locate(uri: &str, project_dir: &Path) -> Result<SourceLocation, String> {
    let normal = normalize_uri(uri)?;
    match scheme_of(&normal) {
        "file" => {
            let path = &normal["file://".len()..];
            Ok(SourceLocation::Dir(match path.strip_prefix("./") {
                Some(rel) => project_dir.join(rel),
                None => PathBuf::from(path),
            }))
        }
        "hf" => {
            let rest = &normal["hf://".len()..];
            let (repo, revision) = match rest.rfind('@') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, "main"),
            };
            Ok(SourceLocation::HuggingFace {
                repo: repo.into(),
                revision: revision.into(),
            })
        }
        _ => Ok(SourceLocation::Http(normal)),
    }
}

/// Project-relative directories (forward slashes, e.g. `weights/tok`) of
/// every `file://./…` source: what the source-tree layer leaves out of /src.
pub fn project_source_dirs(specs: &[WeightSpec]) -> Vec<String> {
    let mut dirs: Vec<String> = specs
        .iter()
        .flat_map(|s| &s.sources)
        .filter_map(|s| s.uri.strip_prefix("file://./").map(str::to_string))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// True if a relative path has no `..`, root or prefix component.
pub fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_file_uris() {
        assert_eq!(normalize_uri("weights").unwrap(), "file://./weights");
        assert_eq!(normalize_uri("./a/../b/").unwrap(), "file://./b");
        assert_eq!(
            normalize_uri("file://./weights").unwrap(),
            "file://./weights"
        );
        assert_eq!(normalize_uri("/data//w/").unwrap(), "file:///data/w");
        assert!(normalize_uri(".").is_err());
        assert!(normalize_uri("../x").is_err());
    }

    #[test]
    fn lists_project_source_dirs() {
        let spec = |uri: &str| WeightSpec {
            name: "w".into(),
            target: "/w".into(),
            sources: vec![SourceSpec {
                uri: normalize_uri(uri).unwrap(),
                include: vec![],
                exclude: vec![],
            }],
        };
        let specs = [
            spec("weights/a"),
            spec("/abs"),
            spec("hf://o/r"),
            spec("./weights/a"),
        ];
        assert_eq!(project_source_dirs(&specs), ["weights/a"]);
    }

    #[test]
    fn normalises_hf_uris() {
        assert_eq!(normalize_uri("hf://a/b@main").unwrap(), "hf://a/b");
        assert_eq!(
            normalize_uri("huggingface://a/b@v1").unwrap(),
            "hf://a/b@v1"
        );
        assert!(normalize_uri("hf://a").is_err());
        assert!(normalize_uri("hf://a/b/c").is_err());
    }

    #[test]
    fn rejects_userinfo_in_http() {
        assert!(normalize_uri("https://u:p@h/x").is_err());
        assert_eq!(redact_uri("https://u:p@h/x@y"), "https://***@h/x@y");
        assert_eq!(redact_uri("hf://a/b@main"), "hf://a/b@main");
        assert_eq!(normalize_uri("https://h/x.bin").unwrap(), "https://h/x.bin");
    }
}
