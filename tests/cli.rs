//! The binary as an operator runs it: exit codes, every configuration error at once, the
//! `inspect --json` contract and the spot checks of the certificate core.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::{bin, certificate, project_root as root, stderr, stdout};

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

#[test]
fn shipped_example_configurations_are_valid() {
    let mut n = 0;
    for entry in std::fs::read_dir(root().join("config")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let o = run(&["check-config", "--config", path.to_str().unwrap()]);
            assert_eq!(
                o.status.code(),
                Some(0),
                "{}: {}",
                path.display(),
                stderr(&o)
            );
            assert!(stdout(&o).contains("configuration is valid"));
            n += 1;
        }
    }
    assert!(n >= 1, "no example configuration in config/");
}

#[test]
fn three_mistakes_are_listed_together_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(root().join("config/mss-dispatch.toml"))
        .unwrap()
        .replacen("finess = \"690000880\"", "finess = \"690000881\"", 1)
        .replacen(
            "dir = \"/var/lib/mss-dispatch\"",
            "dir = \"var/lib/mss-dispatch\"",
            1,
        )
        .replacen("negative = \"72h\"", "negative = \"4d\"", 1);
    std::fs::write(&file, text).unwrap();
    let o = run(&["check-config", "--config", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("3 errors"), "{err}");
    let f = file.display().to_string();
    assert!(
        err.contains(&format!(
            "{f}: site[0].finess (690000881 \"Lyon Bellecour\"): \"690000881\" is not a valid FINESS"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{f}: state.dir: \"var/lib/mss-dispatch\" is relative"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{f}: retention.negative: \"4d\" is longer than the legal maximum"
        )),
        "{err}"
    );
}

#[test]
fn missing_configuration_file_is_a_configuration_error() {
    let o = run(&["check-config", "--config", "/nonexistent/mss.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/mss.toml: cannot read"));
}

