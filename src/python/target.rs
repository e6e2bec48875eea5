//! Target interpreter facts and wheel-tag compatibility.

use anyhow::{Context, Result, bail};

/// A distribution already installed in the base image: never reinstalled,
/// passed to the resolver as a constraint and listed by `pip freeze`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseDistribution {
    /// Name as written in the distribution's METADATA (e.g. `PyYAML`).
    pub name: String,
    /// Installed version.
    pub version: String,
}

/// Where and for which interpreter the packages are installed.
#[derive(Debug, Clone)]
pub struct PythonTarget {
    /// `major.minor`, e.g. `3.11`.
    pub python_version: String,
    /// Absolute site-packages path in the image (purelib and platlib).
    pub site_packages: String,
    /// Absolute directory for scripts, e.g. `/usr/local/bin`.
    pub bin_dir: String,
    /// Absolute prefix for `.data/data` files, e.g. `/usr/local`.
    pub data_dir: String,
    /// Absolute directory under which `.data/headers` go (`<dir>/<dist name>/`).
    pub include_dir: String,
    /// Interpreter written into script shebangs, e.g. `/usr/local/bin/python`.
    pub interpreter: String,
    /// The image's glibc as `(major, minor)`, e.g. `(2, 36)` for Debian
    /// bookworm; wheels tagged for a newer glibc are not used.
    pub glibc: (u32, u32),
    /// Distributions already in the image.
    pub base_distributions: Vec<BaseDistribution>,
}

impl PythonTarget {
    /// The conventional layout of a `python:X.Y-slim` image (`/usr/local`).
    pub fn usr_local(python_version: &str, glibc: (u32, u32)) -> Self {
        PythonTarget {
            python_version: python_version.to_string(),
            site_packages: format!("/usr/local/lib/python{python_version}/site-packages"),
            bin_dir: "/usr/local/bin".into(),
            data_dir: "/usr/local".into(),
            include_dir: format!("/usr/local/include/python{python_version}"),
            interpreter: "/usr/local/bin/python".into(),
            glibc,
            base_distributions: Vec::new(),
        }
    }

    /// `(major, minor)` of the target interpreter.
    pub fn version_pair(&self) -> Result<(u32, u32)> {
        let (major, minor) = self.python_version.split_once('.').with_context(|| {
            format!(
                "python version {:?} is not major.minor",
                self.python_version
            )
        })?;
        let parse = |s: &str| {
            s.parse::<u32>().with_context(|| {
                format!(
                    "python version {:?} is not major.minor",
                    self.python_version
                )
            })
        };
        Ok((parse(major)?, parse(minor)?))
    }

    /// The manylinux glibc level handed to the resolver: the newest level uv
    /// can name (`2_17`, `2_28`, `2_31`…`2_40`) that the image's glibc runs.
    pub fn resolver_glibc(&self) -> (u32, u32) {
        match self.glibc {
            g if g >= (2, 40) => (2, 40),
            g if g >= (2, 31) => g,
            g if g >= (2, 28) => (2, 28),
            _ => (2, 17),
        }
    }

    /// The value of uv's `--python-platform`.
    pub fn uv_platform(&self) -> String {
        let (major, minor) = self.resolver_glibc();
        format!("x86_64-manylinux_{major}_{minor}")
    }

    /// Supported wheel tags, most preferred first (the order of pip's
    /// `packaging.tags.sys_tags` for CPython on manylinux x86_64).
    pub fn supported_tags(&self) -> Result<Vec<String>> {
        let (major, minor) = self.version_pair()?;
        if major != 3 {
            bail!(
                "python version {} is not supported; use 3.x",
                self.python_version
            );
        }
        let platforms = manylinux_platforms(self.resolver_glibc());
        let cp = format!("cp{major}{minor}");
        let mut tags = Vec::new();
        for abi in [cp.clone(), "abi3".into(), "none".into()] {
            for plat in &platforms {
                tags.push(format!("{cp}-{abi}-{plat}"));
            }
        }
        for older in (2..minor).rev() {
            for plat in &platforms {
                tags.push(format!("cp{major}{older}-abi3-{plat}"));
            }
        }
        for py in py_versions(major, minor) {
            for plat in &platforms {
                tags.push(format!("{py}-none-{plat}"));
            }
        }
        tags.push(format!("{cp}-none-any"));
        for py in py_versions(major, minor) {
            tags.push(format!("{py}-none-any"));
        }
        Ok(tags)
    }
}

