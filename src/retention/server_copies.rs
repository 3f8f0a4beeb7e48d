//! The copies the product keeps on the mail server (DESIGN invariant 3): what to move (a
//! released quarantine) or delete (a certificate due) there, done through a source, and
//! the ledger's record of what became of each, with its lateness in the retention log. The
//! server being down only delays them.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::core::audit::Event;
use crate::core::config::Config;
use crate::ledger::{Ledger, LedgerError, LedgerRead, LedgerTx, ServerCopyRow};
use crate::source::{ServerCopy, Source, SourceError};

/// What to do on the server.
#[derive(Default)]
pub struct Work {
    /// Copies to move, with the folder they go to.
    pub moves: Vec<(ServerCopyRow, String)>,
    /// Copies to delete.
    pub deletions: Vec<ServerCopyRow>,
}

/// What was done, copy by copy.
#[derive(Default)]
pub struct Done {
    pub moved: Vec<(ServerCopyRow, Result<ServerCopy, SourceError>)>,
    pub deleted: Vec<(ServerCopyRow, Result<(), SourceError>)>,
}

impl Work {
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty() && self.deletions.is_empty()
    }

    /// Nothing could be done: every copy fails with `e`.
    pub fn fail(self, e: SourceError) -> Done {
        Done {
            moved: self
                .moves
                .into_iter()
                .map(|(c, _)| (c, Err(e.clone())))
                .collect(),
            deleted: self
                .deletions
                .into_iter()
                .map(|c| (c, Err(e.clone())))
                .collect(),
        }
    }
}

/// Does `work` through `src`: moves first, then deletions.
pub async fn apply<S: Source>(src: &mut S, work: Work) -> Done {
    let mut done = Done::default();
    let mut targets: Vec<String> = work.moves.iter().map(|(_, to)| to.clone()).collect();
    targets.sort_unstable();
    targets.dedup();
    for to in targets {
        let rows: Vec<ServerCopyRow> = work
            .moves
            .iter()
            .filter(|(_, t)| *t == to)
            .map(|(c, _)| c.clone())
            .collect();
        let copies: Vec<ServerCopy> = rows.iter().map(|r| r.copy.clone()).collect();
        let results = src.move_copies(&copies, &to).await;
        done.moved.extend(rows.into_iter().zip(results));
    }
    if !work.deletions.is_empty() {
        let copies: Vec<ServerCopy> = work.deletions.iter().map(|r| r.copy.clone()).collect();
        let results = src.purge_copies(&copies).await;
        done.deleted = work.deletions.into_iter().zip(results).collect();
    }
    done
}

/// Does `work` through a connection of its own, for a command run while no service runs (the
/// service does the same at its purge passes).
pub fn alone(config: &Config, work: Work) -> Done {
    if work.is_empty() {
        return Done::default();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return work.fail(SourceError::Transient(format!(
                "cannot start the runtime: {e}"
            )));
        }
    };
    runtime.block_on(async {
        let mut src = match crate::source::from_config(config, crate::source::Mode::Act) {
            Ok(s) => s,
            Err(e) => return work.fail(e),
        };
        if let Err(e) = src.open().await {
            return work.fail(e);
        }
        let done = apply(&mut src, work).await;
        src.close().await;
        done
    })
}

/// Records where released certificates' server copies went (or why they did not move).
pub fn record_moves(
    ledger: &mut Ledger,
    results: &[(ServerCopyRow, Result<ServerCopy, SourceError>)],
) -> Result<usize, LedgerError> {
    record_each(ledger, results, |tx, copy, moved| {
        tx.server_copy_moved(
            copy.id,
            &moved.folder,
            moved.validity.as_deref(),
            moved.item.as_deref(),
        )
    })
}

/// Records the outcome of deleting server copies.
pub fn record_server_results(
    ledger: &mut Ledger,
    results: &[(ServerCopyRow, Result<(), SourceError>)],
    now: Timestamp,
    tz: &TimeZone,
) -> Result<usize, LedgerError> {
    record_each(ledger, results, |tx, copy, ()| {
        tx.server_copy_purged(copy.id, now.as_second())?;
        let mut body = match tx.certificate(copy.certificate)? {
            Some(c) => c.facts().body(Event::ServerCopyPurged, now, tz),
            None => crate::core::audit::Body {
                time: crate::core::retention::rfc3339(now, tz),
                event: Some(Event::ServerCopyPurged),
                certificate: Some(copy.certificate),
                ..Default::default()
            },
        };
        body.folder = Some(copy.copy.folder.clone());
        body.due = Some(stamp(copy.due, tz));
        body.purged_at = Some(crate::core::retention::rfc3339(now, tz));
        body.lateness_seconds = Some((now.as_second() - copy.due).max(0));
        tx.audit(&body)?;
        Ok(())
    })
}

/// Records each copy's result in one transaction: `done` for a success, the error counted
/// against the copy otherwise. Returns how many succeeded.
fn record_each<T>(
    ledger: &mut Ledger,
    results: &[(ServerCopyRow, Result<T, SourceError>)],
    mut done: impl FnMut(&LedgerTx, &ServerCopyRow, &T) -> Result<(), LedgerError>,
) -> Result<usize, LedgerError> {
    if results.is_empty() {
        return Ok(0);
    }
    let tx = ledger.tx()?;
    let mut succeeded = 0;
    for (copy, result) in results {
        match result {
            Ok(value) => {
                done(&tx, copy, value)?;
                succeeded += 1;
            }
            Err(e) => tx.server_copy_failed(copy.id, &e.to_string())?,
        }
    }
    tx.commit()?;
    Ok(succeeded)
}

fn stamp(unix: i64, tz: &TimeZone) -> String {
    crate::core::retention::rfc3339(Timestamp::from_second(unix).unwrap_or_default(), tz)
}
