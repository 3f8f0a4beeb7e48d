//! `mss-dispatch run`: the service. Wires the configuration, the ledger, the source and the
//! delivery together and keeps them going: reconnects with jittered exponential backoff,
//! waits with IDLE (re-issued at each safety poll, so never near the 29-minute limit) or
//! polls, and stops cleanly on SIGTERM or SIGINT: the batch in hand is finished and
//! acknowledged, no new one is started.

mod drain;
pub mod health;
mod keeper;

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::config_file;
use crate::core::config::{Config, Source as SourceConfig};
use crate::core::finess::Finess;
use crate::delivery;
use crate::ledger::Ledger;
use crate::source::imap::{ImapSource, tls};
use crate::source::maildir::MaildirSource;
use crate::source::{Source, SourceError, Woken};
use crate::state::{StateDir, WorkLock};
use drain::Drainer;
pub use drain::{DrainStats, MAX_FETCH_ATTEMPTS};
use health::{Health, notify, status};
use keeper::Keeper;

/// How many consecutive failures `--once` tolerates before giving up.
const ONCE_ATTEMPTS: u32 = 4;

pub fn run(config_path: &Path, once: bool) -> ExitCode {
    crate::logging::init();
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
    let code = runtime.block_on(serve(config, groups, state, once));
    runtime.shutdown_timeout(Duration::from_secs(2));
    code
}

/// Site groups by FINESS; an unknown group is a configuration error.
fn resolve_groups(config: &Config, file: &Path) -> Result<HashMap<Finess, u32>, Vec<String>> {
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
    groups: HashMap<Finess, u32>,
    state: StateDir,
    once: bool,
) -> ExitCode {
    let (tz, fallback) = crate::tz::load_paris();
    if fallback {
        tracing::warn!("no tz database (install tzdata): using the built-in Europe/Paris rule");
    }
    let state_dir = state.path().to_path_buf();
    let secret = match crate::state::secret(&state_dir) {
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

    // Site folders exist from the start, so that they can be watched and opened by staff.
    for site in &config.sites {
        let access = crate::spool::Access {
            gid: groups.get(&site.finess).copied(),
        };
        for dir in [&site.spool, &site.sil].into_iter().flatten() {
            if let Err(e) = crate::spool::ensure_dir(dir, access) {
                tracing::warn!(site = %site.finess, error = %e, "cannot create a site folder");
            }
        }
    }

    let cancel = CancellationToken::new();
    if let Err(e) = watch_signals(cancel.clone()) {
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

    let code = match &config.source {
        SourceConfig::Maildir(root) => {
            let mut src = MaildirSource::new(root, &config.mailbox);
            main_loop(&mut src, &mut drainer, &config, &cancel, once).await
        }
        SourceConfig::Imap(imap) => match tls::load(imap, jiff::Timestamp::now()) {
            Ok(creds) => {
                if let Some((_, not_after)) = creds.client_cert_validity {
                    tracing::info!(expires = %not_after, "client certificate loaded");
                }
                let mut src = ImapSource::new(imap, &config.mailbox, Arc::new(creds));
                main_loop(&mut src, &mut drainer, &config, &cancel, once).await
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
        crate::audit::tighten(&dir);
        crate::audit::flush(&mut ledger, &dir).map_err(|e| e.to_string())?;
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

fn watch_signals(cancel: CancellationToken) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
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

async fn main_loop<S: Source>(
    src: &mut S,
    drainer: &mut Drainer,
    config: &Config,
    cancel: &CancellationToken,
    once: bool,
) -> ExitCode {
    let health = Arc::clone(&drainer.health);
    let mut delays = backoff();
    let mut failures = 0u32;
    let mut ready = false;
    let mut total = DrainStats::default();
    let mut keeper = Keeper::new(config);
    let ledger = Arc::clone(&drainer.ledger);
    let state_dir = drainer.state_dir.clone();
    let tz = drainer.tz.clone();
    loop {
        if cancel.is_cancelled() {
            break;
        }
        health.beat();
        let pass = async {
            let key = src.open().await.map_err(Failure::Source)?;
            health.set_connected(true);
            if !ready {
                notify(&[NotifyState::Ready]);
                ready = true;
            }
            drainer.drain(src, &key, cancel).await.map_err(|e| match e {
                drain::DrainError::Source(s) => Failure::Source(s),
                drain::DrainError::MessageFetch(s) => Failure::OneMessage(s),
                other => Failure::Source(SourceError::Transient(other.to_string())),
            })
        }
        .await;
        match pass {
            Ok(stats) => {
                failures = 0;
                delays = backoff();
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
            Err(Failure::Source(e)) => {
                health.set_connected(false);
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
        match src.wait(quiet, cancel).await {
            Ok(Woken::Cancelled) => break,
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
}

fn accumulate(total: &mut DrainStats, s: &DrainStats) {
    total.delivered += s.delivered;
    total.quarantined += s.quarantined;
    total.ignored += s.ignored;
    total.duplicates += s.duplicates;
    total.acked += s.acked;
}
