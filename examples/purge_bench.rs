//! The purge benchmark (`scripts/bench`): one purge pass (the local purge and a reconcile
//! slice, as the daemon runs them) over a ledger holding HELD certificates of which DUE are
//! due, with a real spool file per due certificate. Run for two sizes, the ratio of the pass
//! times shows whether a pass costs what is due or what is held. Each certificate came from
//! a message the ledger remembers: the ledger reads of a drain pass finding DUE messages in
//! the folder are timed the same way.
//!
//!     cargo run --release --example purge_bench -- [DUE] [SMALL] [LARGE] [ROUNDS]

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use jiff::Timestamp;
use mss_dispatch::core::layout::{CopyKind, FileId};
use mss_dispatch::ledger::{
    CertState, CopyState, Disposition, Ledger, LedgerRead, LedgerTx, MailboxKey, NewCertificate,
    NewCopy, Personal,
};
use mss_dispatch::retention::handover;
use mss_dispatch::retention::purge;
use mss_dispatch::source::AckTarget;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let due = args.next().transpose()?.unwrap_or(1_000);
    let small = args.next().transpose()?.unwrap_or(10_000);
    let large = args.next().transpose()?.unwrap_or(1_000_000);
    let rounds = args.next().transpose()?.unwrap_or(3);
    let tz = mss_dispatch::system::tz::paris();
    let mut medians = Vec::new();
    let mut read_medians = Vec::new();
    for held in [small, large] {
        let dir = tempfile::tempdir()?;
        let started = Instant::now();
        let mut ledger = Ledger::open(dir.path())?;
        fill(dir.path(), held)?;
        eprintln!(
            "{held} certificates loaded in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        let mut times = Vec::new();
        let mut reads = Vec::new();
        for round in 0..rounds {
            let listed = add_due(dir.path(), due, round)?;
            let t = Instant::now();
            let known = ledger.messages(&key(), &listed)?;
            let unacked = ledger.unacknowledged(&key())?;
            reads.push(t.elapsed().as_secs_f64());
            assert_eq!((known.len(), unacked.len()), (due, 0));
            let now = Timestamp::now();
            let t = Instant::now();
            let pass = purge::local_pass(&mut ledger, &tz, now, purge::PASS_LIMIT)?;
            handover::reconcile(&mut ledger, now, &tz, handover::RECONCILE_SLICE)?;
            times.push(t.elapsed().as_secs_f64());
            assert_eq!(pass.purged.len(), due, "every due certificate purged");
        }
        medians.push(report(&format!("held {held:>9}, due {due}: pass"), times));
        read_medians.push(report(
            &format!("  a drain pass's ledger reads, {due} listed"),
            reads,
        ));
    }
    println!(
        "ratio large/small  {:.2}   (target <= 1.5); drain reads {:.2}",
        medians[1] / medians[0],
        read_medians[1] / read_medians[0]
    );
    Ok(())
}

/// Prints the median and the samples; returns the median.
fn report(what: &str, mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{what} {median:.3}s (median of {}: {})",
        times.len(),
        times
            .iter()
            .map(|t| format!("{t:.3}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    median
}

/// The mailbox every certificate came from.
fn key() -> MailboxKey {
    MailboxKey {
        mailbox: "imap://bench/INBOX".into(),
        validity: "1".into(),
    }
}

/// One certificate to insert: its rule, times, content hash, pseudonym and dossier.
struct Row<'a> {
    rule: &'a str,
    sampled_at: i64,
    purge_at: i64,
    sha: [u8; 32],
    hmac: String,
    dossier: String,
}

/// Inserts a delivered certificate with one published spool copy, and the acknowledged message
/// it came from (its UID: `item`), through the ledger's own writes (personal fields and paths
/// sealed, as the service stores them).
fn add(
    tx: &LedgerTx,
    row: &Row,
    path: &Path,
    item: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let id = tx.insert_certificate(&NewCertificate {
        state: CertState::Delivered,
        site: Some("690000880".into()),
        result: Some(row.rule.into()),
        rule: row.rule.into(),
        received_at: row.sampled_at,
        sampled_at: Some(row.sampled_at),
        purge_at: row.purge_at,
        content_sha256: row.sha,
        dossier_hmac: Some(row.hmac.clone()),
        personal: Personal {
            dossier: Some(row.dossier.clone()),
            nom: Some("NOM".into()),
            prenom: Some("Prenom".into()),
            ..Personal::default()
        },
        ..NewCertificate::default()
    })?;
    let copy = tx.insert_copy(
        id,
        &NewCopy {
            kind: CopyKind::Spool,
            path: path.to_path_buf(),
            temp: path.with_extension("part"),
            sha256: row.sha,
        },
    )?;
    let st = std::fs::metadata(path)?;
    tx.set_copy_staged(
        copy,
        FileId {
            dev: st.dev(),
            ino: st.ino(),
        },
    )?;
    tx.set_copy_state(copy, CopyState::Published)?;
    let at = row.sampled_at;
    tx.set_message(&key(), item, Disposition::Delivered, None, Some(id), at)?;
    tx.mark_acked(&key(), item, AckTarget::Processed)?;
    Ok(())
}

/// `held` certificates not due for a long time, each with one published spool copy whose file
/// exists (hard links to one file per folder: the reconcile slice finds them, as it would in
/// a spool).
fn fill(dir: &Path, held: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut ledger = Ledger::open(dir)?;
    let future = Timestamp::now().as_second() + 180 * 86_400;
    // Committed 10,000 at a time: a transaction keeps its new keys in memory until it commits.
    for start in (0..held).step_by(10_000) {
        let tx = ledger.tx()?;
        for i in start..held.min(start + 10_000) {
            let mut sha = [0u8; 32];
            sha[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let day = dir.join(format!("spool/held/{:04}", i / 10_000));
            let original = day.join("held.pdf");
            if i % 10_000 == 0 {
                std::fs::create_dir_all(&day)?;
                std::fs::write(&original, b"%PDF-1.4 held")?;
            }
            let path = day.join(format!("NOM_Prenom_D{i}.pdf"));
            std::fs::hard_link(&original, &path)?;
            let row = Row {
                rule: "positive",
                sampled_at: future - 86_400,
                purge_at: future + (i % 1000) as i64,
                sha,
                hmac: format!("h{i}"),
                dossier: format!("D{i}"),
            };
            add(&tx, &row, &path, &i.to_string())?;
        }
        tx.commit()?;
    }
    // The load itself is not part of the pass.
    let db = rusqlite::Connection::open(dir.join("ledger.sqlite"))?;
    db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// `due` more certificates, due a minute ago, with their spool files; returns their
/// messages' UIDs.
fn add_due(
    dir: &Path,
    due: usize,
    round: usize,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let spool = dir.join(format!("spool/2021-10-{:02}", 1 + round));
    std::fs::create_dir_all(&spool)?;
    let mut ledger = Ledger::open(dir)?;
    let tx = ledger.tx()?;
    let mut items = Vec::with_capacity(due);
    {
        let past = Timestamp::now().as_second() - 60;
        for i in 0..due {
            let n = round * due + i;
            let path = spool.join(format!("NOM_Prenom_X{n}.pdf"));
            std::fs::write(&path, b"%PDF-1.4 due")?;
            let row = Row {
                rule: "negative",
                sampled_at: past - 3 * 86_400,
                purge_at: past,
                sha: [0xEE; 32],
                hmac: format!("due{n}"),
                dossier: format!("X{n}"),
            };
            let item = format!("due{n}");
            add(&tx, &row, &path, &item)?;
            items.push(item);
        }
    }
    tx.commit()?;
    Ok(items)
}
