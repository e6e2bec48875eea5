//! Bounded mutation fuzzing of schema generation (cargo-fuzz needs nightly;
//! the long-running driver is `examples/schema_fuzz.rs`).

#[path = "../fuzz/fuzz_targets/schema_mutate.rs"]
mod schema_mutate;

use std::path::Path;

use schema_mutate::{Rng, Tally, mutate, run_case, seed_corpus};

#[test]
fn mutated_predictors_never_panic_and_always_explain() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/schema");
    let corpus = seed_corpus(&fixtures);
    assert!(
        corpus.len() >= 40,
        "seed corpus too small: {}",
        corpus.len()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::new(0x5eed_cafe);
    let mut tally = Tally::default();
    for _ in 0..1500 {
        let predict = mutate(&corpus[rng.below(corpus.len())], &mut rng);
        let helper = mutate(&corpus[rng.below(corpus.len())], &mut rng);
        if let Err(problem) = run_case(dir.path(), &predict, &helper, &mut rng, &mut tally) {
            panic!(
                "invariant broken: {problem}\n--- predict.py ---\n{}",
                String::from_utf8_lossy(&predict)
            );
        }
    }
    assert!(
        tally.ok > 0 && tally.err > 0,
        "mutations should hit both outcomes: {tally:?}"
    );
}
