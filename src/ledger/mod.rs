//! The ledger: one SQLite database in `state.dir` recording every message seen, every
//! certificate taken in charge, every file written for it and where its server copy went.
//! It is the source of truth for exactly-once delivery and for retention. Synchronous API, for
//! use from one blocking thread at a time (`rusqlite::Connection` is not `Sync`); it must never
//! be called from async code directly. WAL with `synchronous=FULL`, so that a commit is durable
//! before the server is told anything, and `secure_delete`, so that erased personal fields do
//! not linger in free pages.

pub mod keys;
mod quarantine;
mod types;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

pub use crate::core::layout::FileId;
pub use quarantine::{QuarantineRead, QuarantinedRow, Recorded, Release, ServerCopyInfo};
pub use types::*;

const SCHEMA_VERSION: i64 = 2;

/// Version 2: each copy records the identity (device, inode) of the file it wrote, so that it
/// is found again wherever staff move it, and counts the failed attempts to remove it; the
/// personal fields and the paths are sealed with per-certificate keys (`keys`), paths looked
/// up by their keyed hash. `seal_version_1` then seals what version 1 held in clear.
const UPGRADE_1_TO_2: &str = "
    ALTER TABLE copy ADD COLUMN dev INTEGER;
    ALTER TABLE copy ADD COLUMN ino INTEGER;
    ALTER TABLE copy ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE copy ADD COLUMN last_error TEXT;
    ALTER TABLE copy ADD COLUMN path_key TEXT;
    DROP INDEX copy_live_path;
    CREATE UNIQUE INDEX copy_live_path ON copy (path_key) WHERE state <> 'gone';
    CREATE INDEX copy_live_file ON copy (ino) WHERE state <> 'gone';
    CREATE INDEX copy_live_temp ON copy (temp) WHERE state <> 'gone';
";

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The key file of the personal fields (`keys`).
    #[error("ledger keys {path}: {source}")]
    Keys {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A ledger of another schema version than this program's.
    #[error(
        "ledger {path}: schema version {found} is {} than this program's ({expected}){}",
        if found > expected { "newer" } else { "older" },
        if found < expected { "; the service upgrades it when it starts" } else { "" }
    )]
    Version {
        path: PathBuf,
        found: i64,
        expected: i64,
    },
}

impl LedgerError {
    pub fn sqlite(path: &Path, source: rusqlite::Error) -> LedgerError {
        LedgerError::Sqlite {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The ledger file (or key file) it concerns.
    pub fn path(&self) -> &Path {
        match self {
            LedgerError::Sqlite { path, .. }
            | LedgerError::Keys { path, .. }
            | LedgerError::Version { path, .. } => path,
        }
    }
}

pub type Result<T> = std::result::Result<T, LedgerError>;

pub struct Ledger {
    conn: Connection,
    path: PathBuf,
    keys: keys::Keys,
    secret: [u8; 32],
}

/// Seals the personal fields and the paths a version-1 ledger held in clear; returns the
/// keys made, to be written before the upgrade commits.
fn seal_version_1(tx: &Transaction, secret: &[u8]) -> rusqlite::Result<Vec<(i64, keys::Key)>> {
    let mut made = Vec::new();
    let fields = ["dossier", "nom", "prenom", "sexe", "birth_date", "ins"];
    let rows: Vec<(i64, Vec<Option<String>>)> = tx
        .prepare(&format!(
            "SELECT id, {} FROM certificate WHERE purged_at IS NULL",
            fields.join(", ")
        ))?
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                (1..=fields.len())
                    .map(|i| r.get(i))
                    .collect::<rusqlite::Result<_>>()?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (id, values) in rows {
        let key = keys::new_key();
        made.push((id, key));
        for (field, value) in fields.iter().zip(values) {
            tx.execute(
                &format!("UPDATE certificate SET {field} = ?2 WHERE id = ?1"),
                params![id, value.map(|v| keys::seal(&key, &v))],
            )?;
        }
    }
    let copies: Vec<(i64, i64, String)> = tx
        .prepare("SELECT id, certificate, path FROM copy WHERE state <> 'gone'")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, certificate, path) in copies {
        let key = match made.iter().find(|(c, _)| *c == certificate) {
            Some((_, k)) => *k,
            None => {
                let k = keys::new_key();
                made.push((certificate, k));
                k
            }
        };
        tx.execute(
            "UPDATE copy SET path = ?2, path_key = ?3 WHERE id = ?1",
            params![
                id,
                keys::seal(&key, &path),
                keys::path_key(secret, Path::new(&path))
            ],
        )?;
    }
    tx.execute(
        "UPDATE copy SET path = X'', path_key = NULL WHERE state = 'gone'",
        [],
    )?;
    Ok(made)
}

/// The ledger's file in a state directory.
pub fn file(state_dir: &Path) -> PathBuf {
    state_dir.join("ledger.sqlite")
}

/// Whether a state directory holds a ledger with its schema (a missing or emptied file holds
/// none): what `run` checks before it would start a new one.
pub fn exists(state_dir: &Path) -> bool {
    let path = file(state_dir);
    if std::fs::metadata(&path).map_or(true, |m| m.len() == 0) {
        return false;
    }
    Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0)))
        .is_ok_and(|v| v > 0)
}

