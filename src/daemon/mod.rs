//! `mss-dispatch run`: the service. Wires the configuration, the ledger, the source and the
//! delivery together and keeps them going: reconnects with jittered exponential backoff,
//! waits with IDLE (re-issued at each safety poll, so never near the 29-minute limit) or
//! polls, and stops cleanly on SIGTERM or SIGINT: the batch in hand is finished and
//! acknowledged, no new one is started.

mod drain;
pub mod health;
mod keeper;
mod monitor;
mod reload;
pub mod report;

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::core::config::{Config, Source as SourceConfig};
use crate::core::finess::Finess;
use crate::delivery;
use crate::ledger::Ledger;
use crate::source::imap::{ImapSource, tls};
use crate::source::maildir::MaildirSource;
use crate::source::{Source, SourceError, Woken};
use crate::system::config_file;
use crate::system::failure::{Class, LocalFailure};
use crate::system::state::{StateDir, WorkLock};
use drain::Drainer;
pub use drain::{DrainStats, MAX_FETCH_ATTEMPTS};
use health::{Health, notify, status};
use keeper::Keeper;

/// How many consecutive failures `--once` tolerates before giving up.
const ONCE_ATTEMPTS: u32 = 4;

pub fn run(config_path: &Path, once: bool) -> ExitCode {
    crate::system::logging::init();
    let config = match config_file::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let groups = match resolve_groups(&config, config_path) {
        Ok(g) => g,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return ExitCode::from(2);
        }
    };
    let state = match StateDir::acquire(&config.state_dir) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = ledger_is_there(&config.state_dir) {
        tracing::error!("{e}");
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(serve(config, config_path, groups, state, once));
    runtime.shutdown_timeout(Duration::from_secs(2));
    code
}

