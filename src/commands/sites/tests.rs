use std::path::PathBuf;

use super::read::read_all;
use crate::core::register::Establishment;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/finess")
        .join(name)
}

/// The open establishments of a fixture, as the comparison needs them.
fn open(name: &str) -> Vec<(String, String, String, String, String)> {
    let mut all: Vec<_> = read_all(&fixture(name))
        .unwrap()
        .into_iter()
        .filter(|e: &Establishment| e.open)
        .map(|e| {
            let name = e.name().to_string();
            (e.finess, e.legal, name, e.category, e.address)
        })
        .collect();
    all.sort();
    all
}

#[test]
fn the_json_flow_and_the_csv_extract_hold_the_same_open_establishments() {
    let json = open("structures.json");
    assert_eq!(json.len(), 10, "12 sites, one closed and one inactive");
    assert_eq!(open("structures.json.gz"), json);
    assert_eq!(open("extract-utf8.csv"), json);
    assert_eq!(open("extract-cp1252.csv"), json);
    // Padded strings are trimmed; quoted fields keep their ';' and '"'.
    assert!(
        json.iter()
            .any(|e| e.2 == "LBM \"LES ALPES\"; SITE NORD (PLATEAU)")
    );
    assert!(json.iter().any(|e| e.4 == "12 PL BELLECOUR, 69002 LYON"));
}

#[test]
fn closed_and_inactive_establishments_are_read_as_not_open() {
    let all = read_all(&fixture("structures.json")).unwrap();
    let closed: Vec<&str> = all
        .iter()
        .filter(|e| !e.open)
        .map(|e| e.short_name.as_str())
        .collect();
    assert_eq!(closed, ["LBM BRON (FERMÉ)", "LBM OULLINS"]);
}

#[test]
fn bad_input_says_where() {
    let err = |name| read_all(&fixture(name)).unwrap_err().to_string();
    assert!(err("short-line.csv").starts_with("line 4: a structureet line has 32 fields"));
    let truncated = err("truncated.json.gz");
    assert!(truncated.contains("truncated"), "{truncated}");
}
