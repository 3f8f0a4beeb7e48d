//! Resolving a quarantine: a person releases a quarantined certificate (decided again from its
//! kept message, with the configuration of now and their overrides) or discards it.
//!
//! A release goes through the same three steps as a delivery — plan, stage, publish — under
//! the work lock, and only the last commit turns the certificate into a delivered one
//! (`released` and `delivered` records, retention from the new decision, server copy queued to
//! move to the processed folder). Until then it stays quarantined: an interrupted release is
//! undone (`undo_abandoned`) and can simply be run again.

use std::path::PathBuf;

use jiff::Timestamp;

use super::plan;
use super::{BatchReport, Content, DeliveryError, Fetched, Setting, Work, publish, stage};
use crate::core::audit::{Event, Facts};
use crate::core::decide::Overrides;
use crate::core::layout::CopyKind;
use crate::core::retention::rfc3339;
use crate::core::{Context, Decision, Reason};
use crate::delivery::spool;
use crate::ledger::{
    CertState, CertificateRow, CopyRow, CopyState, Ledger, LedgerRead, QuarantineRead, Release,
};

/// What a release did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    pub certificate: i64,
    pub site: String,
    pub rule: String,
    pub purge_at: Timestamp,
    pub files: Vec<PathBuf>,
    /// The delivered certificate this one replaced (a re-send).
    pub replaced: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// Nothing was changed, for this reason (no patient data).
    #[error("{0}")]
    Refused(String),
}

impl From<crate::ledger::LedgerError> for ReleaseError {
    fn from(e: crate::ledger::LedgerError) -> Self {
        ReleaseError::Delivery(e.into())
    }
}

impl From<spool::DirError> for ReleaseError {
    fn from(e: spool::DirError) -> Self {
        ReleaseError::Delivery(e.into())
    }
}

/// Who released and with what: for the `released` record.
pub struct Resolution<'a> {
    pub user: &'a str,
    pub overrides: &'a Overrides,
    /// A release by name (`release ID`) may replace a delivered certificate whose integration
    /// date does not tell which is newer; a `retry` leaves that to a person.
    pub by_name: bool,
}

/// Certificate `id`, if it is in quarantine.
pub fn quarantined(ledger: &Ledger, id: i64) -> Result<CertificateRow, ReleaseError> {
    let Some(row) = ledger.certificate(id)? else {
        return Err(ReleaseError::Refused(format!("no certificate {id}")));
    };
    if row.state != CertState::Quarantined || row.purged_at.is_some() {
        return Err(ReleaseError::Refused(format!(
            "certificate {id} is not in quarantine (it is {})",
            if row.purged_at.is_some() {
                "purged"
            } else {
                row.state.as_str()
            }
        )));
    }
    Ok(row)
}