fn inspect(files: &[&str]) -> Vec<Value> {
    let mut args = vec!["inspect", "--config", "fixtures/config.toml", "--json"];
    let paths: Vec<String> = files
        .iter()
        .map(|f| format!("fixtures/corpus/{f}.eml"))
        .collect();
    args.extend(paths.iter().map(String::as_str));
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn inspect_spot_checks() {
    let out = inspect(&[
        "negative_plain",
        "positive_month_end",
        "result_non_detecte",
        "finess_invalid",
    ]);
    assert_eq!(out.len(), 4);
    assert_eq!(out[0]["purge_at"], "2021-11-01T09:00:00+01:00");
    assert_eq!(out[0]["sampled_at"], "2021-10-29T10:00:00+02:00");
    assert_eq!(out[1]["purge_at"], "2022-02-28T00:00:00+01:00");
    assert_eq!(out[1]["result"], "positive");
    assert_eq!(out[2]["result"], "negative");
    assert_eq!(out[3]["decision"], "quarantine");
    assert_eq!(out[3]["reason"], "finess_invalid");
}

#[test]
fn inspect_json_has_the_contract_keys() {
    for line in inspect(&["negative_plain", "unknown_site", "sender_not_allowed"]) {
        for key in [
            "file",
            "decision",
            "reason",
            "site",
            "dossier",
            "result",
            "sampled_at",
            "purge_at",
            "file_name",
        ] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
    }
}

#[test]
fn inspect_touches_nothing_and_keeps_names_off_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let msg = dir.path().join("m.eml");
    std::fs::copy(
        root().join("fixtures/corpus/subject_folded_words.eml"),
        &msg,
    )
    .unwrap();
    let before = std::fs::read(&msg).unwrap();
    let o = run(&[
        "inspect",
        "--config",
        "fixtures/config.toml",
        msg.to_str().unwrap(),
        "/nonexistent/x.eml",
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "an unreadable file is a runtime failure"
    );
    assert_eq!(std::fs::read(&msg).unwrap(), before);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    let err = stderr(&o);
    assert!(err.contains("/nonexistent/x.eml: cannot read"));
    for name in ["DIAYE", "Marie", "2100004"] {
        assert!(!err.contains(name), "patient data on stderr: {err}");
    }
    // Sampled in 2021: the service would record it as expired, for its site.
    let out = stdout(&o);
    assert!(out.contains("expired (already due on arrival)") && out.contains("for 690000880"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(
        run(&["inspect", "--config", "x.toml"]).status.code(),
        Some(2)
    );
    assert_eq!(run(&["no-such-command"]).status.code(), Some(2));
    let o = run(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("mss-dispatch "));
}

/// A configuration whose mailbox files are all in `dir`: a CA, a key and a password file.
fn files_config(dir: &Path, ca: &str, key_mode: u32, pass_mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("ca.pem"), ca).unwrap();
    std::fs::write(dir.join("client.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("client.key"), cert.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("pass"), "x\n").unwrap();
    for (name, mode) in [("client.key", key_mode), ("pass", pass_mode)] {
        std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let d = dir.display();
    let text = format!(
        "[mailbox]\nhost = \"imap.example.mssante.fr\"\nca_file = \"{d}/ca.pem\"\n\
         client_cert = \"{d}/client.pem\"\nclient_key = \"{d}/client.key\"\nauth = \"login\"\n\
         username = \"lbm\"\npassword_file = \"{d}/pass\"\n\
         [state]\ndir = \"{d}/state\"\n[quarantine]\ndir = \"{d}/q\"\n\
         [[site]]\nfiness = \"690000880\"\nname = \"Lyon\"\nspool = \"{d}/sites/690000880\"\n"
    );
    let file = dir.join("mss.toml");
    std::fs::write(&file, text).unwrap();
    file
}

/// Regression: a world-readable password file was accepted, and `check-config` said "valid"
/// where `run` then refused the CA.
#[test]
fn check_config_reads_the_mailbox_files_as_run_does_and_refuses_loose_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["ca".into()])
        .unwrap()
        .cert
        .pem();
    let file = files_config(dir.path(), &ca, 0o600, 0o600);
    let ok = run(&["check-config", "--config", file.to_str().unwrap()]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));

    for (key_mode, pass_mode, key) in [
        (0o644, 0o600, "client_key"),
        (0o600, 0o604, "password_file"),
    ] {
        let file = files_config(dir.path(), &ca, key_mode, pass_mode);
        for args in [
            vec!["check-config", "--config", file.to_str().unwrap()],
            vec!["run", "--once", "--config", file.to_str().unwrap()],
        ] {
            let o = run(&args);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
            let err = stderr(&o);
            assert!(err.contains(&format!("mailbox.{key}")), "{err}");
            assert!(err.contains("open to every user"), "{err}");
        }
    }

    let file = files_config(dir.path(), "not a certificate\n", 0o600, 0o600);
    let o = run(&["check-config", "--config", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("mailbox.ca_file"), "{}", stderr(&o));
}

/// As root, check-config looks at the files and groups as the service's account will have
/// them: a site group it is not in (with the exact `usermod` and `SupplementaryGroups=`
/// lines), a folder it cannot enter, a file it cannot read (with the command to fix each).
#[test]
fn check_config_checks_groups_and_files_as_the_service_account() {
    use std::os::unix::fs::PermissionsExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to create accounts");
        return;
    }
    let mut accounts = crate::support::Accounts::new();
    let own = accounts.group("svc");
    let site = accounts.group("site");
    let svc = accounts.user("svc", &own, &[]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let ca = rcgen::generate_simple_self_signed(vec!["ca".into()])
        .unwrap()
        .cert
        .pem();
    let file = files_config(dir.path(), &ca, 0o600, 0o600);
    let text = std::fs::read_to_string(&file).unwrap() + &format!("group = \"{site}\"\n");
    std::fs::write(&file, text).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let check = || {
        run(&[
            "check-config",
            "--config",
            file.to_str().unwrap(),
            "--account",
            &svc,
        ])
    };

    // The folder is 0700 root: nothing below it can be read; the account is not in the group.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let o = check();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    for expected in [
        format!("the service account {svc} is not in the site group {site}"),
        format!("`usermod -aG {site} {svc}`"),
        "`systemctl edit mss-dispatch`".to_string(),
        format!("`SupplementaryGroups={site}`"),
        format!("mailbox.ca_file: the service account {svc} cannot reach {d}/ca.pem"),
        format!("the folder {d} is closed to it (mode 0700, owner root, group root)"),
        format!("`chgrp {svc} {d} && chmod g+x {d}`"),
    ] {
        assert!(err.contains(&expected), "{expected}\n{err}");
    }

    // The folder opened: the key and the password file, root's 0600, are what is left.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = stderr(&check());
    for key in ["client_key", "password_file"] {
        assert!(
            err.contains(&format!(
                "mailbox.{key}: the service account {svc} cannot read"
            )),
            "{key}\n{err}"
        );
    }
    assert!(
        err.contains(&format!(
            "`chgrp {svc} {d}/client.key && chmod 0640 {d}/client.key`"
        )),
        "{err}"
    );
    assert!(!err.contains("mailbox.ca_file"), "{err}");
    assert!(!err.contains("mailbox.client_cert:"), "{err}");

    // Fixed as the messages say: valid.
    for name in ["client.key", "pass"] {
        let p = dir.path().join(name);
        nix::unistd::chown(
            &p,
            None,
            Some(nix::unistd::Group::from_name(&svc).unwrap().unwrap().gid),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    let o = Command::new("usermod")
        .args(["-aG", &site, &svc])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = check();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Two configurations side by side must not share a folder: check-config (as root) warns,
/// naming both keys and the other file.
#[test]
fn check_config_warns_when_another_configuration_shares_a_folder() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the check runs as root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let write = |name: &str, state: &str, quarantine: &str, spool: &str| {
        let text = format!(
            "[mailbox]\nmaildir = \"{d}/Maildir\"\n[state]\ndir = \"{state}\"\n\
             [quarantine]\ndir = \"{quarantine}\"\n[[site]]\nfiness = \"690000880\"\n\
             name = \"Lyon\"\nspool = \"{spool}\"\n"
        );
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let a = write(
        "a.toml",
        &format!("{d}/a"),
        &format!("{d}/q"),
        &format!("{d}/sites/a"),
    );
    write(
        "b.toml",
        &format!("{d}/b"),
        &format!("{d}/q"),
        &format!("{d}/sites/a/inner"),
    );
    let o = run(&["check-config", "--config", a.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "warnings only: {}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "warning: {d}/a.toml: quarantine.dir {d}/q is the same folder as quarantine.dir \
             {d}/q of {d}/b.toml"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "site[0].spool {d}/sites/a overlaps site[0].spool {d}/sites/a/inner of {d}/b.toml"
        )),
        "{err}"
    );
    assert!(!err.contains("state.dir"), "{err}");

    // Folders of their own: no warning.
    write(
        "b.toml",
        &format!("{d}/b"),
        &format!("{d}/qb"),
        &format!("{d}/sites/b"),
    );
    let o = run(&["check-config", "--config", a.to_str().unwrap()]);
    assert!(!stderr(&o).contains("must not share"), "{}", stderr(&o));
}

#[test]
fn inspect_says_expired_where_the_service_would_record_it_so() {
    // The corpus was sampled in 2021: long due today.
    let out = inspect(&["negative_plain"]);
    assert_eq!(out[0]["decision"], "deliver");
    assert_eq!(out[0]["expired_on_arrival"], true);
    let o = run(&[
        "inspect",
        "--config",
        "fixtures/config.toml",
        "fixtures/corpus/negative_plain.eml",
    ]);
    assert!(
        stdout(&o).contains("expired (already due on arrival)"),
        "{}",
        stdout(&o)
    );
    // Sampled yesterday: delivered.
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh.eml");
    std::fs::write(&fresh, certificate(1, "690000880", "Négatif", 2_000)).unwrap();
    let o = run(&[
        "inspect",
        "--config",
        "fixtures/config.toml",
        fresh.to_str().unwrap(),
    ]);
    assert!(
        stdout(&o).contains(": deliver to 690000880"),
        "{}",
        stdout(&o)
    );
    let o = run(&[
        "inspect",
        "--config",
        "fixtures/config.toml",
        "--json",
        fresh.to_str().unwrap(),
    ]);
    let line: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(line["expired_on_arrival"], false);
}
