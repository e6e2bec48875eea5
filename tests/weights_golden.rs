//! Golden vectors of cog's weights format (spec §8, items marked ✅), checked
//! against a lockfile in cog's exact format (fixtures/weights/cog-example.lock,
//! written from the facts of cog's examples/managed-weights/weights.lock) and
//! against Go's archive/tar for the tar bytes.

#[path = "weights_support.rs"]
mod support;

use cogpack::oci::Digest;
use cogpack::weights::artifact::{WeightArtifact, tag_segment, weight_tag};
use cogpack::weights::envelope::{self, EnvelopeKind};
use cogpack::weights::lockfile::LockFile;
use cogpack::weights::runtime::runtime_manifest_bytes;
use cogpack::weights::set_digest;
use cogpack::weights::tar::{LayerTarReader, dir_entries, entry_header, tar_size};
use std::io::Read;

const COG_LOCK: &[u8] = include_bytes!("../fixtures/weights/cog-example.lock");

fn cog_lock() -> LockFile {
    LockFile::parse(COG_LOCK, "fixtures/weights/cog-example.lock").unwrap()
}

#[test]
fn cog_envelope_json_bytes_and_digest_match_spec() {
    let expected = r#"{"bundleFileMax":67108864,"bundleSizeMax":268435456,"gzipLevelBundle":9,"gzipLevelLarge":-1,"incompressibleExts":[".bin",".gguf",".onnx",".parquet",".pt",".pth",".safetensors"],"mediaTypeCompressed":"application/vnd.oci.image.layer.v1.tar+gzip","mediaTypeRaw":"application/vnd.oci.image.layer.v1.tar","revision":1}"#;
    assert_eq!(
        String::from_utf8(envelope::cog_envelope_json()).unwrap(),
        expected
    );
    assert_eq!(
        envelope::cog_envelope().to_string(),
        "sha256:ce2d53f8dd962ace393450e0abadbe227304897be87753a503b61f9c8525726e"
    );
}

#[test]
fn cogpack_envelope_is_distinct_and_lockfiles_are_classified() {
    assert_ne!(envelope::cogpack_envelope(), envelope::cog_envelope());
    let lock = cog_lock();
    assert_eq!(envelope::classify(&lock.envelope_format), EnvelopeKind::Cog);
    assert_eq!(
        envelope::classify(&envelope::cogpack_envelope().to_string()),
        EnvelopeKind::Cogpack
    );
    assert_eq!(
        envelope::classify(
            "sha256:0000000000000000000000000000000000000000000000000000000000000000"
        ),
        EnvelopeKind::Unknown
    );
    let cog = EnvelopeKind::Cog;
    assert!(cog.trusts("application/vnd.oci.image.layer.v1.tar"));
    assert!(!cog.trusts("application/vnd.oci.image.layer.v1.tar+gzip"));
}

#[test]
fn cog_lockfile_is_read_and_written_back_byte_for_byte() {
    let lock = cog_lock();
    assert_eq!(lock.version, 1);
    let names: Vec<&str> = lock.weights.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["parakeet", "minilm"]);
    let minilm = lock.entry("minilm").unwrap();
    assert_eq!(minilm.files.len(), 10);
    assert_eq!(minilm.sources[0].exclude.len(), 9);
    assert!(minilm.sources[0].include.is_empty());
    assert_eq!(lock.to_bytes(), COG_LOCK);
}

#[test]
fn set_digests_reproduce_the_lockfile_and_sort_digest_first() {
    for entry in cog_lock().weights {
        let computed = set_digest(entry.files.iter().map(|f| (f.path.as_str(), &f.digest)));
        assert_eq!(computed, entry.set_digest, "{}", entry.name);
        let mut by_path: Vec<String> = entry
            .files
            .iter()
            .map(|f| format!("{}  {}", f.digest.hex(), f.path))
            .collect();
        by_path.sort_by_key(|l| l.split("  ").nth(1).unwrap().to_string());
        let path_sorted = Digest::of_bytes(by_path.join("\n").as_bytes());
        assert_ne!(path_sorted, entry.set_digest, "path order must not match");
    }
    let lock = cog_lock();
    assert_eq!(
        lock.entry("minilm").unwrap().set_digest.to_string(),
        "sha256:18074874da7fd77e7cf1fefcbb2fc7edee0c38417f2255962e8a4fff5567b1d2"
    );
}

