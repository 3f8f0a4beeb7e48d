//! `purge`: a purge pass now, `--dry-run` to list what is due, `--confirm-clock` to lift a
//! clock-safety hold. Works while the daemon runs: it takes the work lock while it acts.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use jiff::Timestamp;

use super::Outcome;
use crate::core::config::Config;
use crate::ledger::{Ledger, LedgerRead, QuarantineRead};
use crate::retention::clock::{self, Gate};
use crate::retention::purge;
use crate::retention::server_copies::{self, Work};
use crate::system::state::WorkLock;

pub fn run(config_path: &Path, dry_run: bool, confirm_clock: bool) -> Outcome {
    let config = super::load_as_owner(config_path, false)?;
    act(&config, dry_run, confirm_clock)
}

fn act(config: &Config, dry_run: bool, confirm_clock: bool) -> Outcome {
    let tz = crate::system::tz::paris();
    let dir = &config.state_dir;
    let now = Timestamp::now();
    if dry_run {
        let Some(ledger) = Ledger::open_read_only(dir)? else {
            eprintln!("nothing yet: no certificate was ever received here");
            return Ok(ExitCode::SUCCESS);
        };
        for due in purge::due(&ledger, now, &tz)? {
            println!("{}", serde_json::to_string(&due).expect("serialisable"));
        }
        if let Some(hold) = clock::hold(&ledger)? {
            eprintln!("note: purging is held: {hold}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let _work = WorkLock::take(dir).with_context(|| dir.display().to_string())?;
    let Some(mut ledger) = Ledger::open_existing(dir)? else {
        println!("nothing yet: no certificate was ever received here");
        return Ok(ExitCode::SUCCESS);
    };
    if confirm_clock {
        let user = crate::system::operator::current_user();
        let held = clock::confirm_clock(&mut ledger, now, &user, &tz)?;
        crate::retention::log::flush(&mut ledger, dir)?;
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
    )?;
    if let Gate::Held(reason) = gate {
        crate::retention::log::flush(&mut ledger, dir)?;
        eprintln!("purging is held: {reason}");
        return Ok(ExitCode::FAILURE);
    }
    let pass = purge::local_pass(&mut ledger, &tz, now, usize::MAX >> 1)?;
    let orphans = crate::retention::orphans::sweep(&mut ledger, config, &tz, now)?;
    clock::passed(&mut ledger, now)?;
    let server = ledger.due_server_copies(now.as_second(), usize::MAX >> 1)?;
    let moves = ledger.pending_moves(usize::MAX >> 1)?;
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
    server_copies::record_moves(&mut ledger, &done.moved)?;
    let deleted =
        server_copies::record_server_results(&mut ledger, &done.deleted, Timestamp::now(), &tz)?;
    crate::retention::log::flush(&mut ledger, dir)?;
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
