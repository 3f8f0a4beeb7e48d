use super::*;
use crate::source::AckTarget;

fn key() -> MailboxKey {
    MailboxKey {
        mailbox: "imaps://lbm@localhost/INBOX".into(),
        validity: "42".into(),
    }
}

/// A certificate with nothing but its rule.
fn a_negative(tx: &LedgerTx) -> i64 {
    tx.insert_certificate(&NewCertificate {
        rule: "negative".into(),
        ..NewCertificate::default()
    })
    .unwrap()
}

#[test]
fn certificate_copies_and_messages_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let sha = [7u8; 32];
    let tx = ledger.tx().unwrap();
    let id = tx
        .insert_certificate(&NewCertificate {
            site: Some("690000880".into()),
            personal: Personal {
                dossier: Some("D1".into()),
                ..Personal::default()
            },
            dossier_hmac: Some("h1".into()),
            rule: "negative".into(),
            received_at: 1,
            purge_at: 2,
            content_sha256: sha,
            pdf_sha256: Some([9u8; 32]),
            ..NewCertificate::default()
        })
        .unwrap();
    let copy = NewCopy {
        kind: CopyKind::Spool,
        path: "/spool/a.pdf".into(),
        temp: "/spool/.a.part".into(),
        sha256: [1u8; 32],
    };
    let copy_id = tx.insert_copy(id, &copy).unwrap();
    tx.set_message(&key(), "17", Disposition::Pending, None, Some(id), 5)
        .unwrap();
    tx.commit().unwrap();

    assert_eq!(ledger.by_content(&sha).unwrap().map(|c| c.id), Some(id));
    assert_eq!(
        ledger.by_pdf("h1", &[9u8; 32]).unwrap().map(|c| c.id),
        Some(id)
    );
    assert!(
        ledger
            .tx()
            .unwrap()
            .path_taken(Path::new("/spool/a.pdf"))
            .unwrap()
    );
    assert_eq!(ledger.unfinished_copies().unwrap().len(), 1);

    let tx = ledger.tx().unwrap();
    tx.set_copy_state(copy_id, CopyState::Published).unwrap();
    tx.set_certificate_state(id, CertState::Delivered).unwrap();
    tx.set_message(&key(), "17", Disposition::Delivered, None, Some(id), 6)
        .unwrap();
    tx.mark_acked(&key(), "17", AckTarget::Processed).unwrap();
    tx.commit().unwrap();

    let msgs = ledger.messages(&key(), &["17".into()]).unwrap();
    assert_eq!(msgs["17"].disposition, Disposition::Delivered);
    assert!(msgs["17"].acked);
    assert!(ledger.unfinished_copies().unwrap().is_empty());
    assert_eq!(ledger.copies(id).unwrap()[0].state, CopyState::Published);
}

#[test]
fn a_released_message_counts_as_delivered_once_its_move_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let tx = ledger.tx().unwrap();
    let id = a_negative(&tx);
    tx.set_certificate_state(id, CertState::Delivered).unwrap();
    // "1" was moved to the quarantine folder, "2" not yet (its move failed); then released.
    for item in ["1", "2"] {
        tx.set_message(&key(), item, Disposition::Quarantined, None, Some(id), 1)
            .unwrap();
    }
    tx.mark_acked(&key(), "1", AckTarget::Quarantine).unwrap();
    tx.messages_released(id).unwrap();
    tx.commit().unwrap();
    let msgs = ledger.messages(&key(), &["1".into(), "2".into()]).unwrap();
    assert_eq!(msgs["1"].disposition, Disposition::Delivered);
    assert_eq!(
        msgs["2"].disposition,
        Disposition::Quarantined,
        "a move not recorded yet: where it went is still to be told"
    );

    let tx = ledger.tx().unwrap();
    tx.mark_acked(&key(), "2", AckTarget::Processed).unwrap();
    tx.commit().unwrap();
    let msgs = ledger.messages(&key(), &["2".into()]).unwrap();
    assert_eq!(msgs["2"].disposition, Disposition::Delivered);
    assert!(msgs["2"].acked);
}

#[test]
fn a_path_cannot_be_claimed_twice() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let tx = ledger.tx().unwrap();
    let id = a_negative(&tx);
    let copy = NewCopy {
        kind: CopyKind::Spool,
        path: "/spool/a.pdf".into(),
        temp: "/spool/.t".into(),
        sha256: [0; 32],
    };
    tx.insert_copy(id, &copy).unwrap();
    assert!(tx.insert_copy(id, &copy).is_err());
}

