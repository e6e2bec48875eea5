//! The parallel ingest (`weights::ingest`): digests, raw-layer digests and
//! store copies from the chunked multi-threaded path agree with plain
//! single-threaded SHA-256 and with the layer tar bytes the packer streams,
//! for sizes around block and chunk boundaries; follow-ups wait for their
//! files; a file that changes is reported.

use cogpack::oci::Digest;
use cogpack::weights::ingest::{self, CHUNK, FollowUp, LocalJob, LocalOutcome};
use cogpack::weights::layerio::compute_layer;
use cogpack::weights::pack::Compression;
use cogpack::weights::store::WeightStore;
use cogpack::weights::tar;
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256(data: &[u8]) -> Digest {
    Digest::from_sha256(Sha256::digest(data).into())
}

/// Sizes around tar blocks, SHA blocks and ingest chunks.
fn tricky_sizes() -> Vec<u64> {
    let c = CHUNK;
    vec![
        0,
        1,
        63,
        64,
        511,
        512,
        513,
        1024,
        4096 + 7,
        c - 1,
        c,
        c + 1,
        2 * c + 512,
    ]
}

fn write_files(dir: &Path, sizes: &[u64]) -> Vec<(PathBuf, String, Vec<u8>)> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let label = format!("dir{}/file-{i}-{size}.safetensors", i % 3);
            let path = dir.join(&label);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let data = pseudo_random(size as usize, i as u64 + 1);
            std::fs::write(&path, &data).unwrap();
            (path, label, data)
        })
        .collect()
}

fn layer_prefix(label: &str, size: u64) -> Vec<u8> {
    let mut prefix = tar::dir_entries([label]);
    prefix.extend(tar::entry_header(label, size));
    prefix
}

fn job(path: &Path, label: &str, size: u64, store: Option<&WeightStore>, layer: bool) -> LocalJob {
    LocalJob {
        path: path.to_path_buf(),
        label: label.to_string(),
        size,
        modified: None,
        store: store.cloned(),
        layer_prefix: layer.then(|| layer_prefix(label, size)),
    }
}

#[test]
fn parallel_ingest_matches_single_threaded_hashing_and_the_streamed_layer() {
    let src = tempfile::tempdir().unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let store = WeightStore::new(store_dir.path());
    let files = write_files(src.path(), &tricky_sizes());
    let jobs: Vec<LocalJob> = files
        .iter()
        .map(|(p, l, d)| job(p, l, d.len() as u64, Some(&store), true))
        .collect();
    let (results, _) = ingest::run::<()>(&jobs, Vec::new(), 3);
    for ((path, label, data), result) in files.iter().zip(results) {
        let outcome = result.unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(outcome.digest, sha256(data), "file digest of {label}");
        let stored = std::fs::read(store.path_of(&outcome.digest)).unwrap();
        assert!(stored == *data, "store copy of {label} differs");
        let members = vec![(label.clone(), data.len() as u64, outcome.digest.clone())];
        let streamed = compute_layer(&members, &store, Compression::None).unwrap();
        assert_eq!(outcome.layer, Some(streamed), "layer digest of {label}");
        let single = ingest::ingest_one(&job(path, label, data.len() as u64, None, true)).unwrap();
        assert_eq!(single, outcome, "one thread, {label}");
    }
}

#[test]
fn a_raw_layer_has_512_ceil_plus_header_bytes() {
    let src = tempfile::tempdir().unwrap();
    for size in [0u64, 512, 1000, CHUNK + 1] {
        let files = write_files(src.path(), &[size]);
        let (path, label, _) = &files[0];
        let outcome = ingest::ingest_one(&job(path, label, size, None, true)).unwrap();
        let (_, layer_size) = outcome.layer.unwrap();
        let header = layer_prefix(label, size).len() as u64;
        assert_eq!(
            layer_size,
            header + size.div_ceil(512) * 512 + 1024,
            "size {size}"
        );
    }
}

