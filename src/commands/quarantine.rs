//! `quarantine list | show | release | discard | retry`: where a person takes over from the
//! service. `list` names no patient; `show` is the one place patient fields are printed, on
//! standard output, for the person deciding. `release`, `discard` and `retry` work while the
//! daemon runs: they take the work lock for each certificate, as the daemon does for each
//! batch. Each action is recorded in the retention log with the Unix user who ran it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::json;

use crate::commands::cli::{QuarantineCommand, ResultArg};
use crate::core::config::Config;
use crate::core::decide::Overrides;
use crate::core::finess::Finess;
use crate::core::layout::CopyKind;
use crate::core::retention::rfc3339;
use crate::core::test_result::ResultClass;
use crate::core::{Context, Reason, decide_with};
use crate::delivery::Setting;
use crate::delivery::release::{self, ReleaseError, Resolution};
use crate::ledger::{Ledger, LedgerRead, MailboxKey, QuarantineRead, QuarantinedRow};
use crate::retention::server_copies;
use crate::system::state::WorkLock;

pub fn run(command: QuarantineCommand) -> ExitCode {
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
    let config = match super::load_as_owner(&path, |config| {
        if !writes_files {
            return Ok(Vec::new());
        }
        crate::daemon::resolve_groups(config, &path)
            .map(|g| g.into_values().collect())
            .map_err(|e| e.join("\n"))
    }) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let tz = crate::system::tz::paris();
    let result = match command {
        QuarantineCommand::List { json, .. } => list(&config, &tz, json),
        QuarantineCommand::Show { id, .. } => show(&config, &tz, id),
        QuarantineCommand::Release {
            id,
            site,
            result,
            sampled_at,
            ..
        } => match overrides(site, result, sampled_at, &tz) {
            Ok(o) => release_one(&config, &path, &tz, id, &o),
            Err(errors) => {
                for e in errors {
                    eprintln!("error: {e}");
                }
                return super::config_error();
            }
        },
        QuarantineCommand::Discard { id, .. } => discard(&config, &tz, id),
        QuarantineCommand::Retry { json, .. } => retry(&config, &path, &tz, json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
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
fn open(config: &Config) -> Result<Option<Ledger>, String> {
    Ledger::open_read_only(&config.state_dir).map_err(|e| e.to_string())
}

/// The ledger, to act on a certificate: it must exist already.
fn existing(dir: &Path) -> Result<Ledger, String> {
    Ledger::open_existing(dir)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "no ledger in {} yet: nothing is in quarantine",
                dir.display()
            )
        })
}

fn time(t: i64, tz: &TimeZone) -> String {
    Timestamp::from_second(t)
        .map(|t| rfc3339(t, tz))
        .unwrap_or_default()
}

fn day(t: i64, tz: &TimeZone) -> String {
    Timestamp::from_second(t)
        .map(|t| crate::core::layout::day(t, tz))
        .unwrap_or_default()
}

