//! Planning a batch: recognising known messages, deciding new ones, reserving file names and
//! rendering the bytes each file will hold.

use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::{
    Ack, AckTarget, Batch, BatchReport, Fetched, Setting, Work, finished_state, outcome_of,
};
use crate::core::documents;
use crate::core::filename::with_counter;
use crate::core::layout::{self, CopyKind, Target};
use crate::core::{Decision, Outcome, mime};
use crate::ledger::{
    CertState, CopyRow, CopyState, Disposition, LedgerError, LedgerRead, LedgerTx, NewCertificate,
    NewCopy,
};
use crate::spool::sha256;

pub(super) fn plan_one(
    tx: &LedgerTx,
    set: &Setting,
    fetched: Fetched,
    now: Timestamp,
    batch: &mut Batch,
) -> Result<(), LedgerError> {
    let Batch {
        work,
        followers,
        report,
    } = batch;
    let item = fetched.item().to_string();
    let bytes = match &fetched {
        Fetched::Ignored { reason, .. } => {
            tx.set_message(
                set.mailbox,
                &item,
                Disposition::Ignored,
                Some(reason.as_str()),
                None,
                now.as_second(),
            )?;
            report.ignored += 1;
            return Ok(());
        }
        Fetched::Whole { raw, .. } => raw,
        Fetched::Oversized { headers, .. } | Fetched::Unfetchable { headers, .. } => headers,
    };
    let content_sha = sha256(bytes);

    if let Some(known) = tx.by_content(&content_sha)? {
        if known.state.is_finished() {
            return duplicate(tx, set, &item, known.id, known.state, bytes, now, report);
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
                target: AckTarget::for_state(known.state),
                certificate: known.id,
                message_id: mime::parse_headers(bytes).and_then(|m| m.message_id),
            });
            return Ok(());
        }
        let Some(row) = tx.certificate(known.id)? else {
            return Ok(());
        };
        let received_at = Timestamp::from_second(row.received_at).unwrap_or(now);
        let Some(outcome) = outcome_of(&fetched, set, received_at) else {
            return Ok(());
        };
        let copies = tx
            .copies(known.id)?
            .into_iter()
            .map(|copy| {
                let content = (copy.state == CopyState::Planned).then(|| {
                    let sil_pdf = sil_pdf_name(tx, known.id);
                    render(
                        copy.kind,
                        &outcome,
                        known.id,
                        &sil_pdf,
                        &fetched,
                        set,
                        received_at,
                    )
                });
                (copy, content)
            })
            .collect::<Vec<_>>();
        for (copy, content) in &copies {
            if let Some(c) = content {
                let sha = sha256(c);
                if sha != copy.sha256 {
                    tx.set_copy_sha256(copy.id, &sha)?;
                }
            }
        }
        let copies = copies
            .into_iter()
            .map(|(mut copy, content)| {
                if let Some(c) = &content {
                    copy.sha256 = sha256(c);
                }
                (copy, content)
            })
            .collect();
        tx.set_message(
            set.mailbox,
            &item,
            Disposition::Pending,
            None,
            Some(known.id),
            now.as_second(),
        )?;
        work.push(work_for(item, known.id, &outcome, copies));
        return Ok(());
    }

    let Some(outcome) = outcome_of(&fetched, set, now) else {
        return Ok(());
    };
    if let Decision::Ignore { reason } = outcome.decision {
        tx.set_message(
            set.mailbox,
            &item,
            Disposition::Ignored,
            Some(reason.as_str()),
            None,
            now.as_second(),
        )?;
        report.ignored += 1;
        return Ok(());
    }
    let pdf_sha = outcome.cert.pdf.as_deref().map(sha256);
    if let (Decision::Deliver { site, .. }, Some(dossier), Some(pdf_sha)) =
        (&outcome.decision, &outcome.cert.dossier, &pdf_sha)
        && let Some(known) = tx.by_pdf(site.as_str(), dossier, pdf_sha)?
        && known.state.is_finished()
    {
        return duplicate(tx, set, &item, known.id, known.state, bytes, now, report);
    }

    let id = tx.insert_certificate(&new_certificate(&outcome, content_sha, pdf_sha, now))?;
    let have_raw = matches!(fetched, Fetched::Whole { .. });
    let targets = layout::targets(&outcome, id, set.config, set.tz, have_raw);
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
        let content = render(target.kind, &outcome, id, &sil_pdf, &fetched, set, now);
        let new = NewCopy {
            kind: target.kind,
            temp: target
                .dir
                .join(format!(".mss-dispatch.{id}.{}.part", target.kind.as_str())),
            path,
            sha256: sha256(&content),
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
            },
            Some(content),
        ));
    }
    tx.set_message(
        set.mailbox,
        &item,
        Disposition::Pending,
        None,
        Some(id),
        now.as_second(),
    )?;
    work.push(work_for(item, id, &outcome, copies));
    Ok(())
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
        target: AckTarget::for_state(state),
        certificate,
        message_id: mime::parse_headers(bytes).and_then(|m| m.message_id),
    });
    Ok(())
}

