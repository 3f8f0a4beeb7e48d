//! The purge benchmark (`scripts/bench`): one purge pass (the local purge and a reconcile
//! slice, as the daemon runs them) over a ledger holding HELD certificates of which DUE are
//! due, with a real spool file per due certificate. Run for two sizes, the ratio of the pass
//! times shows whether a pass costs what is due or what is held.
//!
//!     cargo run --release --example purge_bench -- [DUE] [SMALL] [LARGE] [ROUNDS]

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use jiff::Timestamp;
use mss_dispatch::core::layout::{CopyKind, FileId};
use mss_dispatch::ledger::{
    CertState, CopyState, Ledger, LedgerTx, NewCertificate, NewCopy, Personal,
};
use mss_dispatch::retention::handover;
use mss_dispatch::retention::purge;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let due = args.next().transpose()?.unwrap_or(1_000);
    let small = args.next().transpose()?.unwrap_or(10_000);
    let large = args.next().transpose()?.unwrap_or(1_000_000);
    let rounds = args.next().transpose()?.unwrap_or(3);
    let tz = mss_dispatch::system::tz::paris();
    let mut medians = Vec::new();
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
        for round in 0..rounds {
            add_due(dir.path(), due, round)?;
            let now = Timestamp::now();
            let t = Instant::now();
            let pass = purge::local_pass(&mut ledger, &tz, now, purge::PASS_LIMIT)?;
            handover::reconcile(&mut ledger, now, &tz, handover::RECONCILE_SLICE)?;
            times.push(t.elapsed().as_secs_f64());
            assert_eq!(pass.purged.len(), due, "every due certificate purged");
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!(
            "held {held:>9}, due {due}: pass {:.3}s (median of {rounds}: {})",
            median,
            times
                .iter()
                .map(|t| format!("{t:.3}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        medians.push(median);
    }
    println!(
        "ratio large/small  {:.2}   (target <= 1.5)",
        medians[1] / medians[0]
    );
    Ok(())
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

/// Inserts a delivered certificate with one published spool copy, through the ledger's own
/// writes (personal fields and paths sealed, as the service stores them).
fn add(tx: &LedgerTx, row: &Row, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
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
            add(&tx, &row, &path)?;
        }
        tx.commit()?;
    }
    // The load itself is not part of the pass.
    let db = rusqlite::Connection::open(dir.join("ledger.sqlite"))?;
    db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// `due` more certificates, due a minute ago, with their spool files.
fn add_due(dir: &Path, due: usize, round: usize) -> Result<(), Box<dyn std::error::Error>> {
    let spool = dir.join(format!("spool/2021-10-{:02}", 1 + round));
    std::fs::create_dir_all(&spool)?;
    let mut ledger = Ledger::open(dir)?;
    let tx = ledger.tx()?;
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
            add(&tx, &row, &path)?;
        }
    }
    tx.commit()?;
    Ok(())
}
