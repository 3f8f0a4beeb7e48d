//! `run`: the service. Reads the configuration, takes the state directory, finishes what a
//! crash interrupted, makes the source, then hands over to `daemon::serve` until it stops.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use super::{ConfigProblem, Outcome};
use crate::daemon::{self, Service};
use crate::delivery;
use crate::ledger::Ledger;
use crate::source::{self, SourceError};
use crate::system::state::{StateDir, WorkLock};

pub fn run(config_path: &Path, once: bool) -> Outcome {
    let config = super::load(config_path)?;
    let groups = crate::system::groups::resolve(&config, config_path)
        .map_err(|errors| ConfigProblem::in_file(config_path, errors))?;
    let state = StateDir::acquire(&config.state_dir)?;
    ledger_is_there(&config.state_dir)?;
    let (tz, fallback) = crate::system::tz::load_paris();
    if fallback {
        tracing::warn!("no tz database (install tzdata): using the built-in Europe/Paris rule");
    }
    let secret = crate::system::state::secret(state.path())
        .with_context(|| format!("secret in {}", state.path().display()))?;
    let ledger = open_and_recover(state.path(), &tz)?;
    let source = source::from_config(&config, source::Mode::Act).map_err(|e| match e {
        SourceError::Fatal(why) => ConfigProblem::usage(why),
        other => other.into(),
    })?;
    if let Some(not_after) = source.client_cert_expiry() {
        tracing::info!(expires = %not_after, "client certificate loaded");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let service = Service {
        config,
        config_path: config_path.to_path_buf(),
        groups,
        state,
        ledger,
        secret,
        tz,
        source,
        once,
    };
    let result = runtime.block_on(daemon::serve(service));
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(result?)
}

/// A state directory that was used (its `secret` or `retention.log` is there) must still hold
/// its ledger: a new one would forget every certificate delivered until now (their files
/// would never be purged) and the retention log could not go on. What happened, and what to
/// do, in words.
fn ledger_is_there(dir: &Path) -> anyhow::Result<()> {
    if crate::ledger::exists(dir) {
        return Ok(());
    }
    let used: Vec<String> = ["secret", crate::retention::log::FILE_NAME]
        .iter()
        .filter(|f| std::fs::metadata(dir.join(f)).is_ok_and(|m| m.len() > 0))
        .map(|f| f.to_string())
        .collect();
    if used.is_empty() {
        return Ok(());
    }
    let ledger = crate::ledger::file(dir);
    let what = match std::fs::metadata(&ledger) {
        Err(_) => "is missing",
        Ok(m) if m.len() == 0 => "is empty",
        Ok(_) => "is not a ledger (corrupted, or another file)",
    };
    Err(ConfigProblem::usage(format!(
        "the ledger {} {what}, but this state directory was used before ({} {} here). \
         Starting a new ledger would forget every certificate delivered until now: their \
         files would never be purged, and the retention log could not go on. Restore the \
         ledger from a backup (stop the service, copy ledger.sqlite back, start it). If there \
         is none, start a new ledger deliberately: mss-dispatch audit reseal --new-ledger \
         --reason '…' --config FILE; the break is recorded in the retention log, and the files \
         delivered before are found by the orphan sweep and purged at the latest at the end \
         of the longest retention.",
        ledger.display(),
        used.join(" and "),
        if used.len() == 1 { "is" } else { "are" }
    )))
}

/// Opens the ledger and finishes what the last stop interrupted: deliveries between their
/// steps, a quarantine release, records not yet in the retention log.
fn open_and_recover(dir: &Path, tz: &jiff::tz::TimeZone) -> anyhow::Result<Ledger> {
    let _work = WorkLock::take(dir).with_context(|| dir.display().to_string())?;
    let mut ledger = Ledger::open(dir)?;
    let done = delivery::recover(&mut ledger, tz)?;
    let undone = delivery::release::undo_abandoned(&mut ledger, None)?;
    if undone > 0 {
        tracing::warn!(
            files = undone,
            "undid a quarantine release interrupted by a crash; run it again"
        );
    }
    crate::retention::log::tighten(dir);
    crate::retention::log::flush(&mut ledger, dir)?;
    if done != Default::default() {
        tracing::info!(
            published = done.published,
            discarded_temporary_files = done.discarded_temps,
            finished = done.finished,
            "finished deliveries interrupted by the last stop"
        );
    }
    Ok(ledger)
}
