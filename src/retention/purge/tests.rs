//! Tests of the purge pass, schedule by schedule. Long on purpose: each scenario is spelled out
//! in full, so that a failing one reads on its own.

use std::time::Duration;

use super::*;
use crate::core::clock::LastPass;
use crate::delivery::{deliver_batch, record_acks};
use crate::ledger::ServerCopy;
use crate::retention::clock::{Gate, clock_gate, confirm_clock, passed};
use crate::retention::server_copies::record_server_results;
use crate::test_support::{Fixture, corpus, now};

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn log(f: &Fixture, ledger: &mut Ledger) -> Vec<serde_json::Value> {
    crate::retention::log::flush(ledger, &f.root.join("state")).unwrap();
    crate::retention::log::read_lines(&crate::retention::log::path(&f.root.join("state")))
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every byte of every file under the state directory.
fn state_bytes(f: &Fixture) -> Vec<u8> {
    let mut out = Vec::new();
    let mut files = Vec::new();
    crate::test_support::walk(&f.root, &f.root.join("state"), &mut files);
    for p in files {
        out.extend(std::fs::read(f.root.join(p)).unwrap());
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn a_negative_is_purged_at_its_due_time_and_leaves_no_personal_data() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    deliver_batch(&mut ledger, &f.set(), vec![corpus("negative_plain")], now()).unwrap();
    crate::retention::log::flush(&mut ledger, &f.root.join("state")).unwrap();
    // Sampled 29/10/2021 10:00 Paris: due 72 h later, 2021-11-01T08:00:00Z.
    let before = local_pass(&mut ledger, &f.tz, t("2021-11-01T07:59:59Z"), 100).unwrap();
    assert!(before.purged.is_empty());
    assert_eq!(f.files().len(), 1);
    assert!(
        !contains(&state_bytes(&f), "MARTIN"),
        "never in clear in the ledger's files"
    );
    assert!(
        ledger.copies(1).unwrap()[0]
            .path
            .to_string_lossy()
            .contains("MARTIN"),
        "the ledger holds the name, sealed, until the purge"
    );

    let pass = local_pass(&mut ledger, &f.tz, t("2021-11-01T08:00:30Z"), 100).unwrap();
    assert_eq!(pass.purged.len(), 1);
    assert_eq!(pass.purged[0].1, "negative");
    assert!(f.files().is_empty(), "{:?}", f.files());
    assert!(
        !f.root.join("sites/690000880/2021-10-29").exists(),
        "empty day folder removed"
    );

    let ev = log(&f, &mut ledger);
    let purged = ev
        .iter()
        .find(|e| e["event"] == "purged")
        .unwrap_or_else(|| panic!("{ev:#?}"));
    assert_eq!(purged["rule"], "negative");
    assert_eq!(purged["due"], "2021-11-01T09:00:00+01:00");
    assert_eq!(purged["lateness_seconds"], 30);
    let head = crate::retention::log::ledger_head(&ledger).unwrap();
    assert!(crate::retention::log::verify(&f.root.join("state"), Some(&head)).is_ok());

    // While the ledger is open (its write-ahead log in use), and after it is closed.
    for open in [true, false] {
        if !open {
            drop(std::mem::replace(&mut ledger, f.ledger()));
        }
        let bytes = state_bytes(&f);
        for personal in [
            "MARTIN",
            "Camille",
            "2100000",
            "284037512345633",
            "12/03/1984",
        ] {
            assert!(
                !contains(&bytes, personal),
                "{personal} is still in the state directory"
            );
        }
    }
}

#[test]
fn a_positive_is_purged_at_the_start_of_the_day_six_months_later() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    deliver_batch(
        &mut ledger,
        &f.set(),
        vec![corpus("positive_month_end")],
        now(),
    )
    .unwrap();
    // Sampled 31/08/2021: due at the start of 28/02/2022, Paris.
    assert!(
        local_pass(&mut ledger, &f.tz, t("2022-02-27T22:59:59Z"), 100)
            .unwrap()
            .purged
            .is_empty()
    );
    let pass = local_pass(&mut ledger, &f.tz, t("2022-02-27T23:00:00Z"), 100).unwrap();
    assert_eq!(pass.purged, vec![(1, "positive".to_string())]);
    assert!(f.files().is_empty());
}

#[test]
fn quarantine_files_go_when_the_longest_rule_expires() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    deliver_batch(&mut ledger, &f.set(), vec![corpus("unknown_site")], now()).unwrap();
    assert_eq!(f.files().len(), 2);
    // Sampled 28/10/2021: six months, start of 28/04/2022 Paris.
    assert!(
        local_pass(&mut ledger, &f.tz, t("2022-04-27T21:59:59Z"), 100)
            .unwrap()
            .purged
            .is_empty()
    );
    let pass = local_pass(&mut ledger, &f.tz, t("2022-04-27T22:00:00Z"), 100).unwrap();
    assert_eq!(pass.purged[0].1, "quarantine");
    assert!(f.files().is_empty());
}

