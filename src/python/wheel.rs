//! Installing a wheel as layer entries, following the binary distribution
//! format spec: purelib/platlib, `.data/` schemes, entry-point scripts,
//! a regenerated RECORD, INSTALLER, REQUESTED and `direct_url.json`.

use super::target::PythonTarget;
use crate::layer::{Entry, EntryKind, FileSource, OpenFn};
use anyhow::{Context, Result, bail};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The text written to each installed distribution's `INSTALLER` file.
pub const INSTALLER: &str = "cogpack";

/// One installed distribution and the entries it produced.
#[derive(Debug, Clone)]
pub struct InstalledWheel {
    /// Name from METADATA, as the author spelled it.
    pub name: String,
    /// Version from METADATA.
    pub version: String,
    /// `direct_url.json` content, when installed from a URL, path or VCS.
    pub direct_url: Option<DirectUrl>,
    /// Files of the distribution (paths relative to `/`).
    pub entries: Vec<Entry>,
}

/// PEP 610 origin of a distribution installed from a direct reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectUrl {
    /// An archive (wheel or sdist) at a URL or `file://` path; `hash` is
    /// `sha256=<hex>` when the requirement carried one.
    Archive {
        /// URL without credentials or hash fragment.
        url: String,
        /// Optional `algo=hex`.
        hash: Option<String>,
    },
    /// A VCS checkout.
    Vcs {
        /// VCS name (`git`).
        vcs: String,
        /// Repository URL without the `git+` prefix.
        url: String,
        /// Exact commit.
        commit_id: String,
        /// Revision the user asked for, if any.
        requested_revision: Option<String>,
    },
    /// A local directory.
    Dir {
        /// `file://` URL of the directory.
        url: String,
    },
}

impl DirectUrl {
    /// The JSON pip writes (keys sorted, Python's default separators).
    pub fn to_json(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).expect("string serialises");
        match self {
            DirectUrl::Archive { url, hash: Some(h) } => {
                let (algo, hex) = h.split_once('=').unwrap_or(("sha256", h));
                format!(
                    "{{\"archive_info\": {{\"hash\": {}, \"hashes\": {{{}: {}}}}}, \"url\": {}}}",
                    q(h),
                    q(algo),
                    q(hex),
                    q(url)
                )
            }
            DirectUrl::Archive { url, hash: None } => {
                format!("{{\"archive_info\": {{}}, \"url\": {}}}", q(url))
            }
            DirectUrl::Vcs {
                vcs,
                url,
                commit_id,
                requested_revision,
            } => {
                let rev = requested_revision
                    .as_deref()
                    .map(|r| format!(", \"requested_revision\": {}", q(r)))
                    .unwrap_or_default();
                format!(
                    "{{\"url\": {}, \"vcs_info\": {{\"commit_id\": {}{rev}, \"vcs\": {}}}}}",
                    q(url),
                    q(commit_id),
                    q(vcs)
                )
            }
            DirectUrl::Dir { url } => format!("{{\"dir_info\": {{}}, \"url\": {}}}", q(url)),
        }
    }

    /// The requirement `pip freeze` prints after `name @ ` (pip's
    /// `direct_url_as_pep440_direct_reference`).
    pub fn freeze_reference(&self) -> String {
        match self {
            DirectUrl::Archive { url, hash: Some(h) } => format!("{url}#{h}"),
            DirectUrl::Archive { url, hash: None } | DirectUrl::Dir { url } => url.clone(),
            DirectUrl::Vcs {
                vcs,
                url,
                commit_id,
                ..
            } => format!("{vcs}+{url}@{commit_id}"),
        }
    }
}

/// Where a zip member's bytes live inside the wheel file.
#[derive(Clone)]
struct MemberLocation {
    wheel: Arc<PathBuf>,
    data_start: u64,
    compressed_size: u64,
    deflated: bool,
}

impl MemberLocation {
    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        let mut file = File::open(self.wheel.as_ref())?;
        file.seek(SeekFrom::Start(self.data_start))?;
        let raw = file.take(self.compressed_size);
        if self.deflated {
            Ok(Box::new(flate2::read::DeflateDecoder::new(
                io::BufReader::new(raw),
            )))
        } else {
            Ok(Box::new(raw))
        }
    }

    fn open_fn(&self) -> OpenFn {
        let me = self.clone();
        Arc::new(move || me.open())
    }

    fn read_all(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open()?.read_to_end(&mut out)?;
        Ok(out)
    }
}

