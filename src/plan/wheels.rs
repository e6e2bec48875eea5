//! Cog SDK and coglet wheel selection (spec §4.6): `COG_SDK_WHEEL`,
//! `COGLET_WHEEL`, `build.sdk_version`, pre-releases and minimum versions.

use std::path::{Path, PathBuf};

use regex::Regex;

use super::PlanError;
use super::step::{RuntimeInstall, RuntimePackage, WheelSource};

/// Environment variable selecting the cog SDK wheel.
pub const COG_SDK_WHEEL_ENV: &str = "COG_SDK_WHEEL";
/// Environment variable selecting the coglet wheel.
pub const COGLET_WHEEL_ENV: &str = "COGLET_WHEEL";
/// `build.sdk_version` sentinel for "latest pre-release".
pub const PRERELEASE_SENTINEL: &str = "prerelease";
/// Oldest SDK version that may be requested explicitly.
pub const MINIMUM_SDK_VERSION: (u64, u64, u64) = (0, 16, 0);
/// Oldest SDK version that works with coglet.
pub const COGLET_MINIMUM_SDK_VERSION: (u64, u64, u64) = (0, 17, 0);

/// Inputs of wheel selection, read by the CLI from its environment.
#[derive(Debug, Clone, Default)]
pub struct WheelInputs {
    /// `COG_SDK_WHEEL` value, if set.
    pub cog_sdk_wheel: Option<String>,
    /// `COGLET_WHEEL` value, if set.
    pub coglet_wheel: Option<String>,
    /// `build.sdk_version`, if set.
    pub sdk_version: Option<String>,
    /// Directory relative wheel paths are resolved against (the CLI's CWD).
    pub cwd: PathBuf,
    /// The Python version from cog.yaml (for the coglet-named SDK quirk).
    pub python_version: String,
}

/// The selected runtime installs plus notices for the user.
#[derive(Debug, Clone, Default)]
pub struct RuntimeSelection {
    /// Installs in Dockerfile order (coglet first).
    pub installs: Vec<RuntimeInstall>,
    /// Human description of the cog source (used in managed-package warnings).
    pub cog_description: String,
    /// Human description of the coglet source.
    pub coglet_description: String,
    /// Warnings (e.g. the prerelease sentinel).
    pub warnings: Vec<String>,
}

/// Parses a wheel env value: `pypi`, `pypi:<version>`, a URL, or a path.
pub fn parse_wheel_value(value: &str, cwd: &Path) -> Option<WheelSource> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.eq_ignore_ascii_case("pypi") {
        return Some(WheelSource::Pypi {
            version: None,
            prerelease: false,
        });
    }
    if value.len() >= 5 && value[..5].eq_ignore_ascii_case("pypi:") {
        return Some(WheelSource::Pypi {
            version: Some(value[5..].to_string()),
            prerelease: false,
        });
    }
    if value.starts_with("https://") || value.starts_with("http://") {
        return Some(WheelSource::Url {
            url: value.to_string(),
        });
    }
    let path = Path::new(value);
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    Some(WheelSource::File {
        path: clean_path(&absolute),
    })
}

