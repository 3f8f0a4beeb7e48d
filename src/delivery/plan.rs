//! Planning a batch: recognising known messages, deciding new ones, reserving file names and
//! rendering the bytes each file will hold.

use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::{
    Ack, AckTarget, Batch, BatchReport, Content, Fetched, Setting, Work, finished_state, outcome_of,
};
use crate::core::audit::{Event, Facts, pseudonym};
use crate::core::decide::requarantine;
use crate::core::documents;
use crate::core::filename::with_counter;
use crate::core::layout::{self, CopyKind, Target};
use crate::core::{Decision, Outcome, Reason, mime};
use crate::delivery::spool::{sha256, sha256_parts};
use crate::ledger::{
    CertState, CertificateRow, CopyRow, CopyState, Disposition, LedgerError, LedgerRead, LedgerTx,
    NewCertificate, NewCopy,
};

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
                Some(o) => content_key(&fetched, o, pdf_sha.as_ref()),
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
            return duplicate(tx, set, &item, known.id, known.state, headers, now, report);
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
                let c = render(
                    copy.kind,
                    &outcome,
                    &pdf,
                    known.id,
                    &sil_pdf,
                    &fetched,
                    set,
                    received_at,
                );
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
        return duplicate(tx, set, &item, known.id, known.state, headers, now, report);
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
    let copies = plan_copies(
        tx,
        set,
        id,
        &outcome,
        &pdf,
        pdf_sha.as_ref(),
        &fetched,
        now,
        have_raw,
    )?;
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

