//! The push pipeline: blobs (bounded concurrency), config, manifest, and
//! for bundles the OCI index (spec §8.19, §9.3).

use super::auth::Scope;
use super::client::{Client, status_error};
use super::progress::{Progress, ProgressEvent};
use super::pull::parse_image_manifest;
use super::upload::UploadOptions;
use super::{Reference, RegistryError};
use crate::oci::{Blob, Descriptor, Digest, Image, Platform, media};
use futures::{StreamExt, TryStreamExt};
use reqwest::header;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

/// An in-memory blob (configs, manifests, small test content).
#[derive(Clone)]
pub struct BytesBlob {
    bytes: bytes::Bytes,
    digest: Digest,
    media_type: String,
}

impl BytesBlob {
    /// Wraps bytes, computing their digest.
    pub fn new(media_type: impl Into<String>, bytes: Vec<u8>) -> Self {
        BytesBlob {
            digest: Digest::of_bytes(&bytes),
            bytes: bytes::Bytes::from(bytes),
            media_type: media_type.into(),
        }
    }
}

impl Blob for BytesBlob {
    fn digest(&self) -> &Digest {
        &self.digest
    }
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn media_type(&self) -> &str {
        &self.media_type
    }
    fn open(&self) -> std::io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(std::io::Cursor::new(self.bytes.clone())))
    }
}

/// A weight artifact referenced from a bundle index (spec §8.19).
#[derive(Debug, Clone)]
pub struct BundleWeight {
    /// Weight name (`run.cog.weight.name`).
    pub name: String,
    /// Digest of the weight manifest, already pushed to the model repository.
    pub manifest_digest: Digest,
    /// Set digest (`run.cog.weight.set-digest`).
    pub set_digest: String,
    /// Uncompressed size; 0 leaves the annotation out.
    pub size_uncompressed: u64,
}

/// What a bundle push produced.
#[derive(Debug, Clone)]
pub struct BundlePushed {
    /// The index under the model tag.
    pub index: Descriptor,
    /// The image under `cog-image.<tag>`.
    pub image: Descriptor,
    /// Weight manifests as found in the registry, in the given order.
    pub weights: Vec<Descriptor>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexDoc<'a> {
    schema_version: u32,
    media_type: &'a str,
    manifests: &'a [Descriptor],
}

impl Client {
    /// Uploads blobs with at most `options.concurrency` at once.
    pub async fn push_blobs(
        &self,
        target: &Reference,
        blobs: Vec<Arc<dyn Blob>>,
        options: &UploadOptions,
        progress: &Arc<dyn Progress>,
    ) -> Result<(), RegistryError> {
        let concurrency = options.concurrency.max(1);
        futures::stream::iter(
            blobs
                .into_iter()
                .map(|blob| self.push_blob(target, blob, options, progress)),
        )
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
        Ok(())
    }

    /// Pushes an image: layers, config, then the manifest under the
    /// reference's tag (or digest). Returns the manifest descriptor.
    pub async fn push_image(
        &self,
        target: &Reference,
        image: &dyn Image,
        options: &UploadOptions,
        progress: &Arc<dyn Progress>,
    ) -> Result<Descriptor, RegistryError> {
        let (config, _) = parse_image_manifest(&target.to_string(), image.manifest_bytes())?;
        let config_blob = BytesBlob::new(config.media_type.clone(), image.config_bytes().to_vec());
        if config_blob.digest() != &config.digest {
            return Err(RegistryError::DigestMismatch {
                what: format!("config of the image for {target}"),
                expected: config.digest,
                actual: config_blob.digest().clone(),
            });
        }
        progress.event(&ProgressEvent::Phase {
            name: format!("pushing layers to {}", target.repository_name()),
        });
        let layers: Vec<Arc<dyn Blob>> = image
            .layers()
            .into_iter()
            .map(|layer| Arc::new(LayerBlob(layer)) as Arc<dyn Blob>)
            .collect();
        self.push_blobs(target, layers, options, progress).await?;
        progress.event(&ProgressEvent::Phase {
            name: "pushing config".into(),
        });
        self.push_blob(target, Arc::new(config_blob), options, progress)
            .await?;
        progress.event(&ProgressEvent::Phase {
            name: "pushing manifest".into(),
        });
        self.push_manifest_if_changed(
            target,
            image.manifest_media_type(),
            image.manifest_bytes(),
            progress,
        )
        .await
    }

