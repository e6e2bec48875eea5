//! Source layers (`COPY . /src`): modes, symlinks, `.cog/` exclusion,
//! large-file layers, left-out weight directories, the layer cache, and
//! bad input (each error names the file and leaves nothing partial behind).

use cogpack::layer::source::{DEFAULT_LARGE_FILE_THRESHOLD, SourceOptions, scan_source_tree};
use cogpack::layer::{
    Compression, Entry, EntryKind, FileSource, LayerError, LayerOptions, build_layer, build_layers,
};
use cogpack::oci::store::Store;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn write(root: &Path, rel: &str, bytes: &[u8], mode: u32) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, bytes).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

fn small_threshold() -> SourceOptions {
    SourceOptions {
        large_file_threshold: 1 << 20,
        leave_out: vec!["weights".into()],
        ..SourceOptions::default()
    }
}

fn project(root: &Path) {
    write(root, "predict.py", b"def predict(): return 1\n", 0o644);
    write(root, "bin/run.sh", b"#!/bin/sh\n", 0o750);
    write(root, "ckpt/model.bin", &vec![7u8; 2 << 20], 0o644);
    write(root, "weights/w.safetensors", b"weights", 0o644);
    write(root, ".cog/openapi_schema.json", b"{}", 0o644);
    write(root, "cog.yaml", b"predict: predict.py:Predictor\n", 0o644);
    symlink("predict.py", root.join("alias.py")).unwrap();
    symlink("../predict.py", root.join("bin/up.py")).unwrap();
}

fn listing(blob: &Path) -> String {
    let out = Command::new("tar")
        .args(["--numeric-owner", "-tvf"])
        .arg(blob)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn blobs_and_temps(store: &Store) -> (usize, usize) {
    let count = |d: &Path| fs::read_dir(d).unwrap().count();
    (
        count(&store.root().join("blobs/sha256")),
        count(&store.tmp_dir()),
    )
}

#[test]
fn default_large_file_threshold_is_32_mib() {
    assert_eq!(DEFAULT_LARGE_FILE_THRESHOLD, 32 * 1024 * 1024);
    assert_eq!(SourceOptions::default().dest, "src");
}

#[test]
fn source_tree_keeps_modes_and_links_and_splits_large_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("proj");
    project(&root);
    let store = Store::open(tmp.path().join("store")).unwrap();
    let tree = scan_source_tree(&root, &small_threshold()).unwrap();
    assert_eq!(tree.large.len(), 1);
    assert_eq!(tree.large[0].entry.path, "src/ckpt/model.bin");
    assert!(
        tree.notices
            .iter()
            .any(|n| n.contains("weights/") && n.contains("managed weights")),
        "{:?}",
        tree.notices
    );
    let layers = build_layers(tree.jobs(), LayerOptions::default(), &store).unwrap();
    assert_eq!(layers.len(), 2);
    let big = listing(&store.blob_path(&layers[0].record.digest));
    assert!(big.contains("src/ckpt/model.bin"), "{big}");
    let main = listing(&store.blob_path(&layers[1].record.digest));
    assert!(
        !main.contains("model.bin"),
        "large file only in its own layer: {main}"
    );
    assert!(!main.contains(".cog"), ".cog is always excluded: {main}");
    assert!(
        !main.contains("weights"),
        "managed weights left out: {main}"
    );
    let link_line = main.lines().find(|l| l.contains("src/alias.py")).unwrap();
    assert!(link_line.starts_with("lrwxrwxrwx 0/0"), "{link_line}");
    for expected in [
        "-rw-r--r-- 0/0",
        "1970-01-01 00:00 src/alias.py -> predict.py",
        "src/bin/up.py -> ../predict.py",
        "-rwxr-x--- 0/0",
    ] {
        assert!(main.contains(expected), "missing {expected:?} in\n{main}");
    }
}

#[test]
fn changing_a_source_file_rebuilds_only_the_main_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("proj");
    project(&root);
    let store = Store::open(tmp.path().join("store")).unwrap();
    let opts = LayerOptions::default();
    let first = build_layers(
        scan_source_tree(&root, &small_threshold()).unwrap().jobs(),
        opts,
        &store,
    )
    .unwrap();
    assert!(first.iter().all(|l| !l.cached));
    let again = build_layers(
        scan_source_tree(&root, &small_threshold()).unwrap().jobs(),
        opts,
        &store,
    )
    .unwrap();
    assert!(
        again.iter().all(|l| l.cached),
        "unchanged tree is fully cached"
    );
    assert_eq!(
        first,
        again
            .iter()
            .map(|l| cogpack::layer::BuiltLayer {
                cached: false,
                ..l.clone()
            })
            .collect::<Vec<_>>()
    );
    write(&root, "predict.py", b"def predict(): return 2\n", 0o644);
    let edited = build_layers(
        scan_source_tree(&root, &small_threshold()).unwrap().jobs(),
        opts,
        &store,
    )
    .unwrap();
    assert!(edited[0].cached, "the checkpoint layer is reused");
    assert!(!edited[1].cached, "the main layer is rebuilt");
    assert_ne!(edited[1].record.digest, first[1].record.digest);
}

