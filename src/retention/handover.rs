//! Hand-over tracking: when the SIL takes a file from its drop folder, or site staff delete
//! one from a spool after printing it, the ledger records it (`handed_to_sil`,
//! `removed_by_site`) and stops counting the copy as ours. Two sources, since watch events
//! can be lost (inotify overflows, network file systems): a `notify` watcher on
//! the folders, and a rolling reconcile that checks a bounded slice of the published copies at
//! every purge pass, so that a pass still costs about the same whatever is held. A copy is
//! taken only when its file is nowhere in its tree: a file staff moved into a sub-folder of
//! their site (`imprimes/`) is still the service's, and still purged at its due time.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, channel};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use notify::event::{ModifyKind, RenameMode};
use notify::{Event as FsEvent, EventKind, RecursiveMode, Watcher as _};

use crate::core::audit::Event;
use crate::core::config::Config;
use crate::delivery::spool::Finder;
use crate::ledger::{
    CertificateRow, CopyRow, CopyState, Ledger, LedgerError, LedgerRead, LedgerTx,
};
use crate::system::dir::TEMP_PREFIX;

/// Published copies checked per reconcile slice.
pub const RECONCILE_SLICE: usize = 2000;
use crate::ledger::meta::RECONCILE_CURSOR as CURSOR;

/// What the watcher reports.
pub enum Signal {
    /// Paths removed or renamed away.
    Gone(Vec<PathBuf>),
    /// Events were lost: everything should be looked at again.
    Rescan,
}

/// Watches the site folders; dropping it stops the watch.
pub struct Watcher {
    _watcher: notify::RecommendedWatcher,
    rx: Receiver<Signal>,
}

impl Watcher {
    /// Watches every site's spool (with its day folders) and SIL folder that exists.
    pub fn start(config: &Config) -> Option<Watcher> {
        let (tx, rx) = channel();
        // Each event is looked at as it comes, in the watcher's thread, and dropped unless it
        // may have taken a file away: the service's own writes during a drain are thousands
        // of events, and none is kept.
        let watcher = notify::recommended_watcher(move |result: notify::Result<FsEvent>| {
            let signal = match result {
                Ok(event) if event.need_rescan() => Signal::Rescan,
                Ok(event) => match taken_away(&event) {
                    Some(path) => Signal::Gone(vec![path.to_path_buf()]),
                    None => return,
                },
                Err(_) => Signal::Rescan,
            };
            let _ = tx.send(signal);
        });
        let mut watcher = match watcher {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the site folders; relying on reconcile");
                return None;
            }
        };
        let mut dirs: Vec<(PathBuf, RecursiveMode)> = Vec::new();
        for site in &config.sites {
            if let Some(spool) = &site.spool {
                dirs.push((spool.clone(), RecursiveMode::Recursive));
            }
            if let Some(sil) = &site.sil
                && !dirs.iter().any(|(d, _)| d == sil)
            {
                dirs.push((sil.clone(), RecursiveMode::NonRecursive));
            }
        }
        for (dir, mode) in dirs {
            if !dir.is_dir() {
                continue;
            }
            if let Err(e) = watcher.watch(&dir, mode) {
                tracing::warn!(folder = %dir.display(), error = %e,
                    "cannot watch a folder; relying on reconcile");
            }
        }
        Some(Watcher {
            _watcher: watcher,
            rx,
        })
    }

    /// What happened since the last call: removed paths, and whether to rescan.
    pub fn take(&self) -> (Vec<PathBuf>, bool) {
        let mut paths = Vec::new();
        let mut rescan = false;
        while let Ok(signal) = self.rx.try_recv() {
            match signal {
                Signal::Gone(p) => paths.extend(p),
                Signal::Rescan => rescan = true,
            }
        }
        (paths, rescan)
    }
}

/// The path an event may have taken a published file away from: a removal, or the old name
/// of a rename, unless it is one of the service's own staging files (publishing a file is
/// such a rename). Writes, attribute changes, creations and new names are not looked at:
/// during a drain they are the service's own, thousands of them.
fn taken_away(e: &FsEvent) -> Option<&std::path::Path> {
    let path = e.paths.first()?;
    let ours = path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(TEMP_PREFIX));
    match e.kind {
        EventKind::Remove(_) => Some(path),
        EventKind::Modify(ModifyKind::Name(RenameMode::From | RenameMode::Any)) if !ours => {
            Some(path)
        }
        _ => None,
    }
}

/// Whether a published copy's file has left its tree: not at its place, nor anywhere the
/// site could have moved it in its folder (a file moved into a sub-folder is still there,
/// and still purged at its due time). Unknown (false) when part of the tree cannot be read.
fn gone(finder: &mut Finder, copy: &CopyRow) -> bool {
    finder
        .locate(copy.kind, &copy.path, &copy.temp, copy.file)
        .is_ok_and(|l| l.at.is_empty() && l.complete)
}

/// Records the published copies among `paths` that are indeed gone.
pub fn record_paths(
    ledger: &mut Ledger,
    paths: &[PathBuf],
    now: Timestamp,
    tz: &TimeZone,
) -> Result<usize, LedgerError> {
    let mut finder = Finder::default();
    let mut found = Vec::new();
    for p in paths {
        if let Some(hit) = ledger.published_at(p)?
            && gone(&mut finder, &hit.1)
        {
            found.push(hit);
        }
    }
    record(ledger, found, now, tz)
}

