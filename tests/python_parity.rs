//! Parity of the native wheel installer with `uv pip install --prefix` for
//! real packages from the package registry.

#[path = "python_common.rs"]
mod common;

use common::*;
use std::process::Command;

const PINNED: &str = "requests==2.32.3
numpy==2.1.3
pydantic==2.9.2
PyYAML==6.0.2
msgpack==1.1.0
charset-normalizer==3.4.0
tokenizers==0.20.3
pillow==11.0.0
protobuf==5.28.3
MarkupSafe==3.0.2
setuptools==75.6.0
zope.interface==7.1.1
";

/// Files the installers are allowed to write differently.
fn comparable(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    !(name == "RECORD"
        || name == "INSTALLER"
        || name == ".lock"
        || path.contains("__pycache__")
        || name.ends_with(".pyc"))
}

/// Content with the shebang line of scripts removed.
fn without_shebang(path: &str, bytes: &[u8]) -> Vec<u8> {
    if path.starts_with("bin/") && bytes.starts_with(b"#!") {
        let end = bytes
            .iter()
            .position(|b| *b == b'\n')
            .map(|i| i + 1)
            .unwrap_or(bytes.len());
        return bytes[end..].to_vec();
    }
    bytes.to_vec()
}

#[test]
fn installs_the_same_files_as_uv_pip_install_prefix() {
    let uv = uv();
    let work = tempfile::tempdir().unwrap();
    let project = work.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let req = request(&project, &work.path().join("cache"), PINNED);
    let layers = build(&req).expect("native install");
    assert!(
        project.join("pylock.cogpack.toml").is_file(),
        "lock written into the project"
    );

    let ours = work.path().join("ours");
    cogpack::python::materialize(&layers.dependencies, &ours).unwrap();
    let ours_tree = tree(&ours.join("usr/local"));

    std::fs::write(work.path().join("req.txt"), PINNED).unwrap();
    let prefix = work.path().join("uvprefix");
    let platform = req.target.uv_platform();
    let status = Command::new(&uv)
        .args([
            "pip",
            "install",
            "--quiet",
            "--link-mode=copy",
            "--only-binary",
            ":all:",
            "--python-platform",
            &platform,
            "--python-version",
            "3.11",
            "--prefix",
        ])
        .arg(&prefix)
        .arg("-r")
        .arg(work.path().join("req.txt"))
        .status()
        .unwrap();
    assert!(status.success(), "uv pip install failed");
    let uv_tree = tree(&prefix);

    let ours_files: Vec<&String> = ours_tree.keys().filter(|p| comparable(p)).collect();
    let uv_files: Vec<&String> = uv_tree.keys().filter(|p| comparable(p)).collect();
    let only_ours: Vec<_> = ours_files
        .iter()
        .filter(|p| !uv_tree.contains_key(**p))
        .collect();
    let only_uv: Vec<_> = uv_files
        .iter()
        .filter(|p| !ours_tree.contains_key(**p))
        .collect();
    assert!(
        only_ours.is_empty() && only_uv.is_empty(),
        "file lists differ: only ours {only_ours:?}, only uv {only_uv:?}"
    );
    assert!(
        ours_files.len() > 2000,
        "expected thousands of files, got {}",
        ours_files.len()
    );

    let mut differing = Vec::new();
    for path in ours_files {
        let (a, ax) = &ours_tree[path];
        let (b, bx) = &uv_tree[path];
        if without_shebang(path, a) != without_shebang(path, b) || ax != bx {
            differing.push(path.clone());
        }
    }
    assert!(
        differing.is_empty(),
        "contents or exec bits differ: {differing:?}"
    );

    for (path, (bytes, _)) in &ours_tree {
        if path.starts_with("bin/") {
            assert!(
                bytes.starts_with(b"#!/usr/local/bin/python\n"),
                "{path} has the image interpreter shebang"
            );
        }
    }
    let dists: Vec<String> = layers
        .installed
        .iter()
        .map(|d| d.name.to_lowercase())
        .collect();
    for name in [
        "requests",
        "numpy",
        "pydantic",
        "pyyaml",
        "msgpack",
        "charset-normalizer",
        "tokenizers",
        "pillow",
        "protobuf",
        "markupsafe",
        "setuptools",
        "zope.interface",
    ] {
        assert!(
            dists.iter().any(|d| d.replace('_', "-") == name),
            "{name} installed"
        );
    }
}

#[test]
fn record_files_list_every_installed_file_with_its_hash() {
    use base64::Engine as _;
    use sha2::Digest as _;
    uv();
    let work = tempfile::tempdir().unwrap();
    let req = request(
        work.path(),
        &work.path().join("cache"),
        "requests==2.32.3\nPyYAML==6.0.2\n",
    );
    let layers = build(&req).unwrap();
    let root = work.path().join("root");
    cogpack::python::materialize(&layers.dependencies, &root).unwrap();
    let sp = root.join("usr/local/lib/python3.11/site-packages");
    let mut checked = 0;
    for dist in std::fs::read_dir(&sp)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".dist-info"))
    {
        let record = std::fs::read_to_string(dist.path().join("RECORD")).unwrap();
        assert_eq!(
            std::fs::read_to_string(dist.path().join("INSTALLER")).unwrap(),
            "cogpack"
        );
        for line in record.lines() {
            let fields: Vec<&str> = line.split(',').collect();
            let file = sp.join(fields[0]);
            assert!(file.is_file(), "RECORD names {} which exists", fields[0]);
            if fields[1].is_empty() {
                assert!(fields[0].ends_with("RECORD"));
                continue;
            }
            let bytes = std::fs::read(&file).unwrap();
            let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(&bytes));
            assert_eq!(fields[1], format!("sha256={hash}"), "hash of {}", fields[0]);
            assert_eq!(fields[2], bytes.len().to_string());
            checked += 1;
        }
    }
    assert!(checked > 100, "checked {checked} RECORD rows");
    assert!(
        layers
            .uv_binaries
            .iter()
            .any(|e| e.path == "usr/local/bin/uv")
    );
    assert!(
        layers
            .uv_binaries
            .iter()
            .any(|e| e.path == "usr/local/bin/uvx")
    );
    assert_eq!(layers.uv_binaries.len(), 2);
}
