//! The retention log file, `state.dir/retention.log`: hash-chained JSON lines for auditors
//! (`crate::core::audit` renders and verifies them). Records are first queued in the ledger
//! (its outbox), in the same transaction as what they record, then appended here and synced;
//! the chain's head (number and hash of the last record) is kept in the ledger too.
//!
//! The ledger and the file are checked against each other at start and before every append
//! (DESIGN invariant 9): the file's last complete record must be the ledger's head, or be
//! followed only by the very records of the outbox (written just before a crash, before the
//! ledger knew). Anything else — a cut, a deleted or a replaced file, an edited last record —
//! is *broken*: nothing more is appended, the records wait in the outbox, and the break is
//! reported until an operator acts (`reseal`). The one repair made without a person is a
//! last line cut in the middle of a write: the cut line is removed, its records are written
//! again, and the repair is recorded in the log itself.

mod check;

pub use check::{read_lines, verify, verify_lines};

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::core::audit::{self, Body, Broken, Chain, Event, Head, Record};
use crate::ledger::{Ledger, LedgerError, LedgerRead};
use crate::system::failure::{Class, LocalFailure};

pub use crate::ledger::meta::AUDIT_BROKEN as BROKEN;
use crate::ledger::meta::{AUDIT_HEAD_HASH as HEAD_HASH, AUDIT_HEAD_SEQ as HEAD_SEQ};

pub const FILE_NAME: &str = "retention.log";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("retention log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("retention log {path}: {broken}")]
    Broken { path: PathBuf, broken: Broken },
    /// The ledger and the file disagree; the words say how (no patient data).
    #[error("retention log {path} broken: {why}")]
    Mismatch { path: PathBuf, why: String },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + use<> {
    let path = path.to_path_buf();
    move |source| AuditError::Io { path, source }
}

/// What `flush` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Flushed {
    pub appended: usize,
    /// A last line cut by a crash was removed (and recorded).
    pub repaired: bool,
    /// The log is broken: nothing was appended. Why, in words.
    pub broken: Option<String>,
}

/// The head the ledger holds: the last record written, as far as it knows.
pub fn ledger_head(ledger: &impl LedgerRead) -> Result<Head, LedgerError> {
    // One statement: the service may commit a new head between two reads.
    let [seq, hash] = ledger.metas([HEAD_SEQ, HEAD_HASH])?;
    let seq = seq.and_then(|s| s.parse().ok()).unwrap_or(0);
    let hash = hash.unwrap_or_else(|| audit::GENESIS.to_string());
    Ok(Head { seq, hash, id: 0 })
}

/// Why the log is broken, if the ledger says so.
pub fn broken(ledger: &impl LedgerRead) -> Result<Option<String>, LedgerError> {
    ledger.meta(BROKEN)
}

/// The end of the file: its complete lines (the last `want` at most, oldest first) and where
/// a line cut in the middle starts, if the file does not end with a line break.
struct Tail {
    lines: Vec<String>,
    /// Every complete line is in `lines` (the file was read from its start).
    whole: bool,
    /// The offset of a cut last line.
    torn_at: Option<u64>,
}

fn read_tail(path: &Path, want: usize) -> Result<Option<Tail>, AuditError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let len = file.metadata().map_err(io(path))?.len();
    let mut window = 4096u64;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start)).map_err(io(path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(path))?;
        // Complete lines end with a line break; what follows the last one is cut.
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
        let torn_at = (complete < bytes.len()).then_some(start + complete as u64);
        let mut body = &bytes[..complete];
        if start > 0 {
            // The first line of the window may be partial: skip it.
            match body.iter().position(|b| *b == b'\n') {
                Some(p) => body = &body[p + 1..],
                None => body = &[],
            }
        }
        let lines: Vec<String> = String::from_utf8_lossy(body)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        if start == 0 || lines.len() > want {
            let skip = lines.len().saturating_sub(want);
            return Ok(Some(Tail {
                whole: start == 0 && skip == 0,
                lines: lines[skip..].to_vec(),
                torn_at,
            }));
        }
        window *= 4;
    }
}

fn seq_of(line: &str) -> Option<u64> {
    serde_json::from_str::<Record>(line).ok().map(|r| r.seq)
}

