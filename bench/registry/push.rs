//! `make bench` (registry): push of a 1 GiB OCI image to a loopback
//! registry with cogpack vs `skopeo copy` of the same OCI layout, measured
//! in the same run against fresh registries; then a no-op re-push.
//!
//! Run: `cargo bench --bench registry_push` (needs docker-registry and
//! skopeo). Size override: `COGPACK_BENCH_PUSH_BYTES`. Prints a summary on
//! stderr and one JSON object on stdout.

#[path = "../../tests/common/registry.rs"]
mod registry;

use cogpack::oci::{Blob, Digest, Image, Layer, media};
use cogpack::registry::{
    Client, ClientOptions, DockerConfig, NoProgress, Progress, Reference, UploadOptions,
};
use registry::Registry;
use registry::images::GeneratedReader;
use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

/// A layer stored as a file of an OCI layout.
struct FileLayer {
    path: PathBuf,
    digest: Digest,
    size: u64,
}

impl Blob for FileLayer {
    fn digest(&self) -> &Digest {
        &self.digest
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn media_type(&self) -> &str {
        media::OCI_LAYER_TAR
    }
    fn open(&self) -> std::io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(std::fs::File::open(&self.path)?))
    }
}

impl Layer for FileLayer {
    fn diff_id(&self) -> &Digest {
        &self.digest
    }
}

/// The image of an OCI layout written by [`write_layout`].
struct LayoutImage {
    manifest: Vec<u8>,
    config: Vec<u8>,
    layer: Arc<FileLayer>,
}

impl Image for LayoutImage {
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
        vec![self.layer.clone()]
    }
}

fn blob_path(layout: &Path, digest: &Digest) -> PathBuf {
    layout.join("blobs/sha256").join(digest.hex())
}

/// Writes an OCI layout with one generated layer of `size` bytes.
fn write_layout(layout: &Path, size: u64) -> LayoutImage {
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let temp = layout.join("layer.tmp");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&temp).unwrap());
    let mut hasher = Sha256::new();
    let mut reader = GeneratedReader::new(size, 7);
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        file.write_all(&buffer[..n]).unwrap();
    }
    file.flush().unwrap();
    drop(file);
    let layer_digest = Digest::from_sha256(hasher.finalize().into());
    let layer_path = blob_path(layout, &layer_digest);
    std::fs::rename(&temp, &layer_path).unwrap();

    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": {"run.cog.config": "{}"}},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]},
    }))
    .unwrap();
    let config_digest = Digest::of_bytes(&config);
    std::fs::write(blob_path(layout, &config_digest), &config).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "size": config.len(), "digest": config_digest.to_string()},
        "layers": [{"mediaType": media::OCI_LAYER_TAR, "size": size, "digest": layer_digest.to_string()}],
    }))
    .unwrap();
    let manifest_digest = Digest::of_bytes(&manifest);
    std::fs::write(blob_path(layout, &manifest_digest), &manifest).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": media::OCI_MANIFEST, "size": manifest.len(), "digest": manifest_digest.to_string(),
                       "annotations": {"org.opencontainers.image.ref.name": "bench"}}],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    LayoutImage {
        manifest,
        config,
        layer: Arc::new(FileLayer {
            path: layer_path,
            digest: layer_digest,
            size,
        }),
    }
}

fn skopeo_copy(layout: &Path, host: &str) -> f64 {
    let started = Instant::now();
    let status = Command::new("skopeo")
        // --preserve-digests: copy the layer as is (skopeo would otherwise
        // gzip an uncompressed layer, which is not the same work).
        .args([
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:bench", layout.display()))
        .arg(format!("docker://{host}/bench/skopeo:v1"))
        .status()
        .expect("skopeo must be installed");
    assert!(status.success(), "skopeo copy failed");
    started.elapsed().as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let size: u64 = std::env::var("COGPACK_BENCH_PUSH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30);
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let image = write_layout(&layout, size);

    let skopeo_registry = Registry::start();
    let skopeo_seconds = skopeo_copy(&layout, &skopeo_registry.host);
    drop(skopeo_registry);

    let registry = Registry::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = Client::new(ClientOptions {
        docker_config: Some(DockerConfig::load(&work.path().join("config.json")).unwrap()),
        ..Default::default()
    })
    .unwrap();
    let options = UploadOptions::from_env().unwrap();
    let progress: Arc<dyn Progress> = Arc::new(NoProgress);
    let target = Reference::parse(&format!("{}/bench/cogpack:v1", registry.host)).unwrap();
    let push = |label: &str| {
        let started = Instant::now();
        runtime
            .block_on(client.push_image(&target, &image, &options, &progress))
            .unwrap_or_else(|e| panic!("{label} push failed: {e}"));
        started.elapsed().as_secs_f64()
    };
    let cold_seconds = push("cold");
    let mark = registry.request_count();
    let noop_seconds = push("no-op");
    let noop_requests = registry.requests_since(mark);
    let non_head = noop_requests.iter().filter(|r| r.method != "HEAD").count();

    let mb = size as f64 / 1e6;
    eprintln!("registry push bench, {mb:.0} MB layer, loopback docker-registry");
    eprintln!(
        "  skopeo copy (OCI layout)  {skopeo_seconds:7.2} s  {:7.0} MB/s",
        mb / skopeo_seconds
    );
    eprintln!(
        "  cogpack push (cold)       {cold_seconds:7.2} s  {:7.0} MB/s  ratio {:.2} x skopeo (target <= 1.0)",
        mb / cold_seconds,
        cold_seconds / skopeo_seconds
    );
    eprintln!(
        "  cogpack push (no-op)      {noop_seconds:7.3} s  {} requests, {non_head} not HEAD  ratio {:.3} x cold (target <= 0.05)",
        noop_requests.len(),
        noop_seconds / cold_seconds
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "registry_push",
            "bytes": size,
            "skopeo_copy_s": skopeo_seconds,
            "cogpack_push_s": cold_seconds,
            "push_vs_skopeo": cold_seconds / skopeo_seconds,
            "noop_push_s": noop_seconds,
            "noop_vs_cold": noop_seconds / cold_seconds,
            "noop_requests": noop_requests.len(),
            "noop_non_head_requests": non_head,
        })
    );
}
