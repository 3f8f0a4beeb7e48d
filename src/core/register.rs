//! The public FINESS register, as far as a lab group's sites go (`../shared/reference/
//! FINESS.md`): an establishment (FINESS géographique) under its legal entity (FINESS
//! juridique), with its names, address, category and whether it is open; read from a line of
//! the historic CSV extract or from an `ege` of the "FINESS - Structures" JSON flow. Then the
//! `[[site]]` table the configuration needs, and how a configuration differs from the
//! register. Pure: text and values in, establishments and tables out. Filters use the codes,
//! never the labels.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::finess::Finess;

/// Laboratory categories (TRE-R66 / TRE-R397): all three are kept by default, since a site
/// left out is a certificate quarantined as `unknown_site`.
pub const LAB_CATEGORIES: [&str; 3] = ["610", "611", "612"];

/// The label of a laboratory category, for comments.
pub fn category_label(code: &str) -> Option<&'static str> {
    match code {
        "610" => Some("Laboratoire d'analyses"),
        "611" => Some("Laboratoire de biologie médicale (LBM)"),
        "612" => Some("Autre laboratoire de biologie médicale sans FSE"),
        _ => None,
    }
}

/// One establishment of the register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Establishment {
    /// FINESS géographique, trimmed (checked when it matters).
    pub finess: String,
    /// FINESS juridique of its legal entity.
    pub legal: String,
    pub short_name: String,
    pub long_name: String,
    /// Category code (`611`) and its label as the register gives it.
    pub category: String,
    pub category_label: String,
    /// One line: number, street, and the postal line.
    pub address: String,
    /// Active, and no closing date.
    pub open: bool,
    /// Where it was read, for messages: `line 12`, `pmej[3].ege[1]`.
    pub at: String,
}

impl Establishment {
    /// The name for the configuration: the long one, else the short one.
    pub fn name(&self) -> &str {
        if self.long_name.is_empty() {
            &self.short_name
        } else {
            &self.long_name
        }
    }

    pub fn is_lab(&self) -> bool {
        LAB_CATEGORIES.contains(&self.category.as_str())
    }

    /// The category as a comment shows it.
    pub fn category_text(&self) -> String {
        let label = category_label(&self.category)
            .map(str::to_string)
            .unwrap_or_else(|| self.category_label.clone());
        if label.is_empty() {
            self.category.clone()
        } else {
            format!("{} {label}", self.category)
        }
    }
}

/// Bad input, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {problem}")]
pub struct RegisterError {
    pub at: String,
    pub problem: String,
}

impl RegisterError {
    pub fn new(at: impl Into<String>, problem: impl Into<String>) -> RegisterError {
        RegisterError {
            at: at.into(),
            problem: problem.into(),
        }
    }
}

/// Fields on a `structureet` line of the CSV extract (the 32nd, `numuai`, after the last `;`).
pub const CSV_FIELDS: usize = 32;

/// A line's text: UTF-8, else Windows-1252 (older extracts), without its line break.
pub fn decode_line(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.trim_start_matches('\u{feff}').to_string(),
        Err(_) => match mail_parser::decoders::charsets::map::charset_decoder(b"windows-1252") {
            Some(decode) => decode(bytes),
            None => String::from_utf8_lossy(bytes).into_owned(),
        },
    }
}

/// Whether a record is complete: a quoted field may hold a line break, and then the record
/// goes on on the next line (RFC 4180 §2.6).
pub fn record_is_complete(text: &str) -> bool {
    text.bytes().filter(|b| *b == b'"').count() % 2 == 0
}

/// The fields of one record: `;`-separated, RFC 4180 quoting (`"A ""B"" C"`).
pub fn split_record(text: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, ';') => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
                continue;
            }
            (false, '"') if at_start => quoted = true,
            (false, c) => field.push(c),
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => {
                quoted = false;
                if chars.peek().is_some_and(|n| *n != ';') {
                    return Err("text after a closing quote".into());
                }
            }
            (true, c) => field.push(c),
        }
        at_start = false;
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    fields.push(field);
    Ok(fields)
}

