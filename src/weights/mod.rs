//! Managed weights (cog v1 format, spec §8): declarations → normalised
//! specs, sources (`file://`, `hf://`, `http(s)://`), the shared local
//! content-addressed store, packing into layers with cog's exact tar bytes,
//! weight artifacts (config blob, manifest, tag), `weights.lock`, the runtime
//! `/src/.cog/weights.json`, drift checks, import, status, push and pull, and
//! the bundle index.
//!
//! Entry points the CLI calls:
//! - [`import::import_weights`] — plan, ingest, pack and record weights;
//! - [`push::push_weights`] — upload weight artifacts through a [`registry::WeightRegistry`];
//! - [`status::weights_status`] — pending/stale/ready/incomplete/orphaned;
//! - [`pull::pull_weights`] — restore files from layer blobs into the store;
//! - [`drift::check_drift`] — the gate before build/push;
//! - [`index::build_bundle_index`] — the OCI index of a bundle push.

pub mod artifact;
pub mod drift;
pub mod envelope;
pub mod error;
pub mod filter;
pub mod import;
pub mod index;
pub mod ingest;
pub mod layerio;
pub mod lockfile;
pub mod pack;
pub mod pull;
pub mod push;
pub mod registry;
pub mod runtime;
pub mod sha_pair;
pub mod source;
pub mod spec;
pub mod status;
pub mod store;
pub mod tar;

pub use error::WeightsError;

use crate::oci::Digest;

/// The set digest of a file set (§8.7): lines `<hex>  <path>` sorted as byte
/// strings (digest first), joined with `\n`, hashed.
pub fn set_digest<'a>(files: impl IntoIterator<Item = (&'a str, &'a Digest)>) -> Digest {
    let mut lines: Vec<String> = files
        .into_iter()
        .map(|(path, digest)| format!("{}  {}", digest.hex(), path))
        .collect();
    lines.sort();
    Digest::of_bytes(lines.join("\n").as_bytes())
}

/// Runs `work` over `items` on at most `limit` threads (at least one) and
/// returns the results in item order. Used for registry round trips, which
/// wait on the network rather than the CPU.
pub fn run_bounded<T: Sync, R: Send>(
    items: &[T],
    limit: usize,
    work: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = limit.max(1).min(items.len());
    let mut results: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        out.push((i, work(item)));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker threads do not panic"))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Go `encoding/json` escapes `<`, `>`, `&`, U+2028 and U+2029 inside
/// strings; serde_json does not. These characters only occur inside strings
/// in JSON text, so replacing them everywhere is exact.
pub(crate) fn go_json_escape(json: String) -> String {
    if !json.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return json;
    }
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Go `json.Marshal` bytes of a value (compact).
pub(crate) fn go_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let text = serde_json::to_string(value).expect("serialising plain data cannot fail");
    go_json_escape(text).into_bytes()
}

/// Go `json.MarshalIndent(v, "", "  ")` bytes of a value.
pub(crate) fn go_json_indent<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let text = serde_json::to_string_pretty(value).expect("serialising plain data cannot fail");
    go_json_escape(text).into_bytes()
}
