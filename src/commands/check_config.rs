//! `check-config`: every error of the file at once (exit 2), then what this machine lacks.

use std::path::Path;
use std::process::ExitCode;

use crate::config_file::{self, LoadError};

pub fn run(path: &Path) -> ExitCode {
    match config_file::load(path) {
        Ok(config) => {
            for w in config_file::environment_warnings(&config, path) {
                eprintln!("warning: {w}");
            }
            println!(
                "{}: configuration is valid ({} site{})",
                path.display(),
                config.sites.len(),
                if config.sites.len() == 1 { "" } else { "s" }
            );
            ExitCode::SUCCESS
        }
        Err(e @ LoadError::Read(..)) => {
            eprintln!("error: {e}");
            super::config_error()
        }
        Err(LoadError::Invalid(errors)) => {
            eprintln!(
                "{} error{} in {}:",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                path.display()
            );
            for e in errors {
                eprintln!("  {e}");
            }
            super::config_error()
        }
    }
}
