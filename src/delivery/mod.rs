//! Carrying out decisions, exactly once (DESIGN invariants 1 and 2).
//!
//! A batch of fetched messages goes through three ledger commits:
//! 1. **plan**: each message is decided (or recognised as already known by its content hash),
//!    a certificate row and the rows of the files it needs are recorded, names reserved;
//! 2. **stage**: every file is written under a temporary name in its target folder and synced;
//!    the copies are marked staged, in a commit that does not wait for the disk (durable with
//!    the next one; if both are lost, a replay finds the published content in place and
//!    adopts that file);
//! 3. **publish**: temporary names are renamed into place without clobbering (SIL sidecars
//!    before their PDFs, with a folder sync between), folders synced, and the certificates
//!    marked delivered or quarantined.
//!
//! Only then does the caller acknowledge the messages at the source. A crash anywhere leaves a
//! state `recover` or a replay of the same message completes without a second copy: a staged
//! copy whose temporary file is gone was published; a planned one is written again from the
//! message, which is still at the source because it was never acknowledged.

mod acks;
mod folders;
mod plan;
mod publish;
mod recover;
pub mod release;
pub mod spool;

use std::collections::HashMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::core::audit::Event;
use crate::core::config::Config;
use crate::core::finess::Finess;
use crate::core::layout::CopyKind;
use crate::core::{Context, Decision, Outcome, Reason};
use crate::ledger::{
    CertState, CopyRow, CopyState, Disposition, Ledger, LedgerError, LedgerTx, MailboxKey,
    ServerCopy,
};
use spool::{Access, DirError, Published, Syncs};

pub use crate::source::{Ack, AckTarget};
use acks::write_acks;
pub use acks::{ack_target, record_acks, record_fetch_failure};
pub use folders::{create_site_folders, site_folders};
use plan::Prepared;
use publish::{publish, stage};
pub use recover::recover;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Spool(#[from] DirError),
}

/// The bytes of a file to write.
type Content = std::sync::Arc<Vec<u8>>;

/// What the shell needs besides the ledger: the configuration, the zone and the file groups.
pub struct Setting<'a> {
    pub config: &'a Config,
    pub tz: &'a TimeZone,
    pub groups: &'a HashMap<Finess, u32>,
    pub mailbox: &'a MailboxKey,
    /// The installation's secret for dossier pseudonyms (`state::secret`).
    pub secret: &'a [u8],
}

impl Setting<'_> {
    fn access(&self, site: Option<&Finess>) -> Access {
        Access {
            gid: site.and_then(|s| self.groups.get(s).copied()),
        }
    }
}

/// A message as the source handed it over.
#[derive(Debug, Clone)]
pub enum Fetched {
    Whole {
        item: String,
        raw: Vec<u8>,
    },
    /// Over `max_message_bytes`: only its header block was read.
    Oversized {
        item: String,
        headers: Vec<u8>,
    },
    /// The server would not deliver it after repeated attempts.
    Unfetchable {
        item: String,
        headers: Vec<u8>,
    },
    /// Not ours, from its headers.
    Ignored {
        item: String,
        reason: Reason,
    },
}

impl Fetched {
    /// The bytes read: the whole message, or its header block.
    fn bytes(&self) -> &[u8] {
        match self {
            Fetched::Whole { raw, .. } => raw,
            Fetched::Oversized { headers, .. } | Fetched::Unfetchable { headers, .. } => headers,
            Fetched::Ignored { .. } => &[],
        }
    }

    pub fn item(&self) -> &str {
        match self {
            Fetched::Whole { item, .. }
            | Fetched::Oversized { item, .. }
            | Fetched::Unfetchable { item, .. }
            | Fetched::Ignored { item, .. } => item,
        }
    }
}

/// What a batch did; the counts are for logs and status.
#[derive(Debug, Default)]
pub struct BatchReport {
    pub acks: Vec<Ack>,
    pub delivered: Vec<(i64, Finess)>,
    pub quarantined: Vec<(i64, Reason)>,
    pub ignored: usize,
    pub duplicates: usize,
    /// Certificates replaced by a newer re-send in this batch.
    pub superseded: Vec<i64>,
    /// Re-sends older than what was delivered, not delivered.
    pub stale: Vec<i64>,
    /// Certificates that arrived after their due time, not delivered.
    pub expired: Vec<i64>,
    /// Messages left for a later attempt, with the error (no patient data).
    pub failed: Vec<(String, String)>,
    /// The first local failure behind them (a full disk, a permission, a planted link).
    pub local: Option<crate::system::failure::LocalFailure>,
    /// The retention log is broken (its records wait in the ledger): why.
    pub log_broken: Option<String>,
    /// Its records are in the ledger, not yet in the retention log.
    pub unlogged: bool,
}