/// True if a member starts with the `#!python` placeholder shebang that
/// installers rewrite (reads at most its first bytes).
fn starts_with_python_shebang(location: &MemberLocation) -> Result<bool> {
    const SHEBANG: &[u8] = b"#!python";
    let mut head = Vec::with_capacity(SHEBANG.len());
    location
        .open()?
        .take(SHEBANG.len() as u64)
        .read_to_end(&mut head)?;
    Ok(head == SHEBANG)
}

/// Opens a member whose bytes are checked, as they stream into the layer,
/// against the hash the wheel's RECORD gives: a mismatch fails the read at
/// end of file (as pip refuses such a wheel), at no extra pass over the data.
fn verifying_open_fn(location: MemberLocation, record_hash: &str, member: &str) -> Result<OpenFn> {
    let expected: [u8; 32] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(record_hash)
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| {
            format!("RECORD hash {record_hash:?} of {member} is not a sha256 digest")
        })?;
    let member = Arc::<str>::from(member);
    let wheel = location.wheel.clone();
    Ok(Arc::new(move || {
        Ok(Box::new(VerifyingReader {
            inner: location.open()?,
            hasher: Sha256::new(),
            expected,
            what: format!("{} in {}", member, wheel.display()),
        }) as Box<dyn Read + Send>)
    }))
}

/// A reader that fails at end of input when the content's sha256 differs.
struct VerifyingReader {
    inner: Box<dyn Read + Send>,
    hasher: Sha256,
    expected: [u8; 32],
    what: String,
}

impl Read for VerifyingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.hasher.update(&buf[..n]);
        } else if !buf.is_empty() {
            let actual: [u8; 32] = self.hasher.clone().finalize().into();
            if actual != self.expected {
                return Err(io::Error::other(format!(
                    "{} does not match the hash in the wheel's RECORD; the wheel is corrupt or was tampered with. Hint: delete it from the cache and rebuild",
                    self.what
                )));
            }
        }
        Ok(n)
    }
}

/// One regular-file member of the wheel.
struct Member {
    name: String,
    size: u64,
    executable: bool,
    location: MemberLocation,
}

/// Installs the wheel at `wheel_path` for `target`. Member contents stay in
/// the wheel file (streamed when the layer is written); only scripts and
/// metadata files are held in memory.
pub fn install_wheel(
    wheel_path: &Path,
    target: &PythonTarget,
    direct_url: Option<DirectUrl>,
) -> Result<InstalledWheel> {
    let shown = wheel_path.display();
    let members = read_members(wheel_path).with_context(|| format!("reading wheel {shown}"))?;
    let dist_info = find_dist_info(&members).with_context(|| format!("wheel {shown}"))?;
    let meta_text = member_text(&members, &format!("{dist_info}/METADATA"))
        .with_context(|| format!("wheel {shown}: reading METADATA"))?;
    let (name, version) =
        parse_metadata(&meta_text).with_context(|| format!("wheel {shown}: METADATA"))?;
    let record = member_text(&members, &format!("{dist_info}/RECORD"))
        .map(|t| parse_record(&t))
        .unwrap_or_default();
    let data_dir = format!("{}.data", dist_info.trim_end_matches(".dist-info"));

    let mut installer = Installer::new(target, &name);
    for m in &members {
        if is_regenerated_metadata(&m.name, &dist_info) {
            continue;
        }
        installer
            .add_member(m, &data_dir, &record)
            .with_context(|| format!("wheel {shown}: member {}", m.name))?;
    }
    if let Ok(text) = member_text(&members, &format!("{dist_info}/entry_points.txt")) {
        for (script, module, attr) in parse_entry_points(&text) {
            installer.add_generated(
                &format!("{}/{script}", target.bin_dir),
                0o755,
                script_text(target, &module, &attr),
            );
        }
    }
    let sp = target.site_packages.trim_end_matches('/');
    installer.add_generated(
        &format!("{sp}/{dist_info}/INSTALLER"),
        0o644,
        INSTALLER.as_bytes().to_vec(),
    );
    installer.add_generated(&format!("{sp}/{dist_info}/REQUESTED"), 0o644, Vec::new());
    if let Some(d) = &direct_url {
        installer.add_generated(
            &format!("{sp}/{dist_info}/direct_url.json"),
            0o644,
            d.to_json().into_bytes(),
        );
    }
    let entries = installer.finish(&format!("{sp}/{dist_info}/RECORD"));
    Ok(InstalledWheel {
        name,
        version,
        direct_url,
        entries,
    })
}

