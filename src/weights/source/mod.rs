//! Weight sources (§8.3): listing files and fingerprints, and where each
//! file's bytes come from.

pub mod hf;
pub mod http;
pub mod local;

use super::error::{Result, WeightsError};
use super::filter::SourceFilter;
use super::spec::{SourceLocation, SourceSpec, locate};
use crate::oci::Digest;
use http::HttpOptions;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Inputs sources need from the environment, passed in by the caller.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Project directory (relative `file://` sources resolve against it).
    pub project_dir: PathBuf,
    /// `HF_ENDPOINT` (default `https://huggingface.co`).
    pub hf_endpoint: Option<String>,
    /// `HF_TOKEN` (or `HUGGING_FACE_HUB_TOKEN`); never printed.
    pub hf_token: Option<String>,
    /// First retry delay of HTTP sources (1 s like cog; tests shorten it).
    pub retry_backoff: Duration,
}

impl SourceOptions {
    /// Options for a project with cog's defaults.
    pub fn new(project_dir: impl Into<PathBuf>) -> Self {
        SourceOptions {
            project_dir: project_dir.into(),
            hf_endpoint: None,
            hf_token: None,
            retry_backoff: Duration::from_secs(1),
        }
    }

    /// The HuggingFace token cog uses: `HF_TOKEN`, else
    /// `HUGGING_FACE_HUB_TOKEN` (values passed in by the caller).
    pub fn hf_token_from(hf_token: Option<&str>, hub_token: Option<&str>) -> Option<String> {
        hf_token
            .filter(|t| !t.is_empty())
            .or(hub_token.filter(|t| !t.is_empty()))
            .map(str::to_string)
    }

    fn http(&self, bearer: Option<String>) -> HttpOptions {
        HttpOptions {
            bearer,
            retries: 3,
            backoff: self.retry_backoff,
        }
    }
}

/// Where one listed file's bytes come from.
#[derive(Debug, Clone)]
pub enum Fetch {
    /// A local regular file, with the metadata seen while listing.
    Local {
        /// Absolute path.
        path: PathBuf,
        /// Modification time seen while listing.
        modified: Option<SystemTime>,
    },
    /// A URL, fetched with these HTTP options.
    Url {
        /// The URL.
        url: String,
        /// Auth and retries.
        options: HttpOptions,
    },
}

/// One file a source offers.
#[derive(Debug, Clone)]
pub struct ListedFile {
    /// Forward-slash path relative to the source root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Content digest when the listing knows it (HF LFS entries).
    pub digest: Option<Digest>,
    /// Where the bytes come from.
    pub fetch: Fetch,
}

/// How a source's fingerprint is obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fingerprint {
    /// Known from the listing (`commit:…`, `etag:…`).
    Known(String),
    /// The set digest of every listed file (before filtering).
    SetDigestOfAll,
    /// `sha256:<hex>` of the single file's content.
    ContentDigest,
}

/// What a source offers.
#[derive(Debug, Clone)]
pub struct Listing {
    /// Files sorted by path.
    pub files: Vec<ListedFile>,
    /// How to fingerprint the source.
    pub fingerprint: Fingerprint,
}

/// Lists one source.
pub fn list_source(uri: &str, opts: &SourceOptions) -> Result<Listing> {
    let location = locate(uri, &opts.project_dir).map_err(|e| {
        WeightsError::Invalid(format!(
            "source {:?}: {e}; hint: use a directory, hf://org/repo[@ref] or https://…",
            super::spec::redact_uri(uri)
        ))
    })?;
    let mut listing = match location {
        SourceLocation::Dir(dir) => local::list_dir(&dir, uri)?,
        SourceLocation::HuggingFace { repo, revision } => {
            let endpoint = opts
                .hf_endpoint
                .clone()
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "https://huggingface.co".into());
            hf::list_repo(
                &endpoint,
                &repo,
                &revision,
                &opts.http(opts.hf_token.clone().filter(|t| !t.is_empty())),
            )?
        }
        SourceLocation::Http(url) => list_url(&url, &opts.http(None))?,
    };
    listing.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(listing)
}

