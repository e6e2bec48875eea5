//! Image labels that come from the build's surroundings rather than from
//! cog.yaml: the names of the git revision/version labels (their values come
//! from `plan::git`), the cog-base bookkeeping labels, and the push id.
//!
//! `run.cog.push_id` is a fresh UUIDv7 on every push, so an image carrying it
//! can never be reproduced: [`push_id_label`] exists for callers that ask for
//! it explicitly (a CLI flag), and is never added by default.

use super::Digest;

/// Label holding the source revision.
pub const REVISION: &str = "org.opencontainers.image.revision";
/// Label holding the source version.
pub const VERSION: &str = "org.opencontainers.image.version";

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
    fn push_ids_differ() {
        assert_ne!(push_id_label().1, push_id_label().1);
    }
}
