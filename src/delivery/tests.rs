//! Tests of the exactly-once protocol, crash point by crash point. Long on purpose: each scenario is spelled out
//! in full, so that a failing one reads on its own.

use std::os::unix::fs::MetadataExt;

use super::*;
use crate::ledger::LedgerRead;
use crate::test_support::{Fixture, corpus, now};

#[test]
fn a_batch_delivers_quarantines_and_ignores() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    let batch = vec![
        corpus("negative_plain"),
        corpus("result_snomed_detected"),
        corpus("dst_repeated_hour"),
        corpus("corsica_site"),
        corpus("unknown_site"),
        corpus("sender_not_allowed"),
    ];
    let report = deliver_batch(&mut ledger, &f.set(), batch, now()).unwrap();
    assert_eq!(report.delivered.len(), 4);
    assert_eq!(report.quarantined.len(), 1);
    assert_eq!(report.ignored, 1);
    assert!(report.failed.is_empty());
    assert_eq!(report.acks.len(), 5);
    assert_eq!(
        report
            .acks
            .iter()
            .filter(|a| a.target == AckTarget::Quarantine)
            .count(),
        1
    );

    let q = report.quarantined[0].0;
    assert_eq!(
        f.files(),
        vec![
            format!("quarantine/{q}.eml"),
            format!("quarantine/{q}.json"),
            "sil/GIRARD_Louis_2100031.json".to_string(),
            "sil/GIRARD_Louis_2100031.pdf".to_string(),
            "sil/MARTIN_Camille_2100032.json".to_string(),
            "sil/MARTIN_Camille_2100032.pdf".to_string(),
            "sites/690000880/2021-10-28/MOREAU_Nathan_2100029.pdf".to_string(),
            "sites/690000880/2021-10-29/MARTIN_Camille_2100000.pdf".to_string(),
            "sites/750712184/2021-10-31/MARTIN_Camille_2100032.pdf".to_string(),
        ]
    );
    let pdf = f
        .root
        .join("sites/690000880/2021-10-29/MARTIN_Camille_2100000.pdf");
    assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF-"));
    assert_eq!(std::fs::metadata(&pdf).unwrap().mode() & 0o777, 0o640);
    // Group-writable: the site's staff may delete or move what they were handed.
    let day = f.root.join("sites/690000880/2021-10-29");
    assert_eq!(std::fs::metadata(&day).unwrap().mode() & 0o777, 0o770);

    let sidecar: serde_json::Value = serde_json::from_slice(
        &std::fs::read(f.root.join("sil/GIRARD_Louis_2100031.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(sidecar["finess"], "2A0000154");
    assert_eq!(sidecar["pdf"], "GIRARD_Louis_2100031.pdf");
    assert_eq!(sidecar["result"], "negative");

    let reason: serde_json::Value = serde_json::from_slice(
        &std::fs::read(f.root.join(format!("quarantine/{q}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(reason["reason"], "unknown_site");
    let reason_text = std::fs::read_to_string(f.root.join(format!("quarantine/{q}.json"))).unwrap();
    assert!(
        !reason_text.contains("BERNARD"),
        "no patient name in a reason file"
    );

    let states = ledger.count_by_state().unwrap();
    assert_eq!(states.get("delivered"), Some(&4));
    assert_eq!(states.get("quarantined"), Some(&1));
}

#[test]
fn the_same_message_again_is_a_duplicate_and_writes_nothing() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    let first =
        deliver_batch(&mut ledger, &f.set(), vec![corpus("negative_plain")], now()).unwrap();
    let files = f.files();
    let mut again = corpus("negative_plain");
    if let Fetched::Whole { item, .. } = &mut again {
        *item = "other-uid".into();
    }
    let second = deliver_batch(&mut ledger, &f.set(), vec![again], now()).unwrap();
    assert_eq!(second.duplicates, 1);
    assert!(second.delivered.is_empty());
    assert_eq!(second.acks.len(), 1);
    assert_eq!(second.acks[0].certificate, first.acks[0].certificate);
    assert_eq!(f.files(), files);
}

#[test]
fn a_resend_with_a_new_envelope_but_the_same_pdf_is_a_duplicate() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    let Fetched::Whole { raw, .. } = corpus("negative_plain") else {
        unreachable!()
    };
    deliver_batch(&mut ledger, &f.set(), vec![corpus("negative_plain")], now()).unwrap();
    let text = String::from_utf8(raw)
        .unwrap()
        .replacen("Message-ID: <", "Message-ID: <resent.", 1);
    let report = deliver_batch(
        &mut ledger,
        &f.set(),
        vec![Fetched::Whole {
            item: "9".into(),
            raw: text.into_bytes(),
        }],
        now(),
    )
    .unwrap();
    assert_eq!(report.duplicates, 1);
    assert_eq!(f.files().len(), 1);
}

#[test]
fn a_name_taken_by_another_patient_gets_a_counter() {
    let f = Fixture::new();
    let dir = f.root.join("sites/690000880/2021-10-29");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("MARTIN_Camille_2100000.pdf"), b"someone else's").unwrap();
    let mut ledger = f.ledger();
    deliver_batch(&mut ledger, &f.set(), vec![corpus("negative_plain")], now()).unwrap();
    assert_eq!(
        std::fs::read(dir.join("MARTIN_Camille_2100000.pdf")).unwrap(),
        b"someone else's"
    );
    assert!(
        std::fs::read(dir.join("MARTIN_Camille_2100000 (2).pdf"))
            .unwrap()
            .starts_with(b"%PDF-")
    );
}

/// The ledger knows a message again by the hash of all its bytes, as every version stored
/// it: a message planned or delivered before an upgrade is recognised after it.
#[test]
fn a_message_is_known_by_the_hash_of_all_its_bytes() {
    let f = Fixture::new();
    let fetched = corpus("corsica_site");
    let key = spool::sha256(fetched.bytes());
    let mut ledger = f.ledger();
    plan_batch(&mut ledger, &f.set(), vec![fetched], now()).unwrap();
    let known = ledger.by_content(&key).unwrap();
    assert!(known.is_some(), "not found by the hash of its bytes");
}

#[test]
fn crash_after_planning_replays_into_one_copy() {
    let f = Fixture::new();
    {
        let mut ledger = f.ledger();
        plan_batch(&mut ledger, &f.set(), vec![corpus("corsica_site")], now()).unwrap();
        // The process dies here.
    }
    let mut ledger = f.ledger();
    assert_eq!(recover(&mut ledger, &f.tz).unwrap().finished, 0);
    let report = deliver_batch(&mut ledger, &f.set(), vec![corpus("corsica_site")], now()).unwrap();
    assert_eq!(report.acks.len(), 1);
    assert_eq!(
        f.files(),
        vec![
            "sil/GIRARD_Louis_2100031.json",
            "sil/GIRARD_Louis_2100031.pdf"
        ]
    );
}

#[test]
fn crash_after_staging_is_finished_by_recovery() {
    let f = Fixture::new();
    {
        let mut ledger = f.ledger();
        let mut batch = plan_batch(
            &mut ledger,
            &f.set(),
            vec![corpus("dst_repeated_hour")],
            now(),
        )
        .unwrap();
        stage_batch(&mut ledger, &f.set(), &mut batch).unwrap();
    }
    assert!(f.files().iter().any(|p| p.ends_with(".part")));
    let mut ledger = f.ledger();
    let r = recover(&mut ledger, &f.tz).unwrap();
    assert_eq!((r.published, r.finished), (3, 1));
    assert!(
        !f.files().iter().any(|p| p.ends_with(".part")),
        "{:?}",
        f.files()
    );
    // The message is read again: already delivered, acknowledged without a second copy.
    let report = deliver_batch(
        &mut ledger,
        &f.set(),
        vec![corpus("dst_repeated_hour")],
        now(),
    )
    .unwrap();
    assert_eq!((report.duplicates, report.acks.len()), (1, 1));
    assert_eq!(f.files().len(), 3);
}

#[test]
fn files_renamed_into_place_whose_staging_record_was_lost_are_adopted_and_purged() {
    // The staging commit is not waited for: a power cut can lose it after the files were
    // renamed into place. The message, read again, finds its content there: no second copy,
    // and those files are the copies the purge removes when they are due.
    let f = Fixture::new();
    {
        let mut ledger = f.ledger();
        let mut batch = plan_batch(
            &mut ledger,
            &f.set(),
            vec![corpus("dst_repeated_hour")],
            now(),
        )
        .unwrap();
        super::publish::stage(&f.set(), &mut batch.work, &mut batch.folders);
        for (copy, _) in &batch.work[0].copies {
            std::fs::rename(&copy.temp, &copy.path).unwrap();
        }
    }
    let before = f.files();
    assert_eq!(before.len(), 3, "{before:?}");
    let mut ledger = f.ledger();
    recover(&mut ledger, &f.tz).unwrap();
    let report = deliver_batch(
        &mut ledger,
        &f.set(),
        vec![corpus("dst_repeated_hour")],
        now(),
    )
    .unwrap();
    assert_eq!((report.delivered.len(), report.acks.len()), (1, 1));
    assert_eq!(f.files(), before);
    let later = now() + jiff::SignedDuration::from_hours(24 * 200);
    let pass = crate::retention::purge::local_pass(&mut ledger, &f.tz, later, 100).unwrap();
    assert_eq!(pass.purged.len(), 1);
    assert!(f.files().is_empty(), "{:?}", f.files());
}

#[test]
fn a_sil_file_taken_before_the_crash_is_not_written_again() {
    let f = Fixture::new();
    {
        let mut ledger = f.ledger();
        let mut batch =
            plan_batch(&mut ledger, &f.set(), vec![corpus("corsica_site")], now()).unwrap();
        stage_batch(&mut ledger, &f.set(), &mut batch).unwrap();
        // Published, then the SIL took both files, then the process died.
        for (copy, _) in &batch.work[0].copies {
            std::fs::rename(&copy.temp, &copy.path).unwrap();
            std::fs::remove_file(&copy.path).unwrap();
        }
    }
    let mut ledger = f.ledger();
    recover(&mut ledger, &f.tz).unwrap();
    let report = deliver_batch(&mut ledger, &f.set(), vec![corpus("corsica_site")], now()).unwrap();
    assert_eq!(report.duplicates, 1);
    assert!(f.files().is_empty(), "{:?}", f.files());
}

#[test]
fn an_unwritable_spool_fails_that_certificate_only() {
    // A file where the site's folder should be: fails for root too.
    let f = Fixture::new();
    std::fs::create_dir_all(f.root.join("sites")).unwrap();
    std::fs::write(f.root.join("sites/690000880"), b"not a folder").unwrap();
    let mut ledger = f.ledger();
    let report = deliver_batch(
        &mut ledger,
        &f.set(),
        vec![corpus("negative_plain"), corpus("corsica_site")],
        now(),
    )
    .unwrap();
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, "negative_plain");
    assert!(
        !report.failed[0].1.contains("MARTIN"),
        "{}",
        report.failed[0].1
    );
    assert_eq!(report.acks.len(), 1);
    assert_eq!(report.acks[0].item, "corsica_site");
}

#[test]
fn two_identical_messages_in_one_batch_give_one_copy_and_two_acks() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    let mut second = corpus("negative_plain");
    if let Fetched::Whole { item, .. } = &mut second {
        *item = "twin".into();
    }
    let report = deliver_batch(
        &mut ledger,
        &f.set(),
        vec![corpus("negative_plain"), second],
        now(),
    )
    .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!((report.delivered.len(), report.duplicates), (1, 1));
    assert_eq!(report.acks.len(), 2);
    assert_eq!(f.files().len(), 1);
}

fn events(f: &Fixture, ledger: &mut Ledger) -> Vec<serde_json::Value> {
    crate::retention::log::flush(ledger, &f.root.join("state")).unwrap();
    crate::retention::log::read_lines(&crate::retention::log::path(&f.root.join("state")))
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_newer_resend_replaces_the_delivered_certificate() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    let first = deliver_batch(&mut ledger, &f.set(), vec![corpus("resend_v1")], now()).unwrap();
    let old = first.delivered[0].0;
    assert_eq!(
        f.files(),
        vec!["sites/690000880/2021-10-28/DUPONT_Jean_21099999.pdf"]
    );
    let second = deliver_batch(&mut ledger, &f.set(), vec![corpus("resend_v2")], now()).unwrap();
    assert_eq!(second.superseded, vec![old]);
    assert_eq!(second.acks.len(), 1);
    assert_eq!(
        f.files(),
        vec!["sites/690000880/2021-10-28/DUPONT_Jeanne_21099999.pdf"]
    );
    let row = ledger.certificate(old).unwrap().unwrap();
    assert_eq!(row.state, CertState::Superseded);
    assert!(
        row.purge_at <= now().as_second(),
        "the old one is due at once"
    );
    let ev = events(&f, &mut ledger);
    let sup: Vec<_> = ev.iter().filter(|e| e["event"] == "superseded").collect();
    assert_eq!(sup.len(), 1);
    assert_eq!(sup[0]["certificate"], old);
    assert_eq!(sup[0]["by"], second.delivered[0].0);
}

#[test]
fn an_older_resend_after_a_newer_one_is_stale() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    deliver_batch(&mut ledger, &f.set(), vec![corpus("resend_v2")], now()).unwrap();
    let files = f.files();
    let report = deliver_batch(&mut ledger, &f.set(), vec![corpus("resend_v1")], now()).unwrap();
    assert_eq!(report.stale.len(), 1);
    assert!(report.delivered.is_empty());
    assert_eq!(report.acks.len(), 1);
    assert_eq!(report.acks[0].target, AckTarget::Processed);
    assert_eq!(f.files(), files);
    let ev = events(&f, &mut ledger);
    assert!(ev.iter().any(|e| e["event"] == "stale"));
}