fn list_url(url: &str, options: &HttpOptions) -> Result<Listing> {
    let parsed =
        url::Url::parse(url).map_err(|e| WeightsError::Invalid(format!("source {url:?}: {e}")))?;
    let name = parsed
        .path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            WeightsError::Invalid(format!(
                "source {url:?}: the URL has no file name; hint: point at a single file"
            ))
        })?
        .to_string();
    let head = http::head(url, options).map_err(|e| {
        WeightsError::Source(format!(
            "source {url}: HEAD failed: {e}; hint: check the URL is reachable"
        ))
    })?;
    let etag = head
        .headers
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.starts_with("W/"))
        .map(str::to_string);
    let size = head
        .headers
        .get(reqwest::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            WeightsError::Source(format!(
                "source {url}: the server did not report Content-Length; hint: serve the file with a known length"
            ))
        })?;
    Ok(Listing {
        files: vec![ListedFile {
            path: name,
            size,
            digest: None,
            fetch: Fetch::Url {
                url: url.to_string(),
                options: options.clone(),
            },
        }],
        fingerprint: match etag {
            Some(tag) => Fingerprint::Known(format!("etag:{tag}")),
            None => Fingerprint::ContentDigest,
        },
    })
}

/// A file of the merged, filtered set with the index of its owning source.
#[derive(Debug, Clone)]
pub struct MergedFile {
    /// The listed file.
    pub file: ListedFile,
    /// Index of the source that provides it.
    pub source: usize,
}

/// Filters each listing and merges them by path, last source wins (§8.4–8.5).
/// Returns the path-sorted files and notices about overridden paths.
pub fn filter_and_merge(
    weight: &str,
    specs: &[SourceSpec],
    listings: &[Listing],
) -> Result<(Vec<MergedFile>, Vec<String>)> {
    let mut merged: std::collections::BTreeMap<String, MergedFile> = Default::default();
    let mut notices = Vec::new();
    for (index, (spec, listing)) in specs.iter().zip(listings).enumerate() {
        let filter = SourceFilter::new(&spec.include, &spec.exclude).map_err(|e| {
            WeightsError::Invalid(format!("weight \"{weight}\": source {}: {e}", spec.uri))
        })?;
        for file in listing.files.iter().filter(|f| filter.keeps(&f.path)) {
            let previous = merged.insert(
                file.path.clone(),
                MergedFile {
                    file: file.clone(),
                    source: index,
                },
            );
            if let Some(prev) = previous {
                notices.push(format!(
                    "weight \"{weight}\": {} from {} overrides the one from {}",
                    file.path, spec.uri, specs[prev.source].uri
                ));
            }
        }
    }
    if merged.is_empty() {
        let patterns: Vec<String> = specs
            .iter()
            .map(|s| {
                format!(
                    "{} (include {:?}, exclude {:?})",
                    s.uri, s.include, s.exclude
                )
            })
            .collect();
        return Err(WeightsError::Invalid(format!(
            "weight \"{weight}\": no files left after include/exclude filters: {}; hint: loosen the patterns or check the source contents",
            patterns.join(", ")
        )));
    }
    Ok((merged.into_values().collect(), notices))
}

/// True if `path` is a safe relative path (no `..`, not absolute).
pub fn check_relative(path: &str, origin: &str) -> Result<()> {
    if super::spec::is_safe_relative(path) {
        Ok(())
    } else {
        Err(WeightsError::Source(format!(
            "{origin}: unsafe file path {path:?} in listing; hint: the source must only contain paths inside it"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_token_falls_back_to_the_hub_variable() {
        assert_eq!(
            SourceOptions::hf_token_from(Some("a"), Some("b")).as_deref(),
            Some("a")
        );
        assert_eq!(
            SourceOptions::hf_token_from(Some(""), Some("b")).as_deref(),
            Some("b")
        );
        assert_eq!(SourceOptions::hf_token_from(None, None), None);
    }

    #[test]
    fn next_links_are_found_among_other_relations() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::LINK,
            "<https://h/a?p=1>; rel=\"prev\", <https://h/a?cursor=x>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            http::next_link(&headers).as_deref(),
            Some("https://h/a?cursor=x")
        );
        headers.insert(
            reqwest::header::LINK,
            "<https://h/a>; rel=\"last\"".parse().unwrap(),
        );
        assert_eq!(http::next_link(&headers), None);
    }
}
