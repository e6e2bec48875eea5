//! The error type of config loading: every problem found, each naming the
//! file, the field (and line when known), with a hint of what to do.

use std::fmt;
use std::path::PathBuf;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted field path (`build.python_version`, `weights[0].target`);
    /// empty when the problem is not about one field.
    pub field: String,
    /// cog's exact error text, e.g.
    /// `invalid build.python_version "3.9": minimum supported Python version is 3.10`.
    pub message: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// What to do about it.
    pub hint: String,
}

impl Problem {
    /// A problem about `field` with cog's text `message` and a `hint`.
    pub fn new(field: &str, message: impl Into<String>, hint: impl Into<String>) -> Problem {
        Problem {
            field: field.to_string(),
            message: message.into(),
            line: None,
            hint: hint.into(),
        }
    }
}

/// Loading, validating or completing a config failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file (or, for discovery errors, the directory searched).
    pub file: PathBuf,
    /// Every problem found, in the order cog reports them.
    pub problems: Vec<Problem>,
}

impl ConfigError {
    /// An error with one problem.
    pub fn single(file: impl Into<PathBuf>, problem: Problem) -> ConfigError {
        ConfigError {
            file: file.into(),
            problems: vec![problem],
        }
    }

    /// cog's messages of all problems, in order.
    pub fn messages(&self) -> Vec<&str> {
        self.problems.iter().map(|p| p.message.as_str()).collect()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        if self.problems.len() > 1 {
            writeln!(f, "{file}: {} problems", self.problems.len())?;
        }
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{file}")?;
            if let Some(line) = problem.line {
                write!(f, ":{line}")?;
            }
            write!(f, ": {}", problem.message)?;
            if !problem.field.is_empty() {
                write!(f, " (field `{}`)", problem.field)?;
            }
            if !problem.hint.is_empty() {
                write!(f, "\n  hint: {}", problem.hint)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
