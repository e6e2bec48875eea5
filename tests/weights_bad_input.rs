//! Bad input and edge cases of the weights pipeline: every failure is a
//! clear error (what, where, hint), never a panic or a silent success.

#[path = "weights_support.rs"]
mod support;

use cogpack::config::{WeightDecl, WeightSource};
use cogpack::weights::drift::{Drift, check_drift, find_drift};
use cogpack::weights::envelope;
use cogpack::weights::import::{ImportOptions, import_weights};
use cogpack::weights::lockfile::LockFile;
use cogpack::weights::source::SourceOptions;
use cogpack::weights::spec::WeightSpec;
use cogpack::weights::store::WeightStore;
use std::path::Path;
use support::{write_random_file, write_text};

fn decl(name: &str, target: &str, uris: &[&str]) -> WeightDecl {
    WeightDecl {
        name: name.into(),
        target: target.into(),
        sources: uris
            .iter()
            .map(|u| WeightSource {
                uri: u.to_string(),
                include: vec![],
                exclude: vec![],
            })
            .collect(),
        source_is_list: uris.len() > 1,
    }
}

fn options(project: &Path, store: &Path) -> ImportOptions {
    ImportOptions {
        project_dir: project.to_path_buf(),
        sources: SourceOptions::new(project),
        store: WeightStore::new(store),
        names: vec![],
        dry_run: false,
    }
}

fn import_err(project: &Path, decls: &[WeightDecl]) -> String {
    let store = tempfile::tempdir().unwrap();
    let specs = WeightSpec::from_decls(decls).unwrap();
    import_weights(&specs, &options(project, store.path()))
        .unwrap_err()
        .to_string()
}

#[test]
fn overlapping_targets_are_rejected() {
    let err = WeightSpec::from_decls(&[
        decl("a", "/src/weights", &["w"]),
        decl("b", "/src/weights/b/", &["w"]),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("overlaps") && err.contains("weights \"b\""),
        "{err}"
    );
    let err = WeightSpec::from_decls(&[decl("a", "relative", &["w"])])
        .unwrap_err()
        .to_string();
    assert!(err.contains("absolute"), "{err}");
    assert!(
        WeightSpec::from_decls(&[decl("a", "/src/w", &["w"]), decl("b", "/src/w2", &["w"])])
            .is_ok()
    );
}

#[test]
fn bad_source_uris_are_rejected_with_the_weight_name() {
    for (uri, what) in [
        ("../outside", "escapes"),
        ("s3://bucket/x", "unsupported scheme"),
        ("hf://only-org", "org/name"),
        ("https://user:pw@host/x.bin", "credentials"),
    ] {
        let err = WeightSpec::from_decls(&[decl("w", "/src/w", &[uri])])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(what) && err.contains("weights \"w\"") && !err.contains("pw@"),
            "{uri}: {err}"
        );
    }
}

#[test]
fn zero_files_after_filters_is_an_error_listing_the_patterns() {
    let project = tempfile::tempdir().unwrap();
    write_text(&project.path().join("w/a.json"), "{}");
    let mut d = decl("w", "/src/w", &["w"]);
    d.sources[0].include = vec!["*.safetensors".into()];
    let err = import_err(project.path(), &[d]);
    assert!(
        err.contains("no files left") && err.contains("*.safetensors"),
        "{err}"
    );
}

#[test]
fn missing_source_directory_is_reported_with_a_hint() {
    let project = tempfile::tempdir().unwrap();
    let err = import_err(project.path(), &[decl("w", "/src/w", &["nowhere"])]);
    assert!(
        err.contains("weight \"w\"") && err.contains("nowhere") && err.contains("hint"),
        "{err}"
    );
}

#[test]
fn symlinks_and_special_files_in_a_source_are_rejected() {
    let project = tempfile::tempdir().unwrap();
    write_text(&project.path().join("w/real.json"), "{}");
    std::os::unix::fs::symlink("real.json", project.path().join("w/link.json")).unwrap();
    let err = import_err(project.path(), &[decl("w", "/src/w", &["w"])]);
    assert!(
        err.contains("link.json") && err.contains("symbolic link"),
        "{err}"
    );

    let project = tempfile::tempdir().unwrap();
    write_text(&project.path().join("w/real.json"), "{}");
    let fifo = project.path().join("w/pipe");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let err = import_err(project.path(), &[decl("w", "/src/w", &["w"])]);
    assert!(err.contains("pipe") && err.contains("FIFO"), "{err}");
}

