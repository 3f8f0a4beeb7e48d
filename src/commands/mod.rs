//! One module per command: each reads its inputs, calls the core or the shell, prints what
//! it did, and returns an [`Outcome`]. Failures are printed once, by [`failed`], which `main`
//! calls: a [`ConfigProblem`] exits 2, any other failure 1.

pub mod audit;
pub mod check_config;
pub mod cli;
pub mod inspect;
pub mod manual;
pub mod print;
pub mod purge;
pub mod quarantine;
pub mod reload;
pub mod report;
pub mod run;
pub mod sites;
pub mod status;

use std::path::Path;
use std::process::ExitCode;

use crate::core::config::Config;
use crate::system::config_file::LoadError;

/// What a command returns: its exit status, or why it failed. `main` prints the failure and
/// maps it to the exit status: 2 for a [`ConfigProblem`], 1 for anything else.
pub type Outcome = anyhow::Result<ExitCode>;

/// The configuration or the command line is wrong (exit status 2): every problem at once,
/// each on its line.
#[derive(Debug)]
pub struct ConfigProblem {
    /// The file the problems are in, for the heading; none for one problem of the command
    /// line.
    pub file: Option<std::path::PathBuf>,
    pub problems: Vec<String>,
}

impl ConfigProblem {
    /// One problem with the command line or the installation.
    pub fn usage(problem: impl Into<String>) -> anyhow::Error {
        ConfigProblem {
            file: None,
            problems: vec![problem.into()],
        }
        .into()
    }

    /// Problems found in `file`.
    pub fn in_file(file: &Path, problems: Vec<String>) -> anyhow::Error {
        ConfigProblem {
            file: Some(file.to_path_buf()),
            problems,
        }
        .into()
    }
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.file, self.problems.as_slice()) {
            (None, problems) => {
                for p in problems {
                    writeln!(f, "error: {p}")?;
                }
                Ok(())
            }
            (Some(file), problems) => {
                writeln!(
                    f,
                    "{} error{} in {}:",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" },
                    file.display()
                )?;
                for p in problems {
                    writeln!(f, "  {p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigProblem {}

/// Prints why a command failed and gives its exit status.
pub fn failed(error: &anyhow::Error) -> ExitCode {
    if let Some(problem) = error.downcast_ref::<ConfigProblem>() {
        eprint!("{problem}");
        return ExitCode::from(2);
    }
    eprintln!("error: {error:#}");
    ExitCode::FAILURE
}

/// Reads the configuration file; its problems are a [`ConfigProblem`].
pub fn load(path: &Path) -> anyhow::Result<Config> {
    crate::system::config_file::load(path).map_err(|e| match e {
        LoadError::Read(..) => ConfigProblem::usage(e.to_string()),
        LoadError::Invalid(errors) => {
            ConfigProblem::in_file(path, errors.iter().map(|e| e.to_string()).collect())
        }
    })
}

/// Loads the configuration for a command that reads or writes the installation; run as
/// root, the command then acts as the service account that owns it (`operator::act_as_owner`),
/// with the site groups as supplementary groups when `with_groups`.
pub fn load_as_owner(path: &Path, with_groups: bool) -> anyhow::Result<Config> {
    let config = load(path)?;
    let groups: Vec<u32> = if with_groups {
        crate::system::groups::resolve(&config, path)
            .map_err(|errors| ConfigProblem::in_file(path, errors))?
            .into_values()
            .collect()
    } else {
        Vec::new()
    };
    crate::system::operator::act_as_owner(&config.state_dir, &groups)?;
    Ok(config)
}
