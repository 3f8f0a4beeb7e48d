//! The orphan sweep: files in the site, SIL and quarantine folders that the ledger does not
//! know, after a ledger was lost (DESIGN invariants 3 and 9). The ledger is what the purge
//! works from; without it, what was delivered before would stay forever. So every purge pass
//! also looks, through directory handles, for files of this service's own account that no
//! live copy claims, and removes each at the end of the longest retention: a file in a
//! sampling-day folder (`2026-11-26/`) is due by that day plus the longest rule, anything
//! else by its modification time plus the longest rule. Each is recorded `orphan_purged`,
//! with its folder and never its name. Files the site's staff made are theirs.
//!
//! A day folder is walked only once it is due, so a pass costs the listing of each site's
//! folder, not what it holds.

use std::path::PathBuf;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::core::audit::{Body, Event};
use crate::core::config::Config;
use crate::core::retention::{self, Rule, rfc3339};
use crate::delivery::spool::{Dir, DirError, FileId};
use crate::ledger::{Ledger, LedgerError, LedgerRead};

#[derive(Debug, thiserror::Error)]
pub enum OrphanError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Spool(#[from] DirError),
}

/// A folder the configuration names, and what is in it.
struct Root {
    path: PathBuf,
    /// A site's spool (day folders, and whatever the staff made), else a flat folder.
    site: Option<String>,
}

fn roots(config: &Config) -> Vec<Root> {
    let mut out: Vec<Root> = Vec::new();
    for site in &config.sites {
        if let Some(spool) = &site.spool {
            out.push(Root {
                path: spool.clone(),
                site: Some(site.finess.as_str().to_string()),
            });
        }
        if let Some(sil) = &site.sil
            && !out.iter().any(|r| r.path == *sil)
        {
            out.push(Root {
                path: sil.clone(),
                site: None,
            });
        }
    }
    out.push(Root {
        path: config.quarantine_dir.clone(),
        site: None,
    });
    out
}

/// A file found, not known to the ledger, and due.
struct Orphan {
    dir: Dir,
    name: String,
    file: FileId,
    due: Timestamp,
}