/// Files of the wheel's own dist-info that the installer rewrites.
fn is_regenerated_metadata(member: &str, dist_info: &str) -> bool {
    match member
        .strip_prefix(dist_info)
        .and_then(|r| r.strip_prefix('/'))
    {
        Some(rest) => matches!(
            rest,
            "RECORD" | "INSTALLER" | "REQUESTED" | "direct_url.json"
        ),
        None => false,
    }
}

/// Collects entries and RECORD rows.
struct Installer<'a> {
    target: &'a PythonTarget,
    dist_name: String,
    entries: BTreeMap<String, Entry>,
    record: BTreeMap<String, String>,
}

impl<'a> Installer<'a> {
    fn new(target: &'a PythonTarget, dist_name: &str) -> Self {
        Installer {
            target,
            dist_name: dist_name.to_string(),
            entries: BTreeMap::new(),
            record: BTreeMap::new(),
        }
    }

    /// Maps one wheel member to its installed location and records it.
    fn add_member(
        &mut self,
        m: &Member,
        data_dir: &str,
        record: &BTreeMap<String, (String, u64)>,
    ) -> Result<()> {
        let sp = self.target.site_packages.trim_end_matches('/');
        let known = record
            .get(&m.name)
            .filter(|(_, size)| *size == m.size)
            .map(|(h, _)| h.clone());
        if let Some(rest) = m
            .name
            .strip_prefix(data_dir)
            .and_then(|r| r.strip_prefix('/'))
        {
            let (scheme, rel) = rest
                .split_once('/')
                .with_context(|| format!("{:?} is not inside a .data scheme directory", m.name))?;
            let dest = match scheme {
                "purelib" | "platlib" => format!("{sp}/{rel}"),
                "scripts" => return self.add_script(m, rel, known),
                "headers" => format!(
                    "{}/{}/{rel}",
                    self.target.include_dir.trim_end_matches('/'),
                    self.dist_name
                ),
                "data" => format!("{}/{rel}", self.target.data_dir.trim_end_matches('/')),
                other => bail!(
                    "unknown .data scheme {other:?}; expected purelib, platlib, scripts, headers or data"
                ),
            };
            return self.add_streamed(m, &dest, known);
        }
        self.add_streamed(m, &format!("{sp}/{}", m.name), known)
    }

    /// A member copied verbatim; its hash comes from the wheel RECORD when
    /// present, else it is computed.
    fn add_streamed(&mut self, m: &Member, dest: &str, known_hash: Option<String>) -> Result<()> {
        let mode = if m.executable { 0o755 } else { 0o644 };
        self.add_streamed_with_mode(m, dest, known_hash, mode)
    }

    fn add_streamed_with_mode(
        &mut self,
        m: &Member,
        dest: &str,
        known_hash: Option<String>,
        mode: u32,
    ) -> Result<()> {
        let (hash, source) = match known_hash {
            Some(h) => {
                let open = verifying_open_fn(m.location.clone(), &h, &m.name)?;
                (h, open)
            }
            None => (
                record_hash_of_reader(m.location.open()?)?,
                m.location.open_fn(),
            ),
        };
        let entry = Entry {
            path: dest.trim_start_matches('/').to_string(),
            kind: EntryKind::File {
                source: FileSource::Open(source),
                size: m.size,
            },
            mode,
            uid: 0,
            gid: 0,
        };
        self.insert(entry, hash, m.size);
        Ok(())
    }

    /// A `.data/scripts` member: `#!python` shebangs point at the image
    /// interpreter. Other scripts (e.g. native binaries) are streamed like
    /// any member: only their first bytes are read here.
    fn add_script(&mut self, m: &Member, rel: &str, known_hash: Option<String>) -> Result<()> {
        let dest = format!("{}/{rel}", self.target.bin_dir.trim_end_matches('/'));
        if !starts_with_python_shebang(&m.location)? {
            return self.add_streamed_with_mode(m, &dest, known_hash, 0o755);
        }
        let mut bytes = m.location.read_all()?;
        if bytes.starts_with(b"#!python") {
            let rest = bytes[b"#!python".len()..].to_vec();
            bytes = format!("#!{}", self.target.interpreter).into_bytes();
            bytes.extend_from_slice(&rest);
        }
        self.add_generated(&dest, 0o755, bytes);
        Ok(())
    }

