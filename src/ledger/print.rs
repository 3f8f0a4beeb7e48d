//! The print jobs of the sites' printers: the intent recorded with the delivery, then what the
//! printer said. Rows name the certificate by its id and the job by a name without patient
//! data.

use rusqlite::params;

use super::cached::Cached;
use super::{LedgerRead, LedgerTx, PrintState, Result};

/// One print of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrintJobRow {
    pub id: i64,
    pub certificate: i64,
    pub site: String,
    pub printer: String,
    pub copies: u32,
    pub job_name: String,
    pub state: PrintState,
    pub job_id: Option<i32>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub next_try: i64,
    pub created_at: i64,
    pub printed_at: Option<i64>,
    pub by_user: Option<String>,
}

/// A print to record.
#[derive(Debug, Clone)]
pub struct NewPrintJob<'a> {
    pub certificate: i64,
    pub site: &'a str,
    pub printer: &'a str,
    pub copies: u32,
    pub job_name: &'a str,
    pub by_user: Option<&'a str>,
}

const COLUMNS: &str = "id, certificate, site, printer, copies, job_name, state, job_id, \
    attempts, last_error, next_try, created_at, printed_at, by_user";

fn row(r: &rusqlite::Row) -> rusqlite::Result<PrintJobRow> {
    Ok(PrintJobRow {
        id: r.get(0)?,
        certificate: r.get(1)?,
        site: r.get(2)?,
        printer: r.get(3)?,
        copies: r.get(4)?,
        job_name: r.get(5)?,
        state: PrintState::parse(&r.get::<_, String>(6)?),
        job_id: r.get(7)?,
        attempts: r.get(8)?,
        last_error: r.get(9)?,
        next_try: r.get(10)?,
        created_at: r.get(11)?,
        printed_at: r.get(12)?,
        by_user: r.get(13)?,
    })
}

/// Queries on the print jobs.
pub trait PrintRead: LedgerRead {
    fn print_query(&self, filter: &str, p: &[&dyn rusqlite::ToSql]) -> Result<Vec<PrintJobRow>> {
        let sql = format!("SELECT {COLUMNS} FROM print_job {filter}");
        let mut stmt = self
            .conn()
            .prepare_cached(&sql)
            .map_err(|e| self.read_err(e))?;
        let rows = stmt
            .query_map(p, row)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.read_err(e))?;
        Ok(rows)
    }

    /// Prints not finished whose next attempt is due, oldest first.
    fn due_prints(&self, now: i64, limit: usize) -> Result<Vec<PrintJobRow>> {
        self.print_query(
            "WHERE state IN ('pending', 'sending', 'sent') AND next_try <= ?1 ORDER BY id LIMIT ?2",
            &[&now, &(limit as i64)],
        )
    }

    /// Every print, of one site or all, newest first.
    fn prints(&self, site: Option<&str>, limit: usize) -> Result<Vec<PrintJobRow>> {
        match site {
            Some(s) => self.print_query(
                "WHERE site = ?1 ORDER BY id DESC LIMIT ?2",
                &[&s, &(limit as i64)],
            ),
            None => self.print_query("ORDER BY id DESC LIMIT ?1", &[&(limit as i64)]),
        }
    }

    fn prints_of(&self, certificate: i64) -> Result<Vec<PrintJobRow>> {
        self.print_query("WHERE certificate = ?1 ORDER BY id", &[&certificate])
    }

    /// Prints not finished, per printer.
    fn prints_waiting(&self) -> Result<Vec<(String, i64)>> {
        let mut stmt = self
            .conn()
            .prepare_cached(
                "SELECT printer, count(*) FROM print_job
                 WHERE state IN ('pending', 'sending', 'sent') GROUP BY printer ORDER BY printer",
            )
            .map_err(|e| self.read_err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.read_err(e))?;
        Ok(rows)
    }
}

impl<T: LedgerRead + ?Sized> PrintRead for T {}

impl LedgerTx<'_> {
    pub fn insert_print(&self, p: &NewPrintJob, now: i64) -> Result<i64> {
        self.tx
            .execute_cached(
                "INSERT INTO print_job (certificate, site, printer, copies, job_name, state,
                     created_at, by_user)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7)",
                params![
                    p.certificate,
                    p.site,
                    p.printer,
                    p.copies,
                    p.job_name,
                    now,
                    p.by_user
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.tx.last_insert_rowid())
    }

    fn set_print(&self, sql: &str, p: &[&dyn rusqlite::ToSql]) -> Result<()> {
        self.tx.execute_cached(sql, p).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// About to be sent: counted as an attempt first.
    pub fn print_sending(&self, id: i64) -> Result<()> {
        self.set_print(
            "UPDATE print_job SET state = 'sending', attempts = attempts + 1 WHERE id = ?1",
            &[&id],
        )
    }

    pub fn print_sent(&self, id: i64, job_id: i32, next_try: i64) -> Result<()> {
        self.set_print(
            "UPDATE print_job SET state = 'sent', job_id = ?2, next_try = ?3, last_error = NULL
             WHERE id = ?1",
            &[&id, &job_id, &next_try],
        )
    }

    /// Back to pending (sent again at `next_try`), under a new job name when the printer
    /// had the old one.
    pub fn print_retry(&self, id: i64, job_name: &str, error: &str, next_try: i64) -> Result<()> {
        self.set_print(
            "UPDATE print_job SET state = 'pending', job_id = NULL, job_name = ?2,
                 last_error = ?3, next_try = ?4 WHERE id = ?1",
            &[&id, &job_name, &error, &next_try],
        )
    }

    /// The printer answered that it did not take the job (busy, not accepting): it is not
    /// on the printer, so it goes back to pending and the send does not count as an attempt.
    pub fn print_refused(&self, id: i64, why: &str, next_try: i64) -> Result<()> {
        self.set_print(
            "UPDATE print_job SET state = 'pending', attempts = max(attempts - 1, 0),
                 last_error = ?2, next_try = ?3 WHERE id = ?1 AND state = 'sending'",
            &[&id, &why, &next_try],
        )
    }

    /// Nothing changes but when it is looked at again, and why.
    pub fn print_wait(&self, id: i64, why: Option<&str>, next_try: i64) -> Result<()> {
        self.set_print(
            "UPDATE print_job SET last_error = ?2, next_try = ?3 WHERE id = ?1",
            &[&id, &why, &next_try],
        )
    }

    pub fn print_done(&self, id: i64, now: i64) -> Result<()> {
        self.set_print(
            "UPDATE print_job SET state = 'printed', printed_at = ?2, last_error = NULL
             WHERE id = ?1",
            &[&id, &now],
        )
    }

    pub fn print_failed(&self, id: i64, error: &str) -> Result<()> {
        self.set_print(
            "UPDATE print_job SET state = 'failed', last_error = ?2 WHERE id = ?1",
            &[&id, &error],
        )
    }
}
