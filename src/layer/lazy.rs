//! Uncompressed layers kept as recipes ("bytes on demand", as ko and
//! nix2container do): an uncompressed layer's digest is the tar's SHA-256,
//! so a build only has to hash the tar stream, never write it. The store
//! keeps the normalized entry list; the bytes are produced again, and
//! checked against the digest, the first time something reads the blob
//! (push, `--output`, the sandbox).
//!
//! Hashing runs on two threads: one produces the tar stream (reading files,
//! headers, padding) into 1 MiB buffers, the other hashes them, so the build
//! runs at the speed of one core's SHA-256.
//!
//! Only layers whose files outlive the build qualify: files on disk outside
//! the store (the project tree), blobs of the store, and in-memory bytes.
//! Streams (wheel members) and scratch files of the store (sandbox upper
//! directories) are written as blobs as before.

use super::tar::{TarOptions, write_tar};
use super::{Entry, EntryKind, FileSource, LayerError};
use crate::oci::Digest;
use crate::oci::store::Regenerator;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Size of the buffers passed from the tar producer to the hasher.
const CHUNK: usize = 1 << 20;
/// Buffers in flight between the two threads (memory: `QUEUE + 2` MiB).
const QUEUE: usize = 4;

/// Everything needed to write a layer's tar again.
#[derive(Serialize, Deserialize)]
struct Recipe {
    version: u32,
    mtime: u64,
    entries: Vec<RecipeEntry>,
}

#[derive(Serialize, Deserialize)]
struct RecipeEntry {
    path: String,
    mode: u32,
    uid: u32,
    gid: u32,
    kind: RecipeKind,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RecipeKind {
    Dir,
    File { from: PathBuf, size: u64 },
    Bytes { base64: String },
    Symlink { target: String },
    Hardlink { target: String },
    Whiteout,
}

const RECIPE_VERSION: u32 = 1;

/// The recipe of normalized `entries`, or `None` when a file's bytes may
/// not be there later: a stream, or a file inside `store_root` other than
/// its blobs (scratch space).
pub fn recipe_for(entries: &[Entry], mtime: u64, store_root: &Path) -> Option<serde_json::Value> {
    let blobs = store_root.join("blobs");
    let entries = entries
        .iter()
        .map(|entry| {
            let kind = match &entry.kind {
                EntryKind::Dir => RecipeKind::Dir,
                EntryKind::Symlink { target } => RecipeKind::Symlink {
                    target: target.clone(),
                },
                EntryKind::Hardlink { target } => RecipeKind::Hardlink {
                    target: target.clone(),
                },
                EntryKind::Whiteout => RecipeKind::Whiteout,
                EntryKind::File { source, size } => match source {
                    FileSource::Open(_) => return None,
                    FileSource::Bytes(bytes) => RecipeKind::Bytes {
                        base64: base64::engine::general_purpose::STANDARD.encode(bytes),
                    },
                    FileSource::Path(path) => {
                        if !path.is_absolute()
                            || (path.starts_with(store_root) && !path.starts_with(&blobs))
                        {
                            return None;
                        }
                        RecipeKind::File {
                            from: path.clone(),
                            size: *size,
                        }
                    }
                },
            };
            Some(RecipeEntry {
                path: entry.path.clone(),
                mode: entry.mode,
                uid: entry.uid,
                gid: entry.gid,
                kind,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    serde_json::to_value(Recipe {
        version: RECIPE_VERSION,
        mtime,
        entries,
    })
    .ok()
}

/// The regenerator a store needs to read blobs kept by [`recipe_for`].
pub fn regenerator() -> Regenerator {
    Arc::new(|recipe: &[u8], out: &mut dyn Write| {
        let recipe: Recipe = serde_json::from_slice(recipe)
            .map_err(|e| io::Error::other(format!("unreadable layer recipe: {e}")))?;
        if recipe.version != RECIPE_VERSION {
            return Err(io::Error::other(format!(
                "layer recipe version {} (this cogpack writes {RECIPE_VERSION})",
                recipe.version
            )));
        }
        let entries = recipe
            .entries
            .into_iter()
            .map(entry_of)
            .collect::<io::Result<Vec<_>>>()?;
        let mut out = out;
        write_tar(
            &entries,
            TarOptions {
                mtime: recipe.mtime,
            },
            &mut out,
        )
        .map_err(io::Error::other)
    })
}

fn entry_of(recipe: RecipeEntry) -> io::Result<Entry> {
    let kind = match recipe.kind {
        RecipeKind::Dir => EntryKind::Dir,
        RecipeKind::Symlink { target } => EntryKind::Symlink { target },
        RecipeKind::Hardlink { target } => EntryKind::Hardlink { target },
        RecipeKind::Whiteout => EntryKind::Whiteout,
        RecipeKind::File { from, size } => EntryKind::File {
            source: FileSource::Path(from),
            size,
        },
        RecipeKind::Bytes { base64 } => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(base64)
                .map_err(|e| io::Error::other(format!("layer recipe of {}: {e}", recipe.path)))?;
            EntryKind::File {
                size: bytes.len() as u64,
                source: FileSource::Bytes(bytes.into()),
            }
        }
    };
    Ok(Entry {
        path: recipe.path,
        kind,
        mode: recipe.mode,
        uid: recipe.uid,
        gid: recipe.gid,
    })
}

/// SHA-256 and size of the tar of normalized `entries`, without writing it:
/// a producer thread writes the stream into buffers, this thread hashes.
pub fn hash_tar(entries: &[Entry], opts: TarOptions) -> Result<(Digest, u64), LayerError> {
    let (full_tx, full_rx) = sync_channel::<Vec<u8>>(QUEUE);
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(QUEUE + 2);
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let mut sink = ChunkSink {
                current: Vec::with_capacity(CHUNK),
                full: full_tx,
                empty: empty_rx,
            };
            write_tar(entries, opts, &mut sink)?;
            sink.send_current().map_err(stream_err)
        });
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        for chunk in full_rx {
            hasher.update(&chunk);
            size += chunk.len() as u64;
            // The producer may be gone (error); a lost buffer is fine then.
            let _ = empty_tx.try_send(chunk);
        }
        match producer.join() {
            Ok(result) => result?,
            Err(_) => {
                return Err(stream_err(io::Error::other("the tar producer panicked")));
            }
        }
        Ok((Digest::from_sha256(hasher.finalize().into()), size))
    })
}

