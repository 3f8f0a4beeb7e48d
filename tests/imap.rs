//! The daemon against a real Dovecot over TLS: authentication modes, trust failures, IDLE,
//! folders, flags and the quarantine reasons.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::*;

struct World {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    pki: Pki,
    dovecot: Dovecot,
}

fn world(opts: DovecotOptions) -> World {
    let tmp = workdir();
    let root = tmp.path().to_path_buf();
    let pki = Pki::new(&root.join("pki"));
    let dovecot = Dovecot::start(&root.join("dovecot"), &pki, opts);
    World {
        _tmp: tmp,
        root,
        pki,
        dovecot,
    }
}

#[test]
fn starttls_and_login_deliver_quarantine_and_ignore() {
    let w = world(DovecotOptions::default());
    w.dovecot
        .deliver(USER, "INBOX", &certificate(1, "690000880", "Négatif", 4000));
    w.dovecot
        .deliver(USER, "INBOX", &certificate(2, "010780054", "Négatif", 4000));
    w.dovecot.deliver(USER, "INBOX", &plain_mail(3));
    let install = Install::new(
        &w.root.join("install"),
        &login_mailbox(&w.dovecot, &w.pki, &w.root),
    );
    let out = install.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    let spool = install.spool_files("690000880");
    assert_eq!(spool.len(), 1, "{spool:?}");
    assert!(spool[0].ends_with(&delivered_name(1)));
    assert_eq!(
        w.dovecot.count(USER, "INBOX"),
        1,
        "only the plain mail stays"
    );
    assert_eq!(w.dovecot.count(USER, "SI-DEP.Traites"), 1);
    assert_eq!(w.dovecot.count(USER, "SI-DEP.Quarantaine"), 1);
    let quarantine: Vec<_> = install
        .files()
        .into_iter()
        .filter(|f| f.starts_with("quarantine/"))
        .collect();
    assert_eq!(quarantine.len(), 2, "{quarantine:?}");
    // No patient name in the log.
    let log = stderr(&out);
    assert!(!log.contains("PATIENT"), "{log}");
    assert!(!log.contains("D000001"), "{log}");
}

fn cert_mailbox(w: &World, port: u16, tls: &str, cert: &Path, key: &Path) -> String {
    format!(
        "host = \"localhost\"\nport = {port}\ntls = \"{tls}\"\nca_file = \"{}\"\n\
         client_cert = \"{}\"\nclient_key = \"{}\"\nauth = \"external\"\n",
        w.pki.ca.display(),
        cert.display(),
        key.display()
    )
}

#[test]
fn implicit_tls_with_client_certificate_and_external() {
    let w = world(DovecotOptions {
        client_certs: true,
        ..Default::default()
    });
    w.dovecot.deliver(
        CERT_USER,
        "INBOX",
        &certificate(7, "750712184", "Positif", 4000),
    );
    let mailbox = cert_mailbox(
        &w,
        w.dovecot.implicit_port,
        "implicit",
        &w.pki.client_cert,
        &w.pki.client_key,
    );
    let install = Install::new(&w.root.join("install"), &mailbox);
    let out = install.run_once();
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        w.dovecot.log()
    );
    assert_eq!(install.spool_files("750712184").len(), 1);
    assert!(
        install
            .files()
            .contains(&format!("sil/{}", delivered_name(7)))
    );
    assert_eq!(w.dovecot.count(CERT_USER, "INBOX"), 0);
}

#[test]
fn starttls_with_a_pkcs12_bundle_and_external() {
    let w = world(DovecotOptions {
        client_certs: true,
        ..Default::default()
    });
    w.dovecot.deliver(
        CERT_USER,
        "INBOX",
        &certificate(8, "690000880", "Négatif", 4000),
    );
    let mailbox = format!(
        "host = \"localhost\"\nport = {}\ntls = \"starttls\"\nca_file = \"{}\"\n\
         client_cert = \"{}\"\nclient_cert_password_file = \"{}\"\n",
        w.dovecot.starttls_port,
        w.pki.ca.display(),
        w.pki.client_p12.display(),
        w.pki.client_p12_password.display()
    );
    let install = Install::new(&w.root.join("install"), &mailbox);
    let out = install.run_once();
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        w.dovecot.log()
    );
    assert_eq!(install.spool_files("690000880").len(), 1);
}

