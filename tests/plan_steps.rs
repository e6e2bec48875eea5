//! The build plan: step order per base path, native support and the up-front
//! refusal, image config (env order, entrypoint, labels), errors, rendering.

use cogpack::config::base::AssumeCandidatesExist;
use cogpack::plan::{self, BasePath, BuildPlan, PlanError, PlanOptions, StepKind};

/// Loads `yaml` as cog.yaml of a temporary project holding `files`.
fn project(yaml: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, cogpack::config::Project) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("predict.py"),
        "class Predictor:\n    def predict(self) -> str:\n        return ''\n",
    )
    .unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    std::fs::write(dir.path().join("cog.yaml"), yaml).unwrap();
    let loaded = cogpack::config::load(dir.path(), "cog.yaml").expect("project loads");
    (dir, loaded)
}

fn plan_of(yaml: &str, options: PlanOptions) -> BuildPlan {
    let (_dir, loaded) = project(yaml, &[]);
    plan::plan(&loaded, &options, &AssumeCandidatesExist).expect("plan")
}

fn ids(plan: &BuildPlan) -> Vec<&str> {
    plan.steps.iter().map(|s| s.id.as_str()).collect()
}

fn no_cog_base() -> PlanOptions {
    PlanOptions {
        use_cog_base_image: Some(false),
        ..PlanOptions::default()
    }
}

const CPU: &str = "build:\n  python_version: \"3.12\"\npredict: predict.py:Predictor\n";

#[test]
fn path_a_steps_in_cog_order() {
    let plan = plan_of(CPU, no_cog_base());
    assert_eq!(plan.base.path, BasePath::PythonSlim);
    assert_eq!(
        ids(&plan),
        vec![
            "preamble",
            "tini",
            "uv",
            "cog-runtime",
            "ldconfig",
            "workdir",
            "runtime-config",
            "source",
            "cog-files"
        ]
    );
}

#[test]
fn path_b_adds_python_install_and_break_system_packages() {
    let yaml = "build:\n  gpu: true\n  python_version: \"3.11\"\n  system_packages: [libgl1]\n  run: [\"echo hi\"]\npredict: predict.py:Predictor\n";
    let plan = plan_of(yaml, no_cog_base());
    assert_eq!(
        plan.base.reference,
        "nvidia/cuda:11.8.0-cudnn8-devel-ubuntu22.04"
    );
    assert_eq!(
        ids(&plan),
        vec![
            "preamble",
            "tini",
            "system-packages",
            "python-prerequisites",
            "uv",
            "python-install",
            "cog-runtime",
            "ldconfig",
            "run-1",
            "workdir",
            "runtime-config",
            "source",
            "cog-files"
        ]
    );
    let runtime = plan.step("cog-runtime").unwrap();
    assert!(matches!(
        runtime.kind,
        StepKind::CogRuntime {
            break_system_packages: true,
            ..
        }
    ));
}

#[test]
fn path_c_inherits_preamble_tini_and_ldconfig_from_the_base() {
    let plan = plan_of(CPU, PlanOptions::default());
    assert_eq!(plan.base.path, BasePath::CogBase);
    assert_eq!(plan.base.reference, "r8.im/cog-base:python3.12");
    assert_eq!(
        ids(&plan),
        vec![
            "uv",
            "cog-runtime",
            "workdir",
            "runtime-config",
            "source",
            "cog-files"
        ]
    );
    assert_eq!(
        plan.image.entrypoint, None,
        "the base image's entrypoint is kept"
    );
    assert_eq!(
        plan.image
            .labels
            .get("run.cog.cog-base-image-name")
            .unwrap(),
        "r8.im/cog-base:python3.12"
    );
    assert!(
        plan.image
            .pending_labels
            .contains(&"run.cog.cog-base-image-last-layer-sha".to_string())
    );
    let facts = plan
        .base
        .facts
        .as_ref()
        .expect("catalog knows cog-base images");
    assert_eq!(facts.python.as_deref(), Some("3.12"));
}

#[test]
fn native_blockers_list_every_step_that_runs_code_in_the_image() {
    let yaml = "build:\n  gpu: true\n  python_version: \"3.11\"\n  system_packages: [libgl1]\n  run:\n    - echo one\n    - command: echo two\n      mounts: [{type: secret, id: tok, target: /run/tok}]\npredict: predict.py:Predictor\n";
    let plan = plan_of(yaml, no_cog_base());
    let blockers: Vec<&str> = plan
        .native_blockers()
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(
        blockers,
        vec![
            "system-packages",
            "python-prerequisites",
            "python-install",
            "cog-runtime",
            "run-1",
            "run-2"
        ]
    );
    // ldconfig is substituted natively: cog.conf is written, no cache rebuilt.
    assert!(matches!(
        plan.step("ldconfig").map(|s| &s.native),
        Some(cogpack::plan::NativeSupport::Substituted { .. })
    ));
    let error = plan.check_native().unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("the native engine cannot build this project yet: 6 step(s)"),
        "{message}"
    );
    assert!(
        message.contains("[run-2] run command: echo two: runs a shell command inside the image"),
        "{message}"
    );
    assert!(message.contains("[python-install]"), "{message}");
    assert!(
        message
            .trim_end()
            .ends_with("nothing was downloaded or built"),
        "{message}"
    );
    assert!(message.contains("--backend docker"), "{message}");
}

