//! The final image config a plan describes (spec §4.10, §6).

use std::collections::BTreeMap;

use serde::Serialize;

use super::step::{EnvVar, Step};

/// Label keys of spec §6.
pub mod labels {
    /// CLI version string.
    pub const VERSION: &str = "run.cog.version";
    /// Effective config JSON.
    pub const CONFIG: &str = "run.cog.config";
    /// OpenAPI schema JSON (known after schema generation).
    pub const OPENAPI_SCHEMA: &str = "run.cog.openapi_schema";
    /// `pip freeze` output (known after the image is built).
    pub const PIP_FREEZE: &str = "run.cog.pip_freeze";
    /// The image has tini as init.
    pub const HAS_INIT: &str = "run.cog.has_init";
    /// Base reference when cog-base was attempted.
    pub const BASE_IMAGE_NAME: &str = "run.cog.cog-base-image-name";
    /// diff_id of the base's last layer (known after resolution).
    pub const BASE_LAST_LAYER_SHA: &str = "run.cog.cog-base-image-last-layer-sha";
    /// Index of the base's last layer (known after resolution).
    pub const BASE_LAST_LAYER_IDX: &str = "run.cog.cog-base-image-last-layer-idx";
    /// Git revision.
    pub const REVISION: &str = "org.opencontainers.image.revision";
    /// Git tag description.
    pub const IMAGE_VERSION: &str = "org.opencontainers.image.version";
}

/// The config of the image the plan produces (on top of the base image's config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageConfig {
    /// Entrypoint; `None` keeps the base image's (path C).
    pub entrypoint: Option<Vec<String>>,
    /// Command.
    pub cmd: Vec<String>,
    /// Working directory.
    pub working_dir: String,
    /// Exposed ports (`5000/tcp`).
    pub exposed_ports: Vec<String>,
    /// Env assignments in Dockerfile order (values unexpanded; see [`ImageConfig::final_env`]).
    pub env: Vec<EnvVar>,
    /// Labels known at plan time (sorted).
    pub labels: BTreeMap<String, String>,
    /// Label keys that are filled in after resolution/build.
    pub pending_labels: Vec<String>,
}

impl ImageConfig {
    /// Collects the env assignments of `steps` in order.
    pub fn env_from_steps(steps: &[Step]) -> Vec<EnvVar> {
        steps
            .iter()
            .flat_map(|step| step.env().iter().cloned())
            .collect()
    }

    /// Every label of the final image: the plan-time labels, the schema
    /// (empty string when there is none, like cog), `pip freeze` output when
    /// known, then `extra` (resolved base labels, push id, …) which win.
    pub fn complete_labels(
        &self,
        openapi_schema: Option<&[u8]>,
        pip_freeze: Option<&str>,
        extra: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut all = self.labels.clone();
        let schema = openapi_schema
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .unwrap_or_default();
        all.insert(labels::OPENAPI_SCHEMA.to_string(), schema);
        if let Some(freeze) = pip_freeze {
            all.insert(labels::PIP_FREEZE.to_string(), freeze.to_string());
        }
        all.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        all
    }

    /// The assignments with repeated keys merged (first position, last value),
    /// values unexpanded; for display.
    pub fn collapsed_env(&self) -> Vec<EnvVar> {
        let mut out: Vec<EnvVar> = Vec::new();
        for var in &self.env {
            match out.iter_mut().find(|v| v.key == var.key) {
                Some(slot) => slot.value = var.value.clone(),
                None => out.push(var.clone()),
            }
        }
        out
    }

    /// The image's `Env` as Docker computes it: the base env, then each
    /// assignment expanded against the env at that point; a key set again keeps
    /// its first position. Returns `KEY=VALUE` strings.
    pub fn final_env(&self, base_env: &[String]) -> Vec<String> {
        let mut env: Vec<(String, String)> = base_env
            .iter()
            .map(|entry| match entry.split_once('=') {
                Some((key, value)) => (key.to_string(), value.to_string()),
                None => (entry.clone(), String::new()),
            })
            .collect();
        for var in &self.env {
            let value = expand_word(&var.value, &env);
            match env.iter_mut().find(|(key, _)| *key == var.key) {
                Some(slot) => slot.1 = value,
                None => env.push((var.key.clone(), value)),
            }
        }
        env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

/// Looks a variable up in an ordered env.
fn lookup<'a>(env: &'a [(String, String)], key: &str) -> &'a str {
    env.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// Expands one Dockerfile word like BuildKit's shell lexer: quotes removed,
/// `$VAR` / `${VAR}` substituted (not inside single quotes), `\` escapes.
pub fn expand_word(word: &str, env: &[(String, String)]) -> String {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut in_double = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' if !in_double => {
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    out.push(chars[i]);
                    i += 1;
                }
                i += 1;
            }
            '"' => {
                in_double = !in_double;
                i += 1;
            }
            '\\' if i + 1 < chars.len() => {
                out.push(chars[i + 1]);
                i += 2;
            }
            '$' => {
                let (name, next) = variable_name(&chars, i + 1);
                if name.is_empty() {
                    out.push('$');
                    i += 1;
                } else {
                    out.push_str(lookup(env, &name));
                    i = next;
                }
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Reads a variable name after `$` (braced or bare); returns it and the next index.
fn variable_name(chars: &[char], start: usize) -> (String, usize) {
    if chars.get(start) == Some(&'{') {
        let mut end = start + 1;
        while end < chars.len() && chars[end] != '}' {
            end += 1;
        }
        let name: String = chars[start + 1..end.min(chars.len())].iter().collect();
        return (name, (end + 1).min(chars.len()));
    }
    let mut end = start;
    while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_') {
        end += 1;
    }
    (chars[start..end].iter().collect(), end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_dockerfile_rules() {
        let env = vec![("PATH".to_string(), "/usr/bin".to_string())];
        assert_eq!(
            expand_word("\"/usr/local/bin:$PATH\"", &env),
            "/usr/local/bin:/usr/bin"
        );
        assert_eq!(expand_word("${PATH}:/x", &env), "/usr/bin:/x");
        assert_eq!(expand_word("'$PATH'", &env), "$PATH");
        assert_eq!(expand_word("$MISSING:/a", &env), ":/a");
        assert_eq!(expand_word("", &env), "");
    }

    #[test]
    fn reassigned_keys_keep_their_first_position() {
        let config = ImageConfig {
            entrypoint: None,
            cmd: vec![],
            working_dir: "/src".into(),
            exposed_ports: vec![],
            env: vec![
                EnvVar::new("CFLAGS", "\"-O3\""),
                EnvVar::new("PATH", "\"/usr/local/bin:$PATH\""),
                EnvVar::new("A", "1"),
                EnvVar::new("CFLAGS", ""),
            ],
            labels: BTreeMap::new(),
            pending_labels: vec![],
        };
        assert_eq!(
            config.final_env(&["PATH=/bin".to_string()]),
            vec!["PATH=/usr/local/bin:/bin", "CFLAGS=", "A=1"]
        );
        let collapsed: Vec<(String, String)> = config
            .collapsed_env()
            .into_iter()
            .map(|v| (v.key, v.value))
            .collect();
        assert_eq!(
            collapsed,
            vec![
                ("CFLAGS".to_string(), String::new()),
                ("PATH".to_string(), "\"/usr/local/bin:$PATH\"".to_string()),
                ("A".to_string(), "1".to_string()),
            ]
        );
    }
}
