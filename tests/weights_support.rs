//! Shared test support for the weights tests: a real Debian
//! `docker-registry` on 127.0.0.1, a minimal blocking HTTP/1.1 client that
//! implements `WeightRegistry` against it, and file helpers.
#![allow(dead_code)]

use cogpack::oci::{Descriptor, Digest};
use cogpack::weights::registry::{BlobOpener, RegistryError, WeightRegistry};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running registry, killed on drop.
pub struct TestRegistry {
    child: Child,
    /// Listening port.
    pub port: u16,
    /// Storage root.
    pub dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts `docker-registry serve` and waits for `/v2/`.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: weights-test-secret\n",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is installed (apt-get install docker-registry)");
        let registry = TestRegistry { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(resp) = registry.client("probe").request("GET", "/v2/", &[], None)
                && resp.status == 200
            {
                break;
            }
            assert!(Instant::now() < deadline, "registry did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        registry
    }

    /// A client bound to one repository.
    pub fn client(&self, repo: &str) -> RegistryClient {
        RegistryClient {
            host: format!("127.0.0.1:{}", self.port),
            repo: repo.to_string(),
        }
    }

    /// `host:port`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Deletes a blob's data from the registry storage.
    pub fn delete_blob_data(&self, digest: &Digest) {
        let dir = self
            .dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&digest.hex()[..2])
            .join(digest.hex());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed response head plus a body reader.
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// Body (bounded by Content-Length).
    pub body: Box<dyn Read + Send>,
}

impl Response {
    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The whole body.
    pub fn bytes(mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.body.read_to_end(&mut out).unwrap();
        out
    }
}

/// A minimal blocking registry client (one connection per request).
pub struct RegistryClient {
    host: String,
    repo: String,
}

const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