#[test]
fn files_the_sil_or_the_site_took_are_recorded_not_missed() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    // 750712184 has a spool and a SIL folder.
    deliver_batch(
        &mut ledger,
        &f.set(),
        vec![corpus("dst_repeated_hour")],
        now(),
    )
    .unwrap();
    std::fs::remove_file(f.root.join("sil/MARTIN_Camille_2100032.pdf")).unwrap();
    std::fs::remove_file(f.root.join("sil/MARTIN_Camille_2100032.json")).unwrap();
    std::fs::remove_file(
        f.root
            .join("sites/750712184/2021-10-31/MARTIN_Camille_2100032.pdf"),
    )
    .unwrap();
    let pass = local_pass(&mut ledger, &f.tz, t("2022-01-01T00:00:00Z"), 100).unwrap();
    assert_eq!(pass.purged.len(), 1);
    assert_eq!(pass.taken, 3);
    let ev = log(&f, &mut ledger);
    let kinds: Vec<&str> = ev.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"handed_to_sil"), "{kinds:?}");
    assert!(kinds.contains(&"removed_by_site"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"purged"));
}

#[test]
fn a_superseded_certificate_is_purged_at_the_next_pass() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    // Received before their own due times (sampled 28/10, negative: due 31/10).
    let received = t("2021-10-29T12:00:00Z");
    deliver_batch(&mut ledger, &f.set(), vec![corpus("resend_v1")], received).unwrap();
    deliver_batch(&mut ledger, &f.set(), vec![corpus("resend_v2")], received).unwrap();
    let pass = local_pass(&mut ledger, &f.tz, t("2021-10-29T12:00:01Z"), 100).unwrap();
    assert_eq!(pass.purged.len(), 1, "only the replaced one");
    assert_eq!(
        f.files(),
        vec!["sites/690000880/2021-10-28/DUPONT_Jeanne_21099999.pdf"]
    );
}

#[test]
fn the_clock_going_back_or_far_forward_holds_purging_until_confirmed() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    let week = Duration::from_secs(7 * 86_400);
    let mono = Duration::from_secs(10);
    assert_eq!(
        clock_gate(
            &mut ledger,
            None,
            t("2021-11-02T10:00:00Z"),
            mono,
            week,
            &f.tz
        )
        .unwrap(),
        Gate::Open
    );
    passed(&mut ledger, t("2021-11-02T10:00:00Z")).unwrap();
    // Across a restart: back by a day.
    let gate = clock_gate(
        &mut ledger,
        None,
        t("2021-11-01T10:00:00Z"),
        mono,
        week,
        &f.tz,
    )
    .unwrap();
    assert!(
        matches!(&gate, Gate::Held(r) if r.contains("went back")),
        "{gate:?}"
    );
    // Held even once the clock looks right again.
    assert!(matches!(
        clock_gate(
            &mut ledger,
            None,
            t("2021-11-02T10:05:00Z"),
            mono,
            week,
            &f.tz
        )
        .unwrap(),
        Gate::Held(_)
    ));
    assert!(confirm_clock(&mut ledger, t("2021-11-02T10:06:00Z"), "alice", &f.tz).unwrap());
    assert_eq!(
        clock_gate(
            &mut ledger,
            None,
            t("2021-11-02T10:07:00Z"),
            mono,
            week,
            &f.tz
        )
        .unwrap(),
        Gate::Open
    );
    // Within one process: the wall clock runs 30 days ahead of the monotonic one.
    let last = LastPass {
        wall: t("2021-11-02T10:07:00Z"),
        mono: Some(Duration::from_secs(100)),
    };
    let gate = clock_gate(
        &mut ledger,
        Some(last),
        t("2021-12-02T10:08:00Z"),
        Duration::from_secs(160),
        week,
        &f.tz,
    )
    .unwrap();
    assert!(
        matches!(&gate, Gate::Held(r) if r.contains("jumped forward")),
        "{gate:?}"
    );
    let ev = log(&f, &mut ledger);
    let kinds: Vec<&str> = ev.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["clock_hold", "clock_confirmed", "clock_hold"]);
    assert_eq!(ev[1]["user"], "alice");
}

