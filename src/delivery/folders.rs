//! The site folders the configuration names, made with their modes and groups.

use std::collections::HashMap;
use std::path::PathBuf;

use super::spool::{self, Access, Dir};
use crate::core::config::Config;
use crate::core::finess::Finess;

/// The folders the configuration names for sites (spools and SIL drop folders), each with
/// its group: a site's group, or for a SIL folder shared by sites of different groups, none
/// (the service's own). The quarantine folder is not one of them.
pub fn site_folders(config: &Config, groups: &HashMap<Finess, u32>) -> Vec<(PathBuf, Access)> {
    let mut out: Vec<(PathBuf, Option<u32>, bool)> = Vec::new();
    for site in &config.sites {
        let gid = groups.get(&site.finess).copied();
        for dir in [&site.spool, &site.sil].into_iter().flatten() {
            match out.iter_mut().find(|(d, _, _)| d == dir) {
                Some((_, g, mixed)) => *mixed |= *g != gid,
                None => out.push((dir.clone(), gid, false)),
            }
        }
    }
    out.into_iter()
        .map(|(dir, gid, mixed)| {
            (
                dir,
                Access {
                    gid: gid.filter(|_| !mixed),
                },
            )
        })
        .collect()
}

/// Creates the site folders (and their missing shared parents) with their modes and groups,
/// set on their handles; an existing folder this service owns is brought to them.
pub fn create_site_folders(config: &Config, groups: &HashMap<Finess, u32>) {
    for (dir, access) in site_folders(config, groups) {
        let made = Dir::ensure_root(&dir, access, spool::SITE_DIR_MODE)
            .and_then(|d| d.tidy(access, spool::SITE_DIR_MODE));
        if let Err(e) = made {
            tracing::warn!(error = %e, "cannot create a site folder");
        }
    }
}