#[test]
fn both_versions_in_one_batch_deliver_only_the_newer() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    let report = deliver_batch(
        &mut ledger,
        &f.set(),
        vec![corpus("resend_v1"), corpus("resend_v2")],
        now(),
    )
    .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.acks.len(), 2, "both messages are acknowledged");
    assert_eq!(
        f.files(),
        vec!["sites/690000880/2021-10-28/DUPONT_Jeanne_21099999.pdf"]
    );
}

/// The re-send of `resend_v1` without its "Date d’intégration" line: which one is newer
/// cannot be told.
fn resend_without_integration_date() -> Vec<u8> {
    let Fetched::Whole { raw, .. } = corpus("resend_v2") else {
        unreachable!()
    };
    let text = String::from_utf8(raw).unwrap();
    let start = text.find("Date d’int").unwrap();
    let end = start + text[start..].find('\n').unwrap();
    format!("{}{}", &text[..start], &text[end..]).into_bytes()
}

#[test]
fn a_resend_without_integration_dates_goes_to_a_person() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    deliver_batch(&mut ledger, &f.set(), vec![corpus("resend_v1")], now()).unwrap();
    let report = deliver_batch(
        &mut ledger,
        &f.set(),
        vec![Fetched::Whole {
            item: "x".into(),
            raw: resend_without_integration_date(),
        }],
        now(),
    )
    .unwrap();
    assert_eq!(report.quarantined.len(), 1);
    assert_eq!(report.quarantined[0].1, Reason::AmbiguousResend);
}

