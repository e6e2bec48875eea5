//! Speed check for static schema generation (for `make bench`).
//!
//! Writes a synthetic 5,000-line project (a predictor importing four local
//! modules with models and constants) to a temp dir, then times
//! `schema::generate` and prints one line: `schema_generate_5000_lines
//! lines=<n> runs=<r> median_ms=<m> max_ms=<x>`.
//! Usage: `cargo run --release --example schema_bench -- [RUNS]`.

use std::fmt::Write as _;
use std::time::Instant;

use cogpack::schema::{self, SchemaOptions};

fn module(index: usize, lines: usize) -> String {
    let mut src = String::from("from cog import BaseModel\nfrom typing import Optional\n\n");
    let mut i = 0;
    while src.lines().count() < lines {
        let _ = write!(
            src,
            "LIMIT_{index}_{i} = {i}\nHELP_{index}_{i} = \"help text {i}\"\n\nclass Item{index}_{i}(BaseModel):\n    name: str\n    score: float = 0.5\n    note: Optional[str] = None\n    tags: list[str] = []\n\n\ndef helper_{index}_{i}(x: int) -> int:\n    if x > {i}:\n        return x - {i}\n    return x + {i}\n\n\n"
        );
        i += 1;
    }
    src
}

fn predictor(lines: usize) -> String {
    let mut src = String::from(
        "from cog import BasePredictor, Input, Path\nfrom mod0 import Item0_1\nfrom mod1 import *\nfrom mod2 import helper_2_0\nfrom mod3 import LIMIT_3_0\n\n",
    );
    src.push_str(&module(9, lines.saturating_sub(60)));
    src.push_str("class Predictor(BasePredictor):\n    def setup(self) -> None:\n        pass\n\n    def run(\n        self,\n");
    for p in 0..40 {
        let _ = writeln!(
            src,
            "        p{p}: int = Input(default=LIMIT_9_{p}, ge=0, le=1000, description=HELP_9_{p}),"
        );
    }
    src.push_str(
        "        image: Path = Input(description=\"image\"),\n    ) -> Item0_1:\n        pass\n",
    );
    src
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut total_lines = 0;
    for m in 0..4 {
        let text = module(m, 1_000);
        total_lines += text.lines().count();
        std::fs::write(dir.path().join(format!("mod{m}.py")), text).expect("write module");
    }
    let main_src = predictor(1_000);
    total_lines += main_src.lines().count();
    std::fs::write(dir.path().join("predict.py"), main_src).expect("write predictor");
    let opts = SchemaOptions {
        sdk_version: "0.17.0".to_string(),
        literal_enums: false,
    };
    let mut timings = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let got = schema::generate(dir.path(), Some("predict.py:Predictor"), None, &opts)
            .unwrap_or_else(|e| panic!("bench project must generate: {e}"));
        timings.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(got.json.contains("\"p39\""));
    }
    timings.sort_by(f64::total_cmp);
    println!(
        "schema_generate_5000_lines lines={total_lines} runs={} median_ms={:.2} max_ms={:.2}",
        timings.len(),
        timings[timings.len() / 2],
        timings[timings.len() - 1]
    );
}