/// Reserves the names of a certificate's files and records them as planned, with the bytes
/// each will hold.
#[allow(clippy::too_many_arguments)]
pub(super) fn plan_copies(
    tx: &LedgerTx,
    set: &Setting,
    id: i64,
    outcome: &Outcome,
    pdf: &Content,
    pdf_sha: Option<&[u8; 32]>,
    fetched: &Fetched,
    received_at: Timestamp,
    have_raw: bool,
) -> Result<Vec<(CopyRow, Option<Content>)>, LedgerError> {
    let targets = layout::targets(outcome, id, set.config, set.tz, have_raw);
    let names = choose_names(tx, &targets)?;
    let sil_pdf = targets
        .iter()
        .zip(&names)
        .find(|(t, _)| t.kind == CopyKind::SilPdf)
        .and_then(|(_, n)| n.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut copies = Vec::new();
    for (target, path) in targets.iter().zip(names) {
        let content = render(
            target.kind,
            outcome,
            pdf,
            id,
            &sil_pdf,
            fetched,
            set,
            received_at,
        );
        let new = NewCopy {
            kind: target.kind,
            temp: target
                .dir
                .join(format!(".mss-dispatch.{id}.{}.part", target.kind.as_str())),
            path,
            sha256: content_sha(target.kind, &content, pdf_sha),
        };
        let copy_id = tx.insert_copy(id, &new)?;
        copies.push((
            CopyRow {
                id: copy_id,
                kind: new.kind,
                path: new.path,
                temp: new.temp,
                sha256: new.sha256,
                state: CopyState::Planned,
                file: None,
            },
            Some(content),
        ));
    }
    Ok(copies)
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

/// What identifies a message's content for the ledger: every raw byte, except that the
/// PDF's encoded body counts through the hash of the decoded PDF (already computed), so the
/// largest part of the message is hashed once, not twice.
fn content_key(fetched: &Fetched, outcome: &Outcome, pdf_sha: Option<&[u8; 32]>) -> [u8; 32] {
    let bytes = fetched.bytes();
    match (&outcome.cert.pdf_range, pdf_sha, fetched) {
        (Some(r), Some(h), Fetched::Whole { .. }) if r.start <= r.end && r.end <= bytes.len() => {
            sha256_parts(&[&bytes[..r.start], h, &bytes[r.end..]])
        }
        _ => sha256(bytes),
    }
}

/// A copy's hash: a PDF copy holds the PDF, hashed once already.
fn content_sha(kind: CopyKind, content: &[u8], pdf_sha: Option<&[u8; 32]>) -> [u8; 32] {
    match (kind, pdf_sha) {
        (CopyKind::Spool | CopyKind::SilPdf, Some(h)) => *h,
        _ => sha256(content),
    }
}

#[allow(clippy::too_many_arguments)]
fn duplicate(
    tx: &LedgerTx,
    set: &Setting,
    item: &str,
    certificate: i64,
    state: CertState,
    bytes: &[u8],
    now: Timestamp,
    report: &mut BatchReport,
) -> Result<(), LedgerError> {
    tx.set_message(
        set.mailbox,
        item,
        Disposition::Duplicate,
        None,
        Some(certificate),
        now.as_second(),
    )?;
    report.duplicates += 1;
    report.acks.push(Ack {
        item: item.to_string(),
        target: super::ack_target(state),
        certificate,
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

pub(super) fn facts_of(id: i64, outcome: &Outcome, dossier_hmac: Option<String>) -> Facts {
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
pub(super) fn supersede(
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
struct NotDelivered<'a> {
    item: &'a str,
    outcome: &'a Outcome,
    key: [u8; 32],
    pdf_sha: Option<[u8; 32]>,
    hmac: Option<&'a str>,
    headers: &'a [u8],
}

impl NotDelivered<'_> {
    fn record(
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
        (
            row.dossier,
            row.nom,
            row.prenom,
            row.sexe,
            row.birth_date,
            row.ins,
        ) = (None, None, None, None, None, None);
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

fn new_certificate(
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
        dossier: c.dossier.clone(),
        nom: c.nom.clone(),
        prenom: c.prenom.clone(),
        sexe: c.body.sexe.clone(),
        birth_date: c.body.birth_date.clone(),
        ins: c.body.ins.clone(),
    }
}

/// Free names for the targets; a SIL sidecar and its PDF move together to keep one stem.
fn choose_names(tx: &LedgerTx, targets: &[Target]) -> Result<Vec<PathBuf>, LedgerError> {
    let mut out: Vec<PathBuf> = Vec::with_capacity(targets.len());
    let mut i = 0;
    while i < targets.len() {
        let t = &targets[i];
        let pair = t.kind == CopyKind::SilJson
            && targets
                .get(i + 1)
                .is_some_and(|n| n.kind == CopyKind::SilPdf);
        if pair {
            let pdf = &targets[i + 1];
            let mut n = 1;
            loop {
                let json = t.dir.join(with_counter(&t.name, n));
                let pdf_path = pdf.dir.join(with_counter(&pdf.name, n));
                if is_free(tx, t.kind, &json)? && is_free(tx, pdf.kind, &pdf_path)? {
                    out.push(json);
                    out.push(pdf_path);
                    break;
                }
                n += 1;
            }
            i += 2;
        } else {
            out.push(free_name(tx, t.kind, &t.dir.join(&t.name), 1)?);
            i += 1;
        }
    }
    Ok(out)
}

/// The first of `NAME`, `NAME (2)`, … (from counter `start`) that no file and no copy holds.
/// The first free name of `path`'s folder made from its name with a counter from `start`
/// (`NAME (2).pdf`, …).
pub(super) fn free_name(
    tx: &LedgerTx,
    kind: CopyKind,
    path: &Path,
    start: u32,
) -> Result<PathBuf, LedgerError> {
    let name = crate::delivery::spool::file_name(path);
    let mut n = start;
    loop {
        let candidate = path.with_file_name(with_counter(&name, n));
        if is_free(tx, kind, &candidate)? {
            return Ok(candidate);
        }
        n += 1;
    }
}

/// No file there (looked at without following links) and no live copy claims it.
fn is_free(tx: &LedgerTx, kind: CopyKind, path: &Path) -> Result<bool, LedgerError> {
    Ok(crate::delivery::spool::name_free(kind, path) && !tx.path_taken(path)?)
}

fn sil_pdf_name(tx: &LedgerTx, certificate: i64) -> String {
    tx.copies(certificate)
        .ok()
        .and_then(|c| c.into_iter().find(|c| c.kind == CopyKind::SilPdf))
        .and_then(|c| c.path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

/// The bytes of one copy; the PDF is shared between its copies.
#[allow(clippy::too_many_arguments)]
fn render(
    kind: CopyKind,
    outcome: &Outcome,
    pdf: &Content,
    certificate: i64,
    sil_pdf: &str,
    fetched: &Fetched,
    set: &Setting,
    received_at: Timestamp,
) -> Content {
    match kind {
        CopyKind::Spool | CopyKind::SilPdf => Content::clone(pdf),
        CopyKind::SilJson => {
            let site_name = outcome
                .cert
                .site
                .as_ref()
                .and_then(|f| set.config.site(f))
                .map_or("", |s| s.name.as_str());
            Content::new(documents::sidecar(
                outcome,
                certificate,
                site_name,
                sil_pdf,
                set.tz,
            ))
        }
        CopyKind::QuarantineEml => Content::new(match fetched {
            Fetched::Whole { raw, .. } => raw.clone(),
            _ => Vec::new(),
        }),
        CopyKind::QuarantineJson => {
            let source = format!("{} {}", set.mailbox.mailbox, fetched.item());
            Content::new(documents::reason_file(
                outcome,
                certificate,
                received_at,
                &source,
                set.tz,
            ))
        }
    }
}