    /// Like [`Client::push_manifest`], but only a HEAD when the tag already
    /// points at exactly these bytes (a no-op re-push).
    pub async fn push_manifest_if_changed(
        &self,
        target: &Reference,
        media_type: &str,
        bytes: &[u8],
        progress: &Arc<dyn Progress>,
    ) -> Result<Descriptor, RegistryError> {
        let digest = Digest::of_bytes(bytes);
        if let Some(existing) = self.head_manifest_direct(target).await?
            && existing.digest == digest
        {
            progress.event(&ProgressEvent::ManifestPushed {
                reference: target.to_string(),
                digest,
            });
            return Ok(Descriptor::new(
                media_type,
                bytes.len() as u64,
                existing.digest,
            ));
        }
        self.push_manifest(target, media_type, bytes, progress)
            .await
    }

    /// `PUT` a manifest or index under the reference's tag (or digest).
    pub async fn push_manifest(
        &self,
        target: &Reference,
        media_type: &str,
        bytes: &[u8],
        progress: &Arc<dyn Progress>,
    ) -> Result<Descriptor, RegistryError> {
        let host = &target.registry;
        let url = self.api_url(
            host,
            &format!("{}/manifests/{}", target.repository, target.manifest_key()),
        );
        let scope = Scope::push(&target.repository);
        let body = bytes.to_vec();
        let response = self
            .send_retrying(host, &scope, |http| {
                http.put(&url)
                    .header(header::CONTENT_TYPE, media_type)
                    .body(body.clone())
            })
            .await?;
        if response.status().as_u16() != 201 {
            let what = format!("manifest {target}");
            return Err(status_error(host, &scope, "PUT", &url, &what, response).await);
        }
        let digest = Digest::of_bytes(bytes);
        let returned = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        if let Some(returned) = returned
            && returned != digest
        {
            return Err(RegistryError::DigestMismatch {
                what: format!("manifest {target} as stored by the registry"),
                expected: digest,
                actual: returned,
            });
        }
        progress.event(&ProgressEvent::ManifestPushed {
            reference: target.to_string(),
            digest: digest.clone(),
        });
        Ok(Descriptor::new(media_type, bytes.len() as u64, digest))
    }

    /// Pushes a bundle model (spec §9.3): verify every weight manifest is in
    /// the repository, push the image under `cog-image.<tag>`, then the OCI
    /// index (image + weights) under the model tag.
    pub async fn push_bundle(
        &self,
        target: &Reference,
        image: &dyn Image,
        weights: &[BundleWeight],
        options: &UploadOptions,
        progress: &Arc<dyn Progress>,
    ) -> Result<BundlePushed, RegistryError> {
        let tag = match (&target.tag, &target.digest) {
            (Some(tag), None) => tag.clone(),
            _ => {
                return Err(RegistryError::InvalidReference {
                    reference: target.to_string(),
                    reason: "cannot push to digest-pinned ref; a bundle needs a tag".into(),
                });
            }
        };
        progress.event(&ProgressEvent::Phase {
            name: "verifying weights".into(),
        });
        let weight_descriptors = self
            .verify_weights(target, weights, options.concurrency)
            .await?;
        let image_ref = target.with_tag(&format!("cog-image.{tag}"));
        self.push_image(&image_ref, image, options, progress)
            .await?;
        let image_descriptor = self
            .head_manifest_direct(&image_ref)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                what: format!("manifest {image_ref} right after pushing it"),
                registry: target.registry.clone(),
                code: "MANIFEST_UNKNOWN".into(),
            })?;
        let index = bundle_index(&image_descriptor, weights, &weight_descriptors);
        progress.event(&ProgressEvent::Phase {
            name: "pushing index".into(),
        });
        let index_descriptor = self
            .push_manifest(target, media::OCI_INDEX, &index, progress)
            .await?;
        Ok(BundlePushed {
            index: index_descriptor,
            image: image_descriptor,
            weights: weight_descriptors,
        })
    }

    async fn verify_weights(
        &self,
        target: &Reference,
        weights: &[BundleWeight],
        concurrency: usize,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let checks = weights.iter().map(|weight| async move {
            let pinned = target.with_digest(weight.manifest_digest.clone());
            let missing = || RegistryError::NotFound {
                what: format!(
                    "weight {:?} ({pinned}); run 'cogpack weights import' to push weights first",
                    weight.name
                ),
                registry: target.registry.clone(),
                code: "MANIFEST_UNKNOWN".into(),
            };
            let found = self
                .head_manifest_direct(&pinned)
                .await?
                .ok_or_else(missing)?;
            if found.digest != weight.manifest_digest {
                return Err(RegistryError::DigestMismatch {
                    what: format!("weight {:?} manifest", weight.name),
                    expected: weight.manifest_digest.clone(),
                    actual: found.digest,
                });
            }
            Ok(found)
        });
        futures::stream::iter(checks)
            .buffered(concurrency.max(1))
            .try_collect()
            .await
    }
}