#[test]
fn a_wrong_ca_is_a_clear_error_and_delivers_nothing() {
    let w = world(DovecotOptions::default());
    w.dovecot
        .deliver(USER, "INBOX", &certificate(1, "690000880", "Négatif", 4000));
    let mailbox = login_mailbox(&w.dovecot, &w.pki, &w.root).replace(
        &w.pki.ca.display().to_string(),
        &w.pki.other_ca.display().to_string(),
    );
    let install = Install::new(&w.root.join("install"), &mailbox);
    let started = Instant::now();
    let out = install.run_once();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a trust failure is not retried"
    );
    let err = stderr(&out);
    assert!(
        err.contains("not issued by an authority of mailbox.ca_file"),
        "{err}"
    );
    assert!(install.files().is_empty(), "{:?}", install.files());
    assert_eq!(w.dovecot.count(USER, "INBOX"), 1);
}

#[test]
fn an_expired_client_certificate_is_a_clear_error_and_delivers_nothing() {
    let w = world(DovecotOptions {
        client_certs: true,
        ..Default::default()
    });
    w.dovecot.deliver(
        CERT_USER,
        "INBOX",
        &certificate(1, "690000880", "Négatif", 4000),
    );
    let mailbox = cert_mailbox(
        &w,
        w.dovecot.implicit_port,
        "implicit",
        &w.pki.expired_cert,
        &w.pki.expired_key,
    );
    let install = Install::new(&w.root.join("install"), &mailbox);
    let out = install.run_once();
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(err.contains("mailbox.client_cert"), "{err}");
    assert!(err.contains("expired on 2020-01-01"), "{err}");
    assert!(install.files().is_empty());
    assert_eq!(w.dovecot.count(CERT_USER, "INBOX"), 1);
}

#[test]
fn a_wrong_password_is_a_clear_error() {
    let w = world(DovecotOptions::default());
    let install = Install::new(
        &w.root.join("install"),
        &login_mailbox(&w.dovecot, &w.pki, &w.root),
    );
    std::fs::write(w.root.join("imap-password"), "wrong\n").unwrap();
    let out = install.run_once();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("refused LOGIN authentication"), "{err}");
    assert!(
        !err.contains("wrong"),
        "the password must not be logged: {err}"
    );
}

#[test]
fn mail_that_is_not_ours_keeps_its_flags_and_is_not_read_twice() {
    let w = world(DovecotOptions::default());
    w.dovecot.deliver(USER, "INBOX", &plain_mail(1));
    w.dovecot.deliver(USER, "INBOX", &plain_mail(2));
    w.dovecot.set_flags(USER, "INBOX", "\\Flagged");
    let before = w.dovecot.flags(USER, "INBOX");
    assert_eq!(before.len(), 2);
    let install = Install::new(
        &w.root.join("install"),
        &login_mailbox(&w.dovecot, &w.pki, &w.root),
    );
    for _ in 0..2 {
        let out = install.run_once();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(
        w.dovecot.flags(USER, "INBOX"),
        before,
        "flags (\\Seen included) unchanged"
    );
    assert!(install.files().is_empty());
    // Remembered: the second pass did not screen them again.
    let ledger = rusqlite::Connection::open(w.root.join("install/state/ledger.sqlite")).unwrap();
    let ignored: i64 = ledger
        .query_row(
            "SELECT count(*) FROM message WHERE disposition = 'ignored'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ignored, 2);
}

#[test]
fn every_quarantine_reason_lands_in_the_quarantine_folder() {
    let w = world(DovecotOptions::default());
    // The corpus's quarantine cases, sampled yesterday (the committed ones are long expired).
    let fresh = w.root.join("fresh");
    let status = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/generate.py"))
        .arg("--fresh")
        .arg(&fresh)
        .status()
        .expect("python3");
    assert!(status.success());
    let reasons: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(fresh.join("reasons.json")).unwrap())
            .unwrap();
    assert!(reasons.len() >= 13);
    for file in reasons.keys() {
        w.dovecot
            .deliver(USER, "INBOX", &std::fs::read(fresh.join(file)).unwrap());
    }
    let mailbox = login_mailbox(&w.dovecot, &w.pki, &w.root) + "max_message_bytes = 300000\n";
    let install = Install::new(&w.root.join("install"), &mailbox);
    let out = install.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.dovecot.count(USER, "SI-DEP.Quarantaine"), reasons.len());
    assert_eq!(w.dovecot.count(USER, "INBOX"), 0);
    let mut got: Vec<String> = install
        .files()
        .into_iter()
        .filter(|f| f.starts_with("quarantine/") && f.ends_with(".json"))
        .map(|f| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(install.root.join(&f)).unwrap()).unwrap();
            v["reason"].as_str().unwrap().to_string()
        })
        .collect();
    got.sort();
    let mut want: Vec<String> = reasons.into_values().collect();
    want.sort();
    assert_eq!(got, want);
}