/// Removes the orphans due at `now`; returns how many.
pub fn sweep(
    ledger: &mut Ledger,
    config: &Config,
    tz: &TimeZone,
    now: Timestamp,
) -> Result<usize, OrphanError> {
    let me = nix::unistd::geteuid().as_raw();
    let longest =
        |anchor: Timestamp| retention::due(Rule::Quarantine, anchor, &config.retention, tz);
    let mut removed = 0;
    for root in roots(config) {
        let dir = match Dir::root(&root.path) {
            Ok(d) => d,
            Err(e) if e.source.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let mut found = Vec::new();
        let deep = root.site.is_some();
        for (name, _) in dir.entries()? {
            let Some(st) = dir.stat(&name)? else { continue };
            if is_dir(&st) {
                if !deep {
                    continue;
                }
                // A sampling-day folder is walked once it is due, and everything in it is.
                let day_due = name
                    .parse::<Date>()
                    .ok()
                    .and_then(|d| d.to_zoned_datetime(tz.clone()).ok())
                    .map(|z| longest(z.timestamp()));
                if day_due.is_some_and(|d| d > now) {
                    continue;
                }
                let Ok(sub) = dir.subdir(&name, None) else {
                    continue;
                };
                walk(&sub, day_due, me, &longest, now, 1, &mut found)?;
            } else if let Some(o) = candidate(&dir, &name, &st, None, me, &longest, now) {
                found.push(o);
            }
        }
        for o in found {
            let path = o.dir.path().join(&o.name);
            if ledger.copy_known(o.file, &path)? {
                continue;
            }
            if !o.dir.remove(&o.name, Some(o.file))? {
                continue;
            }
            o.dir.sync()?;
            let tx = ledger.tx()?;
            tx.audit(&Body {
                time: rfc3339(now, tz),
                event: Some(Event::OrphanPurged),
                site: root.site.clone(),
                folder: Some(root.path.display().to_string()),
                rule: Some("longest".into()),
                due: Some(rfc3339(o.due, tz)),
                purged_at: Some(rfc3339(now, tz)),
                lateness_seconds: Some((now.as_second() - o.due.as_second()).max(0)),
                detail: Some("a file of this service the ledger did not know".into()),
                ..Body::default()
            })?;
            tx.commit()?;
            removed += 1;
        }
    }
    Ok(removed)
}

const MAX_DEPTH: usize = 12;

fn is_dir(st: &nix::sys::stat::FileStat) -> bool {
    use nix::sys::stat::SFlag;
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

fn is_file(st: &nix::sys::stat::FileStat) -> bool {
    use nix::sys::stat::SFlag;
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG
}

/// Due files of this service below `dir`: by the day folder's due time when in one, else by
/// their modification time.
#[allow(clippy::too_many_arguments)]
fn walk(
    dir: &Dir,
    day_due: Option<Timestamp>,
    me: u32,
    longest: &dyn Fn(Timestamp) -> Timestamp,
    now: Timestamp,
    depth: usize,
    found: &mut Vec<Orphan>,
) -> Result<(), DirError> {
    for (name, _) in dir.entries()? {
        let Some(st) = dir.stat(&name)? else { continue };
        if is_dir(&st) {
            if depth < MAX_DEPTH
                && let Ok(sub) = dir.subdir(&name, None)
            {
                walk(&sub, day_due, me, longest, now, depth + 1, found)?;
            }
        } else if let Some(o) = candidate(dir, &name, &st, day_due, me, longest, now) {
            found.push(o);
        }
    }
    Ok(())
}

fn candidate(
    dir: &Dir,
    name: &str,
    st: &nix::sys::stat::FileStat,
    day_due: Option<Timestamp>,
    me: u32,
    longest: &dyn Fn(Timestamp) -> Timestamp,
    now: Timestamp,
) -> Option<Orphan> {
    if !is_file(st) || st.st_uid != me {
        return None;
    }
    let due = day_due.unwrap_or_else(|| {
        longest(Timestamp::from_second(st.st_mtime).unwrap_or(Timestamp::UNIX_EPOCH))
    });
    if due > now {
        return None;
    }
    Some(Orphan {
        dir: dir.dup().ok()?,
        name: name.to_string(),
        file: FileId {
            dev: st.st_dev,
            ino: st.st_ino,
        },
        due,
    })
}

/// The path of a root, for tests.
impl From<&OrphanError> for crate::system::failure::LocalFailure {
    fn from(e: &OrphanError) -> Self {
        match e {
            OrphanError::Ledger(l) => l.into(),
            OrphanError::Spool(s) => s.into(),
        }
    }
}
crate::system::failure::by_value!(OrphanError);

#[cfg(test)]
fn root_paths(config: &Config) -> Vec<PathBuf> {
    roots(config).into_iter().map(|r| r.path).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::deliver_batch;
    use crate::test_support::{Fixture, corpus, now};
    use std::path::Path;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn old(path: &Path, at: &str) {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        let secs = u64::try_from(t(at).as_second()).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .unwrap();
    }

    #[test]
    fn files_the_ledger_lost_are_purged_at_the_end_of_the_longest_rule_with_no_name() {
        let f = Fixture::new();
        let mut ledger = f.ledger();
        // Known: delivered through the ledger, in a day folder long due.
        deliver_batch(&mut ledger, &f.set(), vec![corpus("negative_plain")], now()).unwrap();
        let site = f.root.join("sites/690000880");
        let known = site.join("2021-10-29/MARTIN_Camille_2100000.pdf");
        assert!(known.exists());
        // Unknown: an old day folder, a recent one, a staff folder, the quarantine folder.
        for (p, mtime) in [
            (
                "sites/690000880/2021-04-01/DUPONT_Jean_1.pdf",
                "2021-04-01T10:00:00Z",
            ),
            (
                "sites/690000880/2021-10-20/DURAND_Ana_2.pdf",
                "2021-10-20T10:00:00Z",
            ),
            (
                "sites/690000880/imprimes/LEROY_Luc_3.pdf",
                "2021-03-01T10:00:00Z",
            ),
            (
                "sites/690000880/imprimes/PETIT_Eva_4.pdf",
                "2021-10-01T10:00:00Z",
            ),
            ("quarantine/12.eml", "2021-02-01T10:00:00Z"),
        ] {
            let p = f.root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"%PDF-1.4").unwrap();
            old(&p, mtime);
        }
        assert!(root_paths(&f.config).contains(&site));
        let at = t("2021-11-02T12:00:00Z");
        let n = sweep(&mut ledger, &f.config, &f.tz, at).unwrap();
        assert_eq!(n, 3);
        assert!(
            known.exists(),
            "a copy the ledger knows is the purge's business"
        );
        assert!(!site.join("2021-04-01/DUPONT_Jean_1.pdf").exists());
        assert!(
            site.join("2021-10-20/DURAND_Ana_2.pdf").exists(),
            "not due yet"
        );
        assert!(!site.join("imprimes/LEROY_Luc_3.pdf").exists());
        assert!(
            site.join("imprimes/PETIT_Eva_4.pdf").exists(),
            "not due yet"
        );
        assert!(!f.root.join("quarantine/12.eml").exists());

        crate::retention::log::flush(&mut ledger, &f.root.join("state")).unwrap();
        let log =
            std::fs::read_to_string(crate::retention::log::path(&f.root.join("state"))).unwrap();
        assert_eq!(log.matches("\"event\":\"orphan_purged\"").count(), 3);
        for name in ["DUPONT", "LEROY", "12.eml", "Jean"] {
            assert!(!log.contains(name), "{name} in the log");
        }
        assert!(
            log.contains("\"due\":\"2021-10-01T00:00:00+02:00\""),
            "{log}"
        );
        // Nothing more the second time.
        assert_eq!(sweep(&mut ledger, &f.config, &f.tz, at).unwrap(), 0);
    }
}
