//! `sites import`: the `[[site]]` table of a lab group's open laboratories, read from the
//! public FINESS register, or, with `--config`, what differs from the configuration (and
//! `--write` to apply the safe part of it). Also what `check-config --finess` asks of the
//! register. A bad register file is a usage error (exit 2) that says where.

mod read;
mod write;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{ConfigProblem, Outcome};
use crate::core::finess::Finess;
use crate::core::register::{self, Configured, Diff, Establishment};
pub use read::Format;

/// The arguments of `sites import`.
pub struct Import {
    /// FINESS juridique of the legal entities.
    pub legal: Vec<String>,
    pub file: PathBuf,
    pub categories: Vec<String>,
    pub spool_root: String,
    pub config: Option<PathBuf>,
    pub write: bool,
}

pub fn import(args: &Import) -> Outcome {
    let mut legal = BTreeSet::new();
    for ej in &args.legal {
        let f = Finess::parse(ej)
            .map_err(|e| ConfigProblem::usage(format!("--ej {ej:?}: not a FINESS number: {e}")))?;
        legal.insert(f.as_str().to_string());
    }
    for c in &args.categories {
        if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigProblem::usage(format!(
                "--categories: {c:?} is not a category code (three digits, e.g. 611)"
            )));
        }
    }
    let configured = match &args.config {
        Some(path) => Some(write::configured(path)?),
        None => None,
    };
    let wanted: BTreeSet<String> = configured
        .iter()
        .flat_map(|(_, sites)| sites.iter().map(|c| normalised(&c.finess)))
        .collect();
    let mut sites: Vec<Establishment> = Vec::new();
    let mut known: BTreeMap<String, Establishment> = BTreeMap::new();
    let format = read::read(&args.file, &mut |e| {
        if wanted.contains(&e.finess) {
            known.insert(e.finess.clone(), e.clone());
        }
        if register::is_site_of(&e, &legal, &args.categories) {
            register::checked(&e)?;
            sites.push(e);
        }
        Ok(())
    })
    .map_err(|e| ConfigProblem::usage(format!("{}: {e}", args.file.display())))?;
    sites.sort_by(|a, b| a.finess.cmp(&b.finess));
    sites.dedup_by(|a, b| a.finess == b.finess);
    if sites.is_empty() {
        return Err(ConfigProblem::usage(format!(
            "{} ({format}): no open establishment of categor{} {} under the legal entit{} {}; \
             check the FINESS juridique (the legal entity's, not a site's)",
            args.file.display(),
            if args.categories.len() == 1 {
                "y"
            } else {
                "ies"
            },
            args.categories.join(", "),
            if legal.len() == 1 { "y" } else { "ies" },
            legal.iter().cloned().collect::<Vec<_>>().join(", "),
        )));
    }
    eprintln!(
        "{} ({format}): {} open laborator{} of {}",
        args.file.display(),
        sites.len(),
        if sites.len() == 1 { "y" } else { "ies" },
        legal.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    let Some((document, configured)) = configured else {
        print!("{}", register::site_table(&sites, &args.spool_root));
        return Ok(ExitCode::SUCCESS);
    };
    let path = args
        .config
        .as_deref()
        .expect("configured comes from --config");
    let diff = register::diff(&configured, &sites, &known, &legal);
    print!("{}", diff_text(path, &diff));
    if args.write && !(diff.add.is_empty() && diff.typos.is_empty()) {
        let backup = write::apply(path, document, &diff, &args.spool_root)?;
        println!(
            "{} written ({} site{} added, {} FINESS corrected); the previous file is {}",
            path.display(),
            diff.add.len(),
            if diff.add.len() == 1 { "" } else { "s" },
            diff.typos.len(),
            backup.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A FINESS as the register writes it, when it is one.
fn normalised(s: &str) -> String {
    Finess::parse(s).map_or_else(|_| s.trim().to_uppercase(), |f| f.as_str().to_string())
}

fn describe(e: &Establishment) -> String {
    format!("{} {} ({})", e.finess, e.name(), register::site_comment(e))
}

fn site_ref(c: &Configured) -> String {
    if c.name.is_empty() {
        format!("site[{}] {}", c.index, c.finess)
    } else {
        format!("site[{}] {} ({})", c.index, c.finess, c.name)
    }
}

/// The diff, one line per site, by kind.
fn diff_text(path: &Path, d: &Diff) -> String {
    if d.is_empty() {
        return format!("{}: the sites match the register\n", path.display());
    }
    let mut out = format!("{}:\n", path.display());
    for e in &d.add {
        out.push_str(&format!("  to add: {}\n", describe(e)));
    }
    for (c, e) in &d.typos {
        out.push_str(&format!(
            "  typed wrong? {} is not in the register; {} is, and is not configured\n",
            site_ref(c),
            describe(e)
        ));
    }
    for (c, e) in &d.closed {
        out.push_str(&format!(
            "  closed: {} is closed or inactive in the register ({})\n",
            site_ref(c),
            e.at
        ));
    }
    for c in &d.missing {
        out.push_str(&format!(
            "  unknown: {} is not in the register (closed, or never registered; the CSV \
             extract lists open establishments only)\n",
            site_ref(c)
        ));
    }
    for (c, e) in &d.other_legal {
        out.push_str(&format!(
            "  other legal entity: {} belongs to {} in the register\n",
            site_ref(c),
            e.legal
        ));
    }
    for (c, e) in &d.not_lab {
        out.push_str(&format!(
            "  not a laboratory: {} is of category {}\n",
            site_ref(c),
            e.category_text()
        ));
    }
    out
}

/// What `check-config --finess` says of each configured site: unknown, closed, not a
/// laboratory, or alone under a legal entity when the others share one. Warnings only.
pub fn check(config: &crate::core::config::Config, file: &Path) -> anyhow::Result<Vec<String>> {
    let wanted: BTreeSet<String> = config
        .sites
        .iter()
        .map(|s| s.finess.as_str().to_string())
        .collect();
    let mut known: BTreeMap<String, Establishment> = BTreeMap::new();
    let format = read::read(file, &mut |e| {
        if wanted.contains(&e.finess) {
            known.insert(e.finess.clone(), e);
        }
        Ok(())
    })
    .map_err(|e| ConfigProblem::usage(format!("{}: {e}", file.display())))?;
    // A site alone under its legal entity while others share one is likely a mistake (a
    // group may hold several entities, each with several sites).
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for e in known.values().filter(|e| e.open && e.is_lab()) {
        *count.entry(e.legal.as_str()).or_default() += 1;
    }
    let shared: Vec<&str> = count
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(l, _)| *l)
        .collect();
    let mut warnings = Vec::new();
    for (i, site) in config.sites.iter().enumerate() {
        let who = format!("site[{i}] {} ({})", site.finess, site.name);
        match known.get(site.finess.as_str()) {
            None => warnings.push(format!("{who}: unknown to the FINESS register ({format})")),
            Some(e) if !e.open => {
                warnings.push(format!("{who}: closed or inactive in the FINESS register"))
            }
            Some(e) if !e.is_lab() => warnings.push(format!(
                "{who}: not a laboratory in the FINESS register (category {})",
                e.category_text()
            )),
            Some(e) if !shared.is_empty() && count.get(e.legal.as_str()) == Some(&1) => warnings
                .push(format!(
                    "{who}: the only site under the legal entity {} in the FINESS register; \
                     the others are under {}",
                    e.legal,
                    shared.join(", ")
                )),
            Some(_) => {}
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests;
