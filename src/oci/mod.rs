//! OCI vocabulary shared by every place an image can live: the local store,
//! OCI layouts and archives, and remote registries.
//!
//! Modelled on go-containerregistry: a [`Blob`] is addressed content with a
//! media type and bytes on demand; a [`Layer`] is a blob that also knows the
//! digest of its uncompressed tar (the diff_id); an [`Image`] is a manifest, a
//! config and its layers. Nothing above this module cares where bytes live.

pub mod archive;
pub mod digest;
pub mod image;
pub mod labels;
pub mod layout;
pub mod media;
pub mod output;
pub mod store;

pub use digest::{Digest, DigestError};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, Read};

/// A content descriptor as defined by the OCI image spec.
///
/// Field order is the order Go's go-containerregistry serialises
/// (`mediaType, size, digest, annotations, platform, artifactType`), so JSON
/// written from this type matches cog's index bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Size in bytes of the referenced content.
    pub size: u64,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Optional annotations (sorted by key, like Go maps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Optional platform, for entries of an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Optional artifact type, for artifact manifests referenced from an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A descriptor with only media type, size and digest set.
    pub fn new(media_type: impl Into<String>, size: u64, digest: Digest) -> Self {
        Descriptor {
            media_type: media_type.into(),
            size,
            digest,
            annotations: None,
            platform: None,
            artifact_type: None,
        }
    }
}

/// The platform an image manifest in an index is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture, e.g. `amd64`.
    pub architecture: String,
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// Optional CPU variant, e.g. `v8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// `linux/amd64`, the only platform cog builds for.
    pub fn linux_amd64() -> Self {
        Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
        }
    }
}

/// Addressed content with its bytes available on demand.
pub trait Blob: Send + Sync {
    /// Digest of the bytes as stored (compressed for layers).
    fn digest(&self) -> &Digest;
    /// Size of the bytes as stored.
    fn size(&self) -> u64;
    /// Media type of the bytes as stored.
    fn media_type(&self) -> &str;
    /// Opens a reader over the stored bytes.
    fn open(&self) -> io::Result<Box<dyn Read + Send>>;
    /// The descriptor of this blob.
    fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type(), self.size(), self.digest().clone())
    }
}

/// A filesystem layer: a blob plus the digest of its uncompressed tar.
pub trait Layer: Blob {
    /// Digest of the uncompressed tar stream (the config's rootfs diff_id).
    fn diff_id(&self) -> &Digest;
}

/// An image: manifest bytes, config bytes and the layers they name.
pub trait Image: Send + Sync {
    /// The raw manifest bytes exactly as stored or to be pushed.
    fn manifest_bytes(&self) -> &[u8];
    /// Media type of the manifest.
    fn manifest_media_type(&self) -> &str;
    /// The raw config bytes.
    fn config_bytes(&self) -> &[u8];
    /// The layers, bottom first.
    fn layers(&self) -> Vec<std::sync::Arc<dyn Layer>>;
    /// Digest of the manifest bytes.
    fn digest(&self) -> Digest {
        Digest::of_bytes(self.manifest_bytes())
    }
}
