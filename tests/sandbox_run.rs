//! The sandbox over the real Debian stand-in base: layers unpacked into the
//! store, commands run in namespaces over overlayfs, and the upper dir read
//! back as layer entries (whiteouts included).

mod common;

use cogpack::layer::{Entry, EntryKind};
use cogpack::oci::layout::read_base;
use cogpack::oci::store::Store;
use cogpack::sandbox::{
    self, LayerRef, RunSpec, SandboxError, StoreBlobs, ensure_layers, run_command, upper_entries,
};
use std::path::PathBuf;

/// A store holding the python:3.11-slim stand-in and its layer refs.
fn base_store() -> (tempfile::TempDir, Store, Vec<LayerRef>, Vec<String>) {
    let dir = common::scratch_dir("sandbox-store");
    let store = Store::open(dir.path().join("store")).unwrap();
    let layout = common::base_image::stand_in_layout();
    let base = read_base(&format!("{}:python-3.11-slim", layout.display()), &store).unwrap();
    let layers = base
        .layers
        .iter()
        .zip(base.diff_ids().unwrap())
        .map(|(descriptor, diff_id)| LayerRef {
            descriptor: descriptor.clone(),
            diff_id,
        })
        .collect();
    let config: serde_json::Value = serde_json::from_slice(&base.config).unwrap();
    let env = serde_json::from_value(config["config"]["Env"].clone()).unwrap();
    (dir, store, layers, env)
}

fn lower_dirs(store: &Store, layers: &[LayerRef]) -> Vec<PathBuf> {
    ensure_layers(store, layers, &StoreBlobs(store.clone()), &|_| {})
        .unwrap()
        .0
}

fn spec(command: &str, env: &[String], lower: Vec<PathBuf>) -> RunSpec {
    RunSpec {
        step_name: "run-1".to_string(),
        command: command.to_string(),
        env: env.to_vec(),
        workdir: "/".to_string(),
        lower_dirs: lower,
        secrets: Vec::new(),
        cache_dirs: Vec::new(),
    }
}

fn find<'a>(entries: &'a [Entry], path: &str) -> Option<&'a Entry> {
    entries.iter().find(|e| e.path == path)
}

#[test]
fn unpack_is_done_once_and_reused() {
    let (_dir, store, layers, _) = base_store();
    let (dirs, unpacked) =
        ensure_layers(&store, &layers, &StoreBlobs(store.clone()), &|_| {}).unwrap();
    assert_eq!(unpacked, layers.len());
    assert!(dirs[0].join("usr/bin/python3.11").is_file());
    let (again, unpacked) =
        ensure_layers(&store, &layers, &StoreBlobs(store.clone()), &|_| {}).unwrap();
    assert_eq!(unpacked, 0, "second use must not unpack again");
    assert_eq!(dirs, again);
}

#[test]
fn run_creates_and_deletes_files_as_layer_entries() {
    let (_dir, store, layers, env) = base_store();
    sandbox::check_available(&sandbox::scratch_dir(&store)).unwrap();
    let lower = lower_dirs(&store, &layers);
    let mut lines = Vec::new();
    let command = "echo hello > /usr/local/share/hello.txt && chown 1234:5678 /usr/local/share/hello.txt \
        && mv /usr/share/debconf /usr/share/debconf-moved && rm /etc/debian_version \
        && echo pid=$$ && ls /proc/self >/dev/null && touch /tmp/scratch && python3 -c 'print(6*7)'";
    let run = run_command(
        &spec(command, &env, lower.clone()),
        &sandbox::rootfs::rootfs_root(&store),
        &sandbox::scratch_dir(&store),
        &mut |line| lines.push(line.to_string()),
    )
    .unwrap();
    assert!(lines.contains(&"[run-1] pid=1".to_string()), "{lines:?}");
    assert!(lines.contains(&"[run-1] 42".to_string()), "{lines:?}");
    let diff = upper_entries(&run.upper(), &[], &lower).unwrap();
    let hello = find(&diff.entries, "usr/local/share/hello.txt").expect("new file in layer");
    assert!(matches!(hello.kind, EntryKind::File { size: 6, .. }));
    assert_eq!((hello.uid, hello.gid), (1234, 5678), "owner kept");
    let moved = find(&diff.entries, "usr/share/debconf-moved/confmodule.sh")
        .expect("a renamed directory is complete in the layer");
    assert!(matches!(moved.kind, EntryKind::File { .. }));
    assert!(matches!(
        find(&diff.entries, "usr/share/debconf").map(|e| &e.kind),
        Some(EntryKind::Whiteout)
    ));
    let gone = find(&diff.entries, "etc/debian_version").expect("whiteout in layer");
    assert!(matches!(gone.kind, EntryKind::Whiteout));
    assert!(
        diff.entries
            .iter()
            .all(|e| !e.path.starts_with("tmp") && !e.path.starts_with("proc")),
        "mounts leaked: {:?}",
        diff.entries.iter().map(|e| &e.path).collect::<Vec<_>>()
    );
}

