//! Renders a [`BuildPlan`] as the Dockerfile cog generates (spec §4.1–4.4, §4.7).

use crate::plan::step::{
    CA_CERT_FILE_NAME, INSTALL_CFLAGS, LOCAL_ARTIFACTS_CONTAINER_DIR, LOCAL_ARTIFACTS_STAGING_DIR,
    RuntimeInstall, RuntimePackage, SYSTEM_CERT_BUNDLE, TINI_VERSION, UV_IMAGE,
};
use crate::plan::{BuildPlan, Step, StepKind};

/// First line of cog's main Dockerfile.
pub const SYNTAX_LINE: &str = "#syntax=docker/dockerfile:1.4";

const APT_CACHE_MOUNT: &str = "--mount=type=cache,target=/var/cache/apt,sharing=locked";
const UV_CACHE_MOUNT: &str = "--mount=type=cache,target=/root/.cache/uv";
const BREAK_SYSTEM_PACKAGES: &str = "--break-system-packages";
const STRIP_SUFFIX: &str =
    " && find / -type f -name \"*python*.so\" -not -name \"*cpython*.so\" -exec strip -S {} \\;";

/// The main Dockerfile: every step except the `/src/.cog` bundle, lines joined
/// with `\n`, no empty lines, no trailing newline (cog's `joinStringsWithoutLineSpace`).
pub fn render_dockerfile(plan: &BuildPlan) -> String {
    let mut lines: Vec<String> = vec![
        SYNTAX_LINE.to_string(),
        format!("FROM {}", plan.base.reference),
    ];
    for step in plan.main_steps() {
        lines.extend(step_lines(step));
    }
    lines.retain(|line| !line.is_empty());
    lines.join("\n")
}

/// The second ("bundle + labels") Dockerfile of §4.7: `FROM` the main image,
/// then one `COPY --from=cog_build <file> .cog/` per `/src/.cog` file; every
/// line ends with `\n`.
pub fn render_bundle_dockerfile(plan: &BuildPlan, main_image: &str) -> String {
    let names: Vec<&str> = plan.cog_files().iter().map(|f| f.name.as_str()).collect();
    render_bundle_dockerfile_for(main_image, &names)
}

/// The bundle Dockerfile for an explicit list of `.cog/build/` file names
/// (cog copies only the files that exist, e.g. no schema with
/// `--skip-schema-validation`).
pub fn render_bundle_dockerfile_for(main_image: &str, file_names: &[&str]) -> String {
    let mut out = format!("FROM {main_image}\n");
    for name in file_names {
        out.push_str(&format!("COPY --from=cog_build {name} .cog/\n"));
    }
    out
}

/// The Dockerfile instructions of one step, as cog writes them (an entry may
/// hold embedded newlines for cog's multi-line `RUN`s). Also usable as image
/// history `created_by` text. The bundle step has none (see [`render_bundle_dockerfile`]).
pub fn step_instructions(step: &Step) -> Vec<String> {
    step_lines(step)
}

