//! Layer compression: none, gzip (block-parallel, thread-count independent)
//! and zstd.
//!
//! Gzip output is one gzip member whose deflate stream is cut into fixed
//! 1 MiB input blocks. Each block is deflated on its own (no shared
//! dictionary) and ends on a sync-flush boundary, the last one with the final
//! block bit; the blocks are concatenated and the member ends with the CRC-32
//! and length of the whole input. Since every block depends only on its own
//! bytes, the output is the same whatever the number of threads.

use crate::oci::media;
use flate2::{Compress, Compression as Level, FlushCompress, Status};
use rayon::prelude::*;
use std::io::{self, Write};

/// Size of the independently deflated input blocks.
pub const GZIP_BLOCK: usize = 1 << 20;
/// Default gzip level (`gzip -6`).
pub const DEFAULT_GZIP_LEVEL: u32 = 6;
/// Default zstd level (`zstd -3`).
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// How layer bytes are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Plain tar.
    None,
    /// Gzip at `level` (0–9).
    Gzip {
        /// Compression level 0–9.
        level: u32,
    },
    /// Zstandard at `level` (1–19).
    Zstd {
        /// Compression level.
        level: i32,
    },
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Gzip {
            level: DEFAULT_GZIP_LEVEL,
        }
    }
}

impl Compression {
    /// The OCI layer media type for this compression.
    pub fn media_type(&self) -> &'static str {
        match self {
            Compression::None => media::OCI_LAYER_TAR,
            Compression::Gzip { .. } => media::OCI_LAYER_GZIP,
            Compression::Zstd { .. } => media::OCI_LAYER_ZSTD,
        }
    }

    /// A stable text naming the algorithm and level, for cache keys.
    pub fn cache_tag(&self) -> String {
        match self {
            Compression::None => "none".into(),
            Compression::Gzip { level } => format!("gzip-blocks-1m-{level}"),
            Compression::Zstd { level } => format!("zstd-mt-{level}"),
        }
    }

    /// Parses `none`, `gzip`, `zstd` with an optional level (the CLI's
    /// `--compression` and `--compression-level`).
    pub fn parse(name: &str, level: Option<i32>) -> Result<Self, String> {
        match name {
            "none" | "uncompressed" => Ok(Compression::None),
            "gzip" => {
                let level = level.unwrap_or(DEFAULT_GZIP_LEVEL as i32);
                if !(0..=9).contains(&level) {
                    return Err(format!("invalid gzip level {level}: use 0 to 9"));
                }
                Ok(Compression::Gzip {
                    level: level as u32,
                })
            }
            "zstd" => {
                let level = level.unwrap_or(DEFAULT_ZSTD_LEVEL);
                if !(1..=19).contains(&level) {
                    return Err(format!("invalid zstd level {level}: use 1 to 19"));
                }
                Ok(Compression::Zstd { level })
            }
            other => Err(format!(
                "unknown compression {other:?}: use gzip, zstd or none"
            )),
        }
    }

    /// Wraps `out` in a compressing writer; call [`Compressor::finish`] at the end.
    pub fn writer<W: Write + Send>(&self, out: W) -> io::Result<Compressor<W>> {
        Ok(match *self {
            Compression::None => Compressor::None(out),
            Compression::Gzip { level } => Compressor::Gzip(BlockGzipWriter::new(out, level)),
            Compression::Zstd { level } => {
                let mut enc = zstd::stream::Encoder::new(out, level)?;
                // One or more workers: zstd's multi-threaded output does not
                // depend on the worker count (it differs from 0 workers).
                enc.multithread(rayon::current_num_threads().max(1) as u32)?;
                enc.include_checksum(false)?;
                Compressor::Zstd(enc)
            }
        })
    }
}

/// A compressing writer.
pub enum Compressor<W: Write> {
    /// No compression.
    None(W),
    /// Block-parallel gzip.
    Gzip(BlockGzipWriter<W>),
    /// Zstandard.
    Zstd(zstd::stream::Encoder<'static, W>),
}

impl<W: Write + Send> Compressor<W> {
    /// Flushes the trailer and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Compressor::None(w) => Ok(w),
            Compressor::Gzip(g) => g.finish(),
            Compressor::Zstd(z) => z.finish(),
        }
    }
}

