//! Tar bytes of weight layers, identical to cog's (Go `archive/tar` with
//! `Format: PAX`, atime/ctime set to the epoch, §8.10).
//!
//! A layer is: one directory entry per ancestor directory of its files
//! (deduplicated, byte-sorted, trailing `/`), then the files in plan order,
//! each as PAX extended header + ustar header + data padded to 512, then two
//! zero blocks.

use std::collections::BTreeSet;
use std::io::{self, Read};

/// Tar block size.
pub const BLOCK: u64 = 512;
/// The archive end: two zero blocks.
pub const END: [u8; 1024] = [0; 1024];
/// Sizes at or above this do not fit the 11-digit octal size field.
const MAX_OCTAL_SIZE: u64 = 8_589_934_592;

/// Number of zero bytes that pad `size` bytes of data to a block boundary.
pub fn padding(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

/// Go's `toASCII`: drops non-ASCII characters and NUL.
fn to_ascii(s: &str) -> String {
    s.chars()
        .filter(|c| (*c as u32) < 0x80 && *c != '\0')
        .collect()
}

fn is_ascii(s: &str) -> bool {
    s.chars().all(|c| (c as u32) < 0x80 && c != '\0')
}

/// Go `formatString`: copy, NUL-terminate if short, drop a trailing slash
/// that the truncation left in the field.
fn put_string(field: &mut [u8], s: &str) {
    let bytes = s.as_bytes();
    let n = bytes.len().min(field.len());
    field[..n].copy_from_slice(&bytes[..n]);
    if bytes.len() < field.len() {
        field[bytes.len()] = 0;
    }
    if bytes.len() > field.len() && field[field.len() - 1] == b'/' {
        let kept = s[..field.len()].trim_end_matches('/').len();
        field[kept] = 0;
    }
}

/// Go `formatOctal`: zero-padded octal leaving room for a NUL; values that do
/// not fit become 0.
fn put_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let value = if value >= 1u64 << (3 * digits as u32) {
        0
    } else {
        value
    };
    let s = format!("{value:0digits$o}");
    put_string(field, &s);
}

/// Sets magic/version for PAX and writes the checksum (6 octal digits, NUL, space).
fn finish_block(block: &mut [u8; 512]) {
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    block[148..156].copy_from_slice(b"        ");
    let sum: u64 = block.iter().map(|b| u64::from(*b)).sum();
    put_octal(&mut block[148..155], sum);
    block[155] = b' ';
}

/// One PAX record `"<len> <key>=<value>\n"` where len counts the whole record.
fn pax_record(key: &str, value: &str) -> String {
    let mut size = key.len() + value.len() + 3;
    size += size.to_string().len();
    let mut record = format!("{size} {key}={value}\n");
    if record.len() != size {
        size = record.len();
        record = format!("{size} {key}={value}\n");
    }
    record
}

/// The name Go gives the extended header of `name`: `<dir>/PaxHeaders.0/<base>`.
fn pax_header_name(name: &str) -> String {
    let (dir, file) = match name.rfind('/') {
        Some(i) => (&name[..i], &name[i + 1..]),
        None => ("", name),
    };
    let parts: Vec<&str> = [dir, "PaxHeaders.0", file]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    parts.join("/")
}

/// The full header bytes (extended header, its records, ustar header) of one
/// entry: a directory (`name` ends with `/`) or a regular file of `size` bytes.
pub fn entry_header(name: &str, size: u64) -> Vec<u8> {
    let is_dir = name.ends_with('/');
    let mut records = vec![("atime", "0".to_string()), ("ctime", "0".to_string())];
    if name.len() > 100 || !is_ascii(name) {
        records.push(("path", name.to_string()));
    }
    if size >= MAX_OCTAL_SIZE {
        records.push(("size", size.to_string()));
    }
    records.sort_by(|a, b| a.0.cmp(b.0));
    let data: String = records.iter().map(|(k, v)| pax_record(k, v)).collect();

    let mut out = Vec::with_capacity(1536 + data.len());
    out.extend_from_slice(&pax_block(name, data.len() as u64));
    out.extend_from_slice(data.as_bytes());
    out.resize(out.len() + padding(data.len() as u64) as usize, 0);
    out.extend_from_slice(&ustar_block(name, size, is_dir));
    out
}

fn pax_block(name: &str, data_len: u64) -> [u8; 512] {
    let mut block = [0u8; 512];
    let mut pax_name = to_ascii(&pax_header_name(name));
    pax_name.truncate(100);
    put_string(&mut block[0..100], pax_name.trim_end_matches('/'));
    put_octal(&mut block[100..108], 0);
    put_octal(&mut block[108..116], 0);
    put_octal(&mut block[116..124], 0);
    put_octal(&mut block[124..136], data_len);
    put_octal(&mut block[136..148], 0);
    block[156] = b'x';
    finish_block(&mut block);
    block
}

fn ustar_block(name: &str, size: u64, is_dir: bool) -> [u8; 512] {
    let mut block = [0u8; 512];
    put_string(&mut block[0..100], &to_ascii(name));
    put_octal(&mut block[100..108], if is_dir { 0o755 } else { 0o644 });
    put_octal(&mut block[108..116], 0);
    put_octal(&mut block[116..124], 0);
    put_octal(&mut block[124..136], size);
    put_octal(&mut block[136..148], 0);
    block[156] = if is_dir { b'5' } else { b'0' };
    put_octal(&mut block[329..337], 0);
    put_octal(&mut block[337..345], 0);
    finish_block(&mut block);
    block
}

