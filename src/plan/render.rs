//! Human rendering of a plan for `cogpack plan`.

use std::fmt;

use super::BuildPlan;
use super::step::{NativeSupport, StepKind};

impl fmt::Display for BuildPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "project:  {}", self.project_dir.display())?;
        writeln!(f, "config:   {}", self.config_file)?;
        writeln!(f, "platform: {}", self.platform)?;
        writeln!(
            f,
            "base:     {} (path {}: {})",
            self.base.reference,
            self.base.path.letter(),
            base_path_words(self)
        )?;
        writeln!(f, "steps:")?;
        for (index, step) in self.steps.iter().enumerate() {
            writeln!(
                f,
                "  {:>2}. {:<9} {} [{}]",
                index + 1,
                native_word(&step.native),
                step.name,
                step.id
            )?;
            if let Some(detail) = step_detail(&step.kind) {
                for line in detail.lines() {
                    writeln!(f, "               {line}")?;
                }
            }
        }
        write_image(self, f)?;
        write_summary(self, f)
    }
}

fn base_path_words(plan: &BuildPlan) -> &'static str {
    match plan.base.path {
        super::BasePath::PythonSlim => "python slim",
        super::BasePath::NvidiaCuda => "nvidia/cuda with uv-installed Python",
        super::BasePath::CogBase => "cog-base",
    }
}

fn native_word(native: &NativeSupport) -> &'static str {
    match native {
        NativeSupport::Native => "native",
        NativeSupport::Substituted { .. } => "native*",
        NativeSupport::Unsupported { .. } => "docker",
    }
}

fn step_detail(kind: &StepKind) -> Option<String> {
    match kind {
        StepKind::Requirements { text, .. } => Some(text.clone()),
        StepKind::RunCommand { command, mounts } => {
            let secrets: Vec<String> = mounts
                .iter()
                .filter(|m| m.kind == "secret")
                .map(|m| format!("secret {} at {}", m.id, m.target))
                .collect();
            (!secrets.is_empty()).then(|| format!("$ {command}\n{}", secrets.join("\n")))
        }
        StepKind::SystemPackages {
            provided_by_base, ..
        } if !provided_by_base.is_empty() => Some(format!(
            "already in the cog-base image: {}",
            provided_by_base.join(" ")
        )),
        _ => None,
    }
}

fn write_image(plan: &BuildPlan, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let image = &plan.image;
    writeln!(f, "image config:")?;
    match &image.entrypoint {
        Some(entrypoint) => writeln!(f, "  entrypoint: {entrypoint:?}")?,
        None => writeln!(f, "  entrypoint: (from the base image)")?,
    }
    writeln!(f, "  cmd:        {:?}", image.cmd)?;
    writeln!(f, "  workdir:    {}", image.working_dir)?;
    writeln!(f, "  exposed:    {}", image.exposed_ports.join(", "))?;
    match &plan.base.facts {
        Some(facts) => {
            let base_env: Vec<String> = facts.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            writeln!(f, "  env (base env from the catalog, then the steps'):")?;
            for entry in image.final_env(&base_env) {
                writeln!(f, "    {entry}")?;
            }
        }
        None => {
            writeln!(f, "  env (added to the base image's):")?;
            for var in image.collapsed_env() {
                writeln!(f, "    {}={}", var.key, var.value)?;
            }
        }
    }
    writeln!(f, "  labels:")?;
    for (key, value) in &image.labels {
        writeln!(f, "    {key}={value}")?;
    }
    for key in &image.pending_labels {
        writeln!(f, "    {key}=(known at build time)")?;
    }
    Ok(())
}

fn write_summary(plan: &BuildPlan, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for warning in &plan.warnings {
        writeln!(f, "warning: {warning}")?;
    }
    let blockers = plan.native_blockers();
    if blockers.is_empty() {
        write!(
            f,
            "native engine: can build every step (native* = by substitution)"
        )
    } else {
        let ids: Vec<&str> = blockers.iter().map(|s| s.id.as_str()).collect();
        write!(
            f,
            "native engine: cannot build {} step(s) yet ({}); use --backend docker",
            blockers.len(),
            ids.join(", ")
        )
    }
}
