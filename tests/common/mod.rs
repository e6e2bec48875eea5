//! Support code shared by the integration tests: a loopback registry ([`registry`]), stand-in
//! base images built from Debian packages ([`base_image`]) and a Docker-free image runner
//! ([`runner`]). Every helper drives real tools (`docker-registry`, `mmdebstrap`, `umoci`,
//! `skopeo`, `bwrap`, `uv`); `.ci/run` installs them.
#![allow(dead_code)]

pub mod base_image;
pub mod cogpack;
pub mod file_server;
pub mod registry;
pub mod runner;
pub mod sandbox;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Returns a TCP port on 127.0.0.1 that was free a moment ago (the OS picked it).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    listener
        .local_addr()
        .expect("local address of probe socket")
        .port()
}

/// Directory for artefacts cached between test runs (stand-in base images):
/// `$COGPACK_TEST_CACHE` if set, else `target/tmp/cogpack-test-cache`.
pub fn cache_dir() -> PathBuf {
    let dir = match std::env::var_os("COGPACK_TEST_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tmp/cogpack-test-cache"),
    };
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create test cache dir {}: {e}", dir.display()));
    dir
}

/// A fresh scratch directory for unpacked images and registry storage, removed on drop.
/// Lives on a RAM-backed tmpfs (`$COGPACK_TEST_TMPFS`, else `/dev/shm` when writable) because
/// creating ten thousand small files there is several times faster than on a busy disk;
/// falls back to the system temp dir.
pub fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    let tmpfs = match std::env::var_os("COGPACK_TEST_TMPFS") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => Some(PathBuf::from("/dev/shm")).filter(|dir| is_writable_dir(dir)),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    match tmpfs {
        Some(dir) => builder.tempdir_in(&dir),
        None => builder.tempdir(),
    }
    .unwrap_or_else(|e| panic!("create scratch dir {prefix}*: {e}"))
}

fn is_writable_dir(dir: &Path) -> bool {
    tempfile::Builder::new()
        .prefix(".cogpack-probe.")
        .tempfile_in(dir)
        .is_ok()
}

/// Runs `command` to completion and returns its stdout; on a non-zero exit or a missing
/// program, returns an error naming the command with its stderr and a hint.
pub fn run_checked(command: &mut Command) -> Result<Vec<u8>, String> {
    let shown = format!("{command:?}");
    let output: Output = command.output().map_err(|e| {
        format!("cannot start {shown}: {e} (hint: run `bash .ci/run` to install the test tools)")
    })?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    Err(format!(
        "{shown} failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// Like [`run_checked`] but panics with the error (for test setup steps that must work).
pub fn run_ok(command: &mut Command) -> Vec<u8> {
    run_checked(command).unwrap_or_else(|e| panic!("{e}"))
}

/// A response from [`http_request`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response headers, names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// Response body (chunked transfer encoding already decoded).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Sends one plain HTTP/1.1 request (`Connection: close`) to `host:port` and reads the whole
/// response. `path` starts with `/`. A JSON `body` gets `Content-Type: application/json`.
pub fn http_request(
    host: &str,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    timeout: Duration,
) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: */*\r\n");
    if let Some(body) = body {
        request.push_str("Content-Type: application/json\r\n");
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    if let Some(body) = body {
        stream.write_all(body)?;
    }
    read_response(BufReader::new(stream))
}

fn read_response(mut reader: BufReader<TcpStream>) -> std::io::Result<HttpResponse> {
    let status_line = read_line(&mut reader)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| invalid_data(format!("bad HTTP status line {status_line:?}")))?;
    let headers = read_headers(&mut reader)?;
    let header = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        read_chunked(&mut reader)?
    } else if let Some(length) = header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| invalid_data(format!("bad Content-Length {length:?}")))?;
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        body
    } else {
        let mut body = Vec::new();
        reader.read_to_end(&mut body)?;
        body
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn read_line(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(invalid_data(
            "connection closed before a full response".into(),
        ));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn read_headers(reader: &mut impl BufRead) -> std::io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            return Ok(headers);
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid_data(format!("bad header line {line:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let size_line = read_line(reader)?;
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| invalid_data(format!("bad chunk size {size_line:?}")))?;
        if size == 0 {
            // Skip trailers; a peer that closes right after the last chunk is fine too.
            while read_line(reader).is_ok_and(|line| !line.is_empty()) {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        read_line(reader)?;
    }
}

fn invalid_data(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// Writes the tree under `dir` as a reproducible tar layer at `out` (GNU tar: sorted names,
/// PAX format without atime/ctime, mtime 0, owner 0:0). Directories are made 0755 first so
/// the archive does not depend on the umask of whoever created them.
pub fn deterministic_tar(dir: &Path, out: &Path) {
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.unwrap_or_else(|e| panic!("walk {}: {e}", dir.display()));
        if entry.file_type().is_dir() {
            let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
            std::fs::set_permissions(entry.path(), mode)
                .unwrap_or_else(|e| panic!("chmod {}: {e}", entry.path().display()));
        }
    }
    run_ok(
        Command::new("tar")
            .args(["--sort=name", "--format=posix"])
            .arg("--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime")
            .args([
                "--mtime=@0",
                "--owner=0",
                "--group=0",
                "--numeric-owner",
                "-C",
            ])
            .arg(dir)
            .arg("-cf")
            .arg(out)
            .arg("."),
    );
}

/// Copies the fixture project `fixtures/e2e/<name>` (or any directory under
/// the repository given by `repo_relative`) into a fresh scratch directory;
/// returns the guard and the project path.
pub fn project_copy(repo_relative: &str) -> (tempfile::TempDir, PathBuf) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(repo_relative);
    let name = src.file_name().expect("project directory name").to_owned();
    let dir = scratch_dir("project");
    let dst = dir.path().join(name);
    copy_tree(&src, &dst);
    (dir, dst)
}

/// Copies a directory tree (regular files and directories).
pub fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap_or_else(|e| panic!("create {}: {e}", dst.display()));
    let entries = std::fs::read_dir(src).unwrap_or_else(|e| panic!("read {}: {e}", src.display()));
    for entry in entries {
        let entry = entry.expect("directory entry");
        let to = dst.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}

/// Panics with the command's output unless it succeeded.
pub fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A command's stderr as (lossy) UTF-8 text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
