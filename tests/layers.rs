//! The dependency direction of ARCHITECTURE.md: `commands → daemon → delivery/retention →
//! source/ledger → core`, with `system` beside `core`. A module may use the modules of its
//! own tier and of the tiers below it, never one above: this test reads every file of `src/`
//! and fails on a `crate::…` path that climbs. `core` uses nothing but itself; `system` only
//! `core`. Code under `#[cfg(test)]` follows the same rule (its helpers are in
//! `test_support`, which belongs to no tier).

use std::path::{Path, PathBuf};

/// Each top-level module and its tier, lowest first.
const TIERS: &[(&str, u8)] = &[
    ("core", 0),
    ("system", 0),
    ("source", 1),
    ("ledger", 1),
    ("delivery", 2),
    ("retention", 2),
    ("printing", 2),
    ("daemon", 3),
    ("commands", 4),
];

fn tier(module: &str) -> Option<u8> {
    TIERS.iter().find(|(m, _)| *m == module).map(|(_, t)| *t)
}

/// Whether `from` may use `to`.
fn allowed(from: &str, to: &str) -> bool {
    match (from, to) {
        (_, "test_support") => true,
        ("core", to) => to == "core",
        ("system", to) => to == "core" || to == "system",
        (from, to) => match (tier(from), tier(to)) {
            (Some(f), Some(t)) => t <= f,
            _ => false,
        },
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules named by `crate::NAME` in one line of code (comments removed).
fn crate_paths(line: &str) -> Vec<&str> {
    let code = line.split("//").next().unwrap_or("");
    code.match_indices("crate::")
        .filter(|(i, _)| {
            // `$crate::` in a macro names this crate too; `mss_dispatch::` is not used inside.
            !code[..*i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
        })
        .map(|(i, m)| {
            let rest = &code[i + m.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

/// Every `crate::` path in `src/` that climbs, as `file:line: from -> to`.
fn climbs(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut out = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(src).unwrap();
        let Some(from) = rel.components().next().and_then(|c| c.as_os_str().to_str()) else {
            continue;
        };
        let from = from.trim_end_matches(".rs");
        if tier(from).is_none() {
            // lib.rs, main.rs, test_support.rs: the crate's root and test helpers.
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for to in crate_paths(line) {
                if !allowed(from, to) {
                    out.push(format!("{}:{}: {from} -> {to}", rel.display(), n + 1));
                }
            }
        }
    }
    out
}

#[test]
fn no_module_uses_a_module_of_a_higher_tier() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = climbs(&src);
    assert!(
        found.is_empty(),
        "lower layers use higher ones (see ARCHITECTURE.md):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_a_climb_and_lets_the_rest_pass() {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "ledger/mod.rs",
        "use crate::core::x;\nuse crate::source::y;\n",
    );
    write(
        "source/imap.rs",
        "use crate::daemon::z; // climbs\n// crate::commands in a comment\n",
    );
    write("core/a.rs", "fn f() { crate::system::tz::paris(); }\n");
    write(
        "system/b.rs",
        "use crate::core::c;\nuse crate::delivery::d;\n",
    );
    write(
        "delivery/c.rs",
        "use crate::retention::purge;\nuse crate::test_support::x;\n",
    );
    write("lib.rs", "pub mod commands;\n");
    let mut found = climbs(dir.path());
    found.sort();
    assert_eq!(
        found,
        [
            "core/a.rs:1: core -> system",
            "source/imap.rs:1: source -> daemon",
            "system/b.rs:2: system -> delivery",
        ]
    );
}
