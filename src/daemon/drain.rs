//! One pass over the folder: list what is there, acknowledge what is already settled, screen
//! the rest by their headers (mail that is not ours is never downloaded), fetch the bodies in
//! bounded batches and deliver them. Three batches are at work at once: one downloading, the
//! one before it being decided (parsed, decoded, hashed), and the one before that being
//! written to disk; a batch is acknowledged at the source only once it is written, that is
//! once its files and ledger rows are durable.
//!
//! Longer than 400 lines on purpose: the pass, its pipeline of batches and the bookkeeping of
//! what is acknowledged when are one protocol, read top to bottom.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::health::Health;
use crate::core::config::Config;
use crate::core::finess::Finess;
use crate::core::{Context, Prescreen, prescreen};
use crate::delivery::{self, Ack, BatchReport, Decided, DeliveryError, Fetched, Setting};
use crate::ledger::locked::{LockError, locked, with_ledger};
use crate::ledger::{Disposition, Ledger, LedgerRead, MailboxKey, MessageRow, ServerCopy};
use crate::source::{AckTarget, Listed, Source, SourceError};
use crate::system::failure::{Class, LocalFailure};

/// An acknowledgement the source carried out, and where the message went.
type Acked = (Ack, Option<ServerCopy>);

/// After this many failed downloads a message is quarantined without its body.
pub const MAX_FETCH_ATTEMPTS: i64 = 3;
/// A download batch: at most this many messages and `BATCH_BYTES`. Three batches are in
/// memory at once (one downloading, one decided, one being written). Each batch waits on four
/// flushes in a row whatever its size (plan, files, folders, publication; the key file once
/// every 64 certificates), so larger batches should drain faster, but on the bench machine
/// 1.25 and 1.5 MiB were within the rounds' noise of 1 MiB while they took the peak RSS of a
/// drain of 5,000 messages from 21.6 to 22.5 and 23.7 MB (`scripts/bench`): 1 MiB keeps it
/// under 24 MB with a margin.
const BATCH_MESSAGES: usize = 16;
/// Messages whose headers are fetched and screened at a time.
const SCREEN_CHUNK: usize = 200;
/// Acknowledgements are sent by groups of at least this many (or at the end of the pass):
/// each MOVE is a round trip and a transaction on the server.
const ACK_GROUP: usize = 256;
/// See `BATCH_MESSAGES`.
const BATCH_BYTES: u64 = 1024 * 1024;
/// The retention log is appended (and synced) after this many batches, and at the end of the
/// pass: its records wait in the ledger, durable, until then.
const LOG_EVERY_BATCHES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Downloading one message failed and was counted against it: progress, not an outage.
    #[error("one message could not be downloaded: {0}")]
    MessageFetch(SourceError),
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    #[error(transparent)]
    Audit(#[from] crate::retention::log::AuditError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("ledger task: {0}")]
    Task(tokio::task::JoinError),
}

impl DrainError {
    /// The local failure this is (anything but the source's).
    pub fn local(&self, state_dir: &Path) -> Option<LocalFailure> {
        match self {
            DrainError::Source(_) | DrainError::MessageFetch(_) => None,
            DrainError::Delivery(e) => Some(e.into()),
            DrainError::Audit(e) => Some(e.into()),
            DrainError::Lock(e) => Some(LocalFailure::new(Class::Io, &e.dir, &e.problem)),
            DrainError::Task(e) => Some(LocalFailure::new(Class::Io, state_dir, e)),
        }
    }
}

impl From<crate::ledger::LedgerError> for DrainError {
    fn from(e: crate::ledger::LedgerError) -> Self {
        DrainError::Delivery(DeliveryError::Ledger(e))
    }
}

/// What the daemon holds across passes.
pub struct Drainer {
    pub config: Arc<Config>,
    pub tz: TimeZone,
    pub groups: Arc<HashMap<Finess, u32>>,
    pub ledger: Arc<Mutex<Ledger>>,
    pub state_dir: PathBuf,
    /// The installation's secret for dossier pseudonyms.
    pub secret: Arc<[u8; 32]>,
    pub health: Arc<Health>,
    /// Messages whose batch download failed: fetched one at a time from now on, so that one
    /// bad message cannot hold the others back.
    pub suspects: HashSet<String>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DrainStats {
    pub listed: usize,
    pub delivered: usize,
    pub quarantined: usize,
    pub ignored: usize,
    pub duplicates: usize,
    pub acked: usize,
    /// Messages left in the folder because something failed (they are retried).
    pub failed: usize,
    pub cancelled: bool,
    /// The first local failure of the pass (a batch whose files could not be written, a
    /// retention log that could not be written).
    pub local: Option<LocalFailure>,
    /// The retention log is broken: why.
    pub log_broken: Option<String>,
    /// A batch was written whose records are not in the retention log yet.
    unlogged: bool,
}

impl DrainStats {
    fn add(&mut self, r: &BatchReport) {
        self.delivered += r.delivered.len();
        self.quarantined += r.quarantined.len();
        self.ignored += r.ignored;
        self.duplicates += r.duplicates;
        self.failed += r.failed.len();
        if self.local.is_none() {
            self.local = r.local.clone();
        }
    }