#[test]
fn path_b_is_native_when_the_sandbox_runs() {
    let yaml = "build:\n  gpu: true\n  python_version: \"3.11\"\n  python_packages: [\"numpy==2.1.3\"]\npredict: predict.py:Predictor\n";
    let plan = plan_of(
        yaml,
        PlanOptions {
            sandbox: true,
            ..no_cog_base()
        },
    );
    assert_eq!(plan.base.path, BasePath::NvidiaCuda);
    assert!(
        plan.native_blockers().is_empty(),
        "{:?}",
        plan.native_blockers()
    );
    for id in ["python-prerequisites", "python-install"] {
        assert_eq!(
            plan.step(id).map(|s| &s.native),
            Some(&plan::NativeSupport::Native),
            "{id}"
        );
    }
    for id in ["requirements", "cog-runtime"] {
        match plan.step(id).map(|s| &s.native) {
            Some(plan::NativeSupport::Substituted { how }) => {
                assert!(how.contains("uv-managed Python"), "{id}: {how}")
            }
            other => panic!("{id}: {other:?}"),
        }
    }
    // The sandbox runs cog's exact F7 line.
    let install = plan.step("python-install").unwrap();
    let lines = cogpack::backend::docker::step_instructions(install);
    assert_eq!(
        lines[0],
        "RUN uv python install 3.11 && \\\n\tln -sf $(uv python find 3.11) /usr/bin/python3 && \\\n\tln -sf $(uv python find 3.11) /usr/local/bin/python"
    );
    let stripped = plan_of(
        yaml,
        PlanOptions {
            sandbox: true,
            strip: true,
            ..no_cog_base()
        },
    );
    let ids: Vec<&str> = stripped
        .native_blockers()
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(ids, vec!["requirements", "cog-runtime"]);
}

#[test]
fn cog_base_plan_without_commands_is_fully_native() {
    let yaml = "build:\n  python_version: \"3.12\"\n  python_packages: [\"numpy==2.1.3\"]\npredict: predict.py:Predictor\nenvironment: [\"HF_HOME=/src/hf\"]\n";
    let plan = plan_of(yaml, PlanOptions::default());
    assert!(
        plan.native_blockers().is_empty(),
        "{:?}",
        plan.native_blockers()
    );
    assert!(plan.check_native().is_ok());
    let requirements = plan.step("requirements").unwrap();
    assert!(matches!(
        requirements.native,
        plan::NativeSupport::Substituted { .. }
    ));
}

#[test]
fn strip_makes_python_installs_non_native() {
    let options = PlanOptions {
        strip: true,
        ..PlanOptions::default()
    };
    let plan = plan_of(CPU, options);
    let blockers: Vec<&str> = plan
        .native_blockers()
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(blockers, vec!["cog-runtime"]);
}

#[test]
fn final_env_follows_docker_order_on_an_nvidia_base() {
    let yaml = "build:\n  gpu: true\n  python_version: \"3.11\"\npredict: predict.py:Predictor\nenvironment: [\"HF_HOME=/src/hf\"]\n";
    let plan = plan_of(yaml, no_cog_base());
    let base_env = [
        "PATH=/usr/local/nvidia/bin:/usr/local/cuda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        "LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64".to_string(),
        "NVIDIA_VISIBLE_DEVICES=all".to_string(),
    ];
    let expected = vec![
        "PATH=/usr/local/bin:/usr/local/nvidia/bin:/usr/local/cuda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64:/usr/lib/x86_64-linux-gnu:/usr/local/nvidia/lib64:/usr/local/nvidia/bin",
        "NVIDIA_VISIBLE_DEVICES=all",
        "DEBIAN_FRONTEND=noninteractive",
        "PYTHONUNBUFFERED=1",
        "NVIDIA_DRIVER_CAPABILITIES=all",
        "HF_HOME=/src/hf",
        "UV_SYSTEM_PYTHON=true",
        "UV_PYTHON=3.11",
        "CFLAGS=",
        "COG_PREDICT_TYPE_STUB=predict.py:Predictor",
    ];
    assert_eq!(plan.image.final_env(&base_env), expected);
}