/// An establishment from the fields of a `structureet` line (0-based, FINESS.md §3).
pub fn from_structureet(fields: &[String], at: &str) -> Result<Establishment, RegisterError> {
    if fields.len() != CSV_FIELDS {
        return Err(RegisterError::new(
            at,
            format!(
                "a structureet line has {CSV_FIELDS} fields (the last after the final ';'), \
                 this one has {}",
                fields.len()
            ),
        ));
    }
    let f = |i: usize| fields[i].trim().to_string();
    let street = [f(7), f(8), f(9)]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Establishment {
        finess: f(1),
        legal: f(2),
        short_name: f(3),
        long_name: f(4),
        category: f(18),
        category_label: f(19),
        address: join_address(&street, &f(11), &f(15)),
        // The extract lists the establishments open on its date.
        open: true,
        at: at.to_string(),
    })
}

fn join_address(street: &str, place: &str, postal: &str) -> String {
    [street, place, postal]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A legal entity of the JSON flow (`pmej[]`), with what is read of it.
#[derive(Debug, Deserialize)]
pub struct Pmej {
    #[serde(
        rename = "informationsGeneralesPMEJ",
        alias = "informationsGeneralesPmej"
    )]
    pub info: Option<PmejInfo>,
    #[serde(default)]
    pub ege: Vec<Ege>,
}

#[derive(Debug, Deserialize)]
pub struct PmejInfo {
    #[serde(rename = "numFinessPm")]
    pub finess: Option<String>,
}

/// An establishment of the JSON flow (`pmej[].ege[]`).
#[derive(Debug, Deserialize)]
pub struct Ege {
    #[serde(rename = "informationsGeneralesEGE")]
    pub info: EgeInfo,
    #[serde(
        rename = "categorieentiteGeographiqueExercice",
        alias = "categorieEntiteGeographiqueExercice",
        default
    )]
    pub category: Option<Category>,
    #[serde(default)]
    pub adresse: Vec<Adresse>,
    #[serde(rename = "etatObjet")]
    pub state: Option<String>,
}

