//! The binary as an operator runs it: exit codes, every configuration error at once, the
//! `inspect --json` contract and the spot checks of the certificate core.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mss-dispatch"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn run(args: &[&str]) -> Output {
    bin().args(args).current_dir(root()).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn shipped_example_configurations_are_valid() {
    let mut n = 0;
    for entry in std::fs::read_dir(root().join("config")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let o = run(&["check-config", "--config", path.to_str().unwrap()]);
            assert_eq!(
                o.status.code(),
                Some(0),
                "{}: {}",
                path.display(),
                stderr(&o)
            );
            assert!(stdout(&o).contains("configuration is valid"));
            n += 1;
        }
    }
    assert!(n >= 1, "no example configuration in config/");
}

#[test]
fn three_mistakes_are_listed_together_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(root().join("config/mss-dispatch.toml"))
        .unwrap()
        .replacen("finess = \"690000880\"", "finess = \"690000881\"", 1)
        .replacen(
            "dir = \"/var/lib/mss-dispatch\"",
            "dir = \"var/lib/mss-dispatch\"",
            1,
        )
        .replacen("negative = \"72h\"", "negative = \"4d\"", 1);
    std::fs::write(&file, text).unwrap();
    let o = run(&["check-config", "--config", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("3 errors"), "{err}");
    let f = file.display().to_string();
    assert!(
        err.contains(&format!(
            "{f}: site[0].finess: \"690000881\" is not a valid FINESS"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{f}: state.dir: \"var/lib/mss-dispatch\" is relative"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{f}: retention.negative: \"4d\" is longer than the legal maximum"
        )),
        "{err}"
    );
}

#[test]
fn missing_configuration_file_is_a_configuration_error() {
    let o = run(&["check-config", "--config", "/nonexistent/mss.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/mss.toml: cannot read"));
}

fn inspect(files: &[&str]) -> Vec<Value> {
    let mut args = vec!["inspect", "--config", "fixtures/config.toml", "--json"];
    let paths: Vec<String> = files
        .iter()
        .map(|f| format!("fixtures/corpus/{f}.eml"))
        .collect();
    args.extend(paths.iter().map(String::as_str));
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn inspect_spot_checks() {
    let out = inspect(&[
        "negative_plain",
        "positive_month_end",
        "result_non_detecte",
        "finess_invalid",
    ]);
    assert_eq!(out.len(), 4);
    assert_eq!(out[0]["purge_at"], "2021-11-01T09:00:00+01:00");
    assert_eq!(out[0]["sampled_at"], "2021-10-29T10:00:00+02:00");
    assert_eq!(out[1]["purge_at"], "2022-02-28T00:00:00+01:00");
    assert_eq!(out[1]["result"], "positive");
    assert_eq!(out[2]["result"], "negative");
    assert_eq!(out[3]["decision"], "quarantine");
    assert_eq!(out[3]["reason"], "finess_invalid");
}

#[test]
fn inspect_json_has_the_contract_keys() {
    for line in inspect(&["negative_plain", "unknown_site", "sender_not_allowed"]) {
        for key in [
            "file",
            "decision",
            "reason",
            "site",
            "dossier",
            "result",
            "sampled_at",
            "purge_at",
            "file_name",
        ] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
    }
}

#[test]
fn inspect_touches_nothing_and_keeps_names_off_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let msg = dir.path().join("m.eml");
    std::fs::copy(
        root().join("fixtures/corpus/subject_folded_words.eml"),
        &msg,
    )
    .unwrap();
    let before = std::fs::read(&msg).unwrap();
    let o = run(&[
        "inspect",
        "--config",
        "fixtures/config.toml",
        msg.to_str().unwrap(),
        "/nonexistent/x.eml",
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "an unreadable file is a runtime failure"
    );
    assert_eq!(std::fs::read(&msg).unwrap(), before);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    let err = stderr(&o);
    assert!(err.contains("/nonexistent/x.eml: cannot read"));
    for name in ["DIAYE", "Marie", "2100004"] {
        assert!(!err.contains(name), "patient data on stderr: {err}");
    }
    assert!(stdout(&o).contains("deliver to 690000880"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(
        run(&["inspect", "--config", "x.toml"]).status.code(),
        Some(2)
    );
    assert_eq!(run(&["no-such-command"]).status.code(), Some(2));
    let o = run(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("mss-dispatch "));
}
