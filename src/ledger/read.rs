//! Queries, shared by the ledger and its transactions.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::*;

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

    /// The messages of `mailbox` under this UIDVALIDITY that the ledger knows among `items`:
    /// one indexed look-up each, so that a pass costs what is in the folder, not every message
    /// ever seen.
    fn messages(&self, key: &MailboxKey, items: &[String]) -> Result<HashMap<String, MessageRow>> {
        let mut stmt = self
            .conn()
            .prepare_cached(&format!(
                "{MESSAGE_ROW} WHERE m.mailbox = ?1 AND m.validity = ?2 AND m.item = ?3"
            ))
            .map_err(|e| self.read_err(e))?;
        let mut out = HashMap::new();
        for item in items {
            let row = stmt
                .query_row(params![key.mailbox, key.validity, item], message_row)
                .optional()
                .map_err(|e| self.read_err(e))?;
            out.extend(row);
        }
        Ok(out)
    }

    /// The messages of `mailbox` under this UIDVALIDITY not acknowledged yet, except those
    /// ignored (which stay in the folder): a few at any time, found by a partial index.
    fn unacknowledged(&self, key: &MailboxKey) -> Result<HashMap<String, MessageRow>> {
        self.conn()
            .prepare_cached(&format!(
                "{MESSAGE_ROW} WHERE m.mailbox = ?1 AND m.validity = ?2
                     AND m.acked = 0 AND m.disposition <> 'ignored'"
            ))
            .and_then(|mut stmt| {
                stmt.query_map(params![key.mailbox, key.validity], message_row)?
                    .collect::<rusqlite::Result<HashMap<_, _>>>()
            })
            .map_err(|e| self.read_err(e))
    }

    /// The certificate whose raw message had this hash, if any.
    fn by_content(&self, sha256: &[u8; 32]) -> Result<Option<CertificateRef>> {
        self.conn()
            .query_row_cached(
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
            .query_row_cached(
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
            .query_row_cached(
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
            .query_row_cached(
                &format!("SELECT {CERTIFICATE_COLUMNS} FROM certificate WHERE id = ?1"),
                params![id],
                certificate_row,
            )
            .optional()
            .map_err(|e| self.read_err(e))
    }

    /// The Message-ID of the mail a certificate came from, if it had one.
    fn message_id(&self, certificate: i64) -> Result<Option<String>> {
        self.conn()
            .query_row_cached(
                "SELECT message_id FROM certificate WHERE id = ?1",
                params![certificate],
                |r| r.get(0),
            )
            .optional()
            .map(Option::flatten)
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
            .prepare_cached(&format!(
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

    /// Certificates sampled in `[from, to)` (received then, when the sampling time is
    /// unknown), in id order: what a monthly retention report covers.
    fn certificates_sampled(&self, from: i64, to: i64) -> Result<Vec<CertificateRow>> {
        let mut stmt = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {CERTIFICATE_COLUMNS} FROM certificate
                 WHERE coalesce(sampled_at, received_at) >= ?1
                   AND coalesce(sampled_at, received_at) < ?2 ORDER BY id"
            ))
            .map_err(|e| self.read_err(e))?;
        stmt.query_map(params![from, to], certificate_row)
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
            .query_row_cached(
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
            .query_row_cached(
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
            .query_row_cached("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.read_err(e))
    }

    /// Several meta values read in one statement, so from one snapshot of the ledger (two
    /// `meta` calls may straddle a commit of the service).
    fn metas<const N: usize>(&self, keys: [&str; N]) -> Result<[Option<String>; N]> {
        let marks = vec!["?"; N].join(",");
        let mut stmt = self
            .conn()
            .prepare_cached(&format!(
                "SELECT key, value FROM meta WHERE key IN ({marks})"
            ))
            .map_err(|e| self.read_err(e))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(keys), |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(|e| self.read_err(e))?;
        let mut out: [Option<String>; N] = std::array::from_fn(|_| None);
        for row in rows {
            let (key, value) = row.map_err(|e| self.read_err(e))?;
            if let Some(i) = keys.iter().position(|k| *k == key) {
                out[i] = Some(value);
            }
        }
        Ok(out)
    }

    /// Number of certificates per state, for reports and tests.
    fn count_by_state(&self) -> Result<HashMap<String, i64>> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT state, count(*) FROM certificate GROUP BY state")
            .map_err(|e| self.read_err(e))?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.read_err(e))
    }
    /// Whether a live copy already claims `path` (rows of this transaction included).
    fn path_taken(&self, path: &Path) -> Result<bool> {
        self.conn()
            .query_row_cached(
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
        self.keys.get(id).map_err(LedgerError::keys(&self.keys))
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
        self.keys.get(id).map_err(LedgerError::keys(self.keys))
    }

    fn path_secret(&self) -> &[u8] {
        self.secret
    }
}

/// A message with its certificate's state; read by `message_row`.
const MESSAGE_ROW: &str =
    "SELECT m.item, m.disposition, m.certificate, m.attempts, m.acked, c.state
     FROM message m LEFT JOIN certificate c ON c.id = m.certificate";

fn message_row(r: &rusqlite::Row) -> rusqlite::Result<(String, MessageRow)> {
    Ok((
        r.get(0)?,
        MessageRow {
            disposition: Disposition::parse(&r.get::<_, String>(1)?),
            certificate: r.get(2)?,
            attempts: r.get(3)?,
            acked: r.get(4)?,
            cert_state: r.get::<_, Option<String>>(5)?.map(|s| CertState::parse(&s)),
        },
    ))
}
