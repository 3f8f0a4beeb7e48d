//! The configuration's sites as written, read without validating them (a mistyped FINESS is
//! what the diff is for), and `--write`: the missing sites added and mistyped FINESS
//! corrected, every comment and the layout kept (`toml_edit`), after a backup. A site's
//! spool, SIL, group and printer are never changed; sites closed or unknown are left for a
//! person to remove (certificates for them may still arrive).

use std::path::{Path, PathBuf};

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, Value};

use crate::commands::ConfigProblem;
use crate::core::register::{self, Configured, Diff};

/// The configuration's text, parsed for editing, and its sites.
pub fn configured(path: &Path) -> anyhow::Result<(DocumentMut, Vec<Configured>)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigProblem::usage(format!("{}: cannot read: {e}", path.display())))?;
    let doc: DocumentMut = text
        .parse()
        .map_err(|e| ConfigProblem::usage(format!("{}: not valid TOML: {e}", path.display())))?;
    let mut sites = Vec::new();
    if let Some(tables) = doc.get("site").and_then(Item::as_array_of_tables) {
        for (index, t) in tables.iter().enumerate() {
            let text = |k: &str| {
                t.get(k)
                    .and_then(Item::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            sites.push(Configured {
                index,
                finess: text("finess"),
                name: text("name"),
            });
        }
    }
    Ok((doc, sites))
}

/// Applies the additions and corrections of `diff` to `path`; returns the backup's path.
/// The new text must pass the configuration's validation, else nothing is written.
pub fn apply(
    path: &Path,
    mut doc: DocumentMut,
    diff: &Diff,
    spool_root: &str,
) -> anyhow::Result<PathBuf> {
    if doc.get("site").is_none() {
        doc.insert("site", Item::ArrayOfTables(ArrayOfTables::new()));
    }
    let Some(tables) = doc.get_mut("site").and_then(Item::as_array_of_tables_mut) else {
        return Err(ConfigProblem::in_file(
            path,
            vec!["site: expected [[site]] tables".into()],
        ));
    };
    for (c, e) in &diff.typos {
        if let Some(v) = tables
            .get_mut(c.index)
            .and_then(|t| t.get_mut("finess"))
            .and_then(Item::as_value_mut)
        {
            let decor = v.decor().clone();
            *v = Value::from(e.finess.as_str());
            *v.decor_mut() = decor;
        }
    }
    for e in &diff.add {
        let mut t = Table::new();
        t.insert("finess", toml_edit::value(e.finess.as_str()));
        t.insert("name", toml_edit::value(e.name()));
        t.insert(
            "spool",
            toml_edit::value(format!("{}/{}", spool_root.trim_end_matches('/'), e.finess)),
        );
        t.decor_mut().set_prefix(format!(
            "\n# {} (added from the FINESS register)\n",
            register::site_comment(e)
        ));
        tables.push(t);
    }
    let text = doc.to_string();
    if let Err(errors) = crate::system::config_file::parse_at(&text, path) {
        return Err(ConfigProblem::in_file(
            path,
            errors
                .iter()
                .map(|e| format!("after the edit: {e}"))
                .collect(),
        ));
    }
    let backup = backup_path(path);
    std::fs::copy(path, &backup).map_err(|e| {
        anyhow::anyhow!(
            "cannot back up {} to {}: {e}",
            path.display(),
            backup.display()
        )
    })?;
    crate::system::dir::replace_file_like(path, text.as_bytes())?;
    Ok(backup)
}

/// `FILE.bak-YYYYMMDD-HHMMSS`, beside the file.
fn backup_path(path: &Path) -> PathBuf {
    let stamp = jiff::Timestamp::now()
        .to_zoned_datetime(crate::system::tz::paris())
        .strftime("%Y%m%d-%H%M%S")
        .to_string();
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".bak-{stamp}"));
    path.with_file_name(name)
}
