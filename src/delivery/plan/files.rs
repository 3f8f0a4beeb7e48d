//! A certificate's files: what each is called (a free name, kept free until it is written)
//! and the bytes it will hold.

use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::core::Outcome;
use crate::core::documents;
use crate::core::filename::with_counter;
use crate::core::layout::{self, CopyKind, Target};
use crate::delivery::spool::{Folders, sha256};
use crate::delivery::{Content, Fetched, Setting};
use crate::ledger::{CopyRow, CopyState, LedgerError, LedgerRead, LedgerTx, NewCopy};

/// What a certificate's files are made from: its message, decided.
pub(in crate::delivery) struct Message<'a> {
    pub fetched: &'a Fetched,
    pub outcome: &'a Outcome,
    /// The PDF, shared by the copies that hold it, and its hash.
    pub pdf: &'a Content,
    pub pdf_sha: Option<&'a [u8; 32]>,
    /// When the message was received (the quarantine's reason file says it).
    pub received_at: Timestamp,
}

/// Reserves the names of a certificate's files and records them as planned, with the bytes
/// each will hold. `have_raw`: the whole message is at hand (a quarantine keeps it).
pub(in crate::delivery) fn plan_copies(
    tx: &LedgerTx,
    set: &Setting,
    id: i64,
    message: &Message,
    have_raw: bool,
    folders: &mut Folders,
) -> Result<Vec<(CopyRow, Option<Content>)>, LedgerError> {
    let targets = layout::targets(message.outcome, id, set.config, set.tz, have_raw);
    let names = choose_names(tx, &targets, folders)?;
    let sil_pdf = targets
        .iter()
        .zip(&names)
        .find(|(t, _)| t.kind == CopyKind::SilPdf)
        .and_then(|(_, n)| n.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut copies = Vec::new();
    for (target, path) in targets.iter().zip(names) {
        let content = render(target.kind, message, id, &sil_pdf, set);
        let new = NewCopy {
            kind: target.kind,
            temp: target
                .dir
                .join(format!(".mss-dispatch.{id}.{}.part", target.kind.as_str())),
            path,
            sha256: content_sha(target.kind, &content, message.pdf_sha),
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

/// A copy's hash: a PDF copy holds the PDF, hashed once already.
pub(super) fn content_sha(kind: CopyKind, content: &[u8], pdf_sha: Option<&[u8; 32]>) -> [u8; 32] {
    match (kind, pdf_sha) {
        (CopyKind::Spool | CopyKind::SilPdf, Some(h)) => *h,
        _ => sha256(content),
    }
}

/// Free names for the targets; a SIL sidecar and its PDF move together to keep one stem.
fn choose_names(
    tx: &LedgerTx,
    targets: &[Target],
    folders: &mut Folders,
) -> Result<Vec<PathBuf>, LedgerError> {
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
                if is_free(tx, t.kind, &json, folders)?
                    && is_free(tx, pdf.kind, &pdf_path, folders)?
                {
                    out.push(json);
                    out.push(pdf_path);
                    break;
                }
                n += 1;
            }
            i += 2;
        } else {
            out.push(free_name(tx, t.kind, &t.dir.join(&t.name), 1, folders)?);
            i += 1;
        }
    }
    Ok(out)
}

/// The first of `NAME`, `NAME (2)`, … (from counter `start`) that no file and no copy holds.
/// The first free name of `path`'s folder made from its name with a counter from `start`
/// (`NAME (2).pdf`, …).
pub(in crate::delivery) fn free_name(
    tx: &LedgerTx,
    kind: CopyKind,
    path: &Path,
    start: u32,
    folders: &mut Folders,
) -> Result<PathBuf, LedgerError> {
    let name = crate::delivery::spool::file_name(path);
    let mut n = start;
    loop {
        let candidate = path.with_file_name(with_counter(&name, n));
        if is_free(tx, kind, &candidate, folders)? {
            return Ok(candidate);
        }
        n += 1;
    }
}

/// No file there (looked at without following links) and no live copy claims it.
fn is_free(
    tx: &LedgerTx,
    kind: CopyKind,
    path: &Path,
    folders: &mut Folders,
) -> Result<bool, LedgerError> {
    Ok(folders.name_free(kind, path) && !tx.path_taken(path)?)
}

pub(super) fn sil_pdf_name(tx: &LedgerTx, certificate: i64) -> String {
    tx.copies(certificate)
        .ok()
        .and_then(|c| c.into_iter().find(|c| c.kind == CopyKind::SilPdf))
        .and_then(|c| c.path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

/// The bytes of one copy; the PDF is shared between its copies.
pub(super) fn render(
    kind: CopyKind,
    message: &Message,
    certificate: i64,
    sil_pdf: &str,
    set: &Setting,
) -> Content {
    let outcome = message.outcome;
    match kind {
        CopyKind::Spool | CopyKind::SilPdf => Content::clone(message.pdf),
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
        CopyKind::QuarantineEml => Content::new(match message.fetched {
            Fetched::Whole { raw, .. } => raw.clone(),
            _ => Vec::new(),
        }),
        CopyKind::QuarantineJson => {
            let source = format!("{} {}", set.mailbox.mailbox, message.fetched.item());
            Content::new(documents::reason_file(
                outcome,
                certificate,
                message.received_at,
                &source,
                set.tz,
            ))
        }
    }
}
