//! Europe/Paris, the zone every SI-DEP date is written in. Read from the system tz database
//! (Debian `tzdata`, so that a future change of French rules arrives with the package); when
//! it is missing, the POSIX rule in force since 1996 is used and the caller is told.

use jiff::tz::TimeZone;

/// POSIX TZ rule for metropolitan France: CET, CEST from the last Sunday of March 02:00 to the
/// last Sunday of October 03:00.
const PARIS_POSIX: &str = "CET-1CEST,M3.5.0,M10.5.0/3";

/// The zone, and whether it came from the fallback rule instead of the tz database.
pub fn load_paris() -> (TimeZone, bool) {
    match TimeZone::get("Europe/Paris") {
        Ok(tz) => (tz, false),
        Err(_) => (
            TimeZone::posix(PARIS_POSIX).expect("static POSIX rule parses"),
            true,
        ),
    }
}

/// The zone, without caring where it came from (tests, one-shot commands).
pub fn paris() -> TimeZone {
    load_paris().0
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    #[test]
    fn fallback_rule_agrees_with_tzdb_on_recent_transitions() {
        let posix = TimeZone::posix(PARIS_POSIX).unwrap();
        let Ok(db) = TimeZone::get("Europe/Paris") else {
            panic!("tzdata is required for the tests (apt-get install tzdata)");
        };
        for s in [
            "2021-03-28T00:59:59Z",
            "2021-03-28T01:00:00Z",
            "2021-10-31T00:59:59Z",
            "2021-10-31T01:00:00Z",
            "2026-07-01T12:00:00Z",
        ] {
            let t: Timestamp = s.parse().unwrap();
            assert_eq!(posix.to_offset(t), db.to_offset(t), "{s}");
        }
    }
}
