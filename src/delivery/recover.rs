//! Finishing what a crash interrupted, at start-up. A staged copy (its temporary file written
//! and synced before the ledger said so) is published, in whatever folder of its tree the
//! site moved it to; a staged copy whose temporary file is gone was published already; a
//! planned copy's temporary file is removed, wherever it is, to be written again from the
//! message when it is read once more. A certificate whose copies are all published is
//! finished, and its message will be acknowledged at the next poll.

use std::collections::BTreeMap;
use std::path::Path;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::DeliveryError;
use crate::core::audit::Event;
use crate::delivery::spool::{self, Dir, Finder, Published, Syncs};
use crate::ledger::{
    CertState, CertificateRow, CopyRow, CopyState, Disposition, Ledger, LedgerError, LedgerRead,
    LedgerTx,
};

/// What `recover` did, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub published: usize,
    pub discarded_temps: usize,
    pub finished: usize,
}

pub fn recover(ledger: &mut Ledger, tz: &TimeZone) -> Result<Recovered, DeliveryError> {
    let mut done = Recovered::default();
    let rows = ledger.unfinished_copies()?;
    if rows.is_empty() {
        return Ok(done);
    }
    let mut by_cert: BTreeMap<i64, Vec<CopyRow>> = BTreeMap::new();
    for (cert, copy) in rows {
        by_cert.entry(cert).or_default().push(copy);
    }
    let mut finder = Finder::default();
    for rank in [0u8, 1] {
        let mut syncs = Syncs::default();
        for copies in by_cert.values_mut() {
            for copy in copies.iter_mut().filter(|c| c.kind.publish_rank() == rank) {
                match copy.state {
                    CopyState::Planned => {
                        done.discarded_temps += discard_temp(&mut finder, copy)?;
                    }
                    CopyState::Staged => {
                        if let Some(dir) = publish_staged(ledger, &mut finder, copy)? {
                            done.published += 1;
                            syncs.add(dir)?;
                        }
                        let tx = ledger.tx()?;
                        tx.set_copy_state(copy.id, CopyState::Published)?;
                        tx.commit()?;
                        copy.state = CopyState::Published;
                    }
                    CopyState::Published | CopyState::Purging | CopyState::Gone => {}
                }
            }
        }
        syncs.run()?;
        finder.clear();
    }
    for (cert, copies) in &by_cert {
        if copies.iter().all(|c| c.state == CopyState::Published) {
            let Some(row) = ledger.certificate(*cert)? else {
                continue;
            };
            let (state, disposition) = if row.state.is_quarantine() {
                (CertState::Quarantined, Disposition::Quarantined)
            } else {
                (CertState::Delivered, Disposition::Delivered)
            };
            let tx = ledger.tx()?;
            tx.set_certificate_state(*cert, state)?;
            tx.settle_messages(*cert, disposition)?;
            record_finished(&tx, &row, copies, tz)?;
            tx.commit()?;
            done.finished += 1;
        }
    }
    Ok(done)
}

/// Removes a planned copy's temporary file, wherever in its tree a renamed folder took it
/// (a crash came before the ledger knew the file's identity: it is found by its name, which
/// only this service gives). Returns how many were removed.
pub(super) fn discard_temp(finder: &mut Finder, copy: &CopyRow) -> Result<usize, DeliveryError> {
    // The temporary name only: the final name may be another certificate's file.
    let temp_only = copy.temp.with_file_name(spool::file_name(&copy.temp));
    Ok(finder
        .remove(copy.kind, &temp_only, &copy.temp, None)?
        .removed)
}

/// The retention-log records of a delivery finished by recovery.
fn record_finished(
    tx: &LedgerTx,
    row: &CertificateRow,
    copies: &[CopyRow],
    tz: &TimeZone,
) -> Result<(), LedgerError> {
    let now = Timestamp::now();
    let facts = row.facts();
    if row.state.is_quarantine() {
        tx.audit(&facts.body(Event::Quarantined, now, tz))?;
        return Ok(());
    }
    super::record_delivered(tx, &facts, copies.iter(), now, tz)
}

/// Publishes a staged copy whose temporary file is still there, in the folder it is in now
/// (staff may have renamed that folder); returns the folder to sync. A staged copy whose
/// temporary file is gone was published already (or taken since).
fn publish_staged(
    ledger: &mut Ledger,
    finder: &mut Finder,
    copy: &mut CopyRow,
) -> Result<Option<Dir>, DeliveryError> {
    let temp = spool::file_name(&copy.temp);
    let found = finder.locate(copy.kind, &copy.path, &copy.temp, copy.file)?;
    let Some((dir, _, _)) = found.at.into_iter().find(|(_, name, _)| *name == temp) else {
        return Ok(None);
    };
    let here = dir.path() == copy.path.parent().unwrap_or(Path::new("/"));
    let name = spool::file_name(&copy.path);
    for n in 1..=100 {
        let candidate = crate::core::filename::with_counter(&name, n);
        match super::publish::publish_or_adopt(&dir, &temp, &candidate, copy, ledger)? {
            Published::Done | Published::AlreadyThere => {
                // Where the folder is the recorded one, the name is recorded; in a folder the
                // site renamed, the copy is found again by its identity.
                if here && candidate != name {
                    let next = copy.path.with_file_name(&candidate);
                    let tx = ledger.tx()?;
                    tx.set_copy_path(copy.id, &next)?;
                    tx.commit()?;
                    copy.path = next;
                }
                return Ok(Some(dir));
            }
            Published::NameTaken => {}
        }
    }
    Err(DeliveryError::Spool(spool::DirError {
        what: "no free file name",
        dir: dir.path().to_path_buf(),
        source: std::io::Error::other("every candidate name is taken"),
    }))
}
