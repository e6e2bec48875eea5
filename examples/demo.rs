//! `make demo`: builds and pushes examples/hello with cogpack to a loopback
//! registry holding a python:3.11-slim stand-in base, then pulls the image
//! back, runs it without Docker (bwrap) and prints a prediction.
//!
//! It reuses the integration tests' harness (tests/common): a real Debian
//! `docker-registry` on 127.0.0.1, the stand-in base built with mmdebstrap
//! (cached), and the Docker-free runner. Everything it starts stops when it
//! exits.

#[path = "../tests/common/mod.rs"]
mod common;

use common::cogpack::World;
use common::runner::{self, RunOptions};
use std::time::Instant;

fn main() {
    let started = Instant::now();
    eprintln!("demo: starting a registry on 127.0.0.1 with the stand-in base images");
    let world = World::new();
    let (_scratch, project) = common::project_copy("examples/hello");
    let image = world.image("examples/hello:demo");
    eprintln!("demo: cogpack build --push -t {image}");
    let output = world.cogpack(&project, &["build", "--push", "-t", &image]);
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    print!("{}", String::from_utf8_lossy(&output.stdout));
    if !output.status.success() {
        eprintln!("demo: cogpack failed ({})", output.status);
        std::process::exit(1);
    }
    eprintln!("demo: pulling {image} back and running it under bwrap (no Docker)");
    let pulled = runner::pull(&image).unwrap_or_else(|e| fail(&e));
    let model = pulled
        .run(&RunOptions::default())
        .unwrap_or_else(|e| fail(&e));
    let (status, body) = model.predict(&serde_json::json!({"name": "world"}));
    println!("prediction (HTTP {status}): {}", body["output"]);
    println!("pushed digest: {}", pulled.manifest_digest);
    eprintln!("demo: done in {:.1}s", started.elapsed().as_secs_f64());
    if status != 200 || body["status"] != "succeeded" {
        fail(&format!("unexpected prediction response: {body}"));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("demo: {message}");
    std::process::exit(1)
}