#[test]
fn every_event_carries_pseudonyms_not_patient_data() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    deliver_batch(
        &mut ledger,
        &f.set(),
        vec![
            corpus("negative_plain"),
            corpus("corsica_site"),
            corpus("unknown_site"),
        ],
        now(),
    )
    .unwrap();
    let ev = events(&f, &mut ledger);
    let kinds: Vec<&str> = ev.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "received",
            "received",
            "received",
            "delivered",
            "delivered",
            "quarantined"
        ]
    );
    assert_eq!(ev[3]["destination"], "spool");
    assert_eq!(ev[4]["destination"], "sil");
    assert_eq!(ev[0]["sampled_on"], "2021-10-29");
    assert_eq!(ev[0]["dossier_hmac"].as_str().unwrap().len(), 64);
    let text = std::fs::read_to_string(crate::retention::log::path(&f.root.join("state"))).unwrap();
    for name in [
        "MARTIN",
        "Camille",
        "GIRARD",
        "Louis",
        "2100000",
        "2100031",
        "284037512345633",
    ] {
        assert!(!text.contains(name), "{name} in the retention log");
    }
    let head = crate::retention::log::ledger_head(&ledger).unwrap();
    assert!(crate::retention::log::verify(&f.root.join("state"), Some(&head)).is_ok());
}

