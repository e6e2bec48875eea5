//! Every validation rule of spec §1.4 with cog's exact texts, all problems
//! collected, deprecation and unknown-key warnings (§1.5), python_version as text.

use cogpack::config::{self, ConfigError, Project};
use std::path::Path;
use tempfile::TempDir;

/// A project directory holding `cog.yaml` plus `files` (a `predict.py`,
/// `train.py` and `run.py` are always present so refs resolve).
fn project_with(yaml: &str, files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["predict.py", "train.py", "run.py"] {
        std::fs::write(dir.path().join(name), "class P: pass\n").expect("write");
    }
    for (name, body) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, body).expect("write");
    }
    std::fs::write(dir.path().join("cog.yaml"), yaml).expect("write cog.yaml");
    dir
}

fn load_ok(yaml: &str, files: &[(&str, &str)]) -> (TempDir, Project) {
    let dir = project_with(yaml, files);
    let project = config::load(dir.path(), "cog.yaml")
        .unwrap_or_else(|e| panic!("expected {yaml:?} to load, got:\n{e}"));
    (dir, project)
}

fn load_err(yaml: &str, files: &[(&str, &str)]) -> ConfigError {
    let dir = project_with(yaml, files);
    match config::load(dir.path(), "cog.yaml") {
        Ok(_) => panic!("expected {yaml:?} to fail"),
        Err(e) => e,
    }
}

fn messages(e: &ConfigError) -> Vec<String> {
    e.problems.iter().map(|p| p.message.clone()).collect()
}

struct Case {
    name: &'static str,
    yaml: &'static str,
    files: &'static [(&'static str, &'static str)],
    errors: &'static [&'static str],
}

const PY: &str = "build:\n  python_version: \"3.12\"\n";