/// Mail that arrives while a pass is draining is announced by the server alongside the
/// pass's own commands, not again once the service idles: it must start another pass at once,
/// not wait for the safety poll.
#[test]
fn a_message_arriving_during_a_pass_is_not_left_to_the_safety_poll() {
    let w = world(DovecotOptions::default());
    let mailbox = login_mailbox(&w.dovecot, &w.pki, &w.root)
        .replace("poll_interval = \"2s\"", "poll_interval = \"5m\"");
    let install = Install::new(&w.root.join("install"), &mailbox);
    for n in 1..=120 {
        w.dovecot.deliver(
            USER,
            "INBOX",
            &certificate(n, "690000880", "Négatif", 20_000),
        );
    }
    let mut daemon = install.spawn();
    // The first pass has listed the folder once its first certificate is written.
    assert!(eventually(60, || !install
        .spool_files("690000880")
        .is_empty()));
    w.dovecot.deliver(
        USER,
        "INBOX",
        &certificate(500, "690000880", "Négatif", 4000),
    );
    let arrived = eventually(30, || install.spool_files("690000880").len() == 121);
    sigterm(&daemon);
    assert!(daemon.wait().unwrap().success());
    assert!(
        arrived,
        "{} of 121 delivered: the last one waits for the safety poll",
        install.spool_files("690000880").len()
    );
}

#[test]
fn a_message_appended_while_idling_arrives_within_seconds_and_sigterm_stops() {
    let w = world(DovecotOptions::default());
    let mailbox = login_mailbox(&w.dovecot, &w.pki, &w.root)
        .replace("poll_interval = \"2s\"", "poll_interval = \"5m\"");
    let install = Install::new(&w.root.join("install"), &mailbox);
    let mut daemon = install.spawn();
    // Ready once the folders exist.
    assert!(eventually(20, || w
        .dovecot
        .folders(USER)
        .iter()
        .any(|f| f == "SI-DEP.Traites")));
    std::thread::sleep(Duration::from_millis(500));
    let appended = Instant::now();
    w.dovecot.deliver(
        USER,
        "INBOX",
        &certificate(42, "690000880", "Négatif", 4000),
    );
    assert!(
        eventually(10, || install.spool_files("690000880").len() == 1),
        "not delivered while idling"
    );
    let latency = appended.elapsed();
    assert!(latency < Duration::from_secs(5), "took {latency:?}");
    sigterm(&daemon);
    let stopped = Instant::now();
    let status = daemon.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(stopped.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_second_run_on_the_same_state_refuses_to_start() {
    let w = world(DovecotOptions::default());
    let install = Install::new(
        &w.root.join("install"),
        &login_mailbox(&w.dovecot, &w.pki, &w.root),
    );
    let mut daemon = install.spawn();
    assert!(eventually(20, || w
        .root
        .join("install/state/run.lock")
        .exists()));
    std::thread::sleep(Duration::from_millis(300));
    let out = install.run_once();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("already working on the state directory"),
        "{}",
        stderr(&out)
    );
    sigterm(&daemon);
    assert!(daemon.wait().unwrap().success());
}

#[test]
fn without_move_and_uidplus_the_fallback_copies_and_flags() {
    let w = world(DovecotOptions {
        capability: Some("IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE".into()),
        ..Default::default()
    });
    w.dovecot
        .deliver(USER, "INBOX", &certificate(5, "690000880", "Négatif", 4000));
    let install = Install::new(
        &w.root.join("install"),
        &login_mailbox(&w.dovecot, &w.pki, &w.root),
    );
    for _ in 0..2 {
        let out = install.run_once();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(install.spool_files("690000880").len(), 1);
    assert_eq!(w.dovecot.count(USER, "SI-DEP.Traites"), 1);
    // Not expunged (a plain EXPUNGE could remove other people's mail): flagged \Deleted.
    let flags = w.dovecot.flags(USER, "INBOX");
    assert_eq!(flags.len(), 1);
    assert!(flags[0].1.contains("\\Deleted"), "{flags:?}");
}

#[test]
fn plain_with_the_password_from_the_systemd_credential() {
    let w = world(DovecotOptions::default());
    w.dovecot
        .deliver(USER, "INBOX", &certificate(9, "690000880", "Négatif", 4000));
    let creds = w.root.join("credentials");
    std::fs::create_dir_all(&creds).unwrap();
    write_secret(&creds.join("imap-password"), format!("{PASSWORD}\n"));
    let mailbox = format!(
        "host = \"localhost\"\nport = {}\ntls = \"implicit\"\nca_file = \"{}\"\nauth = \"plain\"\n\
         username = \"{USER}\"\n",
        w.dovecot.implicit_port,
        w.pki.ca.display()
    );
    let install = Install::new(&w.root.join("install"), &mailbox);
    let out = std::process::Command::new(bin())
        .args(["run", "--once", "--config"])
        .arg(&install.config)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(install.spool_files("690000880").len(), 1);
    // Without the credential and without password_file: a clear configuration error.
    let out = install.run_once();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("imap-password"), "{}", stderr(&out));
}

#[test]
fn files_and_folders_get_the_site_group_and_modes() {
    use std::os::unix::fs::MetadataExt;
    let w = world(DovecotOptions::default());
    w.dovecot.deliver(
        USER,
        "INBOX",
        &certificate(11, "690000880", "Négatif", 4000),
    );
    let install = Install::new(
        &w.root.join("install"),
        &login_mailbox(&w.dovecot, &w.pki, &w.root),
    );
    let text = std::fs::read_to_string(&install.config).unwrap().replacen(
        "name = \"Lyon Bellecour\"",
        "name = \"Lyon Bellecour\"\ngroup = \"mail\"",
        1,
    );
    std::fs::write(&install.config, text).unwrap();
    let out = install.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    let gid = nix::unistd::Group::from_name("mail")
        .unwrap()
        .unwrap()
        .gid
        .as_raw();
    let spool = install.spool_files("690000880");
    let file = install.root.join(&spool[0]);
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.gid()), (0o640, gid));
    // Day and site folders are group-writable by the site (staff delete what they handed
    // over); the shared parent belongs to the service, passable but not listable.
    let day = std::fs::metadata(file.parent().unwrap()).unwrap();
    assert_eq!((day.mode() & 0o777, day.gid()), (0o770, gid));
    let site = std::fs::metadata(install.root.join("sites/690000880")).unwrap();
    assert_eq!((site.mode() & 0o777, site.gid()), (0o770, gid));
    let shared = std::fs::metadata(install.root.join("sites")).unwrap();
    assert_eq!(shared.mode() & 0o777, 0o751);
    assert_ne!(
        shared.gid(),
        gid,
        "a shared parent never gets one site's group"
    );
}