#[test]
fn failing_command_reports_exit_code_and_output() {
    let (_dir, store, layers, env) = base_store();
    let lower = lower_dirs(&store, &layers);
    let scratch = sandbox::scratch_dir(&store);
    let error = run_command(
        &spec("echo about to fail; echo oops >&2; exit 7", &env, lower),
        &sandbox::rootfs::rootfs_root(&store),
        &scratch,
        &mut |_| {},
    )
    .err()
    .expect("command fails");
    match &error {
        SandboxError::CommandFailed { code, tail, .. } => {
            assert_eq!(*code, 7);
            assert_eq!(tail, &["about to fail".to_string(), "oops".to_string()]);
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(error.to_string().contains("exited with code 7"));
    let leftovers: Vec<_> = std::fs::read_dir(&scratch).unwrap().collect();
    assert!(leftovers.is_empty(), "scratch dirs left: {leftovers:?}");
}

#[test]
fn opaque_directory_survives_layer_round_trip() {
    let (_dir, store, mut layers, env) = base_store();
    let lower = lower_dirs(&store, &layers);
    let root = sandbox::rootfs::rootfs_root(&store);
    let scratch = sandbox::scratch_dir(&store);
    let replace = "rm -rf /etc/apt && mkdir /etc/apt && echo fresh > /etc/apt/only-file";
    let run = run_command(
        &spec(replace, &env, lower.clone()),
        &root,
        &scratch,
        &mut |_| {},
    )
    .unwrap();
    let diff = upper_entries(&run.upper(), &[], &lower).unwrap();
    let marker = find(&diff.entries, "etc/apt/.wh..wh..opq").expect("opaque marker");
    assert!(matches!(marker.kind, EntryKind::Whiteout));
    let options = cogpack::layer::LayerOptions::default();
    let record = cogpack::layer::build_layer(diff.entries, options, &store).unwrap();
    drop(run);
    layers.push(LayerRef {
        descriptor: record.descriptor(),
        diff_id: record.diff_id.clone(),
    });
    let (stacked, unpacked) =
        ensure_layers(&store, &layers, &StoreBlobs(store.clone()), &|_| {}).unwrap();
    assert_eq!(unpacked, 1, "only the new layer is unpacked");
    let mut lines = Vec::new();
    run_command(
        &spec("ls -A /etc/apt", &env, stacked),
        &root,
        &scratch,
        &mut |line| lines.push(line.to_string()),
    )
    .unwrap();
    assert_eq!(lines, vec!["[run-1] only-file".to_string()]);
}

/// Runs `true` over the base and returns how long unpack + run took.
fn timed_trivial_run(store: &Store, layers: &[LayerRef], env: &[String]) -> std::time::Duration {
    let started = std::time::Instant::now();
    let lower = lower_dirs(store, layers);
    let mut lines = Vec::new();
    run_command(
        &spec("echo ran", env, lower),
        &sandbox::rootfs::rootfs_root(store),
        &sandbox::scratch_dir(store),
        &mut |line| lines.push(line.to_string()),
    )
    .unwrap();
    assert_eq!(lines, vec!["[run-1] ran".to_string()]);
    started.elapsed()
}

#[test]
fn trivial_step_cold_warm_and_by_hand_timings() {
    let (dir, store, layers, env) = base_store();
    let cold = timed_trivial_run(&store, &layers, &env);
    let warm = timed_trivial_run(&store, &layers, &env);
    let by_hand = {
        let started = std::time::Instant::now();
        let rootfs = dir.path().join("by-hand");
        std::fs::create_dir(&rootfs).unwrap();
        for layer in &layers {
            let blob = store.blob_path(&layer.descriptor.digest);
            common::run_ok(
                std::process::Command::new("tar")
                    .arg("-xf")
                    .arg(&blob)
                    .arg("-C")
                    .arg(&rootfs),
            );
        }
        let out = common::run_ok(
            std::process::Command::new("unshare")
                .args(["--mount", "--pid", "--fork", "chroot"])
                .arg(&rootfs)
                .args(["/bin/sh", "-c", "echo ran"]),
        );
        assert_eq!(out, b"ran\n");
        started.elapsed()
    };
    eprintln!(
        "trivial run step: cold {:.3}s, warm {:.3}s, by hand (tar -x + unshare + chroot) {:.3}s",
        cold.as_secs_f64(),
        warm.as_secs_f64(),
        by_hand.as_secs_f64()
    );
    assert!(warm < cold, "warm {warm:?} should beat cold {cold:?}");
}
