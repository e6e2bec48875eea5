//! `hf://org/repo[@ref]` sources through the HuggingFace Hub API: revision →
//! commit sha, recursive tree listing with `Link` pagination, LFS sha256 and
//! size from the listing, other files fetched from `resolve/`.

use super::http::{self, HttpFailure, HttpOptions};
use super::{Fetch, Fingerprint, ListedFile, Listing, check_relative};
use crate::oci::Digest;
use crate::weights::error::{Result, WeightsError};
use reqwest::StatusCode;
use serde::Deserialize;

#[derive(Deserialize)]
struct RevisionInfo {
    sha: Option<String>,
}

#[derive(Deserialize)]
struct TreeEntry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    lfs: Option<LfsInfo>,
}

#[derive(Deserialize)]
struct LfsInfo {
    oid: String,
    size: u64,
}

/// Percent-encodes one URL path segment.
fn encode_segment(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

/// Maps an HTTP failure to cog's HF messages (401/403/404) with a hint.
fn hf_error(failure: HttpFailure, repo: &str, revision: &str, what: &str) -> WeightsError {
    let source = format!("hf://{repo}@{revision}");
    let msg = match &failure {
        HttpFailure::Status(StatusCode::UNAUTHORIZED, _) => format!(
            "{source}: {what}: authentication required (HTTP 401); hint: set HF_TOKEN to a HuggingFace token that can read this repository"
        ),
        HttpFailure::Status(StatusCode::FORBIDDEN, _) => format!(
            "{source}: {what}: access denied (HTTP 403); hint: accept the model's terms on the hub or use an HF_TOKEN with access to it"
        ),
        HttpFailure::Status(StatusCode::NOT_FOUND, _) => format!(
            "{source}: {what}: repository or revision not found (HTTP 404); hint: check the org/name and the @ref in cog.yaml (private repositories also need HF_TOKEN)"
        ),
        other => format!(
            "{source}: {what}: {other}; hint: check HF_ENDPOINT and your network, then retry"
        ),
    };
    WeightsError::Source(msg)
}

/// Resolves the revision and lists every file of the repository.
pub fn list_repo(
    endpoint: &str,
    repo: &str,
    revision: &str,
    options: &HttpOptions,
) -> Result<Listing> {
    let endpoint = endpoint.trim_end_matches('/');
    let sha = resolve_revision(endpoint, repo, revision, options)?;
    let mut url = Some(format!(
        "{endpoint}/api/models/{repo}/tree/{sha}?recursive=true"
    ));
    let mut files = Vec::new();
    let mut pages = 0;
    while let Some(page) = url.take() {
        pages += 1;
        if pages > 10_000 {
            return Err(WeightsError::Source(format!(
                "hf://{repo}: tree listing did not end after 10000 pages; hint: check HF_ENDPOINT"
            )));
        }
        let (head, body) = http::get_text(&page, options)
            .map_err(|e| hf_error(e, repo, revision, "listing files"))?;
        let entries: Vec<TreeEntry> = serde_json::from_str(&body).map_err(|e| {
            WeightsError::Source(format!(
                "hf://{repo}: unexpected tree listing from {page}: {e}; hint: check HF_ENDPOINT points at a HuggingFace Hub"
            ))
        })?;
        for entry in entries.into_iter().filter(|e| e.kind == "file") {
            files.push(listed_file(endpoint, repo, &sha, entry, options)?);
        }
        url = http::next_link(&head.headers).map(|next| absolute(endpoint, &next));
    }
    Ok(Listing {
        files,
        fingerprint: Fingerprint::Known(format!("commit:{sha}")),
    })
}

fn absolute(endpoint: &str, link: &str) -> String {
    if link.starts_with("http://") || link.starts_with("https://") {
        link.to_string()
    } else {
        format!("{endpoint}/{}", link.trim_start_matches('/'))
    }
}

fn resolve_revision(
    endpoint: &str,
    repo: &str,
    revision: &str,
    options: &HttpOptions,
) -> Result<String> {
    let url = format!(
        "{endpoint}/api/models/{repo}/revision/{}",
        encode_segment(revision)
    );
    let (_, body) = http::get_text(&url, options)
        .map_err(|e| hf_error(e, repo, revision, "resolving the revision"))?;
    let info: RevisionInfo = serde_json::from_str(&body).map_err(|e| {
        WeightsError::Source(format!(
            "hf://{repo}@{revision}: unexpected revision answer: {e}; hint: check HF_ENDPOINT"
        ))
    })?;
    match info.sha {
        Some(sha) if sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(sha.to_ascii_lowercase())
        }
        other => Err(WeightsError::Source(format!(
            "hf://{repo}@{revision}: the hub returned no commit sha (got {other:?}); hint: check the revision name"
        ))),
    }
}

fn listed_file(
    endpoint: &str,
    repo: &str,
    sha: &str,
    entry: TreeEntry,
    options: &HttpOptions,
) -> Result<ListedFile> {
    check_relative(&entry.path, &format!("hf://{repo}"))?;
    let (size, digest) = match entry.lfs {
        Some(lfs) => {
            let digest: Digest = format!("sha256:{}", lfs.oid.to_ascii_lowercase())
                .parse()
                .map_err(|e| {
                    WeightsError::Source(format!(
                        "hf://{repo}: {}: LFS oid is not a sha256: {e}",
                        entry.path
                    ))
                })?;
            (lfs.size, Some(digest))
        }
        None => (entry.size, None),
    };
    Ok(ListedFile {
        fetch: Fetch::Url {
            url: format!(
                "{endpoint}/{repo}/resolve/{sha}/{}",
                encode_path(&entry.path)
            ),
            options: options.clone(),
        },
        path: entry.path,
        size,
        digest,
    })
}
