//! Result classification (SPEC §2): positive, negative or unknown. "Non détecté" must never
//! read as "détecté": negative phrases are recognised and removed before looking for positive
//! ones, and a text that says both is unknown, for a person to decide.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use super::text::fold;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultClass {
    Positive,
    Negative,
    Unknown,
}

impl ResultClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ResultClass::Positive => "positive",
            ResultClass::Negative => "negative",
            ResultClass::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<ResultClass> {
        match s {
            "positive" => Some(ResultClass::Positive),
            "negative" => Some(ResultClass::Negative),
            "unknown" => Some(ResultClass::Unknown),
            _ => None,
        }
    }
}

// Matched on folded text: lower case, no accents, hyphens and apostrophes as spaces.
static INCONCLUSIVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\b(ininterpretable|non interpretable|non conclusif|non concluant|indetermine|douteux|invalide|equivoque|a controler|inconclusive|invalid|indeterminate)\b",
    )
    .expect("static regex")
});
static NEGATIVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\b(negatifs?|negatives?|non detectee?s?|not detected|absence de detection|indetectable|260415000)\b",
    )
    .expect("static regex")
});
static POSITIVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(positifs?|positives?|detectee?s?|detected|260373001)\b").expect("static regex")
});

/// Classifies the body's `Résultat du test` value.
pub fn classify(text: &str) -> ResultClass {
    let folded = fold(text);
    if INCONCLUSIVE.is_match(&folded) {
        return ResultClass::Unknown;
    }
    let negative = NEGATIVE.is_match(&folded);
    let rest = NEGATIVE.replace_all(&folded, " ");
    let positive = POSITIVE.is_match(&rest);
    match (negative, positive) {
        (true, false) => ResultClass::Negative,
        (false, true) => ResultClass::Positive,
        _ => ResultClass::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ResultClass::*;

    #[test]
    fn spec_wordings() {
        for (text, want) in [
            ("Positif", Positive),
            ("POSITIF", Positive),
            ("Négatif", Negative),
            ("NEGATIF", Negative),
            ("NÉGATIF", Negative),
            ("Détecté", Positive),
            ("DETECTE", Positive),
            ("Non détecté", Negative),
            ("NON DETECTE", Negative),
            ("non-détecté", Negative),
            ("Ininterprétable", Unknown),
            ("Non conclusif", Unknown),
            ("260373001", Positive),
            ("260415000", Negative),
            ("Positif (SARS-CoV-2 détecté)", Positive),
            ("Négatif : SARS-CoV-2 non détecté", Negative),
            ("Positif faible", Positive),
        ] {
            assert_eq!(classify(text), want, "{text}");
        }
    }

    #[test]
    fn contradictions_and_blanks_are_unknown() {
        assert_eq!(classify("Positif / Négatif"), Unknown);
        assert_eq!(classify(""), Unknown);
        assert_eq!(classify("En attente"), Unknown);
        assert_eq!(classify("Détecté, ininterprétable"), Unknown);
        // "positivité" is not "positif".
        assert_eq!(classify("Taux de positivité"), Unknown);
    }
}
