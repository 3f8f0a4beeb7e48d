//! `sites import` and `check-config --finess` on the register fixtures built from the
//! documented formats (`fixtures/finess/make.py`): the JSON flow, plain and gzip, and the CSV
//! extract in UTF-8 and Windows-1252, with two legal entities and 12 sites.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{bin, command, project_root, stderr, stdout, workdir};

const EJ_A: &str = "690000013";
const EJ_B: &str = "750000127";
const TYPO: &str = "690000881";
const BELLECOUR: &str = "690000880";
const VAULX: &str = "690001532";
const BRON_CLOSED: &str = "690001540";
const OULLINS_INACTIVE: &str = "690001557";
const HEALTH_CENTRE: &str = "750001539";

fn fixture(name: &str) -> PathBuf {
    project_root().join("fixtures/finess").join(name)
}

fn sites(args: &[&str]) -> Output {
    Command::new(bin())
        .arg("sites")
        .arg("import")
        .args(args)
        .output()
        .unwrap()
}

fn import(file: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--ej", EJ_A, "--ej", EJ_B, "--file", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    sites(&args)
}

#[test]
fn the_json_flow_and_the_csv_extract_give_the_same_table() {
    let json = import(&fixture("structures.json"), &[]);
    assert!(json.status.success(), "{}", stderr(&json));
    let table = stdout(&json);
    for other in [
        "structures.json.gz",
        "extract-utf8.csv",
        "extract-cp1252.csv",
    ] {
        let out = import(&fixture(other), &[]);
        assert!(out.status.success(), "{other}: {}", stderr(&out));
        assert_eq!(stdout(&out), table, "{other}");
    }
    assert_eq!(table.matches("[[site]]").count(), 9, "{table}");
    for absent in [BRON_CLOSED, OULLINS_INACTIVE, HEALTH_CENTRE] {
        assert!(!table.contains(absent), "{absent} is listed:\n{table}");
    }
    // Padding trimmed, quotes kept, the long name preferred, address and category as comment.
    assert!(table.contains("name = \"LABORATOIRE DE BIOLOGIE MÉDICALE BELLECOUR\"\n"));
    assert!(table.contains("name = \"LBM \\\"LES ALPES\\\"; SITE NORD (PLATEAU)\"\n"));
    assert!(table.contains("# 12 PL BELLECOUR, 69002 LYON — 611 "));
    assert!(table.contains(&format!(
        "spool = \"/var/spool/mss-dispatch/sites/{BELLECOUR}\""
    )));

    // The table is a configuration's sites: with a mailbox, it passes check-config.
    let dir = workdir();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[mailbox]\nmaildir = \"{}/Maildir\"\n[state]\ndir = \"{}/state\"\n\n{table}",
            dir.path().display(),
            dir.path().display()
        ),
    )
    .unwrap();
    let check = command(&config, &["check-config"]);
    assert!(check.status.success(), "{}", stderr(&check));
}

