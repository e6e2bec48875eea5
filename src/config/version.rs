//! Cog's loose `major.minor[.patch][+meta]` version helpers (cog pkg/util/version).
//!
//! These are deliberately not PEP 440: CUDA, Python and torch versions in the
//! compatibility matrices are compared the way cog compares them.

use std::cmp::Ordering;

/// A parsed `major[.minor[.patch]][+metadata]` version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Major number.
    pub major: u64,
    /// Minor number (0 when absent).
    pub minor: u64,
    /// Patch number, `None` when not written.
    pub patch: Option<u64>,
    /// Text after `+`, empty when absent.
    pub metadata: String,
}

impl Version {
    /// Parses like cog's `NewVersion`: at most three dot parts, each an integer.
    pub fn parse(text: &str) -> Option<Version> {
        let (number, metadata) = match text.split_once('+') {
            Some((n, m)) => (n, m.to_string()),
            None => (text, String::new()),
        };
        let parts: Vec<&str> = number.split('.').collect();
        if parts.len() > 3 {
            return None;
        }
        let major = parse_part(parts[0])?;
        let minor = match parts.get(1) {
            Some(p) => parse_part(p)?,
            None => 0,
        };
        let patch = match parts.get(2) {
            Some(p) => Some(parse_part(p)?),
            None => None,
        };
        Some(Version {
            major,
            minor,
            patch,
            metadata,
        })
    }

    fn patch_or_zero(&self) -> u64 {
        self.patch.unwrap_or(0)
    }

    /// Numeric order ignoring metadata, a missing patch counting as 0.
    pub fn numeric_cmp(&self, other: &Version) -> Ordering {
        (self.major, self.minor, self.patch_or_zero()).cmp(&(
            other.major,
            other.minor,
            other.patch_or_zero(),
        ))
    }
}

/// Go's `strconv.Atoi` accepts an optional sign; versions never carry one in
/// practice, so only plain digits are accepted (a sign makes the text invalid).
fn parse_part(part: &str) -> Option<u64> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// Same major and minor; patches must be equal only when both are written.
pub fn matches(a: &str, b: &str) -> bool {
    match (Version::parse(a), Version::parse(b)) {
        (Some(x), Some(y)) => {
            x.major == y.major
                && x.minor == y.minor
                && !matches!((x.patch, y.patch), (Some(p), Some(q)) if p != q)
        }
        _ => false,
    }
}

/// Same major and minor.
pub fn equal_minor(a: &str, b: &str) -> bool {
    match (Version::parse(a), Version::parse(b)) {
        (Some(x), Some(y)) => x.major == y.major && x.minor == y.minor,
        _ => false,
    }
}

/// Equal numbers (missing patch = 0) and equal metadata; unparsable texts
/// compare as strings.
pub fn equal(a: &str, b: &str) -> bool {
    match (Version::parse(a), Version::parse(b)) {
        (Some(x), Some(y)) => x.numeric_cmp(&y) == Ordering::Equal && x.metadata == y.metadata,
        _ => a == b,
    }
}

/// `a > b` numerically; false when either does not parse.
pub fn greater(a: &str, b: &str) -> bool {
    match (Version::parse(a), Version::parse(b)) {
        (Some(x), Some(y)) => x.numeric_cmp(&y) == Ordering::Greater,
        _ => false,
    }
}

/// `a >= b`; unparsable texts compare as strings for equality.
pub fn greater_or_equal(a: &str, b: &str) -> bool {
    match (Version::parse(a), Version::parse(b)) {
        (Some(x), Some(y)) => {
            x.numeric_cmp(&y) == Ordering::Greater
                || (x.numeric_cmp(&y) == Ordering::Equal && x.metadata == y.metadata)
        }
        _ => a == b,
    }
}

/// `M.m` of a version, or the text unchanged when it does not parse.
pub fn strip_patch(text: &str) -> String {
    match Version::parse(text) {
        Some(v) => format!("{}.{}", v.major, v.minor),
        None => text.to_string(),
    }
}

/// The text before the first `+`.
pub fn strip_modifier(text: &str) -> &str {
    text.split('+').next().unwrap_or(text)
}
