//! Operating the service: the systemd units (verified and rated by systemd-analyze), the
//! Debian package, live reload on SIGHUP, `status`, and the metrics file (checked by
//! promtool).

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{project_root as root, *};

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/install-test-deps installs it)"))
}

#[test]
fn the_units_pass_systemd_analyze_and_rate_ok() {
    let dir = tempfile::tempdir().unwrap();
    for unit in ["mss-dispatch.service", "mss-dispatch@.service"] {
        let text = std::fs::read_to_string(root().join("systemd").join(unit))
            .unwrap()
            .replace("/usr/bin/mss-dispatch", &bin().display().to_string());
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    std::fs::copy(
        dir.path().join("mss-dispatch@.service"),
        dir.path().join("mss-dispatch@lab.service"),
    )
    .unwrap();
    for unit in ["mss-dispatch.service", "mss-dispatch@lab.service"] {
        let path = dir.path().join(unit);
        let out = run(Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&path));
        assert!(out.status.success(), "{unit}: {}", stderr(&out));
        assert!(out.stderr.is_empty(), "{unit}: {}", stderr(&out));
        let out = run(Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&path));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let level: f64 = text
            .lines()
            .find_map(|l| l.split("exposure level for").nth(1))
            .and_then(|rest| rest.split(':').nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
        assert!(level <= 2.0, "{unit}: exposure {level}");
    }
    // Only the spool and state paths are writable.
    let unit = std::fs::read_to_string(root().join("systemd/mss-dispatch.service")).unwrap();
    assert!(unit.contains("ProtectSystem=strict"));
    let writable: Vec<&str> = unit
        .lines()
        .filter(|l| l.starts_with("ReadWritePaths="))
        .collect();
    assert_eq!(
        writable,
        ["ReadWritePaths=-/var/spool/mss-dispatch -/var/spool/sil"]
    );
    assert!(unit.contains("StateDirectory=mss-dispatch"));
    assert!(unit.contains("LoadCredential=imap-password:"));
    assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec="));
    assert!(unit.contains("ExecReload=/usr/bin/mss-dispatch reload --pid $MAINPID"));
}

