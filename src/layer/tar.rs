//! Deterministic tar writer.
//!
//! Every header field is written explicitly: ustar headers, PAX extended
//! headers only where a value does not fit (long paths or link targets, sizes
//! of 8 GiB and more, large ids or times), one fixed mtime, empty
//! uname/gname, no atime/ctime. Entries are sorted component-wise with
//! parents first; missing parent directories are added as `0755` root-owned
//! directories. The same entries give the same bytes on any machine.

use super::{Entry, EntryKind, FileSource, LayerError};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};

const BLOCK: usize = 512;
/// Files at least this large are read through mmap.
const MMAP_THRESHOLD: u64 = 1 << 20;
const USTAR_MAX_NUMERIC_7: u64 = 0o7777777;
const USTAR_MAX_NUMERIC_11: u64 = 0o77777777777;

/// Prefix of OCI whiteout file names.
pub const WHITEOUT_PREFIX: &str = ".wh.";

/// Validates entry paths, adds missing parent directories and sorts entries
/// component-wise (a directory is directly followed by its contents).
pub fn normalize_entries(entries: Vec<Entry>) -> Result<Vec<Entry>, LayerError> {
    let mut by_path: BTreeMap<String, Entry> = BTreeMap::new();
    for entry in entries {
        let path = tar_path_of(&entry)?;
        if by_path.contains_key(&path) {
            return Err(LayerError::DuplicatePath { path });
        }
        by_path.insert(path, entry);
    }
    let mut missing = Vec::new();
    for path in by_path.keys() {
        let mut parent = path.as_str();
        while let Some((p, _)) = parent.rsplit_once('/') {
            match by_path.get(p) {
                Some(e) if !matches!(e.kind, EntryKind::Dir) => {
                    return Err(LayerError::ParentNotDir {
                        parent: p.to_string(),
                        child: path.clone(),
                    });
                }
                Some(_) => break,
                None => missing.push(p.to_string()),
            }
            parent = p;
        }
    }
    for dir in missing {
        by_path
            .entry(dir.clone())
            .or_insert_with(|| Entry::dir(dir, 0o755));
    }
    let mut out: Vec<(String, Entry)> = by_path.into_iter().collect();
    out.sort_by(|a, b| compare_components(&a.0, &b.0));
    Ok(out
        .into_iter()
        .map(|(path, mut e)| {
            e.path = path;
            if matches!(e.kind, EntryKind::Whiteout) {
                e.mode = 0o644;
            }
            e
        })
        .collect())
}

/// Orders paths by their `/`-separated components, so `a/b` sorts before
/// `a-b` and every directory comes right before its contents.
pub fn compare_components(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// The path an entry has inside the tar: validated, and for whiteouts the
/// `.wh.`-prefixed name of the deleted path (unless it already is one).
fn tar_path_of(entry: &Entry) -> Result<String, LayerError> {
    validate_path(&entry.path)?;
    if !matches!(entry.kind, EntryKind::Whiteout) {
        return Ok(entry.path.clone());
    }
    let (dir, name) = match entry.path.rsplit_once('/') {
        Some((d, n)) => (Some(d), n),
        None => (None, entry.path.as_str()),
    };
    let name = if name.starts_with(WHITEOUT_PREFIX) {
        name.to_string()
    } else {
        format!("{WHITEOUT_PREFIX}{name}")
    };
    Ok(match dir {
        Some(d) => format!("{d}/{name}"),
        None => name,
    })
}

fn validate_path(path: &str) -> Result<(), LayerError> {
    let bad = |reason| {
        Err(LayerError::InvalidPath {
            path: path.to_string(),
            reason,
        })
    };
    if path.is_empty() {
        return bad("empty path");
    }
    if path.starts_with('/') {
        return bad("leading `/`");
    }
    if path.contains('\0') {
        return bad("NUL byte");
    }
    for component in path.split('/') {
        match component {
            "" => return bad("empty component or trailing `/`"),
            "." | ".." => return bad("`.` or `..` component"),
            _ => {}
        }
    }
    Ok(())
}

/// Options of the tar writer.
#[derive(Clone, Copy, Debug, Default)]
pub struct TarOptions {
    /// Modification time of every entry, seconds since the epoch
    /// (`SOURCE_DATE_EPOCH`, or 0).
    pub mtime: u64,
}

/// Writes normalized entries (see [`normalize_entries`]) as a tar stream,
/// including the two terminating zero blocks.
pub fn write_tar<W: Write>(
    entries: &[Entry],
    opts: TarOptions,
    out: &mut W,
) -> Result<(), LayerError> {
    let write_err = |source| LayerError::Write {
        path: "<layer stream>".into(),
        source,
    };
    for entry in entries {
        write_entry(entry, opts, out)?;
    }
    out.write_all(&[0u8; BLOCK * 2]).map_err(write_err)
}

fn write_entry<W: Write>(entry: &Entry, opts: TarOptions, out: &mut W) -> Result<(), LayerError> {
    let (typeflag, size, link) = match &entry.kind {
        EntryKind::Dir => (b'5', 0, ""),
        EntryKind::File { size, .. } => (b'0', *size, ""),
        EntryKind::Symlink { target } => (b'2', 0, target.as_str()),
        EntryKind::Hardlink { target } => (b'1', 0, target.as_str()),
        EntryKind::Whiteout => (b'0', 0, ""),
    };
    let name = match entry.kind {
        EntryKind::Dir => format!("{}/", entry.path),
        _ => entry.path.clone(),
    };
    let header = HeaderFields {
        name: &name,
        link,
        mode: entry.mode & 0o7777,
        uid: entry.uid as u64,
        gid: entry.gid as u64,
        size,
        mtime: opts.mtime,
        typeflag,
    };
    let stream_err = |source| LayerError::Write {
        path: "<layer stream>".into(),
        source,
    };
    if let Some(pax) = header.pax_records() {
        write_pax(&name, &pax, out).map_err(stream_err)?;
    }
    out.write_all(&header.ustar_block()).map_err(stream_err)?;
    if let EntryKind::File { source, size } = &entry.kind {
        copy_content(source, *size, &entry.path, out)?;
        let pad = padding(*size);
        out.write_all(&[0u8; BLOCK][..pad]).map_err(stream_err)?;
    }
    Ok(())
}

fn padding(size: u64) -> usize {
    (BLOCK - (size % BLOCK as u64) as usize) % BLOCK
}

struct HeaderFields<'a> {
    name: &'a str,
    link: &'a str,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    typeflag: u8,
}

