//! CUDA/cuDNN completion (spec §2.5) and base image selection (§3), with
//! expected values worked out by hand from the spec and the matrices.

use cogpack::config::base::{self, AssumeCandidatesExist, BaseFlags, BaseImageExists, BasePath};
use cogpack::config::{self, Project};
use std::cell::RefCell;
use tempfile::TempDir;

fn project(
    yaml: &str,
    requirements: Option<&str>,
) -> (TempDir, Result<Project, config::ConfigError>) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("predict.py"), "class Predictor: pass\n").expect("write");
    let mut yaml = yaml.to_string();
    if let Some(body) = requirements {
        std::fs::write(dir.path().join("requirements.txt"), body).expect("write");
        yaml.push_str("  python_requirements: requirements.txt\n");
    }
    yaml.push_str("predict: predict.py:Predictor\n");
    std::fs::write(dir.path().join("cog.yaml"), yaml).expect("write");
    let loaded = config::load(dir.path(), "cog.yaml");
    (dir, loaded)
}

fn gpu(python: &str) -> String {
    format!("build:\n  gpu: true\n  python_version: \"{python}\"\n")
}

fn cuda_pair(p: &Project) -> (String, String) {
    let b = p.config.build.as_ref().expect("build");
    (
        b.cuda.clone().unwrap_or_default(),
        b.cudnn.clone().unwrap_or_default(),
    )
}

struct CudaCase {
    name: &'static str,
    extra: &'static str,
    requirements: Option<&'static str>,
    cuda: &'static str,
    cudnn: &'static str,
    base: Option<&'static str>,
}

#[test]
fn cuda_completion_table() {
    let cases = [
        CudaCase {
            name: "default CUDA 11.8",
            extra: "",
            requirements: None,
            cuda: "11.8",
            cudnn: "8",
            base: Some("nvidia/cuda:11.8.0-cudnn8-devel-ubuntu22.04"),
        },
        CudaCase {
            name: "default with plain packages",
            extra: "",
            requirements: Some("numpy==1.26.4\n"),
            cuda: "11.8",
            cudnn: "8",
            base: Some("nvidia/cuda:11.8.0-cudnn8-devel-ubuntu22.04"),
        },
        CudaCase {
            name: "torch 2.0.1 picks its highest CUDA",
            extra: "",
            requirements: Some("torch==2.0.1\n"),
            cuda: "11.8",
            cudnn: "8",
            base: Some("nvidia/cuda:11.8.0-cudnn8-devel-ubuntu22.04"),
        },
        CudaCase {
            name: "torch 2.6.0 picks 12.6 and cuDNN 9",
            extra: "",
            requirements: Some("torch==2.6.0\n"),
            cuda: "12.6",
            cudnn: "9",
            base: Some("nvidia/cuda:12.6.3-cudnn-devel-ubuntu24.04"),
        },
        CudaCase {
            name: "torch local tag decides",
            extra: "",
            requirements: Some("torch==2.7.1+cu118\n"),
            cuda: "11.8",
            cudnn: "8",
            base: Some("nvidia/cuda:11.8.0-cudnn8-devel-ubuntu22.04"),
        },
        CudaCase {
            name: "torch range uses its first version",
            extra: "",
            requirements: Some("torch>=2.1,<2.2\n"),
            cuda: "12.1",
            cudnn: "8",
            base: Some("nvidia/cuda:12.1.1-cudnn8-devel-ubuntu22.04"),
        },
        CudaCase {
            name: "explicit cuda kept, cudnn completed",
            extra: "  cuda: \"12.4\"\n",
            requirements: Some("torch==2.5.1\n"),
            cuda: "12.4",
            cudnn: "9",
            base: Some("nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04"),
        },
        CudaCase {
            name: "tensorflow 2.12.0",
            extra: "",
            requirements: Some("tensorflow==2.12.0\n"),
            cuda: "11.8",
            cudnn: "8",
            base: Some("nvidia/cuda:11.8.0-cudnn8-devel-ubuntu22.04"),
        },
        CudaCase {
            name: "tensorflow 2.16.1 has no base image for its pair",
            extra: "",
            requirements: Some("tensorflow==2.16.1\n"),
            cuda: "12.3",
            cudnn: "8",
            base: None,
        },
        CudaCase {
            name: "CUDA 13",
            extra: "  cuda: \"13.0\"\n",
            requirements: None,
            cuda: "13.0",
            cudnn: "9",
            base: Some("nvidia/cuda:13.0.3-cudnn-devel-ubuntu24.04"),
        },
        CudaCase {
            name: "torch in a local wheel is ignored",
            extra: "",
            requirements: Some("./wheels/torch-2.5.1-cp312-cp312-linux_x86_64.whl\n"),
            cuda: "11.8",
            cudnn: "8",
            base: Some("nvidia/cuda:11.8.0-cudnn8-devel-ubuntu22.04"),
        },
    ];
    for case in cases {
        let yaml = format!("{}{}", gpu("3.12"), case.extra);
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("wheels")).expect("mkdir");
        std::fs::write(
            dir.path()
                .join("wheels/torch-2.5.1-cp312-cp312-linux_x86_64.whl"),
            b"PK",
        )
        .expect("write");
        std::fs::write(dir.path().join("predict.py"), "").expect("write");
        let mut full = yaml.clone();
        if let Some(body) = case.requirements {
            std::fs::write(dir.path().join("requirements.txt"), body).expect("write");
            full.push_str("  python_requirements: requirements.txt\n");
        }
        full.push_str("predict: predict.py:Predictor\n");
        std::fs::write(dir.path().join("cog.yaml"), full).expect("write");
        let p =
            config::load(dir.path(), "cog.yaml").unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(
            cuda_pair(&p),
            (case.cuda.to_string(), case.cudnn.to_string()),
            "{}",
            case.name
        );
        match case.base {
            Some(expected) => assert_eq!(
                p.cuda_base_image_tag().expect(case.name),
                expected,
                "{}",
                case.name
            ),
            None => {
                let e = p.cuda_base_image_tag().expect_err(case.name);
                assert_eq!(
                    e.problems[0].message,
                    format!(
                        "no matching base image for CUDA {} and CuDNN {}",
                        case.cuda, case.cudnn
                    )
                );
            }
        }
    }
}

