//! Retention with a real Dovecot and the real binary: server copies deleted when due (and
//! later, when the server was down), the clock-safety hold and its confirmation, re-sends,
//! hand-over tracking by the running daemon, acknowledgements the ledger never recorded, and
//! the auditors' commands.

use std::path::Path;

use crate::support::*;

const PROCESSED: &str = "SI-DEP.Traites";
const QUARANTINE: &str = "SI-DEP.Quarantaine";

fn world(extra: &str) -> World {
    World::new("", extra)
}

fn ledger(w: &World) -> rusqlite::Connection {
    rusqlite::Connection::open(w.install.root.join("state/ledger.sqlite")).unwrap()
}

/// Makes every certificate due now: the retention arithmetic is tested with injected time in
/// the unit tests; here the point is what happens to the copies.
fn make_due(w: &World) {
    let past = jiff::Timestamp::now().as_second() - 60;
    let db = ledger(w);
    db.execute("UPDATE certificate SET purge_at = ?1", [past])
        .unwrap();
    db.execute("UPDATE server_copy SET due = ?1", [past])
        .unwrap();
}

/// An installation that delivered three negatives of one site.
fn three_delivered() -> World {
    let w = world("");
    for n in 1..=3 {
        w.dovecot
            .deliver(USER, "INBOX", &certificate(n, "690000880", "Négatif", 2000));
    }
    assert!(w.install.run_once().status.success());
    w
}

/// The head hash `audit verify` printed last on its line.
fn printed_head(out: &std::process::Output) -> String {
    let said = stdout(out);
    let head = said
        .trim()
        .rsplit_once("head ")
        .map(|(_, h)| h.trim().to_string())
        .unwrap_or_else(|| panic!("no head in {said}"));
    assert_eq!(head.len(), 64, "{said}");
    head
}

fn state_bytes(dir: &Path) -> Vec<u8> {
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files
        .iter()
        .flat_map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn a_due_certificate_is_purged_everywhere_including_the_server_copy() {
    let w = world("");
    w.dovecot
        .deliver(USER, "INBOX", &certificate(1, "750712184", "Négatif", 4000));
    let out = w.install.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.dovecot.count(USER, PROCESSED), 1);
    assert_eq!(w.install.files().len(), 3, "{:?}", w.install.files());
    // Sealed with a key of its own (ledger.keys): never in clear, even before the purge.
    assert!(!contains(
        &state_bytes(&w.install.root.join("state")),
        "PATIENT1"
    ));

    make_due(&w);
    let out = w.install.command(&["purge"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("purged 1 certificate(s); 1 server copy(ies) deleted")
    );
    assert!(w.install.files().is_empty(), "{:?}", w.install.files());
    assert_eq!(
        w.dovecot.count(USER, PROCESSED),
        0,
        "the server copy is gone too"
    );
    let kinds: Vec<String> = log_events(&w.install.root)
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.contains(&"purged".to_string()), "{kinds:?}");
    assert!(
        kinds.contains(&"server_copy_purged".to_string()),
        "{kinds:?}"
    );
    let bytes = state_bytes(&w.install.root.join("state"));
    for personal in ["PATIENT1", "D000001", "01/01/1980"] {
        assert!(
            !contains(&bytes, personal),
            "{personal} is still in the state directory"
        );
    }
}

