//! Push through a fault-injecting proxy in front of a real registry. Each
//! test asserts that its fault fired and that the pushed manifest's blobs
//! are all in the registry, verified, with no stray or partial blob.

#[path = "common/fault_proxy.rs"]
mod fault_proxy;
#[path = "common/registry.rs"]
mod registry;

use cogpack::oci::{Blob, Digest, Image};
use cogpack::registry::{
    Client, ClientOptions, DockerConfig, JsonProgress, NoProgress, Progress, Reference,
    RegistryError, RetryPolicy, UploadOptions,
};
use fault_proxy::{Fault, FaultProxy};
use registry::Registry;
use registry::images::{TestImage, TestLayer};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

const MIB: u64 = 1 << 20;

fn client(attempts: u32) -> (Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(ClientOptions {
        docker_config: Some(DockerConfig::load(&dir.path().join("config.json")).unwrap()),
        retry: RetryPolicy {
            attempts,
            initial_delay: Duration::from_millis(20),
            factor: 2.0,
            max_delay: Duration::from_millis(200),
        },
        ..Default::default()
    })
    .unwrap();
    (client, dir)
}

fn small_chunks() -> UploadOptions {
    UploadOptions {
        chunk_size: 4 * MIB,
        multipart_threshold: 8 * MIB,
        ..UploadOptions::default()
    }
}

fn image_with_big_layer(size: u64, seed: u64) -> TestImage {
    TestImage::new(
        &[("run.cog.config", "{}")],
        vec![
            TestLayer::generated(size, seed),
            TestLayer::tar_gz(&[("src/predict.py", b"fault test")]),
        ],
    )
}

/// Every blob of the manifest is in the registry and verifies (our reader
/// checks digest and size), and the storage holds no other blob.
async fn assert_complete_and_clean(registry: &Registry, target: &Reference, image: &TestImage) {
    let (direct, _dir) = client(1);
    let direct_ref = target.on_registry(&registry.host);
    let (_, fetched) = direct.get_manifest(&direct_ref).await.unwrap();
    assert_eq!(fetched.bytes, image.manifest);
    let mut expected = BTreeSet::from([image.digest(), Digest::of_bytes(&image.config)]);
    for layer in &image.layers {
        let descriptor = layer.descriptor();
        let bytes = direct
            .get_blob_bytes(&direct_ref, &descriptor)
            .await
            .unwrap();
        assert_eq!(bytes.len() as u64, layer.size());
        expected.insert(layer.digest().clone());
    }
    let stored = stored_blobs(&registry.root);
    assert_eq!(
        stored, expected,
        "no partial or stray blob in the registry storage"
    );
}

/// Digests of the blob data files in a registry's storage, each re-hashed.
fn stored_blobs(root: &std::path::Path) -> BTreeSet<Digest> {
    let blobs = root.join("docker/registry/v2/blobs/sha256");
    let mut found = BTreeSet::new();
    for prefix in std::fs::read_dir(blobs).unwrap() {
        for entry in std::fs::read_dir(prefix.unwrap().path()).unwrap() {
            let dir = entry.unwrap().path();
            let name = dir.file_name().unwrap().to_str().unwrap().to_string();
            let data = std::fs::read(dir.join("data")).unwrap();
            assert_eq!(
                Digest::of_bytes(&data).hex(),
                name,
                "stored blob {name} verifies"
            );
            found.insert(format!("sha256:{name}").parse().unwrap());
        }
    }
    found
}

