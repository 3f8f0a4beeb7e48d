//! Creating the schema, and upgrading an older ledger in place.

use std::path::Path;

use rusqlite::{Transaction, TransactionBehavior, params};

use super::{Ledger, LedgerError, Result, SCHEMA_VERSION, keys};

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

/// Version 3: the print jobs.
const PRINT_JOBS: &str = include_str!("schema_print.sql");

/// Version 4: the messages not acknowledged yet, found without reading every message ever
/// seen (a pass looks for those acknowledged but never recorded).
const UNACKED_INDEX: &str = "
    CREATE INDEX message_unacked ON message (mailbox, validity)
        WHERE acked = 0 AND disposition <> 'ignored';
";

/// Seals the personal fields and the paths a version-1 ledger held in clear; returns the
/// keys made, to be written before the upgrade commits.
fn seal_version_1(tx: &Transaction, secret: &[u8]) -> rusqlite::Result<Vec<(i64, keys::Key)>> {
    let mut made = Vec::new();
    let fields = super::Personal::COLUMNS;
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

impl Ledger {
    /// Brings the schema to this program's version. Creation and upgrades run in an
    /// immediate transaction that reads the version again: two processes starting at once
    /// never both create it.
    pub(super) fn migrate(&mut self) -> Result<()> {
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
        let steps: &[&str] = match version {
            0 => &[include_str!("schema.sql"), PRINT_JOBS, UNACKED_INDEX],
            1 => &[UPGRADE_1_TO_2, PRINT_JOBS, UNACKED_INDEX],
            2 => &[PRINT_JOBS, UNACKED_INDEX],
            3 => &[UNACKED_INDEX],
            _ => &[],
        };
        for step in steps {
            tx.execute_batch(step).map_err(err)?;
        }
        let sealed = if version == 1 {
            seal_version_1(&tx, &self.secret).map_err(err)?
        } else {
            Vec::new()
        };
        self.keys
            .put(&sealed)
            .map_err(LedgerError::keys(&self.keys))?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .and_then(|()| tx.commit())
            .map_err(err)?;
        if version == 1 {
            // What version 1 held in clear may linger in free space: rewritten once.
            self.conn.execute_batch("VACUUM").map_err(err)?;
        }
        Ok(())
    }

    pub(super) fn version(&self) -> Result<i64> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.err(e))
    }
}