#[test]
fn server_copies_are_due_with_their_certificate_and_record_their_lateness() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    let report =
        deliver_batch(&mut ledger, &f.set(), vec![corpus("negative_plain")], now()).unwrap();
    let copy = ServerCopy {
        mailbox: f.key.mailbox.clone(),
        folder: "SI-DEP/Traites".into(),
        validity: Some("7".into()),
        item: Some("1001".into()),
        message_id: Some("<x@y>".into()),
    };
    record_acks(&mut ledger, &f.key, &[(report.acks[0].clone(), Some(copy))]).unwrap();
    assert!(
        ledger
            .due_server_copies(t("2021-11-01T07:59:59Z").as_second(), 10)
            .unwrap()
            .is_empty()
    );
    let due = ledger
        .due_server_copies(t("2021-11-01T09:00:00Z").as_second(), 10)
        .unwrap();
    assert_eq!(due.len(), 1);
    // The server is down: counted, still due.
    record_server_results(
        &mut ledger,
        &[(
            due[0].clone(),
            Err(crate::source::SourceError::Transient(
                "connection refused".into(),
            )),
        )],
        t("2021-11-01T09:00:00Z"),
        &f.tz,
    )
    .unwrap();
    let due = ledger
        .due_server_copies(t("2021-11-01T10:00:00Z").as_second(), 10)
        .unwrap();
    assert_eq!(due[0].attempts, 1);
    let n = record_server_results(
        &mut ledger,
        &[(due[0].clone(), Ok(()))],
        t("2021-11-01T10:00:00Z"),
        &f.tz,
    )
    .unwrap();
    assert_eq!(n, 1);
    assert!(
        ledger
            .due_server_copies(t("2021-11-02T00:00:00Z").as_second(), 10)
            .unwrap()
            .is_empty()
    );
    let ev = log(&f, &mut ledger);
    let e = ev
        .iter()
        .find(|e| e["event"] == "server_copy_purged")
        .unwrap();
    assert_eq!(e["lateness_seconds"], 7200);
    assert_eq!(e["folder"], "SI-DEP/Traites");
}

// ---- the site's staff write in their folder (DESIGN invariant 8)

const LYON_DAY: &str = "sites/690000880/2021-10-29";
const LYON_FILE: &str = "MARTIN_Camille_2100000.pdf";
const DUE: &str = "2021-11-01T08:00:30Z";

fn events(f: &Fixture, ledger: &mut Ledger, event: &str) -> usize {
    log(f, ledger)
        .iter()
        .filter(|e| e["event"] == event)
        .count()
}

/// Regression: a PDF moved into a sub-folder was logged `removed_by_site`, then `purged`, and
/// stayed on disk.
#[test]
fn a_copy_staff_moved_inside_their_tree_is_still_ours_and_purged_where_it_is() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    deliver_batch(&mut ledger, &f.set(), vec![corpus("negative_plain")], now()).unwrap();
    let moved = f.root.join("sites/690000880/imprimes/octobre/patient.pdf");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(f.root.join(LYON_DAY).join(LYON_FILE), &moved).unwrap();
    std::fs::rename(f.root.join(LYON_DAY), f.root.join("sites/690000880/vu")).unwrap();

    let taken = crate::retention::handover::reconcile_all(&mut ledger, now(), &f.tz).unwrap();
    assert_eq!(taken, 0, "a moved file is not a hand-over");
    let pass = local_pass(&mut ledger, &f.tz, t(DUE), 100).unwrap();
    assert_eq!(pass.purged.len(), 1);
    assert_eq!(pass.taken, 0);
    assert!(!moved.exists(), "purged where the staff put it");
    assert_eq!(events(&f, &mut ledger, "removed_by_site"), 0);
    assert_eq!(events(&f, &mut ledger, "purged"), 1);
}

