//! Resolving quarantine with a real Dovecot, the running daemon and the real binary: `retry`
//! after a missing site is added, `release --result negative` (72-hour rule), a release that
//! would still quarantine (nothing changes), `discard` (no copy and no personal field left),
//! `list` without names, and the retention log naming who did what with which override.

use std::path::Path;

use crate::support::*;

const QUARANTINE: &str = "SI-DEP.Quarantaine";
const PROCESSED: &str = "SI-DEP.Traites";

fn listed(config: &Path) -> Vec<serde_json::Value> {
    let out = command(config, &["quarantine", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn id_for(list: &[serde_json::Value], reason: &str) -> i64 {
    list.iter()
        .find(|e| e["reason"] == reason)
        .and_then(|e| e["id"].as_i64())
        .unwrap_or_else(|| panic!("no {reason} in {list:?}"))
}

fn bytes_under(dir: &Path) -> Vec<u8> {
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files
        .iter()
        .flat_map(|f| std::fs::read(dir.join(f)).unwrap_or_default())
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A Dovecot holding these certificates (number, FINESS, result), and an installation on it.
fn world(certificates: &[(u32, &str, &str)], config_extra: &str) -> World {
    let w = World::new("", config_extra);
    for (n, finess, result) in certificates {
        w.dovecot
            .deliver(USER, "INBOX", &certificate(*n, finess, result, 3_000));
    }
    w
}

#[test]
fn retry_release_and_discard_while_the_daemon_runs() {
    // 1: a site the table lacks; 2: a result nobody foresaw; 3: to be discarded.
    let w = world(
        &[
            (1, "010780054", "Négatif"),
            (2, "690000880", "Ininterprétable"),
            (3, "690000880", "Douteux"),
        ],
        "[retention]\ncheck_interval = \"1s\"\n",
    );
    let (dovecot, install) = (&w.dovecot, &w.install);
    let root = w.tmp.path().to_path_buf();
    let install_root = install.root.clone();
    let config = install.config.clone();
    let log_file = root.join("daemon.log");
    let mut daemon = install.spawn_logged(&log_file);
    assert!(
        eventually(30, || listed(&config).len() == 3),
        "{}",
        std::fs::read_to_string(&log_file).unwrap_or_default()
    );
    assert!(eventually(10, || dovecot.count(USER, QUARANTINE) == 3));

    // The list names no patient.
    let out = command(&config, &["quarantine", "list"]);
    let text = stdout(&out);
    assert!(
        text.contains("unknown_site") && text.contains("unknown_result"),
        "{text}"
    );
    let list = listed(&config);
    for forbidden in ["PATIENT", "D000001", "D000002", "Test"] {
        assert!(!text.contains(forbidden), "{text}");
        assert!(!format!("{list:?}").contains(forbidden), "{list:?}");
    }
    let unknown_site = id_for(&list, "unknown_site");
    assert_eq!(list[0]["site"], "010780054");
    assert!(list[0]["purge_at"].is_string() && list[0]["sampled_on"].is_string());
    let ids: Vec<i64> = list.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    let (unknown_result, to_discard) = (ids[1], ids[2]);

    // `show` is where the person deciding sees the patient.
    let out = command(
        &config,
        &["quarantine", "show", &unknown_result.to_string()],
    );
    let text = stdout(&out);
    assert!(
        text.contains("PATIENT2") && text.contains("Ininterprétable"),
        "{text}"
    );
    assert!(
        text.contains("neither clearly positive nor negative"),
        "{text}"
    );

    // Without an override, the unknown result would still be quarantined: nothing changes.
    let out = command(
        &config,
        &["quarantine", "release", &unknown_result.to_string()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("still be quarantined: unknown_result"),
        "{}",
        stderr(&out)
    );
    assert_eq!(listed(&config).len(), 3);

    // With --result negative: delivered, on the 72-hour rule from the sampling time.
    let out = command(
        &config,
        &[
            "quarantine",
            "release",
            &unknown_result.to_string(),
            "--result",
            "negative",
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("negative rule"), "{}", stdout(&out));
    assert!(
        !stdout(&out).contains("PATIENT"),
        "only `show` names the patient"
    );
    assert_eq!(install.spool_files("690000880").len(), 1);
    let db = rusqlite::Connection::open(install_root.join("state/ledger.sqlite")).unwrap();
    let (state, rule, sampled, due): (String, String, i64, i64) = db
        .query_row(
            "SELECT state, rule, sampled_at, purge_at FROM certificate WHERE id = ?1",
            [unknown_result],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!((state.as_str(), rule.as_str()), ("delivered", "negative"));
    assert_eq!(due - sampled, 72 * 3600);
    assert!(
        !install_root
            .join(format!("quarantine/{unknown_result}.eml"))
            .exists()
    );

    // The missing site is added: `retry` releases its certificate, and only that one.
    let text = std::fs::read_to_string(&config).unwrap()
        + &format!(
            "[[site]]\nfiness = \"010780054\"\nname = \"Bourg\"\nspool = \"{}/sites/010780054\"\n",
            install_root.display()
        );
    std::fs::write(&config, text).unwrap();
    let out = command(&config, &["quarantine", "retry", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let released: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["released"] == true).collect();
    assert_eq!(released.len(), 1, "{lines:?}");
    assert_eq!(released[0]["id"], unknown_site);
    assert_eq!(released[0]["site"], "010780054");
    assert_eq!(install.spool_files("010780054").len(), 1);
    assert_eq!(listed(&config).len(), 1);

    // Discard: no copy left anywhere, no personal field in the ledger.
    let out = command(&config, &["quarantine", "discard", &to_discard.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(listed(&config).is_empty());
    assert!(
        !install_root
            .join(format!("quarantine/{to_discard}.eml"))
            .exists()
    );
    assert!(
        !install_root
            .join(format!("quarantine/{to_discard}.json"))
            .exists()
    );

    // The running daemon moves the released server copies and deletes the discarded one.
    let settled = eventually(20, || {
        dovecot.count(USER, QUARANTINE) == 0 && dovecot.count(USER, PROCESSED) == 2
    });
    sigterm(&daemon);
    assert!(daemon.wait().unwrap().success());
    assert!(
        settled,
        "quarantine {} processed {}\n{}",
        dovecot.count(USER, QUARANTINE),
        dovecot.count(USER, PROCESSED),
        std::fs::read_to_string(&log_file).unwrap_or_default()
    );
    let state = bytes_under(&install_root.join("state"));
    let quarantine = bytes_under(&install_root.join("quarantine"));
    for needle in ["PATIENT3", "D000003"] {
        assert!(
            !contains(&state, needle),
            "{needle} left in the state directory"
        );
        assert!(
            !contains(&quarantine, needle),
            "{needle} left in the quarantine"
        );
    }
    // The log keeps nobody's name.
    let daemon_log = std::fs::read_to_string(&log_file).unwrap_or_default();
    assert!(!daemon_log.contains("PATIENT"), "{daemon_log}");

    // Each action is in the retention log with its user and override, and the chain holds.
    let events = log_events(&install_root);
    let event = |name: &str, id: i64| {
        events
            .iter()
            .find(|e| e["event"] == name && e["certificate"] == id)
            .unwrap_or_else(|| panic!("no {name} for {id}: {events:?}"))
            .clone()
    };
    let user = std::process::Command::new("id")
        .arg("-un")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap();
    let released = event("released", unknown_result);
    assert_eq!(released["overrides"], "result=negative");
    assert_eq!(released["reason"], "unknown_result");
    assert_eq!(released["rule"], "negative");
    assert!(
        released["user"].as_str().unwrap().starts_with(&user),
        "{released}"
    );
    assert!(event("delivered", unknown_result)["destination"] == "spool");
    let retried = event("released", unknown_site);
    assert!(retried.get("overrides").is_none(), "{retried}");
    assert!(retried["user"].as_str().unwrap().starts_with(&user));
    let discarded = event("discarded", to_discard);
    assert!(discarded["user"].as_str().unwrap().starts_with(&user));
    assert_eq!(event("purged", to_discard)["lateness_seconds"], 0);
    event("server_copy_purged", to_discard);
    let out = command(&config, &["audit", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_site_override_and_a_sampling_override_without_a_daemon() {
    let w = world(&[(7, "010780054", "Positif")], "");
    let (dovecot, install) = (&w.dovecot, &w.install);
    let install_root = install.root.clone();
    let out = install.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    let list = listed(&install.config);
    let id = id_for(&list, "unknown_site");

    // A bad override is a usage error naming the option.
    let out = command(
        &install.config,
        &[
            "quarantine",
            "release",
            &id.to_string(),
            "--site",
            "690000881",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--site"), "{}", stderr(&out));

    // Routed to Lyon, sampled at a time the operator gives: with no daemon running, the
    // command moves the server copy itself.
    let out = command(
        &install.config,
        &[
            "quarantine",
            "release",
            &id.to_string(),
            "--site",
            "690000880",
            "--sampled-at",
            &jiff::ZonedDateTime::now()
                .in_tz("Europe/Paris")
                .unwrap()
                .checked_sub(jiff::SignedDuration::from_hours(2))
                .unwrap()
                .strftime("%d/%m/%Y %H:%M")
                .to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "{}{}\n{}",
        stdout(&out),
        stderr(&out),
        stdout(&command(
            &install.config,
            &["quarantine", "show", &id.to_string()]
        ))
    );
    assert!(
        stdout(&out).contains("server copy moved"),
        "{}",
        stdout(&out)
    );
    assert_eq!(install.spool_files("690000880").len(), 1);
    assert_eq!(dovecot.count(USER, QUARANTINE), 0);
    assert_eq!(dovecot.count(USER, PROCESSED), 1);
    let events = log_events(&install_root);
    let released = events
        .iter()
        .find(|e| e["event"] == "released")
        .expect("released");
    let overrides = released["overrides"].as_str().unwrap();
    assert!(
        overrides.starts_with("site=690000880, sampled_at="),
        "{overrides}"
    );
    assert_eq!(released["site"], "690000880");
    assert_eq!(released["rule"], "positive");
    // A second release of the same certificate is refused: it is not in quarantine any more.
    let out = command(&install.config, &["quarantine", "release", &id.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not in quarantine"),
        "{}",
        stderr(&out)
    );
}

/// Every path under `dir`, itself included.
fn tree(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(tree(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn run_as_root_a_command_acts_as_the_service_account() {
    use std::os::unix::fs::MetadataExt;
    let tmp = workdir();
    let root = tmp.path().join("install");
    let install = demo_install(&root, "");
    let out = install.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    // The installation belongs to the service account (here: nobody).
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    for p in tree(&root) {
        if p != install.config {
            nix::unistd::chown(&p, Some(nobody.uid), Some(nobody.gid)).unwrap();
        }
    }
    let id = id_for(&listed(&install.config), "unknown_result");
    let out = command(
        &install.config,
        &[
            "quarantine",
            "release",
            &id.to_string(),
            "--result",
            "positive",
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let out = command(&install.config, &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let owned_by_root: Vec<_> = tree(&root)
        .into_iter()
        .filter(|p| *p != install.config && std::fs::metadata(p).unwrap().uid() == 0)
        .collect();
    assert!(owned_by_root.is_empty(), "{owned_by_root:?}");
    let events = log_events(&root);
    let released = events.iter().find(|e| e["event"] == "released").unwrap();
    assert!(
        released["user"]
            .as_str()
            .unwrap()
            .starts_with("root (uid 0)"),
        "the person who ran it, not the account it acted as: {released}"
    );
}