/// Site groups by FINESS; an unknown group is a configuration error.
pub(crate) fn resolve_groups(
    config: &Config,
    file: &Path,
) -> Result<HashMap<Finess, u32>, Vec<String>> {
    let mut out = HashMap::new();
    let mut errors = Vec::new();
    for (i, site) in config.sites.iter().enumerate() {
        let Some(name) = &site.group else { continue };
        match nix::unistd::Group::from_name(name) {
            Ok(Some(g)) => {
                out.insert(site.finess.clone(), g.gid.as_raw());
            }
            Ok(None) => errors.push(format!(
                "{}: site[{i}].group: no group {name:?} on this machine",
                file.display()
            )),
            Err(e) => errors.push(format!(
                "{}: site[{i}].group: cannot look up {name:?}: {e}",
                file.display()
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

async fn serve(
    config: Config,
    config_path: &Path,
    groups: HashMap<Finess, u32>,
    state: StateDir,
    once: bool,
) -> ExitCode {
    let (tz, fallback) = crate::system::tz::load_paris();
    if fallback {
        tracing::warn!("no tz database (install tzdata): using the built-in Europe/Paris rule");
    }
    let state_dir = state.path().to_path_buf();
    let secret = match crate::system::state::secret(&state_dir) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!("secret in {}: {e}", state_dir.display());
            eprintln!("error: secret in {}: {e}", state_dir.display());
            return ExitCode::FAILURE;
        }
    };
    let ledger = match open_and_recover(&state_dir, &tz).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };

    delivery::create_site_folders(&config, &groups);

    let cancel = CancellationToken::new();
    let reloader: reload::Shared = Default::default();
    if let Err(e) = watch_signals(cancel.clone(), Arc::clone(&reloader)) {
        tracing::error!(error = %e, "cannot install signal handlers");
        return ExitCode::FAILURE;
    }
    let health = Health::new();
    health.spawn_watchdog(cancel.clone());
    let config = Arc::new(config);
    let mut drainer = Drainer {
        config: Arc::clone(&config),
        tz,
        groups: Arc::new(groups),
        ledger,
        state_dir,
        secret,
        health: Arc::clone(&health),
        suspects: Default::default(),
    };

    let (config_tx, config_rx) = tokio::sync::watch::channel(Arc::clone(&config));
    let mut control = Control {
        config_path: config_path.to_path_buf(),
        reloader,
        config_tx,
        cancel: cancel.clone(),
        once,
    };
    let monitor = |mailbox: String, cert_expiry: Option<i64>| monitor::Monitor {
        health: Arc::clone(&health),
        config: config_rx.clone(),
        state_dir: drainer.state_dir.clone(),
        mailbox,
        cert_expiry,
    };
    let code = match &config.source {
        SourceConfig::Maildir(root) => {
            let mut src = MaildirSource::new(root, &config.mailbox);
            let watcher = monitor(src.describe(), None).spawn(cancel.clone());
            let code = main_loop(&mut src, &mut drainer, &mut control).await;
            cancel.cancel();
            let _ = watcher.await;
            code
        }
        SourceConfig::Imap(imap) => match tls::load(imap, jiff::Timestamp::now()) {
            Ok(creds) => {
                let expiry = creds.client_cert_validity.map(|(_, not_after)| not_after);
                if let Some(not_after) = expiry {
                    tracing::info!(expires = %not_after, "client certificate loaded");
                }
                let mut src = ImapSource::new(imap, &config.mailbox, Arc::new(creds));
                let watcher = monitor(src.describe(), expiry.map(jiff::Timestamp::as_second))
                    .spawn(cancel.clone());
                let code = main_loop(&mut src, &mut drainer, &mut control).await;
                cancel.cancel();
                let _ = watcher.await;
                code
            }
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    };
    notify(&[NotifyState::Stopping]);
    cancel.cancel();
    drop(state);
    code
}

/// A state directory that was used (its `secret` or `retention.log` is there) must still hold
/// its ledger: a new one would forget every certificate delivered until now (their files
/// would never be purged) and the retention log could not go on. What happened, and what to
/// do, in words.
fn ledger_is_there(dir: &Path) -> Result<(), String> {
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
    Err(format!(
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
    ))
}

async fn open_and_recover(
    state_dir: &Path,
    tz: &jiff::tz::TimeZone,
) -> Result<Arc<Mutex<Ledger>>, String> {
    let dir = state_dir.to_path_buf();
    let tz = tz.clone();
    tokio::task::spawn_blocking(move || {
        let _work = WorkLock::take(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut ledger = Ledger::open(&dir).map_err(|e| e.to_string())?;
        let done = delivery::recover(&mut ledger, &tz).map_err(|e| e.to_string())?;
        let undone =
            delivery::release::undo_abandoned(&mut ledger, None).map_err(|e| e.to_string())?;
        if undone > 0 {
            tracing::warn!(
                files = undone,
                "undid a quarantine release interrupted by a crash; run it again"
            );
        }
        crate::retention::log::tighten(&dir);
        crate::retention::log::flush(&mut ledger, &dir).map_err(|e| e.to_string())?;
        if done != Default::default() {
            tracing::info!(
                published = done.published,
                discarded_temporary_files = done.discarded_temps,
                finished = done.finished,
                "finished deliveries interrupted by the last stop"
            );
        }
        Ok(Arc::new(Mutex::new(ledger)))
    })
    .await
    .map_err(|e| e.to_string())?
}

fn watch_signals(cancel: CancellationToken, reloader: reload::Shared) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let stop = cancel.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: the configuration will be read again");
                    reloader.request();
                }
                _ = stop.cancelled() => return,
            }
        }
    });
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: finishing the message in hand"),
            _ = int.recv() => tracing::info!("SIGINT: finishing the message in hand"),
        }
        notify(&[NotifyState::Stopping]);
        cancel.cancel();
    });
    Ok(())
}

fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(300))
        .with_jitter()
        .without_max_times()
        .build()
}

/// What the loop needs besides its source and drainer.
struct Control {
    config_path: std::path::PathBuf,
    reloader: reload::Shared,
    config_tx: tokio::sync::watch::Sender<Arc<Config>>,
    cancel: CancellationToken,
    once: bool,
}

