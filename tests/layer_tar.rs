//! Deterministic layer writer: byte stability, header fields as read by GNU
//! tar, PAX for long names, whiteouts, and compressed output checked by the
//! system `gzip`/`zstd` tools.

use cogpack::layer::{Compression, Entry, EntryKind, FileSource, LayerOptions, build_layer};
use cogpack::oci::Digest;
use cogpack::oci::store::{LayerRecord, Store};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn sample_entries(dir: &Path) -> Vec<Entry> {
    let on_disk = dir.join("weights.bin");
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&on_disk, &data).unwrap();
    let long_dir = "d".repeat(60);
    let long_name = format!("{long_dir}/{}", "n".repeat(80));
    vec![
        Entry::file_bytes("src/predict.py", 0o644, b"print('hi')\n".to_vec()),
        Entry::file_bytes("src/run.sh", 0o755, b"#!/bin/sh\necho run\n".to_vec()),
        Entry::symlink("src/link.py", "predict.py"),
        Entry::dir("src/private", 0o700),
        Entry::file_bytes(long_name, 0o600, b"deep\n".to_vec()),
        Entry {
            path: "src/weights.bin".into(),
            kind: EntryKind::File {
                source: FileSource::Path(on_disk),
                size: data.len() as u64,
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
        },
        Entry {
            path: "src/old.txt".into(),
            kind: EntryKind::Whiteout,
            mode: 0,
            uid: 0,
            gid: 0,
        },
        Entry {
            path: "src/hard.py".into(),
            kind: EntryKind::Hardlink {
                target: "src/predict.py".into(),
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
        },
    ]
}

fn build(entries: Vec<Entry>, compression: Compression, mtime: u64, store: &Store) -> LayerRecord {
    build_layer(entries, LayerOptions { compression, mtime }, store).unwrap()
}

fn tar_listing(path: &Path) -> Vec<String> {
    let out = Command::new("tar")
        .args(["--numeric-owner", "--full-time", "-tvf"])
        .arg(path)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn same_entries_in_any_order_give_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let a = build(sample_entries(tmp.path()), Compression::None, 0, &store);
    let mut reversed = sample_entries(tmp.path());
    reversed.reverse();
    let b = build(reversed, Compression::None, 0, &store);
    assert_eq!(a, b);
    assert_eq!(a.digest, a.diff_id, "uncompressed: digest is the diff_id");
    let c = build(
        sample_entries(tmp.path()),
        Compression::None,
        1_700_000_000,
        &store,
    );
    assert_ne!(a.digest, c.digest, "mtime is part of the bytes");
}

#[test]
fn gnu_tar_reads_every_header_field_we_set() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let rec = build(
        sample_entries(tmp.path()),
        Compression::None,
        1_700_000_000,
        &store,
    );
    let listing = tar_listing(&store.blob_path(&rec.digest));
    let long = format!("{}/{}", "d".repeat(60), "n".repeat(80));
    // Component order: a directory is followed by its contents; `.` sorts
    // before letters, so the whiteout comes first inside src/.
    let expected: Vec<(&str, String)> = vec![
        ("drwxr-xr-x 0/0", format!("{}/", "d".repeat(60))),
        ("-rw------- 0/0", long.clone()),
        ("drwxr-xr-x 0/0", "src/".into()),
        ("-rw-r--r-- 0/0", "src/.wh.old.txt".into()),
        (
            "hrw-r--r-- 0/0",
            "src/hard.py link to src/predict.py".into(),
        ),
        ("lrwxrwxrwx 0/0", "src/link.py -> predict.py".into()),
        ("-rw-r--r-- 0/0", "src/predict.py".into()),
        ("drwx------ 0/0", "src/private/".into()),
        ("-rwxr-xr-x 0/0", "src/run.sh".into()),
        ("-rw-r--r-- 0/0", "src/weights.bin".into()),
    ];
    let expected_sorted = expected.iter().map(|(p, n)| (p, n));
    assert_eq!(listing.len(), expected.len(), "{listing:#?}");
    for (line, (perm, name)) in listing.iter().zip(expected_sorted) {
        assert!(line.starts_with(perm), "{line} should start with {perm}");
        assert!(line.contains("2023-11-14 22:13:20"), "mtime in {line}");
        assert!(
            line.ends_with(name.as_str()),
            "{line} should end with {name}"
        );
    }
}

