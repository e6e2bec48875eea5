//! `cogpack gc [--dry-run]`: removes store blobs that no recorded image
//! reaches and no pin keeps (pinned downloads such as tini), listing each one.

use super::CliError;
use super::args::GcArgs;
use super::env::Environment;

/// Runs `cogpack gc`.
pub fn run(args: &GcArgs, env: &Environment) -> Result<(), CliError> {
    let store = super::build::open_store(env)?;
    if args.dry_run {
        let unreferenced = store.unreferenced_blobs().map_err(store_error)?;
        let mut bytes = 0;
        for (digest, size) in &unreferenced {
            println!("would remove {digest} ({size} bytes)");
            bytes += size;
        }
        println!(
            "Dry run: {} blob(s), {bytes} bytes would be freed",
            unreferenced.len()
        );
        return Ok(());
    }
    let report = store.gc().map_err(store_error)?;
    for (digest, size) in &report.removed {
        println!("removed {digest} ({size} bytes)");
    }
    println!(
        "Removed {} blob(s), freed {} bytes; kept {} blob(s) used by recorded images or pinned downloads",
        report.removed_blobs, report.freed_bytes, report.kept_blobs
    );
    Ok(())
}

fn store_error(e: impl std::fmt::Display) -> CliError {
    CliError::new(
        format!("cannot read the local store: {e}"),
        "check the store directory (COGPACK_HOME) is intact",
    )
}
