//! What the plan records besides files: a certificate's row and its facts for the retention
//! log, the replacement of a delivered certificate by a re-send, and certificates recorded
//! but not delivered (stale re-sends, and those already due on arrival).

use jiff::Timestamp;

use crate::core::audit::{Event, Facts};
use crate::core::{Decision, Outcome, mime};
use crate::delivery::{Ack, AckTarget, BatchReport, Setting, Work};
use crate::ledger::{
    CertState, CertificateRow, CopyState, Disposition, LedgerError, LedgerRead, LedgerTx,
    NewCertificate, Personal,
};

pub(in crate::delivery) fn facts_of(
    id: i64,
    outcome: &Outcome,
    dossier_hmac: Option<String>,
) -> Facts {
    Facts {
        certificate: id,
        site: outcome.cert.site.as_ref().map(|f| f.as_str().to_string()),
        result: outcome.cert.result.map(|r| r.as_str().to_string()),
        sampled_at: outcome.cert.sampled_at,
        dossier_hmac,
    }
}

/// Replaces `old` by the certificate `new`: the old files go at once (SPEC §2, XMAJ);
/// its server copy and personal fields go at the next purge pass.
pub(in crate::delivery) fn supersede(
    tx: &LedgerTx,
    set: &Setting,
    old: &CertificateRow,
    new: i64,
    now: Timestamp,
    work: &mut Vec<Work>,
    report: &mut BatchReport,
) -> Result<(), LedgerError> {
    // Still in this very batch: it will not be written at all; its message is acknowledged.
    if let Some(pos) = work.iter().position(|w| w.certificate == old.id) {
        let w = work.remove(pos);
        report.acks.push(Ack {
            item: w.item,
            target: AckTarget::Processed,
            certificate: old.id,
            message_id: w.message_id,
        });
    }
    let mut finder = crate::delivery::spool::Finder::default();
    for copy in tx.copies(old.id)? {
        // Ours to remove, wherever the site moved it; a file the SIL or the site already took
        // is simply not there. One that cannot be removed now stays for the purge, which
        // retries it at every pass and says so.
        match finder.remove(copy.kind, &copy.path, &copy.temp, copy.file) {
            Ok(r) if r.complete || r.removed > 0 => tx.set_copy_state(copy.id, CopyState::Gone)?,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(certificate = old.id, error = %e, "cannot remove a superseded file");
            }
        }
    }
    tx.supersede(old.id, new, now.as_second())?;
    let mut body = old.facts().body(Event::Superseded, now, set.tz);
    body.by = Some(new);
    tx.audit(&body)?;
    report.superseded.push(old.id);
    Ok(())
}

/// A certificate recorded but not delivered: a re-send older than the one delivered
/// (`stale`, `kept` is the one delivered), or one already due on arrival (`expired`). No
/// personal field is kept; its message is handled as processed and its server copy purged at
/// the next pass.
pub(super) struct NotDelivered<'a> {
    pub item: &'a str,
    pub outcome: &'a Outcome,
    pub key: [u8; 32],
    pub pdf_sha: Option<[u8; 32]>,
    pub hmac: Option<&'a str>,
    pub headers: &'a [u8],
}

impl NotDelivered<'_> {
    pub(super) fn record(
        self,
        tx: &LedgerTx,
        set: &Setting,
        now: Timestamp,
        state: CertState,
        kept: Option<i64>,
        report: &mut BatchReport,
    ) -> Result<(), LedgerError> {
        let hmac = self.hmac.map(str::to_string);
        let mut row = new_certificate(self.outcome, self.key, self.pdf_sha, hmac.clone(), now);
        row.state = state;
        row.purge_at = row.purge_at.min(now.as_second());
        row.personal = Personal::default();
        let id = tx.insert_certificate(&row)?;
        let facts = facts_of(id, self.outcome, hmac);
        tx.audit(&facts.body(Event::Received, now, set.tz))?;
        let (event, disposition) = match state {
            CertState::Stale => (Event::Stale, Disposition::Stale),
            _ => (Event::Expired, Disposition::Expired),
        };
        let mut body = facts.body(event, now, set.tz);
        body.by = kept;
        if event == Event::Expired {
            body.rule = Some(row.rule.clone());
            body.due = self
                .outcome
                .decision
                .purge_at()
                .map(|t| crate::core::retention::rfc3339(t, set.tz));
        }
        tx.audit(&body)?;
        tx.set_message(
            set.mailbox,
            self.item,
            disposition,
            None,
            Some(id),
            now.as_second(),
        )?;
        match state {
            CertState::Stale => report.stale.push(id),
            _ => report.expired.push(id),
        }
        report.acks.push(Ack {
            item: self.item.to_string(),
            target: AckTarget::Processed,
            certificate: id,
            message_id: mime::parse_headers(self.headers).and_then(|m| m.message_id),
        });
        Ok(())
    }
}

pub(super) fn new_certificate(
    outcome: &Outcome,
    content_sha256: [u8; 32],
    pdf_sha256: Option<[u8; 32]>,
    dossier_hmac: Option<String>,
    now: Timestamp,
) -> NewCertificate {
    let c = &outcome.cert;
    let (state, rule, detail) = match &outcome.decision {
        Decision::Deliver { rule, .. } => (CertState::Delivering, rule.as_str(), None),
        Decision::Quarantine { detail, .. } => {
            (CertState::Quarantining, "quarantine", Some(detail.clone()))
        }
        Decision::Ignore { .. } => (CertState::Quarantining, "quarantine", None),
    };
    NewCertificate {
        state,
        reason: outcome.decision.reason().map(|r| r.as_str().to_string()),
        detail,
        site: c.site.as_ref().map(|f| f.as_str().to_string()),
        result: c.result.map(|r| r.as_str().to_string()),
        rule: rule.to_string(),
        received_at: now.as_second(),
        sampled_at: c.sampled_at.map(Timestamp::as_second),
        integrated_at: c.integrated_at.map(Timestamp::as_second),
        purge_at: outcome
            .decision
            .purge_at()
            .map_or(now.as_second(), Timestamp::as_second),
        content_sha256,
        pdf_sha256,
        message_id: c.message_id.clone(),
        dossier_hmac,
        personal: Personal {
            dossier: c.dossier.clone(),
            nom: c.nom.clone(),
            prenom: c.prenom.clone(),
            sexe: c.body.sexe.clone(),
            birth_date: c.body.birth_date.clone(),
            ins: c.body.ins.clone(),
        },
    }
}