impl HeaderFields<'_> {
    /// PAX records for values a ustar header cannot hold, sorted by key.
    fn pax_records(&self) -> Option<Vec<(&'static str, String)>> {
        let mut records = Vec::new();
        if self.gid > USTAR_MAX_NUMERIC_7 {
            records.push(("gid", self.gid.to_string()));
        }
        if self.link.len() > 100 {
            records.push(("linkpath", self.link.to_string()));
        }
        if self.mtime > USTAR_MAX_NUMERIC_11 {
            records.push(("mtime", self.mtime.to_string()));
        }
        if self.name.len() > 100 {
            records.push(("path", self.name.to_string()));
        }
        if self.size > USTAR_MAX_NUMERIC_11 {
            records.push(("size", self.size.to_string()));
        }
        if self.uid > USTAR_MAX_NUMERIC_7 {
            records.push(("uid", self.uid.to_string()));
        }
        (!records.is_empty()).then_some(records)
    }

    fn ustar_block(&self) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        put_truncated(&mut h[0..100], self.name.as_bytes());
        put_octal(&mut h[100..108], self.mode as u64);
        put_octal(&mut h[108..116], self.uid.min(USTAR_MAX_NUMERIC_7));
        put_octal(&mut h[116..124], self.gid.min(USTAR_MAX_NUMERIC_7));
        put_octal(&mut h[124..136], self.size.min(USTAR_MAX_NUMERIC_11));
        put_octal(&mut h[136..148], self.mtime.min(USTAR_MAX_NUMERIC_11));
        h[156] = self.typeflag;
        put_truncated(&mut h[157..257], self.link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        put_octal(&mut h[329..337], 0);
        put_octal(&mut h[337..345], 0);
        finish_checksum(&mut h);
        h
    }
}

fn put_truncated(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// Zero-padded octal digits followed by a NUL, filling the field.
fn put_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

fn finish_checksum(h: &mut [u8; BLOCK]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
}

fn write_pax<W: Write>(name: &str, records: &[(&str, String)], out: &mut W) -> io::Result<()> {
    let mut body = Vec::new();
    for (key, value) in records {
        body.extend_from_slice(pax_record(key, value).as_bytes());
    }
    let base = name.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let pax_name: String = format!("PaxHeaders/{base}").chars().take(99).collect();
    let header = HeaderFields {
        name: &pax_name,
        link: "",
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: body.len() as u64,
        mtime: 0,
        typeflag: b'x',
    };
    out.write_all(&header.ustar_block())?;
    out.write_all(&body)?;
    out.write_all(&[0u8; BLOCK][..padding(body.len() as u64)])
}

/// One `"<len> <key>=<value>\n"` record, where `<len>` counts itself.
fn pax_record(key: &str, value: &str) -> String {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len += 1;
    }
    format!("{len} {key}={value}\n")
}