#[test]
fn validation_rules_table() {
    let cases = [
        Case {
            name: "run ref without .py:",
            yaml: "build:\n  python_version: \"3.12\"\nrun: predict:Predictor\n",
            files: &[],
            errors: &["invalid run \"predict:Predictor\": must be in the form 'run.py:Runner'"],
        },
        Case {
            name: "predict ref without .py:",
            yaml: "build:\n  python_version: \"3.12\"\npredict: predict.Predictor\n",
            files: &[],
            errors: &[
                "invalid predict \"predict.Predictor\": must be in the form 'predict.py:Predictor'",
            ],
        },
        Case {
            name: "train ref with two .py:",
            yaml: "build:\n  python_version: \"3.12\"\ntrain: a.py:b.py:C\n",
            files: &[],
            errors: &["invalid train \"a.py:b.py:C\": must be in the form 'train.py:Trainer'"],
        },
        Case {
            name: "run and predict both set",
            yaml: "build:\n  python_version: \"3.12\"\nrun: run.py:Runner\npredict: predict.py:Predictor\n",
            files: &[],
            errors: &[
                "schema error in \"cog.yaml\": Must not validate the schema (not)",
                "invalid run: only one of run or predict can be set",
            ],
        },
        Case {
            name: "python_version missing",
            yaml: "build:\n  gpu: false\n",
            files: &[],
            errors: &[
                "invalid build.python_version: python_version is required. Add it to the build section of your cog.yaml, e.g. `python_version: \"3.13\"`",
            ],
        },
        Case {
            name: "python 3.9",
            yaml: "build:\n  python_version: \"3.9\"\n",
            files: &[],
            errors: &[
                "invalid build.python_version \"3.9\": minimum supported Python version is 3.10",
            ],
        },
        Case {
            name: "python 3.8 unquoted",
            yaml: "build:\n  python_version: 3.8\n",
            files: &[],
            errors: &[
                "invalid build.python_version \"3.8\": minimum supported Python version is 3.10",
            ],
        },
        Case {
            name: "python 2.7.18",
            yaml: "build:\n  python_version: \"2.7.18\"\n",
            files: &[],
            errors: &[
                "invalid build.python_version \"2.7.18\": minimum supported Python version is 3.10",
            ],
        },
        Case {
            name: "python without minor",
            yaml: "build:\n  python_version: \"3\"\n",
            files: &[],
            errors: &[
                "invalid build.python_version \"3\": must include major and minor version (e.g., '3.11')",
            ],
        },
        Case {
            name: "python major not a number",
            yaml: "build:\n  python_version: \"x.11\"\n",
            files: &[],
            errors: &["invalid build.python_version \"x.11\": invalid major version number"],
        },
        Case {
            name: "python minor not a number",
            yaml: "build:\n  python_version: \"3.x\"\n",
            files: &[],
            errors: &["invalid build.python_version \"3.x\": invalid minor version number"],
        },
        Case {
            name: "python_packages and python_requirements",
            yaml: "build:\n  python_version: \"3.12\"\n  python_packages: [numpy]\n  python_requirements: requirements.txt\n",
            files: &[("requirements.txt", "numpy\n")],
            errors: &[
                "invalid build: only one of python_packages or python_requirements can be set, not both",
            ],
        },
        Case {
            name: "requirements file missing",
            yaml: "build:\n  python_version: \"3.12\"\n  python_requirements: reqs/missing.txt\n",
            files: &[],
            errors: &[
                "invalid build.python_requirements \"reqs/missing.txt\": file does not exist",
            ],
        },
        Case {
            name: "cuda without minor",
            yaml: "build:\n  python_version: \"3.12\"\n  gpu: true\n  cuda: \"12\"\n",
            files: &[],
            errors: &[
                "invalid build.cuda \"12\": must include both major and minor versions (e.g., '11.8')",
            ],
        },
        Case {
            name: "cuda major not a number",
            yaml: "build:\n  python_version: \"3.12\"\n  cuda: \"v12.1\"\n",
            files: &[],
            errors: &["invalid build.cuda \"v12.1\": invalid major version number"],
        },
        Case {
            name: "cuda 10.2",
            yaml: "build:\n  python_version: \"3.12\"\n  gpu: true\n  cuda: \"10.2\"\n",
            files: &[],
            errors: &["invalid build.cuda \"10.2\": minimum supported CUDA version is 11"],
        },
        Case {
            name: "cudnn incompatible with cuda",
            yaml: "build:\n  python_version: \"3.12\"\n  gpu: true\n  cuda: \"11.8\"\n  cudnn: \"9\"\n",
            files: &[],
            errors: &[
                "CUDA 11.8 is incompatible with CuDNN 9: compatible CuDNN versions are: 8, 8, 8",
            ],
        },
        Case {
            name: "tensorflow needs another CUDA major",
            yaml: "build:\n  python_version: \"3.11\"\n  gpu: true\n  cuda: \"12.1\"\n  python_requirements: requirements.txt\n",
            files: &[("requirements.txt", "tensorflow==2.12.0\n")],
            errors: &[
                "TensorFlow 2.12.0 is incompatible with CUDA 12.1: TensorFlow 2.12.0 requires CUDA 11.8",
            ],
        },
        Case {
            name: "environment reserved exact",
            yaml: "build:\n  python_version: \"3.12\"\nenvironment:\n  - PATH=/x\n",
            files: &[],
            errors: &[
                "invalid environment: environment variable \"PATH\" is not allowed: reserved for internal use",
            ],
        },
        Case {
            name: "environment reserved prefixes",
            yaml: "build:\n  python_version: \"3.12\"\nenvironment:\n  - CUDA_HOME=/x\n  - R8_X=1\n  - NV_Y=1\n  - KUBERNETES_Z=1\n",
            files: &[],
            errors: &[
                "invalid environment: environment variable \"CUDA_HOME\" is not allowed: reserved for internal use",
                "invalid environment: environment variable \"R8_X\" is not allowed: reserved for internal use",
                "invalid environment: environment variable \"NV_Y\" is not allowed: reserved for internal use",
                "invalid environment: environment variable \"KUBERNETES_Z\" is not allowed: reserved for internal use",
            ],
        },
        Case {
            name: "environment duplicate key",
            yaml: "build:\n  python_version: \"3.12\"\nenvironment:\n  - NAME=a\n  - NAME=b\n",
            files: &[],
            errors: &["invalid environment: environment variable \"NAME\" is already defined"],
        },
        Case {
            name: "environment entry without =",
            yaml: "build:\n  python_version: \"3.12\"\nenvironment:\n  - JUSTNAME\n",
            files: &[],
            errors: &[
                "schema error in \"environment.0\": Does not match pattern '^[A-Za-z_][A-Za-z0-9_]*=.*$'",
                "invalid environment: environment variable \"JUSTNAME\" is not in the KEY=VALUE format",
            ],
        },
        Case {
            name: "concurrency below 1",
            yaml: "build:\n  python_version: \"3.12\"\nconcurrency:\n  max: 0\n",
            files: &[],
            errors: &["invalid concurrency.max \"0\": must be at least 1"],
        },
        Case {
            name: "concurrency needs python 3.11",
            yaml: "build:\n  python_version: \"3.10\"\nconcurrency:\n  max: 4\n",
            files: &[],
            errors: &["invalid concurrency.max \"4\": concurrency requires Python 3.11 or higher"],
        },
        Case {
            name: "concurrency mapping without max",
            yaml: "build:\n  python_version: \"3.12\"\nconcurrency:\n  default_target: 2\n",
            files: &[],
            errors: &["schema error in \"concurrency\": max is required"],
        },
        Case {
            name: "model and image",
            yaml: "build:\n  python_version: \"3.12\"\nmodel: r8.im/a/b\nimage: r8.im/a/b\n",
            files: &[],
            errors: &["invalid model: 'model' and 'image' cannot both be set"],
        },
        Case {
            name: "model with tag",
            yaml: "build:\n  python_version: \"3.12\"\nmodel: r8.im/user/model:v1\n",
            files: &[],
            errors: &[
                "invalid model \"r8.im/user/model:v1\": must be a bare repository — tags and digests are not allowed",
            ],
        },
        Case {
            name: "model with digest",
            yaml: "build:\n  python_version: \"3.12\"\nmodel: r8.im/user/model@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
            files: &[],
            errors: &[
                "invalid model \"r8.im/user/model@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\": must be a bare repository — tags and digests are not allowed",
            ],
        },
        Case {
            name: "model with upper case",
            yaml: "build:\n  python_version: \"3.12\"\nmodel: r8.im/User/Model\n",
            files: &[],
            errors: &[
                "invalid model \"r8.im/User/Model\": invalid repository: repository contains invalid characters: User/Model",
            ],
        },
        Case {
            name: "weights with image",
            yaml: "build:\n  python_version: \"3.12\"\nimage: r8.im/a/b\nweights:\n  - name: w\n    target: /src/w\n    source: {uri: weights}\n",
            files: &[],
            errors: &[
                "invalid image: weights require 'model', not 'image' — rename 'image' to 'model'",
            ],
        },
        Case {
            name: "weights without model",
            yaml: "build:\n  python_version: \"3.12\"\nweights:\n  - name: w\n    target: /src/w\n    source: {uri: weights}\n",
            files: &[],
            errors: &[
                "invalid model: weights require 'model' in cog.yaml — rename 'image' to 'model'",
            ],
        },
        Case {
            name: "weight name rules",
            yaml: "build:\n  python_version: \"3.12\"\nmodel: r8.im/a/b\nweights:\n  - target: /w0\n    source: {uri: a}\n  - name: Big_Model\n    target: /w1\n    source: {uri: a}\n  - name: ok\n    target: /w2\n    source: {uri: a}\n  - name: ok\n    target: /w3\n    source: {uri: a}\n",
            files: &[],
            errors: &[
                "invalid weights[0].name: name is required",
                "invalid weights[1].name \"Big_Model\": must contain only lowercase alphanumeric characters, hyphens, dots, or underscores (e.g. \"my-model-weights\")",
                "invalid weights[3].name \"ok\": duplicate weight name",
            ],
        },
        Case {
            name: "weight source missing",
            yaml: "build:\n  python_version: \"3.12\"\nmodel: r8.im/a/b\nweights:\n  - name: w\n    target: /w\n",
            files: &[],
            errors: &["invalid weights[0].source: source is required"],
        },
        Case {
            name: "weight source without uri",
            yaml: "build:\n  python_version: \"3.12\"\nmodel: r8.im/a/b\nweights:\n  - name: w\n    target: /w\n    source: {include: [\"*.bin\"]}\n",
            files: &[],
            errors: &["schema error in \"weights.0.source\": uri is required"],
        },
        Case {
            name: "weight patterns",
            yaml: "build:\n  python_version: \"3.12\"\nmodel: r8.im/a/b\nweights:\n  - name: w\n    target: /w\n    source:\n      uri: a\n      include: [\"  \", \"!x\", 'a\\b']\n      exclude: [\"!y\\\\z\"]\n",
            files: &[],
            errors: &[
                "invalid weights[0].source.include[0]: pattern must not be empty",
                "invalid weights[0].source.include[1] \"!x\": negation patterns (starting with '!') are not supported",
                "invalid weights[0].source.include[2] \"a\\\\b\": patterns must use forward slashes, not backslashes",
                "invalid weights[0].source.exclude[0] \"!y\\\\z\": negation patterns (starting with '!') are not supported",
                "invalid weights[0].source.exclude[0] \"!y\\\\z\": patterns must use forward slashes, not backslashes",
            ],
        },
        Case {
            name: "weight patterns in a source list",
            yaml: "build:\n  python_version: \"3.12\"\nmodel: r8.im/a/b\nweights:\n  - name: w\n    target: /w\n    source:\n      - uri: a\n      - uri: b\n        exclude: [\"\"]\n",
            files: &[],
            errors: &["invalid weights[0].source[1].exclude[0]: pattern must not be empty"],
        },
        Case {
            name: "weight target rules",
            yaml: "build:\n  python_version: \"3.12\"\nmodel: r8.im/a/b\nweights:\n  - {name: a, source: {uri: x}}\n  - {name: b, target: rel/dir, source: {uri: x}}\n  - {name: c, target: /, source: {uri: x}}\n  - {name: d, target: /src/w, source: {uri: x}}\n  - {name: e, target: /src/w/, source: {uri: x}}\n  - {name: f, target: /src/w/inner, source: {uri: x}}\n  - {name: g, target: /src, source: {uri: x}}\n",
            files: &[],
            errors: &[
                "invalid weights[0].target: target is required",
                "invalid weights[1].target \"rel/dir\": target must be an absolute path",
                "invalid weights[2].target \"/\": target must not be the container root \"/\"",
                "invalid weights[4].target \"/src/w/\": duplicate weight target",
                "invalid weights[5].target \"/src/w/inner\": target overlaps with \"/src/w\"; weight targets must be disjoint",
                "invalid weights[6].target \"/src\": target overlaps with \"/src/w\"; weight targets must be disjoint",
            ],
        },
        Case {
            name: "run item mount of another type",
            yaml: "build:\n  python_version: \"3.12\"\n  run:\n    - command: echo hi\n      mounts:\n        - {type: cache, id: x, target: /x}\n",
            files: &[],
            errors: &[
                "schema error in \"build.run.0.mounts.0.type\": build.run.0.mounts.0.type must be one of the following: \"secret\"",
            ],
        },
    ];
    for case in cases {
        let error = load_err(case.yaml, case.files);
        assert_eq!(messages(&error), case.errors, "case {:?}", case.name);
        for problem in &error.problems {
            assert!(
                !problem.hint.is_empty(),
                "case {:?} has a problem without hint",
                case.name
            );
        }
    }
}

