//! Fixed files fetched by URL with a pinned SHA-256 (e.g. `/sbin/tini`),
//! verified and cached in the store, and generated-file entries.

use super::{Entry, EntryKind, FileSource, LayerError};
use crate::oci::Digest;
use crate::oci::store::Store;
use futures::StreamExt;
use sha2::{Digest as _, Sha256};
use std::io::Write;

/// A file to place in the image, downloaded from `url` and pinned by digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedFile {
    /// Where to download it (http or https).
    pub url: String,
    /// The SHA-256 its bytes must have.
    pub sha256: Digest,
    /// Destination path in the image, relative to `/` (e.g. `sbin/tini`).
    pub dest: String,
    /// Permission bits (e.g. `0o755`).
    pub mode: u32,
}

impl FixedFile {
    /// Cache key of a layer holding only this file.
    pub fn cache_key(&self) -> String {
        format!("fixed-file;{};{};{:o}", self.sha256, self.dest, self.mode)
    }
}

/// Makes sure the file's bytes are in the store (downloading them if not)
/// and returns its layer entry.
pub fn fetch_fixed_file(file: &FixedFile, store: &Store) -> Result<Entry, LayerError> {
    if !store.has_blob(&file.sha256) {
        download_verified(&file.url, &file.sha256, store)?;
    }
    // Pinned downloads survive gc: the next build must not need the network.
    store.pin_blob(&file.sha256, &format!("download of {}", file.url))?;
    let size = store.blob_size(&file.sha256)?;
    Ok(Entry {
        path: file.dest.clone(),
        kind: EntryKind::File {
            source: FileSource::Path(store.blob_path(&file.sha256)),
            size,
        },
        mode: file.mode,
        uid: 0,
        gid: 0,
    })
}

/// A generated file (e.g. `src/.cog/openapi_schema.json`) as a layer entry.
pub fn generated_file(dest: &str, bytes: impl Into<std::sync::Arc<[u8]>>) -> Entry {
    Entry::file_bytes(dest, 0o644, bytes)
}

fn download_verified(url: &str, expected: &Digest, store: &Store) -> Result<(), LayerError> {
    let fail = |detail: String| LayerError::Fetch {
        url: url.to_string(),
        detail,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let mut temp = store.temp_file()?;
    let temp_path = temp.path().to_path_buf();
    let actual = runtime.block_on(async {
        let response = reqwest::Client::new()
            .get(url)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !response.status().is_success() {
            return Err(fail(format!("server answered {}", response.status())));
        }
        let mut hasher = Sha256::new();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| fail(e.to_string()))?;
            hasher.update(&chunk);
            temp.write_all(&chunk).map_err(|source| LayerError::Write {
                path: temp_path.clone(),
                source,
            })?;
        }
        Ok(Digest::from_sha256(hasher.finalize().into()))
    })?;
    if &actual != expected {
        return Err(LayerError::FetchDigest {
            url: url.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    store.commit_temp(temp, expected)?;
    Ok(())
}
