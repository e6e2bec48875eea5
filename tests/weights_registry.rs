//! End to end against a real registry (Debian `docker-registry` on
//! 127.0.0.1): import small files and a ≥ 200 MB file, push, status, skopeo
//! round trip of every manifest, bundle index, blob deletion ⇒ incomplete,
//! pull into an empty store, corrupt store files on push and pull.

#[path = "weights_support.rs"]
mod support;

use cogpack::config::{WeightDecl, WeightSource};
use cogpack::oci::Digest;
use cogpack::weights::artifact::{WeightArtifact, weight_tag};
use cogpack::weights::drift::PlanStatus;
use cogpack::weights::import::{ImportOptions, import_weights};
use cogpack::weights::index::{build_bundle_index, push_bundle_index, verify_weights_pushed};
use cogpack::weights::lockfile::LockFile;
use cogpack::weights::pull::{PullOptions, pull_weights};
use cogpack::weights::push::push_weights;
use cogpack::weights::registry::WeightRegistry;
use cogpack::weights::source::SourceOptions;
use cogpack::weights::spec::WeightSpec;
use cogpack::weights::status::{LayerState, WeightState, weights_status};
use cogpack::weights::store::WeightStore;
use std::path::Path;
use std::process::Command;
use support::{TestRegistry, file_digest, write_random_file, write_text};

const BIG: u64 = 210 * 1024 * 1024;
const LARGE_TEXT: u64 = 65 * 1024 * 1024;

fn decl(name: &str, dir: &str, include: &[&str], exclude: &[&str]) -> WeightDecl {
    WeightDecl {
        name: name.into(),
        target: format!("/src/weights/{name}"),
        sources: vec![WeightSource {
            uri: dir.into(),
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        }],
        source_is_list: false,
    }
}

fn make_project(root: &Path) -> Vec<WeightSpec> {
    write_text(&root.join("weights/tok/config.json"), "{\"hidden\": 384}");
    write_text(
        &root.join("weights/tok/1_Pooling/config.json"),
        "{\"mean\": true}",
    );
    write_text(&root.join("weights/tok/vocab.txt"), &"token\n".repeat(5000));
    write_text(&root.join("weights/tok/README.md"), "not shipped");
    write_text(&root.join("weights/tok/.cog/ignored"), "cog state");
    write_random_file(&root.join("weights/big/model.safetensors"), BIG, 1);
    write_text(&root.join("weights/big/config.json"), "{\"layers\": 12}");
    let text: String = (0..LARGE_TEXT / 16).map(|i| format!("{i:015}\n")).collect();
    write_text(&root.join("weights/big/merges.txt"), &text);
    WeightSpec::from_decls(&[
        decl("tok", "weights/tok", &[], &["README.md"]),
        decl(
            "big",
            "./weights/big",
            &["*.safetensors", "*.json", "*.txt"],
            &[],
        ),
    ])
    .unwrap()
}

fn options(project: &Path, store: &Path) -> ImportOptions {
    ImportOptions {
        project_dir: project.to_path_buf(),
        sources: SourceOptions::new(project),
        store: WeightStore::new(store),
        names: Vec::new(),
        dry_run: false,
    }
}

fn skopeo_raw(host: &str, reference: &str) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{host}/{reference}"))
        .output()
        .expect("skopeo is installed (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A tiny image manifest pushed as `cog-image.<tag>` so an index can be built.
fn push_image<R: WeightRegistry>(registry: &R, tag: &str) {
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#;
    let digest = Digest::of_bytes(config);
    let desc = cogpack::oci::Descriptor::new(
        "application/vnd.oci.image.config.v1+json",
        config.len() as u64,
        digest.clone(),
    );
    let open = || -> std::io::Result<Box<dyn std::io::Read + Send>> {
        Ok(Box::new(std::io::Cursor::new(config.to_vec())))
    };
    registry.push_blob(&desc, &open).unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{digest}"}},"layers":[]}}"#,
        config.len()
    );
    registry
        .put_manifest(
            tag,
            manifest.as_bytes(),
            "application/vnd.oci.image.manifest.v1+json",
        )
        .unwrap();
}

