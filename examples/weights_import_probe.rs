//! Times one `weights import` of a directory into a store and reports wall
//! and CPU time (user, system) of the process, for profiling the import.
//!
//! Run: `cargo run --release --example weights_import_probe <weights dir> <store dir>`.

use cogpack::config::{WeightDecl, WeightSource};
use cogpack::weights::import::{ImportOptions, import_weights};
use cogpack::weights::source::SourceOptions;
use cogpack::weights::spec::WeightSpec;
use cogpack::weights::store::WeightStore;
use std::path::PathBuf;
use std::time::Instant;

fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 100.0
    };
    (tick(11), tick(12))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(weights), Some(store)) = (args.next(), args.next()) else {
        eprintln!("usage: weights_import_probe <weights dir> <store dir>");
        std::process::exit(2);
    };
    let weights = PathBuf::from(weights)
        .canonicalize()
        .expect("weights dir exists");
    let project = weights
        .parent()
        .expect("weights dir has a parent")
        .to_path_buf();
    let name = weights.file_name().unwrap().to_string_lossy().to_string();
    let specs = WeightSpec::from_decls(&[WeightDecl {
        name: "probe".into(),
        target: "/src/weights/probe".into(),
        sources: vec![WeightSource {
            uri: name,
            include: vec![],
            exclude: vec![],
        }],
        source_is_list: false,
    }])
    .expect("valid weight declaration");
    let opts = ImportOptions {
        project_dir: project.clone(),
        sources: SourceOptions::new(&project),
        store: WeightStore::new(store),
        names: vec![],
        dry_run: false,
    };
    let (u0, s0) = cpu_seconds();
    let start = Instant::now();
    import_weights(&specs, &opts).expect("import succeeds");
    let wall = start.elapsed().as_secs_f64();
    let (u1, s1) = cpu_seconds();
    println!(
        "wall {wall:.2} s, user {:.2} s, system {:.2} s",
        u1 - u0,
        s1 - s0
    );
}