fn stream_err(source: io::Error) -> LayerError {
    LayerError::Write {
        path: "<layer stream>".into(),
        source,
    }
}

/// Collects writes into [`CHUNK`]-sized buffers and hands full ones over.
struct ChunkSink {
    current: Vec<u8>,
    full: SyncSender<Vec<u8>>,
    empty: Receiver<Vec<u8>>,
}

impl ChunkSink {
    fn send_current(&mut self) -> io::Result<()> {
        if self.current.is_empty() {
            return Ok(());
        }
        let next = match self.empty.try_recv() {
            Ok(mut buffer) => {
                buffer.clear();
                buffer
            }
            Err(_) => Vec::with_capacity(CHUNK),
        };
        let full = std::mem::replace(&mut self.current, next);
        self.full
            .send(full)
            .map_err(|_| io::Error::other("the layer hasher stopped"))
    }
}

impl Write for ChunkSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.current.len();
        let n = room.min(buf.len());
        self.current.extend_from_slice(&buf[..n]);
        if self.current.len() == CHUNK {
            self.send_current()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::tar::normalize_entries;

    fn tar_bytes(entries: &[Entry], mtime: u64) -> Vec<u8> {
        let mut out = Vec::new();
        write_tar(entries, TarOptions { mtime }, &mut out).unwrap();
        out
    }

    #[test]
    fn hashing_in_two_threads_matches_the_written_tar() {
        let dir = tempfile::tempdir().unwrap();
        let mut entries = vec![Entry::file_bytes("a/small", 0o644, b"hi".to_vec())];
        // Sizes around the chunk boundary and the tar block size.
        for (i, size) in [
            0usize,
            511,
            512,
            CHUNK - 512,
            CHUNK,
            CHUNK + 1,
            3 * CHUNK + 7,
        ]
        .into_iter()
        .enumerate()
        {
            let path = dir.path().join(format!("f{i}"));
            let bytes: Vec<u8> = (0..size).map(|j| (j * 7 + i) as u8).collect();
            std::fs::write(&path, &bytes).unwrap();
            entries.push(Entry {
                path: format!("data/f{i}"),
                kind: EntryKind::File {
                    source: FileSource::Path(path),
                    size: size as u64,
                },
                mode: 0o600,
                uid: 0,
                gid: 0,
            });
        }
        let entries = normalize_entries(entries).unwrap();
        let expected = tar_bytes(&entries, 7);
        let (digest, size) = hash_tar(&entries, TarOptions { mtime: 7 }).unwrap();
        assert_eq!(size, expected.len() as u64);
        assert_eq!(digest, Digest::of_bytes(&expected));
    }

    #[test]
    fn a_recipe_writes_the_same_tar_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("weights.bin");
        std::fs::write(&file, vec![9u8; 4000]).unwrap();
        let entries = normalize_entries(vec![
            Entry::file_bytes("src/predict.py", 0o644, b"print(1)\n".to_vec()),
            Entry::symlink("src/link", "predict.py"),
            Entry {
                path: "src/weights.bin".into(),
                kind: EntryKind::File {
                    source: FileSource::Path(file),
                    size: 4000,
                },
                mode: 0o644,
                uid: 0,
                gid: 0,
            },
        ])
        .unwrap();
        let store_root = dir.path().join("store");
        let recipe = recipe_for(&entries, 0, &store_root).expect("files outlive the build");
        let mut again = Vec::new();
        regenerator()(&serde_json::to_vec(&recipe).unwrap(), &mut again).unwrap();
        assert_eq!(again, tar_bytes(&entries, 0));
    }

    #[test]
    fn streams_and_store_scratch_files_have_no_recipe() {
        let root = Path::new("/store");
        let stream = Entry {
            path: "a".into(),
            kind: EntryKind::File {
                source: FileSource::Open(Arc::new(|| Ok(Box::new(io::empty()) as _))),
                size: 0,
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        assert!(recipe_for(&[stream], 0, root).is_none());
        let scratch = |path: &str| Entry {
            path: "b".into(),
            kind: EntryKind::File {
                source: FileSource::Path(path.into()),
                size: 0,
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        assert!(recipe_for(&[scratch("/store/sandbox/upper/b")], 0, root).is_none());
        assert!(recipe_for(&[scratch("/store/blobs/sha256/00")], 0, root).is_some());
    }
}
