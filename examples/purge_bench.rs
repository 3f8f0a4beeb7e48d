//! The purge benchmark (`scripts/bench`): one purge pass (the local purge and a reconcile
//! slice, as the daemon runs them) over a ledger holding HELD certificates of which DUE are
//! due, with a real spool file per due certificate. Run for two sizes, the ratio of the pass
//! times shows whether a pass costs what is due or what is held.
//!
//!     cargo run --release --example purge_bench -- [DUE] [SMALL] [LARGE] [ROUNDS]

use std::path::Path;
use std::time::Instant;

use jiff::Timestamp;
use mss_dispatch::handover;
use mss_dispatch::ledger::Ledger;
use mss_dispatch::purge;
use rusqlite::params;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let due = args.next().transpose()?.unwrap_or(1_000);
    let small = args.next().transpose()?.unwrap_or(10_000);
    let large = args.next().transpose()?.unwrap_or(1_000_000);
    let rounds = args.next().transpose()?.unwrap_or(3);
    let tz = mss_dispatch::tz::paris();
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

/// `held` certificates not due for a long time, each with one published spool copy whose file
/// exists (hard links to one file per folder: the reconcile slice finds them, as it would in
/// a spool).
fn fill(dir: &Path, held: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut db = rusqlite::Connection::open(dir.join("ledger.sqlite"))?;
    db.pragma_update(None, "synchronous", "OFF")?;
    let tx = db.transaction()?;
    {
        let mut cert = tx.prepare(
            "INSERT INTO certificate (state, site, result, rule, received_at, sampled_at,
                 purge_at, content_sha256, dossier_hmac, dossier, nom, prenom)
             VALUES ('delivered', '690000880', 'positive', 'positive', ?1, ?1, ?2, ?3, ?4, ?5,
                 'NOM', 'Prenom')",
        )?;
        let mut copy = tx.prepare(
            "INSERT INTO copy (certificate, kind, path, temp, sha256, state)
             VALUES (?1, 'spool', ?2, ?3, ?4, 'published')",
        )?;
        let future = Timestamp::now().as_second() + 180 * 86_400;
        for i in 0..held {
            let mut sha = [0u8; 32];
            sha[..8].copy_from_slice(&(i as u64).to_le_bytes());
            cert.execute(params![
                future - 86_400,
                future + (i % 1000) as i64,
                &sha[..],
                format!("h{i}"),
                format!("D{i}")
            ])?;
            let id = tx.last_insert_rowid();
            let day = dir.join(format!("spool/held/{:04}", i / 10_000));
            let original = day.join("held.pdf");
            if i % 10_000 == 0 {
                std::fs::create_dir_all(&day)?;
                std::fs::write(&original, b"%PDF-1.4 held")?;
            }
            let path = day.join(format!("NOM_Prenom_D{i}.pdf"));
            std::fs::hard_link(&original, &path)?;
            copy.execute(params![
                id,
                path.to_string_lossy(),
                format!("{}.part", path.display()),
                &sha[..]
            ])?;
        }
    }
    tx.commit()?;
    // The load itself is not part of the pass.
    db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// `due` more certificates, due a minute ago, with their spool files.
fn add_due(dir: &Path, due: usize, round: usize) -> Result<(), Box<dyn std::error::Error>> {
    let spool = dir.join(format!("spool/2021-10-{:02}", 1 + round));
    std::fs::create_dir_all(&spool)?;
    let mut db = rusqlite::Connection::open(dir.join("ledger.sqlite"))?;
    let tx = db.transaction()?;
    {
        let mut cert = tx.prepare(
            "INSERT INTO certificate (state, site, result, rule, received_at, sampled_at,
                 purge_at, content_sha256, dossier_hmac, dossier, nom, prenom)
             VALUES ('delivered', '690000880', 'negative', 'negative', ?1, ?1, ?2, ?3, ?4, ?5,
                 'NOM', 'Prenom')",
        )?;
        let mut copy = tx.prepare(
            "INSERT INTO copy (certificate, kind, path, temp, sha256, state)
             VALUES (?1, 'spool', ?2, ?3, ?4, 'published')",
        )?;
        let past = Timestamp::now().as_second() - 60;
        for i in 0..due {
            let n = round * due + i;
            let sha = [0xEEu8; 32];
            cert.execute(params![
                past - 3 * 86_400,
                past,
                &sha[..],
                format!("due{n}"),
                format!("X{n}")
            ])?;
            let id = tx.last_insert_rowid();
            let path = spool.join(format!("NOM_Prenom_X{n}.pdf"));
            std::fs::write(&path, b"%PDF-1.4 due")?;
            copy.execute(params![
                id,
                path.to_string_lossy(),
                format!("{}.part", path.display()),
                &sha[..]
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}