#[test]
fn import_push_status_pull_and_bundle_index_against_a_real_registry() {
    let project = tempfile::tempdir().unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let specs = make_project(project.path());
    let opts = options(project.path(), store_dir.path());

    // Import: everything new, lockfile written, layers planned as cog does.
    let report = import_weights(&specs, &opts).unwrap();
    assert_eq!(report.plan_lines(), ["+ tok (new)", "+ big (new)"]);
    assert!(report.lockfile_written);
    let lock = LockFile::load(project.path()).unwrap().unwrap();
    assert_eq!(
        lock.envelope_format,
        cogpack::weights::envelope::cogpack_envelope().to_string()
    );
    let tok = lock.entry("tok").unwrap();
    let tok_paths: Vec<&str> = tok.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        tok_paths,
        ["1_Pooling/config.json", "config.json", "vocab.txt"]
    );
    assert_eq!(tok.layers.len(), 1);
    let big = lock.entry("big").unwrap();
    assert_eq!(big.layers.len(), 3);
    let raw = big
        .layers
        .iter()
        .find(|l| l.media_type == "application/vnd.oci.image.layer.v1.tar")
        .unwrap();
    assert_eq!(raw.size, 512 * BIG.div_ceil(512) + 2560);
    let model = project.path().join("weights/big/model.safetensors");
    assert_eq!(
        big.files
            .iter()
            .find(|f| f.path == "model.safetensors")
            .unwrap()
            .digest,
        file_digest(&model)
    );

    // The raw layer digest equals Go archive/tar's bytes for the same file.
    let tools = tempfile::tempdir().unwrap();
    let gotar = support::go_tar_tool(tools.path());
    let go_out = tools.path().join("layer.tar");
    assert!(
        Command::new(&gotar)
            .arg(&go_out)
            .arg(format!("model.safetensors={}", model.display()))
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(file_digest(&go_out), raw.digest);
    std::fs::remove_file(&go_out).unwrap();

    // Re-import: unchanged, same raw digests, lockfile untouched.
    let before = std::fs::read(project.path().join("weights.lock")).unwrap();
    let again = import_weights(&specs, &opts).unwrap();
    assert_eq!(
        again.plan_lines(),
        ["= tok (unchanged)", "= big (unchanged)"]
    );
    assert!(!again.lockfile_written);
    assert_eq!(
        std::fs::read(project.path().join("weights.lock")).unwrap(),
        before
    );

    // Push, then status = ready.
    let registry = TestRegistry::start();
    let client = registry.client("acme/model");
    let pushed = push_weights(&client, &lock, &opts.store, &[], 5).unwrap();
    assert_eq!(pushed.len(), 2);
    assert_eq!(pushed[1].layers_uploaded, 3);
    assert_eq!(pushed[1].tag, weight_tag("big", Some(&big.set_digest)));
    let status = weights_status(&specs, Some(&lock), &client);
    assert!(status.all_ready(), "{:?}", status.lines());
    let json: serde_json::Value = serde_json::from_slice(&status.to_json()).unwrap();
    assert_eq!(json["weights"][1]["status"], "ready");
    assert_eq!(json["weights"][1]["layerCount"], 3);
    assert_eq!(json["weights"][1]["layers"][0]["status"], "ready");

    // skopeo reads back exactly our manifest bytes, by tag and by digest.
    for entry in &lock.weights {
        let artifact = WeightArtifact::of_entry(entry);
        let tag = weight_tag(&entry.name, Some(&entry.set_digest));
        assert_eq!(
            skopeo_raw(&registry.host(), &format!("acme/model:{tag}")),
            artifact.manifest
        );
        assert_eq!(
            skopeo_raw(&registry.host(), &format!("acme/model@{}", entry.digest)),
            artifact.manifest
        );
    }

    // Bundle index: image + weights with artifactType, platform unknown, annotations.
    push_image(&client, "cog-image.v1");
    let weight_descs = verify_weights_pushed(&client, &lock).unwrap();
    let index_digest = push_bundle_index(&client, "v1", "cog-image.v1", &weight_descs).unwrap();
    let index_bytes = skopeo_raw(&registry.host(), "acme/model:v1");
    assert_eq!(Digest::of_bytes(&index_bytes), index_digest);
    let image = client.head_manifest("cog-image.v1").unwrap().unwrap();
    assert_eq!(index_bytes, build_bundle_index(&image, &weight_descs));
    let index: serde_json::Value = serde_json::from_slice(&index_bytes).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(index["manifests"][0]["platform"]["os"], "linux");
    for (i, entry) in lock.weights.iter().enumerate() {
        let w = &index["manifests"][i + 1];
        assert_eq!(w["artifactType"], "application/vnd.cog.weight.v1");
        assert_eq!(
            w["platform"],
            serde_json::json!({"architecture": "unknown", "os": "unknown"})
        );
        assert_eq!(w["digest"], entry.digest.to_string());
        assert_eq!(w["annotations"]["run.cog.weight.name"], entry.name.as_str());
        assert_eq!(
            w["annotations"]["run.cog.weight.set-digest"],
            entry.set_digest.to_string()
        );
        assert_eq!(
            w["annotations"]["run.cog.weight.size.uncompressed"],
            entry.size.to_string()
        );
        assert!(w["annotations"].get("run.cog.weight.target").is_none());
    }

    // Pull into an empty store restores every file byte for byte.
    let empty = tempfile::tempdir().unwrap();
    let fresh = WeightStore::new(empty.path());
    let pulled = pull_weights(&client, &lock, &fresh, &PullOptions::default()).unwrap();
    assert_eq!(pulled.iter().map(|p| p.restored_files).sum::<usize>(), 6);
    for (entry, dir) in [(tok, "weights/tok"), (big, "weights/big")] {
        for f in &entry.files {
            let original = std::fs::read(project.path().join(dir).join(&f.path)).unwrap();
            let restored = std::fs::read(fresh.path_of(&f.digest)).unwrap();
            assert!(original == restored, "{} differs after pull", f.path);
        }
    }
    let warm = pull_weights(&client, &lock, &fresh, &PullOptions::default()).unwrap();
    assert!(
        warm.iter()
            .all(|p| p.restored_files == 0 && p.layers_fetched == 0)
    );

    // Deleting one blob in the registry storage ⇒ incomplete; a push repairs it.
    let bundle = tok.layers[0].digest.clone();
    registry.delete_blob_data(&bundle);
    let status = weights_status(&specs, Some(&lock), &client);
    assert_eq!(status.weights[0].status, WeightState::Incomplete);
    assert_eq!(status.weights[0].layers[0].status, LayerState::Missing);
    assert_eq!(status.weights[1].status, WeightState::Ready);
    let repaired = push_weights(&client, &lock, &opts.store, &["tok".into()], 5).unwrap();
    assert_eq!(repaired[0].layers_uploaded, 1);
    assert!(weights_status(&specs, Some(&lock), &client).all_ready());

    // A corrupt store file is never pushed: the upload fails, nothing is committed.
    registry.delete_blob_data(&bundle);
    let vocab = tok.files.iter().find(|f| f.path == "vocab.txt").unwrap();
    corrupt(&opts.store.path_of(&vocab.digest));
    let err = push_weights(&client, &lock, &opts.store, &["tok".into()], 5)
        .unwrap_err()
        .to_string();
    assert!(err.contains("uploading layer"), "{err}");
    assert_eq!(client.head_blob(&bundle).unwrap(), None);

    // Pull with verification finds the corrupt file and restores it from the registry copy of big's
    // layers; tok's layer is gone remotely, so its restore fails with a clear error.
    let err = pull_weights(
        &client,
        &lock,
        &opts.store,
        &PullOptions {
            names: vec!["tok".into()],
            verify_cached: true,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("fetching layer"), "{err}");
    assert!(
        !opts.store.contains(&vocab.digest, None),
        "corrupt file must be removed"
    );
    let model_digest = &big
        .files
        .iter()
        .find(|f| f.path == "config.json")
        .unwrap()
        .digest;
    corrupt(&opts.store.path_of(model_digest));
    let fixed = pull_weights(
        &client,
        &lock,
        &opts.store,
        &PullOptions {
            names: vec!["big".into()],
            verify_cached: true,
        },
    )
    .unwrap();
    assert_eq!(fixed[0].corrupt_files, ["config.json"]);
    assert!(opts.store.verify(model_digest).unwrap());

    // Unknown names are all reported.
    let err = pull_weights(
        &client,
        &lock,
        &opts.store,
        &PullOptions {
            names: vec!["nope".into(), "nada".into()],
            verify_cached: false,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("nope") && err.contains("nada"), "{err}");
}

fn corrupt(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn status_reports_pending_stale_and_orphaned() {
    let project = tempfile::tempdir().unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    write_text(&project.path().join("w/a.json"), "{}");
    let specs = WeightSpec::from_decls(&[decl("a", "w", &[], &[])]).unwrap();
    import_weights(&specs, &options(project.path(), store_dir.path())).unwrap();
    let lock = LockFile::load(project.path()).unwrap().unwrap();
    let registry = TestRegistry::start();
    let client = registry.client("acme/status");

    let status = weights_status(&specs, Some(&lock), &client);
    assert_eq!(status.weights[0].status, WeightState::Incomplete);

    let mut moved = decl("a", "w", &[], &[]);
    moved.target = "/src/other".into();
    let specs2 = WeightSpec::from_decls(&[moved, decl("b", "w", &[], &[])]).unwrap();
    let status = weights_status(&specs2, Some(&lock), &client);
    let states: Vec<WeightState> = status.weights.iter().map(|w| w.status).collect();
    assert_eq!(states, [WeightState::Stale, WeightState::Pending]);
    assert!(status.weights[0].details[0].contains("target: /src/weights/a → /src/other"));

    let only_b = WeightSpec::from_decls(&[decl("b", "w", &[], &[])]).unwrap();
    let status = weights_status(&only_b, Some(&lock), &client);
    let states: Vec<WeightState> = status.weights.iter().map(|w| w.status).collect();
    assert_eq!(states, [WeightState::Pending, WeightState::Orphaned]);
    let json = String::from_utf8(status.to_json()).unwrap();
    assert!(json.starts_with(r#"{"weights":[{"name":"b","target":"/src/weights/b","status":"pending","source":{"uri":"file://./w"}}"#), "{json}");
}

#[test]
fn import_plan_statuses_follow_config_and_upstream_changes() {
    let project = tempfile::tempdir().unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    write_text(&project.path().join("w/a.json"), "{}");
    write_text(&project.path().join("w/b.bin"), "bin");
    let opts = options(project.path(), store_dir.path());
    let specs = WeightSpec::from_decls(&[decl("a", "w", &["*.json"], &[])]).unwrap();
    import_weights(&specs, &opts).unwrap();
    let first = LockFile::load(project.path()).unwrap().unwrap();

    // An excluded file changes: the fingerprint (over the unfiltered set) changes.
    write_text(&project.path().join("w/b.bin"), "bin2");
    let dry = ImportOptions {
        dry_run: true,
        ..opts.clone()
    };
    let plan = import_weights(&specs, &dry).unwrap();
    assert_eq!(plan.weights[0].status, PlanStatus::UpstreamChanged);
    assert_eq!(
        LockFile::load(project.path()).unwrap().unwrap(),
        first,
        "dry run writes nothing"
    );
    let report = import_weights(&specs, &opts).unwrap();
    assert_eq!(report.weights[0].status, PlanStatus::UpstreamChanged);
    let second = LockFile::load(project.path()).unwrap().unwrap();
    assert_ne!(
        second.weights[0].sources[0].fingerprint,
        first.weights[0].sources[0].fingerprint
    );
    assert_eq!(
        second.weights[0].digest, first.weights[0].digest,
        "shipped files unchanged"
    );

    let widened = WeightSpec::from_decls(&[decl("a", "w", &["*.json", "*.bin"], &[])]).unwrap();
    let report = import_weights(&widened, &opts).unwrap();
    assert_eq!(report.plan_lines(), ["~ a (config-changed)"]);
    assert_eq!(report.weights[0].entry.as_ref().unwrap().files.len(), 2);

    // Pruning: a weight dropped from cog.yaml leaves the lockfile.
    let renamed = WeightSpec::from_decls(&[decl("c", "w", &[], &[])]).unwrap();
    let report = import_weights(&renamed, &opts).unwrap();
    assert_eq!(report.pruned, ["a"]);
    let names: Vec<String> = LockFile::load(project.path())
        .unwrap()
        .unwrap()
        .weights
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["c"]);
}
