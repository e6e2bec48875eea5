//! Image labels that come from the build's surroundings rather than from
//! cog.yaml: the git revision/version of the project, the cog-base
//! bookkeeping labels, and the push id.
//!
//! `run.cog.push_id` is a fresh UUIDv7 on every push, so an image carrying it
//! can never be reproduced: [`push_id_label`] exists for callers that ask for
//! it explicitly (a CLI flag), and is never added by default.

use super::Digest;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Label holding the source revision.
pub const REVISION: &str = "org.opencontainers.image.revision";
/// Label holding the source version.
pub const VERSION: &str = "org.opencontainers.image.version";
/// How long each git command may take (cog: 3 s).
pub const GIT_TIMEOUT: Duration = Duration::from_secs(3);

/// The revision and version labels, like cog: `github_sha` (the caller's
/// `$GITHUB_SHA`) or `git rev-parse HEAD`; `github_ref_name`
/// (`$GITHUB_REF_NAME`) or `git describe --tags --dirty`. A label whose
/// value cannot be found is omitted.
pub fn git_labels(
    project: &Path,
    github_sha: Option<&str>,
    github_ref_name: Option<&str>,
) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let revision = non_empty(github_sha).or_else(|| git(project, &["rev-parse", "HEAD"]));
    if let Some(r) = revision {
        labels.push((REVISION.to_string(), r));
    }
    let version =
        non_empty(github_ref_name).or_else(|| git(project, &["describe", "--tags", "--dirty"]));
    if let Some(v) = version {
        labels.push((VERSION.to_string(), v));
    }
    labels
}

fn non_empty(v: Option<&str>) -> Option<String> {
    v.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Runs git in `dir` with a timeout; trimmed stdout on success.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let start = Instant::now();
    loop {
        match child.try_wait().ok()? {
            Some(status) if status.success() => break,
            Some(_) => return None,
            None if start.elapsed() > GIT_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take()?, &mut out).ok()?;
    non_empty(Some(&out))
}

/// The `run.cog.cog-base-image-*` labels: the base name and the diff_id and
/// index of the base's last layer.
pub fn cog_base_labels(
    base_name: &str,
    last_layer: Option<(usize, Digest)>,
) -> Vec<(String, String)> {
    let mut labels = vec![(
        "run.cog.cog-base-image-name".to_string(),
        base_name.to_string(),
    )];
    if let Some((index, diff_id)) = last_layer {
        labels.push((
            "run.cog.cog-base-image-last-layer-sha".into(),
            diff_id.to_string(),
        ));
        labels.push((
            "run.cog.cog-base-image-last-layer-idx".into(),
            index.to_string(),
        ));
    }
    labels
}

/// The `run.cog.push_id` label with a new UUIDv7. Breaks reproducibility
/// (see the module docs); only for an explicit opt-in.
pub fn push_id_label() -> (String, String) {
    ("run.cog.push_id".into(), uuid::Uuid::now_v7().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_values_win_and_missing_git_omits_labels() {
        let dir = tempfile::tempdir().unwrap();
        let labels = git_labels(dir.path(), Some("abc123"), Some("v1.2"));
        assert_eq!(
            labels,
            vec![
                (REVISION.into(), "abc123".into()),
                (VERSION.into(), "v1.2".into())
            ]
        );
        assert!(git_labels(dir.path(), None, Some("  ")).is_empty());
    }

    #[test]
    fn reads_revision_and_dirty_version_from_git() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let ok = Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap()
                .status
                .success();
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q"]);
        std::fs::write(dir.path().join("a"), "1").unwrap();
        git(&["add", "a"]);
        git(&["commit", "-qm", "x"]);
        git(&["tag", "v0.3.0"]);
        std::fs::write(dir.path().join("a"), "2").unwrap();
        let labels = git_labels(dir.path(), None, None);
        assert_eq!(labels[0].0, REVISION);
        assert_eq!(labels[0].1.len(), 40);
        assert_eq!(labels[1], (VERSION.into(), "v0.3.0-dirty".into()));
    }

    #[test]
    fn push_ids_differ() {
        assert_ne!(push_id_label().1, push_id_label().1);
    }
}