/// Regression: after a day folder was renamed and its name linked to another site's folder,
/// purge deleted the other site's file of the same name and left the real one.
#[test]
fn purge_never_follows_a_link_to_another_site() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    deliver_batch(&mut ledger, &f.set(), vec![corpus("negative_plain")], now()).unwrap();
    let other = f.root.join("sites/750712184/2021-10-29");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join(LYON_FILE), b"Paris's own file").unwrap();
    std::fs::rename(f.root.join(LYON_DAY), f.root.join("sites/690000880/old")).unwrap();
    std::os::unix::fs::symlink(&other, f.root.join(LYON_DAY)).unwrap();

    let pass = local_pass(&mut ledger, &f.tz, t(DUE), 100).unwrap();
    assert_eq!(pass.purged.len(), 1);
    assert_eq!(
        std::fs::read(other.join(LYON_FILE)).unwrap(),
        b"Paris's own file"
    );
    assert!(!f.root.join("sites/690000880/old").join(LYON_FILE).exists());
}

/// Regression: one entry that could not be removed stopped purging for every site, silently.
#[test]
fn a_copy_that_cannot_be_removed_is_failing_and_the_others_are_purged() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    deliver_batch(
        &mut ledger,
        &f.set(),
        vec![corpus("negative_plain"), corpus("corsica_site")],
        now(),
    )
    .unwrap();
    // Staff bury the file deeper than the service searches: it cannot be found.
    let mut deep = f.root.join("sites/690000880");
    for i in 0..15 {
        deep = deep.join(format!("d{i}"));
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::rename(f.root.join(LYON_DAY).join(LYON_FILE), deep.join("x.pdf")).unwrap();

    let pass = local_pass(&mut ledger, &f.tz, t(DUE), 100).unwrap();
    assert_eq!(pass.failing.len(), 1, "{pass:?}");
    assert_eq!(pass.failing[0].site.as_deref(), Some("690000880"));
    assert!(pass.failing[0].error.contains("sites/690000880"));
    assert!(!pass.failing[0].error.contains("MARTIN"));
    assert_eq!(
        pass.purged.len(),
        1,
        "the Corsican certificate is purged all the same"
    );
    let counts = crate::ledger::counts(&ledger, t(DUE).as_second()).unwrap();
    assert_eq!(counts.purge_failing, 1);
    // Retried at the next pass, where it succeeds once the file is reachable again.
    std::fs::rename(deep.join("x.pdf"), f.root.join("sites/690000880/x.pdf")).unwrap();
    let pass = local_pass(&mut ledger, &f.tz, t(DUE), 100).unwrap();
    assert!(pass.failing.is_empty());
    assert_eq!(pass.purged.len(), 1);
    assert!(!f.root.join("sites/690000880/x.pdf").exists());
    let counts = crate::ledger::counts(&ledger, t(DUE).as_second()).unwrap();
    assert_eq!(counts.purge_failing, 0);
}

/// Regression: day folders renamed during delivery left hidden `.part` files behind.
#[test]
fn temporary_files_in_a_renamed_folder_are_published_or_removed_where_they_are() {
    use crate::delivery::{plan_batch, recover, stage_batch};
    let f = Fixture::new();
    let mut ledger = f.ledger();
    // Staged (written and synced), then the day folder renamed before publication: recovery
    // publishes it in the renamed folder, and the purge finds it there.
    let mut batch =
        plan_batch(&mut ledger, &f.set(), vec![corpus("negative_plain")], now()).unwrap();
    stage_batch(&mut ledger, &f.set(), &mut batch).unwrap();
    std::fs::rename(
        f.root.join(LYON_DAY),
        f.root.join("sites/690000880/renamed"),
    )
    .unwrap();
    drop(batch);
    recover(&mut ledger, &f.tz).unwrap();
    assert!(
        f.root
            .join("sites/690000880/renamed")
            .join(LYON_FILE)
            .exists()
    );
    let pass = local_pass(&mut ledger, &f.tz, t(DUE), 100).unwrap();
    assert_eq!(pass.purged.len(), 1);

    // Planned only (a crash in the middle of the write): the temporary file is found by its
    // name in the renamed folder and removed.
    let mut batch = plan_batch(
        &mut ledger,
        &f.set(),
        vec![corpus("dst_repeated_hour")],
        now(),
    )
    .unwrap();
    let spool_day = f.root.join("sites/750712184/2021-10-31");
    stage_batch(&mut ledger, &f.set(), &mut batch).unwrap();
    let temps: Vec<String> = f
        .files()
        .into_iter()
        .filter(|p| p.ends_with(".part"))
        .collect();
    assert!(!temps.is_empty());
    // Back to "planned": as if the process died before the staged commit.
    {
        let tx = ledger.tx().unwrap();
        tx.conn()
            .execute(
                "UPDATE copy SET state = 'planned', dev = NULL, ino = NULL",
                [],
            )
            .unwrap();
        tx.commit().unwrap();
    }
    std::fs::rename(&spool_day, f.root.join("sites/750712184/autre")).unwrap();
    drop(batch);
    let done = recover(&mut ledger, &f.tz).unwrap();
    assert!(done.discarded_temps >= 2, "{done:?}");
    assert!(
        f.files().iter().all(|p| !p.contains(".part")),
        "{:?}",
        f.files()
    );
}

