//! The systemd protocol as the daemon speaks it: READY=1 once its ledger is open,
//! STATUS= lines, WATCHDOG=1 while the loop makes progress (idle included), none while an
//! IMAP call hangs, RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 on SIGTERM.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::fake_imap::{FakeImap, Faults};
use crate::support::*;

/// Messages received on a notify socket, with their arrival time.
fn collect(sock: &UnixDatagram, for_how_long: Duration) -> Vec<(Duration, String)> {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < for_how_long {
        if let Ok(n) = sock.recv(&mut buf) {
            for line in String::from_utf8_lossy(&buf[..n]).lines() {
                out.push((start.elapsed(), line.to_string()));
            }
        }
    }
    out
}

fn spawn_notified(install: &Install, socket: &std::path::Path, watchdog_ms: u64) -> Daemon {
    Command::new(bin())
        .args(["run", "--config"])
        .arg(&install.config)
        .env("NOTIFY_SOCKET", socket)
        .env("WATCHDOG_USEC", (watchdog_ms * 1000).to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Daemon)
        .unwrap()
}

/// An installation on an empty Maildir, polled every minute.
fn idle_install(tmp: &std::path::Path) -> Install {
    let root = tmp.join("install");
    std::fs::create_dir_all(root.join("Maildir/new")).unwrap();
    std::fs::create_dir_all(root.join("Maildir/cur")).unwrap();
    Install::new(
        &root,
        &format!(
            "maildir = \"{}/Maildir\"\npoll_interval = \"60s\"\n",
            root.display()
        ),
    )
}

#[test]
fn ready_status_watchdog_while_idle_and_stopping() {
    let tmp = workdir();
    let install = idle_install(tmp.path());
    let socket = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket).unwrap();
    let mut daemon = spawn_notified(&install, &socket, 1500);
    let got = collect(&sock, Duration::from_secs(5));
    sigterm(&daemon);
    let status = daemon.wait().unwrap();
    let mut rest = collect(&sock, Duration::from_millis(300));
    assert!(status.success());
    let lines: Vec<&str> = got.iter().map(|(_, l)| l.as_str()).collect();
    assert!(lines.contains(&"READY=1"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("STATUS=connected")),
        "{lines:?}"
    );
    // Idle for 60 s of poll interval, and still pinging: the wait is cut to a third of the
    // watchdog period.
    let pings: Vec<Duration> = got
        .iter()
        .filter(|(_, l)| l == "WATCHDOG=1")
        .map(|(t, _)| *t)
        .collect();
    assert!(pings.len() >= 4, "{got:?}");
    assert!(*pings.last().unwrap() > Duration::from_secs(4), "{pings:?}");
    rest.retain(|(_, l)| l == "STOPPING=1");
    assert!(
        got.iter().any(|(_, l)| l == "STOPPING=1") || !rest.is_empty(),
        "no STOPPING=1"
    );
}

#[test]
fn sighup_is_announced_as_a_reload() {
    let tmp = workdir();
    let install = idle_install(tmp.path());
    let socket = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket).unwrap();
    let mut daemon = spawn_notified(&install, &socket, 60_000);
    let before = collect(&sock, Duration::from_secs(2));
    assert!(before.iter().any(|(_, l)| l == "READY=1"), "{before:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let after = collect(&sock, Duration::from_secs(2));
    sigterm(&daemon);
    assert!(daemon.wait().unwrap().success());
    let lines: Vec<&str> = after.iter().map(|(_, l)| l.as_str()).collect();
    let reloading = lines.iter().position(|l| *l == "RELOADING=1");
    let ready = lines.iter().rposition(|l| *l == "READY=1");
    assert!(
        matches!((reloading, ready), (Some(a), Some(b)) if a < b),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{lines:?}"
    );
}

#[test]
fn a_hung_imap_call_starves_the_watchdog() {
    let tmp = workdir();
    let pki = Pki::new(&tmp.path().join("pki"));
    // The server stops answering the first listing; the command timeout (60 s) is far longer
    // than the watchdog (2 s): systemd must be left to restart the service.
    let fake = FakeImap::start(
        &pki,
        vec![certificate(1, "690000880", "Négatif", 2_000)],
        Faults {
            stall_once_on: Some("UID SEARCH".into()),
            ..Faults::default()
        },
    );
    let root = tmp.path().join("install");
    std::fs::create_dir_all(&root).unwrap();
    write_secret(&root.join("pass"), "x\n");
    let install = Install::new(
        &root,
        &format!(
            "host = \"localhost\"\nport = {}\ntls = \"implicit\"\nca_file = \"{}\"\n\
             auth = \"login\"\nusername = \"lbm\"\npassword_file = \"{}/pass\"\ntimeout = \"60s\"\n",
            fake.port,
            pki.ca.display(),
            root.display()
        ),
    );
    let socket = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket).unwrap();
    let mut daemon = spawn_notified(&install, &socket, 2000);
    let got = collect(&sock, Duration::from_secs(7));
    sigkill(&mut daemon);
    let ready = got
        .iter()
        .find(|(_, l)| l == "READY=1")
        .map(|(t, _)| *t)
        .expect("READY=1 before the listing");
    assert!(
        got.iter().any(|(_, l)| l == "WATCHDOG=1"),
        "the watchdog was never fed, so its silence proves nothing: {got:?}"
    );
    let late: Vec<_> = got
        .iter()
        .filter(|(t, l)| l == "WATCHDOG=1" && *t > ready + Duration::from_secs(3))
        .collect();
    assert!(
        late.is_empty(),
        "the watchdog was fed while the loop hung: {got:?}"
    );
    assert!(fake.state.lock().unwrap().connections >= 1);
}
