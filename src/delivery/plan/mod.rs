//! Planning a batch: recognising known messages, deciding new ones, reserving file names and
//! rendering the bytes each file will hold.

mod files;
mod records;

use jiff::Timestamp;

use super::{Ack, Batch, BatchReport, Content, Fetched, Setting, Work, finished_state, outcome_of};
use crate::core::audit::{Event, Facts, pseudonym};
use crate::core::decide::requarantine;
use crate::core::{Decision, Outcome, Reason, mime};
use crate::delivery::spool::sha256;
use crate::ledger::{
    CertState, CertificateRef, CopyRow, CopyState, Disposition, LedgerError, LedgerRead, LedgerTx,
};
pub(super) use files::{Message, free_name, plan_copies};
use files::{content_sha, render, sil_pdf_name};
use records::{NotDelivered, new_certificate};
pub(super) use records::{facts_of, supersede};

/// A message decided and hashed, before the ledger is consulted.
pub(super) struct Prepared {
    fetched: Fetched,
    outcome: Option<Outcome>,
    pdf_sha: Option<[u8; 32]>,
    key: [u8; 32],
}

/// Decides and hashes a batch's messages: pure work, done before the ledger transaction so
/// that it holds the ledger as briefly as possible.
pub(super) fn prepare(set: &Setting, fetched: Vec<Fetched>, now: Timestamp) -> Vec<Prepared> {
    fetched
        .into_iter()
        .map(|fetched| {
            let outcome = outcome_of(&fetched, set, now);
            let pdf_sha = outcome
                .as_ref()
                .and_then(|o| o.cert.pdf.as_deref().map(sha256));
            let key = match &outcome {
                Some(_) => content_key(&fetched),
                None => [0; 32],
            };
            Prepared {
                fetched,
                outcome,
                pdf_sha,
                key,
            }
        })
        .collect()
}

pub(super) fn plan_one(
    tx: &LedgerTx,
    set: &Setting,
    prepared: Prepared,
    now: Timestamp,
    batch: &mut Batch,
) -> Result<(), LedgerError> {
    let Batch {
        work,
        followers,
        report,
        folders,
    } = batch;
    let Prepared {
        fetched,
        outcome,
        pdf_sha,
        key,
    } = prepared;
    let item = fetched.item().to_string();
    let Some(mut outcome) = outcome else {
        // Ignored from its headers alone.
        if let Fetched::Ignored { reason, .. } = &fetched {
            ignore(tx, set, &item, reason.as_str(), now, report)?;
        }
        return Ok(());
    };
    if let Decision::Ignore { reason } = outcome.decision {
        return ignore(tx, set, &item, reason.as_str(), now, report);
    }
    let headers = fetched.bytes();
    let pdf = Content::new(outcome.cert.pdf.take().unwrap_or_default());

    if let Some(known) = tx.by_content(&key)? {
        if known.state.is_finished() {
            return duplicate(tx, set, &item, &known, headers, now, report);
        }
        if work.iter().any(|w| w.certificate == known.id) {
            tx.set_message(
                set.mailbox,
                &item,
                Disposition::Duplicate,
                None,
                Some(known.id),
                now.as_second(),
            )?;
            followers.push(Ack {
                item,
                target: super::ack_target(known.state),
                certificate: known.id,
                message_id: mime::parse_headers(headers).and_then(|m| m.message_id),
            });
            return Ok(());
        }
        // Interrupted before it was written: written again from the same message, decided as
        // it was at its first reception.
        let Some(row) = tx.certificate(known.id)? else {
            return Ok(());
        };
        let received_at = Timestamp::from_second(row.received_at).unwrap_or(now);
        let outcome = if received_at == now {
            outcome
        } else {
            outcome_of(&fetched, set, received_at).unwrap_or(outcome)
        };
        let sil_pdf = sil_pdf_name(tx, known.id);
        let mut copies = Vec::new();
        for mut copy in tx.copies(known.id)? {
            let content = if copy.state == CopyState::Planned {
                let message = Message {
                    fetched: &fetched,
                    outcome: &outcome,
                    pdf: &pdf,
                    pdf_sha: pdf_sha.as_ref(),
                    received_at,
                };
                let c = render(copy.kind, &message, known.id, &sil_pdf, set);
                let sha = content_sha(copy.kind, &c, pdf_sha.as_ref());
                if sha != copy.sha256 {
                    tx.set_copy_sha256(copy.id, &sha)?;
                    copy.sha256 = sha;
                }
                Some(c)
            } else {
                None
            };
            copies.push((copy, content));
        }
        tx.set_message(
            set.mailbox,
            &item,
            Disposition::Pending,
            None,
            Some(known.id),
            now.as_second(),
        )?;
        let facts = row.facts();
        work.push(work_for(item, known.id, &outcome, copies, facts));
        return Ok(());
    }

    let hmac = outcome
        .cert
        .site
        .as_ref()
        .zip(outcome.cert.dossier.as_ref())
        .map(|(site, dossier)| pseudonym(set.secret, site.as_str(), dossier));
    if let (Decision::Deliver { .. }, Some(hmac), Some(pdf_sha)) =
        (&outcome.decision, &hmac, &pdf_sha)
        && let Some(known) = tx.by_pdf(hmac, pdf_sha)?
        && known.state.is_finished()
    {
        return duplicate(tx, set, &item, &known, headers, now, report);
    }

    // Already due when it arrives (sampled long ago): never written, nothing kept.
    if let Some(due) = outcome.decision.purge_at()
        && due <= now
    {
        let late = NotDelivered {
            item: &item,
            outcome: &outcome,
            key,
            pdf_sha,
            hmac: hmac.as_deref(),
            headers,
        };
        return late.record(tx, set, now, CertState::Expired, None, report);
    }

    // A re-send (SPEC §2, the XMAJ flow): a newer integration date replaces the delivered
    // certificate, an older one is not delivered, and when the dates cannot tell, a person does.
    let mut replaces = None;
    if let (Decision::Deliver { .. }, Some(hmac)) = (&outcome.decision, &hmac)
        && let Some(old) = tx.live_by_dossier(hmac)?
    {
        let newer = outcome.cert.integrated_at.map(Timestamp::as_second);
        match (newer, old.integrated_at) {
            (Some(n), Some(o)) if n > o => replaces = Some(old),
            (Some(n), Some(o)) if n < o => {
                let stale = NotDelivered {
                    item: &item,
                    outcome: &outcome,
                    key,
                    pdf_sha,
                    hmac: Some(hmac),
                    headers,
                };
                return stale.record(tx, set, now, CertState::Stale, Some(old.id), report);
            }
            _ => requarantine(
                &mut outcome,
                &super::context(set, now),
                Reason::AmbiguousResend,
                "a certificate for this site and dossier was already delivered; the \
                 integration dates do not tell which is newer",
            ),
        }
    }

    let id = tx.insert_certificate(&new_certificate(&outcome, key, pdf_sha, hmac.clone(), now))?;
    let facts = facts_of(id, &outcome, hmac);
    tx.audit(&facts.body(Event::Received, now, set.tz))?;
    if let Some(old) = replaces {
        supersede(tx, set, &old, id, now, work, report)?;
    }
    let have_raw = matches!(fetched, Fetched::Whole { .. });
    let message = Message {
        fetched: &fetched,
        outcome: &outcome,
        pdf: &pdf,
        pdf_sha: pdf_sha.as_ref(),
        received_at: now,
    };
    let copies = plan_copies(tx, set, id, &message, have_raw, folders)?;
    tx.set_message(
        set.mailbox,
        &item,
        Disposition::Pending,
        None,
        Some(id),
        now.as_second(),
    )?;
    work.push(work_for(item, id, &outcome, copies, facts));
    Ok(())
}

