//! `inspect`: what the daemon would decide for each message file, or for each message of the
//! live mailbox (`--mailbox`, a dry run before going live), touching nothing. Patient fields
//! go to standard output only (the operator asked for them); errors on standard error name
//! the file or the mailbox, never a message's content.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use super::{ConfigProblem, Outcome as Done};
use crate::core::retention::rfc3339;
use crate::core::{Context, Decision, Outcome, Prescreen, decide, decide_oversized, prescreen};
use crate::source::{self, Mode, Source, SourceError};

pub fn run(config_path: &Path, json: bool, messages: &[impl AsRef<Path>]) -> Done {
    let config = super::load(config_path)?;
    let tz = paris();
    let ctx = Context {
        config: &config,
        tz: &tz,
        received_at: Timestamp::now(),
    };
    let mut status = ExitCode::SUCCESS;
    for path in messages {
        let path = path.as_ref();
        let raw = match std::fs::read(path) {
            Ok(raw) => raw,
            Err(e) => {
                eprintln!("{}: cannot read: {e}", path.display());
                status = ExitCode::FAILURE;
                continue;
            }
        };
        let outcome = decide(&raw, &ctx);
        if json {
            println!(
                "{}",
                to_json(&path.display().to_string(), &outcome, &tz, ctx.received_at)
            );
        } else {
            println!(
                "{}",
                to_text(&path.display().to_string(), &outcome, &tz, &ctx)
            );
        }
    }
    Ok(status)
}

/// The time zone; a warning when the system has no tz database.
fn paris() -> TimeZone {
    let (tz, fallback) = crate::system::tz::load_paris();
    if fallback {
        eprintln!("warning: no tz database (install tzdata); using the built-in Europe/Paris rule");
    }
    tz
}

/// Messages whose bodies are read at once from the mailbox.
const BODY_BATCH: usize = 32;

