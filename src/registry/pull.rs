//! Manifests and blobs: HEAD/GET with digest verification, platform
//! resolution through indexes, mirrors, and the shallow pull of a base image.

use super::auth::Scope;
use super::client::{Client, network_error, status_error};
use super::{Reference, RegistryError};
use crate::oci::{Descriptor, Digest, Platform, media};
use futures::{Stream, StreamExt};
use reqwest::{Method, header};
use sha2::{Digest as _, Sha256};

/// Media types asked for when fetching manifests.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Largest manifest or config accepted (a guard against garbage).
const MAX_DOCUMENT_BYTES: usize = 32 << 20;

/// A manifest (or index) as served: exact bytes, media type and digest.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// Exact bytes.
    pub bytes: Vec<u8>,
    /// Media type (from the document, else the Content-Type header).
    pub media_type: String,
    /// sha256 of the bytes (verified against a pinned digest).
    pub digest: Digest,
}

impl FetchedManifest {
    /// The descriptor of this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.clone(),
            self.bytes.len() as u64,
            self.digest.clone(),
        )
    }
}

/// A base image resolved for one platform: manifest and config only.
#[derive(Debug, Clone)]
pub struct PulledImage {
    /// The reference asked for.
    pub requested: Reference,
    /// Where it was fetched from (a mirror or the source), pinned by digest.
    pub source: Reference,
    /// The image manifest.
    pub manifest: FetchedManifest,
    /// Config descriptor from the manifest.
    pub config: Descriptor,
    /// Exact config bytes (digest-verified).
    pub config_bytes: Vec<u8>,
    /// Layer descriptors, bottom first.
    pub layers: Vec<Descriptor>,
    /// `rootfs.diff_ids` of the config, bottom first.
    pub diff_ids: Vec<Digest>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestDoc {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// Parses the parts of an image manifest cogpack needs: config and layers.
pub fn parse_image_manifest(
    reference: &str,
    bytes: &[u8],
) -> Result<(Descriptor, Vec<Descriptor>), RegistryError> {
    let doc: ManifestDoc =
        serde_json::from_slice(bytes).map_err(|e| RegistryError::InvalidManifest {
            reference: reference.to_string(),
            detail: format!("not valid manifest JSON: {e}"),
        })?;
    let config = doc.config.ok_or_else(|| RegistryError::InvalidManifest {
        reference: reference.to_string(),
        detail: "no \"config\" descriptor".into(),
    })?;
    Ok((config, doc.layers))
}

impl Client {
    /// `HEAD` a manifest: its descriptor, or `None` if the registry says it
    /// does not exist. Tries the host's mirrors first.
    pub async fn head_manifest(
        &self,
        reference: &Reference,
    ) -> Result<Option<Descriptor>, RegistryError> {
        let mut last_error = None;
        for candidate in self.candidates(reference) {
            match self.head_manifest_direct(&candidate).await {
                Ok(Some(found)) => return Ok(Some(found)),
                Ok(None) => last_error = None,
                Err(e) => last_error = Some(e),
            }
        }
        match last_error {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    /// True if the manifest exists (the base-image existence check).
    pub async fn manifest_exists(&self, reference: &Reference) -> Result<bool, RegistryError> {
        Ok(self.head_manifest(reference).await?.is_some())
    }

    /// Blocking form of [`Client::manifest_exists`] for synchronous callers
    /// (the config module's base-image check). Must not be called from
    /// inside a tokio runtime.
    pub fn manifest_exists_blocking(&self, reference: &Reference) -> Result<bool, RegistryError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RegistryError::Config {
                detail: format!("cannot start the async runtime: {e}"),
            })?;
        runtime.block_on(self.manifest_exists(reference))
    }

    /// The manifest URL of `reference` on exactly its registry.
    fn manifest_url(&self, reference: &Reference) -> String {
        self.api_url(
            &reference.registry,
            &format!(
                "{}/manifests/{}",
                reference.repository,
                reference.manifest_key()
            ),
        )
    }

    /// `HEAD` a manifest on exactly the reference's registry (no mirrors).
    pub async fn head_manifest_direct(
        &self,
        reference: &Reference,
    ) -> Result<Option<Descriptor>, RegistryError> {
        let host = &reference.registry;
        let url = self.manifest_url(reference);
        let scope = Scope::pull(&reference.repository);
        let response = self
            .send_retrying(host, &scope, |http| {
                http.request(Method::HEAD, &url)
                    .header(header::ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        if response.status().as_u16() == 404 {
            return Ok(None);
        }
        if !response.status().is_success() {
            let what = format!("manifest {reference}");
            return Err(status_error(host, &scope, "HEAD", &url, &what, response).await);
        }
        let headers = response.headers();
        let digest = headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let media_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let size = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match (digest, media_type, size) {
            (Some(digest), Some(media_type), Some(size)) => {
                Ok(Some(Descriptor::new(media_type, size, digest)))
            }
            _ => Ok(Some(
                self.get_manifest_direct(reference).await?.descriptor(),
            )),
        }
    }

    /// `GET` a manifest or index, verifying a pinned digest. Tries mirrors first.
    pub async fn get_manifest(
        &self,
        reference: &Reference,
    ) -> Result<(Reference, FetchedManifest), RegistryError> {
        let mut last_error = None;
        for candidate in self.candidates(reference) {
            match self.get_manifest_direct(&candidate).await {
                Ok(found) => return Ok((candidate, found)),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| RegistryError::NotFound {
            what: format!("manifest {reference}"),
            registry: reference.registry.clone(),
            code: "no registry to ask".into(),
        }))
    }

    /// `GET` a manifest on exactly the reference's registry.
    pub async fn get_manifest_direct(
        &self,
        reference: &Reference,
    ) -> Result<FetchedManifest, RegistryError> {
        let host = &reference.registry;
        let url = self.manifest_url(reference);
        let scope = Scope::pull(&reference.repository);
        let response = self
            .send_retrying(host, &scope, |http| {
                http.get(&url).header(header::ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        if !response.status().is_success() {
            let what = format!("manifest {reference}");
            return Err(status_error(host, &scope, "GET", &url, &what, response).await);
        }
        let header_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let bytes = read_limited(host, response, MAX_DOCUMENT_BYTES).await?;
        let digest = Digest::of_bytes(&bytes);
        if let Some(expected) = &reference.digest
            && *expected != digest
        {
            return Err(RegistryError::DigestMismatch {
                what: format!("manifest {reference}"),
                expected: expected.clone(),
                actual: digest,
            });
        }
        let doc_type = serde_json::from_slice::<ManifestDoc>(&bytes)
            .ok()
            .and_then(|d| d.media_type);
        let media_type =
            doc_type
                .or(header_type)
                .ok_or_else(|| RegistryError::InvalidManifest {
                    reference: reference.to_string(),
                    detail: "no media type in the document or the Content-Type header".into(),
                })?;
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// Fetches a whole (small) blob, verifying its digest.
    pub async fn get_blob_bytes(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
    ) -> Result<Vec<u8>, RegistryError> {
        let mut stream = Box::pin(self.get_blob_stream(reference, descriptor).await?);
        let mut bytes = Vec::with_capacity(descriptor.size.min(MAX_DOCUMENT_BYTES as u64) as usize);
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk?);
        }
        Ok(bytes)
    }

    /// Streams a blob from exactly the reference's registry. The stream
    /// ends with a `DigestMismatch` error instead of its last chunk if the
    /// content does not hash to the descriptor's digest or size.
    pub async fn get_blob_stream(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
    ) -> Result<impl Stream<Item = Result<bytes::Bytes, RegistryError>> + Send + use<>, RegistryError>
    {
        let host = reference.registry.clone();
        let url = self.api_url(
            &host,
            &format!("{}/blobs/{}", reference.repository, descriptor.digest),
        );
        let scope = Scope::pull(&reference.repository);
        let response = self
            .send_retrying(&host, &scope, |http| http.get(&url))
            .await?;
        if !response.status().is_success() {
            let what = format!(
                "blob {} in {}",
                descriptor.digest,
                reference.repository_name()
            );
            return Err(status_error(&host, &scope, "GET", &url, &what, response).await);
        }
        Ok(verify_stream(
            host,
            response.bytes_stream(),
            descriptor.clone(),
        ))
    }

    /// Resolves a reference to the image manifest for `platform`, following
    /// an index or manifest list.
    pub async fn resolve_image(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<(Reference, FetchedManifest), RegistryError> {
        let (source, fetched) = self.get_manifest(reference).await?;
        if !media::is_index(&fetched.media_type) {
            return Ok((source.with_digest(fetched.digest.clone()), fetched));
        }
        let doc: ManifestDoc =
            serde_json::from_slice(&fetched.bytes).map_err(|e| RegistryError::InvalidManifest {
                reference: reference.to_string(),
                detail: format!("invalid index JSON: {e}"),
            })?;
        let chosen =
            select_platform(&doc.manifests, platform).ok_or_else(|| RegistryError::NotFound {
                what: format!(
                    "a {}/{} image in the index of {reference}",
                    platform.os, platform.architecture
                ),
                registry: source.registry.clone(),
                code: "no matching platform".into(),
            })?;
        let pinned = source.with_digest(chosen.digest.clone());
        let manifest = self.get_manifest_direct(&pinned).await?;
        Ok((pinned, manifest))
    }

    /// Shallow pull: the platform's manifest and config, never the layers.
    pub async fn pull_shallow(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<PulledImage, RegistryError> {
        let (source, manifest) = self.resolve_image(reference, platform).await?;
        if !media::is_image_manifest(&manifest.media_type) {
            return Err(RegistryError::InvalidManifest {
                reference: reference.to_string(),
                detail: format!(
                    "media type {} is not an image manifest",
                    manifest.media_type
                ),
            });
        }
        let (config, layers) = parse_image_manifest(&reference.to_string(), &manifest.bytes)?;
        let config_bytes = self.get_blob_bytes(&source, &config).await?;
        let diff_ids = parse_diff_ids(&reference.to_string(), &config_bytes)?;
        if diff_ids.len() != layers.len() {
            return Err(RegistryError::InvalidManifest {
                reference: reference.to_string(),
                detail: format!(
                    "{} layers but {} diff_ids in the config",
                    layers.len(),
                    diff_ids.len()
                ),
            });
        }
        Ok(PulledImage {
            requested: reference.clone(),
            source,
            manifest,
            config,
            config_bytes,
            layers,
            diff_ids,
        })
    }

    /// The references to try for a read: each mirror, then the source.
    pub fn candidates(&self, reference: &Reference) -> Vec<Reference> {
        let mut list: Vec<Reference> = self
            .settings()
            .mirrors_for(&reference.registry)
            .iter()
            .map(|mirror| reference.on_registry(mirror))
            .collect();
        list.push(reference.clone());
        list
    }
}

/// The manifest for a platform: exact os/architecture match, skipping
/// `unknown` (weight) entries; variant ignored unless both sides set it.
pub fn select_platform<'a>(
    manifests: &'a [Descriptor],
    platform: &Platform,
) -> Option<&'a Descriptor> {
    manifests.iter().find(|d| {
        d.platform.as_ref().is_some_and(|p| {
            p.os == platform.os
                && p.architecture == platform.architecture
                && (platform.variant.is_none()
                    || p.variant.is_none()
                    || p.variant == platform.variant)
        })
    })
}

/// `rootfs.diff_ids` of an image config.
pub fn parse_diff_ids(reference: &str, config: &[u8]) -> Result<Vec<Digest>, RegistryError> {
    #[derive(serde::Deserialize)]
    struct Rootfs {
        #[serde(default)]
        diff_ids: Vec<Digest>,
    }
    #[derive(serde::Deserialize)]
    struct Config {
        rootfs: Rootfs,
    }
    serde_json::from_slice::<Config>(config)
        .map(|c| c.rootfs.diff_ids)
        .map_err(|e| RegistryError::InvalidManifest {
            reference: reference.to_string(),
            detail: format!("config blob has no valid rootfs.diff_ids: {e}"),
        })
}

async fn read_limited(
    host: &str,
    response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, RegistryError> {
    let mut stream = response.bytes_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| network_error(host, &e))?;
        if bytes.len() + chunk.len() > limit {
            return Err(RegistryError::Network {
                registry: host.to_string(),
                detail: format!("document larger than {limit} bytes"),
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn verify_stream(
    host: String,
    inner: impl Stream<Item = reqwest::Result<bytes::Bytes>> + Send + 'static,
    descriptor: Descriptor,
) -> impl Stream<Item = Result<bytes::Bytes, RegistryError>> + Send {
    struct State<S> {
        inner: std::pin::Pin<Box<S>>,
        hasher: Sha256,
        seen: u64,
        done: bool,
    }
    let state = State {
        inner: Box::pin(inner),
        hasher: Sha256::new(),
        seen: 0,
        done: false,
    };
    futures::stream::unfold(state, move |mut state| {
        let host = host.clone();
        let descriptor = descriptor.clone();
        async move {
            if state.done {
                return None;
            }
            match state.inner.next().await {
                Some(Ok(chunk)) => {
                    state.hasher.update(&chunk);
                    state.seen += chunk.len() as u64;
                    if state.seen > descriptor.size {
                        state.done = true;
                        return Some((Err(size_mismatch(&descriptor, state.seen)), state));
                    }
                    Some((Ok(chunk), state))
                }
                Some(Err(e)) => {
                    state.done = true;
                    Some((Err(network_error(&host, &e)), state))
                }
                None => {
                    state.done = true;
                    let actual =
                        Digest::from_sha256(std::mem::take(&mut state.hasher).finalize().into());
                    if state.seen != descriptor.size {
                        return Some((Err(size_mismatch(&descriptor, state.seen)), state));
                    }
                    if actual != descriptor.digest {
                        let err = RegistryError::DigestMismatch {
                            what: format!("blob {}", descriptor.digest),
                            expected: descriptor.digest.clone(),
                            actual,
                        };
                        return Some((Err(err), state));
                    }
                    None
                }
            }
        }
    })
}

fn size_mismatch(descriptor: &Descriptor, seen: u64) -> RegistryError {
    RegistryError::Network {
        registry: String::new(),
        detail: format!(
            "blob {} should be {} bytes but the registry sent {seen} or more",
            descriptor.digest, descriptor.size
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(os: &str, arch: &str, hex_char: char) -> Descriptor {
        let mut d = Descriptor::new(
            media::OCI_MANIFEST,
            1,
            format!("sha256:{}", hex_char.to_string().repeat(64))
                .parse()
                .unwrap(),
        );
        d.platform = Some(Platform {
            architecture: arch.into(),
            os: os.into(),
            variant: None,
        });
        d
    }

    #[test]
    fn picks_linux_amd64_and_skips_unknown() {
        let list = vec![
            entry("unknown", "unknown", 'a'),
            entry("linux", "arm64", 'b'),
            entry("linux", "amd64", 'c'),
        ];
        let chosen = select_platform(&list, &Platform::linux_amd64()).unwrap();
        assert_eq!(chosen.digest.hex(), "c".repeat(64));
        assert!(select_platform(&list[..2], &Platform::linux_amd64()).is_none());
    }

    #[test]
    fn parses_diff_ids_and_rejects_configs_without_rootfs() {
        let d = format!("sha256:{}", "1".repeat(64));
        let config = format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["{d}"]}}}}"#);
        assert_eq!(parse_diff_ids("x", config.as_bytes()).unwrap().len(), 1);
        assert!(
            parse_diff_ids("x", b"{}")
                .unwrap_err()
                .to_string()
                .contains("rootfs")
        );
    }
}