fn list(config: &Config, tz: &TimeZone, as_json: bool) -> Result<ExitCode, String> {
    let rows = match open(config)? {
        Some(ledger) => ledger.quarantined().map_err(|e| e.to_string())?,
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
fn kept_message(ledger: &Ledger, id: i64) -> Result<Option<(PathBuf, Vec<u8>)>, String> {
    let copies = ledger.copies(id).map_err(|e| e.to_string())?;
    let Some(eml) = copies.iter().find(|c| c.kind == CopyKind::QuarantineEml) else {
        return Ok(None);
    };
    match std::fs::read(&eml.path) {
        Ok(raw) => Ok(Some((eml.path.clone(), raw))),
        Err(e) => Err(format!("{}: {e}", eml.path.display())),
    }
}

fn show(config: &Config, tz: &TimeZone, id: i64) -> Result<ExitCode, String> {
    let Some(ledger) = open(config)? else {
        return Err(format!("no certificate {id}"));
    };
    let (Some(row), Some(rec)) = (
        ledger.certificate(id).map_err(|e| e.to_string())?,
        ledger.recorded(id).map_err(|e| e.to_string())?,
    ) else {
        return Err(format!("no certificate {id}"));
    };
    let mut out = Vec::new();
    let mut line = |k: &str, v: String| out.push(format!("{k:<24}{v}"));
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    line("certificate", id.to_string());
    line(
        "state",
        if row.purged_at.is_some() {
            format!("{} (purged)", rec.state)
        } else {
            rec.state.clone()
        },
    );
    if let Some(reason) = &rec.reason {
        let words = Reason::parse(reason).map_or("", Reason::explain);
        line("reason", format!("{reason}: {words}"));
    }
    if let Some(detail) = &rec.detail {
        line("detail", detail.clone());
    }
    line("received", time(row.received_at, tz));
    line("purge at", time(row.purge_at, tz));
    line("site (FINESS)", opt(&row.site));
    line("dossier", opt(&rec.dossier));
    line("nom", opt(&rec.nom));
    line("prénom", opt(&rec.prenom));
    line("sexe", opt(&rec.sexe));
    line("date de naissance", opt(&rec.birth_date));
    line("INS", opt(&rec.ins));
    line("result", opt(&row.result));
    line(
        "sampled",
        row.sampled_at.map_or_else(|| "-".into(), |t| time(t, tz)),
    );
    line(
        "integrated",
        rec.integrated_at
            .map_or_else(|| "-".into(), |t| time(t, tz)),
    );
    line("message-id", opt(&rec.message_id));

    // What the kept message says, read again, and what a release would do now.
    let kept = kept_message(&ledger, id)?;
    if let Some((_, raw)) = &kept {
        let ctx = Context {
            config,
            tz,
            received_at: Timestamp::from_second(row.received_at).unwrap_or_default(),
        };
        let o = decide_with(raw, &ctx, &Overrides::default());
        let c = &o.cert;
        let b = &c.body;
        line("sender", opt(&c.sender));
        line("subject FINESS", opt(&c.finess_text));
        line("attachment", opt(&c.attachment_name));
        line("body: nom", opt(&b.nom));
        line("body: prénom", opt(&b.prenom));
        line("body: FINESS", opt(&b.finess));
        line(
            "body: LOINC",
            format!("{} {}", opt(&b.loinc_code), opt(&b.loinc_label)),
        );
        line("body: prélèvement", opt(&b.sampled));
        line("body: intégration", opt(&b.integrated));
        line("body: résultat", opt(&b.result));
        line(
            "release now would",
            match &o.decision {
                crate::core::Decision::Deliver { site, rule, .. } => {
                    format!("deliver to {site} ({} rule)", rule.as_str())
                }
                crate::core::Decision::Quarantine { reason, .. } => {
                    format!("still quarantine it ({})", reason.as_str())
                }
                crate::core::Decision::Ignore { reason } => {
                    format!("ignore it ({})", reason.as_str())
                }
            },
        );
    } else {
        line(
            "message",
            "not kept: it was never downloaded (too large, or the server would not hand it \
             over); it is in the server's quarantine folder"
                .into(),
        );
    }
    for copy in ledger.copies(id).map_err(|e| e.to_string())? {
        line(
            &format!("file ({})", copy.kind.as_str()),
            format!("{} [{}]", copy.path.display(), copy.state.as_str()),
        );
    }
    for s in ledger.server_copies(id).map_err(|e| e.to_string())? {
        line(
            "server copy",
            format!(
                "{} uid {} [{}]{}{}",
                s.folder,
                s.item.as_deref().unwrap_or("?"),
                s.state,
                s.move_to
                    .map(|m| format!(", to move to {m}"))
                    .unwrap_or_default(),
                s.last_error
                    .map(|e| format!(", last error: {e}"))
                    .unwrap_or_default()
            ),
        );
    }
    for l in out {
        println!("{l}");
    }
    Ok(ExitCode::SUCCESS)
}

/// What one release attempt gave.
enum Attempt {
    Released(release::Released),
    Stays(String),
}

/// Releases one certificate under the work lock.
fn attempt(
    config: &Config,
    config_path: &Path,
    tz: &TimeZone,
    groups: &HashMap<Finess, u32>,
    id: i64,
    how: &Resolution,
) -> Result<Attempt, String> {
    let dir = &config.state_dir;
    let _work = WorkLock::take(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut ledger = existing(dir)?;
    match release::quarantined(&ledger, id) {
        Ok(_) => {}
        Err(ReleaseError::Refused(why)) => return Ok(Attempt::Stays(why)),
        Err(e) => return Err(e.to_string()),
    }
    let Some((_, raw)) = kept_message(&ledger, id)? else {
        return Ok(Attempt::Stays(
            "its message was never downloaded (too large, or the server would not hand it \
             over): handle it from the server's quarantine folder, then discard it"
                .into(),
        ));
    };
    let secret =
        crate::system::state::secret(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mailbox = MailboxKey {
        mailbox: config_path.display().to_string(),
        validity: String::new(),
    };
    let set = Setting {
        config,
        tz,
        groups,
        mailbox: &mailbox,
        secret: &secret,
    };
    let outcome = release::release(&mut ledger, &set, id, &raw, how, Timestamp::now());
    crate::retention::log::flush(&mut ledger, dir).map_err(|e| e.to_string())?;
    match outcome {
        Ok(r) => Ok(Attempt::Released(r)),
        Err(ReleaseError::Refused(why)) => Ok(Attempt::Stays(why)),
        Err(e) => Err(e.to_string()),
    }
}

fn groups(config: &Config, config_path: &Path) -> Result<HashMap<Finess, u32>, String> {
    crate::daemon::resolve_groups(config, config_path).map_err(|e| e.join("\n"))
}

fn release_one(
    config: &Config,
    config_path: &Path,
    tz: &TimeZone,
    id: i64,
    o: &Overrides,
) -> Result<ExitCode, String> {
    let groups = groups(config, config_path)?;
    let user = crate::system::operator::current_user();
    let how = Resolution {
        user: &user,
        overrides: o,
        by_name: true,
    };
    match attempt(config, config_path, tz, &groups, id, &how)? {
        Attempt::Released(r) => {
            println!("{}", released_text(config, &r, tz));
            println!("{}", server_step(config, id)?);
            Ok(ExitCode::SUCCESS)
        }
        Attempt::Stays(why) => {
            eprintln!("certificate {id} not released, nothing changed: {why}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn released_text(config: &Config, r: &release::Released, tz: &TimeZone) -> String {
    let name = Finess::parse(&r.site)
        .ok()
        .and_then(|f| config.site(&f).map(|s| s.name.clone()))
        .unwrap_or_default();
    let mut text = format!(
        "released certificate {} to {} ({name}): {} rule, purge at {}",
        r.certificate,
        r.site,
        r.rule,
        rfc3339(r.purge_at, tz)
    );
    // Folders only: file names carry the patient's name, which only `show` prints.
    let mut folders: Vec<&Path> = r.files.iter().filter_map(|f| f.parent()).collect();
    folders.dedup();
    for folder in folders {
        text.push_str(&format!("\n  into {}", folder.display()));
    }
    if let Some(old) = r.replaced {
        text.push_str(&format!("\n  it replaces certificate {old} (a re-send)"));
    }
    text
}

/// The server side of a release or a discard: done now through a connection of its own
/// when no daemon runs, else left to the daemon's next purge pass.
fn server_step(config: &Config, id: i64) -> Result<String, String> {
    let dir = &config.state_dir;
    if crate::daemon::report::daemon_running(dir) {
        return Ok(format!(
            "the service moves or deletes its server copy at its next purge pass (within {})",
            humantime(config.purge.check_interval)
        ));
    }
    let (moves, deletions) = {
        let ledger = existing(dir)?;
        let now = Timestamp::now().as_second();
        let moves: Vec<_> = ledger
            .pending_moves(usize::MAX >> 1)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|(c, _)| c.certificate == id)
            .collect();
        let deletions: Vec<_> = ledger
            .due_server_copies(now, usize::MAX >> 1)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|c| c.certificate == id)
            .collect();
        (moves, deletions)
    };
    if moves.is_empty() && deletions.is_empty() {
        return Ok("no server copy to handle".into());
    }
    let done = server_copies::alone(config, server_copies::Work { moves, deletions });
    let _work = WorkLock::take(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut ledger = existing(dir)?;
    let tz = crate::system::tz::paris();
    server_copies::record_moves(&mut ledger, &done.moved).map_err(|e| e.to_string())?;
    server_copies::record_server_results(&mut ledger, &done.deleted, Timestamp::now(), &tz)
        .map_err(|e| e.to_string())?;
    crate::retention::log::flush(&mut ledger, dir).map_err(|e| e.to_string())?;
    let failed: Vec<String> = done
        .moved
        .iter()
        .filter_map(|(_, r)| r.as_ref().err().cloned())
        .chain(
            done.deleted
                .iter()
                .filter_map(|(_, r)| r.as_ref().err().cloned()),
        )
        .collect();
    Ok(match failed.first() {
        None if done.deleted.is_empty() => "server copy moved to the processed folder".into(),
        None => "server copy deleted".into(),
        Some(e) => format!("server copy not handled yet ({e}): the service retries it"),
    })
}

fn humantime(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

fn discard(config: &Config, tz: &TimeZone, id: i64) -> Result<ExitCode, String> {
    let dir = &config.state_dir;
    let user = crate::system::operator::current_user();
    {
        let _work = WorkLock::take(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut ledger = existing(dir)?;
        let r = release::discard(&mut ledger, tz, id, &user, Timestamp::now());
        crate::retention::log::flush(&mut ledger, dir).map_err(|e| e.to_string())?;
        match r {
            Ok(()) => {}
            Err(ReleaseError::Refused(why)) => {
                eprintln!("certificate {id} not discarded: {why}");
                return Ok(ExitCode::FAILURE);
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    println!("discarded certificate {id}: its files and personal fields are purged");
    println!("{}", server_step(config, id)?);
    Ok(ExitCode::SUCCESS)
}

fn retry(
    config: &Config,
    config_path: &Path,
    tz: &TimeZone,
    as_json: bool,
) -> Result<ExitCode, String> {
    let rows = match open(config)? {
        Some(ledger) => ledger.quarantined().map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let groups = groups(config, config_path)?;
    let user = crate::system::operator::current_user();
    let none = Overrides::default();
    let how = Resolution {
        user: &user,
        overrides: &none,
        by_name: false,
    };
    let (mut released, mut stays) = (0, 0);
    for row in rows {
        let id = row.id;
        let result = attempt(config, config_path, tz, &groups, id, &how)?;
        let line = match &result {
            Attempt::Released(r) => {
                released += 1;
                let server = server_step(config, id)?;
                if as_json {
                    json!({
                        "id": id,
                        "released": true,
                        "site": r.site,
                        "rule": r.rule,
                        "purge_at": rfc3339(r.purge_at, tz),
                        "replaced": r.replaced,
                    })
                    .to_string()
                } else {
                    format!("{}\n  {server}", released_text(config, r, tz))
                }
            }
            Attempt::Stays(why) => {
                stays += 1;
                if as_json {
                    json!({
                        "id": id,
                        "released": false,
                        "reason": row.reason,
                        "why": why,
                    })
                    .to_string()
                } else {
                    format!(
                        "certificate {id} stays in quarantine ({}): {why}",
                        row.reason.as_deref().unwrap_or("-")
                    )
                }
            }
        };
        println!("{line}");
    }
    if !as_json {
        println!("{released} released, {stays} still in quarantine");
    }
    Ok(ExitCode::SUCCESS)
}
