//! `make bench` sandbox figures: one trivial run step (`echo ran`) over the
//! Debian stand-in base (python:3.11-slim), cold (layers unpacked into an
//! empty store) and warm (unpacked layers reused), against the same work done
//! by hand in the same run: `tar -x` of every layer, then `unshare` +
//! `chroot`. Prints a Markdown table. Uses the integration tests' harness
//! (tests/common) for the stand-in base.

#[path = "../tests/common/mod.rs"]
mod common;

use cogpack::oci::layout::read_base;
use cogpack::oci::store::Store;
use cogpack::sandbox::{self, LayerRef, RunSpec, StoreBlobs, ensure_layers, run_command};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How many times each measurement is repeated; the median is reported.
const SAMPLES: usize = 5;

/// The stand-in base read into a fresh store: its layers and image env.
struct Base {
    store: Store,
    layers: Vec<LayerRef>,
    env: Vec<String>,
}

fn main() {
    let scratch = common::scratch_dir("sandbox-bench");
    let layout = common::base_image::stand_in_layout();
    let cold = median((0..SAMPLES).map(|i| {
        let base = open_base(&layout, &scratch.path().join(format!("cold-{i}")));
        timed_trivial_run(&base)
    }));
    let base = open_base(&layout, &scratch.path().join("warm"));
    timed_trivial_run(&base);
    let warm = median((0..SAMPLES).map(|_| timed_trivial_run(&base)));
    let by_hand = median(
        (0..SAMPLES).map(|i| timed_by_hand(&base, &scratch.path().join(format!("hand-{i}")))),
    );
    print_table(cold, warm, by_hand, base.layers.len());
}

/// Opens a store under `dir` holding the python:3.11-slim stand-in.
fn open_base(layout: &Path, dir: &Path) -> Base {
    let store = Store::open(dir.join("store")).expect("open store");
    let base = read_base(&format!("{}:python-3.11-slim", layout.display()), &store)
        .expect("read the stand-in base");
    let layers = base
        .layers
        .iter()
        .zip(base.diff_ids().expect("diff ids"))
        .map(|(descriptor, diff_id)| LayerRef {
            descriptor: descriptor.clone(),
            diff_id,
        })
        .collect();
    let config: serde_json::Value = serde_json::from_slice(&base.config).expect("config JSON");
    let env = serde_json::from_value(config["config"]["Env"].clone()).expect("config Env");
    Base { store, layers, env }
}

/// Unpacks (or reuses) the base layers and runs `echo ran` in the sandbox.
fn timed_trivial_run(base: &Base) -> Duration {
    let started = Instant::now();
    let (lower_dirs, _) = ensure_layers(
        &base.store,
        &base.layers,
        &StoreBlobs(base.store.clone()),
        &|_| {},
    )
    .expect("unpack base layers");
    let spec = RunSpec {
        step_name: "run-1".to_string(),
        command: "echo ran".to_string(),
        env: base.env.clone(),
        workdir: "/".to_string(),
        lower_dirs,
        secrets: Vec::new(),
        cache_dirs: Vec::new(),
    };
    let mut lines = Vec::new();
    run_command(
        &spec,
        &sandbox::rootfs::rootfs_root(&base.store),
        &sandbox::scratch_dir(&base.store),
        &mut |line| lines.push(line.to_string()),
    )
    .expect("sandbox run");
    assert_eq!(lines, vec!["[run-1] ran".to_string()]);
    started.elapsed()
}

/// `tar -x` of every base layer into `rootfs`, then `unshare` + `chroot`.
fn timed_by_hand(base: &Base, rootfs: &Path) -> Duration {
    let started = Instant::now();
    std::fs::create_dir_all(rootfs).expect("create by-hand rootfs");
    for layer in &base.layers {
        common::run_ok(
            Command::new("tar")
                .arg("-xf")
                .arg(base.store.blob_path(&layer.descriptor.digest))
                .arg("-C")
                .arg(rootfs),
        );
    }
    let out = common::run_ok(
        Command::new("unshare")
            .args(["--mount", "--pid", "--fork", "chroot"])
            .arg(rootfs)
            .args(["/bin/sh", "-c", "echo ran"]),
    );
    assert_eq!(out, b"ran\n");
    started.elapsed()
}

/// The median of the samples.
fn median(samples: impl Iterator<Item = Duration>) -> Duration {
    let mut all: Vec<Duration> = samples.collect();
    all.sort();
    all[all.len() / 2]
}

fn print_table(cold: Duration, warm: Duration, by_hand: Duration, layers: usize) {
    let ratio = |d: Duration| d.as_secs_f64() / by_hand.as_secs_f64();
    println!("Median of {SAMPLES} runs; base: python:3.11-slim stand-in, {layers} layer(s).");
    println!();
    println!("| measurement | time | × by hand | target |");
    println!("|---|---|---|---|");
    println!(
        "| by hand: `tar -x` of every layer + `unshare` + `chroot` (baseline) | {:.3} s | 1.00 | — |",
        by_hand.as_secs_f64()
    );
    println!(
        "| cogpack sandbox, cold (layers unpacked into an empty store) | {:.3} s | {:.2} | — |",
        cold.as_secs_f64(),
        ratio(cold)
    );
    println!(
        "| cogpack sandbox, warm (unpacked layers reused) | {:.3} s | {:.3} | ≤ 0.30 |",
        warm.as_secs_f64(),
        ratio(warm)
    );
}
