//! The local store: verified writes, the layer cache, the image index,
//! gc, and locking between concurrent users.

use cogpack::layer::{Entry, LayerJob, LayerOptions, build_cached};
use cogpack::oci::image::{
    AddedLayer, BaseImage, ConfigAdditions, ImageSpec, StoreImage, assemble,
};
use cogpack::oci::store::{Store, StoreError};
use cogpack::oci::{Digest, Image};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

fn job(name: &str, content: &str, key: Option<&str>) -> LayerJob {
    LayerJob {
        entries: vec![Entry::file_bytes(name, 0o644, content.as_bytes().to_vec())],
        cache_key: key.map(str::to_string),
    }
}

fn image_with(store: &Store, layer_text: &str) -> StoreImage {
    let built = build_cached(
        job("app/x.txt", layer_text, None),
        LayerOptions::default(),
        store,
    )
    .unwrap();
    let spec = ImageSpec {
        base: BaseImage::scratch(),
        layers: vec![AddedLayer {
            record: built.record,
            created_by: "COPY x".into(),
            comment: None,
        }],
        config: ConfigAdditions::default(),
        source_date_epoch: None,
    };
    assemble(&spec, store).unwrap()
}

fn blob_count(root: &Path) -> usize {
    std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .count()
}

#[test]
fn content_with_the_wrong_digest_is_never_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let claimed = Digest::of_bytes(b"what we asked for");
    let err = store
        .put_verified(&b"what we got"[..], &claimed)
        .unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }));
    assert!(err.to_string().contains(&format!(
        "content for {claimed} has digest {}",
        Digest::of_bytes(b"what we got")
    )));
    assert!(!store.has_blob(&claimed));
    assert_eq!(blob_count(tmp.path()), 0);
    assert_eq!(std::fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
    let size = store
        .put_verified(&b"what we asked for"[..], &claimed)
        .unwrap();
    assert_eq!(size, 17);
    assert_eq!(store.read_blob(&claimed).unwrap(), b"what we asked for");
}

#[test]
fn layer_cache_skips_unchanged_inputs_and_survives_lost_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let opts = LayerOptions::default();
    let first = build_cached(job("a", "one", Some("step-a")), opts, &store).unwrap();
    assert!(!first.cached);
    let again = build_cached(job("a", "one", Some("step-a")), opts, &store).unwrap();
    assert!(again.cached);
    assert_eq!(again.record, first.record);
    let other_opts = LayerOptions { mtime: 5, ..opts };
    let rebuilt = build_cached(job("a", "one", Some("step-a")), other_opts, &store).unwrap();
    assert!(!rebuilt.cached, "options are part of the key");
    std::fs::remove_file(store.blob_path(&first.record.digest)).unwrap();
    let after_loss = build_cached(job("a", "one", Some("step-a")), opts, &store).unwrap();
    assert!(
        !after_loss.cached,
        "a cache entry whose blob is gone is a miss"
    );
    assert_eq!(after_loss.record, first.record);
}

#[test]
fn named_images_round_trip_and_gc_keeps_only_what_they_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let kept = image_with(&store, "kept");
    let dropped = image_with(&store, "dropped");
    build_cached(
        job("c", "cached only", Some("k")),
        LayerOptions::default(),
        &store,
    )
    .unwrap();
    store.tag_image("model:latest", &kept.descriptor()).unwrap();
    let loaded = StoreImage::load_named(&store, "model:latest").unwrap();
    assert_eq!(loaded.manifest_bytes(), kept.manifest_bytes());
    assert_eq!(loaded.layers()[0].diff_id(), kept.layers()[0].diff_id());
    let err = StoreImage::load_named(&store, "nope")
        .unwrap_err()
        .to_string();
    assert!(err.contains("no image named \"nope\""), "{err}");
    assert_eq!(blob_count(tmp.path()), 7);
    let cache_key = "k\ntar-v1;gzip-blocks-1m-6;mtime=0";
    assert!(store.cached_layer(cache_key).unwrap().is_some());
    let report = store.gc().unwrap();
    assert_eq!(
        report.kept_blobs, 3,
        "manifest, config, layer of the named image"
    );
    assert_eq!(report.removed_blobs, 4);
    assert!(store.has_blob(&kept.digest()));
    assert!(!store.has_blob(&dropped.digest()));
    assert!(
        store.cached_layer(cache_key).unwrap().is_none(),
        "gc drops the unreferenced cached layer"
    );
    assert!(StoreImage::load_named(&store, "model:latest").is_ok());
}

#[test]
fn gc_keeps_pinned_downloads_and_dry_run_lists_what_it_removes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let pinned = store.put_bytes(b"a static tini binary").unwrap();
    let loose = store.put_bytes(b"nobody needs this").unwrap();
    store
        .pin_blob(&pinned, "download of http://127.0.0.1/tini")
        .unwrap();
    let listed = store.unreferenced_blobs().unwrap();
    assert_eq!(listed, vec![(loose.clone(), 17)]);
    let report = store.gc().unwrap();
    assert_eq!(
        report.removed, listed,
        "gc removes exactly what the dry run listed"
    );
    assert_eq!(report.kept_blobs, 1);
    assert!(store.has_blob(&pinned), "a pinned download survives gc");
    assert!(!store.has_blob(&loose));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("pins").join(pinned.hex())).unwrap(),
        "download of http://127.0.0.1/tini"
    );
}

#[test]
fn gc_waits_for_running_builds() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let session = store.session().unwrap();
    let (tx, rx) = mpsc::channel();
    let other = Store::open(tmp.path()).unwrap();
    let handle = std::thread::spawn(move || {
        other.gc().unwrap();
        tx.send(()).unwrap();
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(400)).is_err(),
        "gc ran during a build"
    );
    drop(session);
    rx.recv_timeout(Duration::from_secs(10))
        .expect("gc finishes once the build ends");
    handle.join().unwrap();
}

#[test]
fn concurrent_writers_do_not_lose_index_entries_or_corrupt_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let root = root.clone();
            std::thread::spawn(move || {
                let store = Store::open(&root).unwrap();
                let _s = store.session().unwrap();
                let img = image_with(&store, "shared content");
                store
                    .tag_image(&format!("img{i}"), &img.descriptor())
                    .unwrap();
                img.digest()
            })
        })
        .collect();
    let digests: Vec<Digest> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
    let store = Store::open(&root).unwrap();
    assert_eq!(store.images().unwrap().len(), 8);
    for entry in std::fs::read_dir(root.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        assert_eq!(
            Digest::of_bytes(&bytes).hex(),
            entry.file_name().to_str().unwrap()
        );
    }
}

#[test]
fn default_root_follows_xdg_then_home() {
    assert_eq!(
        Store::default_root(Some(Path::new("/x/cache")), Some(Path::new("/home/u"))),
        Some("/x/cache/cogpack".into())
    );
    assert_eq!(
        Store::default_root(Some(Path::new("relative")), Some(Path::new("/home/u"))),
        Some("/home/u/.cache/cogpack".into())
    );
    assert_eq!(Store::default_root(None, None), None);
}