#[test]
fn attempts_count_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let tx = ledger.tx().unwrap();
    assert_eq!(tx.bump_attempts(&key(), "9", 1).unwrap(), 1);
    assert_eq!(tx.bump_attempts(&key(), "9", 1).unwrap(), 2);
    tx.commit().unwrap();
    assert_eq!(
        ledger.messages(&key(), &["9".into()]).unwrap()["9"].attempts,
        2
    );
}

/// A pass reads the messages listed in the folder and those not acknowledged yet, never every
/// message the ledger ever saw: one look-up per listed message, and a partial index.
#[test]
fn a_pass_reads_what_is_listed_and_what_is_unacknowledged_not_everything_held() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let tx = ledger.tx().unwrap();
    for (item, disposition, acked) in [
        ("1", Disposition::Delivered, true),
        ("2", Disposition::Delivered, false),
        ("3", Disposition::Ignored, false),
        ("4", Disposition::Pending, false),
    ] {
        tx.set_message(&key(), item, disposition, None, None, 1)
            .unwrap();
        if acked {
            tx.mark_acked(&key(), item, AckTarget::Processed).unwrap();
        }
    }
    tx.commit().unwrap();

    let listed = ledger
        .messages(&key(), &["1".into(), "3".into(), "9".into()])
        .unwrap();
    let mut items: Vec<&String> = listed.keys().collect();
    items.sort();
    assert_eq!(items, ["1", "3"]);
    let unacked = ledger.unacknowledged(&key()).unwrap();
    let mut items: Vec<&String> = unacked.keys().collect();
    items.sort();
    assert_eq!(items, ["2", "4"]);
    let other = MailboxKey {
        validity: "43".into(),
        ..key()
    };
    assert!(ledger.unacknowledged(&other).unwrap().is_empty());

    let plan: String = ledger
        .conn()
        .query_row(
            "EXPLAIN QUERY PLAN SELECT m.item FROM message m
             WHERE m.mailbox = 'm' AND m.validity = 'v' AND m.acked = 0
                 AND m.disposition <> 'ignored'",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("USING INDEX message_unacked"), "{plan}");
}

#[test]
fn reopening_keeps_the_data_and_the_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    {
        let mut ledger = Ledger::open(dir.path()).unwrap();
        let tx = ledger.tx().unwrap();
        tx.bump_attempts(&key(), "1", 1).unwrap();
        tx.commit().unwrap();
    }
    let ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.messages(&key(), &["1".into()]).unwrap().len(), 1);
    let mode = std::fs::metadata(dir.path().join("ledger.sqlite"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// A version-1 ledger (personal fields and paths in clear) is upgraded: sealed, readable as
/// before through the ledger, and no longer in clear anywhere in its file.
#[test]
fn a_version_1_ledger_is_sealed_by_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(dir.path().join("ledger.sqlite")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch(include_str!("schema_v1.sql")).unwrap();
        conn.execute(
            "INSERT INTO certificate (id, state, rule, received_at, purge_at, content_sha256,
                 dossier, nom, prenom, ins, dossier_hmac)
             VALUES (1, 'delivered', 'negative', 1, 2, X'00', 'D77', 'ZZOLDNAME', 'Lea',
                 '295109912611193', 'h')",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO copy (certificate, kind, path, temp, sha256, state)
             VALUES (1, 'spool', '/spool/2021-10-29/ZZOLDNAME_Lea_D77.pdf', '/spool/.t', X'00',
                 'published')",
            [],
        )
        .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }
    let ledger = Ledger::open(dir.path()).unwrap();
    let copies = ledger.copies(1).unwrap();
    assert_eq!(
        copies[0].path,
        Path::new("/spool/2021-10-29/ZZOLDNAME_Lea_D77.pdf")
    );
    let rec = ledger.recorded(1).unwrap().unwrap();
    assert_eq!(rec.personal.nom.as_deref(), Some("ZZOLDNAME"));
    assert_eq!(rec.personal.ins.as_deref(), Some("295109912611193"));
    assert!(
        ledger
            .published_at(Path::new("/spool/2021-10-29/ZZOLDNAME_Lea_D77.pdf"))
            .unwrap()
            .is_some()
    );
    drop(ledger);
    for name in ["ledger.sqlite", "ledger.sqlite-wal"] {
        let bytes = std::fs::read(dir.path().join(name)).unwrap_or_default();
        assert!(
            !bytes.windows(9).any(|w| w == b"ZZOLDNAME"),
            "in clear in {name}"
        );
    }
}