#[test]
fn all_errors_are_collected_in_cog_order() {
    let yaml = "build:\n  python_version: \"3.9\"\n  cuda: \"10.0\"\nrun: nope\ntrain: nope\nenvironment: [PATH=x]\nconcurrency: {max: 0}\nmodel: r8.im/a/b:tag\n";
    let error = load_err(yaml, &[]);
    assert_eq!(
        messages(&error),
        vec![
            "invalid run \"nope\": must be in the form 'run.py:Runner'",
            "invalid train \"nope\": must be in the form 'train.py:Trainer'",
            "invalid build.python_version \"3.9\": minimum supported Python version is 3.10",
            "invalid build.cuda \"10.0\": minimum supported CUDA version is 11",
            "invalid environment: environment variable \"PATH\" is not allowed: reserved for internal use",
            "invalid concurrency.max \"0\": must be at least 1",
            "invalid model \"r8.im/a/b:tag\": must be a bare repository — tags and digests are not allowed",
        ]
    );
    let fields: Vec<&str> = error.problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "run",
            "train",
            "build.python_version",
            "build.cuda",
            "environment",
            "concurrency.max",
            "model"
        ]
    );
    let lines: Vec<Option<usize>> = error.problems.iter().map(|p| p.line).collect();
    assert_eq!(
        lines,
        vec![
            Some(4),
            Some(5),
            Some(2),
            Some(3),
            Some(6),
            Some(7),
            Some(8)
        ]
    );
    let shown = error.to_string();
    assert!(
        shown.starts_with(&format!("{}: 7 problems\n", error.file.display())),
        "{shown}"
    );
    assert!(shown.contains("cog.yaml:2: invalid build.python_version \"3.9\": minimum supported Python version is 3.10 (field `build.python_version`)\n  hint: "), "{shown}");
}

