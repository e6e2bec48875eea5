//! `cogpack weights import|status|pull` end to end: the built binary against
//! a real Distribution registry on loopback, with the weights store, the
//! cogpack store and the Docker config in temp dirs.

mod common;

use cogpack::weights::lockfile::LockFile;
use common::registry::Registry;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A Cog project with two managed weights and its private directories.
struct Project {
    dir: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Project {
    fn new(registry: &Registry) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let cog_yaml = std::fs::read_to_string(fixture("weights-project/cog.yaml"))
            .unwrap()
            .replace("REGISTRY", &registry.host);
        std::fs::write(dir.path().join("cog.yaml"), cog_yaml).unwrap();
        let alpha = dir.path().join("weights/alpha");
        std::fs::create_dir_all(alpha.join("sub")).unwrap();
        std::fs::write(alpha.join("model.safetensors"), pseudo_random(40_000, 7)).unwrap();
        std::fs::write(alpha.join("sub/config.json"), br#"{"layers": 2}"#).unwrap();
        let beta = dir.path().join("weights/beta");
        std::fs::create_dir_all(&beta).unwrap();
        std::fs::write(beta.join("tokenizer.txt"), b"hello\nworld\n").unwrap();
        Project { dir, home }
    }

    /// Runs cogpack in the project with the weights cache at `cache`.
    fn run(&self, args: &[&str], cache: &Path) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cogpack"))
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("COGPACK_HOME", self.home.path().join("store"))
            .env("DOCKER_CONFIG", self.home.path().join("docker"))
            .env("COG_CACHE_DIR", cache)
            .output()
            .expect("run cogpack")
    }

    fn run_ok(&self, args: &[&str], cache: &Path) -> String {
        let out = self.run(args, cache);
        assert!(
            out.status.success(),
            "cogpack {args:?} failed:\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn lock(&self) -> LockFile {
        let path = self.dir.path().join("weights.lock");
        LockFile::parse(&std::fs::read(&path).unwrap(), "weights.lock").unwrap()
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/cli")
        .join(name)
}

/// Deterministic incompressible-looking bytes.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

/// The registry's storage directory of a blob.
fn registry_blob_dir(registry: &Registry, digest: &cogpack::oci::Digest) -> PathBuf {
    registry
        .root
        .join("docker/registry/v2/blobs/sha256")
        .join(&digest.hex()[..2])
        .join(digest.hex())
}

fn statuses(json: &str) -> Vec<(String, String)> {
    let doc: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    doc["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap().to_string(),
                w["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn import_status_pull_round_trip_through_a_real_registry() {
    let registry = Registry::start();
    let project = Project::new(&registry);
    let cache = tempfile::tempdir().unwrap();

    let before = project.run_ok(&["weights", "status"], cache.path());
    assert!(
        before.contains("alpha") && before.contains("pending"),
        "{before}"
    );

    let imported = project.run_ok(&["weights", "import"], cache.path());
    assert!(imported.contains("+ alpha (new)"), "{imported}");
    assert!(imported.contains("+ beta (new)"), "{imported}");
    assert!(imported.contains("Pushed alpha"), "{imported}");
    let lock = project.lock();
    assert_eq!(lock.weights.len(), 2);
    let repo = "test/weights-model";
    for entry in &lock.weights {
        let tag = cogpack::weights::artifact::weight_tag(&entry.name, Some(&entry.set_digest));
        assert!(
            registry.count_requests("PUT", &format!("/v2/{repo}/manifests/{tag}")) == 1,
            "manifest {tag} was not pushed:\n{}",
            registry.log()
        );
    }

    let text = project.run_ok(&["weights", "status"], cache.path());
    assert_eq!(text.matches("ready").count(), 2, "{text}");
    let json = project.run_ok(&["weights", "status", "--json"], cache.path());
    assert_eq!(
        statuses(&json),
        [
            ("alpha".to_string(), "ready".to_string()),
            ("beta".to_string(), "ready".to_string())
        ]
    );

    let again = project.run_ok(&["weights", "import"], cache.path());
    assert!(again.contains("= alpha (unchanged)"), "{again}");

    let empty_cache = tempfile::tempdir().unwrap();
    let pulled = project.run_ok(&["weights", "pull"], empty_cache.path());
    assert!(pulled.contains("Pulling alpha"), "{pulled}");
    assert!(pulled.contains("Pulled beta"), "{pulled}");
    for entry in &lock.weights {
        for file in &entry.files {
            let stored = empty_cache
                .path()
                .join("weights/files/sha256")
                .join(&file.digest.hex()[..2])
                .join(file.digest.hex());
            let source_dir = project.dir.path().join("weights").join(&entry.name);
            assert_eq!(
                std::fs::read(&stored).unwrap(),
                std::fs::read(source_dir.join(&file.path)).unwrap(),
                "{} of {} differs after pull",
                file.path,
                entry.name
            );
        }
    }
    let warm = project.run_ok(&["weights", "pull"], empty_cache.path());
    assert!(warm.contains("All 2 weight(s) already cached"), "{warm}");

    let alpha = lock.entry("alpha").unwrap();
    std::fs::remove_dir_all(registry_blob_dir(&registry, &alpha.layers[0].digest)).unwrap();
    let json = project.run_ok(&["weights", "status", "--json"], cache.path());
    assert_eq!(
        statuses(&json),
        [
            ("alpha".to_string(), "incomplete".to_string()),
            ("beta".to_string(), "ready".to_string())
        ]
    );
    let text = project.run_ok(&["weights", "status"], cache.path());
    assert!(text.contains("incomplete"), "{text}");

    let cold = tempfile::tempdir().unwrap();
    let failed = project.run(&["weights", "pull", "alpha"], cold.path());
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("alpha") && stderr.contains("hint"),
        "{stderr}"
    );

    let unknown = project.run(&["weights", "pull", "gamma", "delta"], cold.path());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(!unknown.status.success());
    assert!(
        stderr.contains("gamma") && stderr.contains("delta"),
        "{stderr}"
    );
}

#[test]
fn dry_run_prints_the_plan_and_pushes_nothing() {
    let registry = Registry::start();
    let project = Project::new(&registry);
    let cache = tempfile::tempdir().unwrap();
    let mark = registry.request_count();
    let out = project.run_ok(&["weights", "import", "--dry-run"], cache.path());
    assert!(out.contains("+ alpha (new)"), "{out}");
    assert!(out.contains("+ beta (new)"), "{out}");
    assert!(!project.dir.path().join("weights.lock").exists());
    let writes: Vec<_> = registry
        .requests_since(mark)
        .into_iter()
        .filter(|r| r.method != "GET" && r.method != "HEAD")
        .collect();
    assert!(
        writes.is_empty(),
        "dry run wrote to the registry: {writes:?}"
    );
    assert!(
        !cache.path().join("weights/files").exists()
            || dir_is_empty(&cache.path().join("weights/files"))
    );
}

#[test]
fn image_projects_are_refused_with_a_hint() {
    let registry = Registry::start();
    let project = Project::new(&registry);
    let yaml = project.dir.path().join("cog.yaml");
    let text = std::fs::read_to_string(&yaml)
        .unwrap()
        .replace("model:", "image:");
    std::fs::write(&yaml, text).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = project.run(&["weights", "import"], cache.path());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("'image'") && stderr.contains("hint:"),
        "{stderr}"
    );
    assert!(!project.dir.path().join("weights.lock").exists());
    assert_eq!(registry.count_requests("PUT", "/manifests/"), 0);
}

fn dir_is_empty(dir: &Path) -> bool {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .all(|e| !e.file_type().is_file())
}