/// The queued records rendered after `head`, each with the head it makes.
fn render(head: &Head, queued: &[(i64, String)]) -> Vec<(String, Head)> {
    let mut at = head.clone();
    queued
        .iter()
        .map(|(id, record)| {
            let body: Body = serde_json::from_str(record).unwrap_or_else(|_| Body {
                detail: Some("unreadable queued record".into()),
                ..Body::default()
            });
            let (line, next) = audit::append(&at, *id, body);
            at = next.clone();
            (line, next)
        })
        .collect()
}

/// How the file and the ledger disagree: the log is broken, and nothing is appended to it.
#[derive(Debug, thiserror::Error)]
enum Disagreement {
    #[error("the log holds records the ledger never wrote")]
    Unknown,
    #[error("the log is missing or empty, but the ledger says {0} records were written")]
    Missing(u64),
    #[error(
        "the log ends at record {last} but the ledger says {head} were written: \
         records were cut, or the file was replaced"
    )]
    Cut { last: u64, head: u64 },
    #[error("the log holds records after {0} that the ledger does not know")]
    Beyond(u64),
    #[error("record {0} of the log is not the record that was written (changed or replaced)")]
    Changed(u64),
    #[error("the log holds records after {0} that are not the ones the service wrote")]
    NotOurs(u64),
}

/// How many of the rendered records the file already holds after the ledger's head (written
/// before a crash that came before the ledger knew), or why the file and the ledger disagree.
fn already_written(
    head: &Head,
    tail: Option<&Tail>,
    expected: &[(String, Head)],
) -> Result<usize, Disagreement> {
    let lines = tail.map_or(&[][..], |t| t.lines.as_slice());
    let after: &[String] = if head.seq == 0 {
        if !lines.is_empty() && !tail.is_some_and(|t| t.whole) {
            return Err(Disagreement::Unknown);
        }
        lines
    } else {
        if lines.is_empty() {
            return Err(Disagreement::Missing(head.seq));
        }
        let Some(i) = lines.iter().rposition(|l| seq_of(l) == Some(head.seq)) else {
            let last = lines.last().and_then(|l| seq_of(l)).unwrap_or(0);
            return Err(if last < head.seq {
                Disagreement::Cut {
                    last,
                    head: head.seq,
                }
            } else {
                Disagreement::Beyond(head.seq)
            });
        };
        if audit::line_hash(&lines[i]) != head.hash {
            return Err(Disagreement::Changed(head.seq));
        }
        &lines[i + 1..]
    };
    if after.len() > expected.len()
        || after
            .iter()
            .zip(expected)
            .any(|(line, (want, _))| line != want)
    {
        return Err(Disagreement::NotOurs(head.seq));
    }
    Ok(after.len())
}

/// Appends every queued record to the log and syncs it, after checking that the log ends
/// where the ledger says; records the new head and forgets the records. A broken log is
/// reported (`Flushed::broken`, the ledger's `audit_broken`), never appended to.
pub fn flush(ledger: &mut Ledger, state_dir: &Path) -> Result<Flushed, AuditError> {
    let path = path(state_dir);
    let mut flushed = Flushed::default();
    let mut queued = ledger.outbox()?;
    let mut tail = read_tail(&path, queued.len() + 1)?;
    if let Some(at) = tail.as_ref().and_then(|t| t.torn_at) {
        // A crash in the middle of a write: the cut line's records are still queued.
        cut(&path, at)?;
        let tx = ledger.tx()?;
        tx.audit(&Body {
            time: crate::core::retention::rfc3339(Timestamp::now(), &crate::system::tz::paris()),
            event: Some(Event::LogRepaired),
            detail: Some(format!(
                "a last line cut in the middle of a write was removed at byte {at}; its \
                 records were written again"
            )),
            ..Body::default()
        })?;
        tx.commit()?;
        flushed.repaired = true;
        queued = ledger.outbox()?;
        tail = read_tail(&path, queued.len() + 1)?;
    }
    let head = ledger_head(ledger)?;
    let expected = render(&head, &queued);
    let written = match already_written(&head, tail.as_ref(), &expected) {
        Ok(n) => n,
        Err(why) => {
            let why = why.to_string();
            if ledger.meta(BROKEN)?.as_deref() != Some(why.as_str()) {
                let tx = ledger.tx()?;
                tx.set_meta(BROKEN, &why)?;
                tx.commit()?;
            }
            flushed.broken = Some(why);
            return Ok(flushed);
        }
    };
    let rest = &expected[written..];
    if !rest.is_empty() {
        let mut text = String::new();
        for (line, _) in rest {
            text.push_str(line);
            text.push('\n');
        }
        append(&path, &text)?;
        flushed.appended = rest.len();
    }
    let tx = ledger.tx_unsynced()?;
    if let (Some((last_id, _)), Some((_, new_head))) = (queued.last(), expected.last()) {
        tx.outbox_done(*last_id)?;
        tx.set_meta(HEAD_SEQ, &new_head.seq.to_string())?;
        tx.set_meta(HEAD_HASH, &new_head.hash)?;
    }
    tx.delete_meta(BROKEN)?;
    // Durable with the next synced commit. Lost before that, the records are still queued and
    // found already written at the log's end by the next flush.
    tx.commit()?;
    Ok(flushed)
}