/// Removes `.` components and resolves `..` lexically, like Go's `filepath.Abs`.
fn clean_path(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Resolves a file source that may name a directory holding `<prefix>-*.whl`.
fn resolve_wheel_path(
    path: &Path,
    prefix: &str,
    platform_filter: bool,
    env_var: &str,
) -> Result<PathBuf, PlanError> {
    let metadata = std::fs::metadata(path).map_err(|_| {
        PlanError::Wheel(format!(
            "{env_var}: path not found: {}\nhint: point {env_var} at an existing wheel file or a directory holding exactly one {prefix}-*.whl",
            path.display()
        ))
    })?;
    if !metadata.is_dir() {
        return Ok(path.to_path_buf());
    }
    let mut matches = wheels_in_dir(path, prefix)?;
    if matches.is_empty() {
        return Err(PlanError::Wheel(format!(
            "{env_var}: no wheel matching '{prefix}-*.whl' found in {}\nhint: build the wheel into that directory or point {env_var} at a wheel file",
            path.display()
        )));
    }
    if platform_filter {
        let total = matches.len();
        matches.retain(|name| name.contains("x86_64") || name.contains("-none-any"));
        if matches.is_empty() {
            return Err(PlanError::Wheel(format!(
                "{env_var}: no wheel for platform amd64 found in {} (found {total} for other platforms)\nhint: provide an x86_64 or none-any wheel",
                path.display()
            )));
        }
    }
    if matches.len() > 1 {
        return Err(PlanError::Wheel(format!(
            "{env_var}: multiple wheels matching '{prefix}-*.whl' in {} — specify the exact file path",
            path.display()
        )));
    }
    Ok(path.join(&matches[0]))
}

/// File names in `dir` matching `<prefix>-*.whl`, sorted.
fn wheels_in_dir(dir: &Path, prefix: &str) -> Result<Vec<String>, PlanError> {
    let entries = std::fs::read_dir(dir).map_err(|error| {
        PlanError::Wheel(format!(
            "cannot read wheel directory {}: {error}\nhint: check the directory's permissions",
            dir.display()
        ))
    })?;
    let wanted_prefix = format!("{prefix}-");
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&wanted_prefix) && name.ends_with(".whl"))
        .collect();
    names.sort();
    Ok(names)
}

/// True when a version names a pre-release (semver `-alpha1` … or PEP 440 `a1`, `rc1`, `.dev1`).
pub fn is_prerelease(version: &str) -> bool {
    let semver = Regex::new(r"-alpha\d+|-beta\d+|-rc\d+|-dev\d*").expect("valid regex");
    let pep440 = Regex::new(r"\d(a|b|rc|\.dev)\d").expect("valid regex");
    semver.is_match(version) || pep440.is_match(version)
}

/// Converts semver pre-release suffixes to PEP 440 (`0.17.0-alpha1` → `0.17.0a1`).
pub fn semver_to_pep440(version: &str) -> String {
    let semver = Regex::new(r"-(alpha|beta|rc|dev)(\d*)").expect("valid regex");
    semver
        .replace_all(version, |caps: &regex::Captures| {
            let number = &caps[2];
            match &caps[1] {
                "alpha" if !number.is_empty() => format!("a{number}"),
                "beta" if !number.is_empty() => format!("b{number}"),
                "rc" if !number.is_empty() => format!("rc{number}"),
                "dev" => format!(".dev{number}"),
                _ => caps[0].to_string(),
            }
        })
        .into_owned()
}

/// The leading `M.m.p` of a version, as numbers.
fn base_version(version: &str) -> Option<(u64, u64, u64)> {
    let re = Regex::new(r"^(\d+)\.(\d+)\.(\d+)").expect("valid regex");
    let caps = re.captures(version)?;
    Some((
        caps[1].parse().ok()?,
        caps[2].parse().ok()?,
        caps[3].parse().ok()?,
    ))
}

/// The package spec for a PyPI source: `cog` or `cog==<pep440>`.
fn pypi_spec(package: RuntimePackage, version: &Option<String>) -> String {
    match version {
        Some(version) if !version.is_empty() => {
            format!("{}=={}", package.name(), semver_to_pep440(version))
        }
        _ => package.name().to_string(),
    }
}

/// The SDK source by cog's precedence: `COG_SDK_WHEEL`, `sdk_version`, latest.
fn select_sdk_source(inputs: &WheelInputs) -> Result<WheelSource, PlanError> {
    let env_value = inputs.cog_sdk_wheel.as_deref().unwrap_or("");
    if let Some(source) = parse_wheel_value(env_value, &inputs.cwd) {
        return match source {
            WheelSource::File { path } => Ok(WheelSource::File {
                path: resolve_wheel_path(&path, "cog", false, COG_SDK_WHEEL_ENV)?,
            }),
            other => Ok(other),
        };
    }
    Ok(match inputs.sdk_version.as_deref() {
        Some(PRERELEASE_SENTINEL) => WheelSource::Pypi {
            version: None,
            prerelease: true,
        },
        Some(version) if !version.is_empty() => WheelSource::Pypi {
            version: Some(version.to_string()),
            prerelease: false,
        },
        _ => WheelSource::Pypi {
            version: None,
            prerelease: false,
        },
    })
}

