//! The certificate's fields as SI-DEP writes them (SPEC §2): the subject
//! `[Projet SI-DEP] Certificat de test : FINESS | dossier | Nom | Prénom`, the attachment name
//! `FINESS_dossier_NOM_Prénom.pdf` and the labelled body lines. Labels are matched whatever
//! their case, accents, apostrophes and spacing, but only where a field starts: at the start
//! of a line (after spaces, a bullet or a table cell), never inside a sentence or a value.
//! A value is the rest of its line, or the next line when a table put it there. Pure text
//! in, text out.

use std::sync::LazyLock;

use regex::Regex;

use super::text::clean;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectKind {
    /// No `[Projet SI-DEP] Certificat de test` marker.
    NotCertificate,
    /// The marker is there but the four fields are not.
    Malformed(&'static str),
    Certificate(SubjectFields),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectFields {
    pub finess: String,
    pub dossier: String,
    pub nom: String,
    pub prenom: String,
}

static SIDEP_TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\[\s*projet\s+si\s*-?\s*dep\s*\]").expect("static regex"));
static CERTIFICATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\[\s*projet\s+si\s*-?\s*dep\s*\]\s*certificat\s+de\s+test\s*[:：]\s*(.*)$")
        .expect("static regex")
});
static CERTIFICATE_WORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\bcertificat\b").expect("static regex"));
/// Its length (64 characters at most) is checked apart: a counted repetition of these
/// Unicode classes would make a 3.5 MB automaton.
static DOSSIER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[\p{L}\p{N}][\p{L}\p{N} ._/\-]*$").expect("static regex"));

pub fn subject(raw: &str) -> SubjectKind {
    let s = clean(raw);
    let Some(caps) = CERTIFICATE.captures(&s) else {
        // "[Projet SI-DEP]" naming a certificate, but not in the known form: a person looks.
        // Anything else from SI-DEP (an information notice) is not ours to touch.
        return if SIDEP_TAG.is_match(&s) && CERTIFICATE_WORD.is_match(&s) {
            SubjectKind::Malformed("the subject names a certificate but not in the known form")
        } else {
            SubjectKind::NotCertificate
        };
    };
    // Split on the bar only: names hold spaces, hyphens and apostrophes (SPEC §2).
    let parts: Vec<String> = caps[1].split('|').map(clean).collect();
    let [finess, dossier, nom, prenom] = parts.as_slice() else {
        return SubjectKind::Malformed("the subject does not hold four fields separated by |");
    };
    if finess.is_empty() {
        return SubjectKind::Malformed("the subject has no FINESS");
    }
    if dossier.chars().count() > 64 || !DOSSIER.is_match(dossier) {
        return SubjectKind::Malformed("the subject's dossier number is missing or malformed");
    }
    if !nom.chars().any(char::is_alphabetic) || nom.chars().count() > 200 {
        return SubjectKind::Malformed("the subject's name is missing or malformed");
    }
    // A first name may be absent (some patients have a single name).
    if prenom.chars().count() > 200 {
        return SubjectKind::Malformed("the subject's first name is malformed");
    }
    SubjectKind::Certificate(SubjectFields {
        finess: finess.clone(),
        dossier: dossier.clone(),
        nom: nom.clone(),
        prenom: prenom.clone(),
    })
}

/// True when the attachment name starts with `FINESS_dossier_` of the subject. The names
/// after it are not compared: `_` can occur inside them.
pub fn attachment_matches(name: &str, finess: &str, dossier: &str) -> bool {
    let name = clean(name);
    let prefix = format!("{finess}_{dossier}_").to_uppercase();
    let upper = name.to_uppercase();
    // Some mailers turn spaces into underscores; accept either for a dossier with spaces.
    upper.starts_with(&prefix) || upper.starts_with(&prefix.replace(' ', "_"))
}

/// The labelled body fields; `None` where a label is absent or its value empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyFields {
    pub nom: Option<String>,
    pub prenom: Option<String>,
    pub sexe: Option<String>,
    pub birth_date: Option<String>,
    pub ins: Option<String>,
    pub loinc_code: Option<String>,
    pub loinc_label: Option<String>,
    pub finess: Option<String>,
    pub sampled: Option<String>,
    pub integrated: Option<String>,
    pub result: Option<String>,
}