/// Appends whole lines to the log and syncs them.
fn append(path: &Path, text: &str) -> Result<(), AuditError> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .map_err(io(path))?;
    file.write_all(text.as_bytes()).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// Removes a cut last line: the file ends at `at`, synced.
fn cut(path: &Path, at: u64) -> Result<(), AuditError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io(path))?;
    file.set_len(at).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// Starts a new segment of a broken log (`audit reseal`): a `resealed` record naming the
/// break — the records missing, the ledger's head and the file's — chained to the last line
/// the file holds, so that the gap stays visible forever. The queued records follow it.
/// A log whose chain breaks inside (an edit, not a cut) is refused: it is evidence, to be
/// moved aside first.
pub fn reseal(
    ledger: &mut Ledger,
    state_dir: &Path,
    reason: &str,
    user: &str,
    tz: &TimeZone,
) -> Result<Body, AuditError> {
    let path = path(state_dir);
    if let Some(at) = read_tail(&path, 1)?.and_then(|t| t.torn_at) {
        cut(&path, at)?;
    }
    let lines = read_lines(&path)?;
    let file_head = audit::verify(lines.iter().map(String::as_str))
        .map_err(|broken| AuditError::Broken {
            path: path.clone(),
            broken,
        })?
        .head;
    let ledger_head = ledger_head(ledger)?;
    let seq = file_head.seq.max(ledger_head.seq) + 1;
    let body = Body {
        time: crate::core::retention::rfc3339(Timestamp::now(), tz),
        event: Some(Event::Resealed),
        user: Some(user.to_string()),
        detail: Some(reason.to_string()),
        gap_from: (ledger_head.seq > file_head.seq).then_some(file_head.seq + 1),
        gap_to: (ledger_head.seq > file_head.seq).then_some(ledger_head.seq),
        ledger_head: Some(format!("{} {}", ledger_head.seq, ledger_head.hash)),
        file_head: Some(format!("{} {}", file_head.seq, file_head.hash)),
        ..Body::default()
    };
    // An event id of its own, never reused, though the record is written here directly.
    let tx = ledger.tx()?;
    let id = tx.audit(&body)?;
    tx.outbox_remove(id)?;
    tx.commit()?;
    let before = Head {
        seq: seq - 1,
        hash: file_head.hash,
        id: 0,
    };
    let (line, head) = audit::append(&before, id, body.clone());
    append(&path, &format!("{line}\n"))?;
    let tx = ledger.tx()?;
    tx.set_meta(HEAD_SEQ, &head.seq.to_string())?;
    tx.set_meta(HEAD_HASH, &head.hash)?;
    tx.delete_meta(BROKEN)?;
    tx.commit()?;
    Ok(body)
}

/// Makes an existing log readable by its group only (auditors), in case it was created by
/// hand or by an older version with another mode.
pub fn tighten(state_dir: &Path) {
    let p = path(state_dir);
    if p.exists() {
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640));
    }
}

/// A retention-log failure is a local failure.
impl From<&AuditError> for LocalFailure {
    fn from(e: &AuditError) -> Self {
        match e {
            AuditError::Ledger(l) => l.into(),
            AuditError::Io { path, source } => {
                let class = match Class::of_io(source) {
                    Class::Io | Class::Refused => Class::RetentionLog,
                    other => other,
                };
                LocalFailure::new(class, path.parent().unwrap_or(Path::new("/")), e)
            }
            AuditError::Broken { path, .. } | AuditError::Mismatch { path, .. } => {
                LocalFailure::new(
                    Class::RetentionLog,
                    path.parent().unwrap_or(Path::new("/")),
                    e,
                )
            }
        }
    }
}
crate::system::failure::by_value!(AuditError);

#[cfg(test)]
mod tests;