#[test]
fn the_debian_package_holds_everything_with_its_modes() {
    let out = run(Command::new(root().join("scripts/package")).arg("--dev"));
    assert!(out.status.success(), "{}", stderr(&out));
    let deb = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .map(|l| root().join(l.trim()))
        .unwrap();
    let list = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let listing = String::from_utf8_lossy(&list.stdout).into_owned();
    let mode_of = |path: &str| -> String {
        listing
            .lines()
            .find(|l| l.ends_with(&format!(".{path}")))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .unwrap_or_else(|| panic!("{path} not in the package:\n{listing}"))
    };
    for (path, mode) in [
        ("/usr/bin/mss-dispatch", "-rwxr-xr-x"),
        ("/lib/systemd/system/mss-dispatch.service", "-rw-r--r--"),
        ("/lib/systemd/system/mss-dispatch@.service", "-rw-r--r--"),
        ("/usr/lib/sysusers.d/mss-dispatch.conf", "-rw-r--r--"),
        ("/usr/lib/tmpfiles.d/mss-dispatch.conf", "-rw-r--r--"),
        ("/etc/mss-dispatch/config.toml", "-rw-r-----"),
        ("/usr/share/doc/mss-dispatch/README.md", "-rw-r--r--"),
        (
            "/usr/share/doc/mss-dispatch/install-debian.md",
            "-rw-r--r--",
        ),
        ("/usr/share/doc/mss-dispatch/operations.md", "-rw-r--r--"),
        ("/usr/share/doc/mss-dispatch/audit.md", "-rw-r--r--"),
        ("/usr/share/doc/mss-dispatch/accueil.md", "-rw-r--r--"),
        ("/usr/share/doc/mss-dispatch/internals.md", "-rw-r--r--"),
        ("/usr/share/doc/mss-dispatch/NEWS.Debian.gz", "-rw-r--r--"),
        ("/usr/share/man/man8/mss-dispatch.8.gz", "-rw-r--r--"),
        ("/usr/share/man/man5/mss-dispatch.toml.5.gz", "-rw-r--r--"),
    ] {
        assert_eq!(mode_of(path), mode, "{path}");
    }
    // The manual pages render without a warning, and name what the units point to.
    let files = tempfile::tempdir().unwrap();
    assert!(
        run(Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(files.path()))
        .status
        .success()
    );
    for (page, expect) in [
        (
            "usr/share/man/man8/mss-dispatch.8.gz",
            "mss-dispatch audit report",
        ),
        (
            "usr/share/man/man5/mss-dispatch.toml.5.gz",
            "printer_ca_file",
        ),
    ] {
        let render = run(Command::new("sh").arg("-c").arg(format!(
            "zcat '{}' | groff -man -Tutf8 -ww 2>&1 >/dev/null | grep . && exit 1; \
             zcat '{}' | groff -man -Tutf8 -P-cbu",
            files.path().join(page).display(),
            files.path().join(page).display()
        )));
        let text = String::from_utf8_lossy(&render.stdout);
        assert!(render.status.success(), "{page}: {}", stderr(&render));
        assert!(text.contains(expect), "{page}: {text}");
    }
    let news = run(Command::new("sh").arg("-c").arg(format!(
        "zcat '{}'",
        files
            .path()
            .join("usr/share/doc/mss-dispatch/NEWS.Debian.gz")
            .display()
    )));
    let news = String::from_utf8_lossy(&news.stdout);
    assert!(
        news.starts_with(&format!("mss-dispatch ({}-1)", env!("CARGO_PKG_VERSION"))),
        "{news}"
    );
    let field = |name: &str| {
        let o = run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert!(field("Depends").contains("tzdata"), "{}", field("Depends"));
    let control = tempfile::tempdir().unwrap();
    assert!(
        run(Command::new("dpkg-deb")
            .arg("-e")
            .arg(&deb)
            .arg(control.path()))
        .status
        .success()
    );
    let conffiles = std::fs::read_to_string(control.path().join("conffiles")).unwrap();
    assert!(
        conffiles
            .lines()
            .any(|l| l == "/etc/mss-dispatch/config.toml")
    );
    let postinst = std::fs::read_to_string(control.path().join("postinst")).unwrap();
    assert!(
        postinst.contains("chgrp mss-dispatch /etc/mss-dispatch /etc/mss-dispatch/config.toml")
    );
    assert!(postinst.contains("systemd-sysusers mss-dispatch.conf"));
}

/// A Maildir installation with the demo's certificates, sampled today, polled every second.
fn maildir_install(tmp: &Path, extra: &str) -> Install {
    demo_install(
        &tmp.join("install"),
        &format!("poll_interval = \"1s\"\n{extra}"),
    )
}

fn status_json(install: &Install) -> serde_json::Value {
    let out = run(Command::new(bin())
        .args(["status", "--json", "--config"])
        .arg(&install.config));
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn status_reports_the_ledger_and_the_running_daemon() {
    let tmp = workdir();
    let install = maildir_install(tmp.path(), "");
    let before = status_json(&install);
    assert_eq!(before["running"], false);
    assert_eq!(before["quarantine_total"], 0);

    let mut daemon = install.spawn();
    // The first listing comes before its batch is written: wait for the pass to end.
    assert!(eventually(20, || {
        let s = status_json(&install);
        s["running"] == true
            && s["connected"] == true
            && s["last_poll"].is_string()
            && s["last_purge_pass"].is_string()
            && s["quarantine_total"] == 3
    }));
    let s = status_json(&install);
    assert_eq!(s["delivered_24h"]["690000880"], 2, "{s:#}");
    assert_eq!(s["delivered_24h"]["750712184"], 1, "{s:#}");
    assert_eq!(
        s["quarantine"]["unknown_site"], 2,
        "the Corsican site is not in this table"
    );
    assert_eq!(s["quarantine"]["unknown_result"], 1);
    assert_eq!(s["quarantine_total"], 3);
    assert!(s["next_purge_at"].is_string());
    assert!(s["last_purge_pass"].is_string());
    assert_eq!(s["clock_hold"], serde_json::Value::Null);
    sigterm(&daemon);
    assert!(daemon.wait().unwrap().success());
    let after = status_json(&install);
    assert_eq!(after["running"], false);
    assert_eq!(after["connected"], false);
    assert!(
        after["last_poll"].is_string(),
        "the last poll outlives the daemon: {after:#}"
    );

    let out = run(Command::new(bin())
        .args(["status", "--config"])
        .arg(&install.config));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("quarantine:  3 (unknown_result 1, unknown_site 2)"),
        "{text}"
    );
    assert!(
        !text.contains("LEROY") && !text.contains("2100100"),
        "no patient data: {text}"
    );
}

#[test]
fn the_metrics_file_is_valid_prometheus_text() {
    let tmp = workdir();
    let metrics = tmp.path().join("metrics/mss-dispatch.prom");
    std::fs::create_dir_all(metrics.parent().unwrap()).unwrap();
    let install = maildir_install(
        tmp.path(),
        &format!(
            "[metrics]\nfile = \"{}\"\ninterval = \"1s\"\n",
            metrics.display()
        ),
    );
    let mut daemon = install.spawn();
    let ready = eventually(20, || {
        std::fs::read_to_string(&metrics)
            .is_ok_and(|t| t.contains("mss_dispatch_delivered_total{site=\"690000880\"} 2"))
    });
    sigterm(&daemon);
    assert!(daemon.wait().unwrap().success());
    assert!(ready, "{:?}", std::fs::read_to_string(&metrics));
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        text.contains("mss_dispatch_quarantined_total{reason=\"unknown_site\"} 2"),
        "{text}"
    );
    assert!(text.contains("mss_dispatch_imap_up 1"));
    assert!(text.contains("mss_dispatch_held{class=\"negative\"}"));
    let out = run(Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&metrics).unwrap()));
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    for forbidden in ["LEROY", "Chlo", "2100100"] {
        assert!(!text.contains(forbidden));
    }
}

