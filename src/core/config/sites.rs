//! `[[site]]`: each lab site's FINESS, folders and group; and the check that no folder of
//! one is inside another's, the quarantine's or the state directory.

use std::path::Path;

use super::reader::{Reader, Section};
use super::*;

/// Sites, each with its index in the file (for messages).
pub(super) fn read_sites(r: &mut Reader, top: &mut Section) -> Vec<(usize, Site)> {
    let Some(values) = r.array(top, "site") else {
        if !top.has("site") {
            r.error("site", "at least one [[site]] is required");
        }
        return Vec::new();
    };
    if values.is_empty() {
        r.error("site", "at least one [[site]] is required");
    }
    let mut sites: Vec<(usize, Site)> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let Value::Table(t) = v else {
            r.error(format!("site[{i}]"), "expected a table ([[site]])");
            continue;
        };
        let mut s = Section::new(format!("site[{i}]"), t);
        let finess = r.required_string(&mut s, "finess").and_then(|f| {
            Finess::parse(&f)
                .map_err(|e| r.error(s.key("finess"), format!("{f:?} is not a valid FINESS: {e}")))
                .ok()
        });
        if let Some(f) = &finess
            && let Some((j, _)) = sites.iter().find(|(_, site)| &site.finess == f)
        {
            r.error(
                s.key("finess"),
                format!("duplicate site {f} (already site[{j}])"),
            );
        }
        let name = r.required_string(&mut s, "name");
        let spool = r.path(&mut s, "spool");
        let sil = r.path(&mut s, "sil");
        if !s.has("spool") && !s.has("sil") {
            r.error(
                s.key("spool"),
                "a site needs a spool folder, a sil folder, or both",
            );
        }
        let group = r.string(&mut s, "group");
        if let Some(g) = &group
            && (g.trim().is_empty() || g.contains([':', '/', '\n', '\0']))
        {
            r.error(s.key("group"), format!("{g:?} is not a group name"));
        }
        r.finish(s);
        // Kept even when other keys are wrong, so that the folder checks still run.
        if let Some(finess) = finess {
            sites.push((
                i,
                Site {
                    finess,
                    name: name.unwrap_or_default().trim().to_string(),
                    spool,
                    sil,
                    group,
                },
            ));
        }
    }
    sites
}

/// A site's spool holds its own certificates only (DESIGN invariant 4): no spool may equal or
/// contain another site's spool, the quarantine or the state directory.
pub(super) fn check_separation(
    r: &mut Reader,
    sites: &[(usize, Site)],
    quarantine: &Path,
    state: &Path,
) {
    let overlaps = |a: &Path, b: &Path| a.starts_with(b) || b.starts_with(a);
    for (i, a) in sites {
        let Some(spool) = &a.spool else { continue };
        for (j, b) in sites.iter().filter(|(j, _)| j != i) {
            if j > i
                && b.spool
                    .as_deref()
                    .is_some_and(|other| overlaps(spool, other))
            {
                r.error(
                    format!("site[{j}].spool"),
                    format!("overlaps site[{i}].spool: each site needs a folder of its own"),
                );
            }
            if b.sil.as_deref().is_some_and(|other| overlaps(spool, other)) {
                r.error(
                    format!("site[{j}].sil"),
                    format!("overlaps site[{i}].spool: another site's staff would see it"),
                );
            }
        }
    }
    for (i, site) in sites {
        for (key, dir) in [("spool", &site.spool), ("sil", &site.sil)] {
            let Some(dir) = dir else { continue };
            for (what, other) in [("quarantine.dir", quarantine), ("state.dir", state)] {
                if overlaps(dir, other) {
                    r.error(format!("site[{i}].{key}"), format!("overlaps {what}"));
                }
            }
        }
    }
}
