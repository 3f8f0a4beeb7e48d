//! The ledger: one SQLite database in `state.dir` recording every message seen, every
//! certificate taken in charge, every file written for it and where its server copy went.
//! It is the source of truth for exactly-once delivery and for retention. Synchronous API, for
//! use from one blocking thread at a time (`rusqlite::Connection` is not `Sync`); it must never
//! be called from async code directly. WAL with `synchronous=FULL`, so that a commit is durable
//! before the server is told anything, and `secure_delete`, so that erased personal fields do
//! not linger in free pages.

mod cached;
pub mod keys;
pub mod locked;
pub mod meta;
mod migrate;
mod print;
mod quarantine;
mod read;
mod rows;
mod summary;
mod tx;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::system::failure::{Class, LocalFailure};
use cached::Cached;
use rusqlite::Connection;

pub use crate::core::layout::FileId;
pub use print::{NewPrintJob, PrintJobRow, PrintRead};
pub use quarantine::{QuarantineRead, QuarantinedRow, Recorded, Release, ServerCopyInfo};
pub use read::LedgerRead;
pub use rows::*;
pub use summary::{Counts, counts};
pub use tx::LedgerTx;

/// The schema this program reads and writes.
const SCHEMA_VERSION: i64 = 4;

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

impl LedgerError {
    /// The error of an operation on the key file, for `map_err`.
    fn keys(keys: &keys::Keys) -> impl FnOnce(std::io::Error) -> LedgerError + '_ {
        move |source| LedgerError::Keys {
            path: keys.path().to_path_buf(),
            source,
        }
    }
}

impl Ledger {
    /// Opens (creating if needed) `ledger.sqlite` in the state directory.
    pub fn open(state_dir: &Path) -> Result<Ledger> {
        let path = file(state_dir);
        let err = |source| LedgerError::sqlite(&path, source);
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        conn.set_prepared_statement_cache_capacity(cached::CAPACITY);
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(err)?;
        // 512 KiB of pages rather than SQLite's 2 MiB: every query goes through an index to
        // what it needs (a purge touches what is due, not what is held), and the kernel
        // caches the file anyway; the service's memory goes to the mail in flight.
        conn.pragma_update(None, "cache_size", -512).map_err(err)?;
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

    /// Writes the write-ahead log back into the database and empties it, so that values just
    /// erased (with `secure_delete`) do not linger in its old frames.
    pub fn checkpoint(&mut self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| self.err(e))
    }

    /// Starts a transaction; nothing is durable before `LedgerTx::commit`.
    pub fn tx(&mut self) -> Result<LedgerTx<'_>> {
        self.begin(false)
    }

    /// A transaction whose commit does not wait for the disk, for changes whose loss a crash
    /// recovery handles: the write-ahead log is written in order, so the commit becomes durable
    /// with the next synced one, and a power cut before that loses it and nothing before it.
    pub fn tx_unsynced(&mut self) -> Result<LedgerTx<'_>> {
        self.begin(true)
    }

    fn begin(&mut self, unsynced: bool) -> Result<LedgerTx<'_>> {
        let Ledger {
            conn,
            path,
            keys,
            secret,
        } = self;
        let err = |source| LedgerError::sqlite(path, source);
        if unsynced {
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(err)?;
        }
        // `&mut self` is held for the transaction's life: no other one can start meanwhile.
        let tx =
            rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Deferred)
                .map_err(err);
        let tx = match tx {
            Ok(tx) => tx,
            Err(e) => {
                if unsynced {
                    let _ = conn.pragma_update(None, "synchronous", "FULL");
                }
                return Err(e);
            }
        };
        Ok(LedgerTx {
            tx,
            path: path.clone(),
            keys,
            secret,
            pending: Default::default(),
            unsynced,
        })
    }
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

/// A ledger failure is a local failure: its class from SQLite's code, its folder the state
/// directory.
impl From<&LedgerError> for LocalFailure {
    fn from(e: &LedgerError) -> Self {
        use rusqlite::ErrorCode;
        let class = match e {
            LedgerError::Sqlite {
                source: rusqlite::Error::SqliteFailure(f, _),
                ..
            } => match f.code {
                ErrorCode::DiskFull => Class::DiskFull,
                ErrorCode::ReadOnly | ErrorCode::PermissionDenied | ErrorCode::CannotOpen => {
                    Class::Permission
                }
                _ => Class::Ledger,
            },
            LedgerError::Keys { source, .. } => match Class::of_io(source) {
                Class::Io | Class::Refused => Class::Ledger,
                other => other,
            },
            _ => Class::Ledger,
        };
        let folder = e.path().parent().unwrap_or(Path::new("/"));
        LocalFailure::new(class, folder, e)
    }
}
crate::system::failure::by_value!(LedgerError);

#[cfg(test)]
mod tests;