impl Ledger {
    /// Opens (creating if needed) `ledger.sqlite` in the state directory.
    pub fn open(state_dir: &Path) -> Result<Ledger> {
        let path = file(state_dir);
        let err = |source| LedgerError::sqlite(&path, source);
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        let keys_err = |p: PathBuf| move |source| LedgerError::Keys { path: p, source };
        let keys =
            keys::Keys::open(state_dir, true).map_err(keys_err(state_dir.join(keys::FILE_NAME)))?;
        let secret =
            crate::system::state::secret(state_dir).map_err(keys_err(state_dir.join("secret")))?;
        let mut ledger = Ledger {
            conn,
            path,
            keys,
            secret,
        };
        ledger.migrate()?;
        set_private(&ledger.path);
        Ok(ledger)
    }

    /// Opens an existing ledger for reading only (the operator commands that look): never
    /// creates nor migrates it. `None` when there is none yet (a fresh state directory).
    pub fn open_read_only(state_dir: &Path) -> Result<Option<Ledger>> {
        let path = file(state_dir);
        if !exists(state_dir) {
            return Ok(None);
        }
        let err = |source| LedgerError::sqlite(&path, source);
        let conn = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        let keys = keys::Keys::open(state_dir, false).map_err(|source| LedgerError::Keys {
            path: state_dir.join(keys::FILE_NAME),
            source,
        })?;
        // Only lookups by path need the secret, and none is made reading.
        let secret = crate::system::state::existing_secret(state_dir).unwrap_or([0; 32]);
        let ledger = Ledger {
            conn,
            path,
            keys,
            secret,
        };
        ledger.check_current()?;
        Ok(Some(ledger))
    }

    /// Opens an existing ledger to change it (the operator commands that act): never creates
    /// it. `None` when there is none yet.
    pub fn open_existing(state_dir: &Path) -> Result<Option<Ledger>> {
        if !exists(state_dir) {
            return Ok(None);
        }
        let ledger = Ledger::open(state_dir)?;
        Ok(Some(ledger))
    }

    /// A ledger of another schema version cannot be read by this program.
    fn check_current(&self) -> Result<()> {
        let version = self.version()?;
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        Err(LedgerError::Version {
            path: self.path.clone(),
            found: version,
            expected: SCHEMA_VERSION,
        })
    }

    fn err(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError::sqlite(&self.path, source)
    }

    /// Brings the schema to this program's version. Creation and upgrades run in an
    /// immediate transaction that reads the version again: two processes starting at once
    /// never both create it.
    fn migrate(&mut self) -> Result<()> {
        let version = self.version()?;
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        if version > SCHEMA_VERSION {
            return Err(LedgerError::Version {
                path: self.path.clone(),
                found: version,
                expected: SCHEMA_VERSION,
            });
        }
        let path = self.path.clone();
        let err = |source| LedgerError::sqlite(&path, source);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        let steps = match version {
            0 => include_str!("schema.sql"),
            1 => UPGRADE_1_TO_2,
            _ => "",
        };
        tx.execute_batch(steps).map_err(err)?;
        let sealed = if version == 1 {
            seal_version_1(&tx, &self.secret).map_err(err)?
        } else {
            Vec::new()
        };
        self.keys.put(&sealed).map_err(|source| LedgerError::Keys {
            path: self.keys.path().to_path_buf(),
            source,
        })?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .and_then(|()| tx.commit())
            .map_err(err)?;
        if version == 1 {
            // What version 1 held in clear may linger in free space: rewritten once.
            self.conn.execute_batch("VACUUM").map_err(err)?;
        }
        Ok(())
    }