#[test]
fn a_file_changing_during_import_is_detected() {
    let project = tempfile::tempdir().unwrap();
    let path = project.path().join("w/model.safetensors");
    write_random_file(&path, 96 << 20, 3);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, path) = (stop.clone(), path.clone());
        std::thread::spawn(move || {
            use std::io::{Seek, SeekFrom, Write};
            let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                file.seek(SeekFrom::Start((n * 4096) % (90 << 20))).unwrap();
                file.write_all(&n.to_le_bytes()).unwrap();
                n += 1;
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        })
    };
    let err = import_err(project.path(), &[decl("w", "/src/w", &["w"])]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        err.contains("changed") && err.contains("model.safetensors"),
        "{err}"
    );
}

#[test]
fn unknown_lockfile_version_stops_import() {
    let project = tempfile::tempdir().unwrap();
    write_text(&project.path().join("w/a.json"), "{}");
    write_text(
        &project.path().join("weights.lock"),
        r#"{"version": 7, "envelopeFormat": "x", "weights": []}"#,
    );
    let err = import_err(project.path(), &[decl("w", "/src/w", &["w"])]);
    assert!(
        err.contains("unsupported lockfile version 7") && err.contains("weights.lock"),
        "{err}"
    );
}

#[test]
fn unknown_weight_names_are_all_reported() {
    let project = tempfile::tempdir().unwrap();
    write_text(&project.path().join("w/a.json"), "{}");
    let store = tempfile::tempdir().unwrap();
    let specs = WeightSpec::from_decls(&[decl("w", "/src/w", &["w"])]).unwrap();
    let mut opts = options(project.path(), store.path());
    opts.names = vec!["x".into(), "y".into()];
    let err = import_weights(&specs, &opts).unwrap_err().to_string();
    assert!(err.contains("\"x\"") && err.contains("\"y\""), "{err}");
}

#[test]
fn later_sources_override_earlier_ones_by_path() {
    let project = tempfile::tempdir().unwrap();
    write_text(&project.path().join("a/config.json"), "from a");
    write_text(&project.path().join("a/only_a.txt"), "a");
    write_text(&project.path().join("b/config.json"), "from b");
    let store = tempfile::tempdir().unwrap();
    let specs = WeightSpec::from_decls(&[decl("w", "/src/w", &["a", "b"])]).unwrap();
    let report = import_weights(&specs, &options(project.path(), store.path())).unwrap();
    assert!(
        report.weights[0]
            .notices
            .iter()
            .any(|n| n.contains("config.json") && n.contains("overrides"))
    );
    let entry = report.weights[0].entry.clone().unwrap();
    let config = entry
        .files
        .iter()
        .find(|f| f.path == "config.json")
        .unwrap();
    assert_eq!(config.digest, cogpack::oci::Digest::of_bytes(b"from b"));
    assert_eq!(entry.files.len(), 2);
    assert_eq!(entry.sources.len(), 2);
}

#[test]
fn a_cog_written_lockfile_gets_its_gzip_layers_recomputed() {
    let project = tempfile::tempdir().unwrap();
    write_text(&project.path().join("w/config.json"), "{\"a\": 1}");
    write_random_file(&project.path().join("w/model.safetensors"), 65 << 20, 5);
    let store = tempfile::tempdir().unwrap();
    let specs = WeightSpec::from_decls(&[decl("w", "/src/w", &["w"])]).unwrap();
    let opts = options(project.path(), store.path());
    import_weights(&specs, &opts).unwrap();
    let ours = LockFile::load(project.path()).unwrap().unwrap();

    // Pretend cog wrote it: cog's envelope and a gzip digest only Go produces.
    let mut cogs = ours.clone();
    cogs.envelope_format = envelope::cog_envelope().to_string();
    let go_gzip: cogpack::oci::Digest =
        "sha256:7ff2b72da0831598b639d05ed0e1ea64f2623cc5055245501b2c50f63a28cd0a"
            .parse()
            .unwrap();
    let entry = &mut cogs.weights[0];
    let gz = entry
        .layers
        .iter()
        .position(|l| l.media_type.ends_with("+gzip"))
        .unwrap();
    let ours_gzip = entry.layers[gz].digest.clone();
    entry.layers[gz].digest = go_gzip.clone();
    for f in entry.files.iter_mut().filter(|f| f.layer == ours_gzip) {
        f.layer = go_gzip.clone();
    }
    cogs.save(project.path()).unwrap();

    let report = import_weights(&specs, &opts).unwrap();
    assert_eq!(
        report.weights[0].layers_reused, 1,
        "only the raw tar layer is trusted"
    );
    let after = LockFile::load(project.path()).unwrap().unwrap();
    assert_eq!(
        after.envelope_format,
        envelope::cogpack_envelope().to_string()
    );
    assert!(after.weights[0].layers.iter().all(|l| l.digest != go_gzip));
    assert_eq!(after.weights[0].digest, ours.weights[0].digest);
}

