//! RFC 2047 encoded-words that mail-parser leaves alone because they sit where the RFC does not
//! allow them, such as inside a quoted `filename="=?UTF-8?B?…?="` (a non-standard form some
//! mailers use and SPEC §2 expects). Decoding reuses mail-parser's charset tables.

use std::borrow::Cow;
use std::sync::LazyLock;

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use regex::Regex;

static WORD: LazyLock<Regex> = LazyLock::new(|| {
    // A charset name is printable ASCII (RFC 2047 §2): a Unicode class repeated 40 times
    // would make a 400 KB automaton.
    Regex::new(r"=\?([!-~&&[^?]]{1,40})\?([bBqQ])\?([^?\s]*)\?=").expect("static regex")
});

/// Decodes any encoded-words still present in `s`; anything undecodable stays as written.
pub fn decode_leftovers(s: &str) -> String {
    if !s.contains("=?") {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut previous_was_word = false;
    for caps in WORD.captures_iter(s) {
        let whole = caps.get(0).expect("match");
        let gap = &s[last..whole.start()];
        let Some(decoded) = decode_word(&caps[1], &caps[2], &caps[3]) else {
            out.push_str(&s[last..whole.end()]);
            last = whole.end();
            previous_was_word = false;
            continue;
        };
        // RFC 2047 §6.2: white space between two encoded-words is not displayed.
        if !(previous_was_word && gap.trim().is_empty()) {
            out.push_str(gap);
        }
        out.push_str(&decoded);
        last = whole.end();
        previous_was_word = true;
    }
    out.push_str(&s[last..]);
    out
}

fn decode_word(charset: &str, encoding: &str, data: &str) -> Option<String> {
    // RFC 2231 §5 allows a language suffix: `UTF-8*fr`.
    let charset = charset.split('*').next().unwrap_or(charset);
    let bytes = if encoding.eq_ignore_ascii_case("b") {
        base64_decode(data.as_bytes())?
    } else {
        let qp: Cow<str> = if data.contains('_') {
            Cow::Owned(data.replace('_', "=20"))
        } else {
            Cow::Borrowed(data)
        };
        quoted_printable_decode(qp.as_bytes())?
    };
    match charset_decoder(charset.as_bytes()) {
        Some(decoder) => Some(decoder(&bytes)),
        None => String::from_utf8(bytes).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::decode_leftovers;

    #[test]
    fn decodes_b_and_q_words_and_joins_adjacent_ones() {
        assert_eq!(decode_leftovers("=?UTF-8?B?w6l0w6k=?="), "été");
        assert_eq!(
            decode_leftovers("=?ISO-8859-1?Q?H=E9l=E8ne_X?="),
            "Hélène X"
        );
        assert_eq!(
            decode_leftovers("=?UTF-8?Q?a?= =?UTF-8?Q?b?= c =?UTF-8?Q?d?="),
            "ab c d"
        );
        assert_eq!(decode_leftovers("plain.pdf"), "plain.pdf");
        assert_eq!(
            decode_leftovers("=?x-unknown?B?###?="),
            "=?x-unknown?B?###?="
        );
    }
}