/// `inspect --mailbox`: connects with the `[mailbox]` settings, opens the folder read-only
/// and decides each message as the service would (mail that is not ours from its headers
/// only, as the service does), oldest first, at most `limit`. Nothing is written anywhere: no
/// flag, no move, no ledger, no file.
pub fn run_mailbox(config_path: &Path, json: bool, limit: Option<usize>) -> Done {
    let config = super::load(config_path)?;
    let tz = paris();
    let mut src = source::from_config(&config, Mode::Examine).map_err(|e| match e {
        SourceError::Fatal(why) => ConfigProblem::usage(why),
        other => other.into(),
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let ctx = Context {
        config: &config,
        tz: &tz,
        received_at: Timestamp::now(),
    };
    let print = |item: &str, mailbox: &str, outcome: &Outcome| {
        let file = format!("{mailbox};UID={item}");
        if json {
            let mut line = to_json(&file, outcome, &tz, ctx.received_at);
            line["uid"] = item
                .parse::<u32>()
                .map_or_else(|_| json!(item), |u| json!(u));
            println!("{line}");
        } else {
            println!("{}", to_text(&format!("UID {item}"), outcome, &tz, &ctx));
        }
    };
    let decided = runtime.block_on(async {
        let result = dry_run(&mut src, &ctx, limit, &print).await;
        src.close().await;
        result
    })?;
    eprintln!("{decided} messages decided; nothing was changed");
    Ok(ExitCode::SUCCESS)
}

/// Lists, reads and decides the messages of `src`; returns how many were decided.
async fn dry_run<S: Source>(
    src: &mut S,
    ctx: &Context<'_>,
    limit: Option<usize>,
    print: &impl Fn(&str, &str, &Outcome),
) -> Result<usize, SourceError> {
    src.open().await?;
    let mailbox = src.describe();
    let mut items = src.list().await?;
    if let Some(limit) = limit {
        items.truncate(limit);
    }
    let listed = src.headers(&items).await?;
    let mut decided = 0;
    let mut fetch: Vec<String> = Vec::new();
    let mut outcomes: std::collections::HashMap<String, Outcome> = Default::default();
    for l in &listed {
        match prescreen(&l.headers, l.size, ctx) {
            Prescreen::Ignore(_) | Prescreen::Oversized => {
                outcomes.insert(l.item.clone(), decide_oversized(&l.headers, ctx));
            }
            Prescreen::Fetch => fetch.push(l.item.clone()),
        }
    }
    for chunk in fetch.chunks(BODY_BATCH) {
        for (item, raw) in src.bodies(chunk).await? {
            outcomes.insert(item, decide(&raw, ctx));
        }
    }
    for item in &items {
        match outcomes.get(item) {
            Some(outcome) => {
                print(item, &mailbox, outcome);
                decided += 1;
            }
            None => eprintln!("UID {item}: gone from the folder while it was read"),
        }
    }
    Ok(decided)
}

/// Whether the service would record the certificate as expired: already due when it arrives
/// (sampled long ago), so never written anywhere.
fn expired_on_arrival(o: &Outcome, now: Timestamp) -> bool {
    matches!(o.decision, Decision::Deliver { .. })
        && o.decision.purge_at().is_some_and(|due| due <= now)
}

/// The `--json` line; its keys are a contract (extend, never rename). `expired_on_arrival`:
/// a `deliver` the service records as `expired` instead, writing nothing.
pub fn to_json(file: &str, o: &Outcome, tz: &TimeZone, now: Timestamp) -> Value {
    let time = |t: Option<Timestamp>| t.map(|t| rfc3339(t, tz));
    let (rule, file_name, detail) = match &o.decision {
        Decision::Deliver {
            rule, file_name, ..
        } => (Some(rule.as_str()), Some(file_name.as_str()), None),
        Decision::Quarantine { detail, .. } => (Some("quarantine"), None, Some(detail.as_str())),
        Decision::Ignore { .. } => (None, None, None),
    };
    let ignored = matches!(o.decision, Decision::Ignore { .. });
    json!({
        "file": file,
        "decision": o.decision.kind(),
        "reason": o.decision.reason().map(|r| r.as_str()),
        "detail": detail,
        "site": o.cert.site.as_ref().map(|f| f.as_str()),
        "dossier": o.cert.dossier,
        "result": if ignored { None } else {
            Some(o.cert.result.unwrap_or(crate::core::test_result::ResultClass::Unknown).as_str())
        },
        "sampled_at": time(o.cert.sampled_at),
        "purge_at": time(o.decision.purge_at()),
        "rule": rule,
        "file_name": file_name,
        "expired_on_arrival": expired_on_arrival(o, now),
    })
}

fn to_text(file: &str, o: &Outcome, tz: &TimeZone, ctx: &Context) -> String {
    match &o.decision {
        Decision::Deliver {
            site,
            file_name,
            rule,
            purge_at,
        } => {
            let name = ctx.config.site(site).map_or("", |s| s.name.as_str());
            let sampled = o
                .cert
                .sampled_at
                .map(|t| rfc3339(t, tz))
                .unwrap_or_default();
            if expired_on_arrival(o, ctx.received_at) {
                return format!(
                    "{file}: expired (already due on arrival): {} sampled {sampled} for {site} \
                     ({name}) was due at {}; the service writes it nowhere and records it as \
                     expired",
                    rule.as_str(),
                    rfc3339(*purge_at, tz)
                );
            }
            format!(
                "{file}: deliver to {site} ({name}) as {file_name:?}; {} sampled {sampled}, \
                 purge at {}",
                rule.as_str(),
                rfc3339(*purge_at, tz)
            )
        }
        Decision::Quarantine {
            reason,
            detail,
            purge_at,
        } => format!(
            "{file}: quarantine ({}: {detail}); purge at {}",
            reason.as_str(),
            rfc3339(*purge_at, tz)
        ),
        Decision::Ignore { reason } => {
            format!("{file}: ignore ({}: {})", reason.as_str(), reason.explain())
        }
    }
}
