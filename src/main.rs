//! The `mss-dispatch` binary: parses the command line, sets up the logs, hands over to a
//! command, and turns its failure into a message and an exit status, in one place.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use mss_dispatch::commands::cli::{AuditCommand, Cli, Command, PrintCommand, SitesCommand};
use mss_dispatch::commands::{self, Outcome};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The service logs what it does; a command prints it, and logs only what goes wrong.
    let level = match cli.command {
        Command::Run { .. } => "info",
        _ => "warn",
    };
    mss_dispatch::system::logging::init(level);
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => commands::failed(&e),
    }
}

fn dispatch(command: Command) -> Outcome {
    match command {
        Command::Run { config, once } => commands::run::run(&config, once),
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
        Command::Audit(AuditCommand::Report {
            config,
            month,
            format,
        }) => commands::report::run(&config, &month, format),
        Command::Audit(AuditCommand::Verify {
            config,
            log,
            expect_head,
        }) => commands::audit::verify(config.as_deref(), log.as_deref(), expect_head.as_deref()),
        Command::Audit(AuditCommand::Reseal {
            config,
            reason,
            new_ledger,
        }) => commands::audit::reseal(&config, &reason, new_ledger),
        Command::Status { config, json } => commands::status::run(&config, json),
        Command::Quarantine(command) => commands::quarantine::run(command),
        Command::Man { page } => commands::manual::run(page.as_deref()),
        Command::CheckConfig {
            config,
            finess,
            printers,
            account,
        } => commands::check_config::run(&config, finess.as_deref(), printers, &account),
        Command::Print(PrintCommand::List { config, site, json }) => {
            commands::print::list(&config, site.as_deref(), json)
        }
        Command::Print(PrintCommand::Again { config, id }) => commands::print::again(&config, id),
        Command::Sites(SitesCommand::Import {
            ej,
            file,
            categories,
            spool_root,
            config,
            write,
        }) => commands::sites::import(&commands::sites::Import {
            legal: ej,
            file,
            categories,
            spool_root,
            config,
            write,
        }),
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
