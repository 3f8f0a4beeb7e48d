//! The hostile site user (DESIGN invariant 8). Real Unix users and groups are created (as
//! root): a service account in three site groups, and a member of the first site's group.
//! While the service, run as its account, drains 300 certificates of three sites and then
//! purges them, that user keeps planting links where day folders will be made, swapping day
//! folders and file names for links to the state directory, another site and a decoy,
//! renaming folders, moving and deleting files, putting folders where files were and making
//! folders of their own read-only. Afterwards nothing outside the attacked site's tree was
//! created, changed or removed, the other sites were delivered and purged on time, and every
//! due certificate of the attacked site was removed wherever it was moved, or is reported
//! failing by an ALERT; no `.part` file is left anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;

const SITES: [&str; 3] = ["690000880", "750712184", "2A0000154"];
const PER_SITE: u32 = 100;
/// The negative retention of this installation: short, so that the purge comes soon.
const RETENTION_SECS: i64 = 50;

fn uid(user: &str) -> u32 {
    nix::unistd::User::from_name(user)
        .unwrap()
        .unwrap()
        .uid
        .as_raw()
}

fn gid(group: &str) -> u32 {
    nix::unistd::Group::from_name(group)
        .unwrap()
        .unwrap()
        .gid
        .as_raw()
}

fn chown_r(path: &Path, user: &str, group: &str) {
    let out = Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:{group}"))
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Mode, owner, group and (for files) content hash of every entry below `dir`, links listed
/// as links; what the attack must not change.
fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, (u32, u32, u32, String)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let meta = std::fs::symlink_metadata(&d).unwrap();
        out.insert(
            d.clone(),
            (meta.mode(), meta.uid(), meta.gid(), String::from("dir")),
        );
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                let content = if m.is_file() {
                    format!(
                        "{:x?}",
                        mss_dispatch::delivery::spool::sha256(&std::fs::read(&p).unwrap())
                    )
                } else {
                    format!("{:?}", std::fs::read_link(&p).ok())
                };
                out.insert(p, (m.mode(), m.uid(), m.gid(), content));
            }
        }
    }
    out
}

/// Every path below `dir` (links not followed).
fn all_paths(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        out.push(p.clone());
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            all_paths(&p, out);
        }
    }
}

const ATTACKER: &str = r#"
import os, random, sys, time
site, stop, days, targets = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4:]
random.seed(int(sys.argv[1][-3:], 36) if False else 7)
n = 0
def entries(d):
    try:
        return list(os.scandir(d))
    except OSError:
        return []
def files(site):
    out = []
    for root, dirs, names in os.walk(site):
        dirs[:] = [d for d in dirs if not d.startswith("archive-")]
        out += [os.path.join(root, f) for f in names]
    random.shuffle(out)
    return out
while not os.path.exists(stop):
    n += 1
    try:
        r = random.random()
        day = os.path.join(site, random.choice(days))
        if r < 0.25:
            # Plant a link where the service will make a day folder, or take it away.
            if not os.path.lexists(day):
                os.symlink(random.choice(targets), day)
            elif os.path.islink(day):
                os.unlink(day)
        elif r < 0.40:
            # Swap a real day folder for a link, keeping its content under another name.
            if os.path.isdir(day) and not os.path.islink(day):
                os.rename(day, day + ".renamed-%d" % n)
                os.symlink(random.choice(targets), day)
        elif r < 0.70:
            # Move, rename, delete or replace certificates found anywhere in the site.
            for p in files(site)[:5]:
                a = random.random()
                if a < 0.3:
                    os.makedirs(os.path.join(site, "imprimes"), exist_ok=True)
                    os.rename(p, os.path.join(site, "imprimes", "%d-%s" % (n, os.path.basename(p))))
                elif a < 0.4:
                    os.rename(p, p + ".vu")
                elif a < 0.5:
                    os.unlink(p)
                elif a < 0.55:
                    os.rename(p, p + ".old")
                    os.symlink(random.choice(targets), p)
                elif a < 0.6:
                    os.rename(p, p + ".x")
                    os.mkdir(p)
        elif r < 0.75:
            # A folder of their own, read-only, with certificates moved into it.
            ro = os.path.join(site, "archive-%d" % n)
            os.mkdir(ro)
            for p in files(site)[:2]:
                os.rename(p, os.path.join(ro, os.path.basename(p)))
            os.chmod(ro, 0o555)
        else:
            # Rename day folders back and forth.
            for e in entries(site):
                if e.is_dir(follow_symlinks=False) and random.random() < 0.3:
                    os.rename(e.path, e.path + "~")
                    if random.random() < 0.5:
                        os.rename(e.path + "~", e.path)
    except OSError:
        pass
