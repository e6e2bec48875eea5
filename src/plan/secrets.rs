//! `--secret` specifications (BuildKit's CSV form, as cog accepts them).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::PlanError;

/// Where a build secret's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SecretSource {
    /// A file on the host (absolute after resolution against the project dir).
    File {
        /// Absolute path.
        path: PathBuf,
    },
    /// An environment variable of the build process.
    Env {
        /// Variable name.
        name: String,
    },
}

/// One `--secret id=...,src=...|env=...` flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretSpec {
    /// Secret id, matched against `mounts[].id` of run items.
    pub id: String,
    /// Where the bytes come from.
    pub source: SecretSource,
}

impl SecretSpec {
    /// Parses BuildKit's CSV form: keys `id`, `type` (`file`|`env`), `src`/`source`, `env`.
    /// A relative `src` is resolved against `project_dir` (as cog does).
    pub fn parse(text: &str, project_dir: &Path) -> Result<SecretSpec, PlanError> {
        let mut id = None;
        let mut kind = None;
        let mut src = None;
        let mut env = None;
        for field in text.split(',') {
            let (key, value) = field.split_once('=').ok_or_else(|| {
                secret_error(text, &format!("field \"{field}\" is not key=value"))
            })?;
            match key.trim().to_ascii_lowercase().as_str() {
                "id" => id = Some(value.to_string()),
                "type" => kind = Some(value.to_string()),
                "src" | "source" => src = Some(value.to_string()),
                "env" => env = Some(value.to_string()),
                other => return Err(secret_error(text, &format!("unknown key \"{other}\""))),
            }
        }
        let kind = kind.unwrap_or_else(|| {
            if env.is_some() && src.is_none() {
                "env".to_string()
            } else {
                "file".to_string()
            }
        });
        let source = match kind.as_str() {
            "file" => {
                let src = src
                    .or_else(|| id.clone())
                    .ok_or_else(|| secret_error(text, "a file secret needs src=<path>"))?;
                let path = Path::new(&src);
                SecretSource::File {
                    path: if path.is_absolute() {
                        path.to_path_buf()
                    } else {
                        project_dir.join(path)
                    },
                }
            }
            "env" => SecretSource::Env {
                name: env
                    .or_else(|| src.clone())
                    .or_else(|| id.clone())
                    .ok_or_else(|| secret_error(text, "an env secret needs env=<NAME>"))?,
            },
            other => {
                return Err(secret_error(
                    text,
                    &format!("unsupported type \"{other}\" (use file or env)"),
                ));
            }
        };
        let id = match (id, &source) {
            (Some(id), _) => id,
            (None, SecretSource::Env { name }) => name.clone(),
            (None, SecretSource::File { path }) => path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        if id.is_empty() {
            return Err(secret_error(text, "the secret id is empty"));
        }
        Ok(SecretSpec { id, source })
    }

    /// The flag value passed to `docker buildx build --secret`.
    pub fn to_buildx_arg(&self) -> String {
        match &self.source {
            SecretSource::File { path } => format!("id={},src={}", self.id, path.display()),
            SecretSource::Env { name } => format!("id={},env={}", self.id, name),
        }
    }
}

fn secret_error(text: &str, detail: &str) -> PlanError {
    PlanError::Secret(format!(
        "invalid --secret \"{text}\": {detail}\nhint: write --secret id=NAME,src=FILE or --secret id=NAME,env=VAR"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_sources_resolve_against_the_project() {
        let spec = SecretSpec::parse("id=hf,src=secrets/token", Path::new("/p")).unwrap();
        assert_eq!(spec.to_buildx_arg(), "id=hf,src=/p/secrets/token");
        let spec = SecretSpec::parse("id=tok,env=HF_TOKEN", Path::new("/p")).unwrap();
        assert_eq!(spec.to_buildx_arg(), "id=tok,env=HF_TOKEN");
    }

    #[test]
    fn malformed_secret_is_an_error() {
        let error = SecretSpec::parse("id=x,bogus", Path::new("/p")).unwrap_err();
        assert!(error.to_string().contains("is not key=value"));
        let error = SecretSpec::parse("id=x,type=ssh,src=a", Path::new("/p")).unwrap_err();
        assert!(error.to_string().contains("unsupported type"));
    }
}
