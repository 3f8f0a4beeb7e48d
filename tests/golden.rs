//! The golden corpus: every `fixtures/corpus/*.eml` is decided with `fixtures/config.toml`,
//! once with LF and once with CRLF line endings, and its `inspect --json` fields compared with
//! `fixtures/corpus/expected.json` (computed independently by `fixtures/generate.py`).

use std::collections::BTreeMap;
use std::path::Path;

use mss_dispatch::commands::inspect::to_json;
use mss_dispatch::core::{Context, config, decide};
use serde_json::Value;

/// Must match RECEIVED in fixtures/generate.py.
const RECEIVED_AT: &str = "2021-11-02T09:00:00Z";
const CONTRACT_KEYS: [&str; 8] = [
    "decision",
    "reason",
    "site",
    "dossier",
    "result",
    "sampled_at",
    "purge_at",
    "file_name",
];

fn with_crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40);
    for (i, b) in raw.iter().enumerate() {
        if *b == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(*b);
    }
    out
}

fn with_lf(raw: &[u8]) -> Vec<u8> {
    raw.iter().copied().filter(|b| *b != b'\r').collect()
}

#[test]
fn corpus_decisions_match_expectations_with_lf_and_crlf() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let text = std::fs::read_to_string(root.join("config.toml")).unwrap();
    let config = config::parse(&text, "fixtures/config.toml").unwrap();
    let tz = mss_dispatch::tz::paris();
    let ctx = Context {
        config: &config,
        tz: &tz,
        received_at: RECEIVED_AT.parse().unwrap(),
    };
    let expected: BTreeMap<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(root.join("corpus/expected.json")).unwrap())
            .unwrap();

    let mut files: Vec<String> = std::fs::read_dir(root.join("corpus"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".eml"))
        .collect();
    files.sort();
    let listed: Vec<&String> = expected.keys().collect();
    assert_eq!(
        files.iter().collect::<Vec<_>>(),
        listed,
        "corpus and expected.json disagree"
    );

    let mut ran = 0;
    let mut failures = Vec::new();
    for name in &files {
        let raw = std::fs::read(root.join("corpus").join(name)).unwrap();
        for (ending, bytes) in [("LF", with_lf(&raw)), ("CRLF", with_crlf(&raw))] {
            let outcome = decide(&bytes, &ctx);
            let got = to_json(name, &outcome, &tz);
            for key in CONTRACT_KEYS {
                if got[key] != expected[name][key] {
                    failures.push(format!(
                        "{name} ({ending}): {key}: got {}, expected {}",
                        got[key], expected[name][key]
                    ));
                }
            }
            ran += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(files.len() >= 40, "only {} cases", files.len());
    assert_eq!(ran, 2 * files.len(), "not every case ran");
}

#[test]
fn every_reason_code_has_a_case() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let expected: BTreeMap<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(root.join("corpus/expected.json")).unwrap())
            .unwrap();
    for reason in mss_dispatch::core::Reason::ALL
        .into_iter()
        .filter(|r| r.from_content())
    {
        assert!(
            expected.values().any(|e| e["reason"] == reason.as_str()),
            "no corpus case for {}",
            reason.as_str()
        );
    }
}
