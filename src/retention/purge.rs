//! The retention executor (SPEC §4, DESIGN invariant 3). A pass takes the certificates due
//! from the ledger's `certificate_due` index (its cost follows what is due, not what is held),
//! removes every local copy the product made (spool, SIL, quarantine files, then empty day
//! folders), erases the personal fields, records `purged` with the rule, due time and lateness,
//! and truncates the ledger's write-ahead log so the erased values are gone from disk too.
//! The server copies are deleted by the caller through its source (`server_copies`); a
//! server that is down only delays them, and the lateness is recorded. Nothing is purged
//! while the clock is held (`clock`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::core::audit::Event;
use crate::core::layout::CopyKind;
use crate::delivery::spool::{Dir, DirError, Finder, Place};
use crate::ledger::{CertificateRow, CopyState, Ledger, LedgerError, LedgerRead};
use crate::retention::handover::record_taken;

/// Certificates handled per pass; the next pass takes the rest.
pub const PASS_LIMIT: usize = 5000;

#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Spool(#[from] DirError),
}

/// What a local pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LocalPass {
    /// Certificates purged, with their rule.
    pub purged: Vec<(i64, String)>,
    /// Copies found already taken by the SIL or removed by the site.
    pub taken: usize,
    /// Certificates due whose files could not all be removed: retried at the next pass.
    pub failing: Vec<Failing>,
}

/// A due certificate a copy of which could not be removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    pub certificate: i64,
    pub site: Option<String>,
    /// The folder the configuration names and what went wrong (never a file name).
    pub error: String,
}

/// One due certificate as `purge --dry-run` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Due {
    pub certificate: i64,
    pub site: Option<String>,
    pub rule: String,
    pub due: String,
}

/// What would be purged at `now`.
pub fn due(ledger: &Ledger, now: Timestamp, tz: &TimeZone) -> Result<Vec<Due>, LedgerError> {
    Ok(ledger
        .due_certificates(now.as_second(), usize::MAX >> 1)?
        .into_iter()
        .map(|c| Due {
            certificate: c.id,
            site: c.site,
            rule: c.rule,
            due: stamp(c.purge_at, tz),
        })
        .collect())
}

fn stamp(unix: i64, tz: &TimeZone) -> String {
    crate::core::retention::rfc3339(Timestamp::from_second(unix).unwrap_or_default(), tz)
}

/// Removes every local copy of every certificate due at `now`, and its personal fields.
pub fn local_pass(
    ledger: &mut Ledger,
    tz: &TimeZone,
    now: Timestamp,
    limit: usize,
) -> Result<LocalPass, PurgeError> {
    let due = ledger.due_certificates(now.as_second(), limit)?;
    purge_certificates(ledger, tz, &due, now)
}

/// Removes every local copy of these certificates and their personal fields, and records
/// each purge with its rule and lateness (a discard makes a certificate due first). A copy
/// that cannot be removed (a folder made read-only by its site, a directory where the file
/// was) keeps its certificate unpurged: it is recorded as failing, retried at every pass, and
/// reported; the other certificates are purged all the same.
pub fn purge_certificates(
    ledger: &mut Ledger,
    tz: &TimeZone,
    due: &[CertificateRow],
    now: Timestamp,
) -> Result<LocalPass, PurgeError> {
    let mut pass = LocalPass::default();
    if due.is_empty() {
        return Ok(pass);
    }
    let mut finder = Finder::default();
    // 1. Copies the SIL or the site took are theirs: recorded as such, not as purged. A copy
    //    is taken when its file is nowhere in its tree any more (a file the site moved inside
    //    its folder is still ours). The others are marked before they are removed, so that a
    //    crash in between is not taken for a hand-over.
    let tx = ledger.tx()?;
    for cert in due {
        for copy in tx.copies(cert.id)? {
            if copy.state == CopyState::Published
                && finder
                    .locate(copy.kind, &copy.path, &copy.temp, copy.file)
                    .is_ok_and(|l| l.at.is_empty() && l.complete)
            {
                record_taken(&tx, cert, &copy, now, tz)?;
                pass.taken += 1;
            } else if copy.state != CopyState::Purging {
                tx.set_copy_state(copy.id, CopyState::Purging)?;
            }
        }
    }
    tx.commit()?;

    // 2. Remove the files, wherever the site moved them in its tree, then the day folders
    //    they leave empty.
    let mut days: BTreeSet<(PathBuf, String)> = BTreeSet::new();
    let mut purgeable = Vec::new();
    let mut failures: Vec<(i64, String)> = Vec::new();
    for cert in due {
        let mut failed = None;
        for copy in ledger.copies(cert.id)? {
            if copy.state != CopyState::Purging {
                continue;
            }
            let place = Place::of(copy.kind, &copy.path);
            let error = match finder.remove(copy.kind, &copy.path, &copy.temp, copy.file) {
                Ok(r) if r.removed > 0 || r.complete => None,
                Ok(_) => Some(format!(
                    "{}: the file is not where it was left, and part of the folder cannot be \
                     searched",
                    place.root.display()
                )),
                Err(e) => Some(format!(
                    "{}: {}: {}",
                    place.root.display(),
                    e.what,
                    e.source
                )),
            };
            match error {
                None if copy.kind == CopyKind::Spool => {
                    days.extend(place.trail.first().map(|d| (place.root.clone(), d.clone())));
                }
                None => {}
                Some(e) => {
                    failures.push((copy.id, e.clone()));
                    failed = Some(e);
                }
            }
        }
        match failed {
            None => purgeable.push(cert),
            Some(error) => pass.failing.push(Failing {
                certificate: cert.id,
                site: cert.site.clone(),
                error,
            }),
        }
    }
    for (root, day) in &days {
        // Fails, as it should, while other certificates are in it.
        if let Ok(root) = Dir::root(root)
            && root.remove_empty(day)
        {
            root.sync()?;
        }
    }

    // 3. Erase the personal fields and record the purge; count the failures.
    let tx = ledger.tx()?;
    for (copy, error) in &failures {
        tx.copy_purge_failed(*copy, error)?;
    }
    for cert in purgeable {
        tx.scrub(cert.id, now.as_second())?;
        let mut body = cert.facts().body(Event::Purged, now, tz);
        body.rule = Some(cert.rule.clone());
        body.due = Some(stamp(cert.purge_at, tz));
        body.purged_at = Some(crate::core::retention::rfc3339(now, tz));
        body.lateness_seconds = Some((now.as_second() - cert.purge_at).max(0));
        tx.audit(&body)?;
        pass.purged.push((cert.id, cert.rule.clone()));
    }
    tx.commit()?;
    // Erased values must not survive in the write-ahead log either.
    ledger.checkpoint()?;
    Ok(pass)
}

impl From<&PurgeError> for crate::system::failure::LocalFailure {
    fn from(e: &PurgeError) -> Self {
        match e {
            PurgeError::Ledger(l) => l.into(),
            PurgeError::Spool(s) => s.into(),
        }
    }
}
crate::system::failure::by_value!(PurgeError);

#[cfg(test)]
mod tests;