impl BodyFields {
    /// Fills every field still missing from `other` (a second body of the same message).
    pub fn fill_from(&mut self, other: BodyFields) {
        let pairs = [
            (&mut self.nom, other.nom),
            (&mut self.prenom, other.prenom),
            (&mut self.sexe, other.sexe),
            (&mut self.birth_date, other.birth_date),
            (&mut self.ins, other.ins),
            (&mut self.loinc_code, other.loinc_code),
            (&mut self.loinc_label, other.loinc_label),
            (&mut self.finess, other.finess),
            (&mut self.sampled, other.sampled),
            (&mut self.integrated, other.integrated),
            (&mut self.result, other.result),
        ];
        for (mine, theirs) in pairs {
            if mine.is_none() {
                *mine = theirs;
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Nom,
    Prenom,
    Sexe,
    Naissance,
    Ins,
    Test,
    Structure,
    Prelevement,
    Integration,
    Resultat,
}

// `[:：]` after optional white space, U+00A0 and U+202F included (`\s` is Unicode).
const COLON: &str = r"\s*[:：]";
const APOS: &str = r"['’‘ʼ`´]";

static LABELS: LazyLock<Vec<(Label, Regex)>> = LazyLock::new(|| {
    // Anchored: a label counts only where a field starts (see `label_at`).
    let l = |label: Label, pattern: &str| {
        let re = Regex::new(&format!("^(?i){pattern}{COLON}")).expect("static regex");
        (label, re)
    };
    vec![
        l(
            Label::Nom,
            r"nom(?:\s+de\s+naissance|\s+d['’‘ʼ]\s*usage|\s+de\s+famille|\s+du\s+patient)?",
        ),
        l(Label::Prenom, r"pr[eéè]noms?(?:\s+du\s+patient)?"),
        l(Label::Sexe, r"sexe"),
        l(Label::Naissance, r"date\s+de\s+naissance"),
        l(
            Label::Ins,
            r"(?:matricule\s+)?(?:identifiant\s+national\s+de\s+sant[eé](?:\s*\(\s*ins\s*\))?|ins\b(?:\s+matricule)?)",
        ),
        l(Label::Test, r"test\s+r[eé]alis[eé]"),
        l(
            Label::Structure,
            r"identifiant\s+de\s+la\s+structure[^:：\n]{0,60}",
        ),
        l(Label::Prelevement, r"date\s+d[eu]\s+pr[eé]l[eèé]vement"),
        l(
            Label::Integration,
            &format!(r"date\s+d{APOS}?\s*int[eé]gration[^:：\n]{{0,80}}"),
        ),
        l(Label::Resultat, r"r[eé]sultats?(?:\s+du\s+test)?"),
    ]
});

/// What may stand before a label at the start of a line: spaces (no-break ones too), list
/// bullets and dashes, the `>` of a quoted reply, the bar of a text table, a list number.
static LEAD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[\s•·◦▪▫‣⁃∙●○■□►▸*>|\-–—]*(?:\d{1,2}[.)]\s+)?").expect("static regex")
});

static LOINC: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(\d{3,7}-\d)\b\s*(.*)$").expect("static regex"));

/// The label a line starts with, and the rest of the line after its colon.
///
/// A label counts only where a field starts: at the start of a line, after optional
/// decoration (`LEAD`), never in the middle of a sentence. SI-DEP's greeting ends with
/// "… les caractéristiques du patient, du test et le résultat :", and values carry label
/// words too (a LOINC label "… ; Résultat nominal ; …", a patient named RESULTAT).
fn label_at(line: &str) -> Option<(Label, &str)> {
    let start = LEAD.find(line).map_or(0, |m| m.end());
    let line = &line[start..];
    LABELS
        .iter()
        .find_map(|(label, re)| re.find(line).map(|m| (*label, &line[m.end()..])))
}

/// A value, or `None` when the text is not one: empty, or a heading of its own (it ends with
/// a colon, as "Patient concerné :" does).
fn value_of(text: &str) -> Option<String> {
    let v = clean(text);
    (!v.is_empty() && !v.ends_with([':', '：'])).then_some(v)
}

pub fn body(text: &str) -> BodyFields {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = BodyFields::default();
    for (i, line) in lines.iter().enumerate() {
        let Some((label, rest)) = label_at(line) else {
            continue;
        };
        let Some(value) = value_after(rest, &lines[i + 1..]) else {
            continue;
        };
        let slot = match label {
            Label::Nom => &mut out.nom,
            Label::Prenom => &mut out.prenom,
            Label::Sexe => &mut out.sexe,
            Label::Naissance => &mut out.birth_date,
            Label::Ins => &mut out.ins,
            Label::Structure => &mut out.finess,
            Label::Prelevement => &mut out.sampled,
            Label::Integration => &mut out.integrated,
            Label::Resultat => &mut out.result,
            Label::Test => {
                if out.loinc_code.is_none() && out.loinc_label.is_none() {
                    if let Some(c) = LOINC.captures(&value) {
                        out.loinc_code = Some(c[1].to_string());
                        let label = clean(&c[2]);
                        out.loinc_label = (!label.is_empty()).then_some(label);
                    } else {
                        out.loinc_label = Some(value);
                    }
                }
                continue;
            }
        };
        // The first field that has a value wins.
        if slot.is_none() {
            *slot = Some(value);
        }
    }
    out
}

/// The value is the rest of the label's line; when that is empty, the next non-empty line
/// (a label and its value in two table rows), unless that line starts a field of its own.
fn value_after(rest: &str, following: &[&str]) -> Option<String> {
    if !clean(rest).is_empty() {
        return value_of(rest);
    }
    let next = following.iter().find(|l| !clean(l).is_empty())?;
    if label_at(next).is_some() {
        return None;
    }
    value_of(next)
}

#[cfg(test)]
mod tests;