impl<W: Write + Send> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::None(w) => w.write(buf),
            Compressor::Gzip(g) => g.write(buf),
            Compressor::Zstd(z) => z.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::None(w) => w.flush(),
            Compressor::Gzip(_) => Ok(()),
            Compressor::Zstd(z) => z.flush(),
        }
    }
}

/// Gzip writer that deflates fixed 1 MiB blocks in parallel.
pub struct BlockGzipWriter<W: Write> {
    out: W,
    level: u32,
    pending: Vec<Vec<u8>>,
    current: Vec<u8>,
    crc: crc32fast::Hasher,
    total: u64,
    header_written: bool,
}

/// Gzip member header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

impl<W: Write + Send> BlockGzipWriter<W> {
    /// A writer compressing at `level` into `out`.
    pub fn new(out: W, level: u32) -> Self {
        BlockGzipWriter {
            out,
            level,
            pending: Vec::new(),
            current: Vec::with_capacity(GZIP_BLOCK),
            crc: crc32fast::Hasher::new(),
            total: 0,
            header_written: false,
        }
    }

    fn batch_len() -> usize {
        rayon::current_num_threads().max(1) * 2
    }

    fn flush_pending(&mut self, last: bool) -> io::Result<()> {
        if !self.header_written {
            self.out.write_all(&GZIP_HEADER)?;
            self.header_written = true;
        }
        let blocks = std::mem::take(&mut self.pending);
        let count = blocks.len();
        let level = self.level;
        let compressed: Vec<io::Result<Vec<u8>>> = blocks
            .par_iter()
            .enumerate()
            .map(|(i, b)| deflate_block(b, level, last && i + 1 == count))
            .collect();
        for c in compressed {
            self.out.write_all(&c?)?;
        }
        Ok(())
    }

    /// Writes the remaining blocks and the gzip trailer; returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        let current = std::mem::take(&mut self.current);
        self.pending.push(current);
        self.flush_pending(true)?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.write_all(&(self.total as u32).to_le_bytes())?;
        Ok(self.out)
    }
}

impl<W: Write + Send> Write for BlockGzipWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = GZIP_BLOCK - self.current.len();
        let n = room.min(buf.len());
        self.current.extend_from_slice(&buf[..n]);
        self.crc.update(&buf[..n]);
        self.total += n as u64;
        if self.current.len() == GZIP_BLOCK {
            let full = std::mem::replace(&mut self.current, Vec::with_capacity(GZIP_BLOCK));
            self.pending.push(full);
            if self.pending.len() >= Self::batch_len() {
                self.flush_pending(false)?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Raw deflate of one block, ending with a sync flush (or the final block).
fn deflate_block(input: &[u8], level: u32, last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Level::new(level), false);
    let mut out = Vec::with_capacity(input.len() / 2 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        let consumed = c.total_in() as usize;
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        let status = c
            .compress_vec(&input[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let done_input = c.total_in() as usize == input.len();
        let has_room = out.capacity() > out.len();
        match status {
            Status::StreamEnd => return Ok(out),
            Status::Ok | Status::BufError if !last && done_input && has_room => return Ok(out),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gzip_with_threads(data: &[u8], threads: usize) -> Vec<u8> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut w = Compression::default().writer(Vec::new()).unwrap();
            for chunk in data.chunks(100_000) {
                w.write_all(chunk).unwrap();
            }
            w.finish().unwrap()
        })
    }

    #[test]
    fn gzip_bytes_do_not_depend_on_thread_count_and_round_trip() {
        let data: Vec<u8> = (0..(3 * GZIP_BLOCK + 12345))
            .map(|i| (i % 251) as u8 ^ (i / 7000) as u8)
            .collect();
        let one = gzip_with_threads(&data, 1);
        let four = gzip_with_threads(&data, 4);
        assert_eq!(one, four);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&one[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn empty_gzip_is_valid() {
        let out = gzip_with_threads(b"", 2);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }
}