#[test]
fn old_python_gets_cogs_message_and_an_upgrade_hint() {
    let error = load_err(
        "build:\n  python_version: \"3.8\"\npredict: predict.py:Predictor\n",
        &[],
    );
    assert_eq!(error.problems.len(), 1);
    let problem = &error.problems[0];
    assert_eq!(
        problem.message,
        "invalid build.python_version \"3.8\": minimum supported Python version is 3.10"
    );
    assert!(problem.hint.contains("3.10"), "{}", problem.hint);
    assert!(problem.hint.contains("python_version"), "{}", problem.hint);
    assert_eq!(problem.line, Some(2));
}

#[test]
fn unquoted_python_version_reads_as_text() {
    for (written, expected) in [
        ("3.10", "3.10"),
        ("3.12", "3.12"),
        ("3.11.4", "3.11.4"),
        ("\"3.13\"", "3.13"),
    ] {
        let yaml = format!("build:\n  python_version: {written}\npredict: predict.py:Predictor\n");
        let (_dir, project) = load_ok(&yaml, &[]);
        assert_eq!(
            project.config.python_version(),
            expected,
            "written as {written}"
        );
    }
}

#[test]
fn deprecations_warn_with_cogs_text() {
    let yaml = "build:\n  python_version: \"3.12\"\n  python_packages: [numpy==1.26.4]\n  pre_install: [echo hi]\npredict: predict.py:Predictor\nconcurrency:\n  max: 2\n";
    let (_dir, project) = load_ok(yaml, &[]);
    let deprecations: Vec<&String> = project
        .warnings
        .iter()
        .filter(|w| w.starts_with("deprecated"))
        .collect();
    assert_eq!(
        deprecations,
        vec![
            "deprecated field \"predict\": use \"run\" instead",
            "deprecated field \"concurrency.max\": use \"@cog.concurrent(max=...)\" instead",
            "deprecated field \"build.python_packages\": use \"build.python_requirements\" instead",
            "deprecated field \"build.pre_install\": use \"build.run\" instead",
        ]
    );
    assert_eq!(project.requirements, vec!["numpy==1.26.4"]);
    assert_eq!(project.config.concurrency_max, Some(2));
}