/// Releases quarantined certificate `id`, decided again from `raw` (its kept message).
pub fn release(
    ledger: &mut Ledger,
    set: &Setting,
    id: i64,
    raw: &[u8],
    how: &Resolution,
    now: Timestamp,
) -> Result<Released, ReleaseError> {
    undo_abandoned(ledger, Some(id))?;
    let row = quarantined(ledger, id)?;
    let received_at = Timestamp::from_second(row.received_at).unwrap_or(now);
    let ctx = Context {
        config: set.config,
        tz: set.tz,
        received_at,
    };
    let mut outcome = crate::core::decide_with(raw, &ctx, how.overrides);
    let (site, rule, purge_at) = match &outcome.decision {
        Decision::Deliver {
            site,
            rule,
            purge_at,
            ..
        } => (site.clone(), *rule, *purge_at),
        Decision::Quarantine { reason, detail, .. } => {
            return Err(ReleaseError::Refused(format!(
                "it would still be quarantined: {} ({detail})",
                reason.as_str()
            )));
        }
        Decision::Ignore { reason } => {
            return Err(ReleaseError::Refused(format!(
                "it is not an SI-DEP certificate for this mailbox: {}",
                reason.as_str()
            )));
        }
    };
    if purge_at <= now {
        return Err(ReleaseError::Refused(format!(
            "its retention is over (due {}): discard it",
            rfc3339(purge_at, set.tz)
        )));
    }

    // A re-send of a delivered certificate: the same rule as at reception.
    let old_reason = ledger.recorded(id)?.and_then(|r| r.reason);
    let mut replaces = None;
    if let Some(hmac) = &row.dossier_hmac
        && let Some(old) = ledger.live_by_dossier(hmac)?
        && old.id != id
    {
        let newer = outcome.cert.integrated_at.map(Timestamp::as_second);
        match (newer, old.integrated_at) {
            (Some(n), Some(o)) if n > o => replaces = Some(old),
            (Some(n), Some(o)) if n < o => {
                return Err(ReleaseError::Refused(format!(
                    "certificate {} for the same dossier is newer and delivered: this one is \
                     stale; discard it",
                    old.id
                )));
            }
            _ if how.by_name && old_reason.as_deref() == Some(Reason::AmbiguousResend.as_str()) => {
                replaces = Some(old)
            }
            _ => {
                return Err(ReleaseError::Refused(format!(
                    "certificate {} for the same dossier is delivered and the integration \
                     dates do not tell which is newer: release this one by its id to replace it",
                    old.id
                )));
            }
        }
    }

    // 1. Plan: the new files, reserved; the certificate stays quarantined.
    let pdf = Content::new(outcome.cert.pdf.take().unwrap_or_default());
    let pdf_sha = spool::sha256(&pdf);
    let fetched = Fetched::Whole {
        item: String::new(),
        raw: raw.to_vec(),
    };
    let tx = ledger.tx()?;
    let message = plan::Message {
        fetched: &fetched,
        outcome: &outcome,
        pdf: &pdf,
        pdf_sha: Some(&pdf_sha),
        received_at,
    };
    let mut folders = spool::Folders::default();
    let copies = plan::plan_copies(&tx, set, id, &message, true, &mut folders)?;
    tx.commit()?;
    let facts = Facts {
        dossier_hmac: row.dossier_hmac.clone(),
        ..plan::facts_of(id, &outcome, None)
    };
    let mut work = [Work {
        facts,
        item: String::new(),
        certificate: id,
        finished: CertState::Delivered,
        site: Some(site.clone()),
        reason: None,
        message_id: outcome.cert.message_id.clone(),
        copies,
        failed: None,
        failure: None,
    }];

    // 2. Stage, 3. publish; a failure undoes what was written.
    stage(set, &mut work, &mut folders);
    if work[0].failed.is_none() {
        let tx = ledger.tx()?;
        super::record_staged(&tx, &work)?;
        tx.commit()?;
        publish(&mut work, ledger, &mut folders)?;
    }
    if let Some(e) = work[0].failed.take() {
        undo_abandoned(ledger, Some(id))?;
        return Err(ReleaseError::Refused(format!(
            "the files could not be written: {e}"
        )));
    }

    // 4. One commit: delivered, recorded, the quarantine copies marked for removal, the server
    //    copy queued to move (or to be deleted, without a processed folder).
    let [w] = work;
    let quarantine_copies: Vec<CopyRow> = ledger
        .copies(id)?
        .into_iter()
        .filter(|c| c.kind.is_quarantine())
        .collect();
    let tx = ledger.tx()?;
    for (copy, _) in &w.copies {
        tx.set_copy_state(copy.id, CopyState::Published)?;
    }
    for copy in &quarantine_copies {
        tx.set_copy_state(copy.id, CopyState::Purging)?;
    }
    if let Some(old) = &replaces {
        plan::supersede(
            &tx,
            set,
            old,
            id,
            now,
            &mut Vec::new(),
            &mut BatchReport::default(),
        )?;
    }
    tx.release(
        id,
        &Release {
            site: site.as_str().to_string(),
            result: outcome.cert.result.map(|r| r.as_str().to_string()),
            rule: rule.as_str().to_string(),
            sampled_at: outcome.cert.sampled_at.map(Timestamp::as_second),
            purge_at: purge_at.as_second(),
        },
    )?;
    tx.messages_released(id)?;
    let processed = &set.config.mailbox.processed_folder;
    if processed.is_empty() {
        tx.retarget_server_copies(id, now.as_second(), None)?;
    } else {
        tx.retarget_server_copies(id, purge_at.as_second(), Some(processed))?;
    }
    let mut body = w.facts.body(Event::Released, now, set.tz);
    body.user = Some(how.user.to_string());
    body.reason = old_reason;
    body.overrides = describe(how.overrides, set.tz);
    body.rule = Some(rule.as_str().to_string());
    body.due = Some(rfc3339(purge_at, set.tz));
    tx.audit(&body)?;
    super::record_delivered(&tx, &w.facts, w.copies.iter().map(|(c, _)| c), now, set.tz)?;
    if let Some((spool, _)) = w.copies.iter().find(|(c, _)| c.kind == CopyKind::Spool) {
        crate::printing::intent(&tx, set.config, &w.facts, &spool.sha256, now)?;
    }
    tx.commit()?;

    // 5. The quarantine files go; a crash before this leaves them for the certificate's purge.
    remove_copies(ledger, &quarantine_copies)?;
    Ok(Released {
        certificate: id,
        site: site.as_str().to_string(),
        rule: rule.as_str().to_string(),
        purge_at,
        files: w
            .copies
            .iter()
            .filter(|(c, _)| c.kind != CopyKind::SilJson)
            .map(|(c, _)| c.path.clone())
            .collect(),
        replaced: replaces.map(|o| o.id),
    })
}

