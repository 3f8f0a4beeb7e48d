//! What the service knows of each printer: its state for `status` and the metrics, the
//! ALERT when it goes wrong (repeated hourly while it lasts, never naming a patient), and
//! the pause before it is asked again.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// An ALERT about one printer is repeated at most this often while its state lasts.
const ALERT_EVERY: Duration = Duration::from_secs(3600);
/// A printer busy with other jobs is normal; busy this long, it is an ALERT.
const BUSY_ALERT_AFTER: i64 = 15 * 60;

/// What the service knows of a printer, for `status` and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrinterHealth {
    /// `ok`, `busy`, `unreachable`, `stopped`, `held`, `refuses_pdf`, `failing`.
    pub state: String,
    /// What it said last, when not ok (no patient data: site, printer, job ids).
    pub detail: Option<String>,
    pub since: i64,
}

/// Printer states shared with the monitor.
pub type Health = Arc<Mutex<BTreeMap<String, PrinterHealth>>>;

/// The printers' states, alerts and pauses, kept by the worker.
#[derive(Default)]
pub struct Printers {
    /// Shared with the monitor, which writes it into `daemon.json`.
    pub health: Health,
    alerted: HashMap<String, (String, Instant)>,
    /// Printers not taking jobs: not asked again before this instant.
    held: HashMap<String, Instant>,
    /// Failures in a row, per printer: the pause before the next try grows with them.
    failures: HashMap<String, i64>,
}

impl Printers {
    /// Whether `printer` is left alone for now.
    pub fn held(&self, printer: &str) -> bool {
        self.held.get(printer).is_some_and(|t| *t > Instant::now())
    }

    pub fn hold(&mut self, printer: &str, pause: Duration) {
        self.held
            .insert(printer.to_string(), Instant::now() + pause);
    }

    /// The pause after one more failure of `printer` in a row.
    pub fn pause(&mut self, printer: &str) -> Duration {
        let n = self.failures.entry(printer.to_string()).or_insert(0);
        *n += 1;
        Duration::from_secs(backoff(*n - 1) as u64)
    }

    pub fn ok(&mut self, printer: &str, site: &str) {
        self.note(printer, site, "ok", None);
    }

    /// Records a printer's state; an ALERT when it goes wrong, repeated hourly while it lasts.
    pub fn note(&mut self, printer: &str, site: &str, state: &str, detail: Option<String>) {
        let now = Timestamp::now().as_second();
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let entry = health.entry(printer.to_string()).or_default();
        if entry.state != state {
            entry.since = now;
        }
        entry.state = state.to_string();
        entry.detail = detail.clone();
        let since = entry.since;
        drop(health);
        if state == "busy" && now - since < BUSY_ALERT_AFTER {
            return;
        }
        if state == "ok" {
            self.failures.remove(printer);
            if self.alerted.remove(printer).is_some() {
                tracing::warn!(
                    printer,
                    site,
                    "printer of site {site} answers again: {printer}"
                );
            }
            return;
        }
        let due = match self.alerted.get(printer) {
            Some((last, at)) => last != state || at.elapsed() >= ALERT_EVERY,
            None => true,
        };
        if due {
            tracing::error!(
                printer,
                site,
                state,
                "ALERT: printer of site {site} ({printer}) is {state}: {}; its certificates \
                 wait and are printed once it takes them",
                detail.as_deref().unwrap_or("")
            );
            self.alerted
                .insert(printer.to_string(), (state.to_string(), Instant::now()));
        }
    }
}

/// Seconds before the next try after `n` failures: 5 s, doubling, at most 5 minutes.
fn backoff(n: i64) -> i64 {
    (5i64 << n.clamp(0, 6)).min(300)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_and_a_busy_printer_is_no_alert() {
        let mut p = Printers::default();
        let pauses: Vec<u64> = (0..8).map(|_| p.pause("ipp://a/").as_secs()).collect();
        assert_eq!(pauses, [5, 10, 20, 40, 80, 160, 300, 300]);
        p.note("ipp://a/", "690000880", "unreachable", Some("down".into()));
        assert!(p.alerted.contains_key("ipp://a/"));
        p.ok("ipp://a/", "690000880");
        assert!(
            p.alerted.is_empty() && p.failures.is_empty(),
            "reset when it answers"
        );
        assert_eq!(p.pause("ipp://a/").as_secs(), 5);
        p.note("ipp://b/", "750712184", "busy", None);
        assert!(p.alerted.is_empty(), "busy is normal");
        let health = p.health.lock().unwrap();
        assert_eq!(health["ipp://b/"].state, "busy");
        assert_eq!(health["ipp://a/"].state, "ok");
    }
}