/// One certificate in a batch, from planning to publication.
struct Work {
    facts: crate::core::audit::Facts,
    item: String,
    certificate: i64,
    finished: CertState,
    site: Option<Finess>,
    reason: Option<Reason>,
    message_id: Option<String>,
    /// Each file and, when it is still to be written, its bytes (a PDF is shared, not copied).
    copies: Vec<(CopyRow, Option<Content>)>,
    failed: Option<String>,
    failure: Option<crate::system::failure::LocalFailure>,
}

/// A batch between its steps.
pub struct Batch {
    work: Vec<Work>,
    /// Messages identical to one planned in this same batch: acknowledged only if it is
    /// delivered.
    followers: Vec<Ack>,
    report: BatchReport,
    /// The folders its files go into, opened once.
    folders: spool::Folders,
}

/// Delivers a batch; see the module documentation for the sequence.
pub fn deliver_batch(
    ledger: &mut Ledger,
    set: &Setting,
    fetched: Vec<Fetched>,
    now: Timestamp,
) -> Result<BatchReport, DeliveryError> {
    deliver_decided(ledger, set, decide_batch(set, fetched, now), &[])
}

/// A batch decided and hashed, not yet written: the pure part of a delivery (parsing,
/// decoding, hashing), which needs no ledger and can run while the previous batch is written.
pub struct Decided {
    prepared: Vec<Prepared>,
    now: Timestamp,
}

/// Decides every message of a batch received at `now`.
pub fn decide_batch(set: &Setting, fetched: Vec<Fetched>, now: Timestamp) -> Decided {
    let started = std::time::Instant::now();
    let prepared = plan::prepare(set, fetched, now);
    tracing::debug!(
        decide_ms = started.elapsed().as_millis() as u64,
        "batch decided"
    );
    Decided { prepared, now }
}

/// Writes a decided batch: plan, stage, publish (see the module documentation), recording
/// first (in the same commit as the plan) what the source did with the previous batch's
/// acknowledgements `acked`: one sync saved per batch.
pub fn deliver_decided(
    ledger: &mut Ledger,
    set: &Setting,
    decided: Decided,
    acked: &[(Ack, Option<ServerCopy>)],
) -> Result<BatchReport, DeliveryError> {
    let Decided { prepared, now } = decided;
    let started = std::time::Instant::now();
    let mut batch = plan_prepared(ledger, set, prepared, acked, now)?;
    let planned = started.elapsed();
    stage_batch(ledger, set, &mut batch)?;
    let staged = started.elapsed();
    let report = publish_batch(ledger, set, batch, now)?;
    tracing::debug!(
        plan_ms = planned.as_millis() as u64,
        stage_ms = (staged - planned).as_millis() as u64,
        publish_ms = (started.elapsed() - staged).as_millis() as u64,
        "batch written"
    );
    Ok(report)
}

/// Step 1: decide, reserve names, commit the plan.
pub fn plan_batch(
    ledger: &mut Ledger,
    set: &Setting,
    fetched: Vec<Fetched>,
    now: Timestamp,
) -> Result<Batch, DeliveryError> {
    plan_prepared(ledger, set, plan::prepare(set, fetched, now), &[], now)
}

fn plan_prepared(
    ledger: &mut Ledger,
    set: &Setting,
    prepared: Vec<Prepared>,
    acked: &[(Ack, Option<ServerCopy>)],
    now: Timestamp,
) -> Result<Batch, DeliveryError> {
    let mut batch = Batch {
        work: Vec::new(),
        followers: Vec::new(),
        report: BatchReport::default(),
        folders: spool::Folders::default(),
    };
    let tx = ledger.tx()?;
    write_acks(&tx, set.mailbox, acked)?;
    for p in prepared {
        plan::plan_one(&tx, set, p, now, &mut batch)?;
    }
    tx.commit()?;
    Ok(batch)
}

/// Step 2: write and sync every temporary file, commit them as staged with their identity.
pub fn stage_batch(
    ledger: &mut Ledger,
    set: &Setting,
    batch: &mut Batch,
) -> Result<(), DeliveryError> {
    stage(set, &mut batch.work, &mut batch.folders);
    let tx = ledger.tx_unsynced()?;
    record_staged(&tx, &batch.work)?;
    // The bytes are on disk: not held while the batch is published and the next one decided.
    for w in &mut batch.work {
        for (_, content) in &mut w.copies {
            *content = None;
        }
    }
    // Durable with the publication's commit. Lost with it, the copies are planned again:
    // recovery removes their temporary files, and the message, never acknowledged, is
    // written again; a file already renamed into place is found there with the same content.
    tx.commit()?;
    Ok(())
}

/// Marks staged, with its identity, every file written for a certificate that did not fail:
/// the purge finds each one by it wherever the site's staff move it in their tree.
fn record_staged(tx: &LedgerTx, work: &[Work]) -> Result<(), LedgerError> {
    for w in work.iter().filter(|w| w.failed.is_none()) {
        for (copy, content) in &w.copies {
            if let (Some(_), Some(file)) = (content, copy.file) {
                tx.set_copy_staged(copy.id, file)?;
            }
        }
    }
    Ok(())
}

