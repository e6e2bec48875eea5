//! Reading a base image from an OCI layout (`--base oci-layout:DIR[:tag]`)
//! and the config rules of image assembly.

use cogpack::layer::{Entry, LayerJob, LayerOptions, build_layers};
use cogpack::oci::image::{
    AddedLayer, BaseImage, ConfigAdditions, ImageSpec, assemble, store_index,
};
use cogpack::oci::layout::{read_base, write_layout};
use cogpack::oci::store::{Store, StoreError};
use cogpack::oci::{Image, media};
use serde_json::Value;
use std::fs;
use std::path::Path;

fn base_spec(store: &Store, labels: Vec<(String, String)>) -> ImageSpec {
    let built = build_layers(
        vec![LayerJob {
            entries: vec![Entry::file_bytes("etc/hostname", 0o644, b"base\n".to_vec())],
            cache_key: None,
        }],
        LayerOptions::default(),
        store,
    )
    .unwrap();
    ImageSpec {
        base: BaseImage::scratch(),
        layers: vec![AddedLayer {
            record: built[0].record.clone(),
            created_by: "base layer".into(),
            comment: Some("made by the test".into()),
        }],
        config: ConfigAdditions {
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cmd: Some(vec!["sh".into()]),
            labels,
            ..Default::default()
        },
        source_date_epoch: None,
    }
}

fn layout_with_base(dir: &Path) -> cogpack::oci::image::StoreImage {
    let store = Store::open(dir.join("s0")).unwrap();
    let image = assemble(&base_spec(&store, vec![("a".into(), "1".into())]), &store).unwrap();
    write_layout(&image, &dir.join("layout"), Some("v1")).unwrap();
    image
}

#[test]
fn a_base_from_a_layout_is_imported_verified_and_extended() {
    let tmp = tempfile::tempdir().unwrap();
    let base_image = layout_with_base(tmp.path());
    let store = Store::open(tmp.path().join("s1")).unwrap();
    let base = read_base(
        &format!("oci-layout:{}:v1", tmp.path().join("layout").display()),
        &store,
    )
    .unwrap();
    assert_eq!(base.layers.len(), 1);
    assert!(
        store.has_blob(&base.layers[0].digest),
        "base layer blob imported"
    );
    let last = base.last_layer().unwrap().unwrap();
    assert_eq!(last.0, 0);
    assert_eq!(&last.1, base_image.layers()[0].diff_id());

    let spec = ImageSpec {
        base,
        layers: vec![],
        config: ConfigAdditions {
            env: vec![
                ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
                ("X".into(), "1".into()),
            ],
            entrypoint: Some(vec!["/sbin/tini".into(), "--".into()]),
            workdir: Some("/src".into()),
            exposed_ports: vec!["5000/tcp".into()],
            labels: vec![("a".into(), "2".into()), ("b".into(), "3".into())],
            ..Default::default()
        },
        source_date_epoch: Some(86_400),
    };
    let image = assemble(&spec, &store).unwrap();
    let config: Value = serde_json::from_slice(image.config_bytes()).unwrap();
    let c = &config["config"];
    assert_eq!(
        c["Env"],
        serde_json::json!(["PATH=/usr/local/bin:/usr/bin:/bin", "X=1"])
    );
    assert!(
        c.get("Cmd").is_none(),
        "a new entrypoint without cmd clears the base cmd"
    );
    assert_eq!(c["WorkingDir"], "/src");
    assert_eq!(c["ExposedPorts"], serde_json::json!({"5000/tcp": {}}));
    assert_eq!(c["Labels"], serde_json::json!({"a": "2", "b": "3"}));
    assert_eq!(config["created"], "1970-01-02T00:00:00Z");
    let history = config["history"].as_array().unwrap();
    assert_eq!(history[0]["created_by"], "base layer");
    assert_eq!(history.last().unwrap()["empty_layer"], true);
    let manifest: Value = serde_json::from_slice(image.manifest_bytes()).unwrap();
    assert_eq!(manifest["mediaType"], media::OCI_MANIFEST);
    assert_eq!(manifest["config"]["mediaType"], media::OCI_CONFIG);
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);

    let (index, digest) = store_index(&[image.descriptor()], &store).unwrap();
    let parsed: Value = serde_json::from_slice(&index).unwrap();
    assert_eq!(parsed["manifests"][0]["platform"]["architecture"], "amd64");
    assert_eq!(store.read_blob(&digest).unwrap(), index);
}

#[test]
fn layout_errors_name_the_problem_and_corrupt_blobs_are_not_imported() {
    let tmp = tempfile::tempdir().unwrap();
    let base_image = layout_with_base(tmp.path());
    let layout = tmp.path().join("layout");
    let store = Store::open(tmp.path().join("s2")).unwrap();
    let err = read_base(&format!("{}:nope", layout.display()), &store)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no image tagged \"nope\""), "{err}");
    let err = read_base(&tmp.path().join("missing").display().to_string(), &store)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing/index.json") && err.contains("No such file"),
        "{err}"
    );

    let layer_digest = base_image.layers()[0].digest().clone();
    let blob = layout.join("blobs/sha256").join(layer_digest.hex());
    fs::write(&blob, b"tampered").unwrap();
    let err = read_base(&format!("{}:v1", layout.display()), &store).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            cogpack::oci::image::ImageError::Store(StoreError::DigestMismatch { .. })
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!("content for {layer_digest}")),
        "{text}"
    );
    assert!(!store.has_blob(&layer_digest));
    assert_eq!(fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
}

#[test]
fn a_base_whose_config_and_manifest_disagree_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let mut spec = base_spec(&store, vec![]);
    let mut base = BaseImage::scratch();
    base.layers = vec![spec.layers[0].record.descriptor()];
    spec.base = base;
    let err = assemble(&spec, &store).unwrap_err().to_string();
    assert!(
        err.contains("1 layers in the manifest but 0 rootfs diff_ids in the config"),
        "{err}"
    );
}
