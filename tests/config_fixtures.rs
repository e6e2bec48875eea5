//! Whole fixture projects under fixtures/config/: load, label, base choice and
//! requirements, with every expected value written by hand from the spec.

use cogpack::config::base::{self, AssumeCandidatesExist, BaseFlags, BasePath};
use cogpack::config::{self, Project, requirements};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/config")
        .join(name)
}

fn load(name: &str) -> Project {
    config::load(&fixture(name), "cog.yaml").unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn offline_base(project: &Project, flags: BaseFlags) -> base::BaseSelection {
    base::select_base(project, &flags, "r8.im", &AssumeCandidatesExist).expect("base")
}

#[test]
fn cpu_basic() {
    let p = load("cpu-basic");
    assert_eq!(
        p.warnings,
        vec!["deprecated field \"predict\": use \"run\" instead"]
    );
    assert_eq!(
        p.config.effective_json(None),
        r#"{"build":{"python_version":"3.12","python_requirements":"requirements.txt"},"predict":"predict.py:Predictor"}"#
    );
    assert_eq!(
        offline_base(&p, BaseFlags::default()).reference,
        "r8.im/cog-base:python3.12"
    );
    assert_eq!(
        requirements::rewrite(&p).expect("rewrite").text,
        "numpy==1.26.4\npillow==10.4.0"
    );
    assert_eq!(config::default_image_name(&p.dir), "cog-cpu-basic");
}

#[test]
fn gpu_torch() {
    let p = load("gpu-torch");
    assert_eq!(
        p.config.effective_json(None),
        concat!(
            r#"{"build":{"gpu":true,"python_version":"3.11","python_requirements":"requirements.txt","#,
            r#""run":[{"command":"curl -o /usr/local/bin/pget -L \"https://example.invalid/pget\" \u0026\u0026 chmod +x /usr/local/bin/pget"}],"#,
            r#""system_packages":["ffmpeg","libgl1"],"cuda":"12.4","cudnn":"9"},"#,
            r#""predict":"predict.py:Predictor","environment":["HF_HOME=/src/.hf"]}"#
        )
    );
    let auto = offline_base(&p, BaseFlags::default());
    assert_eq!(
        auto.reference,
        "r8.im/cog-base:cuda12.4-python3.11-torch2.5.1"
    );
    assert_eq!(auto.path, BasePath::CogBase);
    let no_cog_base = offline_base(
        &p,
        BaseFlags {
            use_cog_base_image: Some(false),
            use_cuda_base_image: None,
        },
    );
    assert_eq!(
        no_cog_base.reference,
        "nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04"
    );
    let out = requirements::rewrite(&p).expect("rewrite");
    assert_eq!(
        out.text,
        "--extra-index-url https://download.pytorch.org/whl/cu124/\ntorch==2.5.1\ntorchvision==0.20.1"
    );
    assert_eq!(
        out.warnings,
        vec![
            "'cog==0.9.26' found in requirements — overriding with latest cog from PyPI. Remove it from requirements and use build.sdk_version in cog.yaml or COG_SDK_WHEEL to control the version."
        ]
    );
    assert_eq!(
        p.environment,
        vec![("HF_HOME".to_string(), "/src/.hf".to_string())]
    );
}

#[test]
fn local_wheel() {
    let p = load("local-wheel");
    assert_eq!(p.local_artifacts.len(), 1);
    assert_eq!(
        p.local_artifacts[0].project_relative,
        "wheels/hello_cogpack-0.1.0-py3-none-any.whl"
    );
    assert_eq!(
        p.local_artifacts[0].line,
        "./wheels/hello_cogpack-0.1.0-py3-none-any.whl"
    );
    let out = requirements::rewrite(&p).expect("rewrite");
    assert_eq!(
        out.text,
        "/tmp/local_package_artifacts/wheels/hello_cogpack-0.1.0-py3-none-any.whl\nrequests==2.32.3"
    );
    let wheel = std::fs::read(&p.local_artifacts[0].path).expect("wheel readable");
    assert_eq!(&wheel[..2], b"PK");
}

#[test]
fn legacy_python() {
    let e = config::load(&fixture("legacy-py39"), "cog.yaml").expect_err("3.9");
    assert_eq!(
        e.messages(),
        vec!["invalid build.python_version \"3.9\": minimum supported Python version is 3.10"]
    );
    assert_eq!(e.problems[0].line, Some(2));
    assert!(e.problems[0].hint.contains("3.10"));
}

#[test]
fn weights_model() {
    let p = load("weights-model");
    assert_eq!(
        p.config.effective_json(None),
        r#"{"build":{"python_version":"3.13"},"model":"registry.example.com/acme/llm","predict":"predict.py:Predictor","weights":[{"name":"base","target":"/src/weights","source":{"uri":"weights/","exclude":["*.md"]}}]}"#
    );
    assert_eq!(p.config.weights[0].sources.len(), 1);
    assert!(!p.config.weights[0].source_is_list);
    assert_eq!(
        offline_base(&p, BaseFlags::default()).reference,
        "r8.im/cog-base:python3.13"
    );
}