#[test]
fn image_config_and_labels_on_path_a() {
    let options = PlanOptions {
        use_cog_base_image: Some(false),
        cog_version: "0.19.0".into(),
        decorator_concurrency: Some(3),
        git_revision: Some("0123abc".into()),
        git_version: Some("v1.2.0-dirty".into()),
        ..PlanOptions::default()
    };
    let plan = plan_of(CPU, options);
    let image = &plan.image;
    assert_eq!(
        image.entrypoint,
        Some(vec!["/sbin/tini".to_string(), "--".to_string()])
    );
    assert_eq!(image.cmd, vec!["python", "-m", "cog.server.http"]);
    assert_eq!(image.working_dir, "/src");
    assert_eq!(image.exposed_ports, vec!["5000/tcp"]);
    let labels: Vec<(&str, &str)> = image
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        vec![
            ("org.opencontainers.image.revision", "0123abc"),
            ("org.opencontainers.image.version", "v1.2.0-dirty"),
            (
                "run.cog.config",
                r#"{"build":{"python_version":"3.12"},"predict":"predict.py:Predictor","concurrency":{"max":3}}"#
            ),
            ("run.cog.has_init", "true"),
            ("run.cog.version", "0.19.0"),
        ]
    );
    assert!(
        image
            .final_env(&[])
            .contains(&"COG_MAX_CONCURRENCY=3".to_string())
    );
}

#[test]
fn multiline_run_command_is_cogs_error() {
    let (_dir, loaded) = project(CPU, &[]);
    let mut loaded = loaded;
    loaded
        .config
        .build
        .as_mut()
        .unwrap()
        .run
        .push(cogpack::config::RunItem {
            command: "echo a\necho b".into(),
            mounts: vec![],
        });
    let error = plan::plan(&loaded, &no_cog_base(), &AssumeCandidatesExist).unwrap_err();
    assert!(matches!(error, PlanError::RunCommandNewline(_)));
    assert_eq!(
        error.to_string(),
        "One of the commands in 'run' contains a new line, which won't work. You need to create a new list item in YAML prefixed with '-' for each command.\n\nThis is the offending line: echo a\necho b"
    );
}

#[test]
fn wheel_selection_errors_are_clear() {
    let (dir, loaded) = project(
        CPU,
        &[
            ("dist/cog-0.17.0-py3-none-any.whl", "x"),
            ("dist/cog-0.17.1-py3-none-any.whl", "x"),
        ],
    );
    let with_sdk = |value: &str| PlanOptions {
        cog_sdk_wheel: Some(value.to_string()),
        cwd: dir.path().to_path_buf(),
        ..no_cog_base()
    };
    let error = plan::plan(&loaded, &with_sdk("missing.whl"), &AssumeCandidatesExist)
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(&format!(
            "COG_SDK_WHEEL: path not found: {}",
            dir.path().join("missing.whl").display()
        )),
        "{error}"
    );
    let error = plan::plan(&loaded, &with_sdk("dist"), &AssumeCandidatesExist)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("multiple wheels matching 'cog-*.whl'"),
        "{error}"
    );
    let options = PlanOptions {
        coglet_wheel: Some("dist".into()),
        cwd: dir.path().to_path_buf(),
        ..no_cog_base()
    };
    let error = plan::plan(&loaded, &options, &AssumeCandidatesExist)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("COGLET_WHEEL: no wheel matching 'coglet-*.whl'"),
        "{error}"
    );
}

#[test]
fn coglet_named_sdk_needs_a_major_minor_python() {
    let yaml = "build:\n  python_version: \"3.12.4\"\npredict: predict.py:Predictor\n";
    let (_dir, loaded) = project(yaml, &[]);
    let options = PlanOptions {
        cog_sdk_wheel: Some("https://example.com/coglet-0.1.0-py3-none-any.whl".into()),
        ..no_cog_base()
    };
    let error = plan::plan(&loaded, &options, &AssumeCandidatesExist)
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("Python version must be <major>.<minor> for coglet"),
        "{error}"
    );
}

#[test]
fn sdk_below_minimum_names_the_version() {
    let yaml = "build:\n  python_version: \"3.12\"\n  sdk_version: \"0.15.2\"\npredict: predict.py:Predictor\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("predict.py"),
        "class Predictor:\n    pass\n",
    )
    .unwrap();
    let message = match cogpack::config::load_str(dir.path(), "cog.yaml", yaml) {
        Ok(loaded) => plan::plan(&loaded, &no_cog_base(), &AssumeCandidatesExist)
            .unwrap_err()
            .to_string(),
        Err(error) => error.to_string(),
    };
    assert!(
        message.contains("cog version 0.15.2 is below the minimum required version 0.16.0"),
        "{message}"
    );
}