/// Step 3: rename into place, sync folders, commit the certificates as finished.
pub fn publish_batch(
    ledger: &mut Ledger,
    set: &Setting,
    batch: Batch,
    now: Timestamp,
) -> Result<BatchReport, DeliveryError> {
    let Batch {
        mut work,
        followers,
        mut report,
        mut folders,
    } = batch;
    publish(&mut work, ledger, &mut folders)?;
    let tx = ledger.tx()?;
    for w in &work {
        if let Some(e) = &w.failed {
            report.failed.push((w.item.clone(), e.clone()));
            if report.local.is_none() {
                report.local = w.failure.clone();
            }
            continue;
        }
        finish(&tx, set, w, now)?;
        report.acks.push(Ack {
            item: w.item.clone(),
            target: ack_target(w.finished),
            certificate: w.certificate,
            message_id: w.message_id.clone(),
        });
        match (w.reason, &w.site) {
            (Some(reason), _) => report.quarantined.push((w.certificate, reason)),
            (None, Some(site)) => report.delivered.push((w.certificate, site.clone())),
            (None, None) => {}
        }
    }
    tx.commit()?;
    for ack in followers {
        let original_done = work
            .iter()
            .any(|w| w.certificate == ack.certificate && w.failed.is_none());
        if original_done {
            report.duplicates += 1;
            report.acks.push(ack);
        } else {
            report.failed.push((
                ack.item,
                "an identical message failed in the same batch".into(),
            ));
        }
    }
    Ok(report)
}

fn finish(tx: &LedgerTx, set: &Setting, w: &Work, now: Timestamp) -> Result<(), LedgerError> {
    for (copy, _) in &w.copies {
        tx.set_copy_state(copy.id, CopyState::Published)?;
    }
    if let Some(reason) = w.reason {
        let mut body = w.facts.body(Event::Quarantined, now, set.tz);
        body.reason = Some(reason.as_str().to_string());
        tx.audit(&body)?;
    } else {
        record_delivered(tx, &w.facts, w.copies.iter().map(|(c, _)| c), now, set.tz)?;
        if let Some((spool, _)) = w.copies.iter().find(|(c, _)| c.kind == CopyKind::Spool) {
            crate::printing::intent(tx, set.config, &w.facts, &spool.sha256, now)?;
        }
    }
    tx.set_certificate_state(w.certificate, w.finished)?;
    let disposition = if w.finished.is_quarantine() {
        Disposition::Quarantined
    } else {
        Disposition::Delivered
    };
    tx.set_message(
        set.mailbox,
        &w.item,
        disposition,
        w.reason.map(Reason::as_str),
        Some(w.certificate),
        now.as_second(),
    )
}

/// The `delivered` records of a certificate: one per destination kind among its copies.
fn record_delivered<'a>(
    tx: &LedgerTx,
    facts: &crate::core::audit::Facts,
    copies: impl Iterator<Item = &'a CopyRow>,
    now: Timestamp,
    tz: &TimeZone,
) -> Result<(), LedgerError> {
    let mut destinations: Vec<&str> = copies
        .filter_map(|c| match c.kind {
            CopyKind::Spool => Some("spool"),
            CopyKind::SilPdf => Some("sil"),
            _ => None,
        })
        .collect();
    destinations.dedup();
    for d in destinations {
        let mut body = facts.body(Event::Delivered, now, tz);
        body.destination = Some(d.to_string());
        tx.audit(&body)?;
    }
    Ok(())
}

/// The decision context of the shell: reception time, configuration and zone.
fn context<'a>(set: &'a Setting, received_at: Timestamp) -> Context<'a> {
    Context {
        config: set.config,
        tz: set.tz,
        received_at,
    }
}

/// The outcome used for a certificate (kept to regenerate its files on resume).
fn outcome_of(fetched: &Fetched, set: &Setting, received_at: Timestamp) -> Option<Outcome> {
    let ctx = context(set, received_at);
    match fetched {
        Fetched::Whole { raw, .. } => Some(crate::core::decide(raw, &ctx)),
        Fetched::Oversized { headers, .. } => Some(crate::core::decide_oversized(headers, &ctx)),
        Fetched::Unfetchable { headers, .. } => {
            Some(crate::core::decide_unfetchable(headers, &ctx))
        }
        Fetched::Ignored { .. } => None,
    }
}

fn finished_state(decision: &Decision) -> CertState {
    match decision {
        Decision::Quarantine { .. } => CertState::Quarantined,
        _ => CertState::Delivered,
    }
}

impl From<&DeliveryError> for crate::system::failure::LocalFailure {
    fn from(e: &DeliveryError) -> Self {
        match e {
            DeliveryError::Ledger(l) => l.into(),
            DeliveryError::Spool(s) => s.into(),
        }
    }
}
crate::system::failure::by_value!(DeliveryError);

#[cfg(test)]
mod tests;
