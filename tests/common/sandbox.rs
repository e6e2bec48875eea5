//! Checks shared by the build-sandbox tests (as root and as a user).

use super::runner::{self, PulledImage};
use serde_json::json;
use std::path::Path;
use std::process::Output;

/// Asserts that no run or probe directory is left in the store's scratch
/// space `STORE/sandbox` (files of subordinate ids must be removed too).
pub fn assert_no_sandbox_leftovers(store: &Path) {
    let leftovers: Vec<_> = std::fs::read_dir(store.join("sandbox"))
        .map(|dir| dir.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "sandbox dirs left: {leftovers:?}");
}

/// Serves the `fixtures/sandbox/apt` model and asserts that it answers
/// `word` with `"{word} libyaml 0.2.…"`: the library installed by apt loads
/// at predict time.
pub fn assert_libyaml_prediction(pulled: &PulledImage, word: &str) {
    let model = pulled
        .run(&super::runner::RunOptions::default())
        .unwrap_or_else(|e| panic!("run {}: {e}", pulled.reference));
    let (status, body) = model.predict(&json!({ "text": word }));
    assert_eq!(status, 200, "{body}");
    let text = body["output"].as_str().unwrap_or_default();
    assert!(text.starts_with(&format!("{word} libyaml 0.2.")), "{body}");
}

/// Checks the `output` of a build of the `fixtures/sandbox/apt` project
/// that pushed `image`: it succeeded (else panics naming `what`) and its
/// run item after apt found libyaml. Returns the build log and the pulled
/// image.
pub fn check_apt_build(output: &Output, what: &str, image: &str) -> (String, PulledImage) {
    super::assert_success(output, what);
    let log = super::stderr(output);
    assert!(
        log.contains("[run-1] /usr/lib/x86_64-linux-gnu/libyaml-0.so.2"),
        "the run item after apt did not see the package:\n{log}"
    );
    let pulled = runner::pull(image).unwrap_or_else(|e| panic!("pull {image}: {e}"));
    (log, pulled)
}

/// Checks the `output` of a build whose run item printed `about-to-fail`
/// and then failed with exit `code`: the build failed, and its log names the
/// code and holds the item's output. Returns the build log.
pub fn check_failed_run_item(output: &Output, code: i32) -> String {
    assert!(!output.status.success(), "build must fail");
    let log = super::stderr(output);
    assert!(log.contains(&format!("exited with code {code}")), "{log}");
    assert!(log.contains("about-to-fail"), "{log}");
    log
}
