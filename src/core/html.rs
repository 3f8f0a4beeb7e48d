//! Turns an HTML body into lines of text, so that an html-only certificate reads like the
//! plain one: block elements and `<br>` end a line, table cells are separated by a space,
//! `<head>`, `<style>`, `<script>` and comments vanish, entities are decoded.

use std::sync::LazyLock;

use regex::{Captures, Regex};

static HIDDEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?is)<!--.*?-->|<(head|style|script|title)\b[^>]*>.*?</(head|style|script|title)\s*>",
    )
    .expect("static regex")
});
static BREAK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)<\s*/?\s*(br|p|div|tr|li|h[1-6]|table|tbody|thead|tfoot|ul|ol|dl|dt|dd|blockquote|section|article|header|footer|hr)\b[^>]*>")
        .expect("static regex")
});
static CELL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)<\s*/?\s*(td|th)\b[^>]*>").expect("static regex"));
static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"<[^>]*>").expect("static regex"));
static ENTITY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]{2,8});").expect("static regex")
});

pub fn to_text(html: &str) -> String {
    let s = HIDDEN.replace_all(html, "");
    // Source line breaks are not breaks in HTML.
    let s = s.replace(['\r', '\n'], " ");
    let s = BREAK.replace_all(&s, "\n");
    let s = CELL.replace_all(&s, " ");
    let s = TAG.replace_all(&s, "");
    ENTITY
        .replace_all(&s, |c: &Captures| {
            decode_entity(&c[1]).unwrap_or_else(|| c[0].to_string())
        })
        .into_owned()
}

fn decode_entity(name: &str) -> Option<String> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code).map(String::from);
    }
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "rsquo" => '’',
        "lsquo" => '‘',
        "laquo" => '«',
        "raquo" => '»',
        "eacute" => 'é',
        "Eacute" => 'É',
        "egrave" => 'è',
        "Egrave" => 'È',
        "ecirc" => 'ê',
        "Ecirc" => 'Ê',
        "euml" => 'ë',
        "agrave" => 'à',
        "Agrave" => 'À',
        "acirc" => 'â',
        "Acirc" => 'Â',
        "ccedil" => 'ç',
        "Ccedil" => 'Ç',
        "icirc" => 'î',
        "Icirc" => 'Î',
        "iuml" => 'ï',
        "ocirc" => 'ô',
        "Ocirc" => 'Ô',
        "ouml" => 'ö',
        "ugrave" => 'ù',
        "ucirc" => 'û',
        "uuml" => 'ü',
        "oelig" => 'œ',
        "OElig" => 'Œ',
        "ndash" => '–',
        "mdash" => '—',
        _ => return None,
    };
    Some(c.to_string())
}

#[cfg(test)]
mod tests {
    use super::to_text;

    #[test]
    fn tables_and_breaks_become_lines() {
        let html = "<html><head><title>x</title><style>p{}</style></head><body>\
            <table><tr><td>Nom&nbsp;:</td><td>DUPONT</td></tr>\n<tr><td>Pr&eacute;nom :</td>\
            <td>Ren&#233;e</td></tr></table><p>R&Eacute;SULTAT<br/>N&#xE9;gatif</p><!-- c --></body></html>";
        let text = to_text(html);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(
            lines,
            [
                "Nom\u{a0}:  DUPONT",
                "Prénom :  Renée",
                "RÉSULTAT",
                "Négatif"
            ]
        );
    }

    #[test]
    fn unknown_entities_stay_as_written() {
        assert_eq!(to_text("a &bogus; b &amp; c"), "a &bogus; b & c");
    }
}
