//! Layers that live in another registry, streamed source → target at push
//! time without touching the disk.

use super::{Client, Reference, RegistryError};
use crate::oci::{Blob, Descriptor, Digest, Layer};
use futures::StreamExt;
use std::io::{self, Read};
use std::pin::Pin;

type ByteStream = Pin<Box<dyn futures::Stream<Item = Result<bytes::Bytes, RegistryError>> + Send>>;

/// A layer of a remote image, e.g. a base-image layer on Docker Hub that must
/// be copied into the target registry.
///
/// [`Blob::open`] must be called outside async code (the uploader reads
/// blobs on blocking threads); it drives the download on the runtime the
/// layer was created in. The bytes are digest-verified as they stream.
pub struct RemoteLayer {
    client: Client,
    source: Reference,
    descriptor: Descriptor,
    diff_id: Digest,
    runtime: tokio::runtime::Handle,
}

impl RemoteLayer {
    /// A layer of `source` (the repository holding it) with its diff_id.
    /// Must be called inside a tokio runtime.
    pub fn new(client: Client, source: Reference, descriptor: Descriptor, diff_id: Digest) -> Self {
        RemoteLayer {
            client,
            source,
            descriptor,
            diff_id,
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

impl Blob for RemoteLayer {
    fn digest(&self) -> &Digest {
        &self.descriptor.digest
    }
    fn size(&self) -> u64 {
        self.descriptor.size
    }
    fn media_type(&self) -> &str {
        &self.descriptor.media_type
    }
    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        let stream = self
            .runtime
            .block_on(self.client.get_blob_stream(&self.source, &self.descriptor))
            .map_err(io::Error::other)?;
        Ok(Box::new(StreamReader {
            stream: Box::pin(stream),
            current: bytes::Bytes::new(),
            runtime: self.runtime.clone(),
        }))
    }
}

impl Layer for RemoteLayer {
    fn diff_id(&self) -> &Digest {
        &self.diff_id
    }
}

struct StreamReader {
    stream: ByteStream,
    current: bytes::Bytes,
    runtime: tokio::runtime::Handle,
}

impl Read for StreamReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.runtime.block_on(self.stream.next()) {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buffer.len().min(self.current.len());
        buffer[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// An image in a registry: manifest and config held in memory (as pulled,
/// digest-verified), layers streamed on demand through [`RemoteLayer`].
/// Writing it to an OCI layout or archive is a pull.
pub struct RemoteImage {
    manifest: Vec<u8>,
    media_type: String,
    config: Vec<u8>,
    layers: Vec<std::sync::Arc<dyn Layer>>,
}

impl RemoteImage {
    /// The image `pulled` describes, its layers read from `pulled.source`.
    /// Must be called inside a tokio runtime (see [`RemoteLayer::new`]).
    pub fn new(client: &Client, pulled: &super::PulledImage) -> Self {
        let layers = pulled
            .layers
            .iter()
            .zip(&pulled.diff_ids)
            .map(|(descriptor, diff_id)| {
                std::sync::Arc::new(RemoteLayer::new(
                    client.clone(),
                    pulled.source.clone(),
                    descriptor.clone(),
                    diff_id.clone(),
                )) as std::sync::Arc<dyn Layer>
            })
            .collect();
        RemoteImage {
            manifest: pulled.manifest.bytes.clone(),
            media_type: pulled.manifest.media_type.clone(),
            config: pulled.config_bytes.clone(),
            layers,
        }
    }
}

impl crate::oci::Image for RemoteImage {
    fn manifest_bytes(&self) -> &[u8] {
        &self.manifest
    }
    fn manifest_media_type(&self) -> &str {
        &self.media_type
    }
    fn config_bytes(&self) -> &[u8] {
        &self.config
    }
    fn layers(&self) -> Vec<std::sync::Arc<dyn Layer>> {
        self.layers.clone()
    }
}