    fn version(&self) -> Result<i64> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Writes the write-ahead log back into the database and empties it, so that values just
    /// erased (with `secure_delete`) do not linger in its old frames.
    pub fn checkpoint(&mut self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| self.err(e))
    }

    /// Starts a transaction; nothing is durable before `LedgerTx::commit`.
    pub fn tx(&mut self) -> Result<LedgerTx<'_>> {
        let Ledger {
            conn,
            path,
            keys,
            secret,
        } = self;
        let tx = conn
            .transaction()
            .map_err(|source| LedgerError::sqlite(path, source))?;
        Ok(LedgerTx {
            tx,
            path: path.clone(),
            keys,
            secret,
            pending: Default::default(),
        })
    }
}

/// Queries, on the ledger or inside a transaction (where they see its uncommitted rows).
pub trait LedgerRead {
    fn conn(&self) -> &Connection;
    fn ledger_path(&self) -> &Path;
    /// Certificate `id`'s key (`keys`), if it has one not destroyed.
    fn key(&self, id: i64) -> Result<Option<keys::Key>>;
    /// The installation's secret, for the keyed hash of paths.
    fn path_secret(&self) -> &[u8];

    /// The keyed hash under which a copy's path is looked up.
    fn path_key(&self, path: &Path) -> String {
        keys::path_key(self.path_secret(), path)
    }

    /// Opens a copy's sealed path (empty once its key is destroyed).
    fn reveal(&self, c: SealedCopy) -> Result<CopyRow> {
        let key = self.key(c.certificate)?;
        let mut row = c.row;
        row.path = keys::open(key.as_ref(), &c.path)
            .map(PathBuf::from)
            .unwrap_or_default();
        Ok(row)
    }

    /// `reveal`, for copies with their certificate.
    fn reveal_all(&self, copies: Vec<SealedCopy>) -> Result<Vec<(i64, CopyRow)>> {
        copies
            .into_iter()
            .map(|c| {
                let certificate = c.certificate;
                Ok((certificate, self.reveal(c)?))
            })
            .collect()
    }

    /// Opens a certificate's sealed personal field.
    fn open_field(&self, id: i64, sealed: Option<Vec<u8>>) -> Result<Option<String>> {
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        Ok(keys::open(self.key(id)?.as_ref(), &sealed))
    }

    fn read_err(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError::sqlite(self.ledger_path(), source)
    }

    /// Every message of `mailbox` seen under this UIDVALIDITY.
    fn messages(&self, key: &MailboxKey) -> Result<HashMap<String, MessageRow>> {
        let mut stmt = self
            .conn()
            .prepare_cached(
                "SELECT m.item, m.disposition, m.certificate, m.attempts, m.acked, c.state
                 FROM message m LEFT JOIN certificate c ON c.id = m.certificate
                 WHERE m.mailbox = ?1 AND m.validity = ?2",
            )
            .map_err(|e| self.read_err(e))?;
        let rows = stmt
            .query_map(params![key.mailbox, key.validity], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    MessageRow {
                        disposition: Disposition::parse(&r.get::<_, String>(1)?),
                        certificate: r.get(2)?,
                        attempts: r.get(3)?,
                        acked: r.get(4)?,
                        cert_state: r.get::<_, Option<String>>(5)?.map(|s| CertState::parse(&s)),
                    },
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<HashMap<_, _>>>())
            .map_err(|e| self.read_err(e))?;
        Ok(rows)
    }

    /// The certificate whose raw message had this hash, if any.
    fn by_content(&self, sha256: &[u8; 32]) -> Result<Option<CertificateRef>> {
        self.conn()
            .query_row(
                "SELECT id, state FROM certificate WHERE content_sha256 = ?1 ORDER BY id LIMIT 1",
                params![&sha256[..]],
                cert_ref,
            )
            .optional()
            .map_err(|e| self.read_err(e))
    }

    /// A certificate of the same site and dossier with the same PDF, if any: an identical
    /// re-send whose envelope differs.
    fn by_pdf(&self, dossier_hmac: &str, pdf_sha256: &[u8; 32]) -> Result<Option<CertificateRef>> {
        self.conn()
            .query_row(
                "SELECT id, state FROM certificate
                 WHERE dossier_hmac = ?1 AND pdf_sha256 = ?2 ORDER BY id LIMIT 1",
                params![dossier_hmac, &pdf_sha256[..]],
                cert_ref,
            )
            .optional()
            .map_err(|e| self.read_err(e))
    }

