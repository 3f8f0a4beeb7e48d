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
    let tz = mss_dispatch::system::tz::paris();
    let ctx = Context {
        config: &config,
        tz: &tz,
        received_at: RECEIVED_AT.parse().unwrap(),
    };
    let expected = expected();

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
            let got = to_json(name, &outcome, &tz, ctx.received_at);
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

fn expected() -> BTreeMap<String, Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    serde_json::from_str(&std::fs::read_to_string(root.join("corpus/expected.json")).unwrap())
        .unwrap()
}

#[test]
fn every_reason_code_has_a_case_built_from_the_facsimile() {
    let expected = expected();
    for reason in mss_dispatch::core::Reason::ALL
        .into_iter()
        .filter(|r| r.from_content())
    {
        assert!(
            expected
                .values()
                .any(|e| e["reason"] == reason.as_str() && e["template"] == "facsimile"),
            "no facsimile-based corpus case for {}",
            reason.as_str()
        );
    }
}

#[test]
fn the_facsimile_cases_cover_results_renderings_and_line_endings() {
    let expected = expected();
    let facsimile: Vec<(&String, &Value)> = expected
        .iter()
        .filter(|(name, e)| name.starts_with("facsimile_") && e["decision"] == "deliver")
        .collect();
    assert!(facsimile.len() >= 12, "only {} cases", facsimile.len());
    for result in ["positive", "negative"] {
        assert!(facsimile.iter().any(|(_, e)| e["result"] == result));
    }
    for name in [
        "detecte",
        "non_detecte",
        "html",
        "crlf",
        "negatif",
        "positif",
    ] {
        assert!(
            facsimile.iter().any(|(n, _)| n.contains(name)),
            "no facsimile case for {name}"
        );
    }
    let crlf = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/corpus/facsimile_crlf.eml"),
    )
    .unwrap();
    assert!(crlf.windows(2).any(|w| w == b"\r\n"));
}

mod facsimile {
    //! Any body built from the guide's facsimile is decided right: random values (names made
    //! of label words among them), the greeting wrapped anywhere, blank lines or none between
    //! the fields, plain or no-break spaces before the colons, text or HTML, LF or CRLF.

    use jiff::civil::DateTime;
    use mss_dispatch::core::retention::Rule;
    use mss_dispatch::core::{Context, Decision, config, decide};
    use proptest::prelude::*;

    const BODY: &str = include_str!("../fixtures/facsimile/body.txt");
    const SITES: [&str; 3] = ["690000880", "750712184", "2A0000154"];
    const LOINC: [(&str, &str); 2] = [
        (
            "94309-2",
            "SARS-CoV-2 (Covid 19) ARN [Présence] Echantillon respiratoire ; Résultat nominal ; \
             Amplification génique",
        ),
        (
            "94558-4",
            "SARS-CoV-2 (Covid 19) Ag [Présence] Echantillon respiratoire ; Résultat nominal ; \
             Immunoessai rapide",
        ),
    ];
    const RESULTS: [(&str, bool); 8] = [
        ("Positif", true),
        ("POSITIF", true),
        ("Détecté", true),
        ("Négatif", false),
        ("NEGATIF", false),
        ("Non détecté", false),
        ("NON DETECTE", false),
        ("Non Détecté", false),
    ];

    #[derive(Debug, Clone)]
    struct Case {
        nom: String,
        prenom: String,
        sexe: &'static str,
        ddn: String,
        ins: String,
        loinc: usize,
        site: usize,
        sampled: DateTime,
        sampled_style: usize,
        result: usize,
        wrap: usize,
        blanks: Vec<usize>,
        colons: Vec<&'static str>,
        html: bool,
        crlf: bool,
    }

    fn word(upper: bool) -> impl Strategy<Value = String> {
        let label_words = [
            "Résultat",
            "Date",
            "Nom",
            "Prénom",
            "Sexe",
            "Test",
            "Résultat du test",
            "Date de prélèvement",
            "Identifiant",
        ];
        prop_oneof![
            proptest::sample::select(label_words.to_vec()).prop_map(str::to_string),
            "[A-Z][a-zéèïô]{1,9}",
            Just("N'Diaye".to_string()),
            Just("Le Gall".to_string()),
        ]
        .prop_map(move |w| if upper { w.to_uppercase() } else { w })
    }