fn ignore(
    tx: &LedgerTx,
    set: &Setting,
    item: &str,
    reason: &str,
    now: Timestamp,
    report: &mut BatchReport,
) -> Result<(), LedgerError> {
    tx.set_message(
        set.mailbox,
        item,
        Disposition::Ignored,
        Some(reason),
        None,
        now.as_second(),
    )?;
    report.ignored += 1;
    Ok(())
}

/// What identifies a message's content for the ledger: the hash of every raw byte. It is
/// stored with each certificate and looked up when a message is read again (after an
/// interruption, or re-sent), so it must stay the same from one version to the next: a
/// message delivered before an upgrade and read again after it must still be recognised.
fn content_key(fetched: &Fetched) -> [u8; 32] {
    sha256(fetched.bytes())
}

/// A message whose certificate is already finished: recorded as a duplicate, and
/// acknowledged where its certificate's message went.
fn duplicate(
    tx: &LedgerTx,
    set: &Setting,
    item: &str,
    known: &CertificateRef,
    bytes: &[u8],
    now: Timestamp,
    report: &mut BatchReport,
) -> Result<(), LedgerError> {
    tx.set_message(
        set.mailbox,
        item,
        Disposition::Duplicate,
        None,
        Some(known.id),
        now.as_second(),
    )?;
    report.duplicates += 1;
    report.acks.push(Ack {
        item: item.to_string(),
        target: super::ack_target(known.state),
        certificate: known.id,
        message_id: mime::parse_headers(bytes).and_then(|m| m.message_id),
    });
    Ok(())
}

fn work_for(
    item: String,
    id: i64,
    outcome: &Outcome,
    copies: Vec<(CopyRow, Option<Content>)>,
    facts: Facts,
) -> Work {
    Work {
        facts,
        item,
        certificate: id,
        finished: finished_state(&outcome.decision),
        site: match &outcome.decision {
            Decision::Deliver { site, .. } => Some(site.clone()),
            _ => outcome.cert.site.clone(),
        },
        reason: outcome.decision.reason(),
        message_id: outcome.cert.message_id.clone(),
        copies,
        failed: None,
        failure: None,
    }
}
