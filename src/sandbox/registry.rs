//! Base layer blobs streamed from a registry into the unpacker (digest
//! verified by the client while streaming; memory stays at one chunk).

use super::SandboxError;
use super::rootfs::BlobSource;
use crate::oci::Descriptor;
use crate::registry::{Client, Reference, RegistryError};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::io::{self, Read};
use std::pin::Pin;

/// Fetches blobs from one repository of a registry (a mirror or the source).
pub struct RegistryBlobs {
    client: Client,
    reference: Reference,
    runtime: tokio::runtime::Handle,
}

impl RegistryBlobs {
    /// Blobs of `reference`'s repository, fetched on `runtime`. Reads must
    /// happen outside the runtime's worker threads.
    pub fn new(client: Client, reference: Reference, runtime: tokio::runtime::Handle) -> Self {
        RegistryBlobs {
            client,
            reference,
            runtime,
        }
    }
}

type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, RegistryError>> + Send>>;

/// A blocking reader over a verified blob stream.
struct StreamReader {
    stream: BlobStream,
    runtime: tokio::runtime::Handle,
    chunk: Bytes,
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.runtime.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => return Err(io::Error::other(e.to_string())),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

impl BlobSource for RegistryBlobs {
    fn open(&self, descriptor: &Descriptor) -> Result<Box<dyn Read + Send>, SandboxError> {
        let stream = self
            .runtime
            .block_on(self.client.get_blob_stream(&self.reference, descriptor))
            .map_err(|e| SandboxError::Fetch {
                digest: descriptor.digest.to_string(),
                detail: e.to_string(),
            })?;
        Ok(Box::new(StreamReader {
            stream: Box::pin(stream),
            runtime: self.runtime.clone(),
            chunk: Bytes::new(),
        }))
    }
}
