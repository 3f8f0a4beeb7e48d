//! What the service is doing, for `status` and for the metrics file: the daemon's own state
//! (`state.dir/daemon.json`, rewritten every few seconds by the running daemon), and counts
//! from the ledger. Nothing here names a patient: sites, reasons, rules and counts only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::system::dir::{Dir, DirError};

use serde::{Deserialize, Serialize};

use crate::ledger::Counts;

const DAEMON_FILE: &str = "daemon.json";

/// What the running daemon says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonState {
    pub pid: u32,
    pub started_at: i64,
    pub mailbox: String,
    pub connected: bool,
    /// Last successful listing of the folder (Unix seconds; 0: none yet).
    pub last_poll: i64,
    pub last_error: Option<String>,
    pub client_certificate_expires_at: Option<i64>,
    pub updated_at: i64,
    /// The last local failure (`class in folder: what`), cleared by a pass without one.
    #[serde(default)]
    pub local_error: Option<String>,
    #[serde(default)]
    pub local_error_class: Option<String>,
    /// Local failures since the start, per class.
    #[serde(default)]
    pub local_failures: BTreeMap<String, u64>,
    /// The sites' printers as the print worker last found them, by address.
    #[serde(default)]
    pub printers: BTreeMap<String, crate::printing::health::PrinterHealth>,
}

pub fn daemon_file(state_dir: &Path) -> PathBuf {
    state_dir.join(DAEMON_FILE)
}

pub fn write_daemon_state(state_dir: &Path, state: &DaemonState) -> Result<(), DirError> {
    let mut bytes = serde_json::to_vec_pretty(state).expect("serialisable");
    bytes.push(b'\n');
    Dir::root(state_dir)?.replace(DAEMON_FILE, &bytes, 0o640)
}

/// Whether a daemon runs on this state directory (it holds the run lock).
pub fn daemon_running(state_dir: &Path) -> bool {
    let Ok(lock) = std::fs::File::open(state_dir.join("run.lock")) else {
        return false;
    };
    match lock.try_lock_shared() {
        Ok(()) => {
            let _ = lock.unlock();
            false
        }
        Err(_) => true,
    }
}

/// What the daemon last wrote about itself: the running one's state, or the stopped one's
/// last (its last successful poll stays worth knowing).
pub fn read_daemon_state(state_dir: &Path) -> Option<DaemonState> {
    let text = std::fs::read_to_string(daemon_file(state_dir)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The Prometheus text exposition of the counts and the daemon's state.
pub fn prometheus(counts: &Counts, daemon: &DaemonState) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, i64)>| {
        out.push_str(&format!("# HELP mss_dispatch_{name} {help}\n"));
        out.push_str(&format!("# TYPE mss_dispatch_{name} {kind}\n"));
        for (labels, value) in samples {
            out.push_str(&format!("mss_dispatch_{name}{labels} {value}\n"));
        }
    };
    let labelled = |label: &str, m: &BTreeMap<String, i64>| -> Vec<(String, i64)> {
        m.iter()
            .map(|(k, v)| (format!("{{{label}=\"{}\"}}", escape(k)), *v))
            .collect()
    };
    metric(
        "delivered_total",
        "counter",
        "Certificates delivered, per site (FINESS).",
        labelled("site", &counts.delivered_total),
    );
    metric(
        "quarantined_total",
        "counter",
        "Certificates quarantined, per reason.",
        labelled("reason", &counts.quarantined_total),
    );
    metric(
        "ignored_total",
        "counter",
        "Messages left alone (not SI-DEP certificates).",
        vec![(String::new(), counts.ignored_total)],
    );
    metric(
        "purged_total",
        "counter",
        "Certificates purged, per retention rule.",
        labelled("rule", &counts.purged_total),
    );
    metric(
        "held",
        "gauge",
        "Certificates held now, per retention rule.",
        labelled("class", &counts.held),
    );
    metric(
        "quarantine",
        "gauge",
        "Certificates in quarantine now, per reason.",
        labelled("reason", &counts.quarantine),
    );
    metric(
        "server_copies_pending",
        "gauge",
        "Server copies due and not deleted yet.",
        vec![(String::new(), counts.server_copies_pending)],
    );
    metric(
        "last_poll_timestamp_seconds",
        "gauge",
        "When the mailbox was last listed successfully (Unix time).",
        vec![(String::new(), daemon.last_poll)],
    );
    metric(
        "imap_up",
        "gauge",
        "1 when the mailbox connection is up.",
        vec![(String::new(), i64::from(daemon.connected))],
    );
    if let Some(expiry) = daemon.client_certificate_expires_at {
        metric(
            "client_certificate_expiry_timestamp_seconds",
            "gauge",
            "When the client certificate expires (Unix time).",
            vec![(String::new(), expiry)],
        );
    }
    metric(
        "purge_failing",
        "gauge",
        "Files due whose removal failed (retried at every pass).",
        vec![(String::new(), counts.purge_failing)],
    );
    metric(
        "retention_log_broken",
        "gauge",
        "1 while the retention log is broken (its records wait in the ledger).",
        vec![(
            String::new(),
            i64::from(counts.retention_log_broken.is_some()),
        )],
    );
    metric(
        "local_failures_total",
        "counter",
        "Local failures since the service started, per class.",
        crate::system::failure::Class::ALL
            .iter()
            .map(|c| {
                let n = daemon.local_failures.get(c.as_str()).copied().unwrap_or(0);
                (format!("{{class=\"{}\"}}", c.as_str()), n as i64)
            })
            .collect(),
    );
    metric(
        "clock_hold",
        "gauge",
        "1 while purging is held for a clock inconsistency.",
        vec![(String::new(), i64::from(counts.clock_hold.is_some()))],
    );
    metric(
        "printed_total",
        "counter",
        "Certificates printed at their site, per site (FINESS).",
        labelled("site", &counts.printed_total),
    );
    metric(
        "print_failed_total",
        "counter",
        "Certificates that could not be printed, per site (FINESS).",
        labelled("site", &counts.print_failed_total),
    );
    metric(
        "print_waiting",
        "gauge",
        "Prints not finished, per printer.",
        labelled("printer", &counts.print_waiting),
    );
    metric(
        "printer_up",
        "gauge",
        "1 while the printer takes and prints jobs, per printer.",
        daemon
            .printers
            .iter()
            .map(|(p, h)| {
                (
                    format!("{{printer=\"{}\"}}", escape(p)),
                    i64::from(matches!(h.state.as_str(), "ok" | "busy")),
                )
            })
            .collect(),
    );
    out
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_is_well_formed() {
        let mut counts = Counts::default();
        counts.delivered_total.insert("690000880".into(), 3);
        counts.quarantined_total.insert("unknown_site".into(), 1);
        counts.held.insert("negative".into(), 2);
        let daemon = DaemonState {
            connected: true,
            last_poll: 1_700_000_000,
            client_certificate_expires_at: Some(1_800_000_000),
            ..Default::default()
        };
        let text = prometheus(&counts, &daemon);
        assert!(text.contains("mss_dispatch_delivered_total{site=\"690000880\"} 3\n"));
        assert!(text.contains("mss_dispatch_imap_up 1\n"));
        assert!(text.contains("# TYPE mss_dispatch_purged_total counter\n"));
        for line in text.lines() {
            assert!(
                line.starts_with('#') || line.split(' ').count() == 2,
                "not a sample: {line}"
            );
        }
    }
}
