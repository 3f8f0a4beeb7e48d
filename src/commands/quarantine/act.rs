//! `quarantine release`, `discard` and `retry`: each certificate under the work lock, as the
//! daemon does for each batch; the server side done now when no daemon runs.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::json;

use super::{existing, kept_message, open};
use crate::commands::{ConfigProblem, Outcome};
use crate::core::config::Config;
use crate::core::decide::Overrides;
use crate::core::finess::Finess;
use crate::core::retention::rfc3339;
use crate::delivery::Setting;
use crate::delivery::release::{self, ReleaseError, Resolution};
use crate::ledger::{LedgerRead, MailboxKey, QuarantineRead};
use crate::retention::server_copies;
use crate::system::state::WorkLock;

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
) -> anyhow::Result<Attempt> {
    let dir = &config.state_dir;
    let _work = WorkLock::take(dir).with_context(|| dir.display().to_string())?;
    let mut ledger = existing(dir)?;
    match release::quarantined(&ledger, id) {
        Ok(_) => {}
        Err(ReleaseError::Refused(why)) => return Ok(Attempt::Stays(why)),
        Err(e) => return Err(e.into()),
    }
    let Some((_, raw)) = kept_message(&ledger, id)? else {
        return Ok(Attempt::Stays(
            "its message was never downloaded (too large, or the server would not hand it \
             over): handle it from the server's quarantine folder, then discard it"
                .into(),
        ));
    };
    let secret = crate::system::state::secret(dir).with_context(|| dir.display().to_string())?;
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
    crate::retention::log::flush(&mut ledger, dir)?;
    match outcome {
        Ok(r) => Ok(Attempt::Released(r)),
        Err(ReleaseError::Refused(why)) => Ok(Attempt::Stays(why)),
        Err(e) => Err(e.into()),
    }
}

fn groups(config: &Config, config_path: &Path) -> anyhow::Result<HashMap<Finess, u32>> {
    crate::system::groups::resolve(config, config_path)
        .map_err(|errors| ConfigProblem::in_file(config_path, errors))
}

pub(super) fn release_one(
    config: &Config,
    config_path: &Path,
    tz: &TimeZone,
    id: i64,
    o: &Overrides,
) -> Outcome {
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
fn server_step(config: &Config, id: i64) -> anyhow::Result<String> {
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
            .pending_moves(usize::MAX >> 1)?
            .into_iter()
            .filter(|(c, _)| c.certificate == id)
            .collect();
        let deletions: Vec<_> = ledger
            .due_server_copies(now, usize::MAX >> 1)?
            .into_iter()
            .filter(|c| c.certificate == id)
            .collect();
        (moves, deletions)
    };
    if moves.is_empty() && deletions.is_empty() {
        return Ok("no server copy to handle".into());
    }
    let done = server_copies::alone(config, server_copies::Work { moves, deletions });
    let _work = WorkLock::take(dir).with_context(|| dir.display().to_string())?;
    let mut ledger = existing(dir)?;
    let tz = crate::system::tz::paris();
    server_copies::record_moves(&mut ledger, &done.moved)?;
    server_copies::record_server_results(&mut ledger, &done.deleted, Timestamp::now(), &tz)?;
    crate::retention::log::flush(&mut ledger, dir)?;
    let failed: Vec<String> = done
        .moved
        .iter()
        .filter_map(|(_, r)| r.as_ref().err().map(ToString::to_string))
        .chain(
            done.deleted
                .iter()
                .filter_map(|(_, r)| r.as_ref().err().map(ToString::to_string)),
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

pub(super) fn discard(config: &Config, tz: &TimeZone, id: i64) -> Outcome {
    let dir = &config.state_dir;
    let user = crate::system::operator::current_user();
    {
        let _work = WorkLock::take(dir).with_context(|| dir.display().to_string())?;
        let mut ledger = existing(dir)?;
        let r = release::discard(&mut ledger, tz, id, &user, Timestamp::now());
        crate::retention::log::flush(&mut ledger, dir)?;
        match r {
            Ok(()) => {}
            Err(ReleaseError::Refused(why)) => {
                eprintln!("certificate {id} not discarded: {why}");
                return Ok(ExitCode::FAILURE);
            }
            Err(e) => return Err(e.into()),
        }
    }
    println!("discarded certificate {id}: its files and personal fields are purged");
    println!("{}", server_step(config, id)?);
    Ok(ExitCode::SUCCESS)
}

pub(super) fn retry(config: &Config, config_path: &Path, tz: &TimeZone, as_json: bool) -> Outcome {
    let rows = match open(config)? {
        Some(ledger) => ledger.quarantined()?,
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
