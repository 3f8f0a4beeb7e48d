//! What the ledger says at a glance, for `status` and the metrics: deliveries, the
//! quarantine, the purges to come and those failing, and the retention work's state.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Ledger, LedgerError, LedgerRead, meta};

/// Counts from the ledger at `now`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Certificates delivered (by their reception) in the last 24 hours, per site.
    pub delivered_24h: BTreeMap<String, i64>,
    /// Certificates now in quarantine, per reason.
    pub quarantine: BTreeMap<String, i64>,
    pub purges_due_24h: i64,
    pub next_purge_at: Option<i64>,
    pub server_copies_pending: i64,
    pub last_purge_pass: Option<i64>,
    pub clock_hold: Option<String>,
    /// Since the installation: delivered per site, quarantined per reason, purged per rule.
    pub delivered_total: BTreeMap<String, i64>,
    pub quarantined_total: BTreeMap<String, i64>,
    pub purged_total: BTreeMap<String, i64>,
    pub ignored_total: i64,
    /// Certificates held now (not purged), per rule.
    pub held: BTreeMap<String, i64>,
    /// Copies due whose removal failed at the last attempts, and the last error of one.
    pub purge_failing: i64,
    pub purge_failing_error: Option<String>,
    /// Why the retention log is broken, while it is.
    pub retention_log_broken: Option<String>,
    /// Prints done and failed since the installation, per site; prints not finished, per
    /// printer.
    pub printed_total: BTreeMap<String, i64>,
    pub print_failed_total: BTreeMap<String, i64>,
    pub print_waiting: BTreeMap<String, i64>,
}

pub fn counts(ledger: &Ledger, now: i64) -> Result<Counts, LedgerError> {
    let c = ledger.conn();
    let err = |e| ledger.read_err(e);
    let grouped =
        |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<BTreeMap<String, i64>, LedgerError> {
            let mut stmt = c.prepare_cached(sql).map_err(err)?;
            stmt.query_map(p, |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?
                        .unwrap_or_else(|| "none".into()),
                    r.get(1)?,
                ))
            })
            .and_then(|rows| rows.collect())
            .map_err(err)
        };
    let delivered = "state IN ('delivered', 'superseded')";
    let (purges_due_24h, next) = c
        .query_row(
            "SELECT count(*), min(purge_at) FROM certificate
             WHERE purged_at IS NULL AND purge_at <= ?1",
            [now + 86_400],
            |r| Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?)),
        )
        .map_err(err)?;
    let (purge_failing, purge_failing_error) = c
        .query_row(
            "SELECT count(*), max(last_error) FROM copy
             WHERE state = 'purging' AND attempts > 0",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(err)?;
    let next_purge_at = match next {
        Some(n) => Some(n),
        None => c
            .query_row(
                "SELECT min(purge_at) FROM certificate WHERE purged_at IS NULL",
                [],
                |r| r.get(0),
            )
            .map_err(err)?,
    };
    Ok(Counts {
        delivered_24h: grouped(
            &format!(
                "SELECT site, count(*) FROM certificate
                 WHERE received_at >= ?1 AND {delivered} GROUP BY site"
            ),
            &[&(now - 86_400)],
        )?,
        quarantine: grouped(
            "SELECT reason, count(*) FROM certificate
             WHERE purged_at IS NULL AND state IN ('quarantining', 'quarantined')
             GROUP BY reason",
            &[],
        )?,
        purges_due_24h,
        next_purge_at,
        server_copies_pending: c
            .query_row(
                "SELECT count(*) FROM server_copy WHERE state = 'present' AND due <= ?1",
                [now],
                |r| r.get(0),
            )
            .map_err(err)?,
        last_purge_pass: ledger
            .meta(meta::PURGE_LAST_PASS)?
            .and_then(|s| s.parse().ok()),
        clock_hold: ledger.meta(meta::CLOCK_HOLD)?,
        delivered_total: grouped(
            &format!("SELECT site, count(*) FROM certificate WHERE {delivered} GROUP BY site"),
            &[],
        )?,
        quarantined_total: grouped(
            "SELECT reason, count(*) FROM certificate WHERE reason IS NOT NULL GROUP BY reason",
            &[],
        )?,
        purged_total: grouped(
            "SELECT rule, count(*) FROM certificate WHERE purged_at IS NOT NULL GROUP BY rule",
            &[],
        )?,
        ignored_total: c
            .query_row(
                "SELECT count(*) FROM message WHERE disposition = 'ignored'",
                [],
                |r| r.get(0),
            )
            .map_err(err)?,
        printed_total: grouped(
            "SELECT site, count(*) FROM print_job WHERE state = 'printed' GROUP BY site",
            &[],
        )?,
        print_failed_total: grouped(
            "SELECT site, count(*) FROM print_job WHERE state = 'failed' GROUP BY site",
            &[],
        )?,
        print_waiting: grouped(
            "SELECT printer, count(*) FROM print_job
             WHERE state IN ('pending', 'sending', 'sent') GROUP BY printer",
            &[],
        )?,
        held: grouped(
            "SELECT rule, count(*) FROM certificate WHERE purged_at IS NULL GROUP BY rule",
            &[],
        )?,
        purge_failing,
        purge_failing_error,
        retention_log_broken: ledger.meta(meta::AUDIT_BROKEN)?,
    })
}
