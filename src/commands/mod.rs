//! One module per command: each reads its inputs, calls the core or the shell, prints, and
//! returns an exit status. Errors that reach `main` are runtime failures (exit 1).

pub mod audit;
pub mod check_config;
pub mod inspect;
pub mod purge;

use std::process::ExitCode;

/// Exit status for a configuration or usage error.
pub fn config_error() -> ExitCode {
    ExitCode::from(2)
}
