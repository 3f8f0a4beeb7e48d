//! `print list` and `print again`: the prints at the sites' printers, by certificate id, with
//! no patient data. `again` records a new print and who asked for it; the running service
//! sends it within seconds, or, with no service running, this command sends it itself.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use jiff::Timestamp;
use serde_json::json;

use super::{ConfigProblem, Outcome};
use crate::core::audit::Event;
use crate::core::finess::Finess;
use crate::core::retention::rfc3339;
use crate::ledger::{
    CopyKind, Ledger, LedgerRead, NewPrintJob, PrintJobRow, PrintRead, PrintState,
};
use crate::system::state::WorkLock;

pub fn list(config_path: &Path, site: Option<&str>, as_json: bool) -> Outcome {
    let config = super::load_as_owner(config_path, false)?;
    let site = match site.map(Finess::parse) {
        None => None,
        Some(Ok(f)) => Some(f.as_str().to_string()),
        Some(Err(e)) => return Err(ConfigProblem::usage(format!("--site: {e}"))),
    };
    let tz = crate::system::tz::paris();
    let rows = match Ledger::open_read_only(&config.state_dir)? {
        Some(l) => l.prints(site.as_deref(), 10_000)?,
        None => Vec::new(),
    };
    let time = |t: i64| {
        Timestamp::from_second(t)
            .map(|t| rfc3339(t, &tz))
            .unwrap_or_default()
    };
    if !as_json {
        if rows.is_empty() {
            println!("no print yet");
        } else {
            println!(
                "{:>11}  {:<9}  {:<8}  {:>6}  {:>8}  {:<25}  {:<25}  printer",
                "certificate", "site", "state", "job", "attempts", "recorded", "printed"
            );
        }
    }
    for r in &rows {
        if as_json {
            println!(
                "{}",
                json!({
                    "certificate": r.certificate,
                    "site": r.site,
                    "printer": r.printer,
                    "state": r.state.as_str(),
                    "job_id": r.job_id,
                    "job_name": r.job_name,
                    "attempts": r.attempts,
                    "created_at": time(r.created_at),
                    "printed_at": r.printed_at.map(time),
                    "last_error": r.last_error,
                    "by": r.by_user,
                })
            );
        } else {
            println!(
                "{:>11}  {:<9}  {:<8}  {:>6}  {:>8}  {:<25}  {:<25}  {}{}",
                r.certificate,
                r.site,
                r.state.as_str(),
                r.job_id
                    .map(|j| j.to_string())
                    .unwrap_or_else(|| "-".into()),
                r.attempts,
                time(r.created_at),
                r.printed_at.map(time).unwrap_or_else(|| "-".into()),
                r.printer,
                r.last_error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn again(config_path: &Path, id: i64) -> Outcome {
    let config = super::load_as_owner(config_path, false)?;
    let dir = &config.state_dir;
    let user = crate::system::operator::current_user();
    let tz = crate::system::tz::paris();
    {
        let _work = WorkLock::take(dir).with_context(|| dir.display().to_string())?;
        let Some(mut ledger) = Ledger::open_existing(dir)? else {
            anyhow::bail!("no certificate {id}: nothing was delivered here yet");
        };
        let Some(cert) = ledger.certificate(id)? else {
            anyhow::bail!("no certificate {id}");
        };
        if cert.purged_at.is_some() {
            anyhow::bail!("certificate {id} was purged: there is nothing left to print");
        }
        let Some(spool) = ledger
            .copies(id)?
            .into_iter()
            .find(|c| c.kind == CopyKind::Spool && c.state == crate::ledger::CopyState::Published)
        else {
            anyhow::bail!("certificate {id} has no file in a site's spool folder to print");
        };
        let site = cert.site.clone().unwrap_or_default();
        let printer = Finess::parse(&site)
            .ok()
            .and_then(|f| config.site(&f).and_then(|s| s.printer.clone()))
            .ok_or_else(|| anyhow::anyhow!("site {site} of certificate {id} has no printer"))?;
        let n = ledger.prints_of(id)?.len() as u32;
        let tx = ledger.tx()?;
        tx.insert_print(
            &NewPrintJob {
                certificate: id,
                site: &site,
                printer: &printer.uri,
                copies: printer.copies,
                job_name: &crate::printing::job_name(id, &spool.sha256, n),
                by_user: Some(&user),
            },
            Timestamp::now().as_second(),
        )?;
        crate::printing::record(
            &tx,
            &cert.facts(),
            Event::Reprinted,
            &printer.uri,
            format!("print {} of certificate {id}", n + 1),
            Some(&user),
            &tz,
        )?;
        tx.commit()?;
        crate::retention::log::flush(&mut ledger, dir)?;
    }
    let last = if crate::daemon::report::daemon_running(dir) {
        // The service sends it; its progress is read from the ledger.
        follow(Duration::from_secs(60), || {
            let l = Ledger::open_read_only(dir)?.context("the ledger is gone")?;
            Ok(l.prints_of(id)?.pop())
        })?
    } else {
        // No service: sent from here.
        let ledger = Ledger::open_existing(dir)?.context("the ledger is gone")?;
        let ledger = std::sync::Arc::new(std::sync::Mutex::new(ledger));
        let mut worker = crate::printing::worker::Worker::new(ledger.clone(), dir.clone(), tz);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the runtime")?;
        follow(Duration::from_secs(60), || {
            runtime.block_on(worker.pass(&config, Some(id)))?;
            let l = ledger.lock().unwrap_or_else(|p| p.into_inner());
            Ok(l.prints_of(id)?.pop())
        })?
    };
    let Some(last) = last else {
        anyhow::bail!("the print of certificate {id} is gone");
    };
    let how = last
        .last_error
        .map(|e| format!(" ({e})"))
        .unwrap_or_default();
    match last.state {
        PrintState::Printed => println!("certificate {id}: printed"),
        PrintState::Failed => {
            println!("certificate {id}: failed{how}");
            return Ok(ExitCode::FAILURE);
        }
        _ => println!(
            "certificate {id}: {}{how}; the service prints it once the printer takes it",
            last.state.as_str()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Calls `step` every second until the print it returns is finished, or `limit` passed.
fn follow(
    limit: Duration,
    mut step: impl FnMut() -> anyhow::Result<Option<PrintJobRow>>,
) -> anyhow::Result<Option<PrintJobRow>> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let last = step()?;
        match &last {
            Some(p) if !p.state.is_finished() && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_secs(1));
            }
            _ => return Ok(last),
        }
    }
}
