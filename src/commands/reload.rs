//! `reload`: sends SIGHUP to the running service, by its process id (the unit's
//! `ExecReload=`, where a minimal Debian has no `/bin/kill`) or found from the run lock of the
//! configuration's state directory.

use std::path::Path;
use std::process::ExitCode;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub fn run(config: Option<&Path>, pid: Option<i32>) -> ExitCode {
    let pid = match (pid, config) {
        (Some(p), _) => p,
        (None, Some(path)) => {
            let config = match crate::system::config_file::load(path) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return super::config_error();
                }
            };
            let lock = config.state_dir.join("run.lock");
            let running = crate::daemon::report::daemon_running(&config.state_dir);
            match std::fs::read_to_string(&lock)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
            {
                Some(p) if running => p,
                _ => {
                    eprintln!(
                        "error: no service is running on {}",
                        config.state_dir.display()
                    );
                    return ExitCode::FAILURE;
                }
            }
        }
        (None, None) => return super::config_error(),
    };
    match kill(Pid::from_raw(pid), Signal::SIGHUP) {
        Ok(()) => {
            println!("asked process {pid} to read its configuration again");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot signal process {pid}: {e}");
            ExitCode::FAILURE
        }
    }
}
