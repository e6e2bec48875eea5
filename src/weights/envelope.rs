//! The envelope format digest (§8.11): a hash over every packing parameter,
//! recorded in `weights.lock` so recorded layer digests are only trusted by a
//! packer that produces the same bytes.
//!
//! cogpack's gzip bytes differ from Go's, so cogpack records its own envelope
//! (cog's fields with cogpack's bundle gzip level, plus `producer`,
//! revision 1). A lockfile carrying cog's
//! envelope is recognised: its raw `tar` layers are reproducible and may be
//! reused, its `tar+gzip` layers are always recomputed.

use super::pack::{
    BUNDLE_FILE_MAX, BUNDLE_SIZE_MAX, COGPACK_GZIP_LEVEL_BUNDLE, GZIP_LEVEL_BUNDLE,
    GZIP_LEVEL_LARGE, INCOMPRESSIBLE_EXTS,
};
use crate::oci::Digest;
use crate::oci::media::{OCI_LAYER_GZIP, OCI_LAYER_TAR};
use serde::Serialize;

/// Which packer wrote a lockfile, judged by its envelope digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeKind {
    /// cogpack's own envelope: every recorded layer digest is reproducible.
    Cogpack,
    /// cog's envelope: raw `tar` layers are reproducible, gzip ones are not.
    Cog,
    /// Anything else: nothing recorded is trusted.
    Unknown,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    bundle_file_max: u64,
    bundle_size_max: u64,
    gzip_level_bundle: i32,
    gzip_level_large: i32,
    incompressible_exts: Vec<&'a str>,
    media_type_compressed: &'a str,
    media_type_raw: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    producer: Option<&'a str>,
    revision: u32,
}

fn envelope(producer: Option<&'static str>) -> Envelope<'static> {
    let mut exts: Vec<&str> = INCOMPRESSIBLE_EXTS.to_vec();
    exts.sort();
    Envelope {
        bundle_file_max: BUNDLE_FILE_MAX,
        bundle_size_max: BUNDLE_SIZE_MAX,
        gzip_level_bundle: match producer {
            None => GZIP_LEVEL_BUNDLE,
            Some(_) => COGPACK_GZIP_LEVEL_BUNDLE,
        },
        gzip_level_large: GZIP_LEVEL_LARGE,
        incompressible_exts: exts,
        media_type_compressed: OCI_LAYER_GZIP,
        media_type_raw: OCI_LAYER_TAR,
        producer,
        revision: 1,
    }
}

/// The Go JSON bytes of cog's envelope.
pub fn cog_envelope_json() -> Vec<u8> {
    super::go_json(&envelope(None))
}

/// The Go JSON bytes of cogpack's envelope (cog's fields, with cogpack's
/// bundle gzip level, plus `"producer":"cogpack-flate2-zlib-rs"`).
pub fn cogpack_envelope_json() -> Vec<u8> {
    super::go_json(&envelope(Some("cogpack-flate2-zlib-rs")))
}

/// cog's envelope digest.
pub fn cog_envelope() -> Digest {
    Digest::of_bytes(&cog_envelope_json())
}

/// cogpack's envelope digest (written into every lockfile cogpack writes).
pub fn cogpack_envelope() -> Digest {
    Digest::of_bytes(&cogpack_envelope_json())
}

/// Classifies a lockfile's `envelopeFormat` value.
pub fn classify(envelope_format: &str) -> EnvelopeKind {
    if envelope_format == cogpack_envelope().to_string() {
        EnvelopeKind::Cogpack
    } else if envelope_format == cog_envelope().to_string() {
        EnvelopeKind::Cog
    } else {
        EnvelopeKind::Unknown
    }
}

impl EnvelopeKind {
    /// True if a recorded layer of this media type may be reused.
    pub fn trusts(self, media_type: &str) -> bool {
        match self {
            EnvelopeKind::Cogpack => true,
            EnvelopeKind::Cog => media_type == OCI_LAYER_TAR,
            EnvelopeKind::Unknown => false,
        }
    }
}