    pub fn complete(&self) -> bool {
        self.failed == 0 && !self.cancelled
    }
}

impl Drainer {
    /// Runs `f` on the ledger in the blocking pool, holding the work lock.
    async fn with_ledger<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Ledger) -> Result<T, DrainError> + Send + 'static,
    ) -> Result<T, DrainError> {
        with_ledger(&self.ledger, &self.state_dir, |l, _| f(l)).await
    }

    /// The shell's view of the configuration, for the blocking pool.
    fn setting_parts(&self, key: &MailboxKey) -> SettingParts {
        SettingParts {
            config: Arc::clone(&self.config),
            groups: Arc::clone(&self.groups),
            tz: self.tz.clone(),
            key: key.clone(),
            secret: Arc::clone(&self.secret),
        }
    }

    /// Decides a batch in the blocking pool (no ledger needed): batch k+1 is decided while
    /// batch k is written.
    fn spawn_decide(&self, key: &MailboxKey, batch: Vec<Fetched>) -> JoinHandle<Decided> {
        let parts = self.setting_parts(key);
        let now = Timestamp::now();
        tokio::task::spawn_blocking(move || delivery::decide_batch(&parts.setting(), batch, now))
    }

    /// Writes a batch once it is decided, in the blocking pool; records first the
    /// acknowledgements `acked` that the source already carried out (in the same commit as the
    /// plan).
    fn spawn_write(
        &self,
        key: &MailboxKey,
        decided: JoinHandle<Decided>,
        acked: Vec<Acked>,
        log: bool,
    ) -> JoinHandle<Result<BatchReport, DrainError>> {
        let ledger = Arc::clone(&self.ledger);
        let state = self.state_dir.clone();
        let parts = self.setting_parts(key);
        tokio::spawn(async move {
            let decided = join(decided).await?;
            join(tokio::task::spawn_blocking(move || {
                locked(&ledger, &state, |ledger, _| {
                    let mut report =
                        delivery::deliver_decided(ledger, &parts.setting(), decided, &acked)?;
                    report.unlogged = true;
                    if log {
                        write_log(ledger, &state, &mut report);
                    }
                    Ok(report)
                })
            }))
            .await?
        })
    }

    /// Decides then writes a batch.
    fn spawn_batch(
        &self,
        key: &MailboxKey,
        batch: Vec<Fetched>,
        acked: Vec<Acked>,
    ) -> JoinHandle<Result<BatchReport, DrainError>> {
        self.spawn_write(key, self.spawn_decide(key, batch), acked, false)
    }

    /// Appends what the pass's batches recorded to the retention log, if any is waiting.
    async fn log_pass(&self, stats: &mut DrainStats) -> Result<(), DrainError> {
        if !std::mem::take(&mut stats.unlogged) {
            return Ok(());
        }
        let state = self.state_dir.clone();
        let report = self
            .with_ledger(move |ledger| {
                let mut report = BatchReport::default();
                write_log(ledger, &state, &mut report);
                Ok(report)
            })
            .await?;
        self.report(&report, stats);
        Ok(())
    }

    /// Logs what a batch did (ids, sites and reasons only) and counts it.
    fn report(&self, report: &BatchReport, stats: &mut DrainStats) {
        for (certificate, site) in &report.delivered {
            tracing::info!(certificate, site = %site, "delivered");
        }
        for (certificate, reason) in &report.quarantined {
            tracing::warn!(certificate, reason = reason.as_str(), "quarantined");
        }
        for (item, error) in &report.failed {
            tracing::error!(uid = %item, %error, "not delivered; will retry");
        }
        self.health.add_quarantined(report.quarantined.len());
        if report.log_broken.is_some() {
            stats.log_broken = report.log_broken.clone();
        }
        stats.unlogged = report.unlogged;
        stats.add(report);
    }

    /// Acknowledges at the source; what it did is added to `acked`, to be recorded in the
    /// ledger with the next commit (until then a restart simply acknowledges again).
    async fn ack_on_server<S: Source>(
        &self,
        src: &mut S,
        acks: &[Ack],
        acked: &mut Vec<Acked>,
        stats: &mut DrainStats,
    ) -> Result<(), DrainError> {
        if acks.is_empty() {
            return Ok(());
        }
        let done = src.ack(acks).await?;
        self.health.beat();
        stats.acked += done.len();
        acked.extend(done);
        Ok(())
    }

    /// Records acknowledgements not yet written by a batch.
    async fn record(&self, key: &MailboxKey, acked: Vec<Acked>) -> Result<(), DrainError> {
        if acked.is_empty() {
            return Ok(());
        }
        let key = key.clone();
        self.with_ledger(move |ledger| Ok(delivery::record_acks(ledger, &key, &acked)?))
            .await
    }

    /// Fills in the Message-ID of each acknowledgement's certificate: it finds the copy on the
    /// server when its UID is unknown.
    async fn add_message_ids<'a>(
        &self,
        acks: impl Iterator<Item = &'a mut Ack>,
    ) -> Result<(), DrainError> {
        let acks: Vec<&mut Ack> = acks.collect();
        if acks.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = acks.iter().map(|a| a.certificate).collect();
        let found = self
            .with_ledger(move |l| {
                let mut out = HashMap::new();
                for id in ids {
                    out.insert(id, l.message_id(id)?);
                }
                Ok(out)
            })
            .await?;
        for ack in acks {
            ack.message_id = found.get(&ack.certificate).cloned().flatten();
        }
        Ok(())
    }

    /// One pass; see the module documentation.
    pub async fn drain<S: Source>(
        &mut self,
        src: &mut S,
        key: &MailboxKey,
        cancel: &CancellationToken,
    ) -> Result<DrainStats, DrainError> {
        let mut stats = DrainStats::default();
        let items = src.list().await?;
        self.health.beat();
        self.health.polled(Timestamp::now().as_second());
        stats.listed = items.len();
        let (k, listed) = (key.clone(), items.clone());
        let (known, unacked) = self
            .with_ledger(move |l| Ok((l.messages(&k, &listed)?, l.unacknowledged(&k)?)))
            .await?;

        let mut lost = lost_acks(&unacked, &items);
        let mut settled = Vec::new();
        let mut unknown = Vec::new();
        let mut exhausted = HashSet::new();
        for item in items {
            match known.get(&item) {
                Some(row) if row.disposition == Disposition::Ignored || row.acked => {}
                Some(row) if let Some(ack) = settled_ack(&item, row) => settled.push(ack),
                Some(row) if row.attempts >= MAX_FETCH_ATTEMPTS => {
                    exhausted.insert(item.clone());
                    unknown.push(item);
                }
                _ => unknown.push(item),
            }
        }
        self.add_message_ids(settled.iter_mut().chain(&mut lost))
            .await?;
        // What the source acknowledged and the ledger has not recorded yet: written with the
        // next batch's first commit, or at the end of the pass whatever happened. If that
        // write fails, the next pass finds them again among the lost.
        let mut acked = recovered(src, lost);
        let result = self
            .screen_and_deliver(
                src, key, settled, unknown, &exhausted, &known, cancel, &mut acked, &mut stats,
            )
            .await;
        let recorded = self.record(key, acked).await;
        let logged = self.log_pass(&mut stats).await;
        result?;
        recorded?;
        logged?;
        stats.cancelled = cancel.is_cancelled();
        Ok(stats)
    }

    #[allow(clippy::too_many_arguments)]
    async fn screen_and_deliver<S: Source>(
        &mut self,
        src: &mut S,
        key: &MailboxKey,
        settled: Vec<Ack>,
        unknown: Vec<String>,
        exhausted: &HashSet<String>,
        known: &HashMap<String, MessageRow>,
        cancel: &CancellationToken,
        acked: &mut Vec<Acked>,
        stats: &mut DrainStats,
    ) -> Result<(), DrainError> {
        // Delivered before an interruption, not yet acknowledged.
        self.ack_on_server(src, &settled, acked, stats).await?;

        let now = Timestamp::now();
        let ctx = Context {
            config: &self.config,
            tz: &self.tz,
            received_at: now,
        };
        let mut first = Vec::new();
        let mut to_fetch: Vec<Listed> = Vec::new();
        // Screened a chunk at a time: the headers of thousands of waiting messages are
        // never all in memory, and those to fetch keep only their UID and size.
        for chunk in unknown.chunks(SCREEN_CHUNK) {
            let listed = src.headers(chunk).await?;
            self.health.beat();
            for l in listed {
                if exhausted.contains(&l.item) {
                    first.push(Fetched::Unfetchable {
                        item: l.item,
                        headers: l.headers,
                    });
                    continue;
                }
                match prescreen(&l.headers, l.size, &ctx) {
                    Prescreen::Ignore(reason) => first.push(Fetched::Ignored {
                        item: l.item,
                        reason,
                    }),
                    Prescreen::Oversized => first.push(Fetched::Oversized {
                        item: l.item,
                        headers: l.headers,
                    }),
                    Prescreen::Fetch => to_fetch.push(Listed {
                        headers: Vec::new(),
                        ..l
                    }),
                }
            }
        }
        if !first.is_empty() {
            let report = join(self.spawn_batch(key, first, std::mem::take(acked))).await??;
            self.report(&report, stats);
            self.ack_on_server(src, &report.acks, acked, stats).await?;
        }

        // Suspects last, the least-failed first: a message that keeps breaking the connection
        // must not stand in front of the others.
        to_fetch.sort_by_key(|l| {
            (
                self.suspects.contains(&l.item),
                known.get(&l.item).map_or(0, |row| row.attempts),
            )
        });
        let mut in_flight: Option<JoinHandle<Result<BatchReport, DrainError>>> = None;
        let mut to_ack: Vec<Ack> = Vec::new();
        let result = self
            .fetch_and_deliver(
                src,
                key,
                to_fetch,
                cancel,
                &mut in_flight,
                &mut to_ack,
                acked,
                stats,
            )
            .await;
        // Whatever happened, a batch already handed to the disk is finished and acknowledged.
        if let Some(h) = in_flight.take() {
            let report = join(h).await??;
            self.report(&report, stats);
            to_ack.extend(report.acks);
        }
        // After a failure the session is gone: what is written is acknowledged at the next pass.
        result?;
        self.ack_on_server(src, &to_ack, acked, stats).await
    }

    /// Downloads batch after batch; batch k+2 downloads while k+1 is decided and k is
    /// written, and written batches are acknowledged at the source by groups, while the next
    /// one is written.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_and_deliver<S: Source>(
        &mut self,
        src: &mut S,
        key: &MailboxKey,
        to_fetch: Vec<Listed>,
        cancel: &CancellationToken,
        in_flight: &mut Option<JoinHandle<Result<BatchReport, DrainError>>>,
        to_ack: &mut Vec<Ack>,
        acked: &mut Vec<Acked>,
        stats: &mut DrainStats,
    ) -> Result<(), DrainError> {
        for (i, batch) in batches(to_fetch, &self.suspects).into_iter().enumerate() {
            if cancel.is_cancelled() {
                break;
            }
            let items: Vec<String> = batch.iter().map(|l| l.item.clone()).collect();
            let fetch_started = std::time::Instant::now();
            let bodies = match src.bodies(&items).await {
                Ok(b) => b,
                Err(e) if items.len() == 1 && !e.is_fatal() => {
                    self.count_failure(key, &items[0]).await?;
                    return Err(DrainError::MessageFetch(e));
                }
                Err(e) => {
                    self.suspects.extend(items);
                    return Err(e.into());
                }
            };
            self.health.beat();
            let got: HashSet<&String> = bodies.iter().map(|(i, _)| i).collect();
            for item in items.iter().filter(|i| !got.contains(i)) {
                self.count_failure(key, item).await?;
            }
            for (item, _) in &bodies {
                self.suspects.remove(item);
            }
            let fetched = bodies
                .into_iter()
                .map(|(item, raw)| Fetched::Whole { item, raw })
                .collect();
            let fetched_in = fetch_started.elapsed();
            let decided = self.spawn_decide(key, fetched);
            let wait_started = std::time::Instant::now();
            let previous = match in_flight.take() {
                Some(h) => Some(join(h).await??),
                None => None,
            };
            tracing::debug!(
                messages = items.len(),
                fetch_ms = fetched_in.as_millis() as u64,
                waited_for_disk_ms = wait_started.elapsed().as_millis() as u64,
                "batch downloaded"
            );
            let log = (i + 1) % LOG_EVERY_BATCHES == 0;
            *in_flight = Some(self.spawn_write(key, decided, std::mem::take(acked), log));
            if let Some(report) = previous {
                self.report(&report, stats);
                to_ack.extend(report.acks);
                if to_ack.len() >= ACK_GROUP {
                    let group = std::mem::take(to_ack);
                    self.ack_on_server(src, &group, acked, stats).await?;
                }
            }
        }
        Ok(())
    }

    async fn count_failure(&self, key: &MailboxKey, item: &str) -> Result<(), DrainError> {
        let k = key.clone();
        let i = item.to_string();
        let n = self
            .with_ledger(move |l| Ok(delivery::record_fetch_failure(l, &k, &i, Timestamp::now())?))
            .await?;
        tracing::warn!(
            uid = item,
            attempts = n,
            "the server did not hand the message over"
        );
        Ok(())
    }
}

