//! `purge`: a purge pass now, `--dry-run` to list what is due, `--confirm-clock` to lift a
//! clock-safety hold. Works while the daemon runs: it takes the work lock while it acts.

use std::path::Path;
use std::process::ExitCode;

use jiff::Timestamp;

use crate::core::config::Config;
use crate::ledger::{Ledger, LedgerRead, QuarantineRead};
use crate::retention::clock::{self, Gate};
use crate::retention::purge;
use crate::retention::server_copies::{self, Work};
use crate::system::state::WorkLock;

pub fn run(config_path: &Path, dry_run: bool, confirm_clock: bool) -> ExitCode {
    let config = match super::load_as_owner(config_path, super::no_groups) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match act(&config, dry_run, confirm_clock) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn act(config: &Config, dry_run: bool, confirm_clock: bool) -> Result<ExitCode, String> {
    let tz = crate::system::tz::paris();
    let dir = &config.state_dir;
    let now = Timestamp::now();
    if dry_run {
        let Some(ledger) = Ledger::open_read_only(dir).map_err(|e| e.to_string())? else {
            eprintln!("nothing yet: no certificate was ever received here");
            return Ok(ExitCode::SUCCESS);
        };
        for due in purge::due(&ledger, now, &tz).map_err(|e| e.to_string())? {
            println!("{}", serde_json::to_string(&due).expect("serialisable"));
        }
        if let Some(hold) = clock::hold(&ledger).map_err(|e| e.to_string())? {
            eprintln!("note: purging is held: {hold}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let _work = WorkLock::take(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let Some(mut ledger) = Ledger::open_existing(dir).map_err(|e| e.to_string())? else {
        println!("nothing yet: no certificate was ever received here");
        return Ok(ExitCode::SUCCESS);
    };
    if confirm_clock {
        let user = crate::system::operator::current_user();
        let held = clock::confirm_clock(&mut ledger, now, &user, &tz).map_err(|e| e.to_string())?;
        crate::retention::log::flush(&mut ledger, dir).map_err(|e| e.to_string())?;
        println!(
            "{}",
            if held {
                "clock confirmed: purging resumes at the next pass"
            } else {
                "clock confirmed (no hold was in force)"
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let max_jump = config.purge.max_clock_jump;
    let gate = clock::clock_gate(
        &mut ledger,
        None,
        now,
        std::time::Duration::ZERO,
        max_jump,
        &tz,
    )
    .map_err(|e| e.to_string())?;
    if let Gate::Held(reason) = gate {
        crate::retention::log::flush(&mut ledger, dir).map_err(|e| e.to_string())?;
        eprintln!("purging is held: {reason}");
        return Ok(ExitCode::FAILURE);
    }
    let pass =
        purge::local_pass(&mut ledger, &tz, now, usize::MAX >> 1).map_err(|e| e.to_string())?;
    let orphans = crate::retention::orphans::sweep(&mut ledger, config, &tz, now)
        .map_err(|e| e.to_string())?;
    clock::passed(&mut ledger, now).map_err(|e| e.to_string())?;
    let server = ledger
        .due_server_copies(now.as_second(), usize::MAX >> 1)
        .map_err(|e| e.to_string())?;
    let moves = ledger
        .pending_moves(usize::MAX >> 1)
        .map_err(|e| e.to_string())?;
    let done = server_copies::alone(
        config,
        Work {
            moves,
            deletions: server,
        },
    );
    let pending = done.deleted.iter().filter(|(_, r)| r.is_err()).count();
    if let Some((_, Err(e))) = done.deleted.iter().find(|(_, r)| r.is_err()) {
        eprintln!("warning: {pending} server copies not deleted yet: {e}");
    }
    server_copies::record_moves(&mut ledger, &done.moved).map_err(|e| e.to_string())?;
    let deleted =
        server_copies::record_server_results(&mut ledger, &done.deleted, Timestamp::now(), &tz)
            .map_err(|e| e.to_string())?;
    crate::retention::log::flush(&mut ledger, dir).map_err(|e| e.to_string())?;
    println!(
        "purged {} certificate(s){}; {} server copy(ies) deleted, {} to retry",
        pass.purged.len(),
        if orphans > 0 {
            format!(" and {orphans} file(s) the ledger did not know")
        } else {
            String::new()
        },
        deleted,
        pending
    );
    for f in &pass.failing {
        eprintln!(
            "certificate {} could not be purged: {}",
            f.certificate, f.error
        );
    }
    Ok(ExitCode::SUCCESS)
}
