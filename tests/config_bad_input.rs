//! Bad input: each gives one clear error naming the file and field, never a
//! panic. Plus a bounded randomized run (stable Rust) of mutated cog.yaml and
//! requirements text through the whole load → rewrite → base-selection path.

use cogpack::config::base::{self, AssumeCandidatesExist, BaseFlags};
use cogpack::config::{self, ConfigError, requirements};
use std::path::Path;
use tempfile::TempDir;

fn project(yaml: &[u8], files: &[(&str, &[u8])]) -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, body) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, body).expect("write");
    }
    std::fs::write(dir.path().join("cog.yaml"), yaml).expect("write");
    dir
}

fn one_error(yaml: &str, files: &[(&str, &[u8])]) -> (TempDir, ConfigError) {
    let mut all: Vec<(&str, &[u8])> = vec![("predict.py", b"")];
    all.extend_from_slice(files);
    let dir = project(yaml.as_bytes(), &all);
    let error = config::load(dir.path(), "cog.yaml").expect_err("must fail");
    assert_eq!(
        error.problems.len(),
        1,
        "exactly one problem for {yaml:?}: {error}"
    );
    assert_eq!(error.file, dir.path().join("cog.yaml"));
    let shown = error.to_string();
    assert!(shown.contains("cog.yaml"), "{shown}");
    assert!(shown.contains("hint: "), "{shown}");
    (dir, error)
}

const PY: &str = "build:\n  python_version: \"3.12\"\n";

#[test]
fn malformed_yaml() {
    let (_d, e) = one_error("build: [\n  python_version: \"3.12\"\n", &[]);
    let p = &e.problems[0];
    assert!(
        p.message
            .starts_with("failed to parse cog.yaml: invalid YAML: "),
        "{}",
        p.message
    );
    assert!(p.line.is_some());
    let (_d, e) = one_error("build:\n\tpython_version: \"3.12\"\n", &[]);
    assert_eq!(e.problems[0].line, Some(2));
    let (_d, e) = one_error("- just\n- a list\n", &[]);
    assert!(
        e.problems[0]
            .message
            .starts_with("failed to parse cog.yaml: invalid YAML: ")
    );
}

#[test]
fn wrong_types_name_the_field_and_line() {
    let cases = [
        ("build:\n  python_version: [3]\n", "build.python_version", 2),
        (
            "build:\n  python_version: \"3.12\"\n  system_packages: ffmpeg\n",
            "build.system_packages",
            3,
        ),
        (
            "build:\n  python_version: \"3.12\"\nconcurrency:\n  max: many\n",
            "concurrency.max",
            4,
        ),
        (
            "build:\n  python_version: \"3.12\"\n  run:\n    - echo ok\n    - 5\n",
            "build.run[1]",
            5,
        ),
        (
            "build:\n  python_version: \"3.12\"\nenvironment: A=1\n",
            "environment",
            3,
        ),
        (
            "build:\n  python_version: \"3.12\"\n  gpu: sometimes\n",
            "build.gpu",
            3,
        ),
        ("build: 3\n", "build", 1),
    ];
    for (yaml, field, line) in cases {
        let (_d, e) = one_error(yaml, &[]);
        let p = &e.problems[0];
        assert!(
            p.message
                .starts_with("failed to parse cog.yaml: invalid YAML: "),
            "{yaml:?}: {}",
            p.message
        );
        assert_eq!(p.field, field, "{yaml:?}");
        assert_eq!(p.line, Some(line), "{yaml:?}");
        assert!(p.hint.contains(field), "{yaml:?}: {}", p.hint);
    }
}

#[test]
fn duplicate_yaml_keys() {
    let (_d, e) = one_error(
        "build:\n  python_version: \"3.12\"\n  python_version: \"3.11\"\n",
        &[],
    );
    assert!(
        e.problems[0].message.contains("duplicate"),
        "{}",
        e.problems[0].message
    );
    assert_eq!(e.problems[0].line, Some(3));
}

