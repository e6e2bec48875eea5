//! Long-running mutation fuzzer for schema generation.
//!
//! Usage: `cargo run --release --example schema_fuzz -- [SECONDS] [SEED]`
//! (defaults: 600 s, seed 1). Panics are caught; the offending input is
//! written to `schema-fuzz-crash-<n>.py` in the current directory.

#[path = "../fuzz/fuzz_targets/schema_mutate.rs"]
mod schema_mutate;

use std::path::Path;
use std::time::{Duration, Instant};

use schema_mutate::{Rng, Tally, mutate, run_case, seed_corpus};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(600);
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/schema");
    let corpus = seed_corpus(&fixtures);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    let mut failures = 0u64;
    let mut slowest = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut iterations = 0u64;
    std::panic::set_hook(Box::new(|_| {}));
    while Instant::now() < deadline {
        let predict = mutate(&corpus[rng.below(corpus.len())], &mut rng);
        let helper = mutate(&corpus[rng.below(corpus.len())], &mut rng);
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_case(dir.path(), &predict, &helper, &mut rng, &mut tally)
        }));
        slowest = slowest.max(started.elapsed());
        iterations += 1;
        let problem = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(problem)) => problem,
            Err(_) => "panic".to_string(),
        };
        failures += 1;
        let path = format!("schema-fuzz-crash-{failures}.py");
        let _ = std::fs::write(&path, &predict);
        eprintln!("FAILURE {failures}: {problem} (input saved to {path})");
    }
    println!(
        "iterations={iterations} ok={} err={} failures={failures} slowest_ms={}",
        tally.ok,
        tally.err,
        slowest.as_millis()
    );
    if failures > 0 {
        std::process::exit(1);
    }
}
