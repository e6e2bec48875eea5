//! A chunked upload of a 1 GiB blob (generated on the fly) to a real
//! registry keeps this process's peak RSS under 200 MB. The only test in this
//! binary, so the peak belongs to it.

#[path = "common/registry.rs"]
mod registry;

use cogpack::oci::Blob;
use cogpack::registry::{
    Client, ClientOptions, DockerConfig, NoProgress, Progress, Reference, UploadOptions,
};
use registry::Registry;
use registry::images::{TestImage, TestLayer};
use std::sync::Arc;
use std::time::Instant;

const GIB: u64 = 1 << 30;

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_upload_of_1_gib_keeps_peak_rss_under_200_mb() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(ClientOptions {
        docker_config: Some(DockerConfig::load(&dir.path().join("config.json")).unwrap()),
        ..Default::default()
    })
    .unwrap();
    let image = TestImage::new(
        &[("run.cog.config", "{}")],
        vec![TestLayer::generated(GIB, 42)],
    );
    let target = Reference::parse(&format!("{}/user/large:v1", registry.host)).unwrap();
    let progress: Arc<dyn Progress> = Arc::new(NoProgress);
    let options = UploadOptions::default();
    assert!(
        GIB > options.multipart_threshold,
        "the default settings chunk this blob"
    );

    let started = Instant::now();
    client
        .push_image(&target, &image, &options, &progress)
        .await
        .unwrap();
    let elapsed = started.elapsed();

    let patches: Vec<_> = registry
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(
        patches.len() as u64,
        GIB.div_ceil(options.chunk_size),
        "{patches:?}"
    );
    let layer = &image.layers[0];
    let stored = registry
        .root
        .join("docker/registry/v2/blobs/sha256")
        .join(&layer.digest().hex()[..2])
        .join(layer.digest().hex())
        .join("data");
    assert_eq!(std::fs::metadata(&stored).unwrap().len(), GIB);

    let peak = peak_rss_bytes();
    eprintln!(
        "1 GiB chunked push: {:.2} s ({:.0} MB/s), peak RSS {} MB",
        elapsed.as_secs_f64(),
        GIB as f64 / 1e6 / elapsed.as_secs_f64(),
        peak / 1_000_000
    );
    assert!(peak < 200_000_000, "peak RSS {peak} bytes");
}
