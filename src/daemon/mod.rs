//! The service's loop, once `commands::run` has read the configuration, taken the state
//! directory, recovered the ledger and made the source: it keeps the mailbox drained,
//! reconnects with jittered exponential backoff, waits with IDLE (re-issued at each safety
//! poll, so never near the 29-minute limit) or polls, runs the purge on its schedule, and
//! stops cleanly on SIGTERM or SIGINT: the batch in hand is finished and acknowledged, no new
//! one is started.

mod drain;
pub mod health;
mod keeper;
mod monitor;
mod passes;
mod reload;
pub mod report;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::core::config::Config;
use crate::core::finess::Finess;
use crate::delivery;
use crate::ledger::Ledger;
use crate::source::{self, Source, SourceError};
use crate::system::failure::LocalFailure;
use crate::system::state::StateDir;
use drain::Drainer;
pub use drain::{DrainStats, MAX_FETCH_ATTEMPTS};
use health::{Health, notify};

/// Everything the service runs with, ready.
pub struct Service {
    pub config: Config,
    /// Read again on SIGHUP.
    pub config_path: PathBuf,
    /// Site groups by FINESS.
    pub groups: HashMap<Finess, u32>,
    /// Held for as long as the service runs: no second service on the same directory.
    pub state: StateDir,
    /// Open, with the deliveries a crash interrupted finished.
    pub ledger: Ledger,
    pub secret: [u8; 32],
    pub tz: jiff::tz::TimeZone,
    pub source: source::Configured,
    /// One pass, then stop (`run --once`).
    pub once: bool,
}

/// Why the service stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum Stopped {
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// `--once`: the mailbox could not be drained.
    #[error("{0}")]
    Source(SourceError),
    /// `--once`: a local failure lasted.
    #[error("local failure: {0}")]
    Local(LocalFailure),
}

/// Runs the service until it is told to stop (or, with `once`, after one pass).
pub async fn serve(service: Service) -> Result<ExitCode, Stopped> {
    let Service {
        config,
        config_path,
        groups,
        state,
        ledger,
        secret,
        tz,
        mut source,
        once,
    } = service;
    delivery::create_site_folders(&config, &groups);

    let cancel = CancellationToken::new();
    let reloader: reload::Shared = Default::default();
    watch_signals(cancel.clone(), Arc::clone(&reloader)).map_err(Stopped::Signals)?;
    let health = Health::new();
    health.spawn_watchdog(cancel.clone());
    let config = Arc::new(config);
    let state_dir = state.path().to_path_buf();
    let mut drainer = Drainer {
        config: Arc::clone(&config),
        tz,
        groups: Arc::new(groups),
        ledger: Arc::new(Mutex::new(ledger)),
        state_dir: state_dir.clone(),
        secret: Arc::new(secret),
        health: Arc::clone(&health),
        suspects: Default::default(),
    };
    let (config_tx, config_rx) = tokio::sync::watch::channel(Arc::clone(&config));
    let mut control = passes::Control {
        config_path,
        reloader,
        config_tx,
        cancel: cancel.clone(),
        once,
    };
    let printer = crate::printing::worker::Worker::new(
        Arc::clone(&drainer.ledger),
        drainer.state_dir.clone(),
        drainer.tz.clone(),
    );
    let printers = Arc::clone(&printer.printers.health);
    let printing = spawn_printing(printer, config_rx.clone(), cancel.clone());
    let watcher = monitor::Monitor {
        health: Arc::clone(&health),
        config: config_rx,
        printers,
        state_dir,
        mailbox: source.describe(),
        cert_expiry: source.client_cert_expiry().map(jiff::Timestamp::as_second),
    }
    .spawn(cancel.clone());
    let result = passes::main_loop(&mut source, &mut drainer, &mut control).await;
    cancel.cancel();
    let _ = watcher.await;
    let _ = printing.await;
    notify(&[NotifyState::Stopping]);
    drop(state);
    result
}

/// The print worker, every second (a pass takes the prints due: most seconds, none).
fn spawn_printing(
    mut worker: crate::printing::worker::Worker,
    config: tokio::sync::watch::Receiver<Arc<Config>>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            let current = Arc::clone(&config.borrow());
            match worker.pass(&current, None).await {
                Ok(_) => failing = false,
                Err(f) => {
                    if !failing {
                        tracing::error!(class = f.class.as_str(), "ALERT: printing stopped: {f}");
                    }
                    failing = true;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = cancel.cancelled() => return,
            }
        }
    })
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
