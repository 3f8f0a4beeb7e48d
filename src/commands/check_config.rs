//! `check-config`: every error of the file at once (exit 2), then what this machine lacks,
//! and with `--finess` what the public register says of each site (warnings).

use std::path::Path;
use std::process::ExitCode;

use jiff::Timestamp;

use super::{ConfigProblem, Outcome};
use crate::core::config::Source;
use crate::source::imap::tls;
use crate::system::config_file;

pub fn run(path: &Path, finess: Option<&Path>, printers: bool) -> Outcome {
    let config = super::load(path)?;
    let warnings = config_file::environment_warnings(&config, path);
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let group_errors = groups(&config, path);
    // Where the service is not installed, the file may be meant for another host.
    if !is_service_host() {
        for e in &group_errors {
            eprintln!("warning: {e}");
        }
    } else if !group_errors.is_empty() {
        return Err(ConfigProblem::in_file(path, group_errors));
    }
    // The files that are here are read exactly as `run` reads them.
    if let Source::Imap(imap) = &config.source
        && warnings.is_empty()
    {
        let errors = tls::check(imap, Timestamp::now());
        if !errors.is_empty() {
            return Err(ConfigProblem::in_file(
                path,
                errors.iter().map(|e| e.to_string()).collect(),
            ));
        }
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

/// The account the service runs as (`mss-dispatch`, or whoever runs this when it is not
/// root: the unit's `ExecStartPre=` runs it as the service).
pub const ACCOUNT: &str = "mss-dispatch";

/// This machine runs the service: its account exists, or this is not root (the service itself
/// under its unit, or a user checking their own installation).
fn is_service_host() -> bool {
    !nix::unistd::geteuid().is_root()
        || nix::unistd::User::from_name(ACCOUNT)
            .ok()
            .flatten()
            .is_some()
}

/// Every site group must exist, and the service must be a member of it (the kernel lets a
/// process give a file only a group it is in): errors naming the site and saying what to do.
fn groups(config: &crate::core::config::Config, file: &Path) -> Vec<String> {
    use nix::unistd::{Group, User, getegid, geteuid, getgrouplist, getgroups};
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
    if wanted.is_empty() {
        return errors;
    }
    // As root: the service's account, as the system will start it; otherwise this process,
    // which is the service itself under the unit.
    let (who, member_of): (String, Vec<u32>) = if geteuid().is_root() {
        let Ok(Some(user)) = User::from_name(ACCOUNT) else {
            // Not installed here: nothing to check the groups against.
            return errors;
        };
        let name = std::ffi::CString::new(ACCOUNT).expect("no NUL");
        let gids = getgrouplist(&name, user.gid).unwrap_or_default();
        (ACCOUNT.into(), gids.iter().map(|g| g.as_raw()).collect())
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
        (me, gids)
    };
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|(_, gid)| !member_of.contains(gid))
        .map(|(n, _)| n)
        .collect();
    if !missing.is_empty() {
        let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        errors.push(format!(
            "{}: the service account {who} is not in the site group{} {}: it could not give \
             the sites' files their group. Add it: `usermod -aG {} {who}` then `systemctl \
             restart mss-dispatch` (or a drop-in, `systemctl edit mss-dispatch`: \
             [Service] SupplementaryGroups={})",
            file.display(),
            if list.len() == 1 { "" } else { "s" },
            list.join(", "),
            list.join(","),
            list.join(" ")
        ));
    }
    errors
}