#[test]
fn an_unknown_group_is_a_configuration_error() {
    let w = world(DovecotOptions::default());
    let install = Install::new(
        &w.root.join("install"),
        &login_mailbox(&w.dovecot, &w.pki, &w.root),
    );
    let text = std::fs::read_to_string(&install.config).unwrap().replacen(
        "name = \"Paris\"",
        "name = \"Paris\"\ngroup = \"no-such-group-xyz\"",
        1,
    );
    std::fs::write(&install.config, text).unwrap();
    let out = install.run_once();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("site[1].group: no group \"no-such-group-xyz\""),
        "{}",
        stderr(&out)
    );
}

/// What a dry run must not change on the server: the folders, every message's UID and flags
/// in each, and how many are `\Recent`.
type FolderState = (String, u64, Vec<(u32, String)>);

fn server_state(d: &Dovecot, user: &str) -> Vec<FolderState> {
    d.folders(user)
        .into_iter()
        .map(|f| {
            let recent = d.status(user, &f, "recent");
            let flags = d.flags(user, &f);
            (f, recent, flags)
        })
        .collect()
}

fn inspect_mailbox(install: &Install, extra: &[&str]) -> std::process::Output {
    std::process::Command::new(bin())
        .args(["inspect", "--mailbox", "--config"])
        .arg(&install.config)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn inspect_mailbox_decides_fifty_messages_and_changes_nothing() {
    let w = world(DovecotOptions::default());
    for n in 1..=50u32 {
        let msg = match n % 10 {
            0 => plain_mail(n),
            1 => certificate(n, "010780054", "Négatif", 3000),
            2 => certificate(n, "690000880", "Ininterprétable", 3000),
            k if k % 2 == 0 => certificate(n, "690000880", "Négatif", 3000),
            _ => certificate(n, "750712184", "Positif", 3000),
        };
        w.dovecot.deliver(USER, "INBOX", &msg);
    }
    // Flags people set: they must stay exactly as they are.
    w.dovecot.add_flags(USER, "INBOX", "\\Seen", "1:5");
    w.dovecot.add_flags(USER, "INBOX", "\\Flagged", "7,10");
    w.dovecot.deliver(USER, "Archives", &plain_mail(99));
    let install = Install::new(
        &w.root.join("install"),
        &login_mailbox(&w.dovecot, &w.pki, &w.root),
    );
    let before = server_state(&w.dovecot, USER);
    let inbox = before.iter().find(|(f, _, _)| f == "INBOX").unwrap();
    assert_eq!(inbox.1, 50, "the messages start \\Recent: {before:?}");
    let files = install.files();

    let out = inspect_mailbox(&install, &["--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 50);
    let count = |key: &str, value: &str| lines.iter().filter(|l| l[key] == value).count();
    assert_eq!(count("decision", "deliver"), 35);
    assert_eq!(count("reason", "unknown_site"), 5);
    assert_eq!(count("reason", "unknown_result"), 5);
    assert_eq!(count("reason", "sender_not_allowed"), 5);
    // The file keys and the UID, in UID order.
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["uid"], i as u64 + 1, "{l}");
        for key in [
            "file", "decision", "reason", "site", "dossier", "result", "purge_at",
        ] {
            assert!(l.get(key).is_some(), "{key} missing: {l}");
        }
    }
    let delivered = lines.iter().find(|l| l["decision"] == "deliver").unwrap();
    assert!(
        delivered["file_name"]
            .as_str()
            .unwrap()
            .starts_with("PATIENT")
    );
    // Patient fields on standard output only.
    let err = stderr(&out);
    assert!(!err.contains("PATIENT"), "{err}");

    assert_eq!(server_state(&w.dovecot, USER), before);
    assert_eq!(install.files(), files);
    assert!(
        !install.root.join("state").exists(),
        "the state directory was created"
    );

    // The text form and --limit.
    let out = inspect_mailbox(&install, &["--limit", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.starts_with("UID 1: quarantine (unknown_site"),
        "{text}"
    );
    assert!(text.contains("UID 2: quarantine (unknown_result"), "{text}");
    assert!(text.contains("UID 3: deliver to 750712184"), "{text}");
    assert_eq!(server_state(&w.dovecot, USER), before);

    // Negative control: a session that selects the folder does clear \Recent, so the
    // comparison above can see it.
    let out = install.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.dovecot.status(USER, "INBOX", "recent"), 0);
}

#[test]
fn inspect_mailbox_with_a_client_certificate_and_external() {
    let w = world(DovecotOptions {
        client_certs: true,
        ..Default::default()
    });
    w.dovecot.deliver(
        CERT_USER,
        "INBOX",
        &certificate(7, "750712184", "Positif", 4000),
    );
    let mailbox = cert_mailbox(
        &w,
        w.dovecot.implicit_port,
        "implicit",
        &w.pki.client_cert,
        &w.pki.client_key,
    );
    let install = Install::new(&w.root.join("install"), &mailbox);
    let before = server_state(&w.dovecot, CERT_USER);
    let out = inspect_mailbox(&install, &["--json"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        w.dovecot.log()
    );
    let line: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(line["decision"], "deliver");
    assert_eq!(line["site"], "750712184");
    assert_eq!(line["result"], "positive");
    assert_eq!(server_state(&w.dovecot, CERT_USER), before);
    assert_eq!(w.dovecot.folders(CERT_USER), ["INBOX"], "no folder created");
}

/// Regression: at `RUST_LOG=trace` the IMAP library wrote the `LOGIN` line (the password) and
/// whole messages to the log.
#[test]
fn a_delivery_at_trace_level_logs_no_secret_and_no_patient_data() {
    let w = world(DovecotOptions::default());
    for n in 1..=3 {
        w.dovecot
            .deliver(USER, "INBOX", &certificate(n, "690000880", "Négatif", 3000));
    }
    w.dovecot
        .deliver(USER, "INBOX", &certificate(4, "010780054", "Positif", 3000));
    let install = Install::new(
        &w.root.join("install"),
        &login_mailbox(&w.dovecot, &w.pki, &w.root),
    );
    for filter in [
        "trace",
        "trace,async_imap=trace,imap_proto=trace,rustls=trace",
    ] {
        let out = std::process::Command::new(bin())
            .args(["run", "--once", "--config"])
            .arg(&install.config)
            .env("RUST_LOG", filter)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let log = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
        assert!(log.contains(" DEBUG "), "verbose logs expected: {log}");
        for secret in [
            PASSWORD,
            "PATIENT1",
            "PATIENT4",
            "280017512345603",
            "D000001",
            "D000004",
            "01/01/1980",
        ] {
            assert!(
                !log.contains(secret),
                "{secret} in the log at {filter}:\n{log}"
            );
        }
    }
    assert_eq!(install.spool_files("690000880").len(), 3);
}