fn copy_content<W: Write>(
    source: &FileSource,
    size: u64,
    entry_path: &str,
    out: &mut W,
) -> Result<(), LayerError> {
    match source {
        FileSource::Bytes(bytes) => {
            check_size(entry_path, size, bytes.len() as u64)?;
            out.write_all(bytes).map_err(stream_write_err)
        }
        FileSource::Path(path) => copy_file(path, size, out),
        FileSource::Open(open) => {
            let reader = open().map_err(|source| LayerError::Read {
                path: entry_path.to_string(),
                source,
            })?;
            copy_exact(reader, size, entry_path, out)
        }
    }
}

fn stream_write_err(source: io::Error) -> LayerError {
    LayerError::Write {
        path: "<layer stream>".into(),
        source,
    }
}

fn check_size(path: &str, expected: u64, found: u64) -> Result<(), LayerError> {
    if expected == found {
        Ok(())
    } else {
        Err(LayerError::SizeChanged {
            path: path.to_string(),
            expected,
            found,
        })
    }
}

fn copy_file<W: Write>(path: &std::path::Path, size: u64, out: &mut W) -> Result<(), LayerError> {
    let shown = path.display().to_string();
    let read_err = |source| LayerError::Read {
        path: shown.clone(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(read_err(io::Error::other("not a regular file")));
    }
    check_size(&shown, size, meta.len())?;
    if size >= MMAP_THRESHOLD {
        // SAFETY: the map is read-only and private to this call; a concurrent
        // truncation is detected by the size re-check below.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(read_err)?;
        check_size(&shown, size, map.len() as u64)?;
        for chunk in map.chunks(1 << 20) {
            out.write_all(chunk).map_err(stream_write_err)?;
        }
        let after = file.metadata().map_err(read_err)?.len();
        check_size(&shown, size, after)
    } else {
        copy_exact(file, size, &shown, out)
    }
}

/// Copies exactly `size` bytes and fails if the source has fewer or more.
fn copy_exact<R: Read, W: Write>(
    reader: R,
    size: u64,
    path: &str,
    out: &mut W,
) -> Result<(), LayerError> {
    thread_local! {
        // One buffer per thread, not one per file: layers hold thousands
        // of small files.
        static BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 64 * 1024]);
    }
    BUFFER.with_borrow_mut(|buf| copy_exact_with(reader, size, path, out, buf))
}

fn copy_exact_with<R: Read, W: Write>(
    reader: R,
    size: u64,
    path: &str,
    out: &mut W,
    buf: &mut [u8],
) -> Result<(), LayerError> {
    let mut limited = reader.take(size + 1);
    let mut copied = 0u64;
    loop {
        let n = match limited.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(LayerError::Read {
                    path: path.to_string(),
                    source,
                });
            }
        };
        copied += n as u64;
        if copied > size {
            return check_size(path, size, copied);
        }
        out.write_all(&buf[..n]).map_err(stream_write_err)?;
    }
    check_size(path, size, copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        assert_eq!(pax_record("path", "a"), "9 path=a\n");
        let long = "x".repeat(95);
        let rec = pax_record("path", &long);
        let (len, _) = rec.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), rec.len());
    }

    #[test]
    fn values_too_big_for_ustar_go_to_pax_records() {
        let h = HeaderFields {
            name: "short",
            link: "",
            mode: 0o644,
            uid: 3_000_000,
            gid: 0,
            size: 9 << 30,
            mtime: 0,
            typeflag: b'0',
        };
        let records = h.pax_records().unwrap();
        assert_eq!(
            records,
            vec![
                ("size", (9u64 << 30).to_string()),
                ("uid", "3000000".to_string())
            ]
        );
        let block = h.ustar_block();
        assert_eq!(
            &block[124..136],
            b"77777777777\0",
            "ustar size field saturates"
        );
        let small = HeaderFields {
            size: 10,
            uid: 0,
            ..h
        };
        assert!(small.pax_records().is_none());
    }

    #[test]
    fn sorts_directories_before_siblings_with_punctuation() {
        let entries = vec![
            Entry::file_bytes("a-b", 0o644, b"x".to_vec()),
            Entry::file_bytes("a/b", 0o644, b"y".to_vec()),
        ];
        let out = normalize_entries(entries).unwrap();
        let paths: Vec<_> = out.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a", "a/b", "a-b"]);
    }

    #[test]
    fn rejects_dotdot_and_duplicates() {
        assert!(normalize_entries(vec![Entry::dir("a/../b", 0o755)]).is_err());
        assert!(normalize_entries(vec![Entry::dir("a", 0o755), Entry::dir("a", 0o700)]).is_err());
    }
}