#[test]
fn a_certificate_already_due_on_arrival_is_not_written() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    // Sampled 29/10/2021 10:00, negative: due 01/11 09:00 Paris; it arrives on 05/11.
    let late: Timestamp = "2021-11-05T10:00:00Z".parse().unwrap();
    let report =
        deliver_batch(&mut ledger, &f.set(), vec![corpus("negative_plain")], late).unwrap();
    assert_eq!(report.expired.len(), 1);
    assert!(report.delivered.is_empty());
    assert_eq!(report.acks.len(), 1);
    assert_eq!(report.acks[0].target, AckTarget::Processed);
    assert!(f.files().is_empty());
    let ev = events(&f, &mut ledger);
    let e = ev.iter().find(|e| e["event"] == "expired").unwrap();
    assert_eq!(e["due"], "2021-11-01T09:00:00+01:00");
    let row = ledger.certificate(report.expired[0]).unwrap().unwrap();
    assert_eq!(row.state, CertState::Expired);
}

/// The quarantined certificate of `name` and its kept message.
fn quarantined_one(f: &Fixture, ledger: &mut Ledger, name: &str) -> (i64, Vec<u8>) {
    let report = deliver_batch(ledger, &f.set(), vec![corpus(name)], now()).unwrap();
    let id = report.quarantined[0].0;
    let raw = std::fs::read(f.root.join(format!("quarantine/{id}.eml"))).unwrap();
    (id, raw)
}