#[test]
fn sighup_applies_a_valid_configuration_and_keeps_the_running_one_otherwise() {
    let tmp = workdir();
    let root = tmp.path().to_path_buf();
    let pki = Pki::new(&root.join("pki"));
    let dovecot = Dovecot::start(&root.join("dovecot"), &pki, DovecotOptions::default());
    let n = 80;
    for i in 1..=n {
        dovecot.deliver(
            USER,
            "INBOX",
            &certificate(i, "690000880", "Négatif", 60_000),
        );
    }
    let install_root = root.join("install");
    std::fs::create_dir_all(&install_root).unwrap();
    let install = Install::new(&install_root, &login_mailbox(&dovecot, &pki, &root));
    let original = std::fs::read_to_string(&install.config).unwrap();
    let log_file = root.join("daemon.log");
    let log = || std::fs::read_to_string(&log_file).unwrap_or_default();
    let mut daemon = install.spawn_logged(&log_file);
    assert!(eventually(30, || !install
        .spool_files("690000880")
        .is_empty()));

    // Mid-drain: an invalid configuration is refused, the running one stays.
    std::fs::write(
        &install.config,
        original.replace("finess = \"690000880\"", "finess = \"690000881\""),
    )
    .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    assert!(
        eventually(60, || log().contains("the running one stays")),
        "{}",
        log()
    );
    // Then a valid one that adds a site.
    let added = format!(
        "{original}[[site]]\nfiness = \"010780054\"\nname = \"Bourg\"\nspool = \"{}/sites/010780054\"\n",
        install_root.display()
    );
    assert!(eventually(60, || install.spool_files("690000880").len() == n as usize));
    std::fs::write(&install.config, &added).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    assert!(
        eventually(10, || install_root.join("sites/010780054").is_dir()),
        "not reloaded"
    );
    dovecot.deliver(
        USER,
        "INBOX",
        &certificate(500, "010780054", "Négatif", 4_000),
    );
    let arrived = eventually(15, || install.spool_files("010780054").len() == 1);
    sigterm(&daemon);
    assert!(daemon.wait().unwrap().success());
    let log = log();
    assert!(arrived, "{log}");
    assert!(
        log.contains("site[0].finess"),
        "the invalid file's error is logged: {log}"
    );
    assert!(log.contains("the running one stays"), "{log}");
    assert!(log.contains("configuration reloaded"), "{log}");
    // Every certificate of the drain delivered once, and one IMAP session throughout.
    assert_eq!(install.spool_files("690000880").len(), n as usize);
    let logins = dovecot.log().matches("Login: user=<lbm>").count();
    assert_eq!(logins, 1, "the session was dropped:\n{}", dovecot.log());
}

