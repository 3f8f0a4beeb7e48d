//! `quarantine list | show | release | discard | retry`: where a person takes over from the
//! service. `list` names no patient; `show` is the one place patient fields are printed, on
//! standard output, for the person deciding. `release`, `discard` and `retry` work while the
//! daemon runs: they take the work lock for each certificate, as the daemon does for each
//! batch. Each action is recorded in the retention log with the Unix user who ran it.

mod act;
mod show;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::json;

use crate::commands::cli::{QuarantineCommand, ResultArg};
use crate::commands::{ConfigProblem, Outcome};
use crate::core::config::Config;
use crate::core::decide::Overrides;
use crate::core::finess::Finess;
use crate::core::layout::CopyKind;
use crate::core::retention::rfc3339;
use crate::core::test_result::ResultClass;
use crate::ledger::{Ledger, LedgerRead, QuarantineRead, QuarantinedRow};

pub fn run(command: QuarantineCommand) -> Outcome {
    let path = match &command {
        QuarantineCommand::List { config, .. }
        | QuarantineCommand::Show { config, .. }
        | QuarantineCommand::Release { config, .. }
        | QuarantineCommand::Discard { config, .. }
        | QuarantineCommand::Retry { config, .. } => config.clone(),
    };
    // Releases write files with the sites' groups: the service's groups, as the unit has them.
    let writes_files = matches!(
        command,
        QuarantineCommand::Release { .. } | QuarantineCommand::Retry { .. }
    );
    let config = super::load_as_owner(&path, writes_files)?;
    let tz = crate::system::tz::paris();
    match command {
        QuarantineCommand::List { json, .. } => list(&config, &tz, json),
        QuarantineCommand::Show { id, .. } => show::show(&config, &tz, id),
        QuarantineCommand::Release {
            id,
            site,
            result,
            sampled_at,
            ..
        } => {
            let o = overrides(site, result, sampled_at, &tz).map_err(|problems| {
                anyhow::Error::from(ConfigProblem {
                    file: None,
                    problems,
                })
            })?;
            act::release_one(&config, &path, &tz, id, &o)
        }
        QuarantineCommand::Discard { id, .. } => act::discard(&config, &tz, id),
        QuarantineCommand::Retry { json, .. } => act::retry(&config, &path, &tz, json),
    }
}

/// The overrides of `release`, or every error in them.
fn overrides(
    site: Option<String>,
    result: Option<ResultArg>,
    sampled_at: Option<String>,
    tz: &TimeZone,
) -> Result<Overrides, Vec<String>> {
    let mut errors = Vec::new();
    let site = site.and_then(|s| {
        Finess::parse(&s)
            .map_err(|e| errors.push(format!("--site: {e}")))
            .ok()
    });
    let sampled_at = sampled_at.and_then(|s| {
        let t = parse_sampling(&s, tz);
        if t.is_none() {
            errors.push(format!(
                "--sampled-at: {s:?} is not a time (RFC 3339, 2021-10-28T09:30 or \
                 28/10/2021 09:30, Paris time)"
            ));
        }
        t
    });
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Overrides {
        site,
        result: result.map(|r| match r {
            ResultArg::Positive => ResultClass::Positive,
            ResultArg::Negative => ResultClass::Negative,
        }),
        sampled_at,
    })
}

/// RFC 3339; a civil time in Paris (`2021-10-28T09:30`); or as SI-DEP writes it.
fn parse_sampling(s: &str, tz: &TimeZone) -> Option<Timestamp> {
    s.parse::<Timestamp>()
        .ok()
        .or_else(|| {
            s.parse::<jiff::civil::DateTime>()
                .ok()
                .and_then(|d| tz.to_ambiguous_timestamp(d).earlier().ok())
        })
        .or_else(|| crate::core::dates::parse_instant(s, tz))
}

/// The ledger, read only (`list`, `show`); none on a fresh state directory.
pub(super) fn open(config: &Config) -> anyhow::Result<Option<Ledger>> {
    Ok(Ledger::open_read_only(&config.state_dir)?)
}

/// The ledger, to act on a certificate: it must exist already.
pub(super) fn existing(dir: &Path) -> anyhow::Result<Ledger> {
    Ledger::open_existing(dir)?.ok_or_else(|| {
        anyhow::anyhow!(
            "no ledger in {} yet: nothing is in quarantine",
            dir.display()
        )
    })
}

pub(super) fn time(t: i64, tz: &TimeZone) -> String {
    Timestamp::from_second(t)
        .map(|t| rfc3339(t, tz))
        .unwrap_or_default()
}

fn day(t: i64, tz: &TimeZone) -> String {
    Timestamp::from_second(t)
        .map(|t| crate::core::layout::day(t, tz))
        .unwrap_or_default()
}

fn list(config: &Config, tz: &TimeZone, as_json: bool) -> Outcome {
    let rows = match open(config)? {
        Some(ledger) => ledger.quarantined()?,
        None => Vec::new(),
    };
    if !as_json {
        if rows.is_empty() {
            println!("the quarantine is empty");
        } else {
            println!(
                "{:>6}  {:<25}  {:<27}  {:<9}  {:<10}  purge at",
                "id", "received", "reason", "site", "sampled"
            );
        }
    }
    for r in &rows {
        if as_json {
            println!("{}", list_json(r, tz));
        } else {
            println!(
                "{:>6}  {:<25}  {:<27}  {:<9}  {:<10}  {}",
                r.id,
                time(r.received_at, tz),
                r.reason.as_deref().unwrap_or("-"),
                r.site.as_deref().unwrap_or("-"),
                r.sampled_at.map_or_else(|| "-".into(), |t| day(t, tz)),
                time(r.purge_at, tz)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A `list --json` line; its keys are a contract (extend, never rename).
fn list_json(r: &QuarantinedRow, tz: &TimeZone) -> serde_json::Value {
    json!({
        "id": r.id,
        "received_at": time(r.received_at, tz),
        "reason": r.reason,
        "detail": r.detail,
        "site": r.site,
        "sampled_on": r.sampled_at.map(|t| day(t, tz)),
        "purge_at": time(r.purge_at, tz),
    })
}

/// The kept message of a certificate, if it was downloaded.
pub(super) fn kept_message(ledger: &Ledger, id: i64) -> anyhow::Result<Option<(PathBuf, Vec<u8>)>> {
    let copies = ledger.copies(id)?;
    let Some(eml) = copies.iter().find(|c| c.kind == CopyKind::QuarantineEml) else {
        return Ok(None);
    };
    match std::fs::read(&eml.path) {
        Ok(raw) => Ok(Some((eml.path.clone(), raw))),
        Err(e) => Err(anyhow::Error::new(e).context(eml.path.display().to_string())),
    }
}
