//! The git labels of spec §6: `org.opencontainers.image.revision` and
//! `org.opencontainers.image.version`, from `GITHUB_SHA` / `GITHUB_REF_NAME`
//! (passed in by the CLI) or the project's own git work tree (3 s timeout each).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one git command may take before it is abandoned (cog's limit).
pub const GIT_TIMEOUT: Duration = Duration::from_secs(3);

/// Revision and version label values; `None` when unavailable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitLabels {
    /// Commit id (`GITHUB_SHA` or `git rev-parse HEAD`).
    pub revision: Option<String>,
    /// Tag description (`GITHUB_REF_NAME` or `git describe --tags --dirty`).
    pub version: Option<String>,
}

/// Computes the labels like cog: a non-empty environment value wins, else git
/// is asked when `dir` is inside a work tree; failures just leave a label out.
pub fn git_labels(
    dir: &Path,
    github_sha: Option<&str>,
    github_ref_name: Option<&str>,
) -> GitLabels {
    let env_value = |value: Option<&str>| value.filter(|v| !v.is_empty()).map(str::to_string);
    let work_tree = std::cell::OnceCell::new();
    let in_work_tree = || {
        *work_tree.get_or_init(|| {
            run_git(dir, &["rev-parse", "--is-inside-work-tree"]).as_deref() == Some("true")
        })
    };
    let revision = env_value(github_sha).or_else(|| {
        if in_work_tree() {
            run_git(dir, &["rev-parse", "HEAD"])
        } else {
            None
        }
    });
    let version = env_value(github_ref_name).or_else(|| {
        if in_work_tree() {
            run_git(dir, &["describe", "--tags", "--dirty"])
        } else {
            None
        }
    });
    GitLabels { revision, version }
}

/// Runs `git -C dir args…` with [`GIT_TIMEOUT`]; trimmed stdout on success.
fn run_git(dir: &Path, args: &[&str]) -> Option<String> {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + GIT_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let output = child.wait_with_output().ok()?;
                let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
                return (status.success() && !text.is_empty()).then_some(text);
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let status = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }

    #[test]
    fn environment_values_win() {
        let dir = tempfile::tempdir().unwrap();
        let labels = git_labels(dir.path(), Some("abc123"), Some("v9"));
        assert_eq!(labels.revision.as_deref(), Some("abc123"));
        assert_eq!(labels.version.as_deref(), Some("v9"));
    }

    #[test]
    fn outside_a_work_tree_nothing_is_known() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(git_labels(dir.path(), Some(""), None), GitLabels::default());
    }

    #[test]
    fn a_tagged_repository_gives_revision_and_dirty_version() {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q"]);
        std::fs::write(dir.path().join("cog.yaml"), "build: {}\n").unwrap();
        git(dir.path(), &["add", "cog.yaml"]);
        git(dir.path(), &["commit", "-q", "-m", "first"]);
        git(dir.path(), &["tag", "v1.0.0"]);
        let labels = git_labels(dir.path(), None, None);
        let revision = labels.revision.unwrap();
        assert_eq!(revision.len(), 40, "{revision}");
        assert!(revision.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(labels.version.as_deref(), Some("v1.0.0"));
        std::fs::write(dir.path().join("cog.yaml"), "build: {gpu: false}\n").unwrap();
        assert_eq!(
            git_labels(dir.path(), None, None).version.as_deref(),
            Some("v1.0.0-dirty")
        );
    }
}
