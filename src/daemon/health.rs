//! The daemon's pulse, for systemd: `READY=1` once the mailbox is selected, `STATUS=` lines,
//! `STOPPING=1`, and `WATCHDOG=1` only while the main loop really makes progress. The loop
//! calls `beat` after every step; the watchdog task pings systemd only if the last beat is
//! recent, so a hung IMAP call (or a stuck disk) lets `WatchdogSec=` fire and restart us.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::system::failure::LocalFailure;

pub struct Health {
    last_error: std::sync::Mutex<Option<String>>,
    /// The last local failure, cleared by a pass without one; and how many since the start,
    /// per class.
    local: std::sync::Mutex<Option<LocalFailure>>,
    local_counts: std::sync::Mutex<BTreeMap<String, u64>>,
    start: Instant,
    last_beat_ms: AtomicU64,
    connected: AtomicBool,
    last_poll: AtomicI64,
    quarantined: AtomicU64,
    watchdog: Option<Duration>,
}

impl Health {
    pub fn new() -> Arc<Health> {
        Arc::new(Health {
            last_error: std::sync::Mutex::new(None),
            local: std::sync::Mutex::new(None),
            local_counts: std::sync::Mutex::new(BTreeMap::new()),
            start: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            last_poll: AtomicI64::new(0),
            quarantined: AtomicU64::new(0),
            watchdog: sd_notify::watchdog_enabled(),
        })
    }

    /// The loop made progress.
    pub fn beat(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_beat_ms.store(ms, Ordering::Relaxed);
    }

    fn since_beat(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_beat_ms.load(Ordering::Relaxed)))
    }

    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// The last connection error, cleared by a successful pass (no patient data in it).
    pub fn set_error(&self, error: Option<String>) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = error;
        }
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// A local failure happened (counted), or a pass went through without one (`None`).
    pub fn set_local(&self, failure: Option<&LocalFailure>) {
        if let Some(f) = failure
            && let Ok(mut counts) = self.local_counts.lock()
        {
            *counts.entry(f.class.as_str().to_string()).or_default() += 1;
        }
        if let Ok(mut l) = self.local.lock() {
            *l = failure.cloned();
        }
    }

    pub fn local(&self) -> Option<LocalFailure> {
        self.local.lock().ok().and_then(|l| l.clone())
    }

    /// Local failures since the start, per class.
    pub fn local_counts(&self) -> BTreeMap<String, u64> {
        self.local_counts
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// A listing of the folder succeeded at `unix_seconds`.
    pub fn polled(&self, unix_seconds: i64) {
        self.last_poll.store(unix_seconds, Ordering::Relaxed);
    }

    pub fn last_poll(&self) -> i64 {
        self.last_poll.load(Ordering::Relaxed)
    }

    /// Certificates quarantined since the start (the monitor alerts as soon as it grows).
    pub fn add_quarantined(&self, n: usize) {
        self.quarantined.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn quarantined(&self) -> u64 {
        self.quarantined.load(Ordering::Relaxed)
    }

    /// The longest the loop may sleep without beating: a third of the watchdog period.
    pub fn max_quiet(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 3)
    }

    /// Pings systemd's watchdog while beats are recent; ends with `cancel`.
    pub fn spawn_watchdog(self: &Arc<Self>, cancel: CancellationToken) {
        let Some(period) = self.watchdog else { return };
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period / 2);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = cancel.cancelled() => return,
                }
                if me.since_beat() < period {
                    notify(&[NotifyState::Watchdog]);
                } else {
                    tracing::error!(
                        quiet_seconds = me.since_beat().as_secs(),
                        "the main loop is stuck; leaving the watchdog to restart the service"
                    );
                }
            }
        });
    }
}

/// Sends a notification to systemd; a no-op outside systemd.
pub fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

pub fn status(text: &str) {
    notify(&[NotifyState::Status(text)]);
}
