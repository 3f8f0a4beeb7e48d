//! Writes: every change to the ledger goes through one transaction.

use std::path::{Path, PathBuf};

use rusqlite::{Transaction, params};

use crate::source::AckTarget;

use super::*;

/// One transaction on the ledger.
pub struct LedgerTx<'a> {
    pub(super) tx: Transaction<'a>,
    pub(super) path: PathBuf,
    pub(super) keys: &'a keys::Keys,
    pub(super) secret: &'a [u8; 32],
    /// Keys made (and destroyed: zeros) in this transaction, written and synced just before
    /// it commits.
    pub(super) pending: std::cell::RefCell<Vec<(i64, keys::Key)>>,
    /// Committed without waiting for the disk (`Ledger::tx_unsynced`).
    pub(super) unsynced: bool,
}

impl Drop for LedgerTx<'_> {
    /// Puts the connection back to synced commits after an unsynced transaction, committed or
    /// not (SQLite refuses the change inside a transaction: one left open is rolled back first).
    fn drop(&mut self) {
        if self.unsynced {
            if !self.tx.is_autocommit() {
                let _ = self.tx.execute_batch("ROLLBACK");
            }
            let _ = self.tx.pragma_update(None, "synchronous", "FULL");
        }
    }
}

impl LedgerTx<'_> {
    pub(super) fn err(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError::sqlite(&self.path, source)
    }

    pub fn commit(self) -> Result<()> {
        // Keys first: a key destroyed before its purge commits makes at worst a certificate
        // unreadable that is being purged anyway; one written for a row that never commits
        // is overwritten by the next row of that id.
        self.keys
            .put(&self.pending.borrow())
            .map_err(LedgerError::keys(self.keys))?;
        // Committed by hand, not by `Transaction::commit`, so that `Drop` below still has the
        // connection; the transaction's own drop then finds nothing left to roll back.
        self.tx
            .execute_batch("COMMIT")
            .map_err(|source| LedgerError::sqlite(&self.path, source))
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

    /// The key of a new certificate, `id` being above every certificate's: with it, the keys
    /// of the next `keys::RESERVE` certificates are made, so that the key file is synced once
    /// for that many, not before every plan. A key made ahead protects nothing until a row
    /// takes its id, and those slots belong to no certificate: ids are never reused (a purge
    /// scrubs its row and keeps it), so no purged certificate's slot is filled again.
    fn key_for_new(&self, id: i64) -> Result<keys::Key> {
        if let Some(k) = self.key(id)? {
            return Ok(k);
        }
        let ahead = self
            .keys
            .vacant_after(id, keys::RESERVE)
            .map_err(LedgerError::keys(self.keys))?;
        let k = self.key_for(id)?;
        let mut pending = self.pending.borrow_mut();
        for next in ahead {
            if !pending.iter().any(|(i, _)| *i == next) {
                pending.push((next, keys::new_key()));
            }
        }
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
            .query_row_cached(
                "SELECT coalesce(max(id), 0) + 1 FROM certificate",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        let key = self.key_for_new(id)?;
        let seal = |v: &Option<String>| v.as_deref().map(|v| keys::seal(&key, v));
        let [dossier, nom, prenom, sexe, birth_date, ins] = c.personal.fields().map(seal);
        self.tx
            .execute_cached(
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
                    dossier,
                    nom,
                    prenom,
                    sexe,
                    birth_date,
                    ins,
                    c.dossier_hmac,
                    id,
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(id)
    }

    pub fn set_certificate_state(&self, id: i64, state: CertState) -> Result<()> {
        self.tx
            .execute_cached(
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
            .execute_cached(
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
            .execute_cached(
                "UPDATE copy SET sha256 = ?2 WHERE id = ?1",
                params![id, &sha256[..]],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    pub fn set_copy_state(&self, id: i64, state: CopyState) -> Result<()> {
        self.tx
            .execute_cached(
                "UPDATE copy SET state = ?2 WHERE id = ?1",
                params![id, state.as_str()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// A copy's temporary file is written and synced; `file` is its identity.
    pub fn set_copy_staged(&self, id: i64, file: FileId) -> Result<()> {
        self.tx
            .execute_cached(
                "UPDATE copy SET state = 'staged', dev = ?2, ino = ?3 WHERE id = ?1",
                params![id, file.dev as i64, file.ino as i64],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The file a copy is now known by: the one found in place with the copy's content.
    pub fn set_copy_file(&self, id: i64, file: FileId) -> Result<()> {
        self.tx
            .execute_cached(
                "UPDATE copy SET dev = ?2, ino = ?3 WHERE id = ?1",
                params![id, file.dev as i64, file.ino as i64],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// A copy could not be removed at its due time: counted, with why (no file name).
    pub fn copy_purge_failed(&self, id: i64, error: &str) -> Result<()> {
        self.tx
            .execute_cached(
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
            .query_row_cached("SELECT certificate FROM copy WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))?;
        let key = self.key_for(certificate)?;
        self.tx
            .execute_cached(
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
            .execute_cached(
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
            .execute_cached(
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
            .execute_cached(
                "UPDATE certificate SET purged_at = ?2, dossier = NULL, nom = NULL, prenom = NULL,
                     sexe = NULL, birth_date = NULL, ins = NULL, detail = NULL
                 WHERE id = ?1",
                params![id, purged_at],
            )
            .and_then(|_| {
                self.tx.execute_cached(
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
            .execute_cached(
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
            .execute_cached(
                "UPDATE server_copy SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                params![id, error],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Marks `old` replaced by `new`: due now, for its server copies and personal fields.
    pub fn supersede(&self, old: i64, new: i64, now: i64) -> Result<()> {
        self.tx
            .execute_cached(
                "UPDATE certificate SET state = 'superseded', superseded_by = ?2, purge_at = ?3
                 WHERE id = ?1",
                params![old, new, now],
            )
            .and_then(|_| {
                self.tx.execute_cached(
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
            .execute_cached(
                "INSERT INTO audit_outbox (record) VALUES (?1)",
                params![record],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.tx.last_insert_rowid())
    }

    /// Forgets one queued record (written to the log by other means).
    pub fn outbox_remove(&self, id: i64) -> Result<()> {
        self.tx
            .execute_cached("DELETE FROM audit_outbox WHERE id = ?1", params![id])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Forgets the queued records up to `id`, now in the log.
    pub fn outbox_done(&self, id: i64) -> Result<()> {
        self.tx
            .execute_cached("DELETE FROM audit_outbox WHERE id <= ?1", params![id])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.tx
            .execute_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    pub fn delete_meta(&self, key: &str) -> Result<()> {
        self.tx
            .execute_cached("DELETE FROM meta WHERE key = ?1", params![key])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Marks the messages waiting on `certificate` as settled (after a recovery finished it).
    pub fn settle_messages(&self, certificate: i64, disposition: Disposition) -> Result<()> {
        self.tx
            .execute_cached(
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
            .query_row_cached(
                "INSERT INTO message (mailbox, validity, item, disposition, attempts, first_seen)
                 VALUES (?1, ?2, ?3, 'pending', 1, ?4)
                 ON CONFLICT (mailbox, validity, item) DO UPDATE SET attempts = attempts + 1
                 RETURNING attempts",
                params![key.mailbox, key.validity, item, now],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// The message's move to `went` is recorded. Moved to the processed folder, a message
    /// still counted as quarantined was released before its move was recorded: it is
    /// delivered now (`messages_released`).
    pub fn mark_acked(&self, key: &MailboxKey, item: &str, went: AckTarget) -> Result<()> {
        let processed = went == AckTarget::Processed;
        self.tx
            .execute_cached(
                "UPDATE message SET acked = 1,
                     disposition = CASE WHEN ?4 AND disposition = 'quarantined'
                         THEN 'delivered' ELSE disposition END,
                     reason = CASE WHEN ?4 AND disposition = 'quarantined'
                         THEN NULL ELSE reason END
                 WHERE mailbox = ?1 AND validity = ?2 AND item = ?3",
                params![key.mailbox, key.validity, item, processed],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    pub fn insert_server_copy(&self, certificate: i64, c: &ServerCopy) -> Result<()> {
        self.tx
            .execute_cached(
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
