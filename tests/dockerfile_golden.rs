//! Golden Dockerfile tests: every fixture project under `fixtures/dockerfile/`
//! is loaded, planned and rendered; the result must equal the hand-written
//! `expected.Dockerfile` byte for byte (and `expected.bundle.Dockerfile`).

use std::path::{Path, PathBuf};

use cogpack::backend::docker::{render_bundle_dockerfile, render_dockerfile};
use cogpack::config::base::BaseImageExists;
use cogpack::plan::{self, BuildPlan, PlanOptions, StepKind};

/// The per-fixture options (`case.toml`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    config_file: Option<String>,
    use_cog_base_image: Option<bool>,
    use_cuda_base_image: Option<bool>,
    registry_host: Option<String>,
    cog_sdk_wheel: Option<String>,
    coglet_wheel: Option<String>,
    ca_cert: Option<String>,
    #[serde(default)]
    precompile: bool,
    #[serde(default)]
    strip: bool,
    decorator_concurrency: Option<i64>,
    #[serde(default)]
    missing_bases: Vec<String>,
    requirements_txt: Option<String>,
    warning: Option<String>,
    base_label: Option<String>,
}

/// A registry that has every image except the listed ones.
struct RegistryWithout(Vec<String>);

impl BaseImageExists for RegistryWithout {
    fn exists(&self, reference: &str) -> Result<bool, String> {
        Ok(!self.0.iter().any(|missing| missing == reference))
    }
}

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dockerfile")
}

fn fixture_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_root())
        .expect("fixtures/dockerfile exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.join("expected.Dockerfile").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn read_case(dir: &Path) -> Case {
    let text = std::fs::read_to_string(dir.join("case.toml")).unwrap_or_default();
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: bad case.toml: {e}", dir.display()))
}

fn plan_fixture(dir: &Path, case: &Case) -> BuildPlan {
    let project_dir = dir.join("project");
    let file_name = case
        .config_file
        .clone()
        .unwrap_or_else(|| "cog.yaml".into());
    let project = cogpack::config::load(&project_dir, &file_name)
        .unwrap_or_else(|e| panic!("{}: load failed: {e}", dir.display()));
    let ca_cert = case.ca_cert.as_ref().map(|name| {
        let value = dir.join(name).display().to_string();
        plan::ca_cert::read_ca_cert(&value).expect("fixture CA cert is valid")
    });
    let options = PlanOptions {
        use_cog_base_image: case.use_cog_base_image,
        use_cuda_base_image: case.use_cuda_base_image,
        registry_host: case.registry_host.clone().unwrap_or_else(|| "r8.im".into()),
        precompile: case.precompile,
        strip: case.strip,
        cog_sdk_wheel: case.cog_sdk_wheel.clone(),
        coglet_wheel: case.coglet_wheel.clone(),
        ca_cert,
        cwd: project_dir.clone(),
        decorator_concurrency: case.decorator_concurrency,
        ..PlanOptions::default()
    };
    plan::plan(
        &project,
        &options,
        &RegistryWithout(case.missing_bases.clone()),
    )
    .unwrap_or_else(|e| panic!("{}: plan failed: {e}", dir.display()))
}

/// Describes the first differing line so a failure is readable.
fn first_difference(expected: &str, actual: &str) -> String {
    let expected_lines: Vec<&str> = expected.split('\n').collect();
    let actual_lines: Vec<&str> = actual.split('\n').collect();
    for index in 0..expected_lines.len().max(actual_lines.len()) {
        let e = expected_lines
            .get(index)
            .copied()
            .unwrap_or("<end of file>");
        let a = actual_lines.get(index).copied().unwrap_or("<end of file>");
        if e != a {
            return format!("line {}:\n  expected: {e:?}\n  actual:   {a:?}", index + 1);
        }
    }
    "no line differs (trailing bytes differ)".to_string()
}

fn check_fixture(dir: &Path) -> Vec<String> {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let case = read_case(dir);
    let plan = plan_fixture(dir, &case);
    let mut failures = Vec::new();
    let expected = std::fs::read_to_string(dir.join("expected.Dockerfile")).unwrap();
    let actual = render_dockerfile(&plan);
    if expected != actual {
        failures.push(format!(
            "{name}: Dockerfile differs at {}",
            first_difference(&expected, &actual)
        ));
    }
    let bundle_path = dir.join("expected.bundle.Dockerfile");
    if bundle_path.is_file() {
        let expected = std::fs::read_to_string(&bundle_path).unwrap();
        let actual = render_bundle_dockerfile(&plan, "main-image:test");
        if expected != actual {
            failures.push(format!(
                "{name}: bundle Dockerfile differs at {}",
                first_difference(&expected, &actual)
            ));
        }
    }
    if let Some(expected) = &case.requirements_txt {
        let actual = plan.steps.iter().find_map(|step| match &step.kind {
            StepKind::Requirements { text, .. } => Some(text.clone()),
            _ => None,
        });
        if actual.as_deref() != Some(expected.as_str()) {
            failures.push(format!(
                "{name}: requirements.txt expected {expected:?}, got {actual:?}"
            ));
        }
    }
    if let Some(warning) = &case.warning
        && !plan.warnings.iter().any(|w| w == warning)
    {
        failures.push(format!(
            "{name}: warning {warning:?} missing from {:?}",
            plan.warnings
        ));
    }
    if let Some(label) = &case.base_label {
        let actual = plan.image.labels.get("run.cog.cog-base-image-name");
        if actual != Some(label) {
            failures.push(format!(
                "{name}: base label expected {label:?}, got {actual:?}"
            ));
        }
    }
    failures
}

#[test]
fn every_fixture_renders_the_hand_written_dockerfile() {
    let dirs = fixture_dirs();
    assert!(
        dirs.len() >= 15,
        "expected at least 15 golden fixtures, found {}",
        dirs.len()
    );
    let failures: Vec<String> = dirs.iter().flat_map(|dir| check_fixture(dir)).collect();
    assert!(
        failures.is_empty(),
        "{} golden mismatch(es):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn fixtures_cover_all_three_base_paths() {
    let mut seen = std::collections::BTreeSet::new();
    for dir in fixture_dirs() {
        let plan = plan_fixture(&dir, &read_case(&dir));
        seen.insert(plan.base.path.letter());
    }
    assert_eq!(seen.into_iter().collect::<String>(), "ABC");
}

#[test]
fn main_dockerfile_has_no_trailing_newline_and_no_blank_lines() {
    for dir in fixture_dirs() {
        let plan = plan_fixture(&dir, &read_case(&dir));
        let text = render_dockerfile(&plan);
        assert!(!text.ends_with('\n'), "{}", dir.display());
        assert!(!text.contains("\n\n"), "{}", dir.display());
        assert!(
            text.starts_with("#syntax=docker/dockerfile:1.4\nFROM "),
            "{}",
            dir.display()
        );
    }
}
