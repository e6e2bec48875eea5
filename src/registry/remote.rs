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