/// A certificate message for patient `n` of site 690000880, sampled 29/10/2021 10:00.
fn numbered(n: u32) -> crate::delivery::Fetched {
    let nom = format!("ZZNOM{n:05}");
    let prenom = format!("Prenomxq{n:05}");
    let dossier = format!("DOSS{n:06}");
    let ins = format!("1{n:014}");
    let body = format!(
        "Nom : {nom}\nPrénom : {prenom}\nSexe : F\nDate de naissance : 01/01/1980\n\
         Matricule Identifiant National de Santé (INS) : {ins}\n\
         Identifiant de la structure ayant réalisé le test : 690000880\n\
         Date de prélèvement : 29/10/2021 10:00\nRésultat du test : Négatif\n"
    );
    let raw = format!(
        "From: noreply.sidep@enovacom.mssante.fr\nSubject: [Projet SI-DEP] Certificat de test :  \
         690000880 | {dossier} | {nom} | {prenom}\nMessage-ID: <{n}@sidep>\nMIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain; \
         charset=utf-8\n\n{body}\n--b\nContent-Type: application/pdf\nContent-Disposition: \
         attachment; filename=\"690000880_{dossier}_{nom}_{prenom}.pdf\"\n\
         Content-Transfer-Encoding: 7bit\n\n%PDF-1.4 {n}\n%%EOF\n--b--\n"
    );
    crate::delivery::Fetched::Whole {
        item: n.to_string(),
        raw: raw.into_bytes(),
    }
}

/// Regression: after a purge, a purged patient's file path could be read in the unused space
/// of a live page of the ledger, despite `secure_delete`.
#[test]
fn no_byte_of_a_purged_patient_is_left_in_the_ledger_files() {
    let f = Fixture::new();
    let mut ledger = f.ledger();
    for chunk in (0..2000u32).collect::<Vec<_>>().chunks(100) {
        let batch = chunk.iter().map(|n| numbered(*n)).collect();
        let report = deliver_batch(&mut ledger, &f.set(), batch, now()).unwrap();
        assert_eq!(report.delivered.len(), chunk.len());
    }
    crate::retention::log::flush(&mut ledger, &f.root.join("state")).unwrap();
    let held = ledger.copies(2000).unwrap();
    assert!(
        held[0].path.to_string_lossy().contains("ZZNOM01999"),
        "the ledger holds them, sealed, until the purge"
    );
    assert!(!contains(&state_bytes(&f), "ZZNOM01999"), "never in clear");
    // Purged in several passes, as the service would.
    for _ in 0..3 {
        local_pass(&mut ledger, &f.tz, t(DUE), 800).unwrap();
    }
    assert!(f.files().is_empty());
    // Not even sealed: the keys are gone.
    assert!(ledger.copies(2000).unwrap().is_empty());
    assert_eq!(ledger.key(2000).unwrap(), None);
    let bytes = state_bytes(&f);
    for needle in [
        "ZZNOM",
        "Prenomxq",
        "DOSS0",
        "100000000",
        "sites/690000880/2021",
    ] {
        assert!(
            !contains(&bytes, needle),
            "{needle:?} left in the state directory"
        );
    }
}
