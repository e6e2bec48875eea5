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
    std::fs::write(&predictor, source.replace("hello ", "hi ")).expect("edit predict.py");
    let warm = timed(&world, &project, &args);
    let noop = timed(&world, &project, &args);
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
        "Each figure is one `cogpack build --push` process, wall clock, including process start and the registry round trips."
    );
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
