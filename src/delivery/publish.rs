//! Steps 2 and 3 of a delivery: every file written under its temporary name and synced
//! (several at once), then renamed into place without clobbering, sidecars before their PDFs.

use std::path::Path;

use super::*;

/// Writes every copy that has content under its temporary name, then makes them durable
/// together (`spool::sync_together`: one journal commit for the batch where the file system
/// allows it, not one per file).
pub(super) fn stage(set: &Setting, work: &mut [Work], folders: &mut spool::Folders) {
    let mut written: Vec<(usize, std::path::PathBuf, std::fs::File)> = Vec::new();
    for (i, w) in work.iter_mut().enumerate() {
        let access = set.access(w.site.as_ref());
        let result = w.copies.iter_mut().try_for_each(|(copy, content)| {
            let Some(bytes) = content else { return Ok(()) };
            let access = if copy.kind.is_quarantine() {
                Access::default()
            } else {
                access
            };
            let dir = folders.get(copy.kind, &copy.path, access)?;
            let (id, file) = dir.stage(&spool::file_name(&copy.temp), bytes, access)?;
            copy.file = Some(id);
            written.push((i, dir.path().to_path_buf(), file));
            Ok::<(), DirError>(())
        });
        if let Err(e) = result {
            fail(w, &e);
        }
    }
    let files: Vec<&std::fs::File> = written.iter().map(|(_, _, f)| f).collect();
    let synced = spool::sync_together(&files);
    for ((i, dir, _), result) in written.iter().zip(synced) {
        if let Err(e) = result
            && work[*i].failed.is_none()
        {
            let e = DirError {
                what: "cannot sync a file",
                dir: dir.clone(),
                source: e.into(),
            };
            fail(&mut work[*i], &e);
        }
    }
}

/// A certificate whose files could not be written: an ALERT naming the folder (never the
/// file), and the certificate is retried at the next pass.
fn fail(w: &mut Work, e: &DirError) {
    if e.is_refused() {
        tracing::error!(
            certificate = w.certificate,
            "ALERT: {e}; nothing was written there, the certificate is retried at the next \
             pass; remove what stands there"
        );
    } else {
        tracing::error!(
            certificate = w.certificate,
            "ALERT: delivery failed: {e}; the certificate is retried at the next pass"
        );
    }
    w.failed = Some(e.to_string());
    w.failure = Some(e.into());
}

/// Renames staged copies into place, sidecars first, syncing folders between the ranks.
pub(super) fn publish(
    work: &mut [Work],
    ledger: &mut Ledger,
    folders: &mut spool::Folders,
) -> Result<(), DeliveryError> {
    for rank in [0u8, 1] {
        let mut syncs = Syncs::default();
        for w in work.iter_mut().filter(|w| w.failed.is_none()) {
            for i in 0..w.copies.len() {
                if w.copies[i].0.kind.publish_rank() != rank {
                    continue;
                }
                match publish_copy(w, i, ledger, folders) {
                    Ok(Some(dir)) => syncs.add(dir)?,
                    Ok(None) => {}
                    Err(DeliveryError::Spool(e)) => {
                        fail(w, &e);
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        syncs.run()?;
    }
    Ok(())
}

/// Publishes copy `i` of `w`, choosing another name if its own was taken meanwhile; returns
/// the folder to sync.
fn publish_copy(
    w: &mut Work,
    i: usize,
    ledger: &mut Ledger,
    folders: &mut spool::Folders,
) -> Result<Option<std::sync::Arc<spool::Dir>>, DeliveryError> {
    let copy = w.copies[i].0.clone();
    if copy.state == CopyState::Published {
        return Ok(None);
    }
    let dir = folders.get(copy.kind, &copy.path, Access::default())?;
    let temp = spool::file_name(&copy.temp);
    if copy.state == CopyState::Staged && dir.file_id(&temp)?.is_none_or(|id| Some(id) != copy.file)
    {
        // Published by an earlier run (and maybe already taken by the SIL), or moved away by
        // the site's staff: found again by its identity. Whatever stands at the temporary
        // name now is not ours to rename.
        return Ok(Some(dir));
    }
    let mut target = copy.path.clone();
    for _ in 0..100 {
        let to = spool::file_name(&target);
        match publish_or_adopt(&dir, &temp, &to, &mut w.copies[i].0, ledger)? {
            Published::Done | Published::AlreadyThere => {
                if target != copy.path {
                    let tx = ledger.tx()?;
                    tx.set_copy_path(copy.id, &target)?;
                    tx.commit()?;
                    w.copies[i].0.path = target.clone();
                    follow_stem(w, i, ledger)?;
                }
                return Ok(Some(dir));
            }
            Published::NameTaken => {
                let tx = ledger.tx()?;
                target = plan::free_name(&tx, copy.kind, &copy.path, 2, folders)?;
                tx.commit()?;
            }
        }
    }
    Err(DeliveryError::Spool(DirError {
        what: "no free file name",
        dir: dir.path().to_path_buf(),
        source: std::io::Error::other("every candidate name is taken"),
    }))
}

/// `Dir::publish` of a copy's temporary file to `to`. Where the copy's content was already
/// there (renamed by a run whose record of the staging was lost), that file is the copy now,
/// and the one the purge removes: its identity is recorded.
pub(super) fn publish_or_adopt(
    dir: &spool::Dir,
    temp: &str,
    to: &str,
    copy: &mut CopyRow,
    ledger: &mut Ledger,
) -> Result<Published, DeliveryError> {
    let published = dir.publish(temp, to, &copy.sha256)?;
    if published == Published::AlreadyThere
        && let Some(id) = dir.file_id(to)?
        && copy.file != Some(id)
    {
        let tx = ledger.tx()?;
        tx.set_copy_file(copy.id, id)?;
        tx.commit()?;
        copy.file = Some(id);
    }
    Ok(published)
}

/// A SIL PDF renamed at publication takes its (already published) sidecar along, so both keep
/// one stem.
fn follow_stem(w: &mut Work, i: usize, ledger: &mut Ledger) -> Result<(), DeliveryError> {
    if w.copies[i].0.kind != CopyKind::SilPdf {
        return Ok(());
    }
    let pdf = w.copies[i].0.path.clone();
    let Some(j) = w
        .copies
        .iter()
        .position(|(c, _)| c.kind == CopyKind::SilJson)
    else {
        return Ok(());
    };
    let sidecar = w.copies[j].0.clone();
    let wanted = pdf.with_file_name(crate::core::layout::sidecar_name(file_name(&pdf)));
    if wanted == sidecar.path {
        return Ok(());
    }
    let dir = spool::folder(sidecar.kind, &sidecar.path, Access::default())?;
    let current = spool::file_name(&sidecar.path);
    if dir
        .file_id(&current)?
        .is_none_or(|id| Some(id) != sidecar.file)
    {
        return Ok(());
    }
    if dir.publish(&current, &spool::file_name(&wanted), &sidecar.sha256)? == Published::Done {
        let tx = ledger.tx()?;
        tx.set_copy_path(sidecar.id, &wanted)?;
        tx.commit()?;
        w.copies[j].0.path = wanted;
    }
    Ok(())
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}
