//! The purger inside `run`: a pass at start and every `retention.check_interval`, whether the
//! server is reachable or not (the local copies do not wait for it). A pass records what the
//! watcher saw taken, reconciles a slice of the published copies, checks the clock, purges
//! what is due locally, then deletes the due server copies through the source when it is
//! connected; a server copy that cannot be deleted now is retried at the next pass.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::health::{Health, status};
use crate::core::clock::LastPass;
use crate::core::config::Config;
use crate::ledger::locked::with_ledger;
use crate::ledger::{Ledger, LedgerRead, QuarantineRead, ServerCopyRow};
use crate::retention::clock::{self, Gate};
use crate::retention::handover::{self, RECONCILE_SLICE, Watcher};
use crate::retention::purge::{self, PASS_LIMIT};
use crate::retention::server_copies::{self, Work};
use crate::source::Source;
use crate::system::failure::LocalFailure;

/// Server copies deleted per pass.
const SERVER_COPIES_PER_PASS: usize = 500;

pub struct Keeper {
    start: Instant,
    next: Instant,
    last: Option<LastPass>,
    watcher: Option<Watcher>,
    /// Everything is reconciled once at start, then slice by slice.
    full_reconcile: bool,
    /// Due certificates that could not be purged at the last pass, and when that was last
    /// said (as soon as it grows, then hourly).
    failing_seen: usize,
    failing_alert: Option<Instant>,
    health: Arc<Health>,
}

/// How often an unresolved purge failure is said again.
const FAILING_EVERY: Duration = Duration::from_secs(3600);

/// What the blocking part of a pass found.
enum Local {
    Held(String),
    Done {
        purged: usize,
        taken: usize,
        failing: Vec<purge::Failing>,
        server: Vec<ServerCopyRow>,
        /// Server copies of released certificates, with the folder they go to.
        moves: Vec<(ServerCopyRow, String)>,
    },
}

impl Keeper {
    pub fn new(config: &Config, health: Arc<Health>) -> Keeper {
        Keeper {
            start: Instant::now(),
            next: Instant::now(),
            last: None,
            watcher: Watcher::start(config),
            full_reconcile: true,
            failing_seen: 0,
            failing_alert: None,
            health,
        }
    }

    /// Watches the folders of a reloaded configuration.
    pub fn rewatch(&mut self, config: &Config) {
        self.watcher = Watcher::start(config);
    }

    /// Time left before the next pass is due.
    pub fn until_next(&self) -> Duration {
        self.next.saturating_duration_since(Instant::now())
    }