    fn add_generated(&mut self, dest: &str, mode: u32, bytes: Vec<u8>) {
        let hash = record_hash(&bytes);
        let size = bytes.len() as u64;
        self.insert(
            Entry::file_bytes(dest.trim_start_matches('/'), mode, bytes),
            hash,
            size,
        );
    }

    fn insert(&mut self, entry: Entry, hash: String, size: u64) {
        let rel = relative_to(&self.target.site_packages, &format!("/{}", entry.path));
        self.record.insert(rel, format!("sha256={hash},{size}"));
        self.entries.insert(entry.path.clone(), entry);
    }

    /// Adds RECORD (listing itself without hash) and returns the entries.
    fn finish(mut self, record_path: &str) -> Vec<Entry> {
        let own = relative_to(&self.target.site_packages, record_path);
        let mut text = String::new();
        for (path, value) in &self.record {
            text.push_str(&format!("{},{value}\n", csv_field(path)));
        }
        text.push_str(&format!("{},,\n", csv_field(&own)));
        let entry = Entry::file_bytes(
            record_path.trim_start_matches('/'),
            0o644,
            text.into_bytes(),
        );
        self.entries.insert(entry.path.clone(), entry);
        self.entries.into_values().collect()
    }
}

/// Reads the zip directory, rejecting members that would land outside the
/// install root.
fn read_members(wheel_path: &Path) -> Result<Vec<Member>> {
    let file = File::open(wheel_path)?;
    let mut zip =
        zip::ZipArchive::new(io::BufReader::new(file)).context("not a valid zip archive")?;
    let shared = Arc::new(wheel_path.to_path_buf());
    let mut out = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let f = zip.by_index_raw(i)?;
        let name = String::from_utf8(f.name_raw().to_vec())
            .map_err(|_| anyhow::anyhow!("member {i} has a name that is not UTF-8"))?;
        check_member_name(&name)?;
        if name.ends_with('/') {
            continue;
        }
        let deflated = match f.compression() {
            zip::CompressionMethod::Stored => false,
            zip::CompressionMethod::Deflated => true,
            other => bail!(
                "member {name:?} uses compression {other:?}; wheels may only use stored or deflate"
            ),
        };
        let data_start = f
            .data_start()
            .with_context(|| format!("member {name:?}: no data offset"))?;
        out.push(Member {
            executable: f.unix_mode().is_some_and(|m| m & 0o111 != 0),
            size: f.size(),
            location: MemberLocation {
                wheel: shared.clone(),
                data_start,
                compressed_size: f.compressed_size(),
                deflated,
            },
            name,
        });
    }
    Ok(out)
}

/// Refuses absolute paths, `..` components and backslashes (zip-slip).
fn check_member_name(name: &str) -> Result<()> {
    let bad = name.starts_with('/')
        || name.contains('\\')
        || name.contains('\0')
        || name.split('/').any(|c| c == "..")
        || name.is_empty();
    if bad {
        bail!(
            "member path {name:?} would be written outside the install directory (zip-slip); \
             refusing to install this wheel. Hint: the wheel is malformed or malicious — rebuild it or use another version"
        );
    }
    Ok(())
}

/// The single top-level `*.dist-info` directory.
fn find_dist_info(members: &[Member]) -> Result<String> {
    let mut dirs: Vec<&str> = members
        .iter()
        .filter_map(|m| m.name.split_once('/').map(|(d, _)| d))
        .filter(|d| d.ends_with(".dist-info"))
        .collect();
    dirs.sort();
    dirs.dedup();
    match dirs.as_slice() {
        [one] => Ok(one.to_string()),
        [] => bail!("no .dist-info directory found; this is not a valid wheel"),
        many => bail!(
            "several .dist-info directories found ({}); this is not a valid wheel",
            many.join(", ")
        ),
    }
}

fn member_text(members: &[Member], name: &str) -> Result<String> {
    let m = members
        .iter()
        .find(|m| m.name == name)
        .with_context(|| format!("{name} is missing"))?;
    let bytes = m.location.read_all()?;
    String::from_utf8(bytes).with_context(|| format!("{name} is not UTF-8"))
}

/// `Name` and `Version` from a METADATA header block.
pub fn parse_metadata(text: &str) -> Result<(String, String)> {
    let mut name = None;
    let mut version = None;
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Name:") {
            name.get_or_insert_with(|| v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("Version:") {
            version.get_or_insert_with(|| v.trim().to_string());
        }
    }
    Ok((
        name.context("no Name: field")?,
        version.context("no Version: field")?,
    ))
}