#[test]
fn missing_predictor_file() {
    let dir = project(
        b"build:\n  python_version: \"3.12\"\npredict: predict.py:Predictor\n",
        &[],
    );
    let e = config::load(dir.path(), "cog.yaml").expect_err("no predict.py");
    assert_eq!(e.problems.len(), 1);
    assert_eq!(
        e.problems[0].message,
        "invalid predict \"predict.py:Predictor\": predictor file \"predict.py\" does not exist in the project directory"
    );
    assert_eq!(e.problems[0].field, "predict");
    assert_eq!(e.problems[0].line, Some(3));
}

#[test]
fn missing_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = config::load(dir.path(), "cog.yaml").expect_err("absent");
    assert!(
        e.problems[0]
            .message
            .starts_with("failed to read cog.yaml: "),
        "{}",
        e.problems[0].message
    );
    let dir = project(b"build:\n  python_version: \"3.12\"\xff\n", &[]);
    let e = config::load(dir.path(), "cog.yaml").expect_err("not utf-8");
    assert!(
        e.problems[0].message.contains("not UTF-8"),
        "{}",
        e.problems[0].message
    );
}

#[test]
fn local_artifact_outside_project() {
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("pkg-1.0-py3-none-any.whl"), b"PK").expect("write");
    let rel = format!(
        "../{}/pkg-1.0-py3-none-any.whl",
        outside.path().file_name().expect("name").to_string_lossy()
    );
    let yaml = format!("{PY}  python_requirements: requirements.txt\n");
    let (_d, e) = one_error(
        &yaml,
        &[("requirements.txt", format!("{rel}\n").as_bytes())],
    );
    assert_eq!(
        e.problems[0].message,
        format!("local Python package artifact \"{rel}\" must be inside the project directory")
    );
    assert_eq!(e.problems[0].field, "build.python_requirements");
    assert_eq!(e.problems[0].line, Some(3));
}

#[test]
fn duplicate_environment_keys() {
    let (_d, e) = one_error(
        &format!("{PY}environment:\n  - TOKEN=a\n  - TOKEN=b\n"),
        &[],
    );
    assert_eq!(
        e.problems[0].message,
        "invalid environment: environment variable \"TOKEN\" is already defined"
    );
    assert_eq!(e.problems[0].field, "environment");
    assert_eq!(e.problems[0].line, Some(3));
}

#[test]
fn invalid_weight_target() {
    let yaml = format!(
        "{PY}model: r8.im/me/m\nweights:\n  - name: base\n    target: weights\n    source:\n      uri: weights/\n"
    );
    let (_d, e) = one_error(&yaml, &[]);
    assert_eq!(
        e.problems[0].message,
        "invalid weights[0].target \"weights\": target must be an absolute path"
    );
    assert_eq!(e.problems[0].field, "weights[0].target");
    assert_eq!(e.problems[0].line, Some(6));
}

// ---------------------------------------------------------------------------
// Randomized robustness (the cargo-fuzz target in fuzz/ does the same with
// coverage guidance; this bounded run works on stable Rust).

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SEEDS: &[&str] = &[
    "build:\n  gpu: true\n  python_version: 3.10\n  python_requirements: requirements.txt\n  system_packages: [ffmpeg]\n  run:\n    - echo hi\n    - command: cat /s\n      mounts: [{type: secret, id: s, target: /s}]\npredict: predict.py:Predictor\nenvironment: [A=1, B=2]\nconcurrency: {max: 2}\n",
    "build:\n  python_version: \"3.12\"\n  python_packages: [torch==2.3.0, torchvision==0.18.0, cog==0.9]\n  cuda: \"12.1\"\n  cudnn: \"8\"\nrun: predict.py:Predictor\ntrain: train.py:Trainer\n",
    "model: r8.im/me/m\nbuild:\n  python_version: \"3.11\"\nweights:\n  - name: w\n    target: /src/w\n    source:\n      - uri: weights/\n        include: [\"*.bin\"]\n      - uri: hf://org/repo\n",
    "image: r8.im/x/y\nbuild: {python_version: '3.13', gpu: false, sdk_version: prerelease}\n",
];

