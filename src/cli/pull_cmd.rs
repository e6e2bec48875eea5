//! `cogpack pull REF --output SPEC…`: the linux/amd64 image of a reference,
//! copied from its registry (or a configured mirror) into OCI layouts or
//! archives. Manifest and config are verified when fetched; every layer is
//! streamed once per output and verified against its digest before the
//! output is renamed into place.

use super::CliError;
use super::args::PullArgs;
use super::build::{registry_client, tokio_runtime};
use crate::oci::output::OutputTarget;
use crate::oci::{Image, Platform};
use crate::registry::{Reference, RemoteImage};

/// Runs `cogpack pull`.
pub fn run(args: &PullArgs) -> Result<(), CliError> {
    let targets = args
        .output
        .iter()
        .map(|spec| {
            OutputTarget::parse(spec).map_err(|e| {
                CliError::new(e, "use oci:DIR, oci-archive:FILE or docker-archive:FILE")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let reference =
        Reference::parse(&args.reference).map_err(|e| CliError::plain(e.to_string()))?;
    let runtime = tokio_runtime()?;
    let client = registry_client(&args.registry)?;
    let pulled = runtime
        .block_on(client.pull_shallow(&reference, &Platform::linux_amd64()))
        .map_err(|e| CliError::plain(e.to_string()))?;
    let image = {
        let _guard = runtime.enter();
        RemoteImage::new(&client, &pulled)
    };
    for (spec, target) in args.output.iter().zip(&targets) {
        target
            .write(&image, Some(&args.reference))
            .map_err(|e| CliError::plain(format!("{}: {e}", args.reference)))?;
        eprintln!("Wrote {spec}");
    }
    println!("{}@{}", args.reference, image.digest());
    Ok(())
}