/// The category: a code, or a code with its label, depending on the flow's version.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Category {
    Code(String),
    Coded {
        #[serde(alias = "code")]
        code: Option<String>,
        #[serde(alias = "libelle", alias = "label", default)]
        libelle: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
pub struct EgeInfo {
    #[serde(rename = "numFinessEge")]
    pub finess: Option<String>,
    #[serde(rename = "nomEgeCourt")]
    pub short_name: Option<String>,
    #[serde(rename = "nomEgeLong")]
    pub long_name: Option<String>,
    #[serde(rename = "dateFermeture")]
    pub closed_on: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Adresse {
    #[serde(rename = "usageAdresse")]
    pub usage: Option<String>,
    #[serde(rename = "numeroVoie")]
    pub number: Option<String>,
    #[serde(rename = "typeVoie")]
    pub kind: Option<String>,
    #[serde(rename = "libelleVoie")]
    pub street: Option<String>,
    #[serde(rename = "lieuDit")]
    pub place: Option<String>,
    #[serde(rename = "ligneAcheminement")]
    pub postal: Option<String>,
}

/// The legal entity's FINESS of a `pmej`, trimmed.
pub fn legal_of(pmej: &Pmej) -> String {
    pmej.info
        .as_ref()
        .and_then(|i| i.finess.as_deref())
        .map(str::trim)
        .unwrap_or_default()
        .to_string()
}

/// An establishment from an `ege` of the legal entity `legal`. Strings are right-padded in
/// the flow: trimmed. The geographic address is the one of usage `03`.
pub fn from_ege(ege: &Ege, legal: &str, at: &str) -> Establishment {
    let t = |s: &Option<String>| s.as_deref().map(str::trim).unwrap_or_default().to_string();
    let address = ege
        .adresse
        .iter()
        .find(|a| a.usage.as_deref().map(str::trim) == Some("03"))
        .or(ege.adresse.first())
        .map(|a| {
            let street = [t(&a.number), t(&a.kind), t(&a.street)]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            join_address(&street, &t(&a.place), &t(&a.postal))
        })
        .unwrap_or_default();
    let (category, category_label) = match &ege.category {
        Some(Category::Code(c)) => (c.trim().to_string(), String::new()),
        Some(Category::Coded { code, libelle }) => (t(code), t(libelle)),
        None => (String::new(), String::new()),
    };
    let closed = !t(&ege.info.closed_on).is_empty();
    let active = ege.state.as_deref().map(str::trim).unwrap_or("A") == "A";
    Establishment {
        finess: t(&ege.info.finess),
        legal: legal.to_string(),
        short_name: t(&ege.info.short_name),
        long_name: t(&ege.info.long_name),
        category,
        category_label,
        address,
        open: active && !closed,
        at: at.to_string(),
    }
}

/// What `sites import` keeps: open laboratories of the given legal entities.
pub fn is_site_of(e: &Establishment, legal: &BTreeSet<String>, categories: &[String]) -> bool {
    e.open && legal.contains(&e.legal) && categories.contains(&e.category)
}

/// Checks the FINESS of an establishment that is kept.
pub fn checked(e: &Establishment) -> Result<Finess, RegisterError> {
    Finess::parse(&e.finess).map_err(|why| {
        RegisterError::new(&e.at, format!("FINESS {:?} is not valid: {why}", e.finess))
    })
}

/// A TOML string, quoted.
fn quoted(s: &str) -> String {
    toml_string(s)
}

/// `s` as a TOML basic string.
pub fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The comment above a site: its address and category.
pub fn site_comment(e: &Establishment) -> String {
    if e.address.is_empty() {
        e.category_text()
    } else {
        format!("{} — {}", e.address, e.category_text())
    }
}

/// The `[[site]]` blocks for `sites`, each with its spool folder under `spool_root`.
pub fn site_table(sites: &[Establishment], spool_root: &str) -> String {
    let mut out = String::new();
    for e in sites {
        out.push_str(&format!(
            "# {}\n[[site]]\nfiness = {}\nname = {}\nspool = {}\n\n",
            site_comment(e),
            quoted(&e.finess),
            quoted(e.name()),
            quoted(&format!(
                "{}/{}",
                spool_root.trim_end_matches('/'),
                e.finess
            )),
        ));
    }
    out
}

/// A site as the configuration has it: its index among the `[[site]]` tables, FINESS and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configured {
    pub index: usize,
    pub finess: String,
    pub name: String,
}

/// How a configuration's sites differ from the register.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// Open laboratories of the legal entities that the configuration lacks.
    pub add: Vec<Establishment>,
    /// Configured FINESS whose check key fails and that differ from one to add by one
    /// character or two swapped neighbours: a typo, and its likely correction.
    pub typos: Vec<(Configured, Establishment)>,
    /// Configured, unknown to the register.
    pub missing: Vec<Configured>,
    /// Configured, closed or inactive in the register.
    pub closed: Vec<(Configured, Establishment)>,
    /// Configured, in the register under another legal entity than those given.
    pub other_legal: Vec<(Configured, Establishment)>,
    /// Configured, in the register, but not a laboratory.
    pub not_lab: Vec<(Configured, Establishment)>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        *self == Diff::default()
    }
}

/// Compares the configured sites with the register. `sites` are the kept establishments
/// (`is_site_of`); `known` every establishment read whose FINESS is configured.
pub fn diff(
    configured: &[Configured],
    sites: &[Establishment],
    known: &BTreeMap<String, Establishment>,
    legal: &BTreeSet<String>,
) -> Diff {
    let mut d = Diff::default();
    let norm = |s: &str| {
        Finess::parse(s).map_or_else(|_| s.trim().to_uppercase(), |f| f.as_str().to_string())
    };
    let configured_set: BTreeSet<String> = configured.iter().map(|c| norm(&c.finess)).collect();
    let mut to_add: Vec<Establishment> = sites
        .iter()
        .filter(|e| !configured_set.contains(&e.finess))
        .cloned()
        .collect();
    for c in configured {
        let finess = norm(&c.finess);
        match known.get(&finess) {
            None => {
                // A FINESS whose check key fails was mistyped: one character wrong, or two
                // neighbours swapped, of a site not configured yet.
                let invalid = Finess::parse(&c.finess).is_err();
                let near = to_add
                    .iter()
                    .position(|e| invalid && one_slip(&e.finess, &finess));
                match near {
                    Some(i) => d.typos.push((c.clone(), to_add.remove(i))),
                    None => d.missing.push(c.clone()),
                }
            }
            Some(e) if !e.open => d.closed.push((c.clone(), e.clone())),
            Some(e) if !legal.is_empty() && !legal.contains(&e.legal) => {
                d.other_legal.push((c.clone(), e.clone()))
            }
            Some(e) if !e.is_lab() => d.not_lab.push((c.clone(), e.clone())),
            Some(_) => {}
        }
    }
    d.add = to_add;
    d
}