/// The coglet source: `COGLET_WHEEL`, else latest (through the SDK's dependency).
fn select_coglet_source(inputs: &WheelInputs) -> Result<WheelSource, PlanError> {
    let env_value = inputs.coglet_wheel.as_deref().unwrap_or("");
    match parse_wheel_value(env_value, &inputs.cwd) {
        Some(WheelSource::File { path }) => Ok(WheelSource::File {
            path: resolve_wheel_path(&path, "coglet", true, COGLET_WHEEL_ENV)?,
        }),
        Some(other) => Ok(other),
        None => Ok(WheelSource::Pypi {
            version: None,
            prerelease: false,
        }),
    }
}

/// Refuses explicit SDK versions below the minimum (cog's message).
fn validate_sdk_version(source: &WheelSource) -> Result<(), PlanError> {
    let WheelSource::Pypi {
        version: Some(version),
        ..
    } = source
    else {
        return Ok(());
    };
    match base_version(version) {
        Some(base) if base < MINIMUM_SDK_VERSION => Err(PlanError::Wheel(format!(
            "cog version {version} is below the minimum required version 0.16.0\nhint: set build.sdk_version to 0.16.0 or newer (or remove it to use the latest)"
        ))),
        _ => Ok(()),
    }
}

/// True when the SDK is pinned on PyPI below the first coglet-based version.
fn is_legacy_sdk(source: &WheelSource) -> bool {
    match source {
        WheelSource::Pypi {
            version: Some(version),
            ..
        } => base_version(version).is_some_and(|base| base < COGLET_MINIMUM_SDK_VERSION),
        _ => false,
    }
}

/// Human description of a source, as cog words it in warnings.
fn describe(package: RuntimePackage, source: &WheelSource) -> String {
    let name = package.name();
    match source {
        WheelSource::Pypi {
            version: Some(version),
            ..
        } if !version.is_empty() => format!("{name}=={version} from PyPI"),
        WheelSource::Pypi {
            prerelease: true, ..
        } => format!("latest pre-release {name} from PyPI"),
        WheelSource::Pypi { .. } => format!("latest {name} from PyPI"),
        WheelSource::Url { url } => url.clone(),
        WheelSource::File { path } => path.display().to_string(),
    }
}