fn step_lines(step: &Step) -> Vec<String> {
    match &step.kind {
        StepKind::Preamble { env } => env
            .iter()
            .map(|var| format!("ENV {}={}", var.key, var.value))
            .collect(),
        StepKind::CaCert { .. } => ca_cert_lines(),
        StepKind::Tini { .. } => tini_lines(),
        StepKind::UserEnvironment { env } => {
            let pairs: Vec<String> = env
                .iter()
                .map(|v| format!("{}={}", v.key, v.value))
                .collect();
            vec![format!("ENV {}", pairs.join(" "))]
        }
        StepKind::SystemPackages { packages, .. } => vec![format!(
            "RUN {APT_CACHE_MOUNT} apt-get update -qq && apt-get install -qqy {} && rm -rf /var/lib/apt/lists/*",
            packages.join(" ")
        )],
        StepKind::PythonPrerequisites { packages } => vec![python_prerequisites(packages)],
        StepKind::Uv { .. } => vec![
            format!("COPY --from={UV_IMAGE} /uv /uvx /usr/local/bin/"),
            "ENV UV_SYSTEM_PYTHON=true".to_string(),
        ],
        StepKind::PythonInstall { version, env } => python_install_lines(version, env),
        StepKind::PythonAlias => {
            vec!["RUN ln -sf /usr/bin/python3 /usr/local/bin/python".to_string()]
        }
        StepKind::Requirements {
            local_artifacts,
            uninstall_managed,
            break_system_packages,
            strip,
            ..
        } => requirements_lines(
            !local_artifacts.is_empty(),
            *uninstall_managed,
            *break_system_packages,
            *strip,
        ),
        StepKind::CogRuntime {
            installs,
            break_system_packages,
            strip,
            ..
        } => installs
            .iter()
            .flat_map(|install| runtime_lines(install, *break_system_packages, *strip))
            .collect(),
        StepKind::Precompile => vec![PRECOMPILE.to_string()],
        StepKind::Ldconfig => vec![LDCONFIG.to_string()],
        StepKind::RunCommand { command, mounts } => vec![run_line(command, mounts)],
        StepKind::Workdir { path } => vec![format!("WORKDIR {path}")],
        StepKind::RuntimeConfig { env, cmd, .. } => runtime_config_lines(env, cmd),
        StepKind::SourceTree { destination } => vec![format!("COPY . {destination}")],
        StepKind::ConfigCopy { file_name } => {
            vec![format!("RUN cp /src/{file_name} /src/cog.yaml")]
        }
        StepKind::CogFiles { .. } => Vec::new(),
    }
}

const PRECOMPILE: &str = "RUN find / -type f -name \"*.py[co]\" -delete && find / -type f -name \"*.py\" -exec touch -t 197001010000 {} \\; && find / -type f -name \"*.py\" -printf \"%h\\n\" | sort -u | /usr/bin/python3 -m compileall --invalidation-mode timestamp -o 2 -j 0";

const LDCONFIG: &str = "RUN find / -type f -name \"*python*.so\" -printf \"%h\\n\" | sort -u > /etc/ld.so.conf.d/cog.conf && ldconfig";

fn ca_cert_lines() -> Vec<String> {
    vec![
        format!("COPY --from=cog_build {CA_CERT_FILE_NAME} /tmp/{CA_CERT_FILE_NAME}"),
        format!(
            "RUN cp /tmp/{CA_CERT_FILE_NAME} /usr/local/share/ca-certificates/{CA_CERT_FILE_NAME} && update-ca-certificates && cat /tmp/{CA_CERT_FILE_NAME} >> {SYSTEM_CERT_BUNDLE}"
        ),
        format!("ENV SSL_CERT_FILE={SYSTEM_CERT_BUNDLE}"),
        format!("ENV REQUESTS_CA_BUNDLE={SYSTEM_CERT_BUNDLE}"),
    ]
}

fn tini_lines() -> Vec<String> {
    let physical = [
        format!("RUN {APT_CACHE_MOUNT} set -eux; \\"),
        "apt-get update -qq && \\".to_string(),
        "apt-get install -qqy --no-install-recommends curl; \\".to_string(),
        "rm -rf /var/lib/apt/lists/*; \\".to_string(),
        format!("TINI_VERSION={TINI_VERSION}; \\"),
        "TINI_ARCH=\"$(dpkg --print-architecture)\"; \\".to_string(),
        "curl -sSL -o /sbin/tini \"https://github.com/krallin/tini/releases/download/${TINI_VERSION}/tini-${TINI_ARCH}\"; \\".to_string(),
        "chmod +x /sbin/tini".to_string(),
    ];
    vec![
        physical.join("\n"),
        "ENTRYPOINT [\"/sbin/tini\", \"--\"]".to_string(),
    ]
}

fn python_prerequisites(packages: &[String]) -> String {
    let mut text = format!(
        "RUN {APT_CACHE_MOUNT} apt-get update -qq && apt-get install -qqy --no-install-recommends \\"
    );
    for package in packages {
        text.push_str(&format!("\n\t{package} \\"));
    }
    text.push_str("\n\t&& rm -rf /var/lib/apt/lists/*");
    text
}

