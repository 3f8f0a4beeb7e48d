use super::*;

fn key() -> MailboxKey {
    MailboxKey {
        mailbox: "imaps://lbm@localhost/INBOX".into(),
        validity: "42".into(),
    }
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
            dossier: Some("D1".into()),
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
    tx.mark_acked(&key(), "17").unwrap();
    tx.commit().unwrap();

    let msgs = ledger.messages(&key()).unwrap();
    assert_eq!(msgs["17"].disposition, Disposition::Delivered);
    assert!(msgs["17"].acked);
    assert!(ledger.unfinished_copies().unwrap().is_empty());
    assert_eq!(ledger.copies(id).unwrap()[0].state, CopyState::Published);
}

#[test]
fn a_path_cannot_be_claimed_twice() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let tx = ledger.tx().unwrap();
    let id = tx
        .insert_certificate(&NewCertificate {
            rule: "negative".into(),
            ..NewCertificate::default()
        })
        .unwrap();
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
    assert_eq!(ledger.messages(&key()).unwrap()["9"].attempts, 2);
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
    assert_eq!(ledger.messages(&key()).unwrap().len(), 1);
    let mode = std::fs::metadata(dir.path().join("ledger.sqlite"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
