//! Exactly once, against a real Dovecot: a server restart mid-drain, the daemon killed with
//! SIGKILL at random points and restarted many times, a folder recreated with a new
//! UIDVALIDITY, identical re-sent messages, SIGTERM mid-drain. Every certificate ends up
//! delivered once, with no temporary file left in sight.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::*;

const PROCESSED: &str = "SI-DEP.Traites";

fn world(mailbox_extra: &str) -> World {
    World::new(mailbox_extra, "")
}

/// Loads `n` certificates: every fifth for the SIL site, every tenth unknown (quarantine).
fn load(w: &World, folder: &str, n: u32, pdf_bytes: usize) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    for i in 1..=n {
        let finess = match i {
            i if i % 10 == 0 => "010780054",
            i if i % 5 == 0 => "750712184",
            _ => "690000880",
        };
        let msg = certificate(i, finess, "Négatif", pdf_bytes);
        w.dovecot.deliver(USER, folder, &msg);
        all.push(msg);
    }
    all
}

/// Every certificate delivered exactly once, nothing half-written anywhere.
fn assert_exactly_once(w: &World, n: u32) {
    let files = w.install.files();
    let temps: Vec<&String> = files.iter().filter(|f| f.contains(".part")).collect();
    assert!(temps.is_empty(), "temporary files left: {temps:?}");
    let mut delivered = BTreeSet::new();
    for f in &files {
        if f.starts_with("sites/") {
            let name = f.rsplit('/').next().unwrap().to_string();
            assert!(!name.contains(" ("), "a second copy: {f}");
            assert!(delivered.insert(name.clone()), "delivered twice: {name}");
        }
    }
    let expected: BTreeSet<String> = (1..=n)
        .filter(|i| i % 10 != 0)
        .map(delivered_name)
        .collect();
    assert_eq!(delivered, expected);
    // The SIL folder holds each PDF with its sidecar, once.
    let sil: Vec<&String> = files.iter().filter(|f| f.starts_with("sil/")).collect();
    let sil_expected = (1..=n).filter(|i| i % 5 == 0 && i % 10 != 0).count();
    assert_eq!(sil.len(), 2 * sil_expected, "{sil:?}");
    for f in &sil {
        if let Some(stem) = f.strip_suffix(".pdf") {
            assert!(
                sil.contains(&&format!("{stem}.json")),
                "PDF without sidecar: {f}"
            );
        }
    }
    let quarantined = files
        .iter()
        .filter(|f| f.starts_with("quarantine/") && f.ends_with(".eml"))
        .count();
    assert_eq!(quarantined, (n / 10) as usize);
}

#[test]
fn dovecot_restarted_mid_drain_loses_and_duplicates_nothing() {
    let mut w = world("");
    let n = 150;
    load(&w, "INBOX", n, 30_000);
    let mut daemon = w.install.spawn();
    assert!(
        eventually(60, || w.install.spool_files("690000880").len() >= 10),
        "nothing delivered"
    );
    w.dovecot.restart();
    let expected_spool = (1..=n).filter(|i| i % 10 != 0).count();
    let done = eventually(120, || {
        w.install
            .files()
            .iter()
            .filter(|f| f.starts_with("sites/"))
            .count()
            == expected_spool
            && w.dovecot.count(USER, "INBOX") == 0
    });
    sigterm(&daemon);
    let status = daemon.wait().unwrap();
    assert!(
        done,
        "drain did not finish after the restart:\n{}",
        w.dovecot.log()
    );
    assert!(status.success());
    assert_exactly_once(&w, n);
    assert_eq!(
        w.dovecot.count(USER, PROCESSED) + w.dovecot.count(USER, "SI-DEP.Quarantaine"),
        n as usize
    );
}