/// Every ancestor directory of the given file paths with a trailing `/`,
/// ordered like cog: sorted by byte order *without* the trailing slash
/// (so `a` and `a/b` come before `a-b`).
pub fn ancestor_dirs<'a>(paths: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut dirs = BTreeSet::new();
    for path in paths {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            dirs.insert(path[..end + i].to_string());
            end += i + 1;
        }
    }
    dirs.into_iter().map(|d| format!("{d}/")).collect()
}

/// The bytes before the first file: the directory entries.
pub fn dir_entries<'a>(paths: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    ancestor_dirs(paths)
        .iter()
        .flat_map(|d| entry_header(d, 0))
        .collect()
}

/// Exact byte size of the tar of files `(path, size)` in this order.
pub fn tar_size<'a>(files: impl IntoIterator<Item = (&'a str, u64)> + Clone) -> u64 {
    let dirs = dir_entries(files.clone().into_iter().map(|(p, _)| p)).len() as u64;
    let body: u64 = files
        .into_iter()
        .map(|(p, s)| entry_header(p, s).len() as u64 + s + padding(s))
        .sum();
    dirs + body + END.len() as u64
}

/// Opens the content of one file of a layer.
pub type OpenFile<'a> = Box<dyn FnMut(usize) -> io::Result<Box<dyn Read + Send + 'a>> + Send + 'a>;

/// A reader over the tar bytes of a layer: directory entries, each file
/// (header, content checked against its size, padding), end blocks. Memory
/// stays flat: file content is streamed from the opener.
pub struct LayerTarReader<'a> {
    files: Vec<(String, u64)>,
    open: OpenFile<'a>,
    /// Bytes generated by the reader itself (headers, padding, end).
    pending: io::Cursor<Vec<u8>>,
    /// The file being copied and how many of its bytes are still due.
    current: Option<(Box<dyn Read + Send + 'a>, u64)>,
    next_file: usize,
    finished: bool,
}

impl<'a> LayerTarReader<'a> {
    /// A reader over files `(path, size)` whose content `open(i)` returns.
    pub fn new(files: Vec<(String, u64)>, open: OpenFile<'a>) -> Self {
        let dirs = dir_entries(files.iter().map(|(p, _)| p.as_str()));
        LayerTarReader {
            files,
            open,
            pending: io::Cursor::new(dirs),
            current: None,
            next_file: 0,
            finished: false,
        }
    }

    fn current_file(&self) -> &(String, u64) {
        &self.files[self.next_file - 1]
    }

    /// Closes the finished file (refusing extra content) and queues its padding.
    fn close_file(&mut self) -> io::Result<()> {
        let (mut reader, _) = self.current.take().expect("a file is open");
        let (path, size) = self.current_file().clone();
        let mut probe = [0u8; 1];
        if reader.read(&mut probe)? != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{path}: content is longer than the recorded {size} bytes"),
            ));
        }
        self.pending = io::Cursor::new(vec![0u8; padding(size) as usize]);
        Ok(())
    }

    /// Queues the next header (opening its file) or the end blocks; false
    /// when everything was produced.
    fn advance(&mut self) -> io::Result<bool> {
        if self.next_file < self.files.len() {
            let (path, size) = self.files[self.next_file].clone();
            let reader = (self.open)(self.next_file)?;
            self.next_file += 1;
            self.pending = io::Cursor::new(entry_header(&path, size));
            self.current = Some((reader, size));
            return Ok(true);
        }
        if self.finished {
            return Ok(false);
        }
        self.finished = true;
        self.pending = io::Cursor::new(END.to_vec());
        Ok(true)
    }
}

impl Read for LayerTarReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.pending.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            match &mut self.current {
                Some((reader, remaining)) if *remaining > 0 => {
                    let want = buf
                        .len()
                        .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    let n = reader.read(&mut buf[..want])?;
                    if n == 0 {
                        let (path, size) = self.current_file();
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("{path}: content is shorter than the recorded {size} bytes"),
                        ));
                    }
                    *remaining -= n as u64;
                    return Ok(n);
                }
                Some(_) => self.close_file()?,
                None => {
                    if !self.advance()? {
                        return Ok(0);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_count_their_own_length() {
        assert_eq!(pax_record("atime", "0"), "11 atime=0\n");
        let long = "x".repeat(95);
        let rec = pax_record("path", &long);
        assert_eq!(
            rec.len(),
            rec.split(' ').next().unwrap().parse::<usize>().unwrap()
        );
    }

    #[test]
    fn pax_header_names_follow_go() {
        assert_eq!(pax_header_name("f"), "PaxHeaders.0/f");
        assert_eq!(pax_header_name("a/b/"), "a/b/PaxHeaders.0");
        assert_eq!(pax_header_name("a/b/c.json"), "a/b/PaxHeaders.0/c.json");
    }

    #[test]
    fn ancestors_are_sorted_and_unique() {
        assert_eq!(
            ancestor_dirs(["b/c/x", "a/y", "b/z"]),
            vec!["a/", "b/", "b/c/"]
        );
        assert_eq!(ancestor_dirs(["a-b/x", "a/y"]), vec!["a/", "a-b/"]);
    }
}