#[test]
fn cuda_completion_errors() {
    let cases: [(&str, &str, Option<&str>, &str); 6] = [
        (
            "unversioned torch",
            "",
            Some("torch\n"),
            "torch version must be specified when using CUDA",
        ),
        (
            "unknown torch",
            "",
            Some("torch==1.0.0\n"),
            "cog doesn't know what CUDA version is compatible with torch==1.0.0. You might need to upgrade Cog: https://github.com/replicate/cog#upgrade\n\nIf that doesn't work, you need to set the 'cuda' option in cog.yaml to set what version to use. You might be able to find this out from https://pytorch.org/",
        ),
        (
            "unknown tensorflow",
            "",
            Some("tensorflow==9.9.9\n"),
            "cog doesn't know what CUDA version is compatible with tensorflow==9.9.9. You might need to upgrade Cog: https://github.com/replicate/cog#upgrade\n\nIf that doesn't work, you need to set the 'cuda' option in cog.yaml to set what version to use. You might be able to find this out from https://www.tensorflow.org/",
        ),
        (
            "CUDA without images",
            "  cuda: \"11.9\"\n",
            None,
            "CUDA 11.9 is not supported by Cog",
        ),
        (
            "tensorflow cudnn mismatch",
            "  cudnn: \"9\"\n",
            Some("tensorflow==2.12.0\n"),
            "the specified cuDNN version 9 is not compatible with tensorflow==2.12.0.\nCompatible cuDNN version is: 8",
        ),
        (
            "cudnn for unknown CUDA",
            "  cuda: \"11.9\"\n  cudnn: \"8\"\n",
            None,
            "the specified CUDA version 11.9 is not compatible with CuDNN 8.\nCompatible CuDNN versions are: ",
        ),
    ];
    for (name, extra, requirements, message) in cases {
        let (_dir, loaded) = project(&format!("{}{}", gpu("3.11"), extra), requirements);
        let error = loaded.expect_err(name);
        assert_eq!(error.messages(), vec![message], "{name}");
        assert!(!error.problems[0].hint.is_empty(), "{name}");
    }
}

#[test]
fn cuda_mismatch_with_torch_only_warns() {
    let (_dir, loaded) = project(
        &format!("{}  cuda: \"12.4\"\n", gpu("3.11")),
        Some("torch==2.0.1\n"),
    );
    let p = loaded.expect("loads");
    assert_eq!(cuda_pair(&p), ("12.4".to_string(), "9".to_string()));
    assert!(p.warnings.contains(&"Cog doesn't know if CUDA 12.4 is compatible with PyTorch 2.0.1. This might cause CUDA problems.".to_string()), "{:?}", p.warnings);
    assert!(
        p.warnings.contains(&"Try 11.8 instead?".to_string()),
        "{:?}",
        p.warnings
    );
}

#[test]
fn cpu_projects_are_not_completed() {
    let (_dir, loaded) = project(
        "build:\n  python_version: \"3.12\"\n",
        Some("torch==2.5.1\n"),
    );
    let p = loaded.expect("loads");
    assert_eq!(cuda_pair(&p), (String::new(), String::new()));
    assert_eq!(p.torch_version().as_deref(), Some("2.5.1"));
}

