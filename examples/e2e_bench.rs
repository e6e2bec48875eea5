//! `make bench` end-to-end figures: cold build + push of the hello fixture
//! with an empty store, warm rebuild + push after a one-line source change,
//! and a no-op push, against a real registry on 127.0.0.1. Prints a
//! Markdown table. Uses the integration tests' harness (tests/common).

#[path = "../tests/common/mod.rs"]
mod common;

use common::cogpack::World;
use std::path::Path;
use std::time::{Duration, Instant};

fn main() {
    let world = World::new();
    let (_scratch, project) = common::project_copy("fixtures/e2e/hello");
    let image = world.image("bench/hello:v1");
    let args = [
        "build",
        "--push",
        "-t",
        image.as_str(),
        "--use-cog-base-image=false",
    ];
    let cold = timed(&world, &project, &args);
    let predictor = project.join("predict.py");
    let source = std::fs::read_to_string(&predictor).expect("predict.py");
    let mut warm = Vec::new();
    let mut noop = Vec::new();
    for greeting in ["hi ", "hey ", "hello there "] {
        std::fs::write(&predictor, source.replace("hello ", greeting)).expect("edit predict.py");
        warm.push(timed(&world, &project, &args));
        noop.push(timed(&world, &project, &args));
    }
    let (warm, noop) = (median(warm), median(noop));
    println!("| measurement | time | target |");
    println!("|---|---|---|");
    println!(
        "| cold build + push (empty store, wheels downloaded, resolution) | {:.2} s | — |",
        cold.as_secs_f64()
    );
    println!(
        "| warm rebuild + push after a one-line source change | {:.2} s | < 1 s |",
        warm.as_secs_f64()
    );
    println!(
        "| no-op build + push (nothing changed) | {:.2} s | < 0.3 s |",
        noop.as_secs_f64()
    );
    println!();
    println!(
        "Each figure is one `cogpack build --push` process, wall clock, including process start and the registry round trips; warm and no-op are the median of 3 runs (3 different one-line edits, each followed by a no-op run)."
    );
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn timed(world: &World, project: &Path, args: &[&str]) -> Duration {
    let started = Instant::now();
    let output = world.cogpack(project, args);
    let elapsed = started.elapsed();
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        std::process::exit(1);
    }
    elapsed
}
