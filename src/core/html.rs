//! Turns an HTML body into lines of text, so that an html-only certificate reads like the
//! plain one: block elements and `<br>` end a line, table cells are separated by a space,
//! `<head>`, `<style>`, `<script>` and comments vanish, `<pre>` keeps its line breaks, entities
//! are decoded.

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
static PRE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?is)<pre\b[^>]*>.*?</pre\s*>").expect("static regex"));
static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"<[^>]*>").expect("static regex"));
static ENTITY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]{2,8});").expect("static regex")
});

pub fn to_text(html: &str) -> String {
    let s = HIDDEN.replace_all(html, "");
    // Source line breaks are not breaks in HTML, except inside `<pre>`.
    let s = PRE.replace_all(&s, |c: &Captures| {
        c[0].replace("\r\n", "<br>").replace('\n', "<br>")
    });
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
    let i = ENTITIES.binary_search_by(|(n, _)| n.cmp(&name)).ok()?;
    Some(ENTITIES[i].1.to_string())
}

/// HTML 4 named entities for Latin-1 and French typography (and `&apos;`), sorted by name
/// for binary search.
const ENTITIES: &[(&str, char)] = &[
    ("AElig", '\u{c6}'),
    ("Aacute", '\u{c1}'),
    ("Acirc", '\u{c2}'),
    ("Agrave", '\u{c0}'),
    ("Aring", '\u{c5}'),
    ("Atilde", '\u{c3}'),
    ("Auml", '\u{c4}'),
    ("Ccedil", '\u{c7}'),
    ("Dagger", '\u{2021}'),
    ("ETH", '\u{d0}'),
    ("Eacute", '\u{c9}'),
    ("Ecirc", '\u{ca}'),
    ("Egrave", '\u{c8}'),
    ("Euml", '\u{cb}'),
    ("Iacute", '\u{cd}'),
    ("Icirc", '\u{ce}'),
    ("Igrave", '\u{cc}'),
    ("Iuml", '\u{cf}'),
    ("Ntilde", '\u{d1}'),
    ("OElig", '\u{152}'),
    ("Oacute", '\u{d3}'),
    ("Ocirc", '\u{d4}'),
    ("Ograve", '\u{d2}'),
    ("Oslash", '\u{d8}'),
    ("Otilde", '\u{d5}'),
    ("Ouml", '\u{d6}'),
    ("Prime", '\u{2033}'),
    ("Scaron", '\u{160}'),
    ("THORN", '\u{de}'),
    ("Uacute", '\u{da}'),
    ("Ucirc", '\u{db}'),
    ("Ugrave", '\u{d9}'),
    ("Uuml", '\u{dc}'),
    ("Yacute", '\u{dd}'),
    ("Yuml", '\u{178}'),
    ("aacute", '\u{e1}'),
    ("acirc", '\u{e2}'),
    ("acute", '\u{b4}'),
    ("aelig", '\u{e6}'),
    ("agrave", '\u{e0}'),
    ("amp", '\u{26}'),
    ("apos", '\u{27}'),
    ("aring", '\u{e5}'),
    ("atilde", '\u{e3}'),
    ("auml", '\u{e4}'),
    ("bdquo", '\u{201e}'),
    ("brvbar", '\u{a6}'),
    ("bull", '\u{2022}'),
    ("ccedil", '\u{e7}'),
    ("cedil", '\u{b8}'),
    ("cent", '\u{a2}'),
    ("circ", '\u{2c6}'),
    ("copy", '\u{a9}'),
    ("curren", '\u{a4}'),
    ("dagger", '\u{2020}'),
    ("deg", '\u{b0}'),
    ("divide", '\u{f7}'),
    ("eacute", '\u{e9}'),
    ("ecirc", '\u{ea}'),
    ("egrave", '\u{e8}'),
    ("emsp", '\u{2003}'),
    ("ensp", '\u{2002}'),
    ("eth", '\u{f0}'),
    ("euml", '\u{eb}'),
    ("euro", '\u{20ac}'),
    ("frac12", '\u{bd}'),
    ("frac14", '\u{bc}'),
    ("frac34", '\u{be}'),
    ("gt", '\u{3e}'),
    ("hellip", '\u{2026}'),
    ("iacute", '\u{ed}'),
    ("icirc", '\u{ee}'),
    ("iexcl", '\u{a1}'),
    ("igrave", '\u{ec}'),
    ("iquest", '\u{bf}'),
    ("iuml", '\u{ef}'),
    ("laquo", '\u{ab}'),
    ("ldquo", '\u{201c}'),
    ("lsaquo", '\u{2039}'),
    ("lsquo", '\u{2018}'),
    ("lt", '\u{3c}'),
    ("macr", '\u{af}'),
    ("mdash", '\u{2014}'),
    ("micro", '\u{b5}'),
    ("middot", '\u{b7}'),
    ("minus", '\u{2212}'),
    ("nbsp", '\u{a0}'),
    ("ndash", '\u{2013}'),
    ("not", '\u{ac}'),
    ("ntilde", '\u{f1}'),
    ("oacute", '\u{f3}'),
    ("ocirc", '\u{f4}'),
    ("oelig", '\u{153}'),
    ("ograve", '\u{f2}'),
    ("ordf", '\u{aa}'),
    ("ordm", '\u{ba}'),
    ("oslash", '\u{f8}'),
    ("otilde", '\u{f5}'),
    ("ouml", '\u{f6}'),
    ("para", '\u{b6}'),
    ("permil", '\u{2030}'),
    ("plusmn", '\u{b1}'),
    ("pound", '\u{a3}'),
    ("prime", '\u{2032}'),
    ("quot", '\u{22}'),
    ("raquo", '\u{bb}'),
    ("rdquo", '\u{201d}'),
    ("reg", '\u{ae}'),
    ("rsaquo", '\u{203a}'),
    ("rsquo", '\u{2019}'),
    ("sbquo", '\u{201a}'),
    ("scaron", '\u{161}'),
    ("sect", '\u{a7}'),
    ("shy", '\u{ad}'),
    ("sup1", '\u{b9}'),
    ("sup2", '\u{b2}'),
    ("sup3", '\u{b3}'),
    ("szlig", '\u{df}'),
    ("thinsp", '\u{2009}'),
    ("thorn", '\u{fe}'),
    ("tilde", '\u{2dc}'),
    ("times", '\u{d7}'),
    ("trade", '\u{2122}'),
    ("uacute", '\u{fa}'),
    ("ucirc", '\u{fb}'),
    ("ugrave", '\u{f9}'),
    ("uml", '\u{a8}'),
    ("uuml", '\u{fc}'),
    ("yacute", '\u{fd}'),
    ("yen", '\u{a5}'),
    ("yuml", '\u{ff}'),
    ("zwj", '\u{200d}'),
    ("zwnj", '\u{200c}'),
];

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
    fn pre_keeps_its_lines_and_entities_cover_french() {
        let text = to_text(
            "<pre>Nom : X\r\nR&eacute;sultat du test&#8239;: N&Eacute;GATIF</pre>\
            <p>L&rsquo;&eacute;quipe&nbsp;&laquo;&nbsp;&OElig;&ucirc;&ocirc;&icirc;&raquo;</p>",
        );
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(
            lines,
            [
                "Nom : X",
                "Résultat du test\u{202f}: NÉGATIF",
                "L’équipe\u{a0}«\u{a0}Œûôî»"
            ]
        );
    }

    #[test]
    fn unknown_entities_stay_as_written() {
        assert_eq!(to_text("a &bogus; b &amp; c"), "a &bogus; b & c");
    }
}