fn scan_err(root: &Path) -> String {
    scan_source_tree(root, &SourceOptions::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn escaping_and_absolute_symlinks_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("proj");
    write(&root, "a.py", b"", 0o644);
    symlink("../../etc/passwd", root.join("leak")).unwrap();
    let err = scan_err(&root);
    assert!(
        err.contains("leak escapes the project directory") && err.contains(".dockerignore"),
        "{err}"
    );
    fs::remove_file(root.join("leak")).unwrap();
    fs::create_dir(root.join("sub")).unwrap();
    symlink("/etc", root.join("sub/abs")).unwrap();
    let err = scan_err(&root);
    assert!(
        err.contains("sub/abs escapes the project directory (absolute link to /etc)"),
        "{err}"
    );
    fs::remove_file(root.join("sub/abs")).unwrap();
    symlink("..", root.join("sub/up")).unwrap();
    symlink("up/../../x", root.join("chain")).unwrap();
    let err = scan_err(&root);
    assert!(
        err.contains("chain escapes"),
        "a link through another link: {err}"
    );
    fs::write(root.join(".dockerignore"), "chain\n").unwrap();
    assert!(
        scan_source_tree(&root, &SourceOptions::default()).is_ok(),
        "ignored links are not checked"
    );
}

#[test]
fn symlink_loops_and_special_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("proj");
    fs::create_dir_all(&root).unwrap();
    symlink("b", root.join("a")).unwrap();
    symlink("a", root.join("b")).unwrap();
    let err = scan_err(&root);
    assert!(err.contains("symlink loop at a"), "{err}");
    fs::remove_file(root.join("a")).unwrap();
    fs::remove_file(root.join("b")).unwrap();
    let fifo = Command::new("mkfifo")
        .arg(root.join("pipe"))
        .status()
        .unwrap();
    assert!(fifo.success());
    let err = scan_err(&root);
    assert!(err.contains("pipe is a named pipe (fifo)"), "{err}");
}

#[test]
fn a_file_that_changed_size_fails_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("proj");
    write(&root, "data.txt", &vec![b'x'; 5000], 0o644);
    write(&root, "big.bin", &vec![b'y'; 3 << 20], 0o644);
    let store = Store::open(tmp.path().join("store")).unwrap();
    let tree = scan_source_tree(&root, &SourceOptions::default()).unwrap();
    fs::write(root.join("data.txt"), vec![b'x'; 6000]).unwrap();
    let err = build_layer(tree.main.clone(), LayerOptions::default(), &store).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, LayerError::SizeChanged { .. }), "{text}");
    assert!(
        text.contains(
            "data.txt changed while the layer was being written (expected 5000 bytes, found 6000)"
        ),
        "{text}"
    );
    assert_eq!(blobs_and_temps(&store), (0, 0));
    // A stream that yields more bytes than announced, as a growing file does.
    let growing = Entry {
        path: "grow.log".into(),
        kind: EntryKind::File {
            source: FileSource::Open(Arc::new(|| {
                Ok(Box::new(std::io::Read::take(
                    std::io::repeat(b'z'),
                    200_000,
                )))
            })),
            size: 100_000,
        },
        mode: 0o644,
        uid: 0,
        gid: 0,
    };
    let text = build_layer(vec![growing], LayerOptions::default(), &store)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("grow.log changed") && text.contains("expected 100000"),
        "{text}"
    );
    assert_eq!(blobs_and_temps(&store), (0, 0));
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Root reads any file, so as root the check runs in a child process of
/// this test binary under the `nobody` user.
#[test]
fn an_unreadable_file_is_named_in_the_error() {
    if running_as_root() {
        use std::os::unix::process::CommandExt;
        // A copy of this test binary in a world-readable place, since the
        // checkout may live under a directory `nobody` cannot enter.
        let exe_dir = tempfile::tempdir().unwrap();
        fs::set_permissions(exe_dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let exe = exe_dir.path().join("layer_source_test");
        fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
        let out = Command::new(&exe)
            .args([
                "--exact",
                "an_unreadable_file_is_named_in_the_error",
                "--test-threads=1",
            ])
            .env("TMPDIR", "/tmp")
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child as nobody failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("1 passed"), "{stdout}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("proj");
    write(&root, "secret.txt", b"hidden", 0o000);
    let store = Store::open(tmp.path().join("store")).unwrap();
    let tree = scan_source_tree(&root, &SourceOptions::default()).unwrap();
    let text = build_layer(tree.main, LayerOptions::default(), &store)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("cannot read")
            && text.contains("secret.txt")
            && text.contains("Permission denied"),
        "{text}"
    );
    assert_eq!(blobs_and_temps(&store), (0, 0));
}

#[test]
fn a_full_disk_leaves_no_partial_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "this test needs root to mount a 1 MiB tmpfs"
    );
    let result = std::panic::catch_unwind(|| {
        let store = Store::open(&mnt).unwrap();
        let noise: Vec<u8> = (0..3_000_000u64)
            .map(|i| (i.wrapping_mul(0x9E3779B97F4A7C15) >> 56) as u8)
            .collect();
        let err = build_layer(
            vec![Entry::file_bytes("noise.bin", 0o644, noise)],
            LayerOptions {
                compression: Compression::None,
                mtime: 0,
            },
            &store,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("No space left on device") && err.contains("free space"),
            "{err}"
        );
        assert_eq!(blobs_and_temps(&store), (0, 0));
    });
    let _ = Command::new("umount").arg(&mnt).status();
    result.unwrap();
}
