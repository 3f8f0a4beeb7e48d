//! `status`: what the service is doing, readable while it runs: its state (from
//! `state.dir/daemon.json`), deliveries of the last 24 hours per site, the quarantine, the
//! purges coming, the client certificate's expiry, the last purge pass and any clock hold.

use std::path::Path;
use std::process::ExitCode;

use jiff::Timestamp;
use serde_json::json;

use super::Outcome;
use crate::core::config::{Config, Source, is_pkcs12};
use crate::daemon::report::{self, DaemonState};
use crate::ledger::Counts;
use crate::ledger::Ledger;

pub fn run(config_path: &Path, as_json: bool) -> Outcome {
    let config = super::load_as_owner(config_path, false)?;
    let tz = crate::system::tz::paris();
    let now = Timestamp::now().as_second();
    let running = report::daemon_running(&config.state_dir);
    let last = report::read_daemon_state(&config.state_dir);
    // Before the first run there is no ledger yet: nothing delivered, nothing held.
    let counts = match Ledger::open_read_only(&config.state_dir)? {
        Some(l) => crate::ledger::counts(&l, now)?,
        None => Counts::default(),
    };
    let problems = local_problems(&config.state_dir);
    let expiry = client_cert_expiry(&config)
        .or_else(|| last.as_ref().and_then(|d| d.client_certificate_expires_at));
    let daemon = last.as_ref().filter(|_| running);
    let time = |t: i64| {
        Timestamp::from_second(t)
            .map(|t| crate::core::retention::rfc3339(t, &tz))
            .unwrap_or_default()
    };
    if as_json {
        let d = last.clone().unwrap_or_default();
        let value = json!({
            "running": running,
            "pid": daemon.map(|d| d.pid),
            "started_at": daemon.map(|d| time(d.started_at)),
            "mailbox": last.as_ref().map(|d| d.mailbox.clone()),
            "connected": running && d.connected,
            "last_poll": (d.last_poll > 0).then(|| time(d.last_poll)),
            // A local failure first: the server is not the one to blame for it.
            "last_error": daemon.and_then(|d| d.local_error.clone().or(d.last_error.clone())),
            "last_error_class": daemon.and_then(|d| {
                d.local_error_class
                    .clone()
                    .or(d.last_error.as_ref().map(|_| "source".to_string()))
            }),
            "local_failures": daemon.map(|d| d.local_failures.clone()).unwrap_or_default(),
            "retention_log": match &counts.retention_log_broken {
                None => "ok".to_string(),
                Some(why) => format!("broken: {why}"),
            },
            "delivered_24h": counts.delivered_24h,
            "quarantine": counts.quarantine,
            "quarantine_total": counts.quarantine.values().sum::<i64>(),
            "purges_due_24h": counts.purges_due_24h,
            "next_purge_at": counts.next_purge_at.map(time),
            "server_copies_pending": counts.server_copies_pending,
            "client_certificate_expires_at": expiry.map(time),
            "last_purge_pass": counts.last_purge_pass.map(time),
            "clock_hold": counts.clock_hold,
            "purge_failing": counts.purge_failing,
            "purge_failing_error": counts.purge_failing_error,
            "printers": printers(&config, daemon, &counts),
            "problems": problems,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("serialisable")
        );
    } else {
        for p in &problems {
            println!("PROBLEM:     {p}");
        }
        print!(
            "{}",
            text(&config, daemon, last.as_ref(), &counts, expiry, now, &time)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn text(
    config: &Config,
    daemon: Option<&DaemonState>,
    last: Option<&DaemonState>,
    c: &Counts,
    expiry: Option<i64>,
    now: i64,
    time: &dyn Fn(i64) -> String,
) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    match daemon {
        Some(d) => {
            line(format!(
                "service:     running (pid {}) since {}",
                d.pid,
                time(d.started_at)
            ));
            line(format!(
                "mailbox:     {} — {}",
                d.mailbox,
                if d.connected {
                    "connected"
                } else {
                    "NOT CONNECTED"
                }
            ));
            if d.last_poll > 0 {
                line(format!(
                    "last poll:   {} ({} s ago)",
                    time(d.last_poll),
                    now - d.last_poll
                ));
            } else {
                line("last poll:   none yet".into());
            }
            if let Some(e) = &d.local_error {
                line(format!("LOCAL ERROR: {e}"));
            }
            if let Some(e) = &d.last_error {
                line(format!("last error:  {e}"));
            }
        }
        None => {
            line("service:     NOT RUNNING".into());
            if let Some(d) = last.filter(|d| d.last_poll > 0) {
                line(format!(
                    "last poll:   {} ({} s ago), of {}",
                    time(d.last_poll),
                    now - d.last_poll,
                    d.mailbox
                ));
            }
        }
    }
    let delivered: Vec<String> = config
        .sites
        .iter()
        .map(|s| {
            let n = c.delivered_24h.get(s.finess.as_str()).copied().unwrap_or(0);
            format!("{} {} {n}", s.finess, s.name)
        })
        .collect();
    line(format!("last 24 h:   delivered {}", delivered.join("; ")));
    let total: i64 = c.quarantine.values().sum();
    let detail: Vec<String> = c
        .quarantine
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    line(if total == 0 {
        "quarantine:  empty".into()
    } else {
        format!("quarantine:  {total} ({})", detail.join(", "))
    });
    line(format!(
        "purges:      {} due in the next 24 h{}; {} server copies awaiting deletion",
        c.purges_due_24h,
        c.next_purge_at
            .map(|t| format!(", next at {}", time(t)))
            .unwrap_or_default(),
        c.server_copies_pending
    ));
    if c.purge_failing > 0 {
        line(format!(
            "PURGE FAILING: {} files due could not be removed, retried at every pass: {}",
            c.purge_failing,
            c.purge_failing_error.as_deref().unwrap_or("")
        ));
    }
    line(format!(
        "last pass:   {}",
        c.last_purge_pass
            .map(time)
            .unwrap_or_else(|| "none yet".into())
    ));
    if let Some(why) = &c.retention_log_broken {
        line(format!(
            "RETENTION LOG BROKEN: {why}; its records wait in the ledger (mss-dispatch audit \
             verify, then audit reseal)"
        ));
    }
    for p in printers(config, daemon, c) {
        let state = p["state"].as_str().unwrap_or("unknown");
        line(format!(
            "printer:     {} (site {}) {}{}; {} waiting",
            p["printer"].as_str().unwrap_or_default(),
            p["sites"]
                .as_array()
                .map(|s| s
                    .iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default(),
            if state == "ok" {
                "ok".to_string()
            } else {
                state.to_uppercase()
            },
            p["detail"]
                .as_str()
                .map(|d| format!(": {d}"))
                .unwrap_or_default(),
            p["waiting"]
        ));
    }
    line(match &c.clock_hold {
        None => "clock:       consistent".into(),
        Some(reason) => format!("clock:       PURGING HELD: {reason}"),
    });
    if let Some(e) = expiry {
        line(format!(
            "certificate: expires {} ({} days){}",
            time(e),
            (e - now) / 86_400,
            if e - now < 30 * 86_400 {
                " — RENEW IT"
            } else {
                ""
            }
        ));
    }
    out
}

/// What is wrong with the state directory itself, seen from here: not writable, or a
/// ledger missing from a directory that was used (the service then refuses to start).
fn local_problems(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if dir.exists() && nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_err() {
        out.push(format!(
            "the state directory {} is not writable: nothing can be delivered or purged",
            dir.display()
        ));
    }
    let used = ["secret", crate::retention::log::FILE_NAME]
        .iter()
        .any(|f| std::fs::metadata(dir.join(f)).is_ok_and(|m| m.len() > 0));
    if used && !crate::ledger::exists(dir) {
        out.push(format!(
            "the ledger {} is missing, empty or not a ledger: the service refuses to start \
             (restore it from a backup, or see `mss-dispatch audit reseal --new-ledger`)",
            crate::ledger::file(dir).display()
        ));
    }
    out
}

/// Each configured printer: its sites, its state as the running service last found it, and
/// the prints waiting for it.
fn printers(config: &Config, daemon: Option<&DaemonState>, c: &Counts) -> Vec<serde_json::Value> {
    let mut out: Vec<serde_json::Value> = Vec::new();
    for site in &config.sites {
        let Some(p) = &site.printer else { continue };
        if let Some(known) = out.iter_mut().find(|v| v["printer"] == p.uri.as_str()) {
            if let Some(sites) = known["sites"].as_array_mut() {
                sites.push(json!(site.finess.as_str()));
            }
            continue;
        }
        let health = daemon.and_then(|d| d.printers.get(&p.uri));
        out.push(json!({
            "printer": p.uri,
            "sites": [site.finess.as_str()],
            "state": health.map_or("unknown", |h| h.state.as_str()),
            "detail": health.and_then(|h| h.detail.clone()),
            "waiting": c.print_waiting.get(&p.uri).copied().unwrap_or(0),
        }));
    }
    out
}

/// The client certificate's expiry, read from its file (PEM; a PKCS#12 bundle needs its
/// password and is read by the daemon).
fn client_cert_expiry(config: &Config) -> Option<i64> {
    let Source::Imap(imap) = &config.source else {
        return None;
    };
    let path = imap.client_cert.as_ref()?;
    if is_pkcs12(path) {
        let creds = crate::source::imap::tls::load(imap, Timestamp::now()).ok()?;
        return creds.client_cert_validity.map(|(_, a)| a.as_second());
    }
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let cert = CertificateDer::pem_file_iter(path).ok()?.next()?.ok()?;
    crate::source::imap::tls::validity(&cert).map(|(_, a)| a.as_second())
}
