//! Text normalisation shared by the field extractors: whitespace (including the no-break
//! spaces French typography puts before `:`), Unicode NFC, and an accent- and case-blind
//! folding used only for comparisons. Owns no policy; never allocates more than its input.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// NFC-normalises `s`, turns every Unicode white space (U+00A0 and U+202F included) into a
/// plain space, collapses runs and trims both ends.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.nfc() {
        if c.is_whitespace() || c.is_control() {
            pending_space = !out.is_empty();
        } else {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c);
        }
    }
    out
}

/// Comparison key: lower case, accents removed, apostrophes unified, every run of spaces,
/// hyphens or apostrophes reduced to one space. `N’Diaye` and `N'DIAYE` fold alike, as do
/// `Jean-Pierre` and `JEAN PIERRE`.
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.nfd() {
        if is_combining_mark(c) {
            continue;
        }
        if c.is_whitespace() || c.is_control() || is_apostrophe(c) || is_dash(c) {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Straight, curly and modifier apostrophes all occur in French names and labels.
pub fn is_apostrophe(c: char) -> bool {
    matches!(
        c,
        '\'' | '\u{2019}' | '\u{2018}' | '\u{02BC}' | '`' | '\u{00B4}'
    )
}

fn is_dash(c: char) -> bool {
    matches!(c, '-' | '\u{2010}' | '\u{2011}' | '\u{2013}' | '\u{2014}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_collapses_no_break_spaces_and_trims() {
        assert_eq!(clean("  Nom\u{a0}\u{202f}:  DUPONT \t "), "Nom : DUPONT");
        assert_eq!(clean("e\u{301}"), "é");
        assert_eq!(clean(""), "");
    }

    #[test]
    fn fold_ignores_case_accents_and_separators() {
        assert_eq!(fold("N’DIAYE"), fold("n'diaye"));
        assert_eq!(fold("Jean-Pierre"), fold("JEAN PIERRE"));
        assert_eq!(fold("Hélène"), "helene");
        assert_ne!(fold("Marie"), fold("Mario"));
    }
}
