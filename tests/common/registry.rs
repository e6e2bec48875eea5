//! A real Distribution registry (Debian `docker-registry`) on 127.0.0.1 for
//! tests: plain HTTP, delete enabled, access log captured so tests can count
//! requests. Optional htpasswd (Basic) or token authentication.
//!
//! ```ignore
//! let registry = Registry::start();                 // no auth
//! let registry = Registry::builder().htpasswd("u", "p").start();
//! let registry = Registry::builder().token_auth(realm, cert_path).start();
//! ```

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running registry; dropping it kills the process.
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Storage root directory.
    pub root: PathBuf,
    log_path: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

/// One line of the registry's access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// HTTP method.
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Response status.
    pub status: u16,
}

/// Token authentication settings for the registry.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    /// Token server URL.
    pub realm: String,
    /// Service name (the token's audience).
    pub service: String,
    /// Token issuer.
    pub issuer: String,
    /// PEM certificate whose key signs the tokens.
    pub cert: PathBuf,
}

/// Builder for a [`Registry`] with authentication.
#[derive(Default)]
pub struct RegistryBuilder {
    htpasswd: Option<(String, String)>,
    token: Option<TokenAuth>,
    tls: Option<(PathBuf, PathBuf)>,
}

impl RegistryBuilder {
    /// Basic authentication with one bcrypt user (needs `htpasswd`).
    pub fn htpasswd(mut self, user: &str, password: &str) -> Self {
        self.htpasswd = Some((user.into(), password.into()));
        self
    }

    /// Token authentication against a token server.
    pub fn token_auth(mut self, auth: TokenAuth) -> Self {
        self.token = Some(auth);
        self
    }

    /// Serve HTTPS with this PEM certificate and key.
    pub fn tls(mut self, certificate: &Path, key: &Path) -> Self {
        self.tls = Some((certificate.to_path_buf(), key.to_path_buf()));
        self
    }

    /// Starts the registry and waits until `/v2/` answers.
    pub fn start(self) -> Registry {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("storage");
        std::fs::create_dir_all(&root).unwrap();
        let port = free_port();
        let auth = self.auth_section(dir.path());
        let tls = match &self.tls {
            Some((certificate, key)) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                certificate.display(),
                key.display()
            ),
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: cogpack-test-secret\n{tls}{auth}",
            root.display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log_path = dir.path().join("registry.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("docker-registry must be installed (apt-get install docker-registry)");
        let registry = Registry {
            host: format!("127.0.0.1:{port}"),
            root,
            log_path,
            child,
            _dir: dir,
        };
        registry.wait_ready();
        registry
    }

    fn auth_section(&self, dir: &Path) -> String {
        if let Some((user, password)) = &self.htpasswd {
            let path = dir.join("htpasswd");
            let status = Command::new("htpasswd")
                .args(["-Bbc"])
                .arg(&path)
                .args([user, password])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("htpasswd must be installed (apt-get install apache2-utils)");
            assert!(status.success(), "htpasswd failed");
            return format!(
                "auth:\n  htpasswd:\n    realm: cogpack-test\n    path: {}\n",
                path.display()
            );
        }
        if let Some(token) = &self.token {
            return format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                token.realm,
                token.service,
                token.issuer,
                token.cert.display()
            );
        }
        String::new()
    }
}

impl Registry {
    /// A registry without authentication.
    pub fn start() -> Registry {
        RegistryBuilder::default().start()
    }

