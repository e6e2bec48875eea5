//! Checks shared by the build-sandbox tests (as root and as a user).

use super::runner::PulledImage;
use serde_json::json;
use std::path::Path;

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