fn work_for(
    item: String,
    id: i64,
    outcome: &Outcome,
    copies: Vec<(CopyRow, Option<Vec<u8>>)>,
) -> Work {
    Work {
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
    }
}

fn new_certificate(
    outcome: &Outcome,
    content_sha256: [u8; 32],
    pdf_sha256: Option<[u8; 32]>,
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
                if is_free(tx, &json)? && is_free(tx, &pdf_path)? {
                    out.push(json);
                    out.push(pdf_path);
                    break;
                }
                n += 1;
            }
            i += 2;
        } else {
            out.push(free_name(tx, &t.dir, &t.name, 1)?);
            i += 1;
        }
    }
    Ok(out)
}

/// The first of `NAME`, `NAME (2)`, … (from counter `start`) that no file and no copy holds.
pub(super) fn free_name(
    tx: &LedgerTx,
    dir: &Path,
    name: &str,
    start: u32,
) -> Result<PathBuf, LedgerError> {
    let mut n = start;
    loop {
        let candidate = dir.join(with_counter(name, n));
        if is_free(tx, &candidate)? {
            return Ok(candidate);
        }
        n += 1;
    }
}

fn is_free(tx: &LedgerTx, path: &Path) -> Result<bool, LedgerError> {
    Ok(!path.exists() && !tx.path_taken(path)?)
}

fn sil_pdf_name(tx: &LedgerTx, certificate: i64) -> String {
    tx.copies(certificate)
        .ok()
        .and_then(|c| c.into_iter().find(|c| c.kind == CopyKind::SilPdf))
        .and_then(|c| c.path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

/// The bytes of one copy.
fn render(
    kind: CopyKind,
    outcome: &Outcome,
    certificate: i64,
    sil_pdf: &str,
    fetched: &Fetched,
    set: &Setting,
    received_at: Timestamp,
) -> Vec<u8> {
    match kind {
        CopyKind::Spool | CopyKind::SilPdf => outcome.cert.pdf.clone().unwrap_or_default(),
        CopyKind::SilJson => {
            let site_name = outcome
                .cert
                .site
                .as_ref()
                .and_then(|f| set.config.site(f))
                .map_or("", |s| s.name.as_str());
            documents::sidecar(outcome, certificate, site_name, sil_pdf, set.tz)
        }
        CopyKind::QuarantineEml => match fetched {
            Fetched::Whole { raw, .. } => raw.clone(),
            _ => Vec::new(),
        },
        CopyKind::QuarantineJson => {
            let source = format!("{} {}", set.mailbox.mailbox, fetched.item());
            documents::reason_file(outcome, certificate, received_at, &source, set.tz)
        }
    }
}
