//! `pip freeze` output computed from the installed distributions, following
//! pip's rules: `name==version` (version normalised), `name @ reference` for
//! PEP 610 direct URLs, de-duplication by normalised name (first wins),
//! pip's default exclusions, and a case-insensitive sort of whole lines.

use super::target::canonical_name;
use super::wheel::DirectUrl;
use std::collections::BTreeSet;
use std::str::FromStr as _;

/// What `pip freeze` needs to know about one installed distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrozenDist {
    /// Name from METADATA.
    pub name: String,
    /// Version from METADATA.
    pub version: String,
    /// PEP 610 origin, if installed from a direct reference.
    pub direct_url: Option<DirectUrl>,
}

/// Distributions `pip freeze` hides without `--all` for this Python version:
/// `pip` always, and `setuptools`, `distribute`, `wheel` before 3.12.
pub fn hidden_by_default(python_version: (u32, u32)) -> Vec<&'static str> {
    let mut out = vec!["pip"];
    if python_version < (3, 12) {
        out.extend(["setuptools", "distribute", "wheel"]);
    }
    out
}

/// One freeze line for a distribution.
pub fn freeze_line(d: &FrozenDist) -> String {
    match &d.direct_url {
        Some(u) => format!("{} @ {}", d.name, u.freeze_reference()),
        None => match pep440_rs::Version::from_str(&d.version) {
            Ok(v) => format!("{}=={v}", d.name),
            Err(_) => format!("{}==={}", d.name, d.version),
        },
    }
}

/// The exact stdout of `python -m pip freeze` for distributions in
/// `sys.path` order (each line ends in `\n`; empty when nothing is listed).
pub fn pip_freeze(dists: &[FrozenDist], python_version: (u32, u32)) -> String {
    let hidden = hidden_by_default(python_version);
    let mut seen = BTreeSet::new();
    let mut lines: Vec<String> = Vec::new();
    for d in dists {
        let key = canonical_name(&d.name);
        if !seen.insert(key.clone()) || hidden.contains(&key.as_str()) {
            continue;
        }
        lines.push(freeze_line(d));
    }
    lines.sort_by_key(|l| l.to_lowercase());
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Reads the `*.dist-info` directories of an unpacked site-packages
/// directory (e.g. from a base image) in `pip`'s file-name order, for
/// [`pip_freeze`].
pub fn scan_site_packages(dir: &std::path::Path) -> anyhow::Result<Vec<FrozenDist>> {
    use anyhow::Context as _;
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "dist-info") && p.is_dir())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for info in names {
        let meta = std::fs::read_to_string(info.join("METADATA"))
            .with_context(|| format!("reading {}/METADATA", info.display()))?;
        let (name, version) = super::wheel::parse_metadata(&meta)
            .with_context(|| format!("{}/METADATA", info.display()))?;
        let direct_url = match std::fs::read_to_string(info.join("direct_url.json")) {
            Ok(text) => Some(
                parse_direct_url(&text)
                    .with_context(|| format!("{}/direct_url.json", info.display()))?,
            ),
            Err(_) => None,
        };
        out.push(FrozenDist {
            name,
            version,
            direct_url,
        });
    }
    Ok(out)
}

/// Parses a PEP 610 `direct_url.json`.
pub fn parse_direct_url(text: &str) -> anyhow::Result<DirectUrl> {
    use anyhow::Context as _;
    let v: serde_json::Value = serde_json::from_str(text)?;
    let url = v
        .get("url")
        .and_then(|u| u.as_str())
        .context("no url")?
        .to_string();
    let s = |o: &serde_json::Value, k: &str| o.get(k).and_then(|x| x.as_str()).map(str::to_string);
    if let Some(vcs) = v.get("vcs_info") {
        return Ok(DirectUrl::Vcs {
            vcs: s(vcs, "vcs").context("no vcs_info.vcs")?,
            url,
            commit_id: s(vcs, "commit_id").context("no vcs_info.commit_id")?,
            requested_revision: s(vcs, "requested_revision"),
        });
    }
    if let Some(archive) = v.get("archive_info") {
        return Ok(DirectUrl::Archive {
            url,
            hash: s(archive, "hash"),
        });
    }
    Ok(DirectUrl::Dir { url })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(name: &str, version: &str) -> FrozenDist {
        FrozenDist {
            name: name.into(),
            version: version.into(),
            direct_url: None,
        }
    }

    #[test]
    fn sorted_case_insensitively_with_defaults_hidden() {
        let out = pip_freeze(
            &[
                d("requests", "2.32.3"),
                d("PyYAML", "6.0.2"),
                d("pip", "24.0"),
                d("setuptools", "65.5.1"),
                d("wheel", "0.42"),
            ],
            (3, 11),
        );
        assert_eq!(out, "PyYAML==6.0.2\nrequests==2.32.3\n");
        let out312 = pip_freeze(&[d("setuptools", "80.0"), d("pip", "24.0")], (3, 12));
        assert_eq!(out312, "setuptools==80.0\n");
    }

    #[test]
    fn versions_are_normalised_and_duplicates_dropped() {
        let out = pip_freeze(&[d("Foo", "1.0-RC1"), d("foo", "2.0")], (3, 11));
        assert_eq!(out, "Foo==1.0rc1\n");
    }
}