#[test]
fn with_the_server_down_the_local_purge_completes_and_the_server_catches_up() {
    let mut w = world("");
    w.dovecot
        .deliver(USER, "INBOX", &certificate(2, "690000880", "Négatif", 4000));
    assert!(w.install.run_once().status.success());
    make_due(&w);
    w.dovecot.stop();
    let out = w.install.command(&["purge"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 server copy(ies) deleted, 1 to retry")
    );
    assert!(w.install.files().is_empty());
    w.dovecot.restart();
    assert_eq!(w.dovecot.count(USER, PROCESSED), 1);
    let out = w.install.command(&["purge"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.dovecot.count(USER, PROCESSED), 0);
    let late = log_events(&w.install.root)
        .into_iter()
        .find(|e| e["event"] == "server_copy_purged")
        .unwrap();
    assert!(late["lateness_seconds"].as_i64().unwrap() >= 60, "{late}");
}

/// The state a crash leaves between the server's MOVE and its record in the ledger (as do a
/// failed ledger write there, or a connection lost before the server answered): the messages
/// are in the processed folder and the ledger does not know where they went.
fn forget_acknowledgements(w: &World) {
    ledger(w)
        .execute_batch("UPDATE message SET acked = 0; DELETE FROM server_copy;")
        .unwrap();
}

#[test]
fn an_acknowledgement_never_recorded_is_found_again_and_its_server_copy_purged() {
    let w = three_delivered();
    assert_eq!(w.dovecot.count(USER, PROCESSED), 3);
    forget_acknowledgements(&w);
    // One of them without a Message-ID: nothing can find its copy again, which is said.
    let db = ledger(&w);
    db.execute("UPDATE certificate SET message_id = NULL WHERE id = 3", [])
        .unwrap();

    let out = w.install.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ALERT: a message acknowledged but never recorded has no Message-ID"),
        "{}",
        stderr(&out)
    );
    let found: i64 = db
        .query_row(
            "SELECT count(*) FROM server_copy WHERE state = 'present' AND folder = ?1
             AND message_id IS NOT NULL",
            ["SI-DEP/Traites"],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        found, 2,
        "each copy recorded where the acknowledgement left it"
    );
    let unacked: i64 = db
        .query_row("SELECT count(*) FROM message WHERE acked = 0", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(unacked, 0);
    // Recorded once: the next pass finds nothing more.
    let out = w.install.run_once();
    assert!(out.status.success());
    assert!(!stderr(&out).contains("ALERT"), "{}", stderr(&out));
    let rows: i64 = db
        .query_row("SELECT count(*) FROM server_copy", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 2);

    make_due(&w);
    let out = w.install.command(&["purge"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("2 server copy(ies) deleted"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        w.dovecot.count(USER, PROCESSED),
        1,
        "found by Message-ID, all but the one the ALERT named"
    );
}

#[test]
fn a_lost_acknowledgement_of_a_quarantine_released_since_is_found_in_the_quarantine_folder() {
    let w = world("");
    // A site the configuration does not know: quarantined, moved to the quarantine folder.
    w.dovecot
        .deliver(USER, "INBOX", &certificate(1, "010780054", "Négatif", 2000));
    assert!(w.install.run_once().status.success());
    assert_eq!(w.dovecot.count(USER, QUARANTINE), 1);
    forget_acknowledgements(&w);
    // Released to a site before the next pass: the certificate is delivered now, but its
    // message is still where the quarantine sent it.
    let db = ledger(&w);
    let id: i64 = db
        .query_row("SELECT id FROM certificate", [], |r| r.get(0))
        .unwrap();
    let out = w.install.command(&[
        "quarantine",
        "release",
        &id.to_string(),
        "--site",
        "690000880",
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    assert!(w.install.run_once().status.success());
    let folder: String = db
        .query_row(
            "SELECT folder FROM server_copy WHERE state = 'present'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(folder, "SI-DEP/Quarantaine", "recorded where the copy is");

    make_due(&w);
    let out = w.install.command(&["purge"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("1 server copy(ies) deleted"),
        "{}",
        stdout(&out)
    );
    assert_eq!(w.dovecot.count(USER, QUARANTINE), 0);
    assert_eq!(w.dovecot.count(USER, PROCESSED), 0);
}

#[test]
fn a_maildir_acknowledgement_never_recorded_is_found_again_and_purged() {
    let tmp = workdir();
    let root = tmp.path().join("install");
    let maildir = root.join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    for i in 1..=2 {
        std::fs::write(
            maildir.join("new").join(format!("{i}.local")),
            certificate(i, "690000880", "Négatif", 2000),
        )
        .unwrap();
    }
    let install = Install::new(&root, &format!("maildir = \"{}\"\n", maildir.display()));
    assert!(install.run_once().status.success());
    let processed = || {
        std::fs::read_dir(maildir.join(".SI-DEP.Traites/cur"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(processed(), 2);
    let db = rusqlite::Connection::open(root.join("state/ledger.sqlite")).unwrap();
    db.execute_batch("UPDATE message SET acked = 0; DELETE FROM server_copy;")
        .unwrap();

    assert!(install.run_once().status.success());
    let past = jiff::Timestamp::now().as_second() - 60;
    db.execute("UPDATE certificate SET purge_at = ?1", [past])
        .unwrap();
    db.execute("UPDATE server_copy SET due = ?1", [past])
        .unwrap();
    let out = install.command(&["purge"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("2 server copy(ies) deleted"),
        "{}",
        stdout(&out)
    );
    assert_eq!(processed(), 0);
}

#[test]
fn a_clock_set_back_holds_purging_until_an_operator_confirms_it() {
    let w = world("");
    w.dovecot
        .deliver(USER, "INBOX", &certificate(3, "690000880", "Négatif", 4000));
    assert!(w.install.run_once().status.success());
    make_due(&w);
    // The last pass was recorded tomorrow: the clock has gone back a day since.
    let tomorrow = jiff::Timestamp::now().as_second() + 86_400;
    ledger(&w)
        .execute(
            "INSERT INTO meta (key, value) VALUES ('purge_last_pass', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [tomorrow.to_string()],
        )
        .unwrap();
    let out = w.install.command(&["purge"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("went back"), "{}", stderr(&out));
    assert_eq!(
        w.install.spool_files("690000880").len(),
        1,
        "nothing purged while held"
    );
    // The daemon does not purge either.
    assert!(w.install.run_once().status.success());
    assert_eq!(w.install.spool_files("690000880").len(), 1);
    let out = w.install.command(&["purge", "--confirm-clock"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = w.install.command(&["purge"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(w.install.spool_files("690000880").is_empty());
    let events = log_events(&w.install.root);
    let confirm = events
        .iter()
        .find(|e| e["event"] == "clock_confirmed")
        .unwrap();
    assert!(
        confirm["user"].as_str().unwrap().contains("uid"),
        "{confirm}"
    );
}

#[test]
fn dry_run_lists_what_is_due_and_deletes_nothing() {
    let w = world("");
    w.dovecot
        .deliver(USER, "INBOX", &certificate(4, "690000880", "Positif", 4000));
    assert!(w.install.run_once().status.success());
    let out = w.install.command(&["purge", "--dry-run"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "nothing due yet");
    make_due(&w);
    let out = w.install.command(&["purge", "--dry-run"]);
    let line: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(line["certificate"], 1);
    assert_eq!(line["site"], "690000880");
    assert_eq!(line["rule"], "positive");
    assert!(line["due"].as_str().unwrap().contains('T'));
    assert_eq!(w.install.spool_files("690000880").len(), 1);
}

#[test]
fn the_running_daemon_records_sil_pick_up_and_staff_deletion() {
    let w = world("[retention]\ncheck_interval = \"1s\"\n");
    w.dovecot
        .deliver(USER, "INBOX", &certificate(5, "750712184", "Négatif", 4000));
    let mut daemon = w.install.spawn();
    assert!(eventually(20, || w.install.files().len() == 3));
    let spool = w.install.spool_files("750712184");
    std::fs::remove_file(w.install.root.join(&spool[0])).unwrap();
    for f in w
        .install
        .files()
        .into_iter()
        .filter(|f| f.starts_with("sil/"))
    {
        std::fs::remove_file(w.install.root.join(f)).unwrap();
    }
    let seen = eventually(20, || {
        let kinds: Vec<String> = log_events(&w.install.root)
            .iter()
            .map(|e| e["event"].as_str().unwrap().to_string())
            .collect();
        kinds.contains(&"removed_by_site".to_string())
            && kinds.contains(&"handed_to_sil".to_string())
    });
    sigterm(&daemon);
    assert!(daemon.wait().unwrap().success());
    assert!(seen, "{:?}", log_events(&w.install.root));
    // Recorded once each.
    let events = log_events(&w.install.root);
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "handed_to_sil")
            .count(),
        1
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "removed_by_site")
            .count(),
        1
    );
}

#[test]
fn audit_verify_catches_an_edit_a_deletion_and_a_swap() {
    let w = three_delivered();
    let log = w.install.root.join("state/retention.log");
    let original = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    assert!(lines.len() >= 6);
    let out = w.install.command(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("{} records, chain intact", lines.len()))
    );

    let write = |ls: &[String]| std::fs::write(&log, ls.join("\n") + "\n").unwrap();
    let owned: Vec<String> = lines.iter().map(|l| l.to_string()).collect();

    let mut edited = owned.clone();
    edited[2] = edited[2].replace("\"result\":\"negative\"", "\"result\":\"positive\"");
    assert_ne!(edited[2], owned[2]);
    write(&edited);
    let out = w.install.command(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("record 4"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let mut deleted = owned.clone();
    deleted.remove(1);
    write(&deleted);
    let out = w.install.command(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("record 3"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let mut swapped = owned.clone();
    swapped.swap(3, 4);
    write(&swapped);
    let out = w.install.command(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("line 4"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The last record removed: only the ledger can tell.
    let truncated = owned[..owned.len() - 1].to_vec();
    write(&truncated);
    let out = w.install.command(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("missing"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    std::fs::write(&log, &original).unwrap();
    assert!(w.install.command(&["audit", "verify"]).status.success());
}

#[test]
fn audit_export_filters_and_answers_how_late() {
    let w = world("");
    w.dovecot
        .deliver(USER, "INBOX", &certificate(6, "690000880", "Négatif", 2000));
    w.dovecot
        .deliver(USER, "INBOX", &certificate(7, "750712184", "Négatif", 2000));
    assert!(w.install.run_once().status.success());
    make_due(&w);
    assert!(w.install.command(&["purge"]).status.success());

    let out = w
        .install
        .command(&["audit", "export", "--site", "750712184"]);
    assert!(out.status.success());
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!records.is_empty());
    assert!(records.iter().all(|r| r["site"] == "750712184"));
    let purged = records.iter().find(|r| r["event"] == "purged").unwrap();
    assert!(purged["lateness_seconds"].as_i64().unwrap() >= 60);

    let out = w.install.command(&["audit", "export", "--format", "csv"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut rows = text.lines();
    assert!(
        rows.next()
            .unwrap()
            .starts_with("seq,time,event,certificate,site")
    );
    assert!(text.lines().any(|l| l.contains(",purged,")));
    assert!(!text.contains("PATIENT"));

    let out = w
        .install
        .command(&["audit", "export", "--until", "2000-01-01"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let out = w
        .install
        .command(&["audit", "export", "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn audit_verify_checks_a_copied_log_alone_against_the_head_it_printed() {
    let w = three_delivered();
    let out = w.install.command(&["audit", "verify"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let head = printed_head(&out);

    // The auditor's copy, checked without the configuration or the ledger.
    let copy = w.install.root.join("copy-retention.log");
    std::fs::copy(w.install.root.join("state/retention.log"), &copy).unwrap();
    let verify = |extra: &[&str]| {
        let mut args = vec!["audit", "verify", "--log", copy.to_str().unwrap()];
        args.extend_from_slice(extra);
        std::process::Command::new(bin())
            .args(&args)
            .output()
            .unwrap()
    };
    let out = verify(&["--expect-head", &head]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains(&format!("head {head}")),
        "{}",
        stdout(&out)
    );

    let mut wrong = head.clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let out = verify(&["--expect-head", std::str::from_utf8(&wrong).unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("does NOT end with the expected head"));

    // One byte changed anywhere breaks it.
    let mut bytes = std::fs::read(&copy).unwrap();
    let at = bytes.iter().position(|b| *b == b'6').unwrap();
    bytes[at] = b'7';
    std::fs::write(&copy, bytes).unwrap();
    let out = verify(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
}

fn audit_guide() -> String {
    std::fs::read_to_string(project_root().join("docs/audit.md")).unwrap()
}

/// The auditors' verifier in docs/audit.md: a shell script made of `sha256sum` and `jq`.
fn shell_verifier(guide: &str) -> &str {
    guide
        .split("```sh\n# verify-retention-log")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the verifier in docs/audit.md")
}

/// The verifier of docs/audit.md, made of `sha256sum` and `jq` alone, agrees with
/// `audit verify` on a real log, and catches a changed byte.
#[test]
fn the_shell_verifier_of_the_audit_guide_agrees_with_audit_verify() {
    if std::process::Command::new("jq")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("jq is needed (scripts/install-test-deps installs it)");
    }
    let guide = audit_guide();
    let script = shell_verifier(&guide);
    let w = three_delivered();
    let out = w.install.command(&["audit", "verify"]);
    let head = printed_head(&out);
    let log = w.install.root.join("state/retention.log");
    let run = |file: &Path| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("verify-retention-log")
            .arg(file)
            .output()
            .unwrap()
    };
    let out = run(&log);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains(&format!("chain intact; head {head}")),
        "{}",
        stdout(&out)
    );

    let copy = w.install.root.join("edited.log");
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&copy, text.replacen("\"negative\"", "\"positive\"", 1)).unwrap();
    let out = run(&copy);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
}

/// docs/audit.md shows one example line per event of its table, and those lines are a real
/// chain: each is a record the program reads, `audit verify --log` and the guide's shell
/// verifier accept them and agree on the head.
#[test]
fn the_audit_guide_has_an_example_of_every_event_and_they_verify() {
    let guide = audit_guide();
    let examples = guide
        .split("```json\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the example lines in docs/audit.md");
    let table: std::collections::BTreeSet<String> = guide
        .split("## Every record")
        .nth(1)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect();
    let mut shown = std::collections::BTreeSet::new();
    for line in examples.lines() {
        let record: mss_dispatch::core::audit::Record =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        // Written back, a record is the same line: the examples are as the service writes.
        assert_eq!(serde_json::to_string(&record).unwrap(), line);
        shown.insert(record.body.event.unwrap().as_str().to_string());
    }
    assert_eq!(shown, table, "the events of the table and of the examples");
    assert!(table.len() >= 20, "{table:?}");

    let dir = workdir();
    let log = dir.path().join("examples.log");
    std::fs::write(&log, examples).unwrap();
    let out = std::process::Command::new(bin())
        .args(["audit", "verify", "--log"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let head = printed_head(&out);
    let script = shell_verifier(&guide);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("verify-retention-log")
        .arg(&log)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains(&format!("head {head}")),
        "{}",
        stdout(&out)
    );
}