#[test]
fn manifest_digests_reproduce_the_lockfile() {
    let lock = cog_lock();
    let expect = [
        (
            "minilm",
            "sha256:6b15a4ac4f7e4dec39939043d32e7c51238516356f810b496735c50d0d7310be",
        ),
        (
            "parakeet",
            "sha256:c8d627863b85a8fa8441d1bd54b74be116812030e310c08707455227b8196e65",
        ),
    ];
    for (name, digest) in expect {
        let entry = lock.entry(name).unwrap();
        let artifact = WeightArtifact::of_entry(entry);
        assert_eq!(artifact.digest().to_string(), digest, "{name}");
        assert_eq!(entry.digest.to_string(), digest);
        let manifest: serde_json::Value = serde_json::from_slice(&artifact.manifest).unwrap();
        assert_eq!(manifest["artifactType"], "application/vnd.cog.weight.v1");
        assert_eq!(manifest["annotations"]["run.cog.weight.name"], name);
        assert_eq!(
            manifest["annotations"]["run.cog.weight.target"],
            entry.target.as_str()
        );
    }
}

#[test]
fn manifest_bytes_have_cogs_key_order() {
    let lock = cog_lock();
    let artifact = WeightArtifact::of_entry(lock.entry("minilm").unwrap());
    let text = String::from_utf8(artifact.manifest).unwrap();
    assert!(text.starts_with(r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.cog.weight.v1","config":{"mediaType":"application/vnd.cog.weight.config.v1+json","size":"#), "{text}");
    assert!(text.contains(r#""layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","size":90871296,"digest":"sha256:69482828980bf1c74078f5a7bf0ba03bf719f525a60e2e32a5b369417d19bcef","annotations":{"run.cog.weight.size.uncompressed":"90868376"}}"#));
    assert!(text.ends_with(r#""annotations":{"run.cog.weight.name":"minilm","run.cog.weight.set-digest":"sha256:18074874da7fd77e7cf1fefcbb2fc7edee0c38417f2255962e8a4fff5567b1d2","run.cog.weight.target":"/src/weights/minilm"}}"#));
    let config = String::from_utf8(artifact.config).unwrap();
    assert!(config.starts_with(r#"{"name":"minilm","target":"/src/weights/minilm","setDigest":"sha256:18074874da7fd77e7cf1fefcbb2fc7edee0c38417f2255962e8a4fff5567b1d2","files":[{"path":"1_Pooling/config.json","layer":"sha256:7ff2b72d"#));
}

#[test]
fn single_file_raw_tar_size_is_512_ceil_plus_2560() {
    for size in [0u64, 1, 511, 512, 513, 90_868_376, 2_508_311_120] {
        let expected = 512 * size.div_ceil(512) + 2560;
        assert_eq!(
            tar_size([("model.safetensors", size)]),
            expected,
            "S={size}"
        );
    }
    for entry in cog_lock().weights {
        for layer in entry
            .layers
            .iter()
            .filter(|l| l.media_type == "application/vnd.oci.image.layer.v1.tar")
        {
            let file = entry
                .files
                .iter()
                .find(|f| f.layer == layer.digest)
                .unwrap();
            assert_eq!(tar_size([(file.path.as_str(), file.size)]), layer.size);
        }
    }
}

#[test]
fn bundle_uncompressed_size_counts_file_bytes_only() {
    let lock = cog_lock();
    let minilm = lock.entry("minilm").unwrap();
    let bundle = minilm
        .layers
        .iter()
        .find(|l| l.media_type.ends_with("+gzip"))
        .unwrap();
    let files: Vec<_> = minilm
        .files
        .iter()
        .filter(|f| f.layer == bundle.digest)
        .collect();
    assert_eq!(files.len(), 9);
    assert_eq!(
        files.iter().map(|f| f.size).sum::<u64>(),
        bundle.size_uncompressed
    );
    assert_eq!(minilm.size, 91_567_913);
    assert_eq!(
        minilm.size_compressed,
        minilm.layers.iter().map(|l| l.size).sum::<u64>()
    );
}

#[test]
fn tags_are_sanitised_like_cog() {
    assert_eq!(tag_segment("qwen3.6"), "qwen3-6");
    assert_eq!(tag_segment("a..b__c"), "a-b__c");
    assert_eq!(tag_segment("--x--"), "x");
    assert_eq!(tag_segment("..."), "unnamed");
    assert_eq!(tag_segment(&"a".repeat(200)).len(), 104);
    assert_eq!(
        tag_segment(&format!("{}.b", "a".repeat(103))),
        "a".repeat(103)
    );
    let lock = cog_lock();
    let minilm = lock.entry("minilm").unwrap();
    assert_eq!(
        weight_tag(&minilm.name, Some(&minilm.set_digest)),
        "cog-weight.minilm.18074874da7f"
    );
    assert_eq!(weight_tag("qwen3.6", None), "cog-weight.qwen3-6");
}

#[test]
fn runtime_manifest_bytes_are_indented_go_json_in_lockfile_order() {
    let expected = "{\n  \"weights\": [\n    {\n      \"name\": \"parakeet\",\n      \"target\": \"/src/weights/parakeet\",\n      \"setDigest\": \"sha256:4ebfc8927425c01119080b2e2ca1cf7d57ca9a598109ae6d17b99b9a4ad42792\"\n    },\n    {\n      \"name\": \"minilm\",\n      \"target\": \"/src/weights/minilm\",\n      \"setDigest\": \"sha256:18074874da7fd77e7cf1fefcbb2fc7edee0c38417f2255962e8a4fff5567b1d2\"\n    }\n  ]\n}";
    assert_eq!(
        String::from_utf8(runtime_manifest_bytes(&cog_lock())).unwrap(),
        expected
    );
}

#[test]
fn lockfile_parse_rejects_bad_versions_and_duplicates() {
    let text = String::from_utf8(COG_LOCK.to_vec()).unwrap();
    let v2 = text.replacen("\"version\": 1", "\"version\": 2", 1);
    let err = LockFile::parse(v2.as_bytes(), "weights.lock")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unsupported lockfile version 2"), "{err}");
    assert!(err.contains("hint"), "{err}");
    let dup = text.replacen("\"name\": \"parakeet\"", "\"name\": \"minilm\"", 1);
    let err = LockFile::parse(dup.as_bytes(), "weights.lock")
        .unwrap_err()
        .to_string();
    assert!(err.contains("duplicate weight name"), "{err}");
    let err = LockFile::parse(b"{", "weights.lock")
        .unwrap_err()
        .to_string();
    assert!(err.contains("weights.lock: not valid JSON"), "{err}");
}

fn our_tar(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let listing = files
        .iter()
        .map(|(p, b)| (p.clone(), b.len() as u64))
        .collect();
    let contents: Vec<Vec<u8>> = files.iter().map(|(_, b)| b.clone()).collect();
    let mut reader = LayerTarReader::new(
        listing,
        Box::new(move |i| {
            Ok(Box::new(std::io::Cursor::new(contents[i].clone())) as Box<dyn Read + Send>)
        }),
    );
    let mut out = Vec::new();
    reader.read_to_end(&mut out).unwrap();
    out
}

#[test]
fn tar_bytes_are_identical_to_go_archive_tar() {
    let dir = tempfile::tempdir().unwrap();
    let tool = support::go_tar_tool(dir.path());
    let long_dir = "d".repeat(60);
    let cases: Vec<Vec<(String, Vec<u8>)>> = vec![
        vec![("config.json".into(), b"{\"a\":1}".to_vec())],
        vec![
            ("1_Pooling/config.json".into(), vec![7u8; 190]),
            ("a-b/x.txt".into(), vec![1u8; 512]),
            ("a/b/c/deep.json".into(), vec![2u8; 513]),
            ("empty.txt".into(), Vec::new()),
            (
                format!("{long_dir}/{}/model.json", "e".repeat(50)),
                vec![3u8; 1000],
            ),
            ("ünïcode/tokénizer.json".into(), vec![4u8; 33]),
        ],
    ];
    for (n, files) in cases.iter().enumerate() {
        let mut args = Vec::new();
        for (i, (path, bytes)) in files.iter().enumerate() {
            let src = dir.path().join(format!("case{n}-{i}"));
            std::fs::write(&src, bytes).unwrap();
            args.push(format!("{path}={}", src.display()));
        }
        let out = dir.path().join(format!("go{n}.tar"));
        let status = std::process::Command::new(&tool)
            .arg(&out)
            .args(&args)
            .status()
            .unwrap();
        assert!(status.success());
        let go = std::fs::read(&out).unwrap();
        let ours = our_tar(files);
        assert_eq!(ours.len(), go.len(), "case {n} length");
        assert!(
            ours == go,
            "case {n}: tar bytes differ from Go's archive/tar"
        );
        let sizes: Vec<(&str, u64)> = files
            .iter()
            .map(|(p, b)| (p.as_str(), b.len() as u64))
            .collect();
        assert_eq!(tar_size(sizes.iter().copied()), go.len() as u64);
    }
}

#[test]
fn headers_of_files_of_8_gib_and_more_match_go() {
    let dir = tempfile::tempdir().unwrap();
    let tool = support::go_tar_tool(dir.path());
    for size in [8_589_934_591u64, 8_589_934_592, 20_000_000_000] {
        let out = dir.path().join("big.tar");
        let path = "weights/huge.gguf";
        let status = std::process::Command::new(&tool)
            .arg(&out)
            .arg(format!("{path}=@{size}"))
            .status()
            .unwrap();
        assert!(status.success());
        let mut ours = dir_entries([path]);
        ours.extend(entry_header(path, size));
        assert!(
            std::fs::read(&out).unwrap() == ours,
            "header of a {size}-byte file differs"
        );
    }
}