/// The lines of a diff that name a site.
fn named(out: &Output) -> Vec<String> {
    stdout(out)
        .lines()
        .filter(|l| l.starts_with("  "))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_diff_names_exactly_the_typo_the_missing_site_and_the_closed_one() {
    for file in ["structures.json.gz", "extract-cp1252.csv"] {
        let out = import(
            &fixture(file),
            &["--config", fixture("config-diff.toml").to_str().unwrap()],
        );
        assert!(out.status.success(), "{file}: {}", stderr(&out));
        let lines = named(&out);
        assert_eq!(lines.len(), 3, "{file}:\n{}", stdout(&out));
        let line = |finess: &str| {
            lines
                .iter()
                .find(|l| l.contains(finess))
                .unwrap_or_else(|| panic!("{file}: {finess} not named:\n{}", stdout(&out)))
                .clone()
        };
        assert!(line(TYPO).contains("typed wrong?") && line(TYPO).contains(BELLECOUR));
        assert!(line(VAULX).starts_with("  to add: "));
        // The JSON flow knows it closed; the CSV extract no longer lists it.
        let bron = line(BRON_CLOSED);
        assert!(
            bron.contains("closed") || bron.contains("not in the register"),
            "{bron}"
        );
    }
}

#[test]
fn write_keeps_every_comment_backs_up_and_passes_check_config() {
    let dir = workdir();
    let config = dir.path().join("config.toml");
    let original = std::fs::read_to_string(fixture("config-diff.toml")).unwrap();
    std::fs::write(&config, &original).unwrap();
    let out = import(
        &fixture("structures.json"),
        &["--config", config.to_str().unwrap(), "--write"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let written = std::fs::read_to_string(&config).unwrap();
    for line in original.lines().filter(|l| l.contains('#')) {
        let kept = line.replace(TYPO, BELLECOUR);
        assert!(written.contains(&kept), "lost: {line}\n{written}");
    }
    assert!(!written.contains(TYPO));
    assert!(written.contains(&format!("finess = \"{VAULX}\"")));
    // The closed site and every other setting stay for a person to decide.
    assert!(written.contains(&format!("finess = \"{BRON_CLOSED}\"")));
    assert!(written.contains("spool = \"/var/spool/mss-dispatch/sites/bellecour\""));
    assert!(written.contains("sil = \"/var/spool/mss-dispatch/sil\""));
    let backups: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("config.toml.bak-"))
        .collect();
    assert_eq!(backups.len(), 1);
    assert_eq!(std::fs::read_to_string(&backups[0]).unwrap(), original);
    let check = command(&config, &["check-config"]);
    assert!(check.status.success(), "{}", stderr(&check));
    // Only the closed site is left to a person.
    let again = import(
        &fixture("structures.json"),
        &["--config", config.to_str().unwrap()],
    );
    let lines = named(&again);
    assert_eq!(lines.len(), 1, "{}", stdout(&again));
    assert!(lines[0].contains(BRON_CLOSED));
}

#[test]
fn bad_input_is_a_clear_error_with_where_and_exit_2() {
    let cases: [(Output, &[&str]); 5] = [
        (
            import(&fixture("truncated.json.gz"), &[]),
            &["truncated.json.gz", "truncated"],
        ),
        (
            import(&fixture("short-line.csv"), &[]),
            &["short-line.csv", "line 4", "32 fields", "31"],
        ),
        (
            import(&fixture("bad-finess.json"), &[]),
            &["pmej[0].ege[1]", "690001509", "not valid"],
        ),
        (
            sites(&[
                "--ej",
                "130000011",
                "--file",
                fixture("structures.json").to_str().unwrap(),
            ]),
            &["no open establishment", "130000011"],
        ),
        (
            sites(&[
                "--ej",
                "69000001",
                "--file",
                fixture("structures.json").to_str().unwrap(),
            ]),
            &["--ej", "not a FINESS"],
        ),
    ];
    for (out, words) in cases {
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        for w in words {
            assert!(err.contains(w), "{w:?} not in: {err}");
        }
    }
}

#[test]
fn check_config_warns_of_sites_the_register_does_not_confirm() {
    let dir = workdir();
    let config = dir.path().join("config.toml");
    let site = |f: &str, name: &str| {
        format!("[[site]]\nfiness = \"{f}\"\nname = \"{name}\"\nspool = \"/tmp/s/{f}\"\n")
    };
    std::fs::write(
        &config,
        format!(
            "[mailbox]\nmaildir = \"{d}/Maildir\"\n[state]\ndir = \"{d}/state\"\n{}{}{}{}{}{}",
            site(BELLECOUR, "Bellecour"),
            site("690001508", "Croix-Rousse"),
            site(BRON_CLOSED, "Bron"),
            site(HEALTH_CENTRE, "Centre de santé"),
            site("750712184", "République"),
            site("130000011", "Marseille"),
            d = dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["check-config", "--config"])
        .arg(&config)
        .arg("--finess")
        .arg(fixture("structures.json.gz"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let warnings: Vec<String> = stderr(&out)
        .lines()
        .filter(|l| l.starts_with("warning: site["))
        .map(str::to_string)
        .collect();
    let about = |finess: &str, words: &str| {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(finess) && w.contains(words)),
            "{finess}: {words:?} not in {warnings:#?}"
        );
    };
    about(BRON_CLOSED, "closed");
    about(HEALTH_CENTRE, "not a laboratory");
    about("130000011", "unknown to the FINESS register");
    // République is the only site of its legal entity here; the others share 690000013.
    about(
        "750712184",
        "the only site under the legal entity 750000127",
    );
    assert_eq!(warnings.len(), 4, "{warnings:#?}");
}