    /// Runs a pass if one is due. `connected`: whether `src` may be used for server copies.
    pub async fn maybe_run<S: Source>(
        &mut self,
        src: &mut S,
        connected: bool,
        config: &Config,
        ledger: &Arc<Mutex<Ledger>>,
        state_dir: &std::path::Path,
        tz: &jiff::tz::TimeZone,
    ) {
        if Instant::now() < self.next {
            return;
        }
        self.next = Instant::now() + config.purge.check_interval;
        let now = Timestamp::now();
        let mono = self.start.elapsed();
        let (paths, rescan) = self
            .watcher
            .as_ref()
            .map_or((Vec::new(), false), Watcher::take);
        let full = std::mem::take(&mut self.full_reconcile) || rescan;
        let last = self.last;
        let max_jump = config.purge.max_clock_jump;
        let tz2 = tz.clone();
        let config2 = config.clone();
        let local = with_ledger::<_, LocalFailure>(ledger, state_dir, move |l, dir| {
            let mut taken = handover::record_paths(l, &paths, now, &tz2)?;
            taken += if full {
                handover::reconcile_all(l, now, &tz2)
            } else {
                handover::reconcile(l, now, &tz2, RECONCILE_SLICE)
            }?;
            let gate = clock::clock_gate(l, last, now, mono, max_jump, &tz2)?;
            if let Gate::Held(reason) = gate {
                crate::retention::log::flush(l, dir)?;
                return Ok(Local::Held(reason));
            }
            let pass = purge::local_pass(l, &tz2, now, PASS_LIMIT)?;
            let orphans = crate::retention::orphans::sweep(l, &config2, &tz2, now)?;
            clock::passed(l, now)?;
            crate::retention::log::flush(l, dir)?;
            let server = l.due_server_copies(now.as_second(), SERVER_COPIES_PER_PASS)?;
            let moves = l.pending_moves(SERVER_COPIES_PER_PASS)?;
            Ok(Local::Done {
                purged: pass.purged.len() + orphans,
                taken: taken + pass.taken,
                failing: pass.failing,
                server,
                moves,
            })
        })
        .await;
        let (purged, taken, server, moves) = match local {
            Ok(Local::Done {
                purged,
                taken,
                failing,
                server,
                moves,
            }) => {
                self.alert_failing(&failing);
                (purged, taken, server, moves)
            }
            Ok(Local::Held(reason)) => {
                tracing::error!(
                    "ALERT: purging held for clock safety: {reason}; once the clock is right, \
                     run `mss-dispatch purge --confirm-clock`"
                );
                status(&format!("PURGE HELD: {reason}"));
                return;
            }
            Err(e) => {
                tracing::error!(
                    class = e.class.as_str(),
                    "ALERT: the purge pass failed: {e}; retried at the next pass"
                );
                self.health.set_local(Some(&e));
                return;
            }
        };
        self.last = Some(LastPass {
            wall: now,
            mono: Some(mono),
        });
        if purged > 0 || taken > 0 {
            tracing::info!(purged, taken_by_sil_or_site = taken, "purge pass");
        }
        if server.is_empty() && moves.is_empty() {
            return;
        }
        if !connected {
            tracing::warn!(
                pending = server.len() + moves.len(),
                "server copies due or to move; the server is not reachable, retried at the \
                 next pass"
            );
            return;
        }
        if !moves.is_empty() {
            self.move_released(src, moves, ledger, state_dir).await;
        }
        if server.is_empty() {
            return;
        }
        let copies: Vec<crate::source::ServerCopy> =
            server.iter().map(|r| r.copy.clone()).collect();
        let results = src.purge_copies(&copies).await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        let pairs: Vec<_> = server.into_iter().zip(results).collect();
        let tz2 = tz.clone();
        let recorded = with_ledger::<_, LocalFailure>(ledger, state_dir, move |l, dir| {
            let n = server_copies::record_server_results(l, &pairs, Timestamp::now(), &tz2)?;
            crate::retention::log::flush(l, dir)?;
            Ok(n)
        })
        .await;
        match recorded {
            Ok(n) if n > 0 || failed > 0 => {
                tracing::info!(deleted = n, failed, "server copies");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "recording server copies failed"),
        }
    }

    /// Says, as an ALERT, that due certificates could not be purged: as soon as there are more
    /// of them, then hourly while any is left. Names sites and folders, never a file.
    fn alert_failing(&mut self, failing: &[purge::Failing]) {
        let grew = failing.len() > self.failing_seen;
        self.failing_seen = failing.len();
        if failing.is_empty()
            || !(grew
                || self
                    .failing_alert
                    .is_none_or(|t| t.elapsed() >= FAILING_EVERY))
        {
            return;
        }
        self.failing_alert = Some(Instant::now());
        let mut sites: Vec<&str> = failing.iter().filter_map(|f| f.site.as_deref()).collect();
        sites.sort_unstable();
        sites.dedup();
        tracing::error!(
            certificates = failing.len(),
            sites = %sites.join(","),
            "ALERT: due certificates could not be purged ({}); retried at every pass; \
             `mss-dispatch status` lists them",
            failing[0].error
        );
    }

    /// Moves the server copies of released certificates to their folder.
    async fn move_released<S: Source>(
        &self,
        src: &mut S,
        moves: Vec<(ServerCopyRow, String)>,
        ledger: &Arc<Mutex<Ledger>>,
        state_dir: &std::path::Path,
    ) {
        let results = server_copies::apply(
            src,
            Work {
                moves,
                deletions: Vec::new(),
            },
        )
        .await
        .moved;
        let failed = results.iter().filter(|(_, r)| r.is_err()).count();
        let recorded = with_ledger::<_, LocalFailure>(ledger, state_dir, move |l, _| {
            Ok(server_copies::record_moves(l, &results)?)
        })
        .await;
        match recorded {
            Ok(n) => tracing::info!(moved = n, failed, "released server copies"),
            Err(e) => tracing::error!(error = %e, "recording moved server copies failed"),
        }
    }
}
