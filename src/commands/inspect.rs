//! `inspect`: what the daemon would decide for each message file, touching nothing. Patient
//! fields go to standard output only (the operator asked for them); errors on standard error
//! name the file, never its content.

use std::path::Path;
use std::process::ExitCode;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use crate::config_file;
use crate::core::retention::rfc3339;
use crate::core::{Context, Decision, Outcome, decide};

pub fn run(config_path: &Path, json: bool, messages: &[impl AsRef<Path>]) -> ExitCode {
    let config = match config_file::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return super::config_error();
        }
    };
    let (tz, fallback) = crate::tz::load_paris();
    if fallback {
        eprintln!("warning: no tz database (install tzdata); using the built-in Europe/Paris rule");
    }
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
            println!("{}", to_json(&path.display().to_string(), &outcome, &tz));
        } else {
            println!(
                "{}",
                to_text(&path.display().to_string(), &outcome, &tz, &ctx)
            );
        }
    }
    status
}

/// The `--json` line; its keys are a contract (extend, never rename).
pub fn to_json(file: &str, o: &Outcome, tz: &TimeZone) -> Value {
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
            Some(o.cert.result.unwrap_or(crate::core::result::ResultClass::Unknown).as_str())
        },
        "sampled_at": time(o.cert.sampled_at),
        "purge_at": time(o.decision.purge_at()),
        "rule": rule,
        "file_name": file_name,
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
