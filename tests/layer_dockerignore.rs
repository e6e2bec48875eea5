//! `.dockerignore` conformance: our matcher and the source-tree scan against
//! an independent implementation of Docker's rules (`@balena/dockerignore`,
//! a port of Docker's Go code, run under node). No expectation is typed here:
//! every expected set comes from the oracle.
//!
//! Needs `node` and `npm` (the package is installed into the test's target
//! temp dir from fixtures/layer/dockerignore/package.json).

use cogpack::layer::EntryKind;
use cogpack::layer::dockerignore::DockerIgnore;
use cogpack::layer::source::{SourceOptions, scan_source_tree};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const PATHS: &[&str] = &[
    "a.py",
    "b.txt",
    "README.md",
    ".git/config",
    ".git/objects/ab/cd",
    ".gitignore",
    "src/main.py",
    "src/util/helpers.py",
    "src/util/data.bin",
    "src/.gitignore",
    "docs/readme.md",
    "docs/api/index.md",
    "weights/model.safetensors",
    "weights/config.json",
    "weights/sub/shard-1.bin",
    "venv/bin/python",
    "sub/venv/x",
    "__pycache__/a.pyc",
    "pkg/__pycache__/b.pyc",
    "data/keep.txt",
    "data/drop.txt",
    "data/nested/keep.txt",
    "file[1].txt",
    "star*.txt",
    "q?.txt",
    "qx.txt",
    "sp ace.txt",
    "x.log",
    "logs/2024/app.log",
    "Makefile",
    "build/out/obj.o",
    "a/b/c/d/e.txt",
    "test_a.py",
    "tests/test_b.py",
];

const CASES: &[&[&str]] = &[
    &["*.py"],
    &["**/*.py"],
    &["*"],
    &["*", "!src"],
    &["*", "!src/**"],
    &["data", "!data/keep.txt"],
    &["data/*", "!data/keep.txt"],
    &["data/**", "!**/keep.txt"],
    &["/venv"],
    &["venv"],
    &["**/venv"],
    &["**/.git"],
    &[".git"],
    &["**/__pycache__"],
    &["__pycache__"],
    &["docs/"],
    &["./docs"],
    &["docs/../weights"],
    &["weights/*.json"],
    &["weights/**/*.bin"],
    &["weights", "!weights/config.json"],
    &["**"],
    &["**", "!**/*.py"],
    &["file\\[1\\].txt"],
    &["star\\*.txt"],
    &["q\\?.txt"],
    &["q?.txt"],
    &["*.txt", "!data"],
    &["# comment", "*.md", "  ", "!README.md"],
    &["src/*/helpers.py"],
    &["src/**/data.bin"],
    &["[a-b].py"],
    &["[^a].py"],
    &["a/**/e.txt"],
    &["**/*.log", "!logs/**"],
    &["logs/**", "!logs/2024"],
    &["test_*.py", "tests"],
    &["*/*.py"],
    &["!a.py"],
    &["build", "!build/out/obj.o"],
    &["sp ace.txt"],
    &[".*"],
    &["**/.gitignore", "!src/.gitignore"],
    &["  *.md  ", "!  docs/api/index.md"],
    &["/src/util", "!/src/util/*.py"],
];

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/layer/dockerignore")
}

/// Installs the oracle package once into the target temp dir.
fn oracle_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dockerignore-oracle");
    if dir.join("node_modules/@balena/dockerignore").is_dir() {
        return dir;
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture_dir().join("package.json"), dir.join("package.json")).unwrap();
    let out = Command::new("npm")
        .args([
            "install",
            "--no-package-lock",
            "--no-audit",
            "--no-fund",
            "--silent",
        ])
        .current_dir(&dir)
        .output()
        .expect("npm is installed (apt-get install -y nodejs npm)");
    assert!(
        out.status.success(),
        "npm install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// The oracle's ignored set for every case.
fn oracle(cases: &[&[&str]], paths: &[&str]) -> Vec<BTreeSet<String>> {
    let dir = oracle_dir();
    let input = serde_json::json!({
        "cases": cases.iter().map(|p| serde_json::json!({"patterns": p, "paths": paths})).collect::<Vec<_>>()
    });
    let mut child = Command::new("node")
        .arg(fixture_dir().join("oracle.js"))
        .env("NODE_PATH", dir.join("node_modules"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node is installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn matcher_agrees_with_docker_rules_on_every_case() {
    assert!(CASES.len() >= 30);
    let expected = oracle(CASES, PATHS);
    let mut disagreements = Vec::new();
    for (patterns, want) in CASES.iter().zip(&expected) {
        let ours = DockerIgnore::parse(&patterns.join("\n"), ".dockerignore").unwrap();
        let got: BTreeSet<String> = PATHS
            .iter()
            .filter(|p| ours.is_excluded(p))
            .map(|p| p.to_string())
            .collect();
        if &got != want {
            disagreements.push(format!("{patterns:?}: ours {got:?}, docker {want:?}"));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    let non_trivial = expected
        .iter()
        .filter(|s| !s.is_empty() && s.len() < PATHS.len())
        .count();
    assert!(non_trivial >= 25, "cases must exercise partial exclusion");
}

#[test]
fn source_scan_includes_exactly_the_files_docker_would_send() {
    let all_paths: Vec<&str> = PATHS.iter().copied().chain([".dockerignore"]).collect();
    let expected = oracle(CASES, &all_paths);
    for (patterns, ignored) in CASES.iter().zip(&expected) {
        let tmp = tempfile::tempdir().unwrap();
        for p in PATHS {
            let f = tmp.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, p.as_bytes()).unwrap();
        }
        std::fs::create_dir_all(tmp.path().join(".cog/build")).unwrap();
        std::fs::write(tmp.path().join(".cog/build/x"), b"never").unwrap();
        std::fs::write(tmp.path().join(".dockerignore"), patterns.join("\n")).unwrap();
        let tree = scan_source_tree(tmp.path(), &SourceOptions::default()).unwrap();
        let got: BTreeSet<String> = tree
            .main
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::File { .. }))
            .map(|e| e.path.strip_prefix("src/").unwrap().to_string())
            .collect();
        let want: BTreeSet<String> = all_paths
            .iter()
            .filter(|p| !ignored.contains(**p))
            .map(|p| p.to_string())
            .collect();
        assert_eq!(got, want, "patterns {patterns:?}");
    }
}