#[test]
fn unknown_keys_are_accepted_with_a_warning() {
    let yaml = "build:\n  python_version: \"3.12\"\n  gpus: true\n  run:\n    - command: echo\n      mount: []\nrun: predict.py:Predictor\nbuidl: {}\nweights_dir: x\n";
    let (_dir, project) = load_ok(yaml, &[]);
    let unknown: Vec<&String> = project
        .warnings
        .iter()
        .filter(|w| w.starts_with("unknown key"))
        .collect();
    assert_eq!(
        unknown,
        vec![
            "unknown key \"build.gpus\" in cog.yaml (line 3) is ignored, as cog ignores it; check its spelling",
            "unknown key \"build.run[0].mount\" in cog.yaml (line 6) is ignored, as cog ignores it; check its spelling",
            "unknown key \"buidl\" in cog.yaml (line 8) is ignored, as cog ignores it; check its spelling",
            "unknown key \"weights_dir\" in cog.yaml (line 9) is ignored, as cog ignores it; check its spelling",
        ]
    );
    assert!(!project.config.gpu());
}

#[test]
fn run_is_stored_as_predict_and_items_keep_their_form() {
    let yaml = "build:\n  python_version: \"3.12\"\n  system_packages: [ffmpeg]\n  run:\n    - echo one\n    - command: cat /run/secrets/tok\n      mounts:\n        - type: secret\n          id: tok\n          target: /run/secrets/tok\nrun: predict.py:Predictor\ntrain: train.py:Trainer\nenvironment:\n  - HELLO=world\n  - EMPTY=\n  - EQ=a=b\n";
    let (_dir, project) = load_ok(yaml, &[]);
    let build = project.config.build.as_ref().expect("build");
    assert_eq!(
        project.config.predict.as_deref(),
        Some("predict.py:Predictor")
    );
    assert_eq!(project.config.train.as_deref(), Some("train.py:Trainer"));
    assert_eq!(build.run.len(), 2);
    assert_eq!(build.run[0].command, "echo one");
    assert!(build.run[0].mounts.is_empty());
    assert_eq!(build.run[1].mounts[0].kind, "secret");
    assert_eq!(build.run[1].mounts[0].id, "tok");
    assert_eq!(build.run[1].mounts[0].target, "/run/secrets/tok");
    assert_eq!(build.system_packages, vec!["ffmpeg"]);
    assert_eq!(
        project.environment,
        vec![
            ("HELLO".to_string(), "world".to_string()),
            ("EMPTY".to_string(), String::new()),
            ("EQ".to_string(), "a=b".to_string())
        ]
    );
    assert!(!project.warnings.iter().any(|w| w.starts_with("deprecated")));
}

