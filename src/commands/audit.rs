//! `audit export` and `audit verify`: the retention log for auditors. Export answers "was
//! anything kept past its due time, and by how long?" from `purged` and
//! `server_copy_purged` records (`due`, `purged_at`, `lateness_seconds`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use jiff::Timestamp;

use super::{ConfigProblem, Outcome};
use crate::commands::cli::ExportFormat;
use crate::core::audit::Record;
use crate::core::finess::Finess;
use crate::ledger::Ledger;
use crate::retention::log;
use crate::system::state::WorkLock;

const CSV_COLUMNS: [&str; 20] = [
    "seq",
    "time",
    "event",
    "certificate",
    "site",
    "result",
    "sampled_on",
    "dossier_hmac",
    "destination",
    "reason",
    "rule",
    "due",
    "purged_at",
    "lateness_seconds",
    "folder",
    "by",
    "user",
    "overrides",
    "detail",
    "hash_prev",
];

pub struct Filter {
    pub since: Option<String>,
    pub until: Option<String>,
    pub site: Option<String>,
}

pub fn export(config_path: &Path, filter: Filter, format: ExportFormat) -> Outcome {
    let config = super::load_as_owner(config_path, false)?;
    let tz = crate::system::tz::paris();
    let bound = |s: &Option<String>, what: &str| -> anyhow::Result<Option<Timestamp>> {
        s.as_deref()
            .map(|s| {
                parse_time(s, &tz)
                    .ok_or_else(|| ConfigProblem::usage(format!("--{what} {s:?}: not a time")))
            })
            .transpose()
    };
    let since = bound(&filter.since, "since")?;
    let until = bound(&filter.until, "until")?;
    let site = match filter.site.as_deref().map(Finess::parse) {
        None => None,
        Some(Ok(f)) => Some(f.as_str().to_string()),
        Some(Err(e)) => return Err(ConfigProblem::usage(format!("--site: {e}"))),
    };
    let lines = log::read_lines(&log::path(&config.state_dir))?;
    if format == ExportFormat::Csv {
        println!("{}", CSV_COLUMNS.join(","));
    }
    for line in &lines {
        let Ok(record) = serde_json::from_str::<Record>(line) else {
            eprintln!("warning: skipping a line that is not a record (run `audit verify`)");
            continue;
        };
        let at = parse_time(&record.body.time, &tz);
        if since.is_some_and(|s| at.is_none_or(|t| t < s))
            || until.is_some_and(|u| at.is_none_or(|t| t >= u))
            || site
                .as_ref()
                .is_some_and(|s| record.body.site.as_ref() != Some(s))
        {
            continue;
        }
        match format {
            ExportFormat::Jsonl => println!("{line}"),
            ExportFormat::Csv => println!("{}", csv_row(&record)),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// RFC 3339, or a day (`2021-10-01`, the start of that day in Europe/Paris).
fn parse_time(s: &str, tz: &jiff::tz::TimeZone) -> Option<Timestamp> {
    s.parse::<Timestamp>().ok().or_else(|| {
        s.parse::<jiff::civil::Date>()
            .ok()
            .and_then(|d| d.to_zoned_datetime(tz.clone()).ok())
            .map(|z| z.timestamp())
    })
}

fn csv_row(r: &Record) -> String {
    let b = &r.body;
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    let fields = [
        r.seq.to_string(),
        b.time.clone(),
        b.event.map(|e| e.as_str().to_string()).unwrap_or_default(),
        num(b.certificate),
        opt(&b.site),
        opt(&b.result),
        opt(&b.sampled_on),
        opt(&b.dossier_hmac),
        opt(&b.destination),
        opt(&b.reason),
        opt(&b.rule),
        opt(&b.due),
        opt(&b.purged_at),
        num(b.lateness_seconds),
        opt(&b.folder),
        num(b.by),
        opt(&b.user),
        opt(&b.overrides),
        opt(&b.detail),
        r.prev.clone(),
    ];
    fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",")
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn verify(config_path: Option<&Path>, copy: Option<&Path>, expect: Option<&str>) -> Outcome {
    let (path, verdict, broken) = match (copy, config_path) {
        (Some(file), _) => {
            // A copy on its own: its chain, from its first record to its last.
            let verdict =
                log::read_lines(file).and_then(|lines| log::verify_lines(file, &lines, None));
            (file.to_path_buf(), verdict, None)
        }
        (None, Some(config_path)) => {
            let config = super::load_as_owner(config_path, false)?;
            let dir = &config.state_dir;
            // The ledger's head is read before the file: records appended meanwhile only
            // lengthen it. Without a ledger (a fresh directory) the chain is still checked.
            let (head, broken) = match Ledger::open_read_only(dir)? {
                Some(l) => (Some(log::ledger_head(&l)?), log::broken(&l)?),
                None => (None, None),
            };
            (log::path(dir), log::verify(dir, head.as_ref()), broken)
        }
        (None, None) => {
            return Err(ConfigProblem::usage("give --config or --log"));
        }
    };
    let chain = match verdict {
        Ok(chain) => chain,
        Err(e) => {
            // The verdict is the command's output, for the auditor.
            println!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    for r in &chain.reseals {
        println!(
            "record {} (line {}): a new segment started{}{}{}",
            r.seq,
            r.line,
            r.user
                .as_deref()
                .map(|u| format!(" by {u}"))
                .unwrap_or_default(),
            r.gap
                .map(|(a, b)| format!("; records {a} to {b} are missing"))
                .unwrap_or_default(),
            r.detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        );
    }
    println!(
        "{}: {} records, chain intact{}; head {}",
        path.display(),
        chain.records,
        if chain.reseals.is_empty() {
            String::new()
        } else {
            let n = chain.reseals.len();
            format!(
                " ({n} new segment{}, listed above)",
                if n == 1 { "" } else { "s" }
            )
        },
        chain.head.hash
    );
    if let Some(expected) = expect
        && !expected.eq_ignore_ascii_case(&chain.head.hash)
    {
        println!(
            "the log does NOT end with the expected head {expected}: records were added, cut \
             or replaced since it was taken"
        );
        return Ok(ExitCode::FAILURE);
    }
    if let Some(why) = broken {
        println!("the service cannot append to it: {why}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `audit reseal`: carries on after a real loss (a cut, deleted or replaced log, or a lost
/// ledger with `--new-ledger`), with a record that names the break.
pub fn reseal(config_path: &Path, reason: &str, new_ledger: bool) -> Outcome {
    let config = super::load_as_owner(config_path, false)?;
    if reason.trim().is_empty() {
        return Err(ConfigProblem::usage(
            "--reason: say why, in words: it is kept in the log forever",
        ));
    }
    let dir = &config.state_dir;
    let _work = WorkLock::take(dir).with_context(|| dir.display().to_string())?;
    match (crate::ledger::exists(dir), new_ledger) {
        (true, true) => {
            return Err(ConfigProblem::usage(format!(
                "{} holds a ledger: --new-ledger is only for a ledger that was lost",
                crate::ledger::file(dir).display()
            )));
        }
        (false, false) => {
            return Err(ConfigProblem::usage(format!(
                "there is no ledger in {}; if it was lost and cannot be restored from a \
                 backup, start a new one with --new-ledger",
                dir.display()
            )));
        }
        _ => {}
    }
    let mut ledger = Ledger::open(dir)?;
    let reason = if new_ledger {
        format!(
            "{reason} (a new ledger was started: files delivered before it are purged by the \
             orphan sweep, at the latest at the end of the longest retention)"
        )
    } else {
        reason.to_string()
    };
    let user = crate::system::operator::current_user();
    let tz = crate::system::tz::paris();
    let result = log::reseal(&mut ledger, dir, &reason, &user, &tz)
        .and_then(|body| log::flush(&mut ledger, dir).map(|f| (body, f)));
    let (body, flushed) = result.map_err(|e| {
        let advice = matches!(e, log::AuditError::Broken { .. }).then(|| {
            format!(
                "the log's chain breaks inside (an edit, not a cut): keep it as evidence \
                 (mv {p} {p}.broken), then run reseal again to start a new log",
                p = log::path(dir).display()
            )
        });
        match advice {
            Some(advice) => anyhow::Error::new(e).context(advice),
            None => e.into(),
        }
    })?;
    println!(
        "{}: a new segment starts{}; {} waiting records written",
        log::path(dir).display(),
        body.gap_from
            .zip(body.gap_to)
            .map(|(a, b)| format!(" (records {a} to {b} are missing, and said so)"))
            .unwrap_or_default(),
        flushed.appended
    );
    Ok(ExitCode::SUCCESS)
}
