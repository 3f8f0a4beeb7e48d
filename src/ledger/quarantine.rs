//! What the quarantine commands read and change in the ledger: the quarantined certificates,
//! everything recorded about one of them, a release or a discard, and the server copies a
//! release asks the daemon to move.

use rusqlite::{OptionalExtension, params};

use super::cached::Cached;

use super::{
    C_COPY_COLUMNS, LedgerRead, LedgerTx, Result, SealedCopy, ServerCopyRow, copy_row_at,
    server_copy_row,
};
use crate::ledger::{CertState, CopyRow};

/// A quarantined certificate as `quarantine list` shows it: no personal field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedRow {
    pub id: i64,
    pub received_at: i64,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub site: Option<String>,
    pub sampled_at: Option<i64>,
    pub purge_at: i64,
}

/// The personal and descriptive fields of a certificate, for `quarantine show` only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    pub state: String,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub message_id: Option<String>,
    pub integrated_at: Option<i64>,
    pub personal: crate::ledger::Personal,
}

/// Where a certificate's message is, or was, on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCopyInfo {
    pub folder: String,
    pub item: Option<String>,
    pub state: String,
    pub due: i64,
    pub move_to: Option<String>,
    pub last_error: Option<String>,
}

/// A released certificate's new decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub site: String,
    pub result: Option<String>,
    pub rule: String,
    pub sampled_at: Option<i64>,
    pub purge_at: i64,
}