#[test]
fn ingest_without_store_or_layer_only_hashes() {
    let src = tempfile::tempdir().unwrap();
    let files = write_files(src.path(), &[CHUNK + 3, 10]);
    let jobs: Vec<LocalJob> = files
        .iter()
        .map(|(p, l, d)| job(p, l, d.len() as u64, None, false))
        .collect();
    let (results, _) = ingest::run::<()>(&jobs, Vec::new(), 2);
    for ((_, _, data), result) in files.iter().zip(results) {
        let outcome = result.unwrap();
        assert_eq!(outcome.digest, sha256(data));
        assert_eq!(outcome.layer, None);
    }
}

#[test]
fn follow_ups_run_after_their_files_with_outcomes_in_order() {
    let src = tempfile::tempdir().unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let store = WeightStore::new(store_dir.path());
    let files = write_files(src.path(), &[CHUNK * 2, 100, 7, 0]);
    let jobs: Vec<LocalJob> = files
        .iter()
        .map(|(p, l, d)| job(p, l, d.len() as u64, Some(&store), false))
        .collect();
    let store_ref = &store;
    let follow = |needs: Vec<usize>| FollowUp {
        needs: needs.clone(),
        run: Box::new(move |outcomes: Vec<LocalOutcome>| {
            assert_eq!(outcomes.len(), needs.len());
            for o in &outcomes {
                assert!(
                    store_ref.contains(&o.digest, None),
                    "stored before the follow-up"
                );
            }
            Ok(outcomes.into_iter().map(|o| o.digest).collect::<Vec<_>>())
        }),
    };
    let (results, follow_results) = ingest::run(
        &jobs,
        vec![follow(vec![2, 0]), follow(vec![]), follow(vec![3])],
        2,
    );
    let digests: Vec<Digest> = results.into_iter().map(|r| r.unwrap().digest).collect();
    let follow_results: Vec<Vec<Digest>> = follow_results.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(
        follow_results[0],
        vec![digests[2].clone(), digests[0].clone()]
    );
    assert!(follow_results[1].is_empty());
    assert_eq!(follow_results[2], vec![sha256(b"")]);
}

#[test]
fn a_file_with_another_size_than_listed_fails_and_its_follow_up_reports_it() {
    let src = tempfile::tempdir().unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let store = WeightStore::new(store_dir.path());
    let files = write_files(src.path(), &[1000, 2000]);
    let mut jobs: Vec<LocalJob> = files
        .iter()
        .map(|(p, l, d)| job(p, l, d.len() as u64, Some(&store), true))
        .collect();
    jobs[1].size = 2001;
    let follow = FollowUp {
        needs: vec![0, 1],
        run: Box::new(
            |_: Vec<LocalOutcome>| -> cogpack::weights::error::Result<()> {
                panic!("must not run when a file failed")
            },
        ),
    };
    let (results, follows) = ingest::run(&jobs, vec![follow], 2);
    assert!(results[0].is_ok());
    let err = results[1].as_ref().unwrap_err().to_string();
    assert!(
        err.contains("content changed") && err.contains(&files[1].1),
        "{err}"
    );
    let follow_err = follows[0].as_ref().unwrap_err().to_string();
    assert!(follow_err.contains(&files[1].1), "{follow_err}");
    let leftovers: Vec<_> = walk(store_dir.path())
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("put-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn ingesting_a_stored_file_again_keeps_one_read_only_copy() {
    let src = tempfile::tempdir().unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let store = WeightStore::new(store_dir.path());
    let files = write_files(src.path(), &[CHUNK + 5]);
    let (path, label, data) = &files[0];
    let j = job(path, label, data.len() as u64, Some(&store), true);
    let first = ingest::ingest_one(&j).unwrap();
    let second = ingest::ingest_one(&j).unwrap();
    assert_eq!(first, second);
    let blobs = walk(store_dir.path());
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&blobs[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o444);
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}
