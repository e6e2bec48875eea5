//! Fuzz target for the cog.yaml and requirements parsers.
//!
//! The input is split at the first NUL byte: the part before is a cog.yaml,
//! the part after a requirements file. The YAML goes through the whole
//! load → label → requirement rewriting → base selection path (against a
//! fixed project directory), the requirements text through the line reader
//! and every per-line classifier. Nothing may panic; every error must carry
//! a message and a hint.
#![no_main]

use cogpack::config::base::{self, AssumeCandidatesExist, BaseFlags};
use cogpack::config::{self, requirements};
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;

fn project_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let files: [(&str, &[u8]); 5] = [
            ("predict.py", b""),
            ("train.py", b""),
            ("requirements.txt", b"torch==2.0.1\n./x.whl\ncog\n"),
            ("x.whl", b"PK"),
            ("weights/a.bin", b"w"),
        ];
        for (name, body) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, body).expect("write");
        }
        dir
    })
    .path()
}

fn check_yaml(yaml: &str) {
    match config::load_str(project_dir(), "cog.yaml", yaml) {
        Err(error) => {
            assert!(!error.problems.is_empty());
            for problem in &error.problems {
                assert!(!problem.message.is_empty() && !problem.hint.is_empty());
            }
            let _ = error.to_string();
        }
        Ok(project) => {
            let label = project.config.effective_json(Some(3));
            assert!(label.starts_with("{\"build\":{"));
            let _ = requirements::rewrite(&project);
            let _ = base::select_base(
                &project,
                &BaseFlags::default(),
                "r8.im",
                &AssumeCandidatesExist,
            );
            let _ = project.cuda_base_image_tag();
        }
    }
}

fn check_requirements(text: &str) {
    for line in requirements::parse_requirements_text(text) {
        let _ = requirements::parse_local_artifact(&line);
        let _ = requirements::split_pinned(&line);
        let _ = requirements::versions(&line);
        let _ = requirements::package_name(&line);
    }
}

fuzz_target!(|data: &[u8]| {
    let (yaml, reqs) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    if let Ok(yaml) = std::str::from_utf8(yaml) {
        check_yaml(yaml);
    }
    check_requirements(&String::from_utf8_lossy(reqs));
});