pub trait QuarantineRead: LedgerRead {
    /// Every certificate in quarantine now, oldest first.
    fn quarantined(&self) -> Result<Vec<QuarantinedRow>> {
        let mut stmt = self
            .conn()
            .prepare_cached(
                "SELECT id, received_at, reason, detail, site, sampled_at, purge_at
                 FROM certificate WHERE state = 'quarantined' AND purged_at IS NULL
                 ORDER BY id",
            )
            .map_err(|e| self.read_err(e))?;
        stmt.query_map([], |r| {
            Ok(QuarantinedRow {
                id: r.get(0)?,
                received_at: r.get(1)?,
                reason: r.get(2)?,
                detail: r.get(3)?,
                site: r.get(4)?,
                sampled_at: r.get(5)?,
                purge_at: r.get(6)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.read_err(e))
    }

    fn recorded(&self, id: i64) -> Result<Option<Recorded>> {
        type Sealed = Option<Vec<u8>>;
        let row: Option<(Recorded, [Sealed; 6])> = self
            .conn()
            .query_row_cached(
                "SELECT state, reason, detail, message_id, integrated_at, dossier, nom, prenom,
                     sexe, birth_date, ins
                 FROM certificate WHERE id = ?1",
                params![id],
                |r| {
                    Ok((
                        Recorded {
                            state: r.get(0)?,
                            reason: r.get(1)?,
                            detail: r.get(2)?,
                            message_id: r.get(3)?,
                            integrated_at: r.get(4)?,
                            ..Recorded::default()
                        },
                        [
                            r.get(5)?,
                            r.get(6)?,
                            r.get(7)?,
                            r.get(8)?,
                            r.get(9)?,
                            r.get(10)?,
                        ],
                    ))
                },
            )
            .optional()
            .map_err(|e| self.read_err(e))?;
        let Some((mut rec, sealed)) = row else {
            return Ok(None);
        };
        let mut fields: [Option<String>; 6] = Default::default();
        for (field, sealed) in fields.iter_mut().zip(sealed) {
            *field = self.open_field(id, sealed)?;
        }
        rec.personal = crate::ledger::Personal::from_fields(fields);
        Ok(Some(rec))
    }

    fn server_copies(&self, certificate: i64) -> Result<Vec<ServerCopyInfo>> {
        let mut stmt = self
            .conn()
            .prepare_cached(
                "SELECT folder, item, state, due, move_to, last_error FROM server_copy
                 WHERE certificate = ?1 ORDER BY id",
            )
            .map_err(|e| self.read_err(e))?;
        stmt.query_map(params![certificate], |r| {
            Ok(ServerCopyInfo {
                folder: r.get(0)?,
                item: r.get(1)?,
                state: r.get(2)?,
                due: r.get(3)?,
                move_to: r.get(4)?,
                last_error: r.get(5)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.read_err(e))
    }

    /// Server copies of released certificates still to move, with their folder to be.
    fn pending_moves(&self, limit: usize) -> Result<Vec<(ServerCopyRow, String)>> {
        let mut stmt = self
            .conn()
            .prepare_cached(
                "SELECT id, certificate, mailbox, folder, validity, item, message_id, due,
                     attempts, move_to
                 FROM server_copy WHERE state = 'present' AND move_to IS NOT NULL
                 ORDER BY id LIMIT ?1",
            )
            .map_err(|e| self.read_err(e))?;
        stmt.query_map(params![limit as i64], |r| {
            Ok((server_copy_row(r)?, r.get(9)?))
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.read_err(e))
    }

    /// Copies a release planned or staged for a certificate that is still in quarantine: an
    /// interrupted release, to undo.
    fn abandoned_release_copies(&self, certificate: Option<i64>) -> Result<Vec<(i64, CopyRow)>> {
        let mut stmt = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {C_COPY_COLUMNS}
                 FROM copy c JOIN certificate t ON t.id = c.certificate
                 WHERE t.state = 'quarantined' AND c.state IN ('planned', 'staged')
                   AND (?1 IS NULL OR c.certificate = ?1)
                 ORDER BY c.id"
            ))
            .map_err(|e| self.read_err(e))?;
        let sealed: Vec<SealedCopy> = stmt
            .query_map(params![certificate], |r| copy_row_at(r, 0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.read_err(e))?;
        self.reveal_all(sealed)
    }
}

impl<T: LedgerRead + ?Sized> QuarantineRead for T {}

impl LedgerTx<'_> {
    /// A quarantined certificate becomes a delivered one, under its new decision. Its
    /// quarantine reason stays: it was quarantined, and the counters say so.
    pub fn release(&self, id: i64, r: &Release) -> Result<()> {
        self.tx
            .execute_cached(
                "UPDATE certificate SET state = ?2, site = ?3,
                     result = ?4, rule = ?5, sampled_at = ?6, purge_at = ?7
                 WHERE id = ?1",
                params![
                    id,
                    CertState::Delivered.as_str(),
                    r.site,
                    r.result,
                    r.rule,
                    r.sampled_at,
                    r.purge_at
                ],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The server copies of a certificate follow its new due time, and move to `move_to`
    /// (done by the daemon, which holds the connection).
    pub fn retarget_server_copies(
        &self,
        certificate: i64,
        due: i64,
        move_to: Option<&str>,
    ) -> Result<()> {
        self.tx
            .execute_cached(
                "UPDATE server_copy SET due = ?2, move_to = ?3
                 WHERE certificate = ?1 AND state = 'present'",
                params![certificate, due, move_to],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// A server copy now lives in `folder` (as `item` under `validity`, when the server said).
    pub fn server_copy_moved(
        &self,
        id: i64,
        folder: &str,
        validity: Option<&str>,
        item: Option<&str>,
    ) -> Result<()> {
        self.tx
            .execute_cached(
                "UPDATE server_copy SET folder = ?2, validity = ?3, item = ?4, move_to = NULL,
                     last_error = NULL
                 WHERE id = ?1",
                params![id, folder, validity, item],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The messages that led to a released certificate are now counted as delivered, those
    /// whose move is recorded: one not recorded yet keeps its disposition until it is
    /// (`LedgerTx::mark_acked`), because it says which folder the move, if it happened, took
    /// it to.
    pub fn messages_released(&self, certificate: i64) -> Result<()> {
        self.tx
            .execute_cached(
                "UPDATE message SET disposition = 'delivered', reason = NULL
                 WHERE certificate = ?1 AND disposition = 'quarantined' AND acked = 1",
                params![certificate],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Makes a certificate and its server copies due at `at` (a discard).
    pub fn due_now(&self, id: i64, at: i64) -> Result<()> {
        self.tx
            .execute_cached(
                "UPDATE certificate SET purge_at = ?2 WHERE id = ?1",
                params![id, at],
            )
            .and_then(|_| {
                self.tx.execute_cached(
                    "UPDATE server_copy SET due = ?2, move_to = NULL
                     WHERE certificate = ?1 AND state = 'present'",
                    params![id, at],
                )
            })
            .map(drop)
            .map_err(|e| self.err(e))
    }
}