/// True when `version` is exactly `M.m` (cog's check for the coglet-named SDK quirk).
fn is_major_minor_only(version: &str) -> bool {
    let parts: Vec<&str> = version.split('.').collect();
    parts.len() == 2
        && parts
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// Builds one install from a source.
fn runtime_install(
    package: RuntimePackage,
    source: WheelSource,
    pre: bool,
    python_version: &str,
) -> Result<RuntimeInstall, PlanError> {
    let (spec, named_coglet) = match &source {
        WheelSource::Pypi { version, .. } => (pypi_spec(package, version), false),
        WheelSource::Url { url } => (url.clone(), url.contains("coglet")),
        WheelSource::File { path } => {
            let file_name = path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            (format!("/tmp/{file_name}"), file_name.contains("coglet"))
        }
    };
    let coglet_named_sdk = package == RuntimePackage::Cog && named_coglet;
    if coglet_named_sdk && !is_major_minor_only(python_version) {
        return Err(PlanError::Wheel(format!(
            "Python version must be <major>.<minor> for coglet (build.python_version is \"{python_version}\")\nhint: write python_version as e.g. \"3.12\""
        )));
    }
    Ok(RuntimeInstall {
        package,
        source,
        spec,
        pre,
        coglet_named_sdk,
        python_version: python_version.to_string(),
    })
}

/// Selects the cog SDK and coglet installs by cog's precedence (§4.6).
pub fn select_runtime(inputs: &WheelInputs) -> Result<RuntimeSelection, PlanError> {
    let sdk = select_sdk_source(inputs)?;
    validate_sdk_version(&sdk)?;
    let coglet = select_coglet_source(inputs)?;
    let mut warnings = Vec::new();
    let sdk_is_prerelease = match &sdk {
        WheelSource::Pypi {
            version,
            prerelease,
        } => *prerelease || version.as_deref().is_some_and(is_prerelease),
        _ => false,
    };
    if matches!(
        sdk,
        WheelSource::Pypi {
            prerelease: true,
            ..
        }
    ) {
        warnings.push("sdk_version \"prerelease\" installs the latest pre-release SDK. Pin to a specific version for reproducible production builds.".to_string());
    }
    let explicit_coglet = match &coglet {
        WheelSource::Pypi { version, .. } => version.as_deref().is_some_and(|v| !v.is_empty()),
        _ => true,
    } && !is_legacy_sdk(&sdk);
    let mut installs = Vec::new();
    if explicit_coglet {
        let coglet_pre = sdk_is_prerelease
            || matches!(&coglet, WheelSource::Pypi { version: Some(v), .. } if is_prerelease(v));
        installs.push(runtime_install(
            RuntimePackage::Coglet,
            coglet.clone(),
            coglet_pre,
            &inputs.python_version,
        )?);
    }
    installs.push(runtime_install(
        RuntimePackage::Cog,
        sdk.clone(),
        sdk_is_prerelease,
        &inputs.python_version,
    )?);
    Ok(RuntimeSelection {
        installs,
        cog_description: describe(RuntimePackage::Cog, &sdk),
        coglet_description: describe(RuntimePackage::Coglet, &coglet),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pep440_conversion_follows_cog() {
        assert_eq!(semver_to_pep440("0.17.0-alpha1"), "0.17.0a1");
        assert_eq!(semver_to_pep440("0.17.0-beta2"), "0.17.0b2");
        assert_eq!(semver_to_pep440("0.17.0-rc1"), "0.17.0rc1");
        assert_eq!(semver_to_pep440("0.17.0-dev3"), "0.17.0.dev3");
        assert_eq!(semver_to_pep440("0.17.0"), "0.17.0");
    }

    #[test]
    fn prerelease_detection() {
        assert!(is_prerelease("0.17.0-alpha1"));
        assert!(is_prerelease("0.17.0rc1"));
        assert!(is_prerelease("0.17.0.dev2"));
        assert!(!is_prerelease("0.17.0"));
        assert!(!is_prerelease("0.16.12"));
    }

    #[test]
    fn wheel_value_grammar() {
        let cwd = Path::new("/work/proj");
        assert_eq!(
            parse_wheel_value("PyPI:0.17.1", cwd),
            Some(WheelSource::Pypi {
                version: Some("0.17.1".into()),
                prerelease: false
            })
        );
        assert_eq!(
            parse_wheel_value("dist/../wheels/cog.whl", cwd),
            Some(WheelSource::File {
                path: PathBuf::from("/work/proj/wheels/cog.whl")
            })
        );
        assert_eq!(parse_wheel_value("  ", cwd), None);
    }

    #[test]
    fn sdk_below_minimum_is_refused() {
        let inputs = WheelInputs {
            sdk_version: Some("0.15.9".into()),
            python_version: "3.12".into(),
            ..Default::default()
        };
        let error = select_runtime(&inputs).unwrap_err().to_string();
        assert!(error.contains("cog version 0.15.9 is below the minimum required version 0.16.0"));
    }

    #[test]
    fn legacy_sdk_skips_pinned_coglet() {
        let inputs = WheelInputs {
            sdk_version: Some("0.16.3".into()),
            coglet_wheel: Some("pypi:0.17.0".into()),
            python_version: "3.12".into(),
            ..Default::default()
        };
        let selection = select_runtime(&inputs).unwrap();
        assert_eq!(selection.installs.len(), 1);
        assert_eq!(selection.installs[0].spec, "cog==0.16.3");
    }
}
