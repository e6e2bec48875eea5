//! What the weights pipeline needs from a registry, for one repository.
//! The registry client implements this trait; every method is blocking and
//! may be called from several threads at once.

use crate::oci::{Descriptor, Digest};
use std::io::Read;

/// A registry failure, already phrased for the user (no credentials).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct RegistryError(pub String);

/// Opens a fresh reader over a blob's bytes; called once per upload attempt.
pub type BlobOpener<'a> = dyn Fn() -> std::io::Result<Box<dyn Read + Send + 'a>> + Sync + 'a;

/// Registry operations on the model repository.
pub trait WeightRegistry: Sync {
    /// `HEAD /v2/<repo>/blobs/<digest>`: the size if present, `None` if absent.
    fn head_blob(&self, digest: &Digest) -> Result<Option<u64>, RegistryError>;

    /// Uploads a blob (size, digest and media type in `desc`) unless present.
    /// The reader fails instead of delivering its last bytes when the content
    /// does not hash to `desc.digest`, so a corrupt blob is never committed.
    fn push_blob(&self, desc: &Descriptor, open: &BlobOpener<'_>) -> Result<(), RegistryError>;

    /// `PUT /v2/<repo>/manifests/<reference>` with this media type; returns
    /// the digest the registry reports (or of the bytes).
    fn put_manifest(
        &self,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError>;

    /// `HEAD /v2/<repo>/manifests/<reference>`: its descriptor, `None` if absent.
    fn head_manifest(&self, reference: &str) -> Result<Option<Descriptor>, RegistryError>;

    /// `GET /v2/<repo>/manifests/<reference>`: bytes and media type.
    fn get_manifest(&self, reference: &str) -> Result<(Vec<u8>, String), RegistryError>;

    /// `GET /v2/<repo>/blobs/<digest>` as a stream.
    fn get_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, RegistryError>;
}
