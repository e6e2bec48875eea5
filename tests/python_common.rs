//! Shared helpers for the python_* integration tests (included with
//! `#[path]`; compiled on its own it has no tests).
#![allow(dead_code)]

use cogpack::python::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The uv binary on PATH; the tests need it (`pip install uv==0.9.26`).
pub fn uv() -> PathBuf {
    let out = Command::new("uv").arg("--version").output();
    assert!(
        out.map(|o| o.status.success()).unwrap_or(false),
        "uv is required for these tests: pip install uv==0.9.26"
    );
    PathBuf::from("uv")
}

/// A request for a python:3.11-slim style target with no base packages.
pub fn request(project: &Path, cache: &Path, requirements: &str) -> PythonBuildRequest {
    PythonBuildRequest {
        inputs: PythonInputs {
            requirements: requirements.to_string(),
            cog_runtime: vec![],
            prerelease: false,
        },
        target: PythonTarget::usr_local("3.11", (2, 36)),
        index: IndexSettings::default(),
        project_dir: project.to_path_buf(),
        lock_path: None,
        mode: LockMode::Update,
        cache_dir: cache.to_path_buf(),
        concurrency: 8,
        uv: None,
    }
}

/// Runs a build without progress output.
pub fn build(req: &PythonBuildRequest) -> anyhow::Result<PythonLayers> {
    build_python_layers(req, &|_: &FetchEvent| {})
}

/// All regular files under `root` as relative path → (bytes, executable).
pub fn tree(root: &Path) -> BTreeMap<String, (Vec<u8>, bool)> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).into_iter().flatten() {
        if e.file_type().is_file() {
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let exec = e.metadata().unwrap().permissions().mode() & 0o111 != 0;
            out.insert(rel, (std::fs::read(e.path()).unwrap(), exec));
        }
    }
    out
}

/// Writes a minimal wheel with the given members (name → bytes); the
/// dist-info METADATA/WHEEL/RECORD are added unless `raw` is set.
pub fn write_wheel(path: &Path, dist: &str, version: &str, members: &[(&str, &[u8])], raw: bool) {
    use std::io::Write as _;
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
    let mut all: Vec<(String, Vec<u8>)> = members
        .iter()
        .map(|(n, b)| (n.to_string(), b.to_vec()))
        .collect();
    if !raw {
        let di = format!("{dist}-{version}.dist-info");
        all.push((
            format!("{di}/METADATA"),
            format!("Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n").into_bytes(),
        ));
        all.push((
            format!("{di}/WHEEL"),
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
                .to_vec(),
        ));
        all.push((format!("{di}/RECORD"), Vec::new()));
    }
    for (name, bytes) in all {
        z.start_file(name, opts).unwrap();
        z.write_all(&bytes).unwrap();
    }
    z.finish().unwrap();
}

/// The loopback file server of the other integration tests (serves the
/// loopback package indexes).
#[path = "common/file_server.rs"]
pub mod file_server;
