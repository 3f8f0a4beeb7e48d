//! The retention log file, `state.dir/retention.log`: hash-chained JSON lines for auditors
//! (`crate::core::audit` renders and verifies them). Records are first queued in the ledger,
//! in the same transaction as what they record, then appended here and synced; the chain's
//! head is kept in the ledger too, so that a truncated log is noticed. Appending is
//! idempotent: a record whose event id is already in the file is not written again.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::core::audit::{self, Body, Broken, Head, Record};
use crate::ledger::{Ledger, LedgerError, LedgerRead};

pub const FILE_NAME: &str = "retention.log";
const HEAD_SEQ: &str = "audit_head_seq";
const HEAD_HASH: &str = "audit_head_hash";

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

/// Appends every queued record to the log, syncs it, and forgets them in the ledger.
/// Returns how many were appended.
pub fn flush(ledger: &mut Ledger, state_dir: &Path) -> Result<usize, AuditError> {
    let queued = ledger.outbox()?;
    let Some(&(last_id, _)) = queued.last() else {
        return Ok(0);
    };
    let path = path(state_dir);
    let mut head = last_record(&path)?.unwrap_or_else(Head::genesis);
    let mut text = String::new();
    let mut appended = 0;
    for (id, record) in queued {
        // Already in the file: written before a crash that came before the ledger knew it.
        if id <= head.id {
            continue;
        }
        let body: Body = serde_json::from_str(&record).unwrap_or_else(|_| Body {
            detail: Some("unreadable queued record".into()),
            ..Body::default()
        });
        let (line, next) = audit::append(&head, id, body);
        text.push_str(&line);
        text.push('\n');
        head = next;
        appended += 1;
    }
    if !text.is_empty() {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&path)
            .map_err(io(&path))?;
        file.write_all(text.as_bytes()).map_err(io(&path))?;
        file.sync_all().map_err(io(&path))?;
    }
    let tx = ledger.tx()?;
    tx.outbox_done(last_id)?;
    tx.set_meta(HEAD_SEQ, &head.seq.to_string())?;
    tx.set_meta(HEAD_HASH, &head.hash)?;
    tx.commit()?;
    Ok(appended)
}

/// The last record of the log, read from its end.
fn last_record(path: &Path) -> Result<Option<Head>, AuditError> {
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
        let mut tail = String::new();
        file.read_to_string(&mut tail).map_err(io(path))?;
        let trimmed = tail.trim_end_matches('\n');
        match trimmed.rfind('\n') {
            Some(pos) => return Ok(head_of(&trimmed[pos + 1..])),
            None if start == 0 => return Ok(head_of(trimmed)),
            None => window *= 4,
        }
    }
}

fn head_of(line: &str) -> Option<Head> {
    let record: Record = serde_json::from_str(line).ok()?;
    Some(Head {
        seq: record.seq,
        hash: audit::line_hash(line),
        id: record.id,
    })
}

/// Verifies the whole chain, and that it ends where the ledger says it does.
pub fn verify(state_dir: &Path, ledger: Option<&Ledger>) -> Result<Head, AuditError> {
    let path = path(state_dir);
    let lines = read_lines(&path)?;
    let head =
        audit::verify(lines.iter().map(String::as_str)).map_err(|broken| AuditError::Broken {
            path: path.clone(),
            broken,
        })?;
    if let Some(ledger) = ledger {
        let recorded: u64 = ledger
            .meta(HEAD_SEQ)?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if recorded > head.seq {
            return Err(AuditError::Broken {
                path,
                broken: Broken {
                    line: lines.len() + 1,
                    seq: Some(head.seq + 1),
                    why: format!(
                        "missing: the log ends at record {} but {recorded} were written",
                        head.seq
                    ),
                },
            });
        }
        if recorded == head.seq
            && recorded > 0
            && ledger.meta(HEAD_HASH)?.as_deref() != Some(head.hash.as_str())
        {
            return Err(AuditError::Broken {
                path,
                broken: Broken {
                    line: lines.len(),
                    seq: Some(head.seq),
                    why: "it is not the record that was written last".into(),
                },
            });
        }
    }
    Ok(head)
}

/// Every line of the log (none when it does not exist yet).
pub fn read_lines(path: &Path) -> Result<Vec<String>, AuditError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path)(e)),
    };
    BufReader::new(file)
        .lines()
        .filter(|l| !matches!(l, Ok(s) if s.is_empty()))
        .collect::<Result<_, _>>()
        .map_err(io(path))
}

/// Makes an existing log readable by its group only (auditors), in case it was created by
/// hand or by an older version with another mode.
pub fn tighten(state_dir: &Path) {
    let p = path(state_dir);
    if p.exists() {
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640));
    }
}