/// The bundle index bytes (spec §8.19): image first with platform
/// linux/amd64, then each weight with artifactType, platform unknown/unknown
/// and its annotations. Compact JSON in Go's field order.
pub fn bundle_index(image: &Descriptor, weights: &[BundleWeight], found: &[Descriptor]) -> Vec<u8> {
    let mut manifests = Vec::with_capacity(weights.len() + 1);
    let mut image_entry =
        Descriptor::new(image.media_type.clone(), image.size, image.digest.clone());
    image_entry.platform = Some(Platform::linux_amd64());
    manifests.push(image_entry);
    for (weight, descriptor) in weights.iter().zip(found) {
        let mut annotations = BTreeMap::new();
        annotations.insert("run.cog.weight.name".to_string(), weight.name.clone());
        annotations.insert(
            "run.cog.weight.set-digest".to_string(),
            weight.set_digest.clone(),
        );
        if weight.size_uncompressed > 0 {
            annotations.insert(
                "run.cog.weight.size.uncompressed".to_string(),
                weight.size_uncompressed.to_string(),
            );
        }
        let mut entry = Descriptor::new(
            descriptor.media_type.clone(),
            descriptor.size,
            descriptor.digest.clone(),
        );
        entry.annotations = Some(annotations);
        entry.platform = Some(Platform {
            architecture: "unknown".into(),
            os: "unknown".into(),
            variant: None,
        });
        entry.artifact_type = Some(media::COG_WEIGHT_ARTIFACT.to_string());
        manifests.push(entry);
    }
    serde_json::to_vec(&IndexDoc {
        schema_version: 2,
        media_type: media::OCI_INDEX,
        manifests: &manifests,
    })
    .unwrap_or_default()
}

/// Adapts a layer to the blob interface the uploader takes.
struct LayerBlob(Arc<dyn crate::oci::Layer>);

impl Blob for LayerBlob {
    fn digest(&self) -> &Digest {
        self.0.digest()
    }
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn media_type(&self) -> &str {
        self.0.media_type()
    }
    fn open(&self) -> std::io::Result<Box<dyn Read + Send>> {
        self.0.open()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_index_has_go_field_order_and_weight_annotations() {
        let d = |c: char| -> Digest {
            format!("sha256:{}", c.to_string().repeat(64))
                .parse()
                .unwrap()
        };
        let image = Descriptor::new(media::OCI_MANIFEST, 100, d('a'));
        let weight = BundleWeight {
            name: "w".into(),
            manifest_digest: d('b'),
            set_digest: format!("sha256:{}", "c".repeat(64)),
            size_uncompressed: 0,
        };
        let found = vec![Descriptor::new(media::OCI_MANIFEST, 50, d('b'))];
        let text = String::from_utf8(bundle_index(&image, &[weight], &found)).unwrap();
        let expected = format!(
            concat!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":["#,
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":100,"digest":"sha256:{a}","platform":{{"architecture":"amd64","os":"linux"}}}},"#,
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":50,"digest":"sha256:{b}","annotations":{{"run.cog.weight.name":"w","run.cog.weight.set-digest":"sha256:{c}"}},"platform":{{"architecture":"unknown","os":"unknown"}},"artifactType":"application/vnd.cog.weight.v1"}}]}}"#
            ),
            a = "a".repeat(64),
            b = "b".repeat(64),
            c = "c".repeat(64)
        );
        assert_eq!(text, expected);
    }
}
