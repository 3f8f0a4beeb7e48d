//! The daemon's view from outside, every few seconds: `state.dir/daemon.json` for `status`,
//! the Prometheus metrics file when `[metrics] file` is set, and the alerts an operator must
//! see in the journal (warning level): a client certificate expiring within 30 days, no
//! successful poll for longer than ten poll intervals, a quarantine that is not empty (at start, when it grows, then hourly).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::health::Health;
use crate::core::config::Config;
use crate::daemon::report::{self, DaemonState};
use crate::ledger::Ledger;

const TICK: Duration = Duration::from_secs(5);
const CERT_WARNING: i64 = 30 * 86_400;
const QUARANTINE_EVERY: Duration = Duration::from_secs(3600);
const CERT_EVERY: Duration = Duration::from_secs(86_400);

pub struct Monitor {
    pub health: Arc<Health>,
    pub config: watch::Receiver<Arc<Config>>,
    pub state_dir: PathBuf,
    pub mailbox: String,
    pub cert_expiry: Option<i64>,
    pub printers: crate::printing::health::Health,
}

impl Monitor {
    pub fn spawn(self, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { self.run(cancel).await })
    }

    async fn run(self, cancel: CancellationToken) {
        let started = Instant::now();
        let started_at = Timestamp::now().as_second();
        let mut last_metrics: Option<Instant> = None;
        let mut last_quarantine_alert: Option<Instant> = None;
        let mut last_cert_alert: Option<Instant> = None;
        let mut last_poll_alert: Option<Instant> = None;
        let mut quarantined_seen = 0u64;
        let mut broken_seen: Option<String> = None;
        let mut last_broken_alert: Option<Instant> = None;
        loop {
            let config = Arc::clone(&self.config.borrow());
            let now = Timestamp::now().as_second();
            let local = self.health.local();
            let state = DaemonState {
                pid: std::process::id(),
                started_at,
                mailbox: self.mailbox.clone(),
                connected: self.health.connected(),
                last_poll: self.health.last_poll(),
                last_error: self.health.last_error(),
                client_certificate_expires_at: self.cert_expiry,
                updated_at: now,
                local_error: local.as_ref().map(ToString::to_string),
                local_error_class: local.as_ref().map(|l| l.class.as_str().to_string()),
                local_failures: self.health.local_counts(),
                printers: self.printers.lock().map(|p| p.clone()).unwrap_or_default(),
            };
            let dir = self.state_dir.clone();
            let st = state.clone();
            let _ =
                tokio::task::spawn_blocking(move || report::write_daemon_state(&dir, &st)).await;

            // No poll for ten intervals: the mailbox is out of reach, or the loop is stuck.
            let limit = 10 * config.mailbox.poll_interval;
            let since = if state.last_poll > 0 {
                Duration::from_secs((now - state.last_poll).max(0).unsigned_abs())
            } else {
                started.elapsed()
            };
            if since > limit && last_poll_alert.is_none_or(|t| t.elapsed() > limit) {
                tracing::warn!(
                    seconds_since_last_poll = since.as_secs(),
                    "ALERT: no successful poll of the mailbox for more than 10 poll intervals"
                );
                last_poll_alert = Some(Instant::now());
            }
            if let Some(expiry) = self.cert_expiry
                && expiry - now < CERT_WARNING
                && last_cert_alert.is_none_or(|t| t.elapsed() > CERT_EVERY)
            {
                tracing::warn!(
                    days_left = (expiry - now) / 86_400,
                    "ALERT: the client certificate (mailbox.client_cert) expires within 30 days"
                );
                last_cert_alert = Some(Instant::now());
            }
            // The retention log: said as soon as it breaks, then hourly while it is.
            let dir = self.state_dir.clone();
            let broken = tokio::task::spawn_blocking(move || {
                Ledger::open_read_only(&dir)
                    .ok()
                    .flatten()
                    .and_then(|l| crate::retention::log::broken(&l).ok().flatten())
            })
            .await
            .ok()
            .flatten();
            if let Some(why) = &broken
                && (broken_seen.as_ref() != Some(why)
                    || last_broken_alert.is_none_or(|t| t.elapsed() >= QUARANTINE_EVERY))
            {
                tracing::error!(
                    "ALERT: retention log broken: {why}; deliveries go on and their records \
                     wait in the ledger; check it with `mss-dispatch audit verify`, then carry \
                     on with `mss-dispatch audit reseal --reason …`"
                );
                last_broken_alert = Some(Instant::now());
            }
            broken_seen = broken;
            let metrics_due = config.metrics.file.is_some()
                && last_metrics.is_none_or(|t| t.elapsed() >= config.metrics.interval);
            // At start, as soon as a certificate is quarantined, and hourly while any waits.
            let quarantined = self.health.quarantined();
            let quarantine_due = quarantined > quarantined_seen
                || last_quarantine_alert.is_none_or(|t| t.elapsed() >= QUARANTINE_EVERY);
            quarantined_seen = quarantined;
            if metrics_due || quarantine_due {
                let dir = self.state_dir.clone();
                let counts = tokio::task::spawn_blocking(move || {
                    match Ledger::open_read_only(&dir).map_err(|e| e.to_string())? {
                        Some(ledger) => {
                            crate::ledger::counts(&ledger, now).map_err(|e| e.to_string())
                        }
                        None => Ok(crate::ledger::Counts::default()),
                    }
                })
                .await;
                match counts {
                    Ok(Ok(counts)) => {
                        if quarantine_due {
                            last_quarantine_alert = Some(Instant::now());
                            let total: i64 = counts.quarantine.values().sum();
                            if total > 0 {
                                tracing::warn!(
                                    quarantined = total,
                                    by_reason = ?counts.quarantine,
                                    "ALERT: certificates are waiting in quarantine \
                                     (mss-dispatch quarantine list)"
                                );
                            }
                        }
                        if metrics_due && let Some(file) = &config.metrics.file {
                            last_metrics = Some(Instant::now());
                            let text = report::prometheus(&counts, &state);
                            if let Err(e) =
                                crate::system::dir::replace_file(file, text.as_bytes(), 0o644)
                            {
                                tracing::warn!(file = %file.display(), error = %e,
                                    "cannot write the metrics file");
                            }
                        }
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the ledger for metrics"),
                    Err(e) => tracing::warn!(error = %e, "cannot read the ledger for metrics"),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = cancel.cancelled() => {
                    // The last word: stopped, with the last successful poll kept for `status`.
                    let last = DaemonState {
                        connected: false,
                        last_poll: self.health.last_poll(),
                        updated_at: Timestamp::now().as_second(),
                        ..state
                    };
                    let dir = self.state_dir.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        report::write_daemon_state(&dir, &last)
                    })
                    .await;
                    return;
                }
            }
        }
    }
}
