//! `reload`: sends SIGHUP to the running service, by its process id (the unit's
//! `ExecReload=`, where a minimal Debian has no `/bin/kill`) or found from the run lock of the
//! configuration's state directory.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{ConfigProblem, Outcome};

pub fn run(config: Option<&Path>, pid: Option<i32>) -> Outcome {
    let pid = match (pid, config) {
        (Some(p), _) => p,
        (None, Some(path)) => {
            let config = super::load(path)?;
            let lock = config.state_dir.join("run.lock");
            let running = crate::daemon::report::daemon_running(&config.state_dir);
            match std::fs::read_to_string(&lock)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
            {
                Some(p) if running => p,
                _ => anyhow::bail!("no service is running on {}", config.state_dir.display()),
            }
        }
        (None, None) => return Err(ConfigProblem::usage("give --pid or --config")),
    };
    kill(Pid::from_raw(pid), Signal::SIGHUP)
        .with_context(|| format!("cannot signal process {pid}"))?;
    println!("asked process {pid} to read its configuration again");
    Ok(ExitCode::SUCCESS)
}