impl RegistryClient {
    /// Sends one request; `target` is a path or an absolute URL.
    pub fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, String)],
        body: Option<(u64, &mut dyn Read)>,
    ) -> std::io::Result<Response> {
        let path = match target.find("://") {
            Some(i) => {
                let rest = &target[i + 3..];
                rest[rest.find('/').unwrap_or(rest.len())..].to_string()
            }
            None => target.to_string(),
        };
        let mut stream = TcpStream::connect(&self.host)?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.host
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let length = body.as_ref().map(|b| b.0).unwrap_or(0);
        if method != "GET" && method != "HEAD" {
            head.push_str(&format!("Content-Length: {length}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        if let Some((size, reader)) = body {
            let sent = std::io::copy(reader, &mut stream)?;
            if sent != size {
                return Err(std::io::Error::other(format!(
                    "body had {sent} bytes, announced {size}"
                )));
            }
        }
        stream.flush()?;
        read_response(stream, method == "HEAD")
    }

    fn blob_path(&self, digest: &Digest) -> String {
        format!("/v2/{}/blobs/{digest}", self.repo)
    }

    fn manifest_path(&self, reference: &str) -> String {
        format!("/v2/{}/manifests/{reference}", self.repo)
    }
}

fn read_response(stream: TcpStream, is_head: bool) -> std::io::Result<Response> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let length: u64 = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body: Box<dyn Read + Send> = if is_head {
        Box::new(std::io::empty())
    } else {
        Box::new(reader.take(length))
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn err(what: &str, e: impl std::fmt::Display) -> RegistryError {
    RegistryError(format!("{what}: {e}"))
}

fn unexpected(what: &str, resp: Response) -> RegistryError {
    let status = resp.status;
    let body = String::from_utf8_lossy(&resp.bytes()).into_owned();
    RegistryError(format!("{what}: HTTP {status}: {body}"))
}

impl WeightRegistry for RegistryClient {
    fn head_blob(&self, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        let resp = self
            .request("HEAD", &self.blob_path(digest), &[], None)
            .map_err(|e| err("HEAD blob", e))?;
        match resp.status {
            200 => Ok(resp.header("content-length").and_then(|v| v.parse().ok())),
            404 => Ok(None),
            _ => Err(unexpected("HEAD blob", resp)),
        }
    }

    fn push_blob(&self, desc: &Descriptor, open: &BlobOpener<'_>) -> Result<(), RegistryError> {
        if self.head_blob(&desc.digest)? == Some(desc.size) {
            return Ok(());
        }
        let start = self
            .request(
                "POST",
                &format!("/v2/{}/blobs/uploads/", self.repo),
                &[],
                Some((0, &mut std::io::empty())),
            )
            .map_err(|e| err("starting upload", e))?;
        if start.status != 202 {
            return Err(unexpected("starting upload", start));
        }
        let location = start.header("location").unwrap().to_string();
        let mut reader = open().map_err(|e| err("opening blob", e))?;
        let patched = self
            .request(
                "PATCH",
                &location,
                &[("Content-Type", "application/octet-stream".into())],
                Some((desc.size, &mut reader)),
            )
            .map_err(|e| err("uploading", e))?;
        if patched.status != 202 {
            return Err(unexpected("uploading", patched));
        }
        let location = patched.header("location").unwrap().to_string();
        let sep = if location.contains('?') { '&' } else { '?' };
        let done = self
            .request(
                "PUT",
                &format!("{location}{sep}digest={}", desc.digest),
                &[
                    ("Content-Type", "application/octet-stream".into()),
                    ("OCI-Layer-Media-Type", desc.media_type.clone()),
                ],
                Some((0, &mut std::io::empty())),
            )
            .map_err(|e| err("committing upload", e))?;
        if done.status != 201 {
            return Err(unexpected("committing upload", done));
        }
        Ok(())
    }

    fn put_manifest(
        &self,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        let resp = self
            .request(
                "PUT",
                &self.manifest_path(reference),
                &[("Content-Type", media_type.to_string())],
                Some((bytes.len() as u64, &mut &bytes[..])),
            )
            .map_err(|e| err("PUT manifest", e))?;
        if resp.status != 201 {
            return Err(unexpected("PUT manifest", resp));
        }
        Ok(Digest::of_bytes(bytes))
    }

    fn head_manifest(&self, reference: &str) -> Result<Option<Descriptor>, RegistryError> {
        let resp = self
            .request(
                "HEAD",
                &self.manifest_path(reference),
                &[("Accept", ACCEPT.into())],
                None,
            )
            .map_err(|e| err("HEAD manifest", e))?;
        match resp.status {
            200 => Ok(Some(Descriptor::new(
                resp.header("content-type").unwrap_or_default(),
                resp.header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                resp.header("docker-content-digest")
                    .unwrap_or_default()
                    .parse()
                    .map_err(|e| err("digest header", e))?,
            ))),
            404 => Ok(None),
            _ => Err(unexpected("HEAD manifest", resp)),
        }
    }

    fn get_manifest(&self, reference: &str) -> Result<(Vec<u8>, String), RegistryError> {
        let resp = self
            .request(
                "GET",
                &self.manifest_path(reference),
                &[("Accept", ACCEPT.into())],
                None,
            )
            .map_err(|e| err("GET manifest", e))?;
        if resp.status != 200 {
            return Err(unexpected("GET manifest", resp));
        }
        let media = resp.header("content-type").unwrap_or_default().to_string();
        Ok((resp.bytes(), media))
    }

    fn get_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, RegistryError> {
        let resp = self
            .request("GET", &self.blob_path(digest), &[], None)
            .map_err(|e| err("GET blob", e))?;
        if resp.status != 200 {
            return Err(unexpected("GET blob", resp));
        }
        Ok(resp.body)
    }
}

/// Writes `size` bytes of deterministic pseudo-random data seeded by `seed`.
pub fn write_random_file(path: &Path, size: u64, seed: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut block = vec![0u8; 1 << 20];
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in block.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut written = 0u64;
    let mut counter = 0u64;
    while written < size {
        block[..8].copy_from_slice(&counter.to_le_bytes());
        let n = (size - written).min(block.len() as u64) as usize;
        out.write_all(&block[..n]).unwrap();
        written += n as u64;
        counter += 1;
    }
    out.flush().unwrap();
}

/// Writes a text file, creating parents.
pub fn write_text(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// SHA-256 digest of a file's content.
pub fn file_digest(path: &Path) -> Digest {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    let mut file = std::fs::File::open(path).unwrap();
    std::io::copy(&mut file, &mut hasher).unwrap();
    Digest::from_sha256(hasher.finalize().into())
}

/// Builds the Go reference tar writer from fixtures/weights/gotar and
/// returns its path (requires `go`, Debian package golang-go).
pub fn go_tar_tool(out_dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/weights/gotar");
    let bin = out_dir.join("gotar");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(&src)
        .env("GOFLAGS", "-mod=mod")
        .env(
            "GOCACHE",
            std::env::temp_dir().join("cogpack-weights-gocache"),
        )
        .status()
        .expect("go is installed (apt-get install golang-go)");
    assert!(
        status.success(),
        "building the Go reference tar writer failed"
    );
    bin
}