    /// The delivered (or being delivered) certificate of this site and dossier, not yet
    /// purged nor replaced: what a re-send would replace.
    fn live_by_dossier(&self, dossier_hmac: &str) -> Result<Option<CertificateRow>> {
        self.conn()
            .query_row(
                &format!(
                    "SELECT {CERTIFICATE_COLUMNS} FROM certificate
                     WHERE dossier_hmac = ?1 AND purged_at IS NULL
                       AND state IN ('delivering', 'delivered')
                     ORDER BY id DESC LIMIT 1"
                ),
                params![dossier_hmac],
                certificate_row,
            )
            .optional()
            .map_err(|e| self.read_err(e))
    }

    fn certificate(&self, id: i64) -> Result<Option<CertificateRow>> {
        self.conn()
            .query_row(
                &format!("SELECT {CERTIFICATE_COLUMNS} FROM certificate WHERE id = ?1"),
                params![id],
                certificate_row,
            )
            .optional()
            .map_err(|e| self.read_err(e))
    }

    fn copies(&self, certificate: i64) -> Result<Vec<CopyRow>> {
        let mut stmt = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {COPY_COLUMNS} FROM copy
                     WHERE certificate = ?1 AND state <> 'gone' ORDER BY id"
            ))
            .map_err(|e| self.read_err(e))?;
        let sealed: Vec<SealedCopy> = stmt
            .query_map(params![certificate], copy_row)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.read_err(e))?;
        sealed.into_iter().map(|c| self.reveal(c)).collect()
    }

    /// Copies left half-done by an interrupted delivery, oldest first.
    fn unfinished_copies(&self) -> Result<Vec<(i64, CopyRow)>> {
        let mut stmt = self
            .conn()
            .prepare(&format!(
                "SELECT {C_COPY_COLUMNS}
                 FROM copy c JOIN certificate t ON t.id = c.certificate
                 WHERE t.state IN ('delivering', 'quarantining') AND c.state <> 'gone'
                 ORDER BY c.certificate, c.id"
            ))
            .map_err(|e| self.read_err(e))?;
        let sealed: Vec<SealedCopy> = stmt
            .query_map([], copy_row)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.read_err(e))?;
        self.reveal_all(sealed)
    }

    /// Certificates due at `now` and not purged yet, the most overdue first. Served by the
    /// partial index `certificate_due`: the cost follows what is due, not what is held.
    fn due_certificates(&self, now: i64, limit: usize) -> Result<Vec<CertificateRow>> {
        let mut stmt = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {CERTIFICATE_COLUMNS} FROM certificate
                 WHERE purged_at IS NULL AND purge_at <= ?1 ORDER BY purge_at LIMIT ?2"
            ))
            .map_err(|e| self.read_err(e))?;
        stmt.query_map(params![now, limit as i64], certificate_row)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.read_err(e))
    }

    /// Server copies due at `now`, the most overdue first.
    fn due_server_copies(&self, now: i64, limit: usize) -> Result<Vec<ServerCopyRow>> {
        let mut stmt = self
            .conn()
            .prepare_cached(
                "SELECT id, certificate, mailbox, folder, validity, item, message_id, due, attempts
                 FROM server_copy WHERE state = 'present' AND due <= ?1 ORDER BY due LIMIT ?2",
            )
            .map_err(|e| self.read_err(e))?;
        stmt.query_map(params![now, limit as i64], server_copy_row)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.read_err(e))
    }

    /// The published copy at `path`, with its certificate.
    fn published_at(&self, path: &Path) -> Result<Option<(i64, CopyRow)>> {
        let sealed = self
            .conn()
            .query_row(
                &format!(
                    "SELECT {COPY_COLUMNS} FROM copy
                     WHERE path_key = ?1 AND state = 'published'"
                ),
                params![self.path_key(path)],
                copy_row,
            )
            .optional()
            .map_err(|e| self.read_err(e))?;
        sealed
            .map(|s| Ok(self.reveal_all(vec![s])?.remove(0)))
            .transpose()
    }

    /// Published copies after `cursor` (by id), for a rolling check that they still exist.
    fn published_after(&self, cursor: i64, limit: usize) -> Result<Vec<(i64, CopyRow)>> {
        let mut stmt = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {COPY_COLUMNS} FROM copy
                 WHERE id > ?1 AND state = 'published' ORDER BY id LIMIT ?2"
            ))
            .map_err(|e| self.read_err(e))?;
        let sealed: Vec<SealedCopy> = stmt
            .query_map(params![cursor, limit as i64], copy_row)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.read_err(e))?;
        self.reveal_all(sealed)
    }

    /// Whether a live copy owns this file: by its identity, or its recorded path or
    /// temporary name (copies not staged yet, or recorded by version 1).
    fn copy_known(&self, file: FileId, path: &Path) -> Result<bool> {
        self.conn()
            .query_row(
                "SELECT 1 FROM copy WHERE state <> 'gone' AND ino = ?2 AND dev = ?1
                 UNION ALL SELECT 1 FROM copy WHERE state <> 'gone' AND path_key = ?3
                 UNION ALL SELECT 1 FROM copy WHERE state <> 'gone' AND temp = ?4
                 LIMIT 1",
                params![
                    file.dev as i64,
                    file.ino as i64,
                    self.path_key(path),
                    path.to_string_lossy()
                ],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(|e| self.read_err(e))
    }

    /// Retention-log records waiting to be appended, oldest first.
    fn outbox(&self) -> Result<Vec<(i64, String)>> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT id, record FROM audit_outbox ORDER BY id")
            .map_err(|e| self.read_err(e))?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.read_err(e))
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn()
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.read_err(e))
    }

    /// Number of certificates per state, for reports and tests.
    fn count_by_state(&self) -> Result<HashMap<String, i64>> {
        let mut stmt = self
            .conn()
            .prepare("SELECT state, count(*) FROM certificate GROUP BY state")
            .map_err(|e| self.read_err(e))?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.read_err(e))
    }
    /// Whether a live copy already claims `path` (rows of this transaction included).
    fn path_taken(&self, path: &Path) -> Result<bool> {
        self.conn()
            .query_row(
                "SELECT 1 FROM copy WHERE path_key = ?1 AND state <> 'gone'",
                params![self.path_key(path)],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(|e| self.read_err(e))
    }
}