/// `py311, py3, py310, …, py30` as in packaging's `_py_interpreter_range`.
fn py_versions(major: u32, minor: u32) -> Vec<String> {
    let mut out = vec![format!("py{major}{minor}"), format!("py{major}")];
    for older in (0..minor).rev() {
        out.push(format!("py{major}{older}"));
    }
    out
}

/// manylinux platform tags from the given glibc down to 2.5, with the legacy
/// aliases right after their PEP 600 equivalents.
fn manylinux_platforms(glibc: (u32, u32)) -> Vec<String> {
    let mut out = Vec::new();
    for minor in (5..=glibc.1).rev() {
        out.push(format!("manylinux_{}_{minor}_x86_64", glibc.0));
        match minor {
            17 => out.push("manylinux2014_x86_64".into()),
            12 => out.push("manylinux2010_x86_64".into()),
            5 => out.push("manylinux1_x86_64".into()),
            _ => {}
        }
    }
    out
}

/// The parts of a wheel file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelName {
    /// Distribution name as in the file name (underscores).
    pub distribution: String,
    /// Version as in the file name.
    pub version: String,
    /// Every `python-abi-platform` tag the wheel claims.
    pub tags: Vec<String>,
}

impl WheelName {
    /// Parses `{dist}-{ver}(-{build})?-{py}-{abi}-{plat}.whl`.
    pub fn parse(file_name: &str) -> Result<Self> {
        let stem = file_name
            .strip_suffix(".whl")
            .with_context(|| format!("{file_name:?} is not a wheel file name (no .whl suffix)"))?;
        let parts: Vec<&str> = stem.split('-').collect();
        if parts.len() != 5 && parts.len() != 6 {
            bail!(
                "{file_name:?} is not a valid wheel file name (expected name-version-python-abi-platform.whl)"
            );
        }
        let n = parts.len();
        let mut tags = Vec::new();
        for py in parts[n - 3].split('.') {
            for abi in parts[n - 2].split('.') {
                for plat in parts[n - 1].split('.') {
                    tags.push(format!("{py}-{abi}-{plat}"));
                }
            }
        }
        Ok(WheelName {
            distribution: parts[0].to_string(),
            version: parts[1].to_string(),
            tags,
        })
    }

    /// Rank of this wheel for the target (lower is better); `None` when the
    /// wheel cannot be installed there.
    pub fn rank(&self, supported: &[String]) -> Option<usize> {
        self.tags
            .iter()
            .filter_map(|t| supported.iter().position(|s| s == t))
            .min()
    }

    /// True when the wheel runs on any platform (`*-none-any`).
    pub fn is_pure(&self) -> bool {
        self.tags.iter().all(|t| t.ends_with("-none-any"))
    }
}

/// PEP 503 normalised name (`Foo_Bar.baz` → `foo-bar-baz`).
pub fn canonical_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut last_sep = false;
    for c in name.chars() {
        if c == '-' || c == '_' || c == '.' {
            if !last_sep {
                out.push('-');
            }
            last_sep = true;
        } else {
            out.push(c.to_ascii_lowercase());
            last_sep = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_prefer_exact_abi_then_abi3_then_pure() {
        let t = PythonTarget::usr_local("3.11", (2, 36));
        let tags = t.supported_tags().unwrap();
        assert_eq!(tags[0], "cp311-cp311-manylinux_2_36_x86_64");
        assert_eq!(t.uv_platform(), "x86_64-manylinux_2_36");
        assert_eq!(
            PythonTarget::usr_local("3.11", (2, 30)).uv_platform(),
            "x86_64-manylinux_2_28"
        );
        let pos = |s: &str| tags.iter().position(|t| t == s).unwrap();
        assert!(pos("cp311-cp311-manylinux2014_x86_64") < pos("cp311-abi3-manylinux_2_28_x86_64"));
        assert!(pos("cp37-abi3-manylinux1_x86_64") < pos("py3-none-any"));
        assert!(pos("cp311-none-any") < pos("py3-none-any"));
        assert!(!tags.iter().any(|t| t.contains("manylinux_2_37")));
        assert!(!tags.iter().any(|t| t.starts_with("cp312")));
    }

    #[test]
    fn wheel_names_expand_compressed_tags() {
        let w = WheelName::parse(
            "PyYAML-6.0.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        )
        .unwrap();
        assert_eq!(w.distribution, "PyYAML");
        assert_eq!(w.tags.len(), 2);
        assert!(WheelName::parse("bad.whl").is_err());
        assert_eq!(canonical_name("Zope.Interface__x"), "zope-interface-x");
    }
}
