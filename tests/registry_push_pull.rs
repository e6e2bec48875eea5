//! Push and pull against a real registry (Debian `docker-registry`), checked
//! with our client and with skopeo.

#[path = "common/registry.rs"]
mod registry;

use cogpack::oci::{Digest, Image, Platform, media};
use cogpack::registry::{
    BundleWeight, Client, ClientOptions, DockerConfig, NoProgress, Progress, Reference,
    RegistryError, RegistrySettings, RemoteLayer, RetryPolicy, UploadOptions,
};
use registry::images::{TestImage, TestLayer};
use registry::{LoggedRequest, Registry};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

fn client_with(settings: RegistrySettings) -> (Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let docker_config = DockerConfig::load(&dir.path().join("config.json")).unwrap();
    let client = Client::new(ClientOptions {
        settings,
        docker_config: Some(docker_config),
        retry: RetryPolicy {
            attempts: 4,
            initial_delay: Duration::from_millis(50),
            factor: 2.0,
            max_delay: Duration::from_millis(500),
        },
    })
    .unwrap();
    (client, dir)
}

fn client() -> (Client, tempfile::TempDir) {
    client_with(RegistrySettings::default())
}

fn quiet() -> Arc<dyn Progress> {
    Arc::new(NoProgress)
}

fn reference(registry: &Registry, path: &str) -> Reference {
    Reference::parse(&format!("{}/{path}", registry.host)).unwrap()
}

