//! Printing at the site's desk (the guide's last step: reception staff print the certificate
//! for the patient). Each certificate delivered to the spool of a site with a printer is
//! printed once, after its spool copy is published: the intent is recorded in the same ledger
//! commit as the delivery (`intent`), then the worker (`worker`) sends it over IPP
//! (`ipp`), records the job id, and follows the job to its end. A job's name holds the
//! certificate id and a short hash of its PDF, never patient data (printer job lists are
//! visible on the network), and is how a job sent just before a crash is found again
//! instead of being printed twice. Printing never changes retention: the spool copy is purged
//! on its due date whatever happened to the print.

pub mod health;
mod http;
pub mod ipp;
pub mod worker;

use jiff::Timestamp;

use crate::core::audit::{Event, Facts};
use crate::core::config::Config;
use crate::core::finess::Finess;
use crate::delivery::spool::Finder;
use crate::ledger::{CopyKind, CopyState, Ledger, LedgerError, LedgerRead, LedgerTx, NewPrintJob};

/// The job name of print `n` (0 for the first) of a certificate whose PDF hashes to `sha256`.
pub fn job_name(certificate: i64, sha256: &[u8; 32], n: u32) -> String {
    let short: String = sha256[..4].iter().map(|b| format!("{b:02x}")).collect();
    if n == 0 {
        format!("mssd-{certificate}-{short}")
    } else {
        format!("mssd-{certificate}-{short}-{n}")
    }
}

/// Records that a delivered certificate is to be printed, when its site has a printer that
/// wants its result. `sha256` is its spool copy's. In the delivery's own transaction.
pub fn intent(
    tx: &LedgerTx,
    config: &Config,
    facts: &Facts,
    sha256: &[u8; 32],
    now: Timestamp,
) -> Result<bool, LedgerError> {
    let Some(site) = facts.site.as_deref().and_then(|s| Finess::parse(s).ok()) else {
        return Ok(false);
    };
    let Some(printer) = config.site(&site).and_then(|s| s.printer.as_ref()) else {
        return Ok(false);
    };
    if !printer.print.wants(facts.result.as_deref()) {
        return Ok(false);
    }
    tx.insert_print(
        &NewPrintJob {
            certificate: facts.certificate,
            site: site.as_str(),
            printer: &printer.uri,
            copies: printer.copies,
            job_name: &job_name(facts.certificate, sha256, 0),
            by_user: None,
        },
        now.as_second(),
    )?;
    Ok(true)
}

/// The retention-log record of a print's end, or of a reprint asked by `user`.
pub fn record(
    tx: &LedgerTx,
    facts: &Facts,
    event: Event,
    printer: &str,
    detail: String,
    user: Option<&str>,
    tz: &jiff::tz::TimeZone,
) -> Result<(), LedgerError> {
    let mut body = facts.body(event, Timestamp::now(), tz);
    body.destination = Some(printer.to_string());
    body.detail = Some(detail);
    body.user = user.map(str::to_string);
    tx.audit(&body)?;
    Ok(())
}

/// The spool copy of a certificate, read through its folder's handle and checked against
/// the hash recorded when it was written: what is printed is byte for byte what was
/// delivered. `Err` says why it cannot be printed (no patient data).
pub fn spool_pdf(l: &Ledger, certificate: i64) -> Result<Vec<u8>, String> {
    let copies = l.copies(certificate).map_err(|e| e.to_string())?;
    let Some(copy) = copies
        .iter()
        .find(|c| c.kind == CopyKind::Spool && c.state == CopyState::Published)
    else {
        return Err("its spool copy is gone (purged, or taken before it was printed)".into());
    };
    let mut finder = Finder::default();
    let found = finder
        .locate(copy.kind, &copy.path, &copy.temp, copy.file)
        .map_err(|e| e.to_string())?;
    let Some((dir, name, _)) = found.at.first() else {
        return Err("its spool copy was removed from the site's folder".into());
    };
    let bytes = dir
        .read(name)
        .map_err(|e| e.to_string())?
        .ok_or("its spool copy was removed from the site's folder")?;
    if crate::delivery::spool::sha256(&bytes) != copy.sha256 {
        return Err("its spool copy was changed since it was delivered".into());
    }
    Ok(bytes)
}
