//! The `mss-dispatch` binary: parses the command line and hands over to a command.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use mss_dispatch::commands;
use mss_dispatch::commands::cli::{AuditCommand, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config, once } => mss_dispatch::daemon::run(&config, once),
        Command::Purge {
            config,
            dry_run,
            confirm_clock,
        } => commands::purge::run(&config, dry_run, confirm_clock),
        Command::Audit(AuditCommand::Export {
            config,
            since,
            until,
            site,
            format,
        }) => commands::audit::export(
            &config,
            commands::audit::Filter { since, until, site },
            format,
        ),
        Command::Audit(AuditCommand::Verify { config }) => commands::audit::verify(&config),
        Command::Audit(AuditCommand::Reseal {
            config,
            reason,
            new_ledger,
        }) => commands::audit::reseal(&config, &reason, new_ledger),
        Command::Status { config, json } => commands::status::run(&config, json),
        Command::Quarantine(command) => commands::quarantine::run(command),
        Command::Man => commands::man(),
        Command::CheckConfig { config } => commands::check_config::run(&config),
        Command::Reload { config, pid } => commands::reload::run(config.as_deref(), pid),
        Command::Inspect {
            config,
            json,
            mailbox: true,
            limit,
            ..
        } => commands::inspect::run_mailbox(&config, json, limit),
        Command::Inspect {
            config,
            json,
            messages,
            ..
        } => commands::inspect::run(&config, json, &messages),
    }
}
