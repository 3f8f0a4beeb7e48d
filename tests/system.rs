//! The package and its units under a real systemd (PID 1 in a container), installed as a
//! lab's IT department installs it: every command of `docs/install-debian.md`, in order (the
//! package built by `scripts/package`, the IGC-Santé trust checked with `openssl s_client`,
//! the organisation's PKCS#12 bundle, the site groups, a Samba share, time sync, the
//! configuration, the dry run, going live), then delivery into the hardened spool, reload,
//! the watchdog, stop, the template unit, the hardening as the running unit sees it, an
//! upgrade and `apt purge`. A Debian bookworm root is made once with debootstrap (cached under
//! `target/system/`) and copied for each test; the container shares the host's loopback, so
//! the test's Dovecot is reachable from inside. Needs root and systemd-nspawn (skipped with a
//! message otherwise).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::support::*;

fn target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/system")
}

/// Why this suite cannot run here, if it cannot.
fn cannot_run() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("it needs root".into());
    }
    for tool in ["systemd-nspawn", "debootstrap", "nsenter"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("{tool} is missing (scripts/install-test-deps)"));
        }
    }
    None
}

/// The Debian root every container is copied from, made once (about 1.5 minutes).
fn base() -> PathBuf {
    let dir = target();
    std::fs::create_dir_all(&dir).unwrap();
    let base = dir.join("base");
    let lock = std::fs::File::create(dir.join("base.lock")).unwrap();
    lock.lock().unwrap();
    if !base.join("usr/lib/systemd/systemd").exists() {
        let tmp = dir.join("base.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        let out = Command::new("debootstrap")
            .args([
                "--variant=minbase",
                "--include=systemd,systemd-sysv,dbus,tzdata",
                "bookworm",
            ])
            .arg(&tmp)
            .arg("http://deb.debian.org/debian")
            .output()
            .unwrap();
        assert!(out.status.success(), "debootstrap: {}", stderr(&out));
        std::fs::rename(&tmp, &base).unwrap();
    }
    base
}

/// The package, built once for this run (`scripts/package --dev`).
fn package() -> PathBuf {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(root.join("scripts/package"))
            .arg("--dev")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let line = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .trim()
            .to_string();
        root.join(line)
    })
    .clone()
}

/// A booted container: a copy of the base root with systemd as its PID 1.
struct Container {
    root: PathBuf,
    nspawn: Child,
    leader: i32,
}