    fn name(upper: bool) -> impl Strategy<Value = String> {
        (
            word(upper),
            proptest::option::of((prop_oneof![Just(" "), Just("-")], word(upper))),
        )
            .prop_map(|(a, b)| match b {
                Some((sep, b)) => format!("{a}{sep}{b}"),
                None => a,
            })
    }

    fn sampled() -> impl Strategy<Value = DateTime> {
        let special = proptest::sample::select(vec![
            "2021-03-28T02:30",
            "2021-10-31T02:30",
            "2021-03-31T23:30",
            "2021-08-31T14:00",
            "2020-12-31T23:59",
            "2021-10-31T00:00",
        ])
        .prop_map(|s| s.parse::<DateTime>().unwrap());
        let any = (2020i16..=2021, 1i8..=12, 1i8..=28, 0i8..=23, 0i8..=59).prop_map(
            |(y, mo, d, h, mi)| {
                let mo = if y == 2020 { mo.max(2) } else { mo.min(10) };
                jiff::civil::date(y, mo, d).at(h, mi, 0, 0)
            },
        );
        prop_oneof![1 => special, 3 => any]
    }

    fn case() -> impl Strategy<Value = Case> {
        (
            (
                name(true),
                name(false),
                proptest::sample::select(vec!["M", "F", "Masculin", "Féminin"]),
                (1i8..=28, 1i8..=12, 1920i16..=2020)
                    .prop_map(|(d, m, y)| format!("{d:02}/{m:02}/{y}")),
                "[12][0-9]{14}",
                0..LOINC.len(),
                0..SITES.len(),
            ),
            (
                sampled(),
                0usize..3,
                0..RESULTS.len(),
                20usize..140,
                proptest::collection::vec(0usize..3, 10),
                proptest::collection::vec(
                    proptest::sample::select(vec![" :", "\u{a0}:", "\u{202f}:", ":"]),
                    10,
                ),
                any::<bool>(),
                any::<bool>(),
            ),
        )
            .prop_map(
                |(
                    (nom, prenom, sexe, ddn, ins, loinc, site),
                    (sampled, sampled_style, result, wrap, blanks, colons, html, crlf),
                )| Case {
                    nom,
                    prenom,
                    sexe,
                    ddn,
                    ins,
                    loinc,
                    site,
                    sampled,
                    sampled_style,
                    result,
                    wrap,
                    blanks,
                    colons,
                    html,
                    crlf,
                },
            )
    }

    fn sampled_text(c: &Case) -> String {
        let t = c.sampled;
        match c.sampled_style {
            0 => t.strftime("%d/%m/%Y %H:%M").to_string(),
            1 => t.strftime("%d/%m/%Y %H:%M:%S").to_string(),
            _ => t.strftime("%d/%m/%Y à %Hh%M").to_string(),
        }
    }

