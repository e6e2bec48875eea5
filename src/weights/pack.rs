//! Packing plan (§8.9): small files into gzip bundles, large files into one
//! layer each (raw `tar` when incompressible).

use crate::oci::media::{OCI_LAYER_GZIP, OCI_LAYER_TAR};

/// Files below this size go into bundles.
pub const BUNDLE_FILE_MAX: u64 = 64 * 1024 * 1024;
/// A bundle is closed before it would exceed this many content bytes.
pub const BUNDLE_SIZE_MAX: u64 = 256 * 1024 * 1024;
/// Gzip level cog uses for a multi-file bundle (part of cog's envelope).
pub const GZIP_LEVEL_BUNDLE: i32 = 9;
/// Gzip level cogpack uses for a multi-file bundle, recorded in cogpack's
/// own envelope. Level 9 on text-like small files costs about as much CPU
/// as both SHA-256 passes over gigabytes of large files (measured with
/// `make bench`: 64 MiB of JSON-like files take ≈ 3 s of CPU at level 9, ≈ 1.2 s
/// at level 6, on a 2 vCPU EPYC) for bundles only ≈ 2 % smaller; cogpack's gzip bytes differ
/// from cog's anyway, so the level is cogpack's choice.
pub const COGPACK_GZIP_LEVEL_BUNDLE: i32 = 6;
/// Gzip level of large compressible files and single-file bundles (Go's
/// DefaultCompression, i.e. 6).
pub const GZIP_LEVEL_LARGE: i32 = -1;
/// Extensions (lower case) whose large files are stored as raw `tar`.
pub const INCOMPRESSIBLE_EXTS: [&str; 7] = [
    ".safetensors",
    ".bin",
    ".gguf",
    ".onnx",
    ".parquet",
    ".pt",
    ".pth",
];

/// How a layer's tar is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Raw tar.
    None,
    /// Gzip at a level (0–9).
    Gzip(u32),
}

impl Compression {
    /// The OCI media type of a layer stored this way.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => OCI_LAYER_TAR,
            Compression::Gzip(_) => OCI_LAYER_GZIP,
        }
    }
}

/// One planned layer: indexes into the path-sorted inventory, in tar order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedLayer {
    /// Indexes of the files in this layer.
    pub files: Vec<usize>,
    /// How the tar is stored.
    pub compression: Compression,
}

/// Go `filepath.Ext` of the last path segment, lower-cased.
fn extension(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    base.rfind('.')
        .map(|i| base[i..].to_ascii_lowercase())
        .unwrap_or_default()
}

/// True if a large file with this path is stored as raw tar.
pub fn is_incompressible(path: &str) -> bool {
    INCOMPRESSIBLE_EXTS.contains(&extension(path).as_str())
}

/// The gzip level cogpack streams a `tar+gzip` layer with: bundles of
/// several files use the bundle level, single files Go's default.
pub fn gzip_level(files_in_layer: usize) -> u32 {
    if files_in_layer > 1 {
        go_level(COGPACK_GZIP_LEVEL_BUNDLE)
    } else {
        go_level(GZIP_LEVEL_LARGE)
    }
}

fn go_level(level: i32) -> u32 {
    if level < 0 { 6 } else { level as u32 }
}

/// Plans layers over files `(path, size)` sorted by path.
pub fn plan(files: &[(&str, u64)]) -> Vec<PlannedLayer> {
    let mut layers = Vec::new();
    let mut bundle: Vec<usize> = Vec::new();
    let mut bundle_bytes = 0u64;
    let close = |bundle: &mut Vec<usize>, layers: &mut Vec<PlannedLayer>| {
        if bundle.is_empty() {
            return;
        }
        let level = if bundle.len() > 1 {
            COGPACK_GZIP_LEVEL_BUNDLE
        } else {
            GZIP_LEVEL_LARGE
        };
        layers.push(PlannedLayer {
            files: std::mem::take(bundle),
            compression: Compression::Gzip(go_level(level)),
        });
    };
    for (i, (_, size)) in files.iter().enumerate() {
        if *size >= BUNDLE_FILE_MAX {
            continue;
        }
        if !bundle.is_empty() && bundle_bytes + size > BUNDLE_SIZE_MAX {
            close(&mut bundle, &mut layers);
            bundle_bytes = 0;
        }
        bundle.push(i);
        bundle_bytes += size;
    }
    close(&mut bundle, &mut layers);
    for (i, (path, size)) in files.iter().enumerate() {
        if *size < BUNDLE_FILE_MAX {
            continue;
        }
        let compression = if is_incompressible(path) {
            Compression::None
        } else {
            Compression::Gzip(go_level(GZIP_LEVEL_LARGE))
        };
        layers.push(PlannedLayer {
            files: vec![i],
            compression,
        });
    }
    layers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_files_bundle_and_large_files_stand_alone() {
        let big = BUNDLE_FILE_MAX;
        let files = [
            ("a.json", 10),
            ("m.safetensors", big),
            ("t.json", 20),
            ("x.txt", big + 1),
        ];
        let layers = plan(&files);
        assert_eq!(layers.len(), 3);
        assert_eq!(layers[0].files, vec![0, 2]);
        assert_eq!(
            layers[0].compression,
            Compression::Gzip(COGPACK_GZIP_LEVEL_BUNDLE as u32)
        );
        assert_eq!(gzip_level(2), COGPACK_GZIP_LEVEL_BUNDLE as u32);
        assert_eq!(gzip_level(1), 6);
        assert_eq!(layers[1].compression, Compression::None);
        assert_eq!(layers[2].compression, Compression::Gzip(6));
    }

    #[test]
    fn single_file_bundle_uses_default_level_and_bundles_split() {
        let layers = plan(&[("a", 5)]);
        assert_eq!(layers[0].compression, Compression::Gzip(6));
        let mib = 1024 * 1024;
        let files = [
            ("a", 60 * mib),
            ("b", 60 * mib),
            ("c", 60 * mib),
            ("d", 60 * mib),
            ("e", 16 * mib),
            ("f", 20 * mib),
        ];
        let layers = plan(&files);
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0].files, vec![0, 1, 2, 3, 4]);
        assert_eq!(layers[1].files, vec![5]);
        assert_eq!(layers[1].compression, Compression::Gzip(6));
    }

    #[test]
    fn extensions_are_case_insensitive() {
        assert!(is_incompressible("dir/Model.SafeTensors"));
        assert!(!is_incompressible("dir.bin/model"));
    }
}
