//! Dates as SI-DEP writes them (SPEC §2): `16/07/2021 17:55`, `16/07/2021 17:55:00`,
//! `16/07/2021 à 17h55`, ISO 8601, with or without an offset. Without an offset the time is
//! local to Europe/Paris (the zone comes in as an argument: the core reads no tz database).
//! A day without a time means the start of that day, which can only shorten retention.

use std::sync::LazyLock;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{Offset, TimeZone};
use regex::Regex;

static FRENCH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?xi)
        \b(?P<d>\d{1,2})\s*[/.\-]\s*(?P<m>\d{1,2})\s*[/.\-]\s*(?P<y>\d{4})\b
        (?: [\s,]* (?:à|a|-)? \s*
            (?P<h>\d{1,2}) \s* (?:h|:) \s* (?P<mi>\d{2})? (?: \s*(?::|m(?:in)?)\s* (?P<s>\d{2}))?
        )?
        \s* (?:\(?\s*(?:UTC|GMT)?\s*(?P<off>Z|[+\-]\d{2}:?\d{2})\s*\)?)?",
    )
    .expect("static regex")
});

static ISO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?xi)
        \b(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})
        (?: [T\s] (?P<h>\d{2}):(?P<mi>\d{2}) (?: :(?P<s>\d{2}) (?:\.\d+)? )? )?
        \s* (?P<off>Z|[+\-]\d{2}:?\d{2})?",
    )
    .expect("static regex")
});

/// Reads the first date (and optional time) in `text`. `None` when there is none, or when it
/// names a day or time that does not exist (`31/02/2021`, `25:00`).
pub fn parse_instant(text: &str, tz: &TimeZone) -> Option<Timestamp> {
    let caps = ISO.captures(text).or_else(|| FRENCH.captures(text))?;
    let num = |name: &str| -> Option<i64> { caps.name(name).map(|m| m.as_str().parse().ok())? };
    let date = Date::new(
        i16::try_from(num("y")?).ok()?,
        i8::try_from(num("m")?).ok()?,
        i8::try_from(num("d")?).ok()?,
    )
    .ok()?;
    let time = match num("h") {
        Some(h) => Time::new(
            i8::try_from(h).ok()?,
            i8::try_from(num("mi").unwrap_or(0)).ok()?,
            i8::try_from(num("s").unwrap_or(0)).ok()?,
            0,
        )
        .ok()?,
        None => Time::midnight(),
    };
    let dt = DateTime::from_parts(date, time);
    match caps.name("off") {
        Some(off) => {
            let offset = parse_offset(off.as_str())?;
            offset.to_timestamp(dt).ok()
        }
        // In a repeated hour (October), the earlier instant: retention can only get shorter.
        None => tz.to_ambiguous_timestamp(dt).earlier().ok(),
    }
}

fn parse_offset(s: &str) -> Option<Offset> {
    if s.eq_ignore_ascii_case("z") {
        return Some(Offset::UTC);
    }
    let sign: i32 = if s.starts_with('-') { -1 } else { 1 };
    let digits: String = s[1..].chars().filter(char::is_ascii_digit).collect();
    let hours: i32 = digits.get(..2)?.parse().ok()?;
    let minutes: i32 = digits.get(2..4)?.parse().ok()?;
    if hours > 14 || minutes > 59 {
        return None;
    }
    Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paris() -> TimeZone {
        crate::test_support::paris()
    }

    fn at(text: &str) -> Option<String> {
        parse_instant(text, &paris()).map(|t| t.to_string())
    }

    #[test]
    fn french_variants() {
        let want = Some("2021-07-16T15:55:00Z".to_string());
        assert_eq!(at("16/07/2021 17:55"), want);
        assert_eq!(at("16/07/2021 17:55:00"), want);
        assert_eq!(at("16/07/2021 à 17h55"), want);
        assert_eq!(at("le 16/07/2021 a 17 h 55"), want);
        assert_eq!(at("16-07-2021 17:55"), want);
        assert_eq!(at("16.07.2021, 17:55"), want);
        assert_eq!(at("16/07/2021 17h55m00s"), want);
        assert_eq!(at("16/07/2021 17:55 +02:00"), want);
        assert_eq!(at("16/07/2021 15:55 Z"), want);
        assert_eq!(at("2021-07-16T17:55:00+02:00"), want);
        assert_eq!(at("2021-07-16 17:55"), want);
    }

    #[test]
    fn winter_time_and_day_only() {
        assert_eq!(at("29/10/2021 10:00"), Some("2021-10-29T08:00:00Z".into()));
        assert_eq!(at("02/01/2022 10:00"), Some("2022-01-02T09:00:00Z".into()));
        assert_eq!(at("16/07/2021"), Some("2021-07-15T22:00:00Z".into()));
        assert_eq!(at("16/07/2021 17h"), Some("2021-07-16T15:00:00Z".into()));
    }

    #[test]
    fn repeated_hour_takes_the_earlier_instant() {
        // 31 Oct 2021: 02:30 happens twice in Paris; the first is 00:30Z.
        assert_eq!(at("31/10/2021 02:30"), Some("2021-10-31T00:30:00Z".into()));
    }

    #[test]
    fn impossible_dates_are_none() {
        assert_eq!(at("31/02/2021 10:00"), None);
        assert_eq!(at("16/07/2021 25:00"), None);
        assert_eq!(at("16/13/2021"), None);
        assert_eq!(at("inconnue"), None);
        assert_eq!(at(""), None);
    }
}
