//! What the source did with the messages: acknowledged (moved, copied or deleted) once their
//! certificates are finished, or failed to download.

use super::*;

/// Where a certificate's message goes once acknowledged.
pub fn ack_target(state: CertState) -> AckTarget {
    if state.is_quarantine() {
        AckTarget::Quarantine
    } else {
        AckTarget::Processed
    }
}

/// Records what the source did with acknowledged messages (and where a copy stayed).
pub fn record_acks(
    ledger: &mut Ledger,
    mailbox: &MailboxKey,
    done: &[(Ack, Option<ServerCopy>)],
) -> Result<(), LedgerError> {
    if done.is_empty() {
        return Ok(());
    }
    let tx = ledger.tx()?;
    write_acks(&tx, mailbox, done)?;
    tx.commit()
}

pub(super) fn write_acks(
    tx: &LedgerTx,
    mailbox: &MailboxKey,
    done: &[(Ack, Option<ServerCopy>)],
) -> Result<(), LedgerError> {
    for (ack, copy) in done {
        tx.mark_acked(mailbox, &ack.item, ack.target)?;
        if let Some(copy) = copy {
            tx.insert_server_copy(ack.certificate, copy)?;
        }
    }
    Ok(())
}

/// Records a failed download; returns how many times this message has failed.
pub fn record_fetch_failure(
    ledger: &mut Ledger,
    mailbox: &MailboxKey,
    item: &str,
    now: Timestamp,
) -> Result<i64, LedgerError> {
    let tx = ledger.tx()?;
    let n = tx.bump_attempts(mailbox, item, now.as_second())?;
    tx.commit()?;
    Ok(n)
}
