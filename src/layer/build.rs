//! One streaming pass from entries to a stored layer blob:
//! tar → diff_id SHA-256 → compressor → digest SHA-256 + size → temp file in
//! the store → rename after the digest is known. Uncompressed layers of files
//! that outlive the build are only hashed and kept as recipes when the store
//! can regenerate them (see [`super::lazy`]).

use super::compress::Compression;
use super::tar::{TarOptions, normalize_entries, write_tar};
use super::{Entry, LayerError};
use crate::oci::Digest;
use crate::oci::store::{LayerRecord, Store};
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};
use std::io::{self, BufWriter, Write};

/// How a layer is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LayerOptions {
    /// Compression of the stored blob.
    pub compression: Compression,
    /// mtime of every entry: `SOURCE_DATE_EPOCH` if set, else 0. The caller
    /// passes the value; the library never reads the environment.
    pub mtime: u64,
}

impl LayerOptions {
    /// Text that changes whenever these options change the layer bytes, to
    /// be folded into cache keys.
    pub fn cache_tag(&self) -> String {
        format!(
            "tar-v1;{};mtime={}",
            self.compression.cache_tag(),
            self.mtime
        )
    }
}

/// One layer to build: its entries and an optional cache key.
#[derive(Clone, Debug)]
pub struct LayerJob {
    /// The filesystem objects of the layer (any order).
    pub entries: Vec<Entry>,
    /// Caller-supplied key naming every input of this layer (content
    /// fingerprints, paths, options); `None` disables caching. The layer
    /// options are added to the key automatically.
    pub cache_key: Option<String>,
}

/// A built (or cached) layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltLayer {
    /// The stored result.
    pub record: LayerRecord,
    /// True if it came from the cache without rebuilding.
    pub cached: bool,
}

/// Writes `entries` as one layer into `store` and returns its record.
pub fn build_layer(
    entries: Vec<Entry>,
    opts: LayerOptions,
    store: &Store,
) -> Result<LayerRecord, LayerError> {
    let entries = normalize_entries(entries)?;
    if opts.compression == Compression::None
        && store.can_regenerate()
        && let Some(recipe) = super::lazy::recipe_for(&entries, opts.mtime, store.root())
    {
        let (digest, size) = super::lazy::hash_tar(&entries, TarOptions { mtime: opts.mtime })?;
        store.put_recipe(&digest, size, recipe)?;
        return Ok(LayerRecord {
            diff_id: digest.clone(),
            digest,
            size,
            media_type: opts.compression.media_type().to_string(),
        });
    }
    let temp = store.temp_file()?;
    let temp_path = temp.path().to_path_buf();
    let write_err = |source: io::Error| LayerError::Write {
        path: temp_path.clone(),
        source,
    };
    // Uncompressed blobs are the tar itself: hash once, count only here.
    let uncompressed = opts.compression == Compression::None;
    let blob_sink = HashingWriter::new(BufWriter::with_capacity(1 << 20, temp)).hash(!uncompressed);
    let compressor = opts.compression.writer(blob_sink).map_err(write_err)?;
    let mut tar_sink = BufWriter::with_capacity(256 << 10, HashingWriter::new(compressor));
    write_tar(&entries, TarOptions { mtime: opts.mtime }, &mut tar_sink).map_err(|e| match e {
        LayerError::Write { source, .. } => write_err(source),
        other => other,
    })?;
    let tar_hasher = tar_sink
        .into_inner()
        .map_err(|e| write_err(e.into_error()))?;
    let (diff_id, _, compressor) = tar_hasher.finish();
    let blob_sink = compressor.finish().map_err(write_err)?;
    let (blob_digest, size, file_writer) = blob_sink.finish();
    let digest = if uncompressed {
        diff_id.clone()
    } else {
        blob_digest
    };
    let temp = file_writer
        .into_inner()
        .map_err(|e| write_err(e.into_error()))?;
    store.commit_temp(temp, &digest)?;
    Ok(LayerRecord {
        digest,
        diff_id,
        size,
        media_type: opts.compression.media_type().to_string(),
    })
}

/// Builds a layer unless the cache has a result for its key.
pub fn build_cached(
    job: LayerJob,
    opts: LayerOptions,
    store: &Store,
) -> Result<BuiltLayer, LayerError> {
    let key = job.cache_key.map(|k| format!("{k}\n{}", opts.cache_tag()));
    if let Some(k) = &key
        && let Some(record) = store.cached_layer(k)?
    {
        return Ok(BuiltLayer {
            record,
            cached: true,
        });
    }
    let record = build_layer(job.entries, opts, store)?;
    if let Some(k) = &key {
        store.record_layer(k, &record)?;
    }
    Ok(BuiltLayer {
        record,
        cached: false,
    })
}

/// Builds several layers in parallel; results are in input order.
pub fn build_layers(
    jobs: Vec<LayerJob>,
    opts: LayerOptions,
    store: &Store,
) -> Result<Vec<BuiltLayer>, LayerError> {
    jobs.into_par_iter()
        .map(|job| build_cached(job, opts, store))
        .collect()
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
    hashing: bool,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
            hashing: true,
        }
    }

    /// With `false`, only counts bytes (the digest returned by
    /// [`HashingWriter::finish`] is then that of nothing and must be ignored).
    pub fn hash(mut self, enabled: bool) -> Self {
        self.hashing = enabled;
        self
    }

    /// The digest and byte count of everything written, and the inner writer.
    pub fn finish(self) -> (Digest, u64, W) {
        (
            Digest::from_sha256(self.hasher.finalize().into()),
            self.count,
            self.inner,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if self.hashing {
            self.hasher.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
