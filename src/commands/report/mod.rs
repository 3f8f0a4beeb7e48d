//! `audit report --month YYYY-MM`: the monthly retention report the data-protection officer
//! signs. For the certificates *sampled* that month (received that month when the sampling
//! time is unknown): what arrived, by site and result; what became of each (purged on time,
//! purged late, still held, or overdue and not purged); quarantine outcomes and clock holds
//! from the retention log; and the log's own verdict and head. Ids, FINESS numbers and
//! pseudonyms only: no patient data.

mod html;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;

use super::{ConfigProblem, Outcome};
use crate::commands::cli::ReportFormat;
use crate::core::retention::rfc3339;
use crate::ledger::{CertState, CertificateRow, Ledger, LedgerRead};
use crate::retention::log;

/// A purge this long after its due time is still on time: the purge pass runs every
/// `retention.check_interval` (one minute by default).
pub const ON_TIME_SECONDS: i64 = 300;

/// One certificate named in the report: its id, site, rule and times.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub certificate: i64,
    pub site: Option<String>,
    pub rule: String,
    pub due: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purged_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lateness_seconds: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Finals {
    pub purged_on_time: usize,
    pub purged_late: usize,
    pub held: usize,
    pub overdue: usize,
    /// Never written anywhere: already due on arrival, or an older re-send.
    pub not_kept: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Quarantine {
    pub quarantined: usize,
    pub reasons: BTreeMap<String, usize>,
    pub released: usize,
    pub discarded: usize,
    pub still_in_quarantine: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogVerdict {
    pub intact: bool,
    pub records: u64,
    pub head: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Certificates held at the end of a day, by rule.
#[derive(Debug, Clone, Serialize)]
pub struct HeldOn {
    pub day: String,
    pub negative: usize,
    pub positive: usize,
    pub quarantine: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub month: String,
    pub generated_at: String,
    pub on_time_tolerance_seconds: i64,
    pub received: usize,
    /// Per site (FINESS, or `unknown`), per result.
    pub by_site: BTreeMap<String, BTreeMap<String, usize>>,
    /// Per state the certificates reached: delivered, quarantined, expired, …
    pub outcomes: BTreeMap<String, usize>,
    #[serde(rename = "final")]
    pub finals: Finals,
    pub late: Vec<Entry>,
    pub held: Vec<Entry>,
    /// Due and not purged: must be empty.
    pub overdue: Vec<Entry>,
    pub quarantine: Quarantine,
    pub clock_holds: usize,
    pub lateness_histogram: Vec<(String, usize)>,
    pub held_over_time: Vec<HeldOn>,
    pub retention_log: LogVerdict,
}

pub fn run(config_path: &Path, month: &str, format: ReportFormat) -> Outcome {
    let config = super::load_as_owner(config_path, false)?;
    let tz = crate::system::tz::paris();
    let first = parse_month(month)?;
    let dir = &config.state_dir;
    let ledger = Ledger::open_read_only(dir)?;
    let head = match &ledger {
        Some(l) => Some(log::ledger_head(l)?),
        None => None,
    };
    let (from, to) = (start_of(first, &tz)?, start_of(next_month(first)?, &tz)?);
    let certificates = match &ledger {
        Some(l) => l.certificates_sampled(from, to)?,
        None => Vec::new(),
    };
    let path = log::path(dir);
    // The log is read once: its chain checked, its records counted.
    let (lines, checked) = match log::read_lines(&path) {
        Ok(lines) => {
            let checked = log::verify_lines(&path, &lines, head.as_ref());
            (lines, checked)
        }
        Err(e) => (Vec::new(), Err(e)),
    };
    let verdict = match checked {
        Ok(chain) => LogVerdict {
            intact: true,
            records: chain.records,
            head: chain.head.hash,
            problem: None,
        },
        Err(e) => LogVerdict {
            intact: false,
            records: lines.len() as u64,
            head: lines
                .last()
                .map(|l| crate::core::audit::line_hash(l))
                .unwrap_or_default(),
            problem: Some(e.to_string()),
        },
    };
    let report = build(
        month,
        &certificates,
        &lines,
        verdict,
        Timestamp::now(),
        &tz,
        first,
    );
    match format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        ReportFormat::Text => print!("{}", text(&report)),
        ReportFormat::Html => print!("{}", html::render(&report)),
    }
    Ok(
        if report.overdue.is_empty() && report.retention_log.intact {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

fn parse_month(month: &str) -> anyhow::Result<Date> {
    let bad = || ConfigProblem::usage(format!("--month {month:?}: give YYYY-MM, e.g. 2026-10"));
    let (y, m) = month.split_once('-').ok_or_else(bad)?;
    let (y, m): (i16, i8) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    Date::new(y, m, 1).map_err(|_| bad())
}

fn next_month(d: Date) -> anyhow::Result<Date> {
    d.checked_add(jiff::Span::new().months(1))
        .context("month out of range")
}

fn start_of(d: Date, tz: &TimeZone) -> anyhow::Result<i64> {
    Ok(d.to_zoned_datetime(tz.clone())
        .context("month out of range")?
        .timestamp()
        .as_second())
}

fn time(t: i64, tz: &TimeZone) -> String {
    Timestamp::from_second(t)
        .map(|t| rfc3339(t, tz))
        .unwrap_or_default()
}

/// The report, from the month's certificates and the retention log's lines.
pub fn build(
    month: &str,
    certificates: &[CertificateRow],
    log_lines: &[String],
    retention_log: LogVerdict,
    now: Timestamp,
    tz: &TimeZone,
    first: Date,
) -> Report {
    let now_s = now.as_second();
    let ids: HashSet<i64> = certificates.iter().map(|c| c.id).collect();
    let mut by_site: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut finals = Finals::default();
    let (mut late, mut held, mut overdue) = (Vec::new(), Vec::new(), Vec::new());
    let mut buckets = [0usize; 4];
    let mut quarantine = Quarantine::default();
    for c in certificates {
        let site = c.site.clone().unwrap_or_else(|| "unknown".into());
        let result = c.result.clone().unwrap_or_else(|| "unknown".into());
        *by_site.entry(site).or_default().entry(result).or_default() += 1;
        *outcomes.entry(c.state.as_str().to_string()).or_default() += 1;
        let entry = |purged: Option<i64>| Entry {
            certificate: c.id,
            site: c.site.clone(),
            rule: c.rule.clone(),
            due: time(c.purge_at, tz),
            purged_at: purged.map(|p| time(p, tz)),
            lateness_seconds: purged.map(|p| (p - c.purge_at).max(0)),
        };
        if c.state == CertState::Quarantined && c.purged_at.is_none() {
            quarantine.still_in_quarantine += 1;
        }
        if matches!(c.state, CertState::Expired | CertState::Stale) {
            finals.not_kept += 1;
        } else if let Some(p) = c.purged_at {
            let lateness = (p - c.purge_at).max(0);
            let bucket = match lateness {
                l if l <= ON_TIME_SECONDS => 0,
                l if l <= 3600 => 1,
                l if l <= 86_400 => 2,
                _ => 3,
            };
            buckets[bucket] += 1;
            if bucket == 0 {
                finals.purged_on_time += 1;
            } else {
                finals.purged_late += 1;
                late.push(entry(Some(p)));
            }
        } else if c.purge_at > now_s {
            finals.held += 1;
            held.push(entry(None));
        } else {
            finals.overdue += 1;
            overdue.push(entry(None));
        }
    }
    let mut clock_holds = 0;
    for line in log_lines {
        let Ok(r) = serde_json::from_str::<crate::core::audit::Record>(line) else {
            continue;
        };
        let ours = r.body.certificate.is_some_and(|c| ids.contains(&c));
        match r.body.event.map(|e| e.as_str()) {
            Some("quarantined") if ours => {
                quarantine.quarantined += 1;
                let reason = r.body.reason.unwrap_or_else(|| "unknown".into());
                *quarantine.reasons.entry(reason).or_default() += 1;
            }
            Some("released") if ours => quarantine.released += 1,
            Some("discarded") if ours => quarantine.discarded += 1,
            Some("clock_hold") if r.body.time.starts_with(month) => clock_holds += 1,
            _ => {}
        }
    }
    let lateness_histogram = ["on time", "up to 1 hour late", "up to 1 day late", "later"]
        .iter()
        .zip(buckets)
        .map(|(l, n)| (l.to_string(), n))
        .collect();
    Report {
        month: month.to_string(),
        generated_at: rfc3339(now, tz),
        on_time_tolerance_seconds: ON_TIME_SECONDS,
        received: certificates.len(),
        by_site,
        outcomes,
        finals,
        late,
        held,
        overdue,
        quarantine,
        clock_holds,
        lateness_histogram,
        held_over_time: held_over_time(certificates, first, now, tz),
        retention_log,
    }
}

/// Certificates held at the end of each day, from the first of the month to today (or seven
/// months on, when all of them are due by then).
fn held_over_time(
    certificates: &[CertificateRow],
    first: Date,
    now: Timestamp,
    tz: &TimeZone,
) -> Vec<HeldOn> {
    let mut out = Vec::new();
    let mut day = first;
    let last = first
        .checked_add(jiff::Span::new().months(7))
        .unwrap_or(first);
    while day <= last {
        let Some(end) = day
            .tomorrow()
            .ok()
            .and_then(|d| d.to_zoned_datetime(tz.clone()).ok())
            .map(|z| z.timestamp().as_second())
        else {
            break;
        };
        if end > now.as_second() + 86_400 {
            break;
        }
        let mut h = HeldOn {
            day: day.to_string(),
            negative: 0,
            positive: 0,
            quarantine: 0,
        };
        for c in certificates {
            let written = !matches!(c.state, CertState::Expired | CertState::Stale);
            if written && c.received_at < end && c.purged_at.is_none_or(|p| p >= end) {
                match c.rule.as_str() {
                    "negative" => h.negative += 1,
                    "positive" => h.positive += 1,
                    _ => h.quarantine += 1,
                }
            }
        }
        out.push(h);
        day = match day.tomorrow() {
            Ok(d) => d,
            Err(_) => break,
        };
    }
    out
}

/// The report as text, for a terminal or a mail.
pub fn text(r: &Report) -> String {
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(format!(
        "Retention report: certificates sampled in {} (generated {})",
        r.month, r.generated_at
    ));
    line(format!("received:      {}", r.received));
    for (site, results) in &r.by_site {
        let parts: Vec<String> = results.iter().map(|(k, n)| format!("{k} {n}")).collect();
        line(format!("  site {site}: {}", parts.join(", ")));
    }
    let outcomes: Vec<String> = r.outcomes.iter().map(|(k, n)| format!("{k} {n}")).collect();
    line(format!("outcomes:      {}", outcomes.join(", ")));
    let f = &r.finals;
    line(format!(
        "final state:   purged on time {}, purged late {}, still held {}, OVERDUE {}, never kept {}",
        f.purged_on_time, f.purged_late, f.held, f.overdue, f.not_kept
    ));
    for e in &r.late {
        line(format!(
            "  late: certificate {} ({} {}) due {} purged {} ({} s late)",
            e.certificate,
            e.site.as_deref().unwrap_or("-"),
            e.rule,
            e.due,
            e.purged_at.as_deref().unwrap_or("-"),
            e.lateness_seconds.unwrap_or(0)
        ));
    }
    if r.overdue.is_empty() {
        line("overdue:       none".into());
    }
    for e in &r.overdue {
        line(format!(
            "  OVERDUE, NOT PURGED: certificate {} ({} {}) due {}",
            e.certificate,
            e.site.as_deref().unwrap_or("-"),
            e.rule,
            e.due
        ));
    }
    let q = &r.quarantine;
    line(format!(
        "quarantine:    {} quarantined, {} released, {} discarded, {} still in quarantine",
        q.quarantined, q.released, q.discarded, q.still_in_quarantine
    ));
    line(format!("clock holds:   {}", r.clock_holds));
    let l = &r.retention_log;
    line(format!(
        "retention log: {}, {} records, head {}",
        if l.intact { "chain intact" } else { "BROKEN" },
        l.records,
        l.head
    ));
    if let Some(p) = &l.problem {
        line(format!("  {p}"));
    }
    s
}
