//! Coverage: `cogpack plan --json` over the corpus of real-world-style Cog
//! projects in fixtures/corpus/ (CPU and GPU, system packages, every kind of
//! `build.run` item, deprecated fields, weights, training). Every step of
//! every project must be produced natively or by substitution; a refused
//! step is reported with its project, step id and reason. Plan is offline.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The smallest corpus the coverage claim is made on.
const MINIMUM_PROJECTS: usize = 50;

/// A step the native engine cannot produce, with the reason it gave.
struct RefusedStep {
    project: String,
    step: String,
    reason: String,
}

/// The corpus project directories, sorted by name.
fn corpus_projects() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/corpus");
    let mut projects: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("reading {}: {e}", root.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.join("cog.yaml").is_file())
        .collect();
    projects.sort();
    projects
}

/// Runs `cogpack plan --json` in `project` with the sandbox enabled and
/// returns the parsed plan, or the failure text.
fn plan_json(project: &Path) -> Result<serde_json::Value, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_cogpack"))
        .args(["plan", "--json"])
        .current_dir(project)
        .env_remove("COGPACK_SANDBOX")
        .output()
        .map_err(|e| format!("cannot start cogpack: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "plan exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("plan output is not JSON: {e}"))
}

/// The steps of `plan` whose native status is neither native nor substituted.
fn refused_steps(project: &str, plan: &serde_json::Value) -> Vec<RefusedStep> {
    let steps = plan["steps"].as_array().cloned().unwrap_or_default();
    assert!(!steps.is_empty(), "{project}: plan has no steps");
    steps
        .iter()
        .filter(|step| {
            let status = step["native"]["status"].as_str().unwrap_or("missing");
            status != "native" && status != "substituted"
        })
        .map(|step| RefusedStep {
            project: project.to_string(),
            step: step["id"].as_str().unwrap_or("?").to_string(),
            reason: step["native"]["reason"]
                .as_str()
                .unwrap_or("no reason given")
                .to_string(),
        })
        .collect()
}

/// True when the plan's base is a GPU image (a CUDA cog-base or nvidia/cuda).
fn is_gpu(plan: &serde_json::Value) -> bool {
    !plan["base"]["facts"]["cuda"].is_null()
}

#[test]
fn every_corpus_step_is_native_or_substituted() {
    let projects = corpus_projects();
    assert!(
        projects.len() >= MINIMUM_PROJECTS,
        "corpus has {} projects, want at least {MINIMUM_PROJECTS}",
        projects.len()
    );
    let mut failures = Vec::new();
    let mut refused = Vec::new();
    let (mut native, mut gpu, mut run_steps) = (0usize, 0usize, 0usize);
    for project in &projects {
        let name = project.file_name().unwrap().to_string_lossy().to_string();
        let plan = match plan_json(project) {
            Ok(plan) => plan,
            Err(message) => {
                failures.push(format!("{name}: {message}"));
                continue;
            }
        };
        gpu += usize::from(is_gpu(&plan));
        run_steps += plan["steps"].as_array().map_or(0, |steps| {
            steps.iter().filter(|s| s["kind"] == "run_command").count()
        });
        let project_refused = refused_steps(&name, &plan);
        native += usize::from(project_refused.is_empty());
        refused.extend(project_refused);
    }
    let total = projects.len();
    eprintln!(
        "plan corpus: {native}/{total} projects fully native ({:.1} %), {gpu} GPU, {run_steps} run steps",
        100.0 * native as f64 / total as f64
    );
    for step in &refused {
        eprintln!(
            "refused: {} step {}: {}",
            step.project, step.step, step.reason
        );
    }
    assert!(failures.is_empty(), "plan failed:\n{}", failures.join("\n"));
    assert!(
        refused.is_empty(),
        "{} step(s) refused (see stderr): {}",
        refused.len(),
        refused
            .iter()
            .map(|s| format!("{}/{}", s.project, s.step))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(gpu >= 20, "only {gpu} GPU projects in the corpus");
}