impl LedgerRead for Ledger {
    fn conn(&self) -> &Connection {
        &self.conn
    }

    fn ledger_path(&self) -> &Path {
        &self.path
    }

    fn key(&self, id: i64) -> Result<Option<keys::Key>> {
        self.keys.get(id).map_err(|source| LedgerError::Keys {
            path: self.keys.path().to_path_buf(),
            source,
        })
    }

    fn path_secret(&self) -> &[u8] {
        &self.secret
    }
}

impl LedgerRead for LedgerTx<'_> {
    fn conn(&self) -> &Connection {
        &self.tx
    }

    fn ledger_path(&self) -> &Path {
        &self.path
    }

    /// Keys made or destroyed in this transaction first.
    fn key(&self, id: i64) -> Result<Option<keys::Key>> {
        if let Some((_, k)) = self.pending.borrow().iter().rev().find(|(i, _)| *i == id) {
            return Ok((*k != [0; 32]).then_some(*k));
        }
        self.keys.get(id).map_err(|source| LedgerError::Keys {
            path: self.keys.path().to_path_buf(),
            source,
        })
    }

    fn path_secret(&self) -> &[u8] {
        self.secret
    }
}

/// One transaction on the ledger.
pub struct LedgerTx<'a> {
    tx: Transaction<'a>,
    path: PathBuf,
    keys: &'a keys::Keys,
    secret: &'a [u8; 32],
    /// Keys made (and destroyed: zeros) in this transaction, written and synced just before
    /// it commits.
    pending: std::cell::RefCell<Vec<(i64, keys::Key)>>,
}