print(n)
"#;

#[test]
fn a_hostile_site_user_cannot_reach_outside_their_tree_nor_stop_the_purge() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the hostile site user suite needs root (real users and groups)");
        return;
    }
    let mut acct = Accounts::new();
    let groups: Vec<String> = ["a", "b", "c"].iter().map(|g| acct.group(g)).collect();
    let svc_group = acct.group("svc");
    let svc = acct.user("svc", &svc_group, &groups);
    let attacker = acct.user("staff", &groups[0], &[]);

    let tmp = workdir();
    let root = tmp.path().to_path_buf();
    let var = root.join("var");
    let spool = root.join("spool");
    let decoy = root.join("decoy");
    for d in [&var, &spool, &decoy] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(decoy.join("keep.txt"), b"must not change").unwrap();
    // Writable by the service: were it to follow a link there, it could do damage.
    chown_r(&var, &svc, &svc_group);
    chown_r(&spool, &svc, &svc_group);
    chown_r(&decoy, &svc, &svc_group);
    std::fs::set_permissions(&decoy, std::fs::Permissions::from_mode(0o755)).unwrap();

    // 300 certificates sampled in the next minute: due RETENTION_SECS after that.
    let maildir = var.join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let sampled = jiff::ZonedDateTime::now()
        .in_tz("Europe/Paris")
        .unwrap()
        .checked_add(jiff::SignedDuration::from_secs(60))
        .unwrap();
    let day = sampled.strftime("%Y-%m-%d").to_string();
    let next_day = sampled
        .checked_add(jiff::SignedDuration::from_hours(24))
        .unwrap()
        .strftime("%Y-%m-%d")
        .to_string();
    for (i, site) in SITES.iter().enumerate() {
        for k in 0..PER_SITE {
            let n = i as u32 * PER_SITE + k + 1;
            let msg = certificate_sampled(n, site, "Négatif", 3000, &sampled);
            std::fs::write(maildir.join("new").join(format!("{n}.hostile")), msg).unwrap();
        }
    }
    chown_r(&var, &svc, &svc_group);

    let site_dir = |i: usize| spool.join("sites").join(SITES[i]);
    let mut sites_toml = String::new();
    for (i, site) in SITES.iter().enumerate() {
        sites_toml += &format!(
            "[[site]]\nfiness = \"{site}\"\nname = \"Site {i}\"\nspool = \"{}\"\ngroup = \"{}\"\n",
            site_dir(i).display(),
            groups[i]
        );
    }
    let config = root.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[mailbox]\nmaildir = \"{m}\"\npoll_interval = \"1s\"\n\
             [state]\ndir = \"{v}/state\"\n[quarantine]\ndir = \"{v}/quarantine\"\n\
             [retention]\nnegative = \"{RETENTION_SECS}s\"\ncheck_interval = \"1s\"\n{sites_toml}",
            m = maildir.display(),
            v = var.display()
        ),
    )
    .unwrap();

    let log = root.join("daemon.log");
    let daemon = Daemon(
        Command::new("setpriv")
            .arg(format!("--reuid={}", uid(&svc)))
            .arg(format!("--regid={}", gid(&svc_group)))
            .arg("--init-groups")
            .arg("--")
            .arg(bin())
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    // The state directory and the other sites' folders, as the service made them.
    let state = var.join("state");
    assert!(
        eventually(20, || state.join("secret").exists() && site_dir(2).exists()),
        "the service did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let secret_before = fingerprint(&state)
        .into_iter()
        .filter(|(p, _)| p.ends_with("secret") || *p == state)
        .collect::<BTreeMap<_, _>>();
    let decoy_before = fingerprint(&decoy);
    let folder_meta = |p: &Path| {
        let m = std::fs::symlink_metadata(p).unwrap();
        (m.mode(), m.uid(), m.gid())
    };
    let others_before: Vec<_> = [1, 2].iter().map(|i| folder_meta(&site_dir(*i))).collect();

    // The attack.
    let script = root.join("attack.py");
    std::fs::write(&script, ATTACKER).unwrap();
    let stop = root.join("stop-attack");
    let targets = [state.clone(), site_dir(1), decoy.clone()];
    let mut attack = Daemon(
        Command::new("setpriv")
            .arg(format!("--reuid={}", uid(&attacker)))
            .arg(format!("--regid={}", gid(&groups[0])))
            .arg("--clear-groups")
            .arg("--")
            // Debian's interpreter: a user's own (pyenv under /root) is not for others.
            .arg("/usr/bin/python3")
            .arg(&script)
            .arg(site_dir(0))
            .arg(&stop)
            .arg(format!("{day},{next_day}"))
            .args(&targets)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );

    // Meanwhile, nothing of the attacked site may appear outside its tree.
    let watching = Arc::new(AtomicBool::new(true));
    let watched = {
        let watching = Arc::clone(&watching);
        let dirs = vec![
            state.clone(),
            site_dir(1),
            site_dir(2),
            decoy.clone(),
            var.clone(),
        ];
        std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            while watching.load(Ordering::Relaxed) {
                for d in &dirs {
                    let mut paths = Vec::new();
                    all_paths(d, &mut paths);
                    for p in paths {
                        let name = p.file_name().unwrap().to_string_lossy().into_owned();
                        let attacked =
                            (1..=PER_SITE).any(|n| name.starts_with(&format!("PATIENT{n}_")));
                        if attacked && !p.starts_with(d.join("Maildir")) {
                            seen.insert(p);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            seen
        })
    };

    // Let the drain run under attack, and the purge after the due time too.
    let due = sampled.timestamp().as_second() - i64::from(sampled.second()) + RETENTION_SECS;
    let attack_until = due + 15;
    while jiff::Timestamp::now().as_second() < attack_until {
        std::thread::sleep(Duration::from_millis(500));
    }
    std::fs::write(&stop, b"").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while attack.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let attack_out = {
        let mut s = String::new();
        use std::io::Read;
        if let Some(mut o) = attack.0.stdout.take() {
            let _ = o.read_to_string(&mut s);
        }
        if let Some(mut e) = attack.0.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    };
    let rounds: u64 = attack_out.trim().parse().unwrap_or(0);
    assert!(rounds > 100, "the attack barely ran: {attack_out:?}");

    // Settle: every message processed, every due certificate purged or failing.
    let ledger_path = state.join("ledger.sqlite");
    let settled = |final_check: bool| -> Option<String> {
        let conn = rusqlite::Connection::open_with_flags(
            &ledger_path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .ok()?;
        let waiting = std::fs::read_dir(maildir.join("new")).ok()?.count()
            + std::fs::read_dir(maildir.join("cur")).ok()?.count();
        let pending: i64 = conn
            .query_row(
                "SELECT count(*) FROM certificate WHERE purged_at IS NULL AND id NOT IN
                   (SELECT certificate FROM copy WHERE state = 'purging' AND attempts > 0)",
                [],
                |r| r.get(0),
            )
            .ok()?;
        let report = format!("{waiting} messages waiting, {pending} certificates held");
        if final_check || (waiting == 0 && pending == 0) {
            Some(report)
        } else {
            None
        }
    };
    let settle_deadline = Instant::now() + Duration::from_secs(60);
    while settled(false).is_none() && Instant::now() < settle_deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    watching.store(false, Ordering::Relaxed);
    let leaked = watched.join().unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        settled(false),
        Some("0 messages waiting, 0 certificates held".into()),
        "{:?}\n{text}",
        settled(true)
    );
    drop(daemon);

    // 1. Nothing outside the attacked site's tree was created, changed or removed.
    assert!(
        leaked.is_empty(),
        "written outside the attacked site: {leaked:?}"
    );
    let secret_after = fingerprint(&state)
        .into_iter()
        .filter(|(p, _)| p.ends_with("secret") || *p == state)
        .collect::<BTreeMap<_, _>>();
    assert_eq!(
        secret_after, secret_before,
        "state directory or secret changed"
    );
    let ledger = std::fs::metadata(&ledger_path).unwrap();
    assert_eq!(
        (ledger.mode() & 0o777, ledger.uid(), ledger.gid()),
        (0o600, uid(&svc), gid(&svc_group)),
        "the ledger's mode or group changed"
    );
    assert_eq!(fingerprint(&decoy), decoy_before, "the decoy changed");
    let others_after: Vec<_> = [1, 2].iter().map(|i| folder_meta(&site_dir(*i))).collect();
    assert_eq!(others_after, others_before);
    let mut state_files = Vec::new();
    all_paths(&state, &mut state_files);
    for p in &state_files {
        let name = p.file_name().unwrap().to_string_lossy();
        assert!(
            [
                "ledger.sqlite",
                "ledger.sqlite-wal",
                "ledger.sqlite-shm",
                "ledger.keys",
                "secret",
                "retention.log",
                "run.lock",
                "work.lock",
                "daemon.json",
                ".daemon.json.tmp",
            ]
            .contains(&name.as_ref()),
            "unexpected in the state directory: {}",
            p.display()
        );
    }

    // 2. The other sites: every certificate delivered and purged on time.
    let conn = rusqlite::Connection::open_with_flags(
        &ledger_path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    for site in &SITES[1..] {
        let (n, late): (i64, i64) = conn
            .query_row(
                "SELECT count(*), max(purged_at - purge_at) FROM certificate
                 WHERE site = ?1 AND state = 'delivered' AND purged_at IS NOT NULL",
                [site],
                |r| Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.unwrap_or(0))),
            )
            .unwrap();
        assert_eq!(n, i64::from(PER_SITE), "site {site}");
        assert!(late <= 10, "site {site} purged {late} s late");
    }
    for i in [1, 2] {
        let mut left = Vec::new();
        all_paths(&site_dir(i), &mut left);
        assert!(left.is_empty(), "left in site {i}: {left:?}");
    }

    // 3. The attacked site: every certificate purged, or reported failing by an ALERT; what
    //    is left of ours in its tree belongs to a failing certificate.
    let failing: i64 = conn
        .query_row(
            "SELECT count(DISTINCT certificate) FROM copy WHERE state = 'purging' AND attempts > 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    if failing > 0 {
        assert!(
            text.contains("ALERT: due certificates could not be purged"),
            "{failing} failing without an ALERT:\n{text}"
        );
    }
    let by_state: Vec<(String, i64)> = conn
        .prepare("SELECT state, count(*) FROM certificate WHERE site = ?1 GROUP BY state")
        .unwrap()
        .query_map([SITES[0]], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    eprintln!(
        "attacked site: {by_state:?}, {failing} failing; {rounds} attack rounds; ALERTs: {}",
        text.matches("ALERT").count()
    );
    // What the service wrote and is left in the attacked tree (a PDF, or a temporary file
    // staff renamed) is exactly the files of failing certificates, where staff made a folder
    // of theirs read-only.
    let failing_files: BTreeSet<u64> = conn
        .prepare("SELECT ino FROM copy WHERE state = 'purging' AND attempts > 0")
        .unwrap()
        .query_map([], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|r| r.unwrap() as u64)
        .collect();
    let mut left = Vec::new();
    all_paths(&site_dir(0), &mut left);
    let ours: Vec<&PathBuf> = left
        .iter()
        .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && m.uid() == uid(&svc)))
        .collect();
    for p in &ours {
        let m = std::fs::symlink_metadata(p).unwrap();
        assert!(
            failing_files.contains(&m.ino()),
            "left and not reported failing: {}",
            p.display()
        );
        let folder = std::fs::metadata(p.parent().unwrap()).unwrap();
        assert_ne!(
            folder.uid(),
            uid(&svc),
            "a failing file in a folder of the service's"
        );
    }
    assert!(
        text.contains("ALERT: a link or a file stands where a folder should be"),
        "the planted links were not reported:\n{text}"
    );

    // 4. No temporary file of the service's anywhere but those, nor any of its files outside
    //    the attacked tree.
    let mut everything = Vec::new();
    all_paths(&root, &mut everything);
    let parts: Vec<_> = everything
        .iter()
        .filter(|p| {
            p.to_string_lossy().contains(".mss-dispatch.")
                && std::fs::symlink_metadata(p)
                    .is_ok_and(|m| m.is_file() && !failing_files.contains(&m.ino()))
        })
        .collect();
    assert!(parts.is_empty(), "temporary files left: {parts:?}");

    // 5. No patient data in the log.
    for n in [1, 50, 150, 250] {
        assert!(
            !text.contains(&format!("PATIENT{n}_")),
            "patient name in the log"
        );
        assert!(!text.contains(&format!("D{n:06}")), "dossier in the log");
    }
    // Read-only folders of the staff's own are theirs to remove: make them writable again
    // so that the temporary directory can go.
    for p in &left {
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
    }
}
