//! Command-line interface: parses arguments, reads the environment once,
//! and drives plan → builders → store → registry.

pub mod args;
mod build;
pub mod env;
mod gc_cmd;
mod inspect_cmd;
mod login_cmd;
mod project;
mod pull_cmd;
mod target;
mod weights;
mod weights_cmd;

use crate::config;
use args::{Cli, Command};
use clap::Parser;
use env::Environment;
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

/// cogpack's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn run(cli: Cli) -> Result<(), CliError> {
    let env = Environment::capture();
    match &cli.command {
        Command::Build(args) => {
            let project = project::load_project(&cli.file)?;
            let target = if args.push {
                Some(target::push_target(
                    &project,
                    None,
                    args.tag.as_deref(),
                    &env,
                )?)
            } else {
                None
            };
            build_and_push(&project, args, target.as_ref(), &env)
        }
        Command::Push(push) => {
            let project = project::load_project(&cli.file)?;
            let target = target::push_target(
                &project,
                push.image.as_deref(),
                push.build.tag.as_deref(),
                &env,
            )?;
            build_and_push(&project, &push.build, Some(&target), &env)
        }
        Command::Plan(args) => {
            let project = project::load_project(&cli.file)?;
            let plan = project::offline_plan(&project, &args.plan, &env)?;
            if args.json {
                println!("{}", plan.to_json());
            } else {
                println!("{plan}");
            }
            Ok(())
        }
        Command::Dockerfile(args) => {
            let project = project::load_project(&cli.file)?;
            let plan = project::offline_plan(&project, &args.plan, &env)?;
            println!("{}", crate::backend::docker::render_dockerfile(&plan));
            Ok(())
        }
        Command::Weights(command) => weights_cmd::run(&cli.file, cli.verbose, command, &env),
        Command::Inspect(args) => inspect_cmd::run(args, &env),
        Command::Login(args) => login_cmd::run(args, &env),
        Command::Gc(args) => gc_cmd::run(args, &env),
        Command::Pull(args) => pull_cmd::run(args),
    }
}

/// Builds, then pushes when a target is given.
fn build_and_push(
    project: &config::Project,
    args: &args::BuildArgs,
    target: Option<&target::PushTarget>,
    env: &Environment,
) -> Result<(), CliError> {
    let built = build::run_build(project, args, target, env)?;
    match (built, target) {
        (Some(built), Some(target)) => build::push(&built, target, args, env),
        (None, Some(_)) => Err(CliError::new(
            "pushing an image built by the docker backend is not supported",
            "run `docker push` on the built image, or build natively",
        )),
        _ => Ok(()),
    }
}