/// A small deterministic generator, seeded from the clock and printed for replay.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn killed_at_random_points_and_restarted_delivers_everything_once() {
    let w = world("");
    // Enough mail that a drain outlasts several kills even in small batches.
    let n = 200;
    load(&w, "INBOX", n, 20_000);
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("CHAOS_SEED={seed}");
    let mut rng = Lcg(seed);
    let mut kills = 0;
    for _ in 0..25 {
        if w.dovecot.count(USER, "INBOX") == 0 {
            break;
        }
        let mut child = w.install.spawn_once();
        std::thread::sleep(Duration::from_millis(30 + rng.next(300)));
        sigkill(&mut child);
        kills += 1;
    }
    assert!(kills >= 3, "the drain finished too fast to be interrupted");
    let mut last = None;
    for _ in 0..3 {
        let out = w.install.run_once();
        if out.status.success() && w.dovecot.count(USER, "INBOX") == 0 {
            last = Some(out);
            break;
        }
    }
    assert!(last.is_some(), "the final run did not finish (seed {seed})");
    assert_eq!(w.dovecot.count(USER, "INBOX"), 0);
    assert_exactly_once(&w, n);
    assert_eq!(
        w.dovecot.count(USER, PROCESSED) + w.dovecot.count(USER, "SI-DEP.Quarantaine"),
        n as usize,
        "a message acknowledged twice or not at all (seed {seed})"
    );
    // Every copy left on the server is known to the ledger, to be deleted when due, even
    // those whose move a kill cut off from its record.
    let db = rusqlite::Connection::open(w.install.root.join("state/ledger.sqlite")).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT count(*) FROM server_copy WHERE state = 'present'"),
        i64::from(n),
        "a copy on the server the ledger does not know (seed {seed})"
    );
    assert_eq!(count("SELECT count(*) FROM message WHERE acked = 0"), 0);
}

#[test]
fn a_folder_recreated_with_a_new_uidvalidity_yields_no_duplicate() {
    let w = world("folder = \"Incoming\"\n");
    let n = 20;
    let messages = load(&w, "Incoming", n, 4_000);
    let out = w.install.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_exactly_once(&w, n);
    let before = w.install.files();

    w.dovecot.delete_folder(USER, "Incoming");
    for m in &messages {
        w.dovecot.deliver(USER, "Incoming", m);
    }
    let out = w.install.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.install.files(), before, "nothing new was written");
    assert_eq!(
        w.dovecot.count(USER, "Incoming"),
        0,
        "the copies were acknowledged"
    );
    let ledger = rusqlite::Connection::open(w.install.root.join("state/ledger.sqlite")).unwrap();
    let validities: i64 = ledger
        .query_row("SELECT count(DISTINCT validity) FROM message", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(validities, 2);
}

#[test]
fn an_identical_resent_message_is_delivered_once() {
    let w = world("");
    let msg = certificate(3, "690000880", "Négatif", 4_000);
    w.dovecot.deliver(USER, "INBOX", &msg);
    w.dovecot.deliver(USER, "INBOX", &msg);
    let out = w.install.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    w.dovecot.deliver(USER, "INBOX", &msg);
    let out = w.install.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.install.spool_files("690000880").len(), 1);
    assert_eq!(w.dovecot.count(USER, PROCESSED), 3);
    assert_eq!(w.dovecot.count(USER, "INBOX"), 0);
}

#[test]
fn sigterm_mid_drain_exits_cleanly_and_the_rest_follows_once() {
    let w = world("");
    let n = 200;
    load(&w, "INBOX", n, 60_000);
    let mut daemon = w.install.spawn();
    assert!(eventually(60, || !w
        .install
        .spool_files("690000880")
        .is_empty()));
    sigterm(&daemon);
    let stopped = Instant::now();
    let status = daemon.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "took {:?}",
        stopped.elapsed()
    );
    let left = w.dovecot.count(USER, "INBOX");
    assert!(
        left > 0,
        "the drain finished before SIGTERM; nothing was tested"
    );
    let out = w.install.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_exactly_once(&w, n);
}
