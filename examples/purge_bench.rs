//! The purge benchmark (`scripts/bench`): one purge pass (the local purge and a reconcile
//! slice, as the daemon runs them) over a ledger holding HELD certificates of which DUE are
//! due, with a real spool file per due certificate. Run for two sizes, the ratio of the pass
//! times shows whether a pass costs what is due or what is held.
//!
//!     cargo run --release --example purge_bench -- [DUE] [SMALL] [LARGE] [ROUNDS]

use std::path::Path;
use std::time::Instant;

use jiff::Timestamp;
use mss_dispatch::ledger::Ledger;
use mss_dispatch::retention::handover;
use mss_dispatch::retention::purge;
use rusqlite::params;

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

/// Inserts delivered certificates, each with one published spool copy.
struct Loader<'t> {
    tx: &'t rusqlite::Transaction<'t>,
    cert: rusqlite::Statement<'t>,
    copy: rusqlite::Statement<'t>,
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

impl<'t> Loader<'t> {
    fn new(tx: &'t rusqlite::Transaction<'t>) -> rusqlite::Result<Loader<'t>> {
        Ok(Loader {
            cert: tx.prepare(
                "INSERT INTO certificate (state, site, result, rule, received_at, sampled_at,
                     purge_at, content_sha256, dossier_hmac, dossier, nom, prenom)
                 VALUES ('delivered', '690000880', ?1, ?1, ?2, ?2, ?3, ?4, ?5, ?6,
                     'NOM', 'Prenom')",
            )?,
            copy: tx.prepare(
                "INSERT INTO copy (certificate, kind, path, temp, sha256, state)
                 VALUES (?1, 'spool', ?2, ?3, ?4, 'published')",
            )?,
            tx,
        })
    }

    fn add(&mut self, row: &Row, path: &Path) -> rusqlite::Result<()> {
        self.cert.execute(params![
            row.rule,
            row.sampled_at,
            row.purge_at,
            &row.sha[..],
            row.hmac,
            row.dossier
        ])?;
        let id = self.tx.last_insert_rowid();
        self.copy.execute(params![
            id,
            path.to_string_lossy(),
            format!("{}.part", path.display()),
            &row.sha[..]
        ])?;
        Ok(())
    }
}

/// `held` certificates not due for a long time, each with one published spool copy whose file
/// exists (hard links to one file per folder: the reconcile slice finds them, as it would in
/// a spool).
fn fill(dir: &Path, held: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut db = rusqlite::Connection::open(dir.join("ledger.sqlite"))?;
    db.pragma_update(None, "synchronous", "OFF")?;
    let tx = db.transaction()?;
    {
        let mut loader = Loader::new(&tx)?;
        let future = Timestamp::now().as_second() + 180 * 86_400;
        for i in 0..held {
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
            loader.add(&row, &path)?;
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
        let mut loader = Loader::new(&tx)?;
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
            loader.add(&row, &path)?;
        }
    }
    tx.commit()?;
    Ok(())
}