impl LedgerTx<'_> {
    fn err(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError::sqlite(&self.path, source)
    }

    pub fn commit(self) -> Result<()> {
        let path = self.path.clone();
        // Keys first: a key destroyed before its purge commits makes at worst a certificate
        // unreadable that is being purged anyway; one written for a row that never commits
        // is overwritten by the next row of that id.
        self.keys
            .put(&self.pending.borrow())
            .map_err(|source| LedgerError::Keys {
                path: self.keys.path().to_path_buf(),
                source,
            })?;
        self.tx
            .commit()
            .map_err(|source| LedgerError::sqlite(&path, source))
    }

    /// Certificate `id`'s key, made in this transaction if it has none.
    fn key_for(&self, id: i64) -> Result<keys::Key> {
        if let Some(k) = self.key(id)? {
            return Ok(k);
        }
        let k = keys::new_key();
        self.pending.borrow_mut().push((id, k));
        Ok(k)
    }

    /// Destroys certificate `id`'s key, with this transaction.
    fn destroy_key(&self, id: i64) {
        self.pending.borrow_mut().push((id, [0; 32]));
    }

    /// Inserts a certificate; its personal fields are sealed with a key of its own.
    pub fn insert_certificate(&self, c: &NewCertificate) -> Result<i64> {
        // The id this row gets: the key is made for it before the row exists.
        let id: i64 = self
            .tx
            .query_row(
                "SELECT coalesce(max(id), 0) + 1 FROM certificate",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        let key = self.key_for(id)?;
        let seal = |v: &Option<String>| v.as_deref().map(|v| keys::seal(&key, v));
        self.tx
            .execute(
                "INSERT INTO certificate (id, state, reason, detail, site, result, rule,
                     received_at, sampled_at, integrated_at, purge_at, content_sha256, pdf_sha256,
                     message_id, dossier, nom, prenom, sexe, birth_date, ins, dossier_hmac)
                 VALUES (?21, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                     ?16, ?17, ?18, ?19, ?20)",
                params![
                    c.state.as_str(),
                    c.reason,
                    c.detail,
                    c.site,
                    c.result,
                    c.rule,
                    c.received_at,
                    c.sampled_at,
                    c.integrated_at,
                    c.purge_at,
                    &c.content_sha256[..],
                    c.pdf_sha256.as_ref().map(|h| &h[..]),
                    c.message_id,
                    seal(&c.dossier),
                    seal(&c.nom),
                    seal(&c.prenom),
                    seal(&c.sexe),
                    seal(&c.birth_date),
                    seal(&c.ins),
                    c.dossier_hmac,
                    id,
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(id)
    }

    pub fn set_certificate_state(&self, id: i64, state: CertState) -> Result<()> {
        self.tx
            .execute(
                "UPDATE certificate SET state = ?2 WHERE id = ?1",
                params![id, state.as_str()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Inserts a copy; its path (which carries names) is sealed with its certificate's key
    /// and looked up by its keyed hash.
    pub fn insert_copy(&self, certificate: i64, c: &NewCopy) -> Result<i64> {
        let key = self.key_for(certificate)?;
        self.tx
            .execute(
                "INSERT INTO copy (certificate, kind, path, path_key, temp, sha256, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'planned')",
                params![
                    certificate,
                    c.kind.as_str(),
                    keys::seal(&key, &c.path.to_string_lossy()),
                    self.path_key(&c.path),
                    c.temp.to_string_lossy(),
                    &c.sha256[..]
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.tx.last_insert_rowid())
    }

    pub fn set_copy_sha256(&self, id: i64, sha256: &[u8; 32]) -> Result<()> {
        self.tx
            .execute(
                "UPDATE copy SET sha256 = ?2 WHERE id = ?1",
                params![id, &sha256[..]],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    pub fn set_copy_state(&self, id: i64, state: CopyState) -> Result<()> {
        self.tx
            .execute(
                "UPDATE copy SET state = ?2 WHERE id = ?1",
                params![id, state.as_str()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// A copy's temporary file is written and synced; `file` is its identity.
    pub fn set_copy_staged(&self, id: i64, file: FileId) -> Result<()> {
        self.tx
            .execute(
                "UPDATE copy SET state = 'staged', dev = ?2, ino = ?3 WHERE id = ?1",
                params![id, file.dev as i64, file.ino as i64],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// A copy could not be removed at its due time: counted, with why (no file name).
    pub fn copy_purge_failed(&self, id: i64, error: &str) -> Result<()> {
        self.tx
            .execute(
                "UPDATE copy SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                params![id, error],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// A copy had to take another name (the planned one was taken meanwhile).
    pub fn set_copy_path(&self, id: i64, path: &Path) -> Result<()> {
        let certificate: i64 = self
            .tx
            .query_row("SELECT certificate FROM copy WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))?;
        let key = self.key_for(certificate)?;
        self.tx
            .execute(
                "UPDATE copy SET path = ?2, path_key = ?3 WHERE id = ?1",
                params![
                    id,
                    keys::seal(&key, &path.to_string_lossy()),
                    self.path_key(path)
                ],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Records what became of a source message.
    pub fn set_message(
        &self,
        key: &MailboxKey,
        item: &str,
        disposition: Disposition,
        reason: Option<&str>,
        certificate: Option<i64>,
        now: i64,
    ) -> Result<()> {
        self.tx
            .execute(
                "INSERT INTO message (mailbox, validity, item, disposition, reason, certificate,
                     first_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (mailbox, validity, item) DO UPDATE SET
                     disposition = excluded.disposition,
                     reason = excluded.reason,
                     certificate = excluded.certificate",
                params![
                    key.mailbox,
                    key.validity,
                    item,
                    disposition.as_str(),
                    reason,
                    certificate,
                    now
                ],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Erases what a removed copy's path says (the file name holds the patient's name).
    pub fn forget_copy(&self, id: i64) -> Result<()> {
        self.tx
            .execute(
                "UPDATE copy SET state = 'gone', path = X'', path_key = NULL, temp = ''
                 WHERE id = ?1",
                params![id],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Erases a purged certificate's personal fields, and destroys their key (whatever SQLite
    /// may leave behind is then unreadable); only its pseudonymous record stays.
    pub fn scrub(&self, id: i64, purged_at: i64) -> Result<()> {
        self.destroy_key(id);
        self.tx
            .execute(
                "UPDATE certificate SET purged_at = ?2, dossier = NULL, nom = NULL, prenom = NULL,
                     sexe = NULL, birth_date = NULL, ins = NULL, detail = NULL
                 WHERE id = ?1",
                params![id, purged_at],
            )
            .and_then(|_| {
                self.tx.execute(
                    "UPDATE copy SET state = 'gone', path = X'', path_key = NULL, temp = ''
                     WHERE certificate = ?1",
                    params![id],
                )
            })
            .map(drop)
            .map_err(|e| self.err(e))
    }

    pub fn server_copy_purged(&self, id: i64, purged_at: i64) -> Result<()> {
        self.tx
            .execute(
                "UPDATE server_copy SET state = 'purged', purged_at = ?2, message_id = NULL,
                     last_error = NULL
                 WHERE id = ?1",
                params![id, purged_at],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    pub fn server_copy_failed(&self, id: i64, error: &str) -> Result<()> {
        self.tx
            .execute(
                "UPDATE server_copy SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                params![id, error],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Marks `old` replaced by `new`: due now, for its server copies and personal fields.
    pub fn supersede(&self, old: i64, new: i64, now: i64) -> Result<()> {
        self.tx
            .execute(
                "UPDATE certificate SET state = 'superseded', superseded_by = ?2, purge_at = ?3
                 WHERE id = ?1",
                params![old, new, now],
            )
            .and_then(|_| {
                self.tx.execute(
                    "UPDATE server_copy SET due = ?2 WHERE certificate = ?1 AND state = 'present'",
                    params![old, now],
                )
            })
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Queues a retention-log record; returns its event id.
    pub fn audit(&self, body: &crate::core::audit::Body) -> Result<i64> {
        let record = serde_json::to_string(body).expect("serialisable");
        self.tx
            .execute(
                "INSERT INTO audit_outbox (record) VALUES (?1)",
                params![record],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.tx.last_insert_rowid())
    }

    /// Forgets one queued record (written to the log by other means).
    pub fn outbox_remove(&self, id: i64) -> Result<()> {
        self.tx
            .execute("DELETE FROM audit_outbox WHERE id = ?1", params![id])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Forgets the queued records up to `id`, now in the log.
    pub fn outbox_done(&self, id: i64) -> Result<()> {
        self.tx
            .execute("DELETE FROM audit_outbox WHERE id <= ?1", params![id])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.tx
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    pub fn delete_meta(&self, key: &str) -> Result<()> {
        self.tx
            .execute("DELETE FROM meta WHERE key = ?1", params![key])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Marks the messages waiting on `certificate` as settled (after a recovery finished it).
    pub fn settle_messages(&self, certificate: i64, disposition: Disposition) -> Result<()> {
        self.tx
            .execute(
                "UPDATE message SET disposition = ?2
                 WHERE certificate = ?1 AND disposition = 'pending'",
                params![certificate, disposition.as_str()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Counts a failed attempt to read a message; returns the new count.
    pub fn bump_attempts(&self, key: &MailboxKey, item: &str, now: i64) -> Result<i64> {
        self.tx
            .query_row(
                "INSERT INTO message (mailbox, validity, item, disposition, attempts, first_seen)
                 VALUES (?1, ?2, ?3, 'pending', 1, ?4)
                 ON CONFLICT (mailbox, validity, item) DO UPDATE SET attempts = attempts + 1
                 RETURNING attempts",
                params![key.mailbox, key.validity, item, now],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    pub fn mark_acked(&self, key: &MailboxKey, item: &str) -> Result<()> {
        self.tx
            .execute(
                "UPDATE message SET acked = 1 WHERE mailbox = ?1 AND validity = ?2 AND item = ?3",
                params![key.mailbox, key.validity, item],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    pub fn insert_server_copy(&self, certificate: i64, c: &ServerCopy) -> Result<()> {
        self.tx
            .execute(
                "INSERT INTO server_copy (certificate, mailbox, folder, validity, item, message_id,
                     state, due)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'present',
                     (SELECT purge_at FROM certificate WHERE id = ?1))",
                params![
                    certificate,
                    c.mailbox,
                    c.folder,
                    c.validity,
                    c.item,
                    c.message_id
                ],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }
}

/// The columns `copy_row_at` reads, in order.
pub(crate) const COPY_COLUMNS: &str = "id, kind, path, temp, sha256, state, dev, ino, certificate";
/// The same, of the table aliased `c`.
pub(crate) const C_COPY_COLUMNS: &str =
    "c.id, c.kind, c.path, c.temp, c.sha256, c.state, c.dev, c.ino, c.certificate";

/// The columns `certificate_row` reads, in order.
pub(crate) const CERTIFICATE_COLUMNS: &str = "id, state, received_at, site, result, rule, \
     sampled_at, integrated_at, purge_at, purged_at, dossier_hmac";

/// A `server_copy` row from `SELECT id, certificate, mailbox, folder, validity, item,
/// message_id, due, attempts`.
pub(crate) fn server_copy_row(r: &rusqlite::Row) -> rusqlite::Result<ServerCopyRow> {
    Ok(ServerCopyRow {
        id: r.get(0)?,
        certificate: r.get(1)?,
        copy: ServerCopy {
            mailbox: r.get(2)?,
            folder: r.get(3)?,
            validity: r.get(4)?,
            item: r.get(5)?,
            message_id: r.get(6)?,
        },
        due: r.get(7)?,
        attempts: r.get(8)?,
    })
}

pub(crate) fn certificate_row(r: &rusqlite::Row) -> rusqlite::Result<CertificateRow> {
    Ok(CertificateRow {
        id: r.get(0)?,
        state: CertState::parse(&r.get::<_, String>(1)?),
        received_at: r.get(2)?,
        site: r.get(3)?,
        result: r.get(4)?,
        rule: r.get(5)?,
        sampled_at: r.get(6)?,
        integrated_at: r.get(7)?,
        purge_at: r.get(8)?,
        purged_at: r.get(9)?,
        dossier_hmac: r.get(10)?,
    })
}

fn cert_ref(r: &rusqlite::Row) -> rusqlite::Result<CertificateRef> {
    Ok(CertificateRef {
        id: r.get(0)?,
        state: CertState::parse(&r.get::<_, String>(1)?),
    })
}

/// A copy as read, its path still sealed (`LedgerRead::reveal` opens it).
pub struct SealedCopy {
    row: CopyRow,
    path: Vec<u8>,
    certificate: i64,
}

fn copy_row(r: &rusqlite::Row) -> rusqlite::Result<SealedCopy> {
    copy_row_at(r, 0)
}

/// A copy read from columns `at..at + 9` (`COPY_COLUMNS`); `LedgerRead::reveal` opens its path.
pub(crate) fn copy_row_at(r: &rusqlite::Row, at: usize) -> rusqlite::Result<SealedCopy> {
    let dev: Option<i64> = r.get(at + 6)?;
    let ino: Option<i64> = r.get(at + 7)?;
    let path = match r.get_ref(at + 2)? {
        rusqlite::types::ValueRef::Blob(b) => b.to_vec(),
        _ => Vec::new(),
    };
    Ok(SealedCopy {
        row: CopyRow {
            id: r.get(at)?,
            kind: CopyKind::parse(&r.get::<_, String>(at + 1)?),
            path: PathBuf::new(),
            temp: PathBuf::from(r.get::<_, String>(at + 3)?),
            sha256: blob32(r.get::<_, Vec<u8>>(at + 4)?),
            state: CopyState::parse(&r.get::<_, String>(at + 5)?),
            // Stored as SQLite integers (signed): the bits round-trip.
            file: dev.zip(ino).map(|(dev, ino)| FileId {
                dev: dev as u64,
                ino: ino as u64,
            }),
        },
        path,
        certificate: r.get(at + 8)?,
    })
}

fn blob32(v: Vec<u8>) -> [u8; 32] {
    let mut out = [0u8; 32];
    let n = v.len().min(32);
    out[..n].copy_from_slice(&v[..n]);
    out
}

/// The ledger holds patient data until purge: readable by the service only.
fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for p in [
        path.to_path_buf(),
        path.with_extension("sqlite-wal"),
        path.with_extension("sqlite-shm"),
    ] {
        if p.exists() {
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
        }
    }
}

#[cfg(test)]
mod tests;