    /// A builder for registries with authentication.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            // A TLS listener answers plain HTTP with 400: it is up too.
            if let Some(status) = http_status(&self.host, "/v2/")
                && matches!(status, 200 | 401 | 400)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "registry on {} did not start; log:\n{}",
            self.host,
            self.log()
        );
    }

    /// The whole registry log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Requests from the access log, in order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.log().lines().filter_map(parse_access_line).collect()
    }

    /// Requests whose method is `method` and whose path contains `path_part`.
    pub fn count_requests(&self, method: &str, path_part: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path.contains(path_part))
            .count()
    }

    /// Number of access-log lines so far (use as a mark before an action).
    pub fn request_count(&self) -> usize {
        self.requests().len()
    }

    /// Requests logged after `mark` (from [`Registry::request_count`]).
    /// Waits briefly so lines written just now are included.
    pub fn requests_since(&self, mark: usize) -> Vec<LoggedRequest> {
        std::thread::sleep(Duration::from_millis(200));
        self.requests().into_iter().skip(mark).collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses a combined-log-format line: `… "METHOD PATH HTTP/1.1" STATUS …`.
fn parse_access_line(line: &str) -> Option<LoggedRequest> {
    let start = line.find('"')?;
    let rest = &line[start + 1..];
    let end = rest.find('"')?;
    let mut request = rest[..end].split(' ');
    let method = request.next()?.to_string();
    let path = request.next()?.to_string();
    let protocol = request.next()?;
    if !protocol.starts_with("HTTP/") {
        return None;
    }
    let status = rest[end + 1..].split_whitespace().next()?.parse().ok()?;
    Some(LoggedRequest {
        method,
        path,
        status,
    })
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Status of a plain `GET` over HTTP/1.0, or `None` if nothing answers.
pub fn http_status(host: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).ok()?;
    let text = std::str::from_utf8(&head[..n]).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

/// In-memory and generated images implementing `cogpack::oci::Image` for
/// registry tests.
pub mod images {
    use cogpack::oci::{Blob, Digest, Image, Layer, media};
    use sha2::{Digest as _, Sha256};
    use std::io::Read;
    use std::sync::Arc;

    /// Where a test layer's bytes come from.
    #[derive(Clone)]
    enum Source {
        Bytes(bytes::Bytes),
        Generated { size: u64, seed: u64 },
    }

    /// A layer whose bytes are in memory or generated on the fly.
    #[derive(Clone)]
    pub struct TestLayer {
        source: Source,
        digest: Digest,
        diff_id: Digest,
        media_type: String,
    }

    impl TestLayer {
        /// A gzip tar layer holding the given files (mode 0644, mtime 0).
        pub fn tar_gz(files: &[(&str, &[u8])]) -> TestLayer {
            let mut builder = tar::Builder::new(Vec::new());
            for (path, content) in files {
                let mut header = tar::Header::new_gnu();
                header.set_size(content.len() as u64);
                header.set_mode(0o644);
                header.set_mtime(0);
                header.set_cksum();
                builder.append_data(&mut header, path, *content).unwrap();
            }
            let tar = builder.into_inner().unwrap();
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            std::io::Write::write_all(&mut gz, &tar).unwrap();
            let compressed = gz.finish().unwrap();
            TestLayer {
                digest: Digest::of_bytes(&compressed),
                diff_id: Digest::of_bytes(&tar),
                source: Source::Bytes(compressed.into()),
                media_type: media::OCI_LAYER_GZIP.into(),
            }
        }

        /// `size` pseudo-random bytes made on the fly (never held in memory);
        /// digest computed by one streaming pass.
        pub fn generated(size: u64, seed: u64) -> TestLayer {
            let mut hasher = Sha256::new();
            let mut reader = GeneratedReader::new(size, seed);
            let mut buffer = vec![0u8; 1 << 20];
            loop {
                let n = reader.read(&mut buffer).unwrap();
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
            }
            let digest = Digest::from_sha256(hasher.finalize().into());
            TestLayer {
                diff_id: digest.clone(),
                digest,
                source: Source::Generated { size, seed },
                media_type: media::OCI_LAYER_TAR.into(),
            }
        }

        /// The bytes (only for in-memory layers).
        pub fn bytes(&self) -> Vec<u8> {
            let mut out = Vec::new();
            self.open().unwrap().read_to_end(&mut out).unwrap();
            out
        }
    }

    impl Blob for TestLayer {
        fn digest(&self) -> &Digest {
            &self.digest
        }
        fn size(&self) -> u64 {
            match &self.source {
                Source::Bytes(b) => b.len() as u64,
                Source::Generated { size, .. } => *size,
            }
        }
        fn media_type(&self) -> &str {
            &self.media_type
        }
        fn open(&self) -> std::io::Result<Box<dyn Read + Send>> {
            Ok(match &self.source {
                Source::Bytes(b) => Box::new(std::io::Cursor::new(b.clone())),
                Source::Generated { size, seed } => Box::new(GeneratedReader::new(*size, *seed)),
            })
        }
    }

    impl Layer for TestLayer {
        fn diff_id(&self) -> &Digest {
            &self.diff_id
        }
    }

    /// Deterministic bytes: a 1 MiB xorshift block, with each block's first
    /// 8 bytes replaced by its index so no two blocks are equal.
    pub struct GeneratedReader {
        block: Vec<u8>,
        size: u64,
        offset: u64,
    }

    impl GeneratedReader {
        /// A reader of `size` bytes for `seed`.
        pub fn new(size: u64, seed: u64) -> Self {
            let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut block = Vec::with_capacity(1 << 20);
            while block.len() < 1 << 20 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                block.extend_from_slice(&state.to_le_bytes());
            }
            GeneratedReader {
                block,
                size,
                offset: 0,
            }
        }
    }

    impl Read for GeneratedReader {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            if self.offset >= self.size {
                return Ok(0);
            }
            let block_len = self.block.len() as u64;
            let index = self.offset / block_len;
            let within = (self.offset % block_len) as usize;
            let n = buffer
                .len()
                .min(self.block.len() - within)
                .min((self.size - self.offset) as usize);
            buffer[..n].copy_from_slice(&self.block[within..within + n]);
            let marker = index.to_le_bytes();
            if within < 8 {
                let end = n.min(8 - within);
                buffer[..end].copy_from_slice(&marker[within..within + end]);
            }
            self.offset += n as u64;
            Ok(n)
        }
    }

    /// An OCI image held in memory (layers may be generated).
    pub struct TestImage {
        /// Manifest bytes.
        pub manifest: Vec<u8>,
        /// Config bytes.
        pub config: Vec<u8>,
        /// Layers, bottom first.
        pub layers: Vec<Arc<TestLayer>>,
    }

    impl TestImage {
        /// An OCI image with these labels and layers.
        pub fn new(labels: &[(&str, &str)], layers: Vec<TestLayer>) -> TestImage {
            let labels: serde_json::Map<String, serde_json::Value> = labels
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
                .collect();
            let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
            let config = serde_json::json!({
                "architecture": "amd64",
                "os": "linux",
                "config": {"Labels": labels, "WorkingDir": "/src"},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            });
            let config = serde_json::to_vec(&config).unwrap();
            let layer_descriptors: Vec<serde_json::Value> = layers
                .iter()
                .map(|l| serde_json::json!({"mediaType": l.media_type, "size": l.size(), "digest": l.digest.to_string()}))
                .collect();
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": media::OCI_MANIFEST,
                "config": {"mediaType": media::OCI_CONFIG, "size": config.len(), "digest": Digest::of_bytes(&config).to_string()},
                "layers": layer_descriptors,
            });
            TestImage {
                manifest: serde_json::to_vec(&manifest).unwrap(),
                config,
                layers: layers.into_iter().map(Arc::new).collect(),
            }
        }
    }

    impl Image for TestImage {
        fn manifest_bytes(&self) -> &[u8] {
            &self.manifest
        }
        fn manifest_media_type(&self) -> &str {
            media::OCI_MANIFEST
        }
        fn config_bytes(&self) -> &[u8] {
            &self.config
        }
        fn layers(&self) -> Vec<Arc<dyn Layer>> {
            self.layers
                .iter()
                .map(|l| Arc::clone(l) as Arc<dyn Layer>)
                .collect()
        }
    }
}
