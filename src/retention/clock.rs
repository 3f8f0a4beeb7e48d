//! The clock gate of the purge (`core::clock` decides): a wall clock set back, or moved far
//! forward, holds every purge until an operator confirms it, so that a wrong clock can never
//! purge what is not due (or be taken for the passage of months). The hold and the last pass
//! are kept in the ledger.

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::core::audit::Event;
use crate::core::clock::{self, LastPass, Verdict};
use crate::ledger::{Ledger, LedgerError, LedgerRead};

use crate::ledger::meta::{CLOCK_HOLD, PURGE_LAST_PASS as LAST_PASS};

/// Whether purging may go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Held until an operator runs `purge --confirm-clock`; the reason in words.
    Held(String),
}

/// Checks the clock against the last pass (`in_process`: this process's last pass with its
/// monotonic reading; otherwise the ledger's). A new inconsistency starts a hold, recorded in
/// the ledger and the retention log.
pub fn clock_gate(
    ledger: &mut Ledger,
    in_process: Option<LastPass>,
    now: Timestamp,
    mono: Duration,
    max_jump: Duration,
    tz: &TimeZone,
) -> Result<Gate, LedgerError> {
    if let Some(reason) = ledger.meta(CLOCK_HOLD)? {
        return Ok(Gate::Held(reason));
    }
    let last = in_process.or_else(|| {
        ledger
            .meta(LAST_PASS)
            .ok()
            .flatten()
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|s| Timestamp::from_second(s).ok())
            .map(|wall| LastPass { wall, mono: None })
    });
    let max_jump = SignedDuration::try_from(max_jump).unwrap_or(SignedDuration::MAX);
    match clock::check(last, now, mono, max_jump) {
        Verdict::Fine => Ok(Gate::Open),
        verdict => {
            let reason = format!(
                "{} (now {}); purging is held until an operator runs \
                 `mss-dispatch purge --confirm-clock`",
                verdict.describe(),
                crate::core::retention::rfc3339(now, tz)
            );
            let tx = ledger.tx()?;
            tx.set_meta(CLOCK_HOLD, &reason)?;
            tx.audit(&crate::core::audit::Body {
                time: crate::core::retention::rfc3339(now, tz),
                event: Some(Event::ClockHold),
                detail: Some(verdict.describe()),
                ..Default::default()
            })?;
            tx.commit()?;
            Ok(Gate::Held(reason))
        }
    }
}

/// Remembers a completed pass, for the clock check of the next one.
pub fn passed(ledger: &mut Ledger, now: Timestamp) -> Result<(), LedgerError> {
    let tx = ledger.tx()?;
    tx.set_meta(LAST_PASS, &now.as_second().to_string())?;
    tx.commit()
}

/// The hold, if there is one.
pub fn hold(ledger: &Ledger) -> Result<Option<String>, LedgerError> {
    ledger.meta(CLOCK_HOLD)
}

/// An operator confirms the clock: the hold ends and `now` becomes the reference.
pub fn confirm_clock(
    ledger: &mut Ledger,
    now: Timestamp,
    user: &str,
    tz: &TimeZone,
) -> Result<bool, LedgerError> {
    let held = ledger.meta(CLOCK_HOLD)?.is_some();
    let tx = ledger.tx()?;
    tx.delete_meta(CLOCK_HOLD)?;
    tx.set_meta(LAST_PASS, &now.as_second().to_string())?;
    tx.audit(&crate::core::audit::Body {
        time: crate::core::retention::rfc3339(now, tz),
        event: Some(Event::ClockConfirmed),
        user: Some(user.to_string()),
        detail: Some(if held {
            "the hold is lifted".into()
        } else {
            "no hold was in force".into()
        }),
        ..Default::default()
    })?;
    tx.commit()?;
    Ok(held)
}
