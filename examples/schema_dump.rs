//! Prints the schema cogpack generates for a project (debugging aid).
//!
//! Usage: `cargo run --example schema_dump -- DIR [PREDICT_REF] [TRAIN_REF]`
//! (empty string = not set). Exit code 1 with the error on failure.

use std::path::Path;

use cogpack::schema::{self, SchemaOptions};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).map_or(".", String::as_str);
    let predict = args.get(2).map(String::as_str).filter(|s| !s.is_empty());
    let train = args.get(3).map(String::as_str).filter(|s| !s.is_empty());
    let opts = SchemaOptions {
        sdk_version: "dev".to_string(),
        literal_enums: std::env::var_os("COGPACK_LITERAL_ENUMS").is_some(),
    };
    match schema::generate(Path::new(dir), predict, train, &opts) {
        Ok(got) => {
            for warning in &got.warnings {
                eprintln!("{warning}");
            }
            println!("{}", got.json);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