/// A version-2 ledger (before printing) gains the print jobs and keeps what it held.
#[test]
fn a_version_2_ledger_gains_the_print_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let mut ledger = Ledger::open(dir.path()).unwrap();
        let tx = ledger.tx().unwrap();
        let id = tx
            .insert_certificate(&NewCertificate {
                site: Some("690000880".into()),
                rule: "negative".into(),
                received_at: 1,
                purge_at: 2,
                content_sha256: [1u8; 32],
                ..NewCertificate::default()
            })
            .unwrap();
        tx.commit().unwrap();
        id
    };
    {
        // Back to version 2, as the previous release left it.
        let conn = Connection::open(dir.path().join("ledger.sqlite")).unwrap();
        conn.execute_batch("DROP TABLE print_job; DROP INDEX message_unacked")
            .unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
    }
    let mut ledger = Ledger::open(dir.path()).unwrap();
    assert!(ledger.certificate(id).unwrap().is_some());
    assert!(ledger.prints(None, 10).unwrap().is_empty());
    let tx = ledger.tx().unwrap();
    tx.insert_print(
        &NewPrintJob {
            certificate: id,
            site: "690000880",
            printer: "ipp://printer/ipp/print",
            copies: 1,
            job_name: "mssd-1-00000000",
            by_user: None,
        },
        3,
    )
    .unwrap();
    tx.commit().unwrap();
    assert_eq!(ledger.prints(None, 10).unwrap().len(), 1);
    let version: i64 = ledger
        .conn()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

#[test]
fn an_unsynced_transaction_commits_and_leaves_commits_synced_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let synchronous = |l: &Ledger| -> i64 {
        l.conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap()
    };
    assert_eq!(synchronous(&ledger), 2, "FULL");
    let tx = ledger.tx_unsynced().unwrap();
    tx.set_meta("probe", "committed").unwrap();
    tx.commit().unwrap();
    assert_eq!(synchronous(&ledger), 2);
    assert_eq!(ledger.meta("probe").unwrap().as_deref(), Some("committed"));
    // Dropped without a commit: rolled back, and the setting restored all the same.
    let tx = ledger.tx_unsynced().unwrap();
    tx.set_meta("probe", "rolled back").unwrap();
    drop(tx);
    assert_eq!(synchronous(&ledger), 2);
    assert_eq!(ledger.meta("probe").unwrap().as_deref(), Some("committed"));
    // And the connection still takes ordinary transactions.
    let tx = ledger.tx().unwrap();
    tx.set_meta("probe", "again").unwrap();
    tx.commit().unwrap();
    drop(ledger);
    let ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.meta("probe").unwrap().as_deref(), Some("again"));
}

#[test]
fn keys_are_made_ahead_so_most_plans_write_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let certificate = |n: &str| NewCertificate {
        personal: Personal {
            nom: Some(n.into()),
            ..Personal::default()
        },
        rule: "negative".into(),
        content_sha256: [n.len() as u8; 32],
        ..NewCertificate::default()
    };
    let tx = ledger.tx().unwrap();
    let first = tx.insert_certificate(&certificate("MARTIN")).unwrap();
    assert_eq!(tx.pending.borrow().len(), 1 + keys::RESERVE);
    tx.commit().unwrap();
    let reserved: Vec<_> = (first + 1..=first + keys::RESERVE as i64)
        .map(|id| ledger.keys.get(id).unwrap())
        .collect();
    assert!(reserved.iter().all(Option::is_some));
    assert_eq!(
        ledger.keys.get(first + 1 + keys::RESERVE as i64).unwrap(),
        None
    );

    // The next certificate takes the key made for it: nothing to write before its commit.
    let tx = ledger.tx().unwrap();
    let second = tx.insert_certificate(&certificate("DURAND")).unwrap();
    assert_eq!(second, first + 1);
    assert!(tx.pending.borrow().is_empty());
    tx.commit().unwrap();
    assert_eq!(ledger.keys.get(second).unwrap(), reserved[0]);
    let sealed: Vec<u8> = ledger
        .conn
        .query_row("SELECT nom FROM certificate WHERE id = ?1", [second], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        ledger.open_field(second, Some(sealed)).unwrap().as_deref(),
        Some("DURAND")
    );

    // A scrubbed certificate's key is destroyed, and stays so: no later reserve refills it.
    let tx = ledger.tx().unwrap();
    tx.scrub(second, 10).unwrap();
    tx.commit().unwrap();
    assert_eq!(ledger.keys.get(second).unwrap(), None);
    let tx = ledger.tx().unwrap();
    for n in 0..keys::RESERVE {
        tx.insert_certificate(&certificate(&"X".repeat(n + 7)))
            .unwrap();
    }
    tx.commit().unwrap();
    assert_eq!(ledger.keys.get(second).unwrap(), None);
    assert!(
        ledger
            .keys
            .get(second + 1 + keys::RESERVE as i64)
            .unwrap()
            .is_some()
    );
}