/// The acknowledgement a message is waiting for, if its certificate is finished.
fn settled_ack(item: &str, row: &MessageRow) -> Option<Ack> {
    let state = row.cert_state.filter(|s| s.is_finished())?;
    Some(Ack {
        item: item.to_string(),
        target: crate::delivery::ack_target(state),
        certificate: row.certificate?,
        message_id: None,
    })
}

/// Messages acknowledged at the source whose record never reached the ledger: among those
/// not marked acknowledged (`LedgerRead::unacknowledged`), the ones whose certificate is
/// finished and that are gone from the folder. A crash or a failed ledger write between the
/// acknowledgement and its record, or a connection lost before the server's answer, leaves
/// them so; recorded now, their copies on the server are purged with their certificates. (A
/// message someone else took from the folder looks the same: its copy is then simply not
/// found at the purge.)
fn lost_acks(unacked: &HashMap<String, MessageRow>, listed: &[String]) -> Vec<Ack> {
    let listed: HashSet<&str> = listed.iter().map(String::as_str).collect();
    let mut lost: Vec<Ack> = unacked
        .iter()
        .filter(|(item, _)| !listed.contains(item.as_str()))
        .filter_map(|(item, row)| {
            let mut ack = settled_ack(item, row)?;
            // It went where its own outcome sent it: a message quarantined is in the
            // quarantine folder even if its certificate was released since.
            if row.disposition == Disposition::Quarantined {
                ack.target = AckTarget::Quarantine;
            }
            Some(ack)
        })
        .collect();
    lost.sort_by(|a, b| a.item.cmp(&b.item));
    lost
}

