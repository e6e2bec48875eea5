//! Mutation fuzzing engine for schema generation, shared by the bounded
//! test (`tests/schema_mutation.rs`) and the long-running driver
//! (`examples/schema_fuzz.rs`). cargo-fuzz needs a nightly toolchain, which
//! this project does not use, so this engine mutates the hand-written
//! fixture predictors with a seeded PRNG instead.

use std::path::{Path, PathBuf};

use cogpack::schema::{self, SchemaOptions};

/// Python-ish fragments spliced into sources.
const TOKENS: &[&str] = &[
    "Input(",
    "default=",
    ")",
    "(",
    "[",
    "]",
    "|",
    "None",
    "\"",
    "'",
    "\"\"\"",
    "Optional[",
    "list[",
    "List[",
    "dict[str, ",
    "Union[",
    "async ",
    "@cog.concurrent(max=2)\n",
    "@cog.streaming\n",
    "@concurrent()\n",
    "class Y(BaseModel):\n    a: int\n",
    "class Z(TypedDict, total=False):\n    b: 'Z'\n",
    "\n    ",
    "\n",
    ":",
    ",",
    "->",
    " = ",
    "from . import helper\n",
    "from .helper import Thing\n",
    "from helper import *\n",
    "import cog\n",
    "Annotated[",
    "Opaque",
    "Literal[",
    "choices=",
    "ge=",
    "le=",
    "1e400",
    "0x",
    "-",
    "*",
    "**",
    "lambda",
    "\\",
    "Iterator[",
    "ConcatenateIterator[",
    "Secret",
    "Path",
    "self",
    "Predictor.",
    "predict",
    "run",
    "train",
    "\u{2028}",
    "é",
    "\0",
    "<&>",
    "9223372036854775808",
    "min_length=",
    "regex=\"[\"",
    "accept=",
    "default_factory=",
    "deprecated=True",
    "from __future__ import annotations\n",
];

/// A small deterministic PRNG (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// Seeds the generator (a zero seed is replaced).
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    /// Next pseudo-random number.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// All `.py` files under the fixture tree, as mutation seeds.
pub fn seed_corpus(fixtures: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(fixtures)
        .into_iter()
        .filter_map(|e| e.ok())
        .map(|e| e.into_path())
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

/// Applies 1–8 random edits to `input`.
pub fn mutate(input: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(8) {
        let len = out.len();
        match rng.below(6) {
            0 if len > 0 => {
                let start = rng.below(len);
                let end = (start + rng.below(32) + 1).min(len);
                out.drain(start..end);
            }
            1 if len > 0 => {
                let start = rng.below(len);
                let end = (start + rng.below(64) + 1).min(len);
                let chunk = out[start..end].to_vec();
                let at = rng.below(len + 1);
                out.splice(at..at, chunk);
            }
            2 | 3 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                let at = rng.below(len + 1);
                out.splice(at..at, token.iter().copied());
            }
            4 if len > 0 => {
                let at = rng.below(len);
                out[at] = rng.next() as u8;
            }
            _ => {
                let lines: Vec<&[u8]> = input.split(|b| *b == b'\n').collect();
                if lines.len() > 1 {
                    let a = rng.below(lines.len());
                    let b = rng.below(lines.len());
                    let mut swapped: Vec<&[u8]> = lines.clone();
                    swapped.swap(a, b);
                    out = swapped.join(&b'\n');
                }
            }
        }
    }
    out
}

/// What one generation attempt produced.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Inputs that produced a document.
    pub ok: u64,
    /// Inputs that produced an error.
    pub err: u64,
}

/// Runs one mutated project through `generate`, checking the result's shape.
/// Returns `Err` with a description when an invariant is broken.
pub fn run_case(
    dir: &Path,
    predict: &[u8],
    helper: &[u8],
    rng: &mut Rng,
    tally: &mut Tally,
) -> Result<(), String> {
    std::fs::write(dir.join("predict.py"), predict).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("helper.py"), helper).map_err(|e| e.to_string())?;
    let refs = [
        (Some("predict.py:Predictor"), None),
        (Some("predict.py:predict"), None),
        (None, Some("predict.py:Predictor")),
        (Some("predict.py:Predictor"), Some("helper.py:train")),
    ];
    let (p, t) = refs[rng.below(refs.len())];
    let opts = SchemaOptions {
        sdk_version: "0.17.0".to_string(),
        literal_enums: rng.below(2) == 0,
    };
    match schema::generate(dir, p, t, &opts) {
        Ok(got) => {
            let v: serde_json::Value = serde_json::from_str(&got.json)
                .map_err(|e| format!("generated invalid JSON ({e}): {}", got.json))?;
            if v["openapi"] != "3.0.2" {
                return Err(format!("document without openapi 3.0.2: {}", got.json));
            }
            tally.ok += 1;
        }
        Err(e) => {
            let shown = e.to_string();
            if e.message.is_empty() || !shown.contains("hint: ") {
                return Err(format!("error without message or hint: {shown:?}"));
            }
            tally.err += 1;
        }
    }
    Ok(())
}