impl Container {
    fn boot(name: &str) -> Container {
        let root = target().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let out = Command::new("cp")
            .arg("-a")
            .arg(base())
            .arg(&root)
            .output()
            .unwrap();
        assert!(out.status.success(), "cp: {}", stderr(&out));
        // What an installed Debian has and debootstrap's minimal root lacks.
        std::fs::write(
            root.join("etc/hosts"),
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        )
        .unwrap();
        let nspawn = Command::new("systemd-nspawn")
            .arg("-D")
            .arg(&root)
            .args(["--register=no", "--keep-unit", "-b", "--console=pipe"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut c = Container {
            root,
            leader: 0,
            nspawn,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while c.leader == 0 && Instant::now() < deadline {
            c.leader = child_of(c.nspawn.id() as i32).unwrap_or(0);
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(c.leader > 0, "the container did not start");
        let up = eventually(60, || {
            let s = c.sh("systemctl is-system-running");
            let state = String::from_utf8_lossy(&s.stdout).trim().to_string();
            state == "running" || state == "degraded"
        });
        assert!(
            up,
            "systemd did not come up: {}",
            c.out("systemctl --failed --no-pager")
        );
        c
    }

    /// Runs a shell script inside, as root.
    fn sh(&self, script: &str) -> Output {
        self.sh_input(script, "")
    }

    /// Runs a shell script inside, as root, with `input` as its standard input (what the
    /// administrator types).
    fn sh_input(&self, script: &str, input: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new("nsenter")
            .args([
                "-t",
                &self.leader.to_string(),
                "-a",
                "/bin/sh",
                "-c",
                script,
            ])
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("HOME", "/root")
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // A script that does not read its input may exit first: a broken pipe is fine.
        let _ = stdin.write_all(input.as_bytes());
        drop(stdin);
        child.wait_with_output().unwrap()
    }

    /// Runs a shell script inside; it must succeed; its standard output.
    fn ok(&self, script: &str) -> String {
        let o = self.sh(script);
        assert!(
            o.status.success(),
            "{script}\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            stderr(&o)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Whatever a script says, success or not (for messages).
    fn out(&self, script: &str) -> String {
        let o = self.sh(script);
        format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o))
    }

    /// A path inside, as seen from the host.
    fn path(&self, inside: &str) -> PathBuf {
        self.root.join(inside.trim_start_matches('/'))
    }

    fn write(&self, inside: &str, text: &str, mode: u32) {
        let p = self.path(inside);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn install_package(&self) -> String {
        let deb = package();
        std::fs::copy(&deb, self.path("/root/mss-dispatch.deb")).unwrap();
        self.ok("cd /root && apt-get install -y ./mss-dispatch.deb 2>&1")
    }

    fn journal(&self, unit: &str) -> String {
        self.out(&format!("journalctl -u {unit} --no-pager -o cat"))
    }

    fn prop(&self, unit: &str, name: &str) -> String {
        self.ok(&format!("systemctl show -p {name} --value {unit}"))
            .trim()
            .to_string()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.leader > 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.leader),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The first child process of `pid`.
fn child_of(pid: i32) -> Option<i32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        // pid (comm) state ppid …: the command may hold spaces, not a closing parenthesis.
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<i32>().ok());
        if ppid == Some(pid) {
            return Some(p);
        }
    }
    None
}

/// `stat` inside: mode, owner, group.
fn stat(c: &Container, path: &str) -> String {
    c.ok(&format!("stat -c '%a %U %G' '{path}'"))
        .trim()
        .to_string()
}

/// The configuration an IT department writes: the mailbox on the test Dovecot (STARTTLS,
/// LOGIN with the systemd credential), two sites, one with its group.
fn config(d: &Dovecot, folder: &str, state: &str, spool: &str, quarantine: &str) -> String {
    format!(
        r#"[mailbox]
host = "localhost"
port = {port}
tls = "starttls"
ca_file = "/etc/mss-dispatch/igc-sante-ca.pem"
auth = "login"
username = "{USER}"
folder = "{folder}"
processed_folder = "{folder}-Traites"
quarantine_folder = "{folder}-Quarantaine"
poll_interval = "2s"

[state]
dir = "{state}"

[retention]
check_interval = "2s"

[quarantine]
dir = "{quarantine}"

[[site]]
finess = "690000880"
name = "Lyon Bellecour"
spool = "{spool}/690000880"
group = "lbm-bellecour"

[[site]]
finess = "750712184"
name = "Paris Montparnasse"
spool = "{spool}/750712184"
"#,
        port = d.starttls_port
    )
}

/// The configuration without the given tables (`[state]`): each is a header and one key.
fn without_sections(text: &str, tables: &[&str]) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if tables.contains(&line.trim()) {
            lines.next();
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn skip() -> bool {
    match cannot_run() {
        Some(why) => {
            eprintln!("skipped: the system suite cannot run here: {why}");
            true
        }
        None => false,
    }
}

fn files(c: &Container, dir: &str) -> Vec<String> {
    c.out(&format!(
        "find '{dir}' -type f -name '*.pdf' 2>/dev/null | sort"
    ))
    .lines()
    .map(str::to_string)
    .collect()
}

/// The shell blocks (```sh) of a Markdown page, in order.
fn sh_blocks(page: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in page.lines() {
        match &mut current {
            None if line.trim_start() == "```sh" => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_start() == "```" => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    assert!(current.is_none(), "a ```sh block is not closed");
    blocks
}

#[test]
fn installed_as_docs_install_debian_says_it_runs_reloads_restarts_stops_upgrades_and_purges() {
    if skip() {
        return;
    }
    let tmp = workdir();
    let pki = Pki::new(&tmp.path().join("pki"));
    let dovecot = Dovecot::start(
        &tmp.path().join("dovecot"),
        &pki,
        DovecotOptions {
            client_certs: true,
            ..Default::default()
        },
    );
    let c = Container::boot("main");

    // Mail waiting before the installation: the dry run shows it, going live delivers it.
    for n in 1..=3 {
        dovecot.deliver(
            CERT_USER,
            "INBOX",
            &certificate(n, "690000880", "Négatif", 3000),
        );
    }
    dovecot.deliver(
        CERT_USER,
        "INBOX",
        &certificate(4, "750712184", "Positif", 3000),
    );
    dovecot.deliver(
        CERT_USER,
        "INBOX",
        &certificate(5, "010780054", "Négatif", 3000),
    );

    // What the administrator has in hand before starting: the package, the IGC-Santé
    // authorities (here the test's), the organisation's bundle and its password.
    std::fs::copy(package(), c.path("/root/mss-dispatch_0.0.0_amd64.deb")).unwrap();
    std::fs::create_dir_all(c.path("/root/igc-sante")).unwrap();
    std::fs::copy(&pki.ca, c.path("/root/igc-sante/ca.pem")).unwrap();
    std::fs::copy(&pki.client_p12, c.path("/root/lbm.p12")).unwrap();
    let p12_password = std::fs::read_to_string(&pki.client_p12_password).unwrap();

    // 1. Every command of docs/install-debian.md, in order, the operator's server being the
    //    test's Dovecot.
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/install-debian.md"),
    )
    .unwrap();
    let port = dovecot.starttls_port.to_string();
    let page = page
        .replace("imap.mssante.example.fr:143", &format!("localhost:{port}"))
        .replace("\"imap.mssante.example.fr\"", "\"localhost\"")
        .replace("port = 143", &format!("port = {port}"));
    let blocks = sh_blocks(&page);
    assert!(blocks.len() >= 8, "{blocks:?}");
    let mut dry = String::new();
    for block in &blocks {
        let input = if block.contains("cat > /etc/mss-dispatch/lbm.p12.password") {
            p12_password.as_str()
        } else {
            ""
        };
        let o = c.sh_input(&format!("set -e\n{block}"), input);
        assert!(
            o.status.success(),
            "docs/install-debian.md:\n{block}\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            stderr(&o)
        );
        if block.contains("inspect --mailbox") {
            dry = String::from_utf8_lossy(&o.stdout).into_owned();
        }
        if block.contains("apt-get install -y /root/mss-dispatch") {
            // What the package made, with the modes the page describes.
            assert_eq!(
                c.prop("mss-dispatch", "ActiveState"),
                "inactive",
                "not started by the install"
            );
            c.ok("getent passwd mss-dispatch");
            assert_eq!(stat(&c, "/etc/mss-dispatch"), "750 root mss-dispatch");
            assert_eq!(
                stat(&c, "/etc/mss-dispatch/config.toml"),
                "640 root mss-dispatch"
            );
            assert_eq!(stat(&c, "/etc/mss-dispatch/imap-password"), "600 root root");
            assert_eq!(
                stat(&c, "/var/spool/mss-dispatch"),
                "711 mss-dispatch mss-dispatch"
            );
            assert_eq!(
                stat(&c, "/var/spool/mss-dispatch/sites"),
                "711 mss-dispatch mss-dispatch"
            );
            assert_eq!(
                stat(&c, "/var/spool/mss-dispatch/quarantine"),
                "750 mss-dispatch mss-dispatch"
            );
            assert_eq!(stat(&c, "/var/spool/sil"), "711 mss-dispatch mss-dispatch");
        }
    }
    // The dry run decided each waiting message and changed nothing before going live.
    assert_eq!(dry.lines().count(), 5, "{dry}");
    assert!(dry.contains("unknown_site"), "{dry}");

    // check-config names a site group the account is not in, with the command to run.
    c.ok("gpasswd -d mss-dispatch lbm-montparnasse >/dev/null");
    let check = c.sh("mss-dispatch check-config --config /etc/mss-dispatch/config.toml");
    assert_eq!(check.status.code(), Some(2));
    assert!(
        stderr(&check).contains("usermod -aG lbm-montparnasse mss-dispatch")
            && stderr(&check).contains("SupplementaryGroups=lbm-montparnasse"),
        "{}",
        stderr(&check)
    );
    c.ok("usermod -aG lbm-montparnasse mss-dispatch");
    let text = std::fs::read_to_string(c.path("/etc/mss-dispatch/config.toml")).unwrap();

    // 2. Running: READY=1, certificates in the hardened spool, the journal without patients.
    assert_eq!(c.prop("mss-dispatch", "ActiveState"), "active");
    assert_eq!(c.prop("mss-dispatch", "SubState"), "running");
    assert!(
        eventually(30, || files(&c, "/var/spool/mss-dispatch/sites").len() == 4),
        "{}",
        c.journal("mss-dispatch")
    );
    let lyon = files(&c, "/var/spool/mss-dispatch/sites/690000880");
    assert_eq!(stat(&c, &lyon[0]), "640 mss-dispatch lbm-bellecour");
    let day = Path::new(&lyon[0]).parent().unwrap().display().to_string();
    assert_eq!(stat(&c, &day), "770 mss-dispatch lbm-bellecour");
    assert_eq!(
        stat(&c, "/var/spool/mss-dispatch/sites/690000880"),
        "770 mss-dispatch lbm-bellecour"
    );
    assert!(eventually(20, || !files(
        &c,
        "/var/spool/mss-dispatch/quarantine"
    )
    .is_empty()
        || c.path("/var/spool/mss-dispatch/quarantine")
            .read_dir()
            .unwrap()
            .count()
            > 0));
    let journal = c.journal("mss-dispatch");
    assert!(journal.contains("pass finished"), "{journal}");
    for secret in ["PATIENT1", "D000001", PASSWORD, "280017512345603"] {
        assert!(
            !journal.contains(secret),
            "{secret} in the journal:\n{journal}"
        );
    }

    // 4. Reload: a site added, then a certificate for it delivered; an invalid edit rejected.
    let with_sil = text.clone()
        + "\n[[site]]\nfiness = \"2A0000154\"\nname = \"Ajaccio\"\nsil = \"/var/spool/sil/inbox\"\n";
    c.write("/etc/mss-dispatch/config.toml", &with_sil, 0o640);
    c.ok("systemctl reload mss-dispatch");
    assert!(eventually(20, || c
        .journal("mss-dispatch")
        .contains("configuration reloaded")));
    dovecot.deliver(
        CERT_USER,
        "INBOX",
        &certificate(6, "2A0000154", "Négatif", 3000),
    );
    assert!(
        eventually(30, || files(&c, "/var/spool/sil/inbox").len() == 1),
        "{}",
        c.journal("mss-dispatch")
    );
    c.write(
        "/etc/mss-dispatch/config.toml",
        &with_sil.replace("finess = \"750712184\"", "finess = \"750712185\""),
        0o640,
    );
    c.ok("systemctl reload mss-dispatch");
    assert!(eventually(20, || c
        .journal("mss-dispatch")
        .contains("the running one stays")));
    assert_eq!(c.prop("mss-dispatch", "ActiveState"), "active");
    c.write("/etc/mss-dispatch/config.toml", &with_sil, 0o640);

    // 5. The watchdog: a stopped process is restarted within WatchdogSec; nothing lost.
    c.write(
        "/etc/systemd/system/mss-dispatch.service.d/watchdog.conf",
        "[Service]\nWatchdogSec=6s\nTimeoutAbortSec=2s\n",
        0o644,
    );
    c.ok("systemctl daemon-reload && systemctl restart mss-dispatch");
    let restarts: u32 = c.prop("mss-dispatch", "NRestarts").parse().unwrap();
    let pid = c.prop("mss-dispatch", "MainPID");
    // The main process only: just after a restart, the cgroup may still hold an exiting
    // ExecStartPre, which systemd cannot signal (EIO).
    c.ok("systemctl kill --kill-who=main --signal=SIGSTOP mss-dispatch");
    dovecot.deliver(
        CERT_USER,
        "INBOX",
        &certificate(7, "690000880", "Négatif", 3000),
    );
    assert!(
        eventually(40, || {
            c.prop("mss-dispatch", "NRestarts").parse::<u32>().unwrap() > restarts
                && c.prop("mss-dispatch", "ActiveState") == "active"
        }),
        "{}",
        c.out("systemctl status mss-dispatch --no-pager")
    );
    assert_ne!(c.prop("mss-dispatch", "MainPID"), pid);
    assert!(eventually(30, || files(
        &c,
        "/var/spool/mss-dispatch/sites/690000880"
    )
    .len()
        == 4));
    let all = files(&c, "/var/spool");
    assert_eq!(all.len(), 6, "each certificate once: {all:?}");

    // 6. Stop: STOPPING=1, exit 0, the lock released.
    c.ok("systemctl stop mss-dispatch");
    assert_eq!(c.prop("mss-dispatch", "Result"), "success");
    assert_eq!(c.prop("mss-dispatch", "ExecMainStatus"), "0");
    let status = c.ok("mss-dispatch status --config /etc/mss-dispatch/config.toml");
    assert!(status.contains("NOT RUNNING"), "{status}");

    // 8. Hardening as the running unit sees it, and no syscall refused in a full run
    //    (delivery, quarantine, purge, reload).
    c.ok("systemctl start mss-dispatch");
    let security = c.ok("systemd-analyze security mss-dispatch 2>&1");
    let exposure: f64 = security
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for mss-dispatch.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{security}"));
    assert!(exposure <= 2.0, "exposure {exposure}:\n{security}");
    let journal = c.journal("mss-dispatch");
    for refused in [
        "Operation not permitted",
        "EPERM",
        "SIGSYS",
        "Bad system call",
    ] {
        assert!(!journal.contains(refused), "{refused}:\n{journal}");
    }

    // 9. Upgrade: a changed binary restarts the running service; the edited configuration,
    //    the state and the spool stay.
    let before = c.prop("mss-dispatch", "MainPID");
    let ledger_before = std::fs::metadata(c.path("/var/lib/mss-dispatch/ledger.sqlite")).unwrap();
    let upgrade = upgrade_package(&c);
    assert!(
        upgrade.contains("mss-dispatch: news since") && upgrade.contains(UPGRADE_NEWS),
        "the NEWS entry is shown at upgrade:\n{upgrade}"
    );
    assert!(eventually(20, || c.prop("mss-dispatch", "MainPID")
        != before
        && c.prop("mss-dispatch", "ActiveState") == "active"));
    assert_eq!(
        std::fs::read_to_string(c.path("/etc/mss-dispatch/config.toml")).unwrap(),
        with_sil,
        "the edited configuration is kept"
    );
    use std::os::unix::fs::MetadataExt;
    let ledger_after = std::fs::metadata(c.path("/var/lib/mss-dispatch/ledger.sqlite")).unwrap();
    assert_eq!(ledger_before.ino(), ledger_after.ino());
    assert_eq!(files(&c, "/var/spool").len(), 6);

    // 10. apt purge: the units and the package's files go; the data stays, with a message.
    let purge = c.ok("apt-get purge -y mss-dispatch 2>&1");
    assert!(purge.contains("/var/lib/mss-dispatch"), "{purge}");
    assert!(!c.path("/lib/systemd/system/mss-dispatch.service").exists());
    assert!(!c.path("/usr/bin/mss-dispatch").exists());
    assert!(!c.path("/etc/mss-dispatch/imap-password").exists());
    assert!(c.path("/var/lib/mss-dispatch/ledger.sqlite").exists());
    assert_eq!(
        files(&c, "/var/spool").len(),
        6,
        "certificates under retention are kept"
    );
}

/// The same package with a changed binary and a newer version, as an upgrade brings it.
fn upgrade_package(c: &Container) -> String {
    let work = c.path("/root/upgrade");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let deb = package();
    let run = |cmd: &mut Command| {
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{cmd:?}: {}", stderr(&o));
    };
    run(Command::new("dpkg-deb")
        .arg("-R")
        .arg(&deb)
        .arg(work.join("pkg")));
    let bin_path = work.join("pkg/usr/bin/mss-dispatch");
    let mut bin = std::fs::read(&bin_path).unwrap();
    bin.extend_from_slice(b"\0upgrade");
    std::fs::write(&bin_path, bin).unwrap();
    let control = work.join("pkg/DEBIAN/control");
    let text = std::fs::read_to_string(&control).unwrap();
    let text = text
        .lines()
        .map(|l| {
            if let Some(v) = l.strip_prefix("Version: ") {
                format!("Version: {v}.1")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    std::fs::write(&control, text).unwrap();
    // The new version's NEWS entry, as a release that changes something brings it.
    let news = work.join("pkg/usr/share/doc/mss-dispatch/NEWS.Debian.gz");
    let old = Command::new("zcat").arg(&news).output().unwrap();
    assert!(old.status.success());
    let version = std::fs::read_to_string(&control)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Version: ").map(str::to_string))
        .unwrap();
    let entry = format!(
        "mss-dispatch ({version}) stable; urgency=medium\n\n  * {UPGRADE_NEWS}\n\n \
         -- mss-dispatch maintainers <m@example>  Fri, 27 Nov 2026 12:00:00 +0100\n\n"
    );
    let mut all = entry.into_bytes();
    all.extend_from_slice(&old.stdout);
    let gz = Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -9n > '{}'", news.display()))
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&all)?;
            child.wait()
        })
        .unwrap();
    assert!(gz.success());
    run(Command::new("dpkg-deb")
        .args(["-b", "--root-owner-group"])
        .arg(work.join("pkg"))
        .arg(c.path("/root/mss-dispatch-upgrade.deb")));
    c.ok("cd /root && apt-get install -y ./mss-dispatch-upgrade.deb 2>&1")
}

/// The line of the upgrade's NEWS entry that the installation must show.
const UPGRADE_NEWS: &str = "Nothing to change in the configuration for this release.";

#[test]
fn two_template_instances_run_side_by_side_and_a_spool_outside_the_writable_paths_fails_clearly() {
    if skip() {
        return;
    }
    let tmp = workdir();
    let pki = Pki::new(&tmp.path().join("pki"));
    let dovecot = Dovecot::start(&tmp.path().join("dovecot"), &pki, DovecotOptions::default());
    let c = Container::boot("template");
    c.install_package();
    std::fs::copy(&pki.ca, c.path("/etc/mss-dispatch/igc-sante-ca.pem")).unwrap();
    c.ok("groupadd lbm-bellecour && usermod -aG lbm-bellecour mss-dispatch");
    for (name, folder) in [("a", "INBOX"), ("b", "Nord")] {
        // No state.dir, no quarantine.dir: each instance gets its own by default.
        let text = without_sections(
            &config(
                &dovecot,
                folder,
                "/unused",
                &format!("/var/spool/mss-dispatch/{name}/sites"),
                "/unused",
            ),
            &["[state]", "[quarantine]"],
        );
        c.write(&format!("/etc/mss-dispatch/{name}.toml"), &text, 0o640);
        c.write(
            &format!("/etc/mss-dispatch/{name}.imap-password"),
            &format!("{PASSWORD}\n"),
            0o600,
        );
        c.ok(&format!("chgrp mss-dispatch /etc/mss-dispatch/{name}.toml"));
    }
    dovecot.deliver(USER, "INBOX", &certificate(1, "690000880", "Négatif", 3000));
    dovecot.deliver(USER, "Nord", &certificate(2, "690000880", "Négatif", 3000));
    dovecot.deliver(USER, "INBOX", &certificate(8, "010780054", "Négatif", 3000));
    dovecot.deliver(USER, "Nord", &certificate(9, "010780054", "Négatif", 3000));
    let started = c.sh("systemctl enable --now mss-dispatch@a mss-dispatch@b");
    assert!(
        started.status.success(),
        "{}\n{}",
        stderr(&started),
        c.journal("mss-dispatch@a")
    );
    for (name, n) in [("a", 1), ("b", 2)] {
        let unit = format!("mss-dispatch@{name}");
        assert_eq!(
            c.prop(&unit, "ActiveState"),
            "active",
            "{}",
            c.journal(&unit)
        );
        let dir = format!("/var/spool/mss-dispatch/{name}/sites");
        assert!(
            eventually(30, || files(&c, &dir).len() == 1),
            "{}",
            c.journal(&unit)
        );
        assert!(files(&c, &dir)[0].ends_with(&delivered_name(n)));
        assert!(
            c.path(&format!("/var/lib/mss-dispatch/{name}/ledger.sqlite"))
                .exists()
        );
        // Its own quarantine, by default: a certificate for an unknown site lands there.
        let q = c.path(&format!("/var/spool/mss-dispatch/{name}/quarantine"));
        assert!(
            eventually(30, || std::fs::read_dir(&q)
                .map(|d| d.count() > 0)
                .unwrap_or(false)),
            "{}",
            c.journal(&unit)
        );
    }

    // A third configuration, enabled, on the second one's spool: check-config warns.
    let third = without_sections(
        &config(
            &dovecot,
            "Third",
            "/unused",
            "/var/spool/mss-dispatch/b/sites",
            "/unused",
        ),
        &["[state]", "[quarantine]"],
    );
    c.write("/etc/mss-dispatch/c.toml", &third, 0o640);
    c.ok("chgrp mss-dispatch /etc/mss-dispatch/c.toml && systemctl enable mss-dispatch@c 2>&1");
    let check = c.sh("mss-dispatch check-config --config /etc/mss-dispatch/c.toml");
    assert!(
        stderr(&check).contains(
            "site[0].spool /var/spool/mss-dispatch/b/sites/690000880 is the same folder as \
             site[0].spool /var/spool/mss-dispatch/b/sites/690000880 of /etc/mss-dispatch/b.toml"
        ),
        "{}",
        stderr(&check)
    );
    c.ok("systemctl disable mss-dispatch@c 2>&1 && rm /etc/mss-dispatch/c.toml");

    // A spool under /etc: the service cannot write there (ProtectSystem=strict), says so,
    // and nothing is written.
    let evil = config(
        &dovecot,
        "Evil",
        "/var/lib/mss-dispatch/evil",
        "/etc/mss-dispatch-evil/sites",
        "/var/spool/mss-dispatch/evil/quarantine",
    );
    c.write("/etc/mss-dispatch/evil.toml", &evil, 0o640);
    c.write(
        "/etc/mss-dispatch/evil.imap-password",
        &format!("{PASSWORD}\n"),
        0o600,
    );
    c.ok("chgrp mss-dispatch /etc/mss-dispatch/evil.toml");
    dovecot.deliver(USER, "Evil", &certificate(3, "690000880", "Négatif", 3000));
    let _ = c.sh("systemctl start mss-dispatch@evil");
    assert!(
        eventually(30, || c.journal("mss-dispatch@evil").contains("ALERT")),
        "{}",
        c.journal("mss-dispatch@evil")
    );
    assert!(
        !c.path("/etc/mss-dispatch-evil").exists(),
        "written under /etc"
    );
    assert_eq!(dovecot.count(USER, "Evil"), 1, "nothing acknowledged");
}