fn sample_image(marker: &str) -> TestImage {
    TestImage::new(
        &[
            (
                "run.cog.config",
                r#"{"build":{"python_version":"3.11"},"predict":"predict.py:Predictor"}"#,
            ),
            ("run.cog.version", "cogpack-test"),
            ("run.cog.openapi_schema", r#"{"openapi":"3.0.2"}"#),
        ],
        vec![
            TestLayer::tar_gz(&[("src/predict.py", marker.as_bytes())]),
            TestLayer::tar_gz(&[("etc/base.txt", b"base layer")]),
        ],
    )
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let output = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo must be installed");
    assert!(
        output.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn count(requests: &[LoggedRequest], method: &str) -> usize {
    requests.iter().filter(|r| r.method == method).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn push_then_pull_back_is_byte_identical_with_our_client_and_skopeo() {
    let registry = Registry::start();
    let (client, _dir) = client();
    let image = sample_image("print('hello')");
    let target = reference(&registry, "user/model:v1");
    let pushed = client
        .push_image(&target, &image, &UploadOptions::default(), &quiet())
        .await
        .unwrap();
    assert_eq!(pushed.digest, image.digest());

    let (_, fetched) = client.get_manifest(&target).await.unwrap();
    assert_eq!(fetched.bytes, image.manifest);
    assert_eq!(fetched.media_type, media::OCI_MANIFEST);
    for layer in &image.layers {
        let descriptor = cogpack::oci::Blob::descriptor(layer.as_ref());
        let bytes = client.get_blob_bytes(&target, &descriptor).await.unwrap();
        assert_eq!(bytes, layer.bytes());
    }
    let pulled = client
        .pull_shallow(&target, &Platform::linux_amd64())
        .await
        .unwrap();
    assert_eq!(pulled.config_bytes, image.config);
    assert_eq!(pulled.diff_ids.len(), 2);

    let docker_ref = format!("docker://{target}");
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &docker_ref]);
    assert_eq!(raw, image.manifest, "skopeo sees our exact manifest bytes");
    let inspect: serde_json::Value =
        serde_json::from_slice(&skopeo(&["inspect", "--tls-verify=false", &docker_ref])).unwrap();
    assert_eq!(inspect["Labels"]["run.cog.version"], "cogpack-test");
    assert_eq!(inspect["Digest"], image.digest().to_string());

    let layout = tempfile::tempdir().unwrap();
    let oci_ref = format!("oci:{}:v1", layout.path().display());
    skopeo(&["copy", "--src-tls-verify=false", &docker_ref, &oci_ref]);
    let blob_path = |d: &Digest| layout.path().join("blobs/sha256").join(d.hex());
    assert_eq!(
        std::fs::read(blob_path(&image.digest())).unwrap(),
        image.manifest
    );
    assert_eq!(
        std::fs::read(blob_path(&Digest::of_bytes(&image.config))).unwrap(),
        image.config
    );
    for layer in &image.layers {
        assert_eq!(
            std::fs::read(blob_path(cogpack::oci::Blob::digest(layer.as_ref()))).unwrap(),
            layer.bytes()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn second_push_of_unchanged_image_sends_only_heads() {
    let registry = Registry::start();
    let (client, _dir) = client();
    let image = sample_image("unchanged");
    let target = reference(&registry, "user/model:same");
    client
        .push_image(&target, &image, &UploadOptions::default(), &quiet())
        .await
        .unwrap();
    let first = registry.requests();
    assert!(count(&first, "PUT") >= 3, "first push uploads: {first:?}");

    let mark = registry.request_count();
    client
        .push_image(&target, &image, &UploadOptions::default(), &quiet())
        .await
        .unwrap();
    let second = registry.requests_since(mark);
    assert!(!second.is_empty());
    assert!(
        second.iter().all(|r| r.method == "HEAD"),
        "a no-op push must only send HEADs, got {second:?}"
    );
    assert_eq!(
        count(&second, "HEAD"),
        4,
        "2 layers + config + manifest: {second:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_repository_mount_from_the_base_repository() {
    let registry = Registry::start();
    let (client, _dir) = client();
    let base = TestImage::new(
        &[],
        vec![TestLayer::tar_gz(&[("usr/bin/python", b"#!python")])],
    );
    let base_ref = reference(&registry, "library/python:3.11-slim");
    client
        .push_image(&base_ref, &base, &UploadOptions::default(), &quiet())
        .await
        .unwrap();

    let base_layer = (*base.layers[0]).clone();
    let model = TestImage::new(
        &[("run.cog.config", "{}")],
        vec![
            base_layer.clone(),
            TestLayer::tar_gz(&[("src/predict.py", b"model code")]),
        ],
    );
    let options = UploadOptions {
        mount_from: vec!["library/python".into()],
        ..UploadOptions::default()
    };
    let mark = registry.request_count();
    client
        .push_image(
            &reference(&registry, "user/model:latest"),
            &model,
            &options,
            &quiet(),
        )
        .await
        .unwrap();
    let requests = registry.requests_since(mark);
    let mount = format!(
        "mount={}&from=library/python",
        cogpack::oci::Blob::digest(&base_layer)
    );
    let mounted: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains(&mount))
        .collect();
    assert_eq!(mounted.len(), 1, "{requests:?}");
    assert_eq!(
        mounted[0].status, 201,
        "the registry mounted the base layer"
    );
    let blob_uploads: Vec<_> = requests
        .iter()
        .filter(|r| {
            r.method == "PUT"
                && r.path
                    .contains(cogpack::oci::Blob::digest(&base_layer).hex())
        })
        .collect();
    assert!(
        blob_uploads.is_empty(),
        "the base layer was not uploaded: {requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shallow_pull_resolves_linux_amd64_from_an_index_without_fetching_layers() {
    let registry = Registry::start();
    let (client, _dir) = client();
    let amd64 = sample_image("amd64");
    let arm64 = sample_image("arm64");
    let repo = reference(&registry, "library/python:multi");
    let amd64_desc = client
        .push_image(
            &repo.with_tag("amd64"),
            &amd64,
            &UploadOptions::default(),
            &quiet(),
        )
        .await
        .unwrap();
    let arm64_desc = client
        .push_image(
            &repo.with_tag("arm64"),
            &arm64,
            &UploadOptions::default(),
            &quiet(),
        )
        .await
        .unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": [
            {"mediaType": media::OCI_MANIFEST, "size": arm64_desc.size, "digest": arm64_desc.digest.to_string(),
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
            {"mediaType": media::OCI_MANIFEST, "size": amd64_desc.size, "digest": amd64_desc.digest.to_string(),
             "platform": {"architecture": "amd64", "os": "linux"}},
        ]
    });
    client
        .push_manifest(
            &repo,
            media::OCI_INDEX,
            &serde_json::to_vec(&index).unwrap(),
            &quiet(),
        )
        .await
        .unwrap();

    let mark = registry.request_count();
    let pulled = client
        .pull_shallow(&repo, &Platform::linux_amd64())
        .await
        .unwrap();
    assert_eq!(pulled.manifest.digest, amd64.digest());
    assert_eq!(pulled.config_bytes, amd64.config);
    assert_eq!(pulled.source.digest, Some(amd64.digest()));
    let requests = registry.requests_since(mark);
    let blob_gets: Vec<_> = requests
        .iter()
        .filter(|r| r.path.contains("/blobs/"))
        .collect();
    assert_eq!(
        blob_gets.len(),
        1,
        "only the config blob is fetched: {requests:?}"
    );
    assert!(
        blob_gets[0]
            .path
            .ends_with(Digest::of_bytes(&amd64.config).hex())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mirrors_serve_docker_hub_and_r8_references() {
    let registry = Registry::start();
    let (plain, _dir) = client();
    let image = sample_image("mirrored base");
    plain
        .push_image(
            &reference(&registry, "library/python:3.11-slim"),
            &image,
            &UploadOptions::default(),
            &quiet(),
        )
        .await
        .unwrap();
    plain
        .push_image(
            &reference(&registry, "cog-base:python3.11"),
            &image,
            &UploadOptions::default(),
            &quiet(),
        )
        .await
        .unwrap();

    let mut settings = RegistrySettings::default();
    settings
        .add_mirror_mapping(&format!("docker.io={}", registry.host), "test")
        .unwrap();
    settings
        .add_mirror_mapping(&format!("r8.im={}", registry.host), "test")
        .unwrap();
    let (mirrored, _dir2) = client_with(settings);
    let hub = Reference::parse("python:3.11-slim").unwrap();
    assert_eq!(hub.registry, "index.docker.io");
    let pulled = mirrored
        .pull_shallow(&hub, &Platform::linux_amd64())
        .await
        .unwrap();
    assert_eq!(pulled.manifest.digest, image.digest());
    assert_eq!(pulled.source.registry, registry.host);
    let cog_base = Reference::parse("r8.im/cog-base:python3.11").unwrap();
    assert!(mirrored.manifest_exists(&cog_base).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_exists_reports_presence_and_absence() {
    let registry = Registry::start();
    let (client, _dir) = client();
    let target = reference(&registry, "user/model:here");
    client
        .push_image(
            &target,
            &sample_image("x"),
            &UploadOptions::default(),
            &quiet(),
        )
        .await
        .unwrap();
    assert!(client.manifest_exists(&target).await.unwrap());
    assert!(
        !client
            .manifest_exists(&target.with_tag("missing"))
            .await
            .unwrap()
    );
    assert!(
        !client
            .manifest_exists(&reference(&registry, "no/such:repo"))
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bundle_push_checks_weights_then_writes_image_and_index() {
    let registry = Registry::start();
    let (client, _dir) = client();
    let target = reference(&registry, "user/bundle:v2");
    let weight_artifact = TestImage::new(
        &[],
        vec![TestLayer::tar_gz(&[("weights/model.bin", b"0123")])],
    );
    let weight_desc = client
        .push_image(
            &target.with_tag("cog-weight.model.abc"),
            &weight_artifact,
            &UploadOptions::default(),
            &quiet(),
        )
        .await
        .unwrap();
    let weights = vec![BundleWeight {
        name: "model".into(),
        manifest_digest: weight_desc.digest.clone(),
        set_digest: format!("sha256:{}", "5".repeat(64)),
        size_uncompressed: 4,
    }];

    let missing = vec![BundleWeight {
        manifest_digest: Digest::of_bytes(b"not pushed"),
        ..weights[0].clone()
    }];
    let image = sample_image("bundle");
    let mark = registry.request_count();
    let err = client
        .push_bundle(
            &target,
            &image,
            &missing,
            &UploadOptions::default(),
            &quiet(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("weights import"), "{err}");
    assert!(
        registry
            .requests_since(mark)
            .iter()
            .all(|r| r.method == "HEAD"),
        "nothing is pushed before the weights are verified"
    );

    let pushed = client
        .push_bundle(
            &target,
            &image,
            &weights,
            &UploadOptions::default(),
            &quiet(),
        )
        .await
        .unwrap();
    assert_eq!(pushed.image.digest, image.digest());
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{target}"),
    ]);
    assert_eq!(Digest::of_bytes(&raw), pushed.index.digest);
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(index["manifests"][0]["digest"], image.digest().to_string());
    assert_eq!(index["manifests"][0]["platform"]["architecture"], "amd64");
    assert_eq!(
        index["manifests"][1]["artifactType"],
        media::COG_WEIGHT_ARTIFACT
    );
    assert_eq!(index["manifests"][1]["platform"]["os"], "unknown");
    assert_eq!(
        index["manifests"][1]["annotations"]["run.cog.weight.size.uncompressed"],
        "4"
    );
    assert!(
        client
            .manifest_exists(&target.with_tag("cog-image.v2"))
            .await
            .unwrap()
    );

    let model = client.inspect(&target).await.unwrap();
    assert_eq!(model.format, "bundle");
    assert_eq!(model.weights.len(), 1);
    assert_eq!(model.cog_version.as_deref(), Some("cogpack-test"));
}

#[tokio::test(flavor = "multi_thread")]
async fn inspect_reads_cog_labels_and_rejects_plain_images() {
    let registry = Registry::start();
    let (client, _dir) = client();
    let model_ref = reference(&registry, "user/model:cog");
    client
        .push_image(
            &model_ref,
            &sample_image("cog"),
            &UploadOptions::default(),
            &quiet(),
        )
        .await
        .unwrap();
    let model = client.inspect(&model_ref).await.unwrap();
    assert_eq!(model.format, "image");
    assert_eq!(model.config["predict"], "predict.py:Predictor");
    assert_eq!(model.schema.as_ref().unwrap()["openapi"], "3.0.2");

    let plain_ref = reference(&registry, "library/debian:12");
    let plain = TestImage::new(
        &[("maintainer", "x")],
        vec![TestLayer::tar_gz(&[("etc/os-release", b"debian")])],
    );
    client
        .push_image(&plain_ref, &plain, &UploadOptions::default(), &quiet())
        .await
        .unwrap();
    let err = client.inspect(&plain_ref).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotCogModel { .. }), "{err}");
    assert!(err.to_string().contains("image is not a Cog model"));
}

#[tokio::test(flavor = "multi_thread")]
async fn base_layers_stream_from_another_registry_without_disk() {
    let source_registry = Registry::start();
    let target_registry = Registry::start();
    let (client, _dir) = client();
    let base = TestImage::new(
        &[],
        vec![TestLayer::tar_gz(&[("usr/lib/libbase.so", &[7u8; 50_000])])],
    );
    let base_ref = reference(&source_registry, "library/python:3.11-slim");
    client
        .push_image(&base_ref, &base, &UploadOptions::default(), &quiet())
        .await
        .unwrap();

    let pulled = client
        .pull_shallow(&base_ref, &Platform::linux_amd64())
        .await
        .unwrap();
    let remote = RemoteLayer::new(
        client.clone(),
        pulled.source.clone(),
        pulled.layers[0].clone(),
        pulled.diff_ids[0].clone(),
    );
    let own = TestLayer::tar_gz(&[("src/predict.py", b"code")]);
    let remote_image = RemoteImage {
        base: Arc::new(remote),
        own: Arc::new(own.clone()),
        inner: TestImage::new(
            &[("run.cog.config", "{}")],
            vec![(*base.layers[0]).clone(), own],
        ),
    };
    let target = reference(&target_registry, "user/model:v1");
    client
        .push_image(&target, &remote_image, &UploadOptions::default(), &quiet())
        .await
        .unwrap();
    let copied = client
        .get_blob_bytes(&target, &pulled.layers[0])
        .await
        .unwrap();
    assert_eq!(copied, base.layers[0].bytes());
    let source_gets = source_registry
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.contains(pulled.layers[0].digest.hex()))
        .count();
    assert_eq!(
        source_gets, 1,
        "the base layer was read from the source registry once"
    );
}

/// An image whose first layer lives in another registry.
struct RemoteImage {
    base: Arc<RemoteLayer>,
    own: Arc<TestLayer>,
    inner: TestImage,
}

impl Image for RemoteImage {
    fn manifest_bytes(&self) -> &[u8] {
        &self.inner.manifest
    }
    fn manifest_media_type(&self) -> &str {
        media::OCI_MANIFEST
    }
    fn config_bytes(&self) -> &[u8] {
        &self.inner.config
    }
    fn layers(&self) -> Vec<Arc<dyn cogpack::oci::Layer>> {
        vec![self.base.clone(), self.own.clone()]
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_schema2_bases_and_manifest_lists_are_read_as_such() {
    let registry = Registry::start();
    let (client, _dir) = client();
    let oci = sample_image("docker base");
    let repo = reference(&registry, "nvidia/cuda:12.1-docker");
    for layer in &oci.layers {
        client
            .push_blob(&repo, layer.clone(), &UploadOptions::default(), &quiet())
            .await
            .unwrap();
    }
    let config = cogpack::registry::BytesBlob::new(media::DOCKER_CONFIG, oci.config.clone());
    client
        .push_blob(&repo, Arc::new(config), &UploadOptions::default(), &quiet())
        .await
        .unwrap();
    let layers: Vec<serde_json::Value> = oci
        .layers
        .iter()
        .map(|l| {
            let d = cogpack::oci::Blob::descriptor(l.as_ref());
            serde_json::json!({"mediaType": media::DOCKER_LAYER_GZIP, "size": d.size, "digest": d.digest.to_string()})
        })
        .collect();
    let manifest = serde_json::to_vec_pretty(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::DOCKER_MANIFEST,
        "config": {"mediaType": media::DOCKER_CONFIG, "size": oci.config.len(), "digest": Digest::of_bytes(&oci.config).to_string()},
        "layers": layers,
    }))
    .unwrap();
    let single = repo.with_tag("single");
    client
        .push_manifest(&single, media::DOCKER_MANIFEST, &manifest, &quiet())
        .await
        .unwrap();
    let list = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::DOCKER_MANIFEST_LIST,
        "manifests": [{"mediaType": media::DOCKER_MANIFEST, "size": manifest.len(), "digest": Digest::of_bytes(&manifest).to_string(),
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }))
    .unwrap();
    client
        .push_manifest(&repo, media::DOCKER_MANIFEST_LIST, &list, &quiet())
        .await
        .unwrap();

    for source in [&single, &repo] {
        let pulled = client
            .pull_shallow(source, &Platform::linux_amd64())
            .await
            .unwrap();
        assert_eq!(pulled.manifest.media_type, media::DOCKER_MANIFEST);
        assert_eq!(
            pulled.manifest.bytes, manifest,
            "schema2 bytes kept exactly"
        );
        assert_eq!(pulled.config.media_type, media::DOCKER_CONFIG);
        assert_eq!(pulled.layers[0].media_type, media::DOCKER_LAYER_GZIP);
        assert_eq!(pulled.config_bytes, oci.config);
    }
}