fn by_name<'a>(overrides: &'a crate::core::Overrides) -> release::Resolution<'a> {
    release::Resolution {
        user: "operator (uid 1000)",
        overrides,
        by_name: true,
    }
}

#[test]
fn a_release_with_a_result_delivers_and_removes_the_quarantine_files() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    let (id, raw) = quarantined_one(&f, &mut ledger, "result_ininterpretable");
    let none = crate::core::Overrides::default();
    let refused = release::release(&mut ledger, &f.set(), id, &raw, &by_name(&none), now());
    assert!(
        matches!(&refused, Err(release::ReleaseError::Refused(w)) if w.contains("unknown_result")),
        "{refused:?}"
    );
    assert!(f.files().contains(&format!("quarantine/{id}.eml")));

    let negative = crate::core::Overrides {
        result: Some(crate::core::test_result::ResultClass::Negative),
        ..Default::default()
    };
    let r = release::release(&mut ledger, &f.set(), id, &raw, &by_name(&negative), now()).unwrap();
    assert_eq!(r.rule, "negative");
    let files = f.files();
    assert!(
        files.iter().all(|p| !p.starts_with("quarantine/")),
        "{files:?}"
    );
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        ledger.certificate(id).unwrap().unwrap().state,
        CertState::Delivered
    );
    let kinds: Vec<String> = events(&f, &mut ledger)
        .iter()
        .filter(|e| e["certificate"] == id)
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["received", "quarantined", "released", "delivered"]);

    // Past the negative rule's due time, a release is refused.
    let (id, raw) = quarantined_one(&f, &mut ledger, "result_non_conclusif");
    let late: Timestamp = "2021-11-20T12:00:00Z".parse().unwrap();
    let refused = release::release(&mut ledger, &f.set(), id, &raw, &by_name(&negative), late);
    assert!(
        matches!(&refused, Err(release::ReleaseError::Refused(w)) if w.contains("retention is over")),
        "{refused:?}"
    );
}

#[test]
fn an_interrupted_release_is_undone_and_can_be_run_again() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    let (id, raw) = quarantined_one(&f, &mut ledger, "result_ininterpretable");
    // As a crash after publication and before the last commit leaves it: a file renamed into
    // the spool, its copy still staged, the certificate still quarantined.
    let dir = f.root.join("sites/690000880/2021-10-29");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("LEFT_Behind_1.pdf");
    std::fs::write(&path, b"%PDF-left").unwrap();
    let tx = ledger.tx().unwrap();
    let copy = tx
        .insert_copy(
            id,
            &crate::ledger::NewCopy {
                kind: CopyKind::Spool,
                path: path.clone(),
                temp: dir.join(".mss-dispatch.x.spool.part"),
                sha256: crate::delivery::spool::sha256(b"%PDF-left"),
            },
        )
        .unwrap();
    tx.set_copy_state(copy, CopyState::Staged).unwrap();
    tx.commit().unwrap();

    assert_eq!(release::undo_abandoned(&mut ledger, None).unwrap(), 1);
    assert!(!path.exists());
    assert_eq!(
        ledger.certificate(id).unwrap().unwrap().state,
        CertState::Quarantined
    );
    let negative = crate::core::Overrides {
        result: Some(crate::core::test_result::ResultClass::Negative),
        ..Default::default()
    };
    release::release(&mut ledger, &f.set(), id, &raw, &by_name(&negative), now()).unwrap();
    assert_eq!(
        f.files().iter().filter(|p| p.starts_with("sites/")).count(),
        1
    );
}