    /// The facsimile filled in and laid out as the case says.
    fn body(c: &Case) -> String {
        let (code, label) = LOINC[c.loinc];
        let integrated = (c.sampled + jiff::SignedDuration::from_hours(20))
            .strftime("%d/%m/%Y %H:%M")
            .to_string();
        let values = [
            ("{Nom}", c.nom.clone()),
            ("{Prénom}", c.prenom.clone()),
            ("{Sexe}", c.sexe.to_string()),
            ("{DDN}", c.ddn.clone()),
            ("{Matricule INS}", c.ins.clone()),
            ("{Code analyse}", code.to_string()),
            ("{Libellé analyse}", label.to_string()),
            ("{FINESS site/ET}", SITES[c.site].to_string()),
            ("{Date et heure de prélèvement}", sampled_text(c)),
            (
                "{Date et heure d’intégration du résultat dans SI-DEP}",
                integrated,
            ),
            ("{Résultat}", RESULTS[c.result].0.to_string()),
        ];
        let mut out: Vec<String> = Vec::new();
        let mut field = 0;
        let lines: Vec<&str> = BODY.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let mut line = lines[i].to_string();
            let is_field = values.iter().any(|(k, _)| line.contains(k));
            for (k, v) in &values {
                line = line.replace(k, v);
            }
            if !is_field {
                out.push(line);
                i += 1;
                continue;
            }
            // "Label : value": the space before the colon varies.
            line = line.replacen(" :", c.colons[field % 10], 1);
            out.push(line);
            out.extend(std::iter::repeat_n(String::new(), c.blanks[field % 10]));
            field += 1;
            i += if lines.get(i + 1) == Some(&"") { 2 } else { 1 };
        }
        rewrap(&out.join("\n"), c.wrap)
    }

    /// Wraps the greeting paragraph at `width` columns.
    fn rewrap(text: &str, width: usize) -> String {
        let start = text.find("Vous avez transmis").unwrap();
        let end_marker = "du test et le résultat :";
        let end = text.find(end_marker).unwrap() + end_marker.len();
        let mut lines: Vec<String> = vec![String::new()];
        for w in text[start..end].split_whitespace() {
            let last = lines.last_mut().unwrap();
            if !last.is_empty() && last.chars().count() + 1 + w.chars().count() > width {
                lines.push(w.to_string());
            } else {
                if !last.is_empty() {
                    last.push(' ');
                }
                last.push_str(w);
            }
        }
        format!("{}{}{}", &text[..start], lines.join("\n"), &text[end..])
    }

    fn html(text: &str) -> String {
        let escaped = text
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        let paras: Vec<String> = escaped
            .split("\n\n")
            .map(|p| format!("<p>{}</p>", p.replace('\n', "<br>\n")))
            .collect();
        format!("<html><body>\n{}\n</body></html>", paras.join("\n"))
    }

    fn percent(s: &str) -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    fn message(c: &Case) -> Vec<u8> {
        let site = SITES[c.site];
        let dossier = "21A0042";
        let text = body(c);
        let (ctype, text) = if c.html {
            ("text/html", html(&text))
        } else {
            ("text/plain", text)
        };
        let attachment = format!("{site}_{dossier}_{}_{}.pdf", c.nom.to_uppercase(), c.prenom);
        let mut m = format!(
            "From: noreply.sidep@enovacom.mssante.fr\nTo: nom@domaine.mssante.fr\n\
             Subject: =?UTF-8?Q?{}?=\nMessage-ID: <p@sidep>\nMIME-Version: 1.0\n\
             Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\n\
             Content-Type: {ctype}; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{text}\n\
             --b\nContent-Type: application/pdf\n\
             Content-Disposition: attachment; filename*=UTF-8''{}\n\
             Content-Transfer-Encoding: 7bit\n\n%PDF-1.4\n%%EOF\n--b--\n",
            percent(&format!(
                "[Projet SI-DEP] Certificat de test :  {site} | {dossier} | {} | {}",
                c.nom, c.prenom
            ))
            .replace('%', "="),
            percent(&attachment),
        );
        if c.crlf {
            m = m.replace('\n', "\r\n");
        }
        m.into_bytes()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn any_facsimile_body_is_decided_right(c in case()) {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
            let text = std::fs::read_to_string(root.join("config.toml")).unwrap();
            let config = config::parse(&text, "fixtures/config.toml").unwrap();
            let tz = mss_dispatch::system::tz::paris();
            let ctx = Context {
                config: &config,
                tz: &tz,
                received_at: "2021-11-02T09:00:00Z".parse().unwrap(),
            };
            let outcome = decide(&message(&c), &ctx);
            let (text, positive) = RESULTS[c.result];
            match &outcome.decision {
                Decision::Deliver { site, rule, .. } => {
                    prop_assert_eq!(site.as_str(), SITES[c.site]);
                    prop_assert_eq!(*rule, if positive { Rule::Positive } else { Rule::Negative });
                }
                other => prop_assert!(false, "not delivered: {:?}", other),
            }
            let expected = tz.to_ambiguous_timestamp(c.sampled).earlier().unwrap();
            prop_assert_eq!(outcome.cert.sampled_at, Some(expected));
            let b = &outcome.cert.body;
            prop_assert_eq!(b.nom.as_deref(), Some(c.nom.as_str()));
            prop_assert_eq!(b.prenom.as_deref(), Some(c.prenom.as_str()));
            prop_assert_eq!(b.ins.as_deref(), Some(c.ins.as_str()));
            prop_assert_eq!(b.birth_date.as_deref(), Some(c.ddn.as_str()));
            prop_assert_eq!(b.result.as_deref(), Some(text));
            prop_assert_eq!(b.loinc_code.as_deref(), Some(LOINC[c.loinc].0));
            prop_assert_eq!(b.finess.as_deref(), Some(SITES[c.site]));
        }
    }
}
