//! Finishing what a crash interrupted, at start-up. A staged copy (its temporary file written
//! and synced before the ledger said so) is published; a staged copy whose temporary file is
//! gone was published already; a planned copy's temporary file is removed, to be written again
//! from the message when it is read once more. A certificate whose copies are all published is
//! finished, and its message will be acknowledged at the next poll.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::{DeliveryError, plan};
use crate::core::audit::Event;
use crate::ledger::{
    CertState, CertificateRow, CopyRow, CopyState, Disposition, Ledger, LedgerError, LedgerRead,
    LedgerTx,
};
use crate::spool::{self, Published};

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
    for rank in [0u8, 1] {
        let mut dirs = BTreeSet::new();
        for copies in by_cert.values_mut() {
            for copy in copies.iter_mut().filter(|c| c.kind.publish_rank() == rank) {
                match copy.state {
                    CopyState::Planned => {
                        if spool::remove_if_present(&copy.temp)? {
                            done.discarded_temps += 1;
                        }
                    }
                    CopyState::Staged => {
                        if copy.temp.exists() {
                            publish_staged(ledger, copy)?;
                            done.published += 1;
                            dirs.insert(parent(&copy.path));
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
        for dir in dirs {
            spool::sync_dir(&dir)?;
        }
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

fn publish_staged(ledger: &mut Ledger, copy: &mut CopyRow) -> Result<(), DeliveryError> {
    loop {
        match spool::publish(&copy.temp, &copy.path, &copy.sha256)? {
            Published::Done | Published::AlreadyThere => return Ok(()),
            Published::NameTaken => {
                let dir = parent(&copy.path);
                let name = copy
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let tx = ledger.tx()?;
                let next = plan::free_name(&tx, &dir, &name, 2)?;
                tx.set_copy_path(copy.id, &next)?;
                tx.commit()?;
                copy.path = next;
            }
        }
    }
}

fn parent(path: &Path) -> PathBuf {
    path.parent().unwrap_or(Path::new("/")).to_path_buf()
}
