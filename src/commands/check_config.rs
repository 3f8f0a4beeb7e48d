//! `check-config`: every error of the file at once (exit 2), then what this machine lacks,
//! and with `--finess` what the public register says of each site (warnings).

use std::path::Path;
use std::process::ExitCode;

use jiff::Timestamp;

use super::{ConfigProblem, Outcome};
use crate::core::config::Source;
use crate::source::imap::tls;
use crate::system::config_file;

pub fn run(path: &Path, finess: Option<&Path>, printers: bool, account: &str) -> Outcome {
    let config = super::load(path)?;
    let warnings = config_file::environment_warnings(&config, path);
    // As root (a person checking; not the unit's own check at start, which should not
    // query systemd from its sandbox).
    let shared = if nix::unistd::geteuid().is_root() {
        shared_with_others(&config, path)
    } else {
        Vec::new()
    };
    for w in warnings.iter().chain(&shared) {
        eprintln!("warning: {w}");
    }
    let mut errors = Vec::new();
    match Account::find(account, path) {
        // Not installed here: the file may be meant for another host.
        None => {
            for e in groups(&config, path, None) {
                eprintln!("warning: {e}");
            }
        }
        Some(who) => {
            errors.extend(groups(&config, path, Some(&who)));
            if nix::unistd::geteuid().is_root() {
                errors.extend(readable(&config, path, &who));
            }
        }
    }
    // The files that are here are read exactly as `run` reads them.
    if let Source::Imap(imap) = &config.source
        && warnings.is_empty()
    {
        errors.extend(
            tls::check(imap, Timestamp::now())
                .iter()
                .map(|e| e.to_string()),
        );
    }
    // Every error at once.
    if !errors.is_empty() {
        return Err(ConfigProblem::in_file(path, errors));
    }
    if let Some(register) = finess {
        let warnings = super::sites::check(&config, register)?;
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        if warnings.is_empty() {
            eprintln!(
                "every site is an open laboratory of the FINESS register ({})",
                register.display()
            );
        }
    }
    let printer_problems = if printers {
        check_printers(&config)?
    } else {
        0
    };
    println!(
        "{}: configuration is valid ({} site{})",
        path.display(),
        config.sites.len(),
        if config.sites.len() == 1 { "" } else { "s" }
    );
    print!("{}", folders(&config));
    if printer_problems > 0 {
        eprintln!(
            "{printer_problems} printer{} cannot print certificates now: their prints wait \
             (the files are delivered all the same)",
            if printer_problems == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks each site's printer for its state; prints a line per printer and returns how many
/// cannot print PDF certificates now.
fn check_printers(config: &crate::core::config::Config) -> anyhow::Result<usize> {
    use crate::printing::ipp::Client;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut problems = 0;
    for site in &config.sites {
        let Some(p) = &site.printer else { continue };
        let state =
            Client::new(p, std::time::Duration::from_secs(10)).map(|c| runtime.block_on(c.state()));
        let verdict = match state {
            Ok(Ok(s)) if s.accepting && s.pdf && s.state != 5 => {
                format!("{}, accepting jobs, takes PDF", s.state_name())
            }
            Ok(Ok(s)) => {
                problems += 1;
                let mut why = Vec::new();
                if s.state == 5 {
                    why.push(format!("stopped ({})", s.reasons.join(", ")));
                }
                if !s.accepting {
                    why.push("NOT accepting jobs".to_string());
                }
                if !s.pdf {
                    why.push("does NOT take application/pdf".to_string());
                }
                why.join("; ")
            }
            Ok(Err(e)) | Err(e) => {
                problems += 1;
                format!("NOT READY: {e}")
            }
        };
        println!(
            "  printer of site {} ({}): {} — {verdict}",
            site.finess, site.name, p.uri
        );
    }
    Ok(problems)
}

/// What the service will make of the folders: their group and modes, as staff will see them.
fn folders(config: &crate::core::config::Config) -> String {
    use crate::delivery::spool::{FILE_MODE, PARENT_MODE, PRIVATE_DIR_MODE, SITE_DIR_MODE};
    let mut out = String::new();
    let mut shared: Vec<&std::path::Path> = Vec::new();
    for site in &config.sites {
        let group = site.group.as_deref().unwrap_or("the service's own group");
        for (what, dir) in [("spool", &site.spool), ("sil", &site.sil)] {
            let Some(dir) = dir else { continue };
            out.push_str(&format!(
                "  site {} ({}): {what} {} — folders {:04o} and files {:04o}, group {group}\n",
                site.finess,
                site.name,
                dir.display(),
                SITE_DIR_MODE,
                FILE_MODE
            ));
            if let Some(parent) = dir.parent()
                && !shared.contains(&parent)
            {
                shared.push(parent);
            }
        }
    }
    for parent in shared {
        out.push_str(&format!(
            "  {}: made {:04o} with the service's group if missing (never a site's)\n",
            parent.display(),
            PARENT_MODE
        ));
    }
    out.push_str(&format!(
        "  quarantine {}: folder {:04o}, files {:04o}, the service's group\n",
        config.quarantine_dir.display(),
        PRIVATE_DIR_MODE,
        FILE_MODE
    ));
    out
}

/// Whom the service runs as: its name, user id and every group it has under its unit.
struct Account {
    name: String,
    uid: u32,
    gids: Vec<u32>,
    /// The unit that runs this configuration (`mss-dispatch`, `mss-dispatch@NAME`).
    unit: String,
}

impl Account {
    /// As root, the named account (none when it does not exist here), with its groups and
    /// those its unit adds (`SupplementaryGroups=`); otherwise this process, which is the
    /// service itself when the unit's `ExecStartPre=` runs it.
    fn find(name: &str, config_file: &Path) -> Option<Account> {
        use nix::unistd::{User, getegid, geteuid, getgrouplist, getgroups};
        let unit = unit_of(config_file);
        if geteuid().is_root() {
            let user = User::from_name(name).ok().flatten()?;
            let cname = std::ffi::CString::new(name).ok()?;
            let mut gids: Vec<u32> = getgrouplist(&cname, user.gid)
                .unwrap_or_default()
                .iter()
                .map(|g| g.as_raw())
                .collect();
            gids.extend(unit_groups(&unit));
            Some(Account {
                name: name.to_string(),
                uid: user.uid.as_raw(),
                gids,
                unit,
            })
        } else {
            let mut gids: Vec<u32> = getgroups()
                .unwrap_or_default()
                .iter()
                .map(|g| g.as_raw())
                .collect();
            gids.push(getegid().as_raw());
            let me = User::from_uid(geteuid())
                .ok()
                .flatten()
                .map_or_else(|| geteuid().to_string(), |u| u.name);
            Some(Account {
                name: me,
                uid: geteuid().as_raw(),
                gids,
                unit,
            })
        }
    }

    /// Why this account cannot read `path` (every folder above it searched, the file read),
    /// from the owners and modes; none when it can.
    fn cannot_read(&self, path: &Path) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let path = std::fs::canonicalize(path).ok()?;
        let may = |md: &std::fs::Metadata, bit: u32| {
            let class = if md.uid() == self.uid {
                md.mode() >> 6
            } else if self.gids.contains(&md.gid()) {
                md.mode() >> 3
            } else {
                md.mode()
            };
            class & bit != 0
        };
        let describe = |md: &std::fs::Metadata| {
            let owner = nix::unistd::User::from_uid(md.uid().into())
                .ok()
                .flatten()
                .map_or_else(|| md.uid().to_string(), |u| u.name);
            let group = nix::unistd::Group::from_gid(md.gid().into())
                .ok()
                .flatten()
                .map_or_else(|| md.gid().to_string(), |g| g.name);
            format!(
                "mode {:04o}, owner {owner}, group {group}",
                md.mode() & 0o7777
            )
        };
        for dir in path.ancestors().skip(1) {
            let md = std::fs::metadata(dir).ok()?;
            if !may(&md, 0o1) {
                return Some(format!(
                    "the service account {} cannot reach {}: the folder {} is closed to it \
                     ({}). Open it to the service's group: `chgrp {} {} && chmod g+x {}`",
                    self.name,
                    path.display(),
                    dir.display(),
                    describe(&md),
                    self.name,
                    dir.display(),
                    dir.display()
                ));
            }
        }
        let md = std::fs::metadata(&path).ok()?;
        (!may(&md, 0o4)).then(|| {
            format!(
                "the service account {} cannot read {} ({}). Give it the service's group: \
                 `chgrp {} {} && chmod 0640 {}`",
                self.name,
                path.display(),
                describe(&md),
                self.name,
                path.display(),
                path.display()
            )
        })
    }
}

/// The unit that runs a configuration file: `/etc/mss-dispatch/NAME.toml` is the template's
/// instance `mss-dispatch@NAME`, anything else `mss-dispatch`.
fn unit_of(config_file: &Path) -> String {
    match config_file::instance_path(config_file)
        .as_deref()
        .and_then(crate::core::config::instance_of)
    {
        Some(name) => format!("mss-dispatch@{name}"),
        None => "mss-dispatch".to_string(),
    }
}

/// Whether the unit of another configuration file is in use on this machine (enabled or
/// running). Without systemd, or for files outside `/etc/mss-dispatch`, every file is.
fn in_use(config_file: &Path) -> bool {
    if !Path::new("/run/systemd/system").is_dir()
        || config_file.parent() != Some(Path::new("/etc/mss-dispatch"))
    {
        return true;
    }
    let unit = unit_of(config_file);
    ["is-enabled", "is-active"].iter().any(|verb| {
        std::process::Command::new("systemctl")
            .args([verb, "--quiet", &unit])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// The folders a configuration writes, each with its key; `true` for the state directory
/// (the template's state directories nest under the plain unit's, by design).
fn written_folders(config: &crate::core::config::Config) -> Vec<(String, &Path, bool)> {
    let mut out = vec![
        ("state.dir".to_string(), config.state_dir.as_path(), true),
        (
            "quarantine.dir".to_string(),
            config.quarantine_dir.as_path(),
            false,
        ),
    ];
    for (i, site) in config.sites.iter().enumerate() {
        for (what, dir) in [("spool", &site.spool), ("sil", &site.sil)] {
            if let Some(dir) = dir {
                out.push((format!("site[{i}].{what}"), dir.as_path(), false));
            }
        }
    }
    out
}

/// Warnings for each folder this configuration shares with another one beside it whose
/// service is in use: two services on one folder would each take the other's files for
/// orphans of its own and purge them, or fight over one ledger.
fn shared_with_others(config: &crate::core::config::Config, path: &Path) -> Vec<String> {
    let Ok(me) = std::path::absolute(path) else {
        return Vec::new();
    };
    let Some(dir) = me.parent() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut others: Vec<std::path::PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml") && *p != me)
        .collect();
    others.sort();
    let mine = written_folders(config);
    let mut warnings = Vec::new();
    for other_path in others {
        let Ok(other) = config_file::load(&other_path) else {
            continue;
        };
        if !in_use(&other_path) {
            continue;
        }
        let theirs = written_folders(&other);
        for (key, a, a_state) in &mine {
            for (other_key, b, b_state) in &theirs {
                // Two state directories only when they are one; anything else also nested.
                let overlap = if *a_state && *b_state {
                    a == b
                } else {
                    a.starts_with(b) || b.starts_with(a)
                };
                if overlap {
                    warnings.push(format!(
                        "{}: {key} {} {} {other_key} {} of {}, whose service is in use here: \
                         two services must not share a folder (each would purge the other's \
                         files as orphans of its own); give each its own",
                        path.display(),
                        a.display(),
                        if a == b {
                            "is the same folder as"
                        } else {
                            "overlaps"
                        },
                        b.display(),
                        other_path.display()
                    ));
                }
            }
        }
    }
    warnings
}

/// The groups a unit adds to its account (`SupplementaryGroups=`, drop-ins included), as
/// systemd reports them; none without systemd.
fn unit_groups(unit: &str) -> Vec<u32> {
    if !Path::new("/run/systemd/system").is_dir() {
        return Vec::new();
    }
    let Ok(out) = std::process::Command::new("systemctl")
        .args(["show", "--property=SupplementaryGroups", "--value", unit])
        .stderr(std::process::Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|name| nix::unistd::Group::from_name(name).ok().flatten())
        .map(|g| g.gid.as_raw())
        .collect()
}

/// The files the service reads itself, each checked as its account: a file only root can
/// read would otherwise pass here and fail at start. (The IMAP password handed over as a
/// systemd credential is read by systemd, not by the account.)
fn readable(config: &crate::core::config::Config, file: &Path, who: &Account) -> Vec<String> {
    let mut wanted: Vec<(String, &Path)> = vec![("the configuration".into(), file)];
    if let Source::Imap(m) = &config.source {
        wanted.extend(m.files().into_iter().map(|(key, p)| (key.to_string(), p)));
    }
    for (i, site) in config.sites.iter().enumerate() {
        if let Some(ca) = site.printer.as_ref().and_then(|p| p.ca_file.as_ref()) {
            wanted.push((
                format!(
                    "site[{i}] ({} \"{}\").printer_ca_file",
                    site.finess, site.name
                ),
                ca,
            ));
        }
    }
    wanted
        .into_iter()
        .filter_map(|(key, p)| {
            who.cannot_read(p)
                .map(|why| format!("{}: {key}: {why}", file.display()))
        })
        .collect()
}

/// Every site group must exist, and the service must be a member of it (the kernel lets a
/// process give a file only a group it is in): errors naming the site and saying what to do.
/// Without the account (not installed here), only that the groups exist.
fn groups(config: &crate::core::config::Config, file: &Path, who: Option<&Account>) -> Vec<String> {
    use nix::unistd::Group;
    let mut errors = Vec::new();
    let mut wanted: Vec<(String, u32)> = Vec::new();
    for (i, site) in config.sites.iter().enumerate() {
        let Some(name) = &site.group else { continue };
        match Group::from_name(name) {
            Ok(Some(g)) => wanted.push((name.clone(), g.gid.as_raw())),
            _ => errors.push(format!(
                "{}: site[{i}] ({} \"{}\").group: no group \"{name}\" on this machine \
                 (groupadd {name})",
                file.display(),
                site.finess,
                site.name
            )),
        }
    }
    let Some(who) = who else { return errors };
    let mut missing: Vec<&str> = wanted
        .iter()
        .filter(|(_, gid)| !who.gids.contains(gid))
        .map(|(n, _)| n.as_str())
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if !missing.is_empty() {
        let unit = &who.unit;
        errors.push(format!(
            "{}: the service account {} is not in the site group{} {}: it could not give \
             the sites' files their group. Add it: `usermod -aG {} {}`; or give the groups \
             to the unit only, with a drop-in (`systemctl edit {unit}`) of the two lines \
             `[Service]` and `SupplementaryGroups={}`. Then `systemctl restart {unit}`",
            file.display(),
            who.name,
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
            missing.join(","),
            who.name,
            missing.join(" ")
        ));
    }
    errors
}
