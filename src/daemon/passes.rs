//! The passes: drain the mailbox, run the purge when due, wait (IDLE or a poll) and go again;
//! a failure of the server and a failure of this machine are handled apart.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use super::drain::{self, DrainStats, Drainer};
use super::health::{notify, status};
use super::keeper::Keeper;
use super::{Stopped, reload};
use crate::core::config::Config;
use crate::delivery;
use crate::source::{Source, SourceError, Woken};
use crate::system::failure::{Class, LocalFailure};

/// How many consecutive failures `--once` tolerates before giving up.
const ONCE_ATTEMPTS: u32 = 4;

fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(300))
        .with_jitter()
        .without_max_times()
        .build()
}

/// What the loop needs besides its source and drainer.
pub(super) struct Control {
    pub config_path: std::path::PathBuf,
    pub reloader: reload::Shared,
    pub config_tx: tokio::sync::watch::Sender<Arc<Config>>,
    pub cancel: CancellationToken,
    pub once: bool,
}

impl Control {
    /// Applies a requested reload, between two passes.
    fn maybe_reload(&self, drainer: &mut Drainer, keeper: &mut Keeper) {
        if !self.reloader.take_request() {
            return;
        }
        match reload::reload(&self.config_path, &drainer.config) {
            Ok((config, groups)) => {
                delivery::create_site_folders(&config, &groups);
                let config = Arc::new(config);
                drainer.config = Arc::clone(&config);
                drainer.groups = Arc::new(groups);
                keeper.rewatch(&config);
                self.config_tx.send_replace(config);
                tracing::info!("configuration reloaded");
            }
            Err(errors) => {
                for e in &errors {
                    tracing::error!("{e}");
                }
                tracing::error!(
                    errors = errors.len(),
                    "the new configuration is not valid; the running one stays"
                );
            }
        }
    }
}