/// The lost acknowledgements (`lost_acks`) with the copy each one left on the server, to be
/// recorded.
fn recovered<S: Source>(src: &S, lost: Vec<Ack>) -> Vec<Acked> {
    if !lost.is_empty() {
        tracing::warn!(
            messages = lost.len(),
            "acknowledged at the source but never recorded: recorded now, each copy kept on \
             the server to be found again by its Message-ID"
        );
    }
    lost.into_iter()
        .map(|ack| {
            let copy = src.lost_copy(&ack.item, ack.target, ack.message_id.as_deref());
            (ack, copy)
        })
        .collect()
}

/// What a blocking task needs to build a `Setting`.
struct SettingParts {
    config: Arc<Config>,
    groups: Arc<HashMap<Finess, u32>>,
    tz: TimeZone,
    key: MailboxKey,
    secret: Arc<[u8; 32]>,
}

impl SettingParts {
    fn setting(&self) -> Setting<'_> {
        Setting {
            config: &self.config,
            tz: &self.tz,
            groups: &self.groups,
            mailbox: &self.key,
            secret: &self.secret[..],
        }
    }
}

/// Appends the ledger's waiting records to the retention log. A batch is delivered whatever
/// becomes of its records: they wait in the ledger until the log can take them; a failure
/// is the report's local failure, a broken log its `log_broken`.
fn write_log(ledger: &mut Ledger, state: &Path, report: &mut BatchReport) {
    let started = std::time::Instant::now();
    let flushed = crate::retention::log::flush(ledger, state);
    tracing::debug!(
        log_ms = started.elapsed().as_millis() as u64,
        "retention log written"
    );
    report.unlogged = false;
    match flushed {
        Ok(flushed) => report.log_broken = flushed.broken,
        Err(e) => {
            if report.local.is_none() {
                report.local = Some((&e).into());
            }
        }
    }
}

async fn join<T>(h: JoinHandle<T>) -> Result<T, DrainError> {
    h.await.map_err(DrainError::Task)
}

/// Groups messages into download batches bounded in count and bytes; suspects travel alone.
fn batches(listed: Vec<Listed>, suspects: &HashSet<String>) -> Vec<Vec<Listed>> {
    let mut out: Vec<Vec<Listed>> = Vec::new();
    let mut current: Vec<Listed> = Vec::new();
    let mut bytes = 0u64;
    for l in listed {
        if suspects.contains(&l.item) {
            out.push(vec![l]);
            continue;
        }
        if !current.is_empty() && (current.len() >= BATCH_MESSAGES || bytes + l.size > BATCH_BYTES)
        {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += l.size;
        current.push(l);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}