/// Checks the next slice of published copies, from where the last slice stopped.
pub fn reconcile(
    ledger: &mut Ledger,
    now: Timestamp,
    tz: &TimeZone,
    limit: usize,
) -> Result<usize, LedgerError> {
    let cursor: i64 = ledger
        .meta(CURSOR)?
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let slice = ledger.published_after(cursor, limit)?;
    let next = if slice.len() < limit {
        0
    } else {
        slice.last().map_or(0, |(_, c)| c.id)
    };
    let mut finder = Finder::default();
    let taken: Vec<_> = slice
        .into_iter()
        .filter(|(_, c)| gone(&mut finder, c))
        .collect();
    let n = record(ledger, taken, now, tz)?;
    let tx = ledger.tx()?;
    tx.set_meta(CURSOR, &next.to_string())?;
    tx.commit()?;
    Ok(n)
}

/// Checks every published copy (at start-up, or after the watcher lost events).
pub fn reconcile_all(
    ledger: &mut Ledger,
    now: Timestamp,
    tz: &TimeZone,
) -> Result<usize, LedgerError> {
    let mut cursor = 0;
    let mut total = 0;
    let mut finder = Finder::default();
    loop {
        let slice = ledger.published_after(cursor, RECONCILE_SLICE)?;
        let Some((_, last)) = slice.last() else { break };
        cursor = last.id;
        let full = slice.len() == RECONCILE_SLICE;
        let taken: Vec<_> = slice
            .into_iter()
            .filter(|(_, c)| gone(&mut finder, c))
            .collect();
        total += record(ledger, taken, now, tz)?;
        if !full {
            break;
        }
    }
    Ok(total)
}

fn record(
    ledger: &mut Ledger,
    gone: Vec<(i64, crate::ledger::CopyRow)>,
    now: Timestamp,
    tz: &TimeZone,
) -> Result<usize, LedgerError> {
    if gone.is_empty() {
        return Ok(0);
    }
    let tx = ledger.tx()?;
    let mut n = 0;
    for (cert, copy) in &gone {
        if let Some(row) = tx.certificate(*cert)? {
            record_taken(&tx, &row, copy, now, tz)?;
            n += 1;
        }
    }
    tx.commit()?;
    Ok(n)
}

/// Records that the SIL took a file from its drop folder, or the site removed one from its
/// spool, and forgets the copy (it is not ours any more).
pub fn record_taken(
    tx: &LedgerTx,
    cert: &CertificateRow,
    copy: &CopyRow,
    now: Timestamp,
    tz: &TimeZone,
) -> Result<(), LedgerError> {
    use crate::core::layout::CopyKind;
    tx.set_copy_state(copy.id, CopyState::Gone)?;
    let event = match copy.kind {
        CopyKind::SilPdf => Event::HandedToSil,
        CopyKind::Spool => Event::RemovedBySite,
        // The sidecar goes with its PDF; quarantine files are the operators'.
        CopyKind::SilJson | CopyKind::QuarantineEml | CopyKind::QuarantineJson => return Ok(()),
    };
    tx.audit(&cert.facts().body(event, now, tz))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Collects what the watcher reports until `want` paths came or `secs` passed.
    fn collect(w: &Watcher, want: usize, secs: u64) -> Vec<PathBuf> {
        let mut all = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while all.len() < want && std::time::Instant::now() < deadline {
            let (paths, _) = w.take();
            all.extend(paths);
            std::thread::sleep(Duration::from_millis(100));
        }
        all
    }

    /// The service's own writes (a staged file renamed into place, its data and modes) are
    /// not reported; a file staff delete or move away is.
    #[test]
    fn the_watcher_reports_what_staff_take_away_and_not_the_services_own_writes() {
        use std::os::unix::fs::PermissionsExt;
        let f = crate::test_support::Fixture::new();
        let day = f.root.join("sites/690000880/2026-11-26");
        std::fs::create_dir_all(&day).unwrap();
        let w = Watcher::start(&f.config).expect("a watcher");
        for n in 0..50 {
            let temp = day.join(format!("{TEMP_PREFIX}{n}.part"));
            std::fs::write(&temp, b"%PDF-1.4").unwrap();
            std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o640)).unwrap();
            std::fs::rename(&temp, day.join(format!("DOE_John_{n}.pdf"))).unwrap();
        }
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            collect(&w, 1, 2),
            Vec::<PathBuf>::new(),
            "own writes reported"
        );

        std::fs::remove_file(day.join("DOE_John_1.pdf")).unwrap();
        std::fs::create_dir(day.join("imprimes")).unwrap();
        std::fs::rename(
            day.join("DOE_John_2.pdf"),
            day.join("imprimes/DOE_John_2.pdf"),
        )
        .unwrap();
        let seen = collect(&w, 2, 10);
        assert!(seen.contains(&day.join("DOE_John_1.pdf")), "{seen:?}");
        assert!(seen.contains(&day.join("DOE_John_2.pdf")), "{seen:?}");
    }
}
