//! Streaming layer bytes: tar (+ gzip) from store files into a hasher or an
//! upload, never through a temporary tar.

use super::error::{Result, WeightsError};
use super::pack::Compression;
use super::store::{HashingWriter, WeightStore};
use super::tar::LayerTarReader;
use crate::oci::Digest;
use sha2::{Digest as _, Sha256};
use std::io::{self, Read};

/// One file of a layer: path, size, content digest.
pub type LayerFile = (String, u64, Digest);

/// A reader over a layer's stored bytes, built from files in the store.
pub fn layer_reader<'a>(
    files: &'a [LayerFile],
    store: &'a WeightStore,
    compression: Compression,
) -> Box<dyn Read + Send + 'a> {
    let listing = files.iter().map(|(p, s, _)| (p.clone(), *s)).collect();
    let tar = LayerTarReader::new(
        listing,
        Box::new(move |i| {
            let file = store
                .open(&files[i].2)
                .map_err(|e| io::Error::new(io::ErrorKind::NotFound, e.to_string()))?;
            Ok(Box::new(io::BufReader::with_capacity(1 << 20, file)) as Box<dyn Read + Send>)
        }),
    );
    let tar = io::BufReader::with_capacity(1 << 20, tar);
    match compression {
        Compression::None => Box::new(tar),
        Compression::Gzip(level) => Box::new(flate2::read::GzEncoder::new(
            tar,
            flate2::Compression::new(level),
        )),
    }
}

/// Streams a layer from the store and returns its digest and size.
pub fn compute_layer(
    files: &[LayerFile],
    store: &WeightStore,
    compression: Compression,
) -> Result<(Digest, u64)> {
    let mut reader = layer_reader(files, store, compression);
    let mut hasher = HashingWriter::new(io::sink());
    io::copy(&mut reader, &mut hasher).map_err(|e| {
        WeightsError::Integrity(format!(
            "building a weight layer from the store at {}: {e}; hint: run 'cogpack weights import' again",
            store.root().display()
        ))
    })?;
    let (digest, size, _) = hasher.finish();
    Ok((digest, size))
}

/// A reader that checks its content against a digest and size: the read that
/// would complete the content fails instead when the hash does not match.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    expected: Digest,
    size: u64,
    seen: u64,
}

impl<R: Read> VerifyingReader<R> {
    /// Wraps `inner`, expecting `size` bytes hashing to `expected`.
    pub fn new(inner: R, expected: Digest, size: u64) -> Self {
        VerifyingReader {
            inner,
            hasher: Sha256::new(),
            expected,
            size,
            seen: 0,
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.seen += n as u64;
        if self.seen > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is longer than its recorded {} bytes",
                    self.expected, self.size
                ),
            ));
        }
        if n == 0 && self.seen < self.size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} is shorter than its recorded {} bytes",
                    self.expected, self.size
                ),
            ));
        }
        if n > 0 && self.seen == self.size {
            let actual = Digest::from_sha256(self.hasher.clone().finalize().into());
            if actual != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "content hashes to {actual}, not the recorded {}; the local weights store is corrupt",
                        self.expected
                    ),
                ));
            }
        }
        Ok(n)
    }
}