#[test]
fn alerts_reach_the_log_at_warning_level() {
    let tmp = workdir();
    let root = tmp.path().to_path_buf();
    let pki = Pki::new(&root.join("pki"));
    let dovecot = Dovecot::start(
        &root.join("dovecot"),
        &pki,
        DovecotOptions {
            client_certs: true,
            ..Default::default()
        },
    );
    // A quarantined certificate (its FINESS is not in the table), and a client certificate
    // that expires in ten days.
    dovecot.deliver(
        CERT_USER,
        "INBOX",
        &certificate(1, "010780054", "Négatif", 2_000),
    );
    let mailbox = format!(
        "host = \"localhost\"\nport = {}\ntls = \"implicit\"\nca_file = \"{}\"\n\
         client_cert = \"{}\"\nclient_key = \"{}\"\nauth = \"external\"\npoll_interval = \"1s\"\n",
        dovecot.implicit_port,
        pki.ca.display(),
        pki.expiring_cert.display(),
        pki.expiring_key.display()
    );
    let install = Install::new(&root.join("install"), &mailbox);
    let log_file = root.join("daemon.log");
    let log = || std::fs::read_to_string(&log_file).unwrap_or_default();
    let mut daemon = install.spawn_logged(&log_file);
    assert!(
        eventually(20, || log()
            .contains("ALERT: certificates are waiting in quarantine")),
        "{}",
        log()
    );
    let s = status_json(&install);
    let expires: jiff::Timestamp = s["client_certificate_expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let days = (expires.as_second() - jiff::Timestamp::now().as_second()) / 86_400;
    assert!((8..=10).contains(&days), "{s:#}");

    sigterm(&daemon);
    assert!(daemon.wait().unwrap().success());
    let log = log();
    for alert in [
        "ALERT: the client certificate (mailbox.client_cert) expires within 30 days",
        "ALERT: certificates are waiting in quarantine",
    ] {
        let line = log.lines().find(|l| l.contains(alert)).unwrap();
        assert!(line.contains(" WARN "), "{line}");
    }
    assert!(
        !log.contains("PATIENT") && !log.contains("D000001"),
        "{log}"
    );
}

#[test]
fn no_successful_poll_for_ten_intervals_is_an_alert() {
    let tmp = workdir();
    let root = tmp.path().join("install");
    // The mailbox is out of reach from the start: its Maildir is not there.
    let install = Install::new(
        &root,
        &format!(
            "maildir = \"{}/absent\"\npoll_interval = \"1s\"\n",
            root.display()
        ),
    );
    let log_file = tmp.path().join("daemon.log");
    let log = || std::fs::read_to_string(&log_file).unwrap_or_default();
    let mut daemon = install.spawn_logged(&log_file);
    let alerted = eventually(30, || log().contains("ALERT: no successful poll"));
    let s = status_json(&install);
    sigterm(&daemon);
    assert!(daemon.wait().unwrap().success());
    assert!(alerted, "{}", log());
    let line = log()
        .lines()
        .find(|l| l.contains("ALERT: no successful poll"))
        .unwrap()
        .to_string();
    assert!(line.contains(" WARN "), "{line}");
    assert_eq!(s["running"], true);
    assert_eq!(s["connected"], false);
    assert_eq!(s["last_poll"], serde_json::Value::Null);
    assert!(s["last_error"].is_string(), "{s:#}");
}