fn python_install_lines(version: &str, env: &[crate::plan::EnvVar]) -> Vec<String> {
    let mut lines = vec![format!(
        "RUN uv python install {version} && \\\n\tln -sf $(uv python find {version}) /usr/bin/python3 && \\\n\tln -sf $(uv python find {version}) /usr/local/bin/python"
    )];
    lines.extend(
        env.iter()
            .map(|var| format!("ENV {}={}", var.key, var.value)),
    );
    lines
}

fn cflags_line() -> String {
    format!("ENV CFLAGS=\"{INSTALL_CFLAGS}\"")
}

fn bsp_flag(break_system_packages: bool) -> &'static str {
    if break_system_packages {
        "--break-system-packages "
    } else {
        ""
    }
}

fn strip_suffix(strip: bool) -> &'static str {
    if strip { STRIP_SUFFIX } else { "" }
}

fn requirements_lines(
    has_artifacts: bool,
    uninstall_managed: bool,
    break_system_packages: bool,
    strip: bool,
) -> Vec<String> {
    let mut lines = Vec::new();
    if has_artifacts {
        lines.push(format!(
            "COPY --from=cog_build {LOCAL_ARTIFACTS_STAGING_DIR}/ {LOCAL_ARTIFACTS_CONTAINER_DIR}/"
        ));
    }
    lines.push("COPY --from=cog_build requirements.txt /tmp/requirements.txt".to_string());
    lines.push(cflags_line());
    lines.push(format!(
        "RUN --mount=type=cache,target=/root/.cache/pip uv run pip install {}--cache-dir /root/.cache/pip -r /tmp/requirements.txt{}",
        bsp_flag(break_system_packages),
        strip_suffix(strip)
    ));
    lines.push("ENV CFLAGS=".to_string());
    if uninstall_managed {
        let flag = if break_system_packages {
            format!(" {BREAK_SYSTEM_PACKAGES}")
        } else {
            String::new()
        };
        lines.push(format!("RUN uv pip uninstall{flag} cog coglet"));
    }
    lines
}

fn runtime_lines(
    install: &RuntimeInstall,
    break_system_packages: bool,
    strip: bool,
) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(file_name) = install.staged_file_name() {
        lines.push(format!(
            "COPY --from=cog_build {file_name} /tmp/{file_name}"
        ));
    }
    let mut prefix = String::new();
    if install.coglet_named_sdk && install.package == RuntimePackage::Cog {
        lines.push("ENV R8_COG_VERSION=coglet".to_string());
        lines.push(format!("ENV R8_PYTHON_VERSION={}", install.python_version));
        let flag = if break_system_packages {
            format!(" {BREAK_SYSTEM_PACKAGES}")
        } else {
            String::new()
        };
        prefix = format!("uv pip uninstall{flag} cog 2>/dev/null || true && ");
    }
    let pre = if install.pre { "--pre " } else { "" };
    lines.push(cflags_line());
    lines.push(format!(
        "RUN {UV_CACHE_MOUNT} {prefix}uv pip install {}{pre}--no-cache {}{}",
        bsp_flag(break_system_packages),
        install.spec,
        strip_suffix(strip)
    ));
    lines.push("ENV CFLAGS=".to_string());
    lines
}

fn run_line(command: &str, mounts: &[crate::config::RunMount]) -> String {
    if mounts.is_empty() {
        return format!("RUN {command}");
    }
    let secrets: Vec<String> = mounts
        .iter()
        .filter(|m| m.kind == "secret")
        .map(|m| format!("--mount=type=secret,id={},target={}", m.id, m.target))
        .collect();
    format!("RUN {} {command}", secrets.join(" "))
}

fn runtime_config_lines(env: &[crate::plan::EnvVar], cmd: &[String]) -> Vec<String> {
    let mut lines = vec!["EXPOSE 5000".to_string()];
    lines.extend(
        env.iter()
            .map(|var| format!("ENV {}={}", var.key, var.value)),
    );
    let quoted: Vec<String> = cmd.iter().map(|part| format!("\"{part}\"")).collect();
    lines.push(format!("CMD [{}]", quoted.join(", ")));
    lines
}