const TOKENS: &[&str] = &[
    ":",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "\n",
    "  ",
    "\t",
    "\"",
    "'",
    "&a ",
    "*a",
    "<<: *a\n",
    "!!binary ",
    "!!str ",
    "3.10",
    "3.9",
    "2.7.1",
    "12.4",
    "13.0",
    "true",
    "null",
    "~",
    "-1",
    "99999999999999999999",
    "build",
    "gpu",
    "python_version",
    "python_requirements",
    "cuda",
    "cudnn",
    "run",
    "predict",
    "weights",
    "target",
    "source",
    "uri",
    "environment",
    "PATH=x",
    "torch==2.0.1+cu118",
    "tensorflow==2.12.0",
    "../",
    "./x.whl",
    "#",
    "\\",
    "é",
    "\u{2028}",
    "---\n",
    "...\n",
    "? ",
    "|\n  ",
    ">-\n  ",
];

fn mutate(rng: &mut Rng, seed: &str) -> String {
    let mut text: Vec<char> = seed.chars().collect();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(text.len() + 1);
        match rng.below(4) {
            0 => {
                let token: Vec<char> = TOKENS[rng.below(TOKENS.len())].chars().collect();
                text.splice(at..at, token);
            }
            1 if !text.is_empty() => {
                let end = (at + rng.below(12)).min(text.len());
                text.drain(at.min(end)..end);
            }
            2 if !text.is_empty() => {
                let i = rng.below(text.len());
                text[i] = char::from(rng.below(128) as u8);
            }
            _ => {
                let end = (at + rng.below(40)).min(text.len());
                let copy: Vec<char> = text[at.min(end)..end].to_vec();
                text.splice(at..at, copy);
            }
        }
    }
    text.into_iter().collect()
}

fn check_project_path(dir: &Path, yaml: &str) {
    match config::load_str(dir, "cog.yaml", yaml) {
        Err(e) => {
            assert!(
                !e.problems.is_empty(),
                "error without problems for {yaml:?}"
            );
            for p in &e.problems {
                assert!(
                    !p.message.is_empty() && !p.hint.is_empty(),
                    "{yaml:?}: {p:?}"
                );
            }
            assert!(!e.to_string().is_empty());
        }
        Ok(project) => {
            let label = project.config.effective_json(Some(2));
            serde_json::from_str::<serde_json::Value>(&label)
                .unwrap_or_else(|err| panic!("label {label:?} from {yaml:?} is not JSON: {err}"));
            let _ = requirements::rewrite(&project);
            let _ = base::select_base(
                &project,
                &BaseFlags::default(),
                "r8.im",
                &AssumeCandidatesExist,
            );
        }
    }
}

#[test]
fn randomized_cog_yaml_never_panics() {
    let dir = project(
        b"",
        &[
            ("predict.py", b""),
            ("train.py", b""),
            ("requirements.txt", b"torch==2.0.1\n./x.whl\ncog\n"),
            ("x.whl", b"PK"),
            ("weights/a.bin", b"w"),
        ],
    );
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let iterations = std::env::var("COGPACK_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    for i in 0..iterations {
        let seed = SEEDS[i % SEEDS.len()];
        let yaml = mutate(&mut rng, seed);
        check_project_path(dir.path(), &yaml);
    }
}

#[test]
fn randomized_requirements_never_panic() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let seed = "torch==2.0.1 --extra-index-url=https://a.invalid/x\n-f ./w\n./dist/a.whl\npkg @ ./p.whl\nfile:///x.tar.gz\nnumpy>=1,<2 ; python_version>'3'\na \\\nb\r\n-e .\n# c\n";
    for _ in 0..5_000 {
        let text = mutate(&mut rng, seed);
        for line in requirements::parse_requirements_text(&text) {
            let _ = requirements::parse_local_artifact(&line);
            let _ = requirements::split_pinned(&line);
            let _ = requirements::versions(&line);
            let _ = requirements::package_name(&line);
        }
    }
}
