//! Command-line interface: parses arguments, reads the environment once,
//! and drives plan → builders → store → registry.

pub mod args;

use args::{Cli, Command};
use clap::Parser;
use std::fmt;

/// An error shown to the user: what went wrong and a hint of what to do.
#[derive(Debug)]
pub struct CliError {
    /// What went wrong (may span lines).
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl CliError {
    /// An error with a hint.
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// An error whose message already says what to do.
    pub fn plain(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            hint: None,
        }
    }

    /// The error for a command whose engine does not exist yet.
    pub fn not_implemented(what: &str, alternative: &str) -> Self {
        CliError::new(
            format!("{what} is not implemented yet in cogpack"),
            alternative.to_string(),
        )
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("error: {err}");
            1
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    match &cli.command {
        Command::Build(_) | Command::Push(_) => Err(CliError::not_implemented(
            "the native build engine",
            "use `cog build` for now",
        )),
        Command::Plan(_) | Command::Dockerfile(_) => Err(CliError::not_implemented(
            "build planning",
            "use `cog debug` for now",
        )),
        Command::Weights(_) => Err(CliError::not_implemented(
            "managed weights",
            "use `cog weights` for now",
        )),
        Command::Inspect(_) | Command::Login(_) => Err(CliError::not_implemented(
            "the registry client",
            "use `cog` or `docker` for now",
        )),
        Command::Gc(_) => Err(CliError::not_implemented(
            "the local store",
            "remove the store directory by hand",
        )),
    }
}