#[test]
fn gzip_and_zstd_layers_are_valid_and_decompress_to_the_diff_id() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let plain = build(sample_entries(tmp.path()), Compression::None, 0, &store);
    for (compression, tool) in [
        (Compression::Gzip { level: 6 }, "gzip"),
        (Compression::Zstd { level: 3 }, "zstd"),
    ] {
        let rec = build(sample_entries(tmp.path()), compression, 0, &store);
        assert_eq!(
            rec.diff_id, plain.digest,
            "{tool}: diff_id is the plain tar digest"
        );
        assert_ne!(rec.digest, rec.diff_id);
        let blob = store.blob_path(&rec.digest);
        assert_eq!(std::fs::metadata(&blob).unwrap().len(), rec.size);
        let test = Command::new(tool).arg("-t").arg(&blob).output().unwrap();
        assert!(
            test.status.success(),
            "{tool} -t: {}",
            String::from_utf8_lossy(&test.stderr)
        );
        let out = Command::new(tool)
            .args(["-dc"])
            .arg(&blob)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(
            Digest::of_bytes(&out.stdout),
            rec.diff_id,
            "{tool} -dc output"
        );
        let sum = Digest::of_bytes(&std::fs::read(&blob).unwrap());
        assert_eq!(
            sum, rec.digest,
            "{tool}: stored bytes have the recorded digest"
        );
    }
}

#[test]
fn block_gzip_does_not_depend_on_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let big: Arc<[u8]> = (0..9_500_000u32)
        .map(|i| {
            if i % 3 == 0 {
                (i >> 7) as u8
            } else {
                b'a' + (i % 13) as u8
            }
        })
        .collect::<Vec<u8>>()
        .into();
    let mut digests = Vec::new();
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let rec = pool.install(|| {
            build(
                vec![Entry::file_bytes("big.txt", 0o644, big.clone())],
                Compression::Gzip { level: 6 },
                0,
                &store,
            )
        });
        digests.push(rec.digest);
    }
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
    let zstd_digests: Vec<_> = [1, 2]
        .iter()
        .map(|&t| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap();
            pool.install(|| {
                build(
                    vec![Entry::file_bytes("big.txt", 0o644, big.clone())],
                    Compression::Zstd { level: 3 },
                    0,
                    &store,
                )
                .digest
            })
        })
        .collect();
    assert_eq!(
        zstd_digests[0], zstd_digests[1],
        "zstd output with 1 and 2 workers"
    );
    let blob = store.blob_path(&digests[0]);
    let out = Command::new("gzip").arg("-dc").arg(&blob).output().unwrap();
    assert!(out.status.success());
    let listing = Command::new("tar")
        .arg("-tv")
        .arg("-f")
        .arg("-")
        .stdin(std::fs::File::open(&blob).unwrap())
        .arg("-z")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listing.stdout).contains(&format!("{} ", big.len())));
}

#[test]
fn invalid_paths_are_refused_with_the_path_named() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    for (path, reason) in [
        ("/abs", "leading `/`"),
        ("a/../b", "`..`"),
        ("a//b", "empty component"),
    ] {
        let err = build_layer(
            vec![Entry::dir(path, 0o755)],
            LayerOptions::default(),
            &store,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(path) && err.contains(reason), "{err}");
    }
    let err = build_layer(
        vec![
            Entry::file_bytes("a", 0o644, b"x".to_vec()),
            Entry::dir("a/b", 0o755),
        ],
        LayerOptions::default(),
        &store,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("\"a\" is not a directory"), "{err}");
}