fn quiet() -> Arc<dyn Progress> {
    Arc::new(NoProgress)
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_connection_reset_mid_chunk_twice_survived() {
    let registry = Registry::start();
    let proxy = FaultProxy::start(
        &registry.host,
        vec![Fault::ResetMidBody {
            method: "PATCH",
            after: MIB,
            times: 2,
        }],
    );
    let (client, _dir) = client(6);
    let image = image_with_big_layer(20 * MIB, 1);
    let target = Reference::parse(&format!("{}/user/model:reset", proxy.host)).unwrap();
    let progress = Arc::new(JsonProgress::new(Vec::new()));
    let reporter: Arc<dyn Progress> = progress.clone();
    client
        .push_image(&target, &image, &small_chunks(), &reporter)
        .await
        .unwrap();
    assert_eq!(proxy.fired(0), 2, "both resets fired");
    drop(reporter);
    let events = Arc::try_unwrap(progress).ok().unwrap().into_inner();
    let retries = String::from_utf8(events)
        .unwrap()
        .matches("\"event\":\"retry\"")
        .count();
    assert!(retries >= 2, "each reset led to a reported retry");
    assert_complete_and_clean(&registry, &target, &image).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_502_and_503_on_patch_survived() {
    let registry = Registry::start();
    let proxy = FaultProxy::start(
        &registry.host,
        vec![
            Fault::Status {
                method: "PATCH",
                status: 502,
                skip: 2,
                times: 1,
            },
            Fault::Status {
                method: "PATCH",
                status: 503,
                skip: 2,
                times: 1,
            },
        ],
    );
    let (client, _dir) = client(6);
    let image = image_with_big_layer(18 * MIB, 2);
    let target = Reference::parse(&format!("{}/user/model:5xx", proxy.host)).unwrap();
    client
        .push_image(&target, &image, &small_chunks(), &quiet())
        .await
        .unwrap();
    assert_eq!((proxy.fired(0), proxy.fired(1)), (1, 1));
    let forwarded_patch_bytes: u64 = proxy
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.fault.is_none())
        .map(|r| r.length)
        .sum();
    assert_eq!(
        forwarded_patch_bytes,
        18 * MIB,
        "the upload resumed where it stopped instead of restarting"
    );
    assert_complete_and_clean(&registry, &target, &image).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_413_above_3_mib_shrinks_chunks_and_survives() {
    let registry = Registry::start();
    let proxy = FaultProxy::start(&registry.host, vec![Fault::BodyLimit { max: 3 * MIB }]);
    let (client, _dir) = client(4);
    let image = TestImage::new(
        &[("run.cog.config", "{}")],
        vec![
            TestLayer::generated(20 * MIB, 3),
            TestLayer::generated(6 * MIB, 4),
        ],
    );
    let options = UploadOptions {
        chunk_size: 8 * MIB,
        multipart_threshold: 8 * MIB,
        ..UploadOptions::default()
    };
    let target = Reference::parse(&format!("{}/user/model:413", proxy.host)).unwrap();
    client
        .push_image(&target, &image, &options, &quiet())
        .await
        .unwrap();
    assert!(
        proxy.fired(0) >= 2,
        "the 8 MiB chunk and the 6 MiB single PUT were refused"
    );
    let accepted_bodies: Vec<u64> = proxy
        .requests()
        .iter()
        .filter(|r| r.fault.is_none() && (r.method == "PATCH" || r.method == "PUT"))
        .map(|r| r.length)
        .collect();
    assert!(
        accepted_bodies.iter().all(|&n| n <= 3 * MIB),
        "{accepted_bodies:?}"
    );
    assert_complete_and_clean(&registry, &target, &image).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_connection_cut_above_3_mib_shrinks_chunks_and_survives() {
    let registry = Registry::start();
    let proxy = FaultProxy::start(
        &registry.host,
        vec![Fault::BodyLimitAbrupt { max: 3 * MIB }],
    );
    let (client, _dir) = client(8);
    let image = TestImage::new(
        &[("run.cog.config", "{}")],
        vec![TestLayer::generated(12 * MIB, 10)],
    );
    let target = Reference::parse(&format!("{}/user/model:cut", proxy.host)).unwrap();
    client
        .push_image(&target, &image, &small_chunks(), &quiet())
        .await
        .unwrap();
    assert!(proxy.fired(0) >= 2, "oversized chunks were cut");
    assert_complete_and_clean(&registry, &target, &image).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_slow_responses_survived_for_push_and_pull() {
    let registry = Registry::start();
    let proxy = FaultProxy::start(
        &registry.host,
        vec![Fault::Slow {
            delay: Duration::from_millis(150),
        }],
    );
    let (client, _dir) = client(3);
    let image = image_with_big_layer(10 * MIB, 5);
    let target = Reference::parse(&format!("{}/user/model:slow", proxy.host)).unwrap();
    client
        .push_image(&target, &image, &small_chunks(), &quiet())
        .await
        .unwrap();
    let pulled = client
        .pull_shallow(&target, &cogpack::oci::Platform::linux_amd64())
        .await
        .unwrap();
    assert_eq!(pulled.config_bytes, image.config);
    assert!(
        proxy.requests().len() >= 6,
        "everything went through the slow proxy"
    );
    assert_complete_and_clean(&registry, &target, &image).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_503_on_manifest_put_survived() {
    let registry = Registry::start();
    let proxy = FaultProxy::start(
        &registry.host,
        vec![Fault::Status {
            method: "PUT",
            status: 503,
            skip: 0,
            times: 2,
        }],
    );
    let (client, _dir) = client(5);
    let image = image_with_big_layer(MIB, 6);
    let target = Reference::parse(&format!("{}/user/model:put", proxy.host)).unwrap();
    client
        .push_image(&target, &image, &small_chunks(), &quiet())
        .await
        .unwrap();
    assert_eq!(proxy.fired(0), 2);
    assert_complete_and_clean(&registry, &target, &image).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_persistent_502_gives_up_with_a_clear_error_and_no_blob() {
    let registry = Registry::start();
    let proxy = FaultProxy::start(
        &registry.host,
        vec![Fault::Status {
            method: "PATCH",
            status: 502,
            skip: 0,
            times: usize::MAX,
        }],
    );
    let (client, _dir) = client(3);
    let image = image_with_big_layer(12 * MIB, 7);
    let target = Reference::parse(&format!("{}/user/model:fail", proxy.host)).unwrap();
    let err = client
        .push_image(&target, &image, &small_chunks(), &quiet())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Http { status: 502, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("hint:"), "{err}");
    assert_eq!(proxy.fired(0), 3, "one PATCH per attempt");
    let big = image.layers[0].digest().clone();
    assert!(
        !stored_blobs(&registry.root).contains(&big),
        "no partial blob was committed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_local_blob_is_refused_before_commit() {
    let registry = Registry::start();
    let (client, _dir) = client(2);
    let honest = TestLayer::generated(9 * MIB, 8);
    let liar = LyingBlob {
        inner: TestLayer::generated(9 * MIB, 9),
        claimed: honest.digest().clone(),
    };
    let target = Reference::parse(&format!("{}/user/model:corrupt", registry.host)).unwrap();
    let err = client
        .push_blob(&target, Arc::new(liar), &small_chunks(), &quiet())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    let scope = cogpack::registry::auth::Scope::pull("user/model");
    assert!(
        !client
            .blob_exists(&target, honest.digest(), &scope)
            .await
            .unwrap()
    );
}

/// A blob whose bytes do not match the digest it claims.
struct LyingBlob {
    inner: TestLayer,
    claimed: Digest,
}

impl Blob for LyingBlob {
    fn digest(&self) -> &Digest {
        &self.claimed
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn media_type(&self) -> &str {
        self.inner.media_type()
    }
    fn open(&self) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        self.inner.open()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_run_in_parallel_but_never_above_the_concurrency_limit() {
    let registry = Registry::start();
    let proxy = FaultProxy::start(
        &registry.host,
        vec![Fault::Slow {
            delay: Duration::from_millis(100),
        }],
    );
    let (client, _dir) = client(2);
    let layers = (0..8)
        .map(|seed| TestLayer::generated(MIB, 100 + seed))
        .collect();
    let image = TestImage::new(&[("run.cog.config", "{}")], layers);
    let options = UploadOptions {
        concurrency: 3,
        ..small_chunks()
    };
    let target = Reference::parse(&format!("{}/user/model:parallel", proxy.host)).unwrap();
    client
        .push_image(&target, &image, &options, &quiet())
        .await
        .unwrap();
    assert_eq!(proxy.max_in_flight(), 3, "three blobs at a time, no more");
    assert_complete_and_clean(&registry, &target, &image).await;
}
