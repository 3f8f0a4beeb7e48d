//! Local faults, with a real Dovecot or a Maildir, the real binary and real file systems:
//! a full disk, read-only spool and state directories (tmpfs mounts, as root), a ledger
//! deleted, emptied or corrupted, a retention log cut, deleted or torn, the server killed in
//! the middle of a fetch, the service killed in the middle of a purge, `audit verify` during
//! a drain, and operator commands during a first start. In every case nothing is lost or
//! duplicated, every failure shows in `status` and as an ALERT, and the retention log is
//! verifiable or said to be broken, never silently re-based.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::*;

const PROCESSED: &str = "SI-DEP.Traites";

fn root_only() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: mounting file systems needs root");
    false
}

/// A tmpfs mounted on a folder, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount: {}", stderr(&out));
        Mount(dir.to_path_buf())
    }

    /// The folder again, read only, on top of itself: what was open stays writable through
    /// its handle, anything opened anew is not. The read-only remount is refused while a file
    /// opened anew through the bind is open for writing (the service writing its state in
    /// between): tried again until it is closed. The bind is undone even if that fails.
    fn read_only_bind(dir: &Path) -> Mount {
        let out = Command::new("mount")
            .arg("--bind")
            .arg(dir)
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount --bind: {}", stderr(&out));
        let mount = Mount(dir.to_path_buf());
        for tries in 1.. {
            let out = Command::new("mount")
                .args(["-o", "remount,bind,ro"])
                .arg(dir)
                .output()
                .unwrap();
            if out.status.success() {
                break;
            }
            let busy = stderr(&out).contains("busy");
            assert!(
                busy && tries < 100,
                "mount remount,bind,ro: {}",
                stderr(&out)
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        mount
    }

    fn remount(&self, options: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(out.status.success(), "remount: {}", stderr(&out));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

fn status(install: &Install) -> serde_json::Value {
    let out = install.command(&["status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn pdfs(install: &Install, site: &str) -> Vec<String> {
    install
        .spool_files(site)
        .into_iter()
        .filter(|f| f.ends_with(".pdf"))
        .collect()
}

/// `n` certificates for Lyon of about `bytes` each, numbered from `from`.
fn load(w: &World, from: u32, n: u32, bytes: usize) {
    for i in from..from + n {
        w.dovecot.deliver(
            USER,
            "INBOX",
            &certificate(i, "690000880", "Négatif", bytes),
        );
    }
}

/// Lyon's spool holds exactly certificates `1..=n`, once each, and nothing half-written.
fn exactly(install: &Install, n: u32) {
    let files = install.files();
    assert!(
        files.iter().all(|f| !f.contains(".part")),
        "temporary files: {files:?}"
    );
    let mut got: Vec<String> = pdfs(install, "690000880")
        .into_iter()
        .map(|f| f.rsplit('/').next().unwrap().to_string())
        .collect();
    got.sort();
    let mut want: Vec<String> = (1..=n).map(delivered_name).collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn a_full_spool_disk_is_a_local_failure_and_everything_arrives_once_space_is_freed() {
    if !root_only() {
        return;
    }
    let w = World::new("", "");
    let disk = Mount::tmpfs(&w.install.root.join("sites"), "96k");
    load(&w, 1, 6, 40_000);
    let log_path = w.install.root.join("daemon.log");
    let _daemon = w.install.spawn_logged(&log_path);
    assert!(
        eventually(30, || {
            status(&w.install)["last_error_class"] == "disk_full"
                && log(&log_path).contains("ALERT: delivery failed")
        }),
        "{:#}\n{}",
        status(&w.install),
        log(&log_path)
    );
    let s = status(&w.install);
    assert!(
        s["last_error"].as_str().unwrap().contains("/sites"),
        "the folder, in status: {s:#}"
    );
    assert!(
        !s["last_error"].as_str().unwrap().contains("PATIENT"),
        "{s:#}"
    );
    disk.remount("size=20m");
    assert!(
        eventually(90, || pdfs(&w.install, "690000880").len() == 6),
        "{:?}\n{}",
        w.install.files(),
        log(&log_path)
    );
    assert!(eventually(10, || w.dovecot.count(USER, "INBOX") == 0));
    exactly(&w.install, 6);
    assert!(eventually(30, || status(&w.install)["last_error"].is_null()));
}

#[test]
fn a_read_only_spool_is_reported_and_delivered_once_writable_again() {
    if !root_only() {
        return;
    }
    let w = World::new("", "");
    let disk = Mount::tmpfs(&w.install.root.join("sites"), "20m");
    disk.remount("ro");
    load(&w, 1, 3, 4000);
    let log_path = w.install.root.join("daemon.log");
    let _daemon = w.install.spawn_logged(&log_path);
    assert!(
        eventually(30, || status(&w.install)["last_error_class"]
            == "permission"),
        "{:#}\n{}",
        status(&w.install),
        log(&log_path)
    );
    assert!(log(&log_path).contains("ALERT"), "{}", log(&log_path));
    assert_eq!(w.dovecot.count(USER, "INBOX"), 3, "nothing acknowledged");
    disk.remount("rw");
    assert!(eventually(90, || pdfs(&w.install, "690000880").len() == 3));
    exactly(&w.install, 3);
}

#[test]
fn a_read_only_state_directory_is_reported_and_the_service_resumes() {
    if !root_only() {
        return;
    }
    let w = World::new("", "");
    load(&w, 1, 2, 4000);
    let log_path = w.install.root.join("daemon.log");
    let mut daemon = w.install.spawn_logged(&log_path);
    assert!(eventually(30, || pdfs(&w.install, "690000880").len() == 2));
    let state = w.install.root.join("state");

    // While it runs: nothing can be recorded, so nothing is taken from the server; the
    // failure is said, and the messages wait.
    let ro = Mount::read_only_bind(&state);
    load(&w, 3, 2, 4000);
    assert!(
        eventually(30, || log(&log_path).contains("ALERT: local failure")),
        "{}",
        log(&log_path)
    );
    assert_eq!(w.dovecot.count(USER, "INBOX"), 2, "nothing acknowledged");
    let s = status(&w.install);
    assert!(s["problems"].to_string().contains("not writable"), "{s:#}");
    drop(ro);
    load(&w, 5, 1, 4000);
    assert!(eventually(30, || pdfs(&w.install, "690000880").len() == 5));
    sigterm(&daemon);
    assert!(daemon.wait().unwrap().success());
    let out = w.install.command(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = std::fs::read_to_string(state.join("retention.log")).unwrap();
    assert_eq!(
        text.matches("\"event\":\"delivered\"").count(),
        5,
        "every record written once the directory was writable again"
    );

    // At start: a clear refusal, said by status; then it starts.
    let ro = Mount::read_only_bind(&state);
    load(&w, 6, 1, 4000);
    let out = w.install.run_once();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&state.display().to_string()),
        "{}",
        stderr(&out)
    );
    assert!(
        status(&w.install)["problems"]
            .to_string()
            .contains("not writable")
    );
    drop(ro);
    let out = w.install.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    exactly(&w.install, 6);
}

#[test]
fn a_deleted_emptied_or_corrupted_ledger_stops_the_service_with_what_to_do() {
    let w = World::new("", "");
    load(&w, 1, 2, 4000);
    let out = w.install.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    let state = w.install.root.join("state");
    let ledger = state.join("ledger.sqlite");
    let backup = w.install.root.join("ledger.backup");
    std::fs::copy(&ledger, &backup).unwrap();
    load(&w, 3, 1, 4000);
    for fault in ["deleted", "emptied", "corrupted"] {
        match fault {
            "deleted" => std::fs::remove_file(&ledger).unwrap(),
            "emptied" => std::fs::write(&ledger, b"").unwrap(),
            _ => std::fs::write(&ledger, b"this is not a SQLite database, not at all").unwrap(),
        }
        let _ = std::fs::remove_file(state.join("ledger.sqlite-wal"));
        let _ = std::fs::remove_file(state.join("ledger.sqlite-shm"));
        let out = w.install.run_once();
        assert_eq!(out.status.code(), Some(2), "{fault}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("ledger"), "{fault}: {err}");
        assert!(err.contains("reseal --new-ledger"), "{fault}: {err}");
        assert!(err.contains("backup"), "{fault}: {err}");
        let s = status(&w.install);
        assert!(
            s["problems"]
                .to_string()
                .contains("the service refuses to start"),
            "{fault}: {s:#}"
        );
        assert_eq!(w.dovecot.count(USER, "INBOX"), 1, "{fault}: nothing taken");
    }
    // Restored from the backup: the service carries on, nothing lost or twice.
    std::fs::copy(&backup, &ledger).unwrap();
    let out = w.install.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    exactly(&w.install, 3);
    let out = w.install.command(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Or, with no backup, a new ledger started deliberately: the break is in the log.
    std::fs::remove_file(&ledger).unwrap();
    let out = w
        .install
        .command(&["audit", "reseal", "--new-ledger", "--reason", "disk lost"]);
    assert!(out.status.success(), "{}", stderr(&out));
    load(&w, 4, 1, 4000);
    let out = w.install.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    exactly(&w.install, 4);
    let out = w.install.command(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("a new segment started"), "{text}");
}

#[test]
fn a_cut_deleted_or_torn_retention_log_is_never_silently_rebased() {
    let w = World::new("", "");
    load(&w, 1, 3, 4000);
    let log_path = w.install.root.join("daemon.log");
    let mut daemon = w.install.spawn_logged(&log_path);
    assert!(eventually(30, || pdfs(&w.install, "690000880").len() == 3));
    let rlog = w.install.root.join("state/retention.log");
    let verify = |w: &World| {
        let out = w.install.command(&["audit", "verify"]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // The three deliveries in the log (it is appended at the end of the pass, after the
    // files are in place), and the log intact.
    assert!(eventually(10, || {
        log(&rlog).matches("\"event\":\"delivered\"").count() == 3 && verify(&w).0
    }));

    // Cut: the last two records removed.
    let text = std::fs::read_to_string(&rlog).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&rlog, lines[..lines.len() - 2].join("\n") + "\n").unwrap();
    load(&w, 4, 1, 4000);
    assert!(
        eventually(30, || pdfs(&w.install, "690000880").len() == 4),
        "deliveries go on"
    );
    assert!(
        eventually(20, || status(&w.install)["retention_log"]
            .as_str()
            .unwrap()
            .starts_with("broken")),
        "{:#}",
        status(&w.install)
    );
    assert!(eventually(20, || log(&log_path)
        .contains("ALERT: retention log broken")));
    let (ok, out) = verify(&w);
    assert!(!ok, "a cut log verified: {out}");
    assert_eq!(
        std::fs::read_to_string(&rlog).unwrap().lines().count(),
        lines.len() - 2,
        "nothing was appended to a broken log"
    );
    let out = w
        .install
        .command(&["audit", "reseal", "--reason", "test: cut"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (ok, out) = verify(&w);
    assert!(ok, "{out}");
    assert!(
        out.contains("records are missing") || out.contains("are missing"),
        "{out}"
    );
    // A copy holds as many records as it has lines, not the last one's number.
    let copy = w.install.root.join("retention-copy.log");
    std::fs::copy(&rlog, &copy).unwrap();
    let held = std::fs::read_to_string(&copy).unwrap().lines().count();
    let out = Command::new(bin())
        .args(["audit", "verify", "--log"])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains(&format!(": {held} records, chain intact")),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(eventually(20, || status(&w.install)["retention_log"] == "ok"));

    // Deleted.
    std::fs::remove_file(&rlog).unwrap();
    load(&w, 5, 1, 4000);
    assert!(eventually(30, || pdfs(&w.install, "690000880").len() == 5));
    assert!(eventually(20, || status(&w.install)["retention_log"]
        .as_str()
        .unwrap()
        .starts_with("broken")));
    assert!(!rlog.exists() || !verify(&w).0);
    let out = w
        .install
        .command(&["audit", "reseal", "--reason", "test: deleted"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(verify(&w).0);

    // Torn at the last line, as a crash mid-write leaves it: repaired alone, and said so.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&rlog)
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"seq\":99999,\"prev\":\"00").unwrap();
    drop(f);
    load(&w, 6, 1, 4000);
    assert!(eventually(30, || pdfs(&w.install, "690000880").len() == 6));
    // The cut line is removed first, then its records and the `log_repaired` one are
    // appended: the log verifies in between.
    assert!(
        eventually(20, || verify(&w).0
            && std::fs::read_to_string(&rlog)
                .unwrap()
                .contains("\"event\":\"log_repaired\"")),
        "{}",
        verify(&w).1
    );
    assert_eq!(status(&w.install)["retention_log"], "ok");
    sigterm(&daemon);
    assert!(daemon.wait().unwrap().success());
    exactly(&w.install, 6);
}

#[test]
fn dovecot_killed_mid_fetch_loses_and_duplicates_nothing() {
    let mut w = World::new("", "");
    load(&w, 1, 60, 60_000);
    let log_path = w.install.root.join("daemon.log");
    let mut daemon = w.install.spawn_logged(&log_path);
    assert!(eventually(60, || !pdfs(&w.install, "690000880").is_empty()));
    w.dovecot.kill();
    assert!(
        eventually(30, || status(&w.install)["connected"] == false),
        "{:#}",
        status(&w.install)
    );
    w.dovecot.start_again();
    assert!(
        eventually(120, || pdfs(&w.install, "690000880").len() == 60),
        "{}",
        log(&log_path)
    );
    assert!(eventually(30, || w.dovecot.count(USER, "INBOX") == 0));
    sigterm(&daemon);
    assert!(daemon.wait().unwrap().success());
    exactly(&w.install, 60);
    assert_eq!(w.dovecot.count(USER, PROCESSED), 60);
}

/// A Maildir installation holding `n` certificates for Lyon, sampled yesterday.
fn maildir(root: &Path, n: u32, extra: &str) -> Install {
    let maildir = root.join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    for i in 1..=n {
        std::fs::write(
            maildir.join("new").join(format!("{i}.local")),
            certificate(i, "690000880", "Négatif", 2000),
        )
        .unwrap();
    }
    Install::new(
        root,
        &format!(
            "maildir = \"{}\"\npoll_interval = \"1s\"\n{extra}",
            maildir.display()
        ),
    )
}

fn make_due(install: &Install) {
    let db = rusqlite::Connection::open(install.root.join("state/ledger.sqlite")).unwrap();
    let past = jiff::Timestamp::now().as_second() - 60;
    db.execute("UPDATE certificate SET purge_at = ?1", [past])
        .unwrap();
}

#[test]
fn the_service_killed_mid_purge_purges_everything_once_restarted() {
    let tmp = workdir();
    let install = maildir(
        &tmp.path().join("install"),
        800,
        "[retention]\ncheck_interval = \"1s\"\n",
    );
    // The config's [retention] table sits after [mailbox]: moved to the end of the file.
    let text = std::fs::read_to_string(&install.config).unwrap();
    let (mailbox, rest) = text
        .split_once("[retention]\ncheck_interval = \"1s\"\n")
        .unwrap();
    std::fs::write(
        &install.config,
        format!("{mailbox}{rest}[retention]\ncheck_interval = \"1s\"\n"),
    )
    .unwrap();
    let out = install.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(pdfs(&install, "690000880").len(), 800);
    make_due(&install);
    for _ in 0..3 {
        let mut daemon = install.spawn();
        // Kill it while it removes files, when it gets there.
        let _ = eventually(20, || pdfs(&install, "690000880").len() < 800);
        sigkill(&mut daemon);
    }
    let mut daemon = install.spawn();
    assert!(
        eventually(60, || pdfs(&install, "690000880").is_empty()),
        "{:?}",
        pdfs(&install, "690000880").len()
    );
    assert!(eventually(20, || {
        install.command(&["purge", "--dry-run"]).stdout.is_empty()
    }));
    sigterm(&daemon);
    assert!(daemon.wait().unwrap().success());
    let out = install.command(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // One purge record per certificate.
    let text = std::fs::read_to_string(install.root.join("state/retention.log")).unwrap();
    let mut purged: Vec<i64> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["event"] == "purged")
        .map(|r| r["certificate"].as_i64().unwrap())
        .collect();
    purged.sort_unstable();
    let n = purged.len();
    purged.dedup();
    assert_eq!((n, purged.len()), (800, 800));
}

#[test]
fn audit_verify_never_raises_a_false_alarm_during_a_drain() {
    let tmp = workdir();
    let install = maildir(&tmp.path().join("install"), 600, "");
    let mut daemon = install.spawn();
    let mut runs = 0;
    while runs < 200 {
        let out = install.command(&["audit", "verify"]);
        assert!(
            out.status.success(),
            "run {runs}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
        runs += 1;
    }
    assert!(eventually(60, || pdfs(&install, "690000880").len() == 600));
    sigterm(&daemon);
    assert!(daemon.wait().unwrap().success());
}

#[test]
fn operator_commands_during_a_first_start_never_fail_nor_create_the_ledger() {
    let tmp = workdir();
    let install = maildir(&tmp.path().join("install"), 50, "");
    let config = install.config.clone();
    let commands: Vec<Vec<&str>> = vec![
        vec!["status", "--json"],
        vec!["purge", "--dry-run"],
        vec!["audit", "export"],
        vec!["quarantine", "list"],
    ];
    let mut daemon = install.spawn();
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let args: Vec<String> = commands[i % 4].iter().map(|s| s.to_string()).collect();
            let config = config.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis((i as u64 * 7) % 300));
                let out = Command::new(bin())
                    .args(&args)
                    .arg("--config")
                    .arg(&config)
                    .output()
                    .unwrap();
                (args, out)
            })
        })
        .collect();
    for h in handles {
        let (args, out) = h.join().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            stderr(&out),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert!(eventually(60, || pdfs(&install, "690000880").len() == 50));
    sigterm(&daemon);
    assert!(daemon.wait().unwrap().success());
    let out = install.command(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