#[test]
fn json_rendering_carries_steps_native_status_and_image() {
    let plan = plan_of(
        "build:\n  python_version: \"3.12\"\n  run: [\"echo hi\"]\npredict: predict.py:Predictor\n",
        PlanOptions::default(),
    );
    let json: serde_json::Value = serde_json::from_str(&plan.to_json()).unwrap();
    assert_eq!(json["platform"], "linux/amd64");
    assert_eq!(json["base"]["path"], "cog_base");
    assert_eq!(json["base"]["reference"], "r8.im/cog-base:python3.12");
    let steps = json["steps"].as_array().unwrap();
    let run = steps.iter().find(|s| s["id"] == "run-1").unwrap();
    assert_eq!(run["kind"], "run_command");
    assert_eq!(run["command"], "echo hi");
    assert_eq!(run["native"]["status"], "unsupported");
    let uv = steps.iter().find(|s| s["id"] == "uv").unwrap();
    assert_eq!(uv["native"]["status"], "native");
    assert_eq!(uv["image"], "ghcr.io/astral-sh/uv:0.9.26");
    assert_eq!(json["image"]["working_dir"], "/src");
    assert_eq!(json["image"]["labels"]["run.cog.has_init"], "true");
}

#[test]
fn ca_cert_bytes_stay_out_of_json_but_their_digest_is_shown() {
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let options = PlanOptions {
        ca_cert: Some(pem.as_bytes().to_vec()),
        ..no_cog_base()
    };
    let plan = plan_of(CPU, options);
    let json = plan.to_json();
    assert!(!json.contains("MIIB"));
    assert!(json.contains("\"sha256\": \"8010bfcee1842b2a"), "{json}");
    assert_eq!(plan.steps[1].id, "ca-cert");
    assert!(
        plan.image
            .final_env(&[])
            .contains(&"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt".to_string())
    );
}

#[test]
fn text_rendering_names_base_steps_and_verdict() {
    let yaml = "build:\n  python_version: \"3.12\"\n  system_packages: [ffmpeg, libpq-dev]\npredict: predict.py:Predictor\n";
    let text = plan_of(yaml, PlanOptions::default()).to_string();
    assert!(
        text.contains("base:     r8.im/cog-base:python3.12 (path C: cog-base)"),
        "{text}"
    );
    assert!(
        text.contains("docker    system packages (libpq-dev) [system-packages]"),
        "{text}"
    );
    assert!(
        text.contains("already in the cog-base image: ffmpeg"),
        "{text}"
    );
    assert!(
        text.contains("native*   cog runtime (cog) [cog-runtime]"),
        "{text}"
    );
    assert!(
        text.ends_with(
            "native engine: cannot build 1 step(s) yet (system-packages); use --backend docker"
        ),
        "{text}"
    );
}

#[test]
fn step_ids_are_unique_and_stable() {
    let yaml = "build:\n  python_version: \"3.12\"\n  run: [\"a\", \"b\"]\n  pre_install: [\"c\"]\npredict: predict.py:Predictor\n";
    let first = plan_of(yaml, no_cog_base());
    let second = plan_of(yaml, no_cog_base());
    assert_eq!(ids(&first), ids(&second));
    let mut seen = std::collections::BTreeSet::new();
    for id in ids(&first) {
        assert!(seen.insert(id), "duplicate step id {id}");
    }
    assert!(ids(&first).ends_with(&[
        "run-1",
        "run-2",
        "run-3",
        "workdir",
        "runtime-config",
        "source",
        "cog-files"
    ]));
}

#[test]
fn secret_mounts_without_a_secret_flag_warn() {
    let yaml = "build:\n  python_version: \"3.12\"\n  run:\n    - command: echo x\n      mounts: [{type: secret, id: tok, target: /run/tok}]\n    - command: echo y\n      mounts: [{type: secret, id: given, target: /run/given}]\npredict: predict.py:Predictor\n";
    let (dir, loaded) = project(yaml, &[]);
    let options = PlanOptions {
        secrets: vec![plan::SecretSpec::parse("id=given,env=GIVEN", dir.path()).unwrap()],
        ..no_cog_base()
    };
    let plan = plan::plan_offline(&loaded, &options).unwrap();
    let secret_warnings: Vec<&String> = plan
        .warnings
        .iter()
        .filter(|w| w.contains("mounts secret"))
        .collect();
    assert_eq!(secret_warnings.len(), 1, "{:?}", plan.warnings);
    assert!(secret_warnings[0].contains("run-1 mounts secret \"tok\" at /run/tok"));
}

#[test]
fn explicit_base_flags_are_mutually_exclusive() {
    let (_dir, loaded) = project(CPU, &[]);
    let options = PlanOptions {
        use_cog_base_image: Some(true),
        use_cuda_base_image: Some(false),
        ..PlanOptions::default()
    };
    let error = plan::plan_offline(&loaded, &options)
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("The flags --use-cog-base-image and --use-cuda-base-image are mutually exclusive: you can only set one of them."),
        "{error}"
    );
}
