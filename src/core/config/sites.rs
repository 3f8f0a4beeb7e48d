//! `[[site]]`: each lab site's FINESS, folders and group; and the check that no folder of
//! one is inside another's, the quarantine's or the state directory.

use std::path::Path;

use super::reader::{Reader, Section};
use super::*;

/// Sites, each with its index in the file (for messages).
pub(super) fn read_sites(r: &mut Reader, top: &mut Section) -> Vec<(usize, Site)> {
    if let Some(Value::Table(_)) = top.table.get("site") {
        // `[site]` (one table) where `[[site]]` (one entry of a list) is meant.
        top.has("site");
        r.error(
            "site",
            "write [[site]], with double brackets: each site is one entry of a list",
        );
        return Vec::new();
    }
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
        let printer = read_printer(r, &mut s);
        if printer.is_some() && !s.has("spool") {
            r.error(
                s.key("printer"),
                "a site prints what is delivered to its spool: give it a spool folder",
            );
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
                    printer,
                },
            ));
        }
    }
    sites
}

/// `printer`, `printer_ca_file`, `copies` and `print` of a site.
fn read_printer(r: &mut Reader, s: &mut Section) -> Option<Printer> {
    let uri = r.string(s, "printer");
    let ca_file = r.path(s, "printer_ca_file");
    let copies = r.integer(s, "copies");
    let print = r.string(s, "print");
    let Some(uri) = uri else {
        for key in ["printer_ca_file", "copies", "print"] {
            if s.has(key) {
                r.error(s.key(key), "only with a printer");
            }
        }
        return None;
    };
    let parsed = parse_printer_uri(&uri);
    if let Err(why) = &parsed {
        r.error(s.key("printer"), format!("{uri:?}: {why}"));
    }
    let tls = parsed.as_ref().is_ok_and(|p| p.0);
    if ca_file.is_some() && !tls && parsed.is_ok() {
        r.error(
            s.key("printer_ca_file"),
            "only for an ipps:// printer (TLS)",
        );
    }
    if tls && ca_file.is_none() && !s.has("printer_ca_file") {
        r.error(
            s.key("printer_ca_file"),
            "an ipps:// printer needs the CA that signed its certificate (the only one trusted)",
        );
    }
    let copies = match copies {
        None => 1,
        Some(n @ 1..=10) => n as u32,
        Some(n) => {
            r.error(s.key("copies"), format!("{n}: between 1 and 10"));
            1
        }
    };
    let print = match print.as_deref() {
        None | Some("all") => PrintWhich::All,
        Some("positives") => PrintWhich::Positives,
        Some("negatives") => PrintWhich::Negatives,
        Some(other) => {
            r.error(
                s.key("print"),
                format!("{other:?}: \"all\", \"positives\" or \"negatives\""),
            );
            PrintWhich::All
        }
    };
    let (_, host, port, path) = parsed.ok()?;
    Some(Printer {
        uri,
        host,
        port,
        path,
        ca_file,
        copies,
        print,
    })
}

/// `ipp://HOST[:PORT]/PATH` or `ipps://…`: TLS, host, port (631 by default), path.
pub fn parse_printer_uri(uri: &str) -> Result<(bool, String, u16, String), String> {
    let (tls, rest) = if let Some(r) = uri.strip_prefix("ipps://") {
        (true, r)
    } else if let Some(r) = uri.strip_prefix("ipp://") {
        (false, r)
    } else {
        return Err("a printer is ipp://HOST[:PORT]/PATH or ipps://HOST[:PORT]/PATH".into());
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/ipp/print"),
    };
    if authority.contains('@') {
        return Err("no user or password in the printer's address".into());
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
            Ok(port) if port > 0 => (h, port),
            _ => return Err(format!("{p:?} is not a port")),
        },
        _ => (authority, 631),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err("no host".into());
    }
    if path.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err("the path holds spaces".into());
    }
    Ok((tls, host.to_string(), port, path.to_string()))
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