/// Answers from a fixed list and records every question.
struct Registry {
    present: Vec<&'static str>,
    failure: Option<&'static str>,
    asked: RefCell<Vec<String>>,
}

impl Registry {
    fn with(present: &[&'static str]) -> Registry {
        Registry {
            present: present.to_vec(),
            failure: None,
            asked: RefCell::new(Vec::new()),
        }
    }
}

impl BaseImageExists for Registry {
    fn exists(&self, reference: &str) -> Result<bool, String> {
        self.asked.borrow_mut().push(reference.to_string());
        match self.failure {
            Some(message) => Err(message.to_string()),
            None => Ok(self.present.contains(&reference)),
        }
    }
}

fn select(
    yaml: &str,
    requirements: Option<&str>,
    flags: BaseFlags,
    registry: &dyn BaseImageExists,
) -> Result<base::BaseSelection, config::ConfigError> {
    let (_dir, loaded) = project(yaml, requirements);
    base::select_base(&loaded.expect("loads"), &flags, "r8.im", registry)
}

fn cpu(python: &str) -> String {
    format!("build:\n  python_version: \"{python}\"\n")
}

#[test]
fn base_selection_offline_examples() {
    let auto = BaseFlags::default();
    let cases: [(&str, String, Option<&str>, &str); 7] = [
        (
            "cpu python only",
            cpu("3.12"),
            None,
            "r8.im/cog-base:python3.12",
        ),
        (
            "cpu patch stripped",
            cpu("3.12.1"),
            None,
            "r8.im/cog-base:python3.12",
        ),
        (
            "cpu torch minor normalised",
            cpu("3.12"),
            Some("torch==2.3\n"),
            "r8.im/cog-base:python3.12-torch2.3.1",
        ),
        (
            "gpu torch 2.0.1",
            gpu("3.10"),
            Some("torch==2.0.1\n"),
            "r8.im/cog-base:cuda11.8-python3.10-torch2.0.1",
        ),
        (
            "gpu torch local tag",
            gpu("3.10"),
            Some("torch==2.0.1+cu118\n"),
            "r8.im/cog-base:cuda11.8-python3.10-torch2.0.1",
        ),
        (
            "gpu torch 2.6 on 3.13",
            gpu("3.13"),
            Some("torch==2.6.0\n"),
            "r8.im/cog-base:cuda12.6-python3.13-torch2.6.0",
        ),
        (
            "gpu old torch drops to python+cuda",
            gpu("3.10"),
            Some("torch==1.13.0\n"),
            "r8.im/cog-base:cuda11.7-python3.10",
        ),
    ];
    for (name, yaml, requirements, expected) in cases {
        let selection = select(&yaml, requirements, auto, &AssumeCandidatesExist).expect(name);
        assert_eq!(selection.reference, expected, "{name}");
        assert_eq!(selection.path, BasePath::CogBase, "{name}");
        assert!(selection.cog_base_attempted, "{name}");
    }
    let stripped = select(&cpu("3.12.1"), None, auto, &AssumeCandidatesExist).expect("stripped");
    assert_eq!(
        stripped.warnings,
        vec!["Stripping patch version from Python version 3.12.1 to 3.12"]
    );
}

#[test]
fn base_selection_falls_back_like_cog() {
    let auto = BaseFlags::default();
    let registry = Registry::with(&[]);
    let s = select(&cpu("3.12"), Some("torch==2.3.0\n"), auto, &registry).expect("fallback");
    assert_eq!(s.reference, "python:3.12-slim");
    assert_eq!(s.path, BasePath::PythonSlim);
    assert_eq!(
        *registry.asked.borrow(),
        vec!["r8.im/cog-base:python3.12-torch2.3.0"],
        "only one attempt"
    );
    assert_eq!(
        s.warnings,
        vec![
            "Could not find a suitable base image, continuing without base image support (unsupported base image configuration: CUDA: (none) / Python: 3.12 / Torch: 2.3.0)."
        ]
    );
    assert_eq!(
        s.cog_base_candidate.as_deref(),
        Some("r8.im/cog-base:python3.12-torch2.3.0")
    );

    let registry = Registry::with(&["r8.im/cog-base:cuda11.8-python3.10"]);
    let s = select(&gpu("3.10"), Some("torch==1.13.0\n"), auto, &registry).expect("gpu fallback");
    assert_eq!(s.reference, "nvidia/cuda:11.7.1-cudnn8-devel-ubuntu22.04");
    assert_eq!(s.path, BasePath::NvidiaCuda);
    assert_eq!(
        *registry.asked.borrow(),
        vec!["r8.im/cog-base:cuda11.7-python3.10"]
    );

    let unknown_python = select(&cpu("3.15"), None, auto, &Registry::with(&[])).expect("3.15");
    assert_eq!(unknown_python.reference, "python:3.15-slim");
    assert_eq!(
        unknown_python.warnings,
        vec![
            "Could not find a suitable base image, continuing without base image support (unsupported base image configuration: CUDA: (none) / Python: 3.15 / Torch: (none))."
        ]
    );

    let broken = Registry {
        present: vec![],
        failure: Some("GET https://r8.im/v2/: connection refused"),
        asked: RefCell::new(Vec::new()),
    };
    let s = select(&cpu("3.11"), None, auto, &broken).expect("registry failure in auto mode");
    assert_eq!(s.reference, "python:3.11-slim");
    assert_eq!(
        s.warnings,
        vec![
            "Could not find a suitable base image, continuing without base image support (GET https://r8.im/v2/: connection refused)."
        ]
    );
}

#[test]
fn base_selection_flags() {
    let forced = BaseFlags {
        use_cog_base_image: Some(true),
        use_cuda_base_image: None,
    };
    let error = select(
        &cpu("3.12"),
        Some("torch==2.3.0\n"),
        forced,
        &Registry::with(&[]),
    )
    .expect_err("forced cog-base");
    assert_eq!(
        error.messages(),
        vec!["unsupported base image configuration: CUDA: (none) / Python: 3.12 / Torch: 2.3.0"]
    );

    let off = BaseFlags {
        use_cog_base_image: Some(false),
        use_cuda_base_image: None,
    };
    let registry = Registry::with(&[]);
    let s = select(&gpu("3.11"), None, off, &registry).expect("no cog-base");
    assert_eq!(s.reference, "nvidia/cuda:11.8.0-cudnn8-devel-ubuntu22.04");
    assert!(!s.cog_base_attempted);
    assert!(registry.asked.borrow().is_empty());

    let no_cuda = BaseFlags {
        use_cog_base_image: Some(false),
        use_cuda_base_image: Some(false),
    };
    let s =
        select(&gpu("3.11"), None, no_cuda, &AssumeCandidatesExist).expect("python slim for gpu");
    assert_eq!(s.reference, "python:3.11-slim");
    assert_eq!(s.path, BasePath::PythonSlim);

    let (_dir, loaded) = project(&cpu("3.11"), None);
    let s = base::select_base(
        &loaded.expect("loads"),
        &BaseFlags::default(),
        "ghcr.io/replicate/cog",
        &AssumeCandidatesExist,
    )
    .expect("ghcr");
    assert_eq!(s.reference, "ghcr.io/replicate/cog/cog-base:python3.11");

    assert_eq!(
        no_cuda.check_exclusive(false),
        Err("The flags --use-cog-base-image and --use-cuda-base-image are mutually exclusive: you can only set one of them.".to_string())
    );
    assert_eq!(
        BaseFlags { use_cog_base_image: None, use_cuda_base_image: Some(true) }.check_exclusive(true),
        Err("The flags --use-cuda-base-image and --dockerfile are mutually exclusive: you can only set one of them.".to_string())
    );
    assert_eq!(off.check_exclusive(false), Ok(()));
    assert_eq!(BaseFlags::default().check_exclusive(true), Ok(()));
}

#[test]
fn cog_base_naming() {
    assert_eq!(
        base::cog_base_reference("r8.im", "", "", ""),
        "r8.im/cog-base:latest"
    );
    for (cuda, python, torch, expected) in [
        ("", "3.10", "", "r8.im/cog-base:python3.10"),
        ("", "3.10", "2.1", "r8.im/cog-base:python3.10-torch2.1.2"),
        ("12.1", "3.10", "", "r8.im/cog-base:cuda12.1-python3.10"),
        (
            "12.1",
            "3.10",
            "2.1",
            "r8.im/cog-base:cuda12.1-python3.10-torch2.1.2",
        ),
    ] {
        let (c, p, t) = base::normalise_components(cuda, python, torch);
        assert_eq!(base::cog_base_reference("r8.im", &c, &p, &t), expected);
    }
    assert_eq!(
        base::cog_base_reference("r8.im", "12.4.1", "3.12", "2.5.1+cu124"),
        "r8.im/cog-base:cuda12.4-python3.12-torch2.5.1"
    );
    assert_eq!(
        base::normalise_components("", "3.12", "2.3"),
        (String::new(), "3.12".to_string(), "2.3.1".to_string())
    );
    assert_eq!(
        base::normalise_components("11.8", "3.10", "2.0.1+cu118").2,
        "2.0.1"
    );
    assert_eq!(base::normalise_components("11.7", "3.10", "1.13.0").2, "");
    assert!(base::is_candidate("", "3.10", ""));
    assert!(!base::is_candidate("", "3.9", ""));
}