/// Whether `typed` is `right` with one character wrong or two neighbours swapped.
fn one_slip(right: &str, typed: &str) -> bool {
    let (a, b) = (right.as_bytes(), typed.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let diff: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    match diff.as_slice() {
        [_] => true,
        [i, j] => *j == i + 1 && a[*i] == b[*j] && a[*j] == b[*i],
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_follows_rfc_4180_with_semicolons() {
        assert_eq!(
            split_record(r#"structureet;980501506;"LIEU DE VIE ""MAVOUNA; MEMA 1""";x;"#).unwrap(),
            [
                "structureet",
                "980501506",
                "LIEU DE VIE \"MAVOUNA; MEMA 1\"",
                "x",
                ""
            ]
        );
        assert!(split_record(r#"a;"b"#).is_err());
        assert!(!record_is_complete("a;\"b\nc"));
        assert!(record_is_complete("a;\"b\nc\";d"));
    }

    #[test]
    fn windows_1252_is_the_fallback() {
        assert_eq!(decode_line(b"LABO \xc9T\xc9 \x80\r\n"), "LABO ÉTÉ €");
        assert_eq!(decode_line("LABO ÉTÉ\n".as_bytes()), "LABO ÉTÉ");
    }

    #[test]
    fn a_real_line_of_the_extract_is_read() {
        let line = "structureet;010000024;010780054;CH DE FLEYRIAT;CENTRE HOSPITALIER DE \
            BOURG-EN-BRESSE FLEYRIAT;;;900;RTE;DE PARIS;;;451;01;AIN;01440 VIRIAT;0474454647;\
            0474454114;355;Centre Hospitalier (C.H.);1102;Centres Hospitaliers;26010004500012;\
            8610Z;03;ARS établissements Publics de santé dotation globale;1;Etablissement public \
            de santé;1979-02-13;1979-02-13;2020-02-04;";
        let e = from_structureet(&split_record(line).unwrap(), "line 2").unwrap();
        assert_eq!(e.finess, "010000024");
        assert_eq!(e.legal, "010780054");
        assert_eq!(e.name(), "CENTRE HOSPITALIER DE BOURG-EN-BRESSE FLEYRIAT");
        assert_eq!(e.category, "355");
        assert_eq!(e.address, "900 RTE DE PARIS, 01440 VIRIAT");
        assert!(!e.is_lab());
        let short = split_record(&line[..line.len() - 1]).unwrap();
        assert_eq!(
            from_structureet(&short, "line 2").unwrap_err().to_string(),
            "line 2: a structureet line has 32 fields (the last after the final ';'), this one \
             has 31"
        );
    }

    #[test]
    fn a_typo_is_told_apart_from_a_missing_site() {
        let e = |f: &str, open: bool| Establishment {
            finess: f.into(),
            legal: "690000013".into(),
            short_name: "LBM".into(),
            long_name: String::new(),
            category: "611".into(),
            category_label: String::new(),
            address: String::new(),
            open,
            at: String::new(),
        };
        let sites = vec![e("690000880", true), e("690001003", true)];
        let mut known = BTreeMap::new();
        known.insert("750712184".to_string(), e("750712184", false));
        let c = |i, f: &str| Configured {
            index: i,
            finess: f.into(),
            name: String::new(),
        };
        let configured = [c(0, "690000881"), c(1, "750712184"), c(2, "130000011")];
        let legal = BTreeSet::from(["690000013".to_string()]);
        let d = diff(&configured, &sites, &known, &legal);
        assert_eq!(d.typos.len(), 1);
        assert_eq!(d.typos[0].1.finess, "690000880");
        assert_eq!(d.closed[0].0.finess, "750712184");
        assert_eq!(d.missing, [c(2, "130000011")]);
        assert_eq!(
            d.add.iter().map(|e| e.finess.as_str()).collect::<Vec<_>>(),
            ["690001003"]
        );
    }
}