#[test]
fn drift_gate_lists_pending_changed_and_orphaned_weights() {
    let project = tempfile::tempdir().unwrap();
    write_text(&project.path().join("w/a.json"), "{}");
    let store = tempfile::tempdir().unwrap();
    let specs = WeightSpec::from_decls(&[decl("a", "/src/a", &["w"])]).unwrap();
    assert!(
        check_drift(&specs, None)
            .unwrap_err()
            .to_string()
            .contains("a: pending")
    );
    import_weights(&specs, &options(project.path(), store.path())).unwrap();
    let lock = LockFile::load(project.path()).unwrap().unwrap();
    check_drift(&specs, Some(&lock)).unwrap();

    let changed =
        WeightSpec::from_decls(&[decl("a", "/src/new", &["w"]), decl("b", "/src/b", &["w"])])
            .unwrap();
    let err = check_drift(&changed, Some(&lock)).unwrap_err().to_string();
    assert!(
        err.starts_with("weights.lock is out of sync with cog.yaml:\n"),
        "{err}"
    );
    assert!(
        err.contains("a: config changed (target: /src/a → /src/new)"),
        "{err}"
    );
    assert!(err.contains("b: pending"), "{err}");
    assert!(
        err.ends_with("Run 'cogpack weights import' to update."),
        "{err}"
    );

    let other = WeightSpec::from_decls(&[decl("c", "/src/c", &["w"])]).unwrap();
    let drift = find_drift(&other, Some(&lock));
    assert_eq!(
        drift,
        [
            Drift::Pending { name: "c".into() },
            Drift::Orphaned { name: "a".into() }
        ]
    );
    assert!(
        check_drift(&[], Some(&lock)).is_ok(),
        "no weights declared: no gate"
    );
}

#[test]
fn empty_files_and_deep_paths_are_packed() {
    let project = tempfile::tempdir().unwrap();
    write_text(&project.path().join("w/empty.txt"), "");
    write_text(
        &project
            .path()
            .join(format!("w/{}/x.json", "deep/".repeat(30))),
        "{}",
    );
    let store = tempfile::tempdir().unwrap();
    let specs = WeightSpec::from_decls(&[decl("w", "/src/w", &["w"])]).unwrap();
    let report = import_weights(&specs, &options(project.path(), store.path())).unwrap();
    let entry = report.weights[0].entry.clone().unwrap();
    assert_eq!(entry.files.len(), 2);
    assert_eq!(entry.size, 2);
}

#[test]
fn a_changed_large_file_gets_a_freshly_computed_layer_digest() {
    let project = tempfile::tempdir().unwrap();
    let model = project.path().join("w/model.safetensors");
    write_random_file(&model, 65 << 20, 11);
    let store = tempfile::tempdir().unwrap();
    let specs = WeightSpec::from_decls(&[decl("w", "/src/w", &["w"])]).unwrap();
    let opts = options(project.path(), store.path());
    import_weights(&specs, &opts).unwrap();
    let before = LockFile::load(project.path()).unwrap().unwrap();

    write_random_file(&model, 65 << 20, 12);
    let report = import_weights(&specs, &opts).unwrap();
    assert_eq!(
        report.weights[0].status,
        cogpack::weights::drift::PlanStatus::UpstreamChanged
    );
    assert_eq!(report.weights[0].layers_reused, 0);
    let after = LockFile::load(project.path()).unwrap().unwrap();
    assert_ne!(
        after.weights[0].layers[0].digest,
        before.weights[0].layers[0].digest
    );

    // A clean import of the same bytes (no lockfile, empty store) agrees.
    let clean = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(clean.path().join("w")).unwrap();
    std::fs::copy(&model, clean.path().join("w/model.safetensors")).unwrap();
    let clean_store = tempfile::tempdir().unwrap();
    import_weights(&specs, &options(clean.path(), clean_store.path())).unwrap();
    let fresh = LockFile::load(clean.path()).unwrap().unwrap();
    assert_eq!(fresh.weights[0].layers, after.weights[0].layers);
    assert_eq!(fresh.weights[0].digest, after.weights[0].digest);
}

#[test]
fn importing_with_no_weights_declared_is_an_error() {
    let project = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    let err = import_weights(&[], &options(project.path(), store.path()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no weights declared") && err.contains("hint"),
        "{err}"
    );
    assert!(!project.path().join("weights.lock").exists());
}
