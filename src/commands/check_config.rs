//! `check-config`: every error of the file at once (exit 2), then what this machine lacks.

use std::path::Path;
use std::process::ExitCode;

use jiff::Timestamp;

use crate::config_file::{self, LoadError};
use crate::core::config::Source;
use crate::source::imap::tls;

pub fn run(path: &Path) -> ExitCode {
    match config_file::load(path) {
        Ok(config) => {
            let warnings = config_file::environment_warnings(&config, path);
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            // The files that are here are read exactly as `run` reads them.
            if let Source::Imap(imap) = &config.source
                && warnings.is_empty()
            {
                let errors = tls::check(imap, Timestamp::now());
                if !errors.is_empty() {
                    eprintln!(
                        "{} error{} in the files {} names:",
                        errors.len(),
                        if errors.len() == 1 { "" } else { "s" },
                        path.display()
                    );
                    for e in errors {
                        eprintln!("  {}: {e}", path.display());
                    }
                    return super::config_error();
                }
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