/// RECORD rows as path → (hash value without `sha256=`, size).
fn parse_record(text: &str) -> BTreeMap<String, (String, u64)> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let fields = split_csv(line);
        if fields.len() < 3 {
            continue;
        }
        let (Some(hash), Ok(size)) = (fields[1].strip_prefix("sha256="), fields[2].parse::<u64>())
        else {
            continue;
        };
        out.insert(fields[0].clone(), (hash.to_string(), size));
    }
    out
}

fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().expect("non-empty").push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            _ => fields.last_mut().expect("non-empty").push(c),
        }
    }
    fields
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `console_scripts` and `gui_scripts` as (script, module, attribute path).
pub fn parse_entry_points(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            section = line[1..line.len() - 1].trim().to_string();
            continue;
        }
        if section != "console_scripts" && section != "gui_scripts" {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.split('[').next().unwrap_or(value).trim();
        let Some((module, attr)) = value.split_once(':') else {
            continue;
        };
        out.push((
            name.trim().to_string(),
            module.trim().to_string(),
            attr.trim().to_string(),
        ));
    }
    out
}

/// The launcher script uv writes for an entry point.
fn script_text(target: &PythonTarget, module: &str, attr: &str) -> Vec<u8> {
    let import_name = attr.split('.').next().unwrap_or(attr);
    format!(
        "#!{}\n# -*- coding: utf-8 -*-\nimport sys\nfrom {module} import {import_name}\nif __name__ == \"__main__\":\n    if sys.argv[0].endswith(\"-script.pyw\"):\n        sys.argv[0] = sys.argv[0][:-11]\n    elif sys.argv[0].endswith(\".exe\"):\n        sys.argv[0] = sys.argv[0][:-4]\n    sys.exit({attr}())\n",
        target.interpreter
    )
    .into_bytes()
}

/// RECORD hash (urlsafe base64 without padding) of bytes.
pub fn record_hash(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(bytes))
}

fn record_hash_of_reader(mut r: Box<dyn Read + Send>) -> io::Result<String> {
    let mut hasher = Sha256::new();
    io::copy(&mut r, &mut hasher)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hasher.finalize()))
}

/// `path` written relative to directory `base` (both absolute), e.g.
/// `/usr/local/bin/x` from `/usr/local/lib/python3.11/site-packages` is
/// `../../../bin/x`.
pub fn relative_to(base: &str, path: &str) -> String {
    let b: Vec<&str> = base.split('/').filter(|s| !s.is_empty()).collect();
    let p: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let common = b.iter().zip(&p).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<&str> = std::iter::repeat_n("..", b.len() - common).collect();
    parts.extend(&p[common..]);
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_out_of_site_packages() {
        let sp = "/usr/local/lib/python3.11/site-packages";
        assert_eq!(relative_to(sp, "/usr/local/bin/x"), "../../../bin/x");
        assert_eq!(
            relative_to(sp, "/usr/local/lib/python3.11/site-packages/a/b.py"),
            "a/b.py"
        );
    }

    #[test]
    fn entry_points_keep_attribute_paths_and_drop_extras() {
        let eps = parse_entry_points(
            "[console_scripts]\na = m.n:obj.run [extra]\n[other]\nb = x:y\n[gui_scripts]\nc=z:w\n",
        );
        assert_eq!(
            eps,
            vec![
                ("a".into(), "m.n".into(), "obj.run".into()),
                ("c".into(), "z".into(), "w".into())
            ]
        );
    }

    #[test]
    fn zip_slip_names_are_refused() {
        assert!(check_member_name("../evil.py").is_err());
        assert!(check_member_name("/etc/passwd").is_err());
        assert!(check_member_name("a/../../b").is_err());
        assert!(check_member_name("pkg/__init__.py").is_ok());
    }

    #[test]
    fn direct_url_json_matches_pip_layout() {
        let d = DirectUrl::Vcs {
            vcs: "git".into(),
            url: "file:///r".into(),
            commit_id: "abc".into(),
            requested_revision: None,
        };
        assert_eq!(
            d.to_json(),
            r#"{"url": "file:///r", "vcs_info": {"commit_id": "abc", "vcs": "git"}}"#
        );
        assert_eq!(d.freeze_reference(), "git+file:///r@abc");
    }
}