pub(super) async fn main_loop<S: Source>(
    src: &mut S,
    drainer: &mut Drainer,
    control: &mut Control,
) -> Result<ExitCode, Stopped> {
    let health = Arc::clone(&drainer.health);
    let mut delays = backoff();
    let mut local_delays = backoff();
    let mut failures = 0u32;
    // Ready once the ledger is open and recovered, before the mailbox is reached: a mailbox
    // out of reach at boot must not fail the unit, and the purge goes on meanwhile.
    notify(&[NotifyState::Ready]);
    status(&format!("connecting to {}", src.describe()));
    let mut total = DrainStats::default();
    let mut keeper = Keeper::new(&drainer.config, Arc::clone(&drainer.health));
    let ledger = Arc::clone(&drainer.ledger);
    let state_dir = drainer.state_dir.clone();
    let tz = drainer.tz.clone();
    let cancel = control.cancel.clone();
    let cancel = &cancel;
    let once = control.once;
    loop {
        if cancel.is_cancelled() {
            break;
        }
        control.maybe_reload(drainer, &mut keeper);
        let config = Arc::clone(&drainer.config);
        let config = &*config;
        health.beat();
        let pass = async {
            let key = src.open().await.map_err(Failure::Source)?;
            health.set_connected(true);
            drainer.drain(src, &key, cancel).await.map_err(|e| match e {
                drain::DrainError::Source(s) => Failure::Source(s),
                drain::DrainError::MessageFetch(s) => Failure::OneMessage(s),
                other => Failure::Local(
                    other
                        .local(&state_dir)
                        .unwrap_or_else(|| LocalFailure::new(Class::Io, &state_dir, &other)),
                ),
            })
        }
        .await;
        match pass {
            Ok(stats) => {
                failures = 0;
                delays = backoff();
                local_delays = backoff();
                health.set_error(None);
                // Files that could not be written (each said by an ALERT): the pass went on
                // for the others, and the failed ones are retried at the next pass.
                health.set_local(stats.local.as_ref());
                accumulate(&mut total, &stats);
                if stats.listed > 0 || stats.acked > 0 {
                    tracing::info!(
                        listed = stats.listed,
                        delivered = stats.delivered,
                        quarantined = stats.quarantined,
                        ignored = stats.ignored,
                        duplicates = stats.duplicates,
                        acknowledged = stats.acked,
                        failed = stats.failed,
                        "pass finished"
                    );
                }
                status(&format!(
                    "connected to {}; {} delivered, {} quarantined since start",
                    src.describe(),
                    total.delivered,
                    total.quarantined
                ));
                keeper
                    .maybe_run(src, true, config, &ledger, &state_dir, &tz)
                    .await;
                if once {
                    src.close().await;
                    return Ok(if stats.complete() {
                        ExitCode::SUCCESS
                    } else {
                        tracing::error!(failed = stats.failed, "some messages were not processed");
                        ExitCode::FAILURE
                    });
                }
            }
            Err(Failure::OneMessage(e)) => {
                // Counted against that message; the others go on after a short pause.
                health.set_connected(false);
                src.close().await;
                tracing::warn!("{e}");
                keeper
                    .maybe_run(src, false, config, &ledger, &state_dir, &tz)
                    .await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = cancel.cancelled() => break,
                }
                continue;
            }
            Err(Failure::Local(f)) => {
                // The server is not at fault: the session stays; the pass is tried again
                // after a pause that grows while the failure lasts.
                health.set_local(Some(&f));
                failures += 1;
                if once && failures >= ONCE_ATTEMPTS {
                    tracing::error!("ALERT: local failure: {f}");
                    return Err(Stopped::Local(f));
                }
                let delay = local_delays.next().unwrap_or(Duration::from_secs(300));
                tracing::error!(
                    class = f.class.as_str(),
                    retry_in = ?delay,
                    "ALERT: local failure: {f}; retried in {}s",
                    delay.as_secs()
                );
                status(&format!(
                    "LOCAL FAILURE ({}): retried in {}s",
                    f.class.as_str(),
                    delay.as_secs()
                ));
                if pause(src, &mut keeper, drainer, delay, cancel).await {
                    break;
                }
                continue;
            }
            Err(Failure::Source(e)) => {
                health.set_connected(false);
                health.set_error(Some(e.to_string()));
                src.close().await;
                failures += 1;
                let fatal = e.is_fatal();
                if once && (fatal || failures >= ONCE_ATTEMPTS) {
                    return Err(Stopped::Source(e));
                }
                let delay = delays.next().unwrap_or(Duration::from_secs(300));
                let delay = if fatal {
                    delay.max(Duration::from_secs(60))
                } else {
                    delay
                };
                if fatal {
                    tracing::error!(retry_in = ?delay, "{e}");
                } else {
                    tracing::warn!(retry_in = ?delay, "{e}");
                }
                status(&format!("reconnecting in {}s: {e}", delay.as_secs()));
                // The local purge does not wait for the server.
                if pause(src, &mut keeper, drainer, delay, cancel).await {
                    break;
                }
                continue;
            }
        }
        if cancel.is_cancelled() {
            break;
        }
        let quiet = config.mailbox.poll_interval;
        let quiet = health.max_quiet().map_or(quiet, |q| quiet.min(q));
        let quiet = quiet.min(keeper.until_next().max(Duration::from_secs(1)));
        // A reload request cuts the wait short (IDLE ends cleanly, the session stays).
        let wake = control.reloader.wait_token(cancel);
        match src.wait(quiet, &wake).await {
            Ok(Woken::Cancelled) if cancel.is_cancelled() => break,
            Ok(_) => {}
            Err(e) => {
                health.set_connected(false);
                tracing::warn!("{e}");
                src.close().await;
            }
        }
    }
    src.close().await;
    tracing::info!(
        delivered = total.delivered,
        quarantined = total.quarantined,
        "stopped"
    );
    Ok(ExitCode::SUCCESS)
}

/// Waits `delay` before the next attempt, running the purge meanwhile when it is due: the
/// local purge does not wait for the server. True when the service is told to stop.
async fn pause<S: Source>(
    src: &mut S,
    keeper: &mut Keeper,
    drainer: &Drainer,
    delay: Duration,
    cancel: &CancellationToken,
) -> bool {
    let resume = std::time::Instant::now() + delay;
    loop {
        keeper
            .maybe_run(
                src,
                false,
                &drainer.config,
                &drainer.ledger,
                &drainer.state_dir,
                &drainer.tz,
            )
            .await;
        let left = resume.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        let nap = left.min(keeper.until_next().max(Duration::from_secs(1)));
        tokio::select! {
            _ = tokio::time::sleep(nap) => {}
            _ = cancel.cancelled() => break,
        }
    }
    cancel.is_cancelled()
}

/// Why a pass ended early.
enum Failure {
    Source(SourceError),
    OneMessage(SourceError),
    /// On this machine: no reconnect, a pause, an ALERT.
    Local(LocalFailure),
}

fn accumulate(total: &mut DrainStats, s: &DrainStats) {
    total.delivered += s.delivered;
    total.quarantined += s.quarantined;
    total.ignored += s.ignored;
    total.duplicates += s.duplicates;
    total.acked += s.acked;
}