impl Control {
    /// Applies a requested reload, between two passes.
    fn maybe_reload(&self, drainer: &mut Drainer, keeper: &mut Keeper) {
        if !self.reloader.take_request() {
            return;
        }
        match reload::reload(&self.config_path, &drainer.config) {
            Ok((config, groups)) => {
                delivery::create_site_folders(&config, &groups);
                let config = Arc::new(config);
                drainer.config = Arc::clone(&config);
                drainer.groups = Arc::new(groups);
                keeper.rewatch(&config);
                self.config_tx.send_replace(config);
                tracing::info!("configuration reloaded");
            }
            Err(errors) => {
                for e in &errors {
                    tracing::error!("{e}");
                }
                tracing::error!(
                    errors = errors.len(),
                    "the new configuration is not valid; the running one stays"
                );
            }
        }
    }
}

async fn main_loop<S: Source>(
    src: &mut S,
    drainer: &mut Drainer,
    control: &mut Control,
) -> ExitCode {
    let health = Arc::clone(&drainer.health);
    let mut delays = backoff();
    let mut local_delays = backoff();
    let mut failures = 0u32;
    // Ready once the ledger is open and recovered, before the mailbox is reached: a mailbox
    // out of reach at boot must not fail the unit, and the purge goes on meanwhile.
    notify(&[NotifyState::Ready]);
    status(&format!("connecting to {}", src.describe()));
    let mut total = DrainStats::default();
    let mut keeper = Keeper::new(&drainer.config, Arc::clone(&drainer.health));
    let ledger = Arc::clone(&drainer.ledger);
    let state_dir = drainer.state_dir.clone();
    let tz = drainer.tz.clone();
    let cancel = control.cancel.clone();
    let cancel = &cancel;
    let once = control.once;
    loop {
        if cancel.is_cancelled() {
            break;
        }
        control.maybe_reload(drainer, &mut keeper);
        let config = Arc::clone(&drainer.config);
        let config = &*config;
        health.beat();
        let pass = async {
            let key = src.open().await.map_err(Failure::Source)?;
            health.set_connected(true);
            drainer.drain(src, &key, cancel).await.map_err(|e| match e {
                drain::DrainError::Source(s) => Failure::Source(s),
                drain::DrainError::MessageFetch(s) => Failure::OneMessage(s),
                other => Failure::Local(
                    other
                        .local(&state_dir)
                        .unwrap_or_else(|| LocalFailure::new(Class::Io, &state_dir, &other)),
                ),
            })
        }
        .await;
        match pass {
            Ok(stats) => {
                failures = 0;
                delays = backoff();
                local_delays = backoff();
                health.set_error(None);
                // Files that could not be written (each said by an ALERT): the pass went on
                // for the others, and the failed ones are retried at the next pass.
                health.set_local(stats.local.as_ref());
                accumulate(&mut total, &stats);
                if stats.listed > 0 || stats.acked > 0 {
                    tracing::info!(
                        listed = stats.listed,
                        delivered = stats.delivered,
                        quarantined = stats.quarantined,
                        ignored = stats.ignored,
                        duplicates = stats.duplicates,
                        acknowledged = stats.acked,
                        failed = stats.failed,
                        "pass finished"
                    );
                }
                status(&format!(
                    "connected to {}; {} delivered, {} quarantined since start",
                    src.describe(),
                    total.delivered,
                    total.quarantined
                ));
                keeper
                    .maybe_run(src, true, config, &ledger, &state_dir, &tz)
                    .await;
                if once {
                    src.close().await;
                    return if stats.complete() {
                        ExitCode::SUCCESS
                    } else {
                        tracing::error!(failed = stats.failed, "some messages were not processed");
                        ExitCode::FAILURE
                    };
                }
            }
            Err(Failure::OneMessage(e)) => {
                // Counted against that message; the others go on after a short pause.
                health.set_connected(false);
                src.close().await;
                tracing::warn!("{e}");
                keeper
                    .maybe_run(src, false, config, &ledger, &state_dir, &tz)
                    .await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = cancel.cancelled() => break,
                }
                continue;
            }
            Err(Failure::Local(f)) => {
                // The server is not at fault: the session stays; the pass is tried again
                // after a pause that grows while the failure lasts.
                health.set_local(Some(&f));
                failures += 1;
                if once && failures >= ONCE_ATTEMPTS {
                    tracing::error!("ALERT: local failure: {f}");
                    eprintln!("error: {f}");
                    return ExitCode::FAILURE;
                }
                let delay = local_delays.next().unwrap_or(Duration::from_secs(300));
                tracing::error!(
                    class = f.class.as_str(),
                    retry_in = ?delay,
                    "ALERT: local failure: {f}; retried in {}s",
                    delay.as_secs()
                );
                status(&format!(
                    "LOCAL FAILURE ({}): retried in {}s",
                    f.class.as_str(),
                    delay.as_secs()
                ));
                let resume = std::time::Instant::now() + delay;
                loop {
                    keeper
                        .maybe_run(src, false, config, &ledger, &state_dir, &tz)
                        .await;
                    let left = resume.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    let nap = left.min(keeper.until_next().max(Duration::from_secs(1)));
                    tokio::select! {
                        _ = tokio::time::sleep(nap) => {}
                        _ = cancel.cancelled() => break,
                    }
                }
                if cancel.is_cancelled() {
                    break;
                }
                continue;
            }
            Err(Failure::Source(e)) => {
                health.set_connected(false);
                health.set_error(Some(e.to_string()));
                src.close().await;
                failures += 1;
                let fatal = e.is_fatal();
                if once && (fatal || failures >= ONCE_ATTEMPTS) {
                    tracing::error!("{e}");
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
                let delay = delays.next().unwrap_or(Duration::from_secs(300));
                let delay = if fatal {
                    delay.max(Duration::from_secs(60))
                } else {
                    delay
                };
                if fatal {
                    tracing::error!(retry_in = ?delay, "{e}");
                } else {
                    tracing::warn!(retry_in = ?delay, "{e}");
                }
                status(&format!("reconnecting in {}s: {e}", delay.as_secs()));
                // The local purge does not wait for the server.
                let resume = std::time::Instant::now() + delay;
                loop {
                    keeper
                        .maybe_run(src, false, config, &ledger, &state_dir, &tz)
                        .await;
                    let left = resume.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    let nap = left.min(keeper.until_next().max(Duration::from_secs(1)));
                    tokio::select! {
                        _ = tokio::time::sleep(nap) => {}
                        _ = cancel.cancelled() => break,
                    }
                }
                if cancel.is_cancelled() {
                    break;
                }
                continue;
            }
        }
        if cancel.is_cancelled() {
            break;
        }
        let quiet = config.mailbox.poll_interval;
        let quiet = health.max_quiet().map_or(quiet, |q| quiet.min(q));
        let quiet = quiet.min(keeper.until_next().max(Duration::from_secs(1)));
        // A reload request cuts the wait short (IDLE ends cleanly, the session stays).
        let wake = control.reloader.wait_token(cancel);
        match src.wait(quiet, &wake).await {
            Ok(Woken::Cancelled) if cancel.is_cancelled() => break,
            Ok(_) => {}
            Err(e) => {
                health.set_connected(false);
                tracing::warn!("{e}");
                src.close().await;
            }
        }
    }
    src.close().await;
    tracing::info!(
        delivered = total.delivered,
        quarantined = total.quarantined,
        "stopped"
    );
    ExitCode::SUCCESS
}

/// Why a pass ended early.
enum Failure {
    Source(SourceError),
    OneMessage(SourceError),
    /// On this machine: no reconnect, a pause, an ALERT.
    Local(LocalFailure),
}

fn accumulate(total: &mut DrainStats, s: &DrainStats) {
    total.delivered += s.delivered;
    total.quarantined += s.quarantined;
    total.ignored += s.ignored;
    total.duplicates += s.duplicates;
    total.acked += s.acked;
}