/// The overrides as the `released` record shows them: `key=value, …`, or none.
fn describe(o: &Overrides, tz: &jiff::tz::TimeZone) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(site) = &o.site {
        parts.push(format!("site={site}"));
    }
    if let Some(result) = o.result {
        parts.push(format!("result={}", result.as_str()));
    }
    if let Some(at) = o.sampled_at {
        parts.push(format!("sampled_at={}", rfc3339(at, tz)));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Removes copies' files (wherever their tree holds them) and forgets them.
fn remove_copies(ledger: &mut Ledger, copies: &[CopyRow]) -> Result<(), DeliveryError> {
    let mut finder = spool::Finder::default();
    for copy in copies {
        finder.remove(copy.kind, &copy.path, &copy.temp, copy.file)?;
    }
    let tx = ledger.tx()?;
    for copy in copies {
        tx.set_copy_state(copy.id, CopyState::Gone)?;
    }
    tx.commit()?;
    Ok(())
}

/// Undoes interrupted releases (of `certificate`, or all): the files a release planned or
/// staged for a certificate still in quarantine are removed — a staged one also from its
/// final name, if it was renamed there with the same content — and forgotten.
pub fn undo_abandoned(
    ledger: &mut Ledger,
    certificate: Option<i64>,
) -> Result<usize, DeliveryError> {
    let rows = ledger.abandoned_release_copies(certificate)?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut finder = spool::Finder::default();
    for (_, copy) in &rows {
        if copy.state == CopyState::Staged {
            // Its file, under its temporary or (renamed already) its final name.
            finder.remove(copy.kind, &copy.path, &copy.temp, copy.file)?;
        } else {
            super::recover::discard_temp(&mut finder, copy)?;
        }
    }
    let tx = ledger.tx()?;
    for (_, copy) in &rows {
        tx.set_copy_state(copy.id, CopyState::Gone)?;
    }
    tx.commit()?;
    Ok(rows.len())
}

/// Discards quarantined certificate `id`: due now, purged at once (every local copy, the
/// personal fields), its server copy deleted at the next server pass.
pub fn discard(
    ledger: &mut Ledger,
    tz: &jiff::tz::TimeZone,
    id: i64,
    user: &str,
    now: Timestamp,
) -> Result<(), ReleaseError> {
    undo_abandoned(ledger, Some(id))?;
    let row = quarantined(ledger, id)?;
    let reason = ledger.recorded(id)?.and_then(|r| r.reason);
    let tx = ledger.tx()?;
    tx.due_now(id, now.as_second())?;
    let mut body = row.facts().body(Event::Discarded, now, tz);
    body.user = Some(user.to_string());
    body.reason = reason;
    tx.audit(&body)?;
    tx.commit()?;
    let Some(row) = ledger.certificate(id)? else {
        return Ok(());
    };
    crate::retention::purge::purge_certificates(ledger, tz, &[row], now).map_err(|e| match e {
        crate::retention::purge::PurgeError::Ledger(e) => ReleaseError::from(e),
        crate::retention::purge::PurgeError::Spool(e) => ReleaseError::from(e),
    })?;
    Ok(())
}
