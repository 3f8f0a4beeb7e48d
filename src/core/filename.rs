//! The name a certificate is delivered under: `NOM_Prénom_dossier.pdf` (`NOM_dossier.pdf` for a
//! patient without a first name), built from validated
//! fields, never copied from the mail. Each part is sanitised so that the name stays one plain
//! component of its directory, readable on the Windows desktops that open site spools over SMB:
//! Unicode NFC, no path separators, no control or bidirectional-override characters, no
//! characters Windows forbids, no leading or trailing dots, at most 255 bytes.

use unicode_normalization::{UnicodeNormalization, is_nfc};

/// POSIX NAME_MAX on every file system the spool is likely to sit on.
pub const NAME_MAX: usize = 255;
const EXTENSION: &str = ".pdf";
const DOSSIER_MAX: usize = 64;

/// Builds the delivered file name for a certificate.
pub fn delivered_name(nom: &str, prenom: &str, dossier: &str) -> String {
    let nom = part(&nom.to_uppercase()).unwrap_or_else(|| "NOM".into());
    let prenom = part(prenom);
    let dossier = truncate(
        &part(dossier).unwrap_or_else(|| "DOSSIER".into()),
        DOSSIER_MAX,
    );
    // Room left for the names after the dossier, the separators and the extension.
    let room = NAME_MAX - dossier.len() - 2 - EXTENSION.len();
    match prenom {
        Some(prenom) => {
            let nom = truncate(&nom, room / 2);
            let prenom = truncate(&prenom, room - nom.len());
            format!("{nom}_{prenom}_{dossier}{EXTENSION}")
        }
        None => format!("{}_{dossier}{EXTENSION}", truncate(&nom, room)),
    }
}

/// The `n`th alternative of a name already taken: `NAME (2).pdf`, still at most 255 bytes.
/// `name` must end with an extension (`.pdf`, `.json`).
pub fn with_counter(name: &str, n: u32) -> String {
    if n <= 1 {
        return name.to_string();
    }
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
    let suffix = format!(" ({n}).{ext}");
    format!("{}{suffix}", truncate(stem, NAME_MAX - suffix.len()))
}

/// Sanitises one part; `None` when nothing usable is left.
fn part(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut pending_space = false;
    for c in raw.nfc() {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if is_invisible(c) {
            continue;
        }
        let c = if is_forbidden(c) { '-' } else { c };
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
    }
    let trimmed = out.trim_matches(|c: char| c == '.' || c == ' ' || c == '-');
    // Removing an invisible character can bring a letter and its accent together again.
    (!trimmed.is_empty()).then(|| trimmed.nfc().collect())
}

/// Control characters and the format characters that can disguise a name
/// (bidirectional overrides such as U+202E, zero-width characters, BOM).
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// Path separators and the characters Windows refuses in a file name.
fn is_forbidden(c: char) -> bool {
    matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
}

/// Cuts at a character boundary to at most `max` bytes, staying NFC.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = &s[..end];
    // A cut between a base letter and its combining mark may leave a non-NFC tail.
    while !is_nfc(cut) && !cut.is_empty() {
        let last = cut.chars().next_back().map_or(0, char::len_utf8);
        cut = &cut[..cut.len() - last];
    }
    cut.trim_end_matches([' ', '.']).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::{Component, Path};

    #[test]
    fn ordinary_names() {
        assert_eq!(
            delivered_name("Dupont", "Jean-Pierre", "21A0042"),
            "DUPONT_Jean-Pierre_21A0042.pdf"
        );
        assert_eq!(
            delivered_name("N'DIAYE", "Marie Claire", "7"),
            "N'DIAYE_Marie Claire_7.pdf"
        );
        assert_eq!(
            delivered_name("le gall", "Hélène", "X"),
            "LE GALL_Hélène_X.pdf"
        );
    }

    #[test]
    fn hostile_parts_are_neutralised() {
        assert_eq!(
            delivered_name("../..", "/etc", "passwd"),
            "NOM_etc_passwd.pdf"
        );
        assert_eq!(delivered_name("..", "..", ".."), "NOM_DOSSIER.pdf");
        assert_eq!(
            delivered_name("A\u{202E}fdp.exe", "B\0C", "1\n2"),
            "AFDP.EXE_BC_1 2.pdf"
        );
        assert_eq!(delivered_name("C:\\x", "a|b", "<1>"), "C--X_a-b_1.pdf");
    }

    #[test]
    fn counters_keep_the_extension_and_the_limit() {
        assert_eq!(with_counter("A_B_1.pdf", 1), "A_B_1.pdf");
        assert_eq!(with_counter("A_B_1.pdf", 2), "A_B_1 (2).pdf");
        assert_eq!(with_counter("A_B_1.json", 12), "A_B_1 (12).json");
        let long = delivered_name(&"É".repeat(300), "x", "1");
        let counted = with_counter(&long, 99);
        assert!(counted.len() <= NAME_MAX && counted.ends_with(" (99).pdf"));
    }

    #[test]
    fn a_patient_without_first_name() {
        assert_eq!(delivered_name("Ramanathan", "", "D1"), "RAMANATHAN_D1.pdf");
    }

    #[test]
    fn long_names_fit_in_255_bytes() {
        let long = "É".repeat(300);
        let name = delivered_name(&long, &long, &"9".repeat(300));
        assert!(name.len() <= NAME_MAX, "{}", name.len());
        assert!(name.ends_with(".pdf"));
        assert!(name.contains(&"9".repeat(DOSSIER_MAX)));
    }

    fn assert_safe(name: &str) {
        assert!(!name.is_empty());
        assert!(name.len() <= NAME_MAX, "{} bytes", name.len());
        assert!(is_nfc(name));
        assert!(!name.contains('/') && !name.contains('\0'));
        assert!(!name.chars().any(char::is_control));
        assert_ne!(name, ".");
        assert_ne!(name, "..");
        let mut comps = Path::new(name).components();
        assert!(matches!(comps.next(), Some(Component::Normal(_))));
        assert!(comps.next().is_none());
        let dir = Path::new("/spool/690000880");
        assert_eq!(dir.join(name).parent(), Some(dir));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_input_stays_in_its_directory(
            nom in ".{0,400}",
            prenom in "(\\PC|[./\\\\\u{0}-\u{1f}\u{202e}\u{301}])*",
            dossier in "[./\\\\a-z0-9\u{0}\u{a0}é]{0,300}",
        ) {
            assert_safe(&delivered_name(&nom, &prenom, &dossier));
        }
    }
}