#[test]
fn an_ambiguous_resend_released_by_name_replaces_the_delivered_one() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    let first = deliver_batch(&mut ledger, &f.set(), vec![corpus("resend_v1")], now()).unwrap();
    let old = first.delivered[0].0;
    let raw = resend_without_integration_date();
    let report = deliver_batch(
        &mut ledger,
        &f.set(),
        vec![Fetched::Whole {
            item: "x".into(),
            raw: raw.clone(),
        }],
        now(),
    )
    .unwrap();
    let id = report.quarantined[0].0;
    let none = crate::core::Overrides::default();
    // `retry` leaves it to a person…
    let retry = release::Resolution {
        user: "operator (uid 1000)",
        overrides: &none,
        by_name: false,
    };
    let refused = release::release(&mut ledger, &f.set(), id, &raw, &retry, now());
    assert!(matches!(refused, Err(release::ReleaseError::Refused(_))));
    // …who releases it by its id: it replaces the delivered one.
    let r = release::release(&mut ledger, &f.set(), id, &raw, &by_name(&none), now()).unwrap();
    assert_eq!(r.replaced, Some(old));
    assert_eq!(
        ledger.certificate(old).unwrap().unwrap().state,
        CertState::Superseded
    );
    assert_eq!(
        f.files()
            .iter()
            .filter(|p| !p.starts_with("quarantine/"))
            .count(),
        ledger.copies(id).unwrap().len(),
        "only the released certificate's files are left"
    );
}

/// Regression: a site user who pre-created `SITE/DAY -> elsewhere` made the service write
/// certificates outside the spool (into the state directory, another site's folder).
#[test]
fn a_link_where_a_day_folder_should_be_is_refused_and_other_sites_are_delivered() {
    use std::os::unix::fs::MetadataExt;
    let f = Fixture::new();
    let mut ledger = f.ledger();
    let state = f.root.join("state");
    let before = std::fs::metadata(&state).unwrap();
    std::fs::create_dir_all(f.root.join("sites/690000880")).unwrap();
    std::os::unix::fs::symlink(&state, f.root.join("sites/690000880/2021-10-29")).unwrap();
    let report = deliver_batch(
        &mut ledger,
        &f.set(),
        vec![corpus("negative_plain"), corpus("corsica_site")],
        now(),
    )
    .unwrap();
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].1.contains("sites/690000880"));
    assert!(!report.failed[0].1.contains("MARTIN"));
    assert_eq!(report.delivered.len(), 1);
    assert!(f.files().iter().any(|p| p.starts_with("sil/")));
    let after = std::fs::metadata(&state).unwrap();
    assert_eq!((before.mode(), before.gid()), (after.mode(), after.gid()));
    assert!(
        std::fs::read_dir(&state).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".part")),
        "nothing written in the state directory"
    );
    // Once the link is gone, the certificate goes through at the next pass.
    std::fs::remove_file(f.root.join("sites/690000880/2021-10-29")).unwrap();
    let report =
        deliver_batch(&mut ledger, &f.set(), vec![corpus("negative_plain")], now()).unwrap();
    assert_eq!(report.delivered.len(), 1, "{report:?}");
}

#[test]
fn a_released_copy_is_known_by_its_identity_and_purged_where_staff_moved_it() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    let (id, raw) = quarantined_one(&f, &mut ledger, "result_ininterpretable");
    let negative = crate::core::Overrides {
        result: Some(crate::core::test_result::ResultClass::Negative),
        ..Default::default()
    };
    release::release(&mut ledger, &f.set(), id, &raw, &by_name(&negative), now()).unwrap();
    let files = f.files();
    assert_eq!(files.len(), 1, "{files:?}");
    let delivered = f.root.join(&files[0]);
    let recorded = ledger.copies(id).unwrap();
    let spool = recorded.iter().find(|c| c.kind == CopyKind::Spool).unwrap();
    let meta = std::fs::metadata(&delivered).unwrap();
    assert_eq!(
        spool.file,
        Some(spool::FileId {
            dev: meta.dev(),
            ino: meta.ino()
        })
    );

    // The staff file it away and rename its day folder: still found, and purged when due.
    let day = delivered.parent().unwrap();
    let site = day.parent().unwrap();
    let moved = site.join("imprimes/patient.pdf");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&delivered, &moved).unwrap();
    std::fs::rename(day, site.join("vu")).unwrap();
    let due = ledger.certificate(id).unwrap().unwrap().purge_at;
    let due = Timestamp::from_second(due).unwrap();
    crate::retention::purge::local_pass(&mut ledger, &f.tz, due, 100).unwrap();
    assert!(!moved.exists(), "purged where the staff put it");
    assert_eq!(f.files(), Vec::<String>::new());
}