#[test]
fn empty_file_is_an_empty_config() {
    let (_dir, project) = load_ok("", &[]);
    assert_eq!(project.config, config::Config::default());
    assert!(
        project
            .warnings
            .iter()
            .any(|w| w.contains("no build section"))
    );
    let (_dir, project) = load_ok("# just a comment\n", &[]);
    assert_eq!(project.config.build, None);
}

#[test]
fn sdk_version_minimum() {
    assert_eq!(config::validate_sdk_version("0.16.0"), Ok(()));
    assert_eq!(config::validate_sdk_version("0.17.0rc1"), Ok(()));
    assert_eq!(config::validate_sdk_version("1.0.0"), Ok(()));
    assert_eq!(config::validate_sdk_version("prerelease"), Ok(()));
    assert_eq!(config::validate_sdk_version("not-a-version"), Ok(()));
    assert_eq!(
        config::validate_sdk_version("0.15.9"),
        Err("cog version 0.15.9 is below the minimum required version 0.16.0".to_string())
    );
    assert_eq!(
        config::validate_sdk_version("0.9.4-beta2"),
        Err("cog version 0.9.4-beta2 is below the minimum required version 0.16.0".to_string())
    );
    let (_dir, project) = load_ok(
        "build:\n  python_version: \"3.12\"\n  sdk_version: 0.16.1\nrun: predict.py:Predictor\n",
        &[],
    );
    let build = project.config.build.expect("build");
    assert_eq!(build.sdk_version.as_deref(), Some("0.16.1"));
}

#[test]
fn discovery_walks_up_and_reports_cogs_message() {
    let dir = project_with(PY, &[]);
    let deep = dir.path().join("a/b/c");
    std::fs::create_dir_all(&deep).expect("mkdir");
    let found = config::find_project_dir(&deep, "cog.yaml").expect("found");
    assert_eq!(found, dir.path());
    let other = config::find_project_dir(&deep, "other.yaml").expect_err("not found");
    assert_eq!(
        other.problems[0].message,
        format!(
            "other.yaml not found in {} (or in any parent directories)",
            deep.display()
        )
    );
    assert!(!other.problems[0].hint.is_empty());
    assert_eq!(
        config::find_project_dir(Path::new("/"), "no-such-file-xyz.yaml")
            .expect_err("root")
            .problems
            .len(),
        1
    );
}

#[test]
fn alternative_file_name_is_loaded() {
    let dir = project_with(
        PY,
        &[(
            "cog-gpu.yaml",
            "build:\n  python_version: \"3.11\"\n  gpu: true\nrun: predict.py:Predictor\n",
        )],
    );
    let project = config::load(dir.path(), "cog-gpu.yaml").expect("load");
    assert_eq!(project.file_name, "cog-gpu.yaml");
    assert!(project.config.gpu());
    assert_eq!(project.config_path(), dir.path().join("cog-gpu.yaml"));
}
