//! Retention due dates (SPEC §4). Negative: the sampling instant + 72 h (an absolute
//! duration). Positive: the start of the day, in Europe/Paris, six calendar months after the
//! sampling date, clamped to the month's last day. Quarantine: the positive rule, from sampling
//! or, when it is unknown, from reception. An operator's shorter rule applies; a longer one can
//! never take effect, because the due time is the earlier of the configured and legal ones.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde::Serialize;

use super::duration::Period;
use super::test_result::ResultClass;

/// The legal maxima.
pub const NEGATIVE_MAX: SignedDuration = SignedDuration::from_hours(72);
pub const POSITIVE_MAX_MONTHS: u32 = 6;
/// The shortest six calendar months, from the last second of a day to the start of the day six
/// months later, last just under 180 days (31 October → 30 April, which also loses the hour of
/// the spring change). A fixed positive duration up to 179 days never outlasts the legal rule.
pub const POSITIVE_MAX_FIXED: SignedDuration = SignedDuration::from_hours(179 * 24);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub negative: Period,
    pub positive: Period,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            negative: Period::Fixed(NEGATIVE_MAX),
            positive: Period::Months(POSITIVE_MAX_MONTHS),
        }
    }
}

/// Which rule set a certificate's due time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    Negative,
    Positive,
    Quarantine,
}

impl Rule {
    pub fn for_result(result: ResultClass) -> Option<Rule> {
        match result {
            ResultClass::Negative => Some(Rule::Negative),
            ResultClass::Positive => Some(Rule::Positive),
            ResultClass::Unknown => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Negative => "negative",
            Rule::Positive => "positive",
            Rule::Quarantine => "quarantine",
        }
    }
}

/// When a copy governed by `rule` and anchored at `anchor` (the sampling instant, or reception
/// for quarantine without a sampling date) must be gone.
pub fn due(rule: Rule, anchor: Timestamp, policy: &Policy, tz: &TimeZone) -> Timestamp {
    let (configured, legal) = match rule {
        Rule::Negative => (policy.negative, Period::Fixed(NEGATIVE_MAX)),
        Rule::Positive | Rule::Quarantine => (policy.positive, Period::Months(POSITIVE_MAX_MONTHS)),
    };
    apply(configured, anchor, tz).min(apply(legal, anchor, tz))
}

fn apply(span: Period, anchor: Timestamp, tz: &TimeZone) -> Timestamp {
    match span {
        Period::Fixed(d) => anchor.checked_add(d).unwrap_or(anchor),
        Period::Months(n) => {
            let date = anchor.to_zoned_datetime(tz.clone()).date();
            start_of_day(add_months(date, n).unwrap_or(date), tz).unwrap_or(anchor)
        }
    }
}

/// Calendar-month addition; jiff clamps 31 Aug + 6 months to 28 Feb.
fn add_months(date: Date, n: u32) -> Option<Date> {
    date.checked_add(i64::from(n).months()).ok()
}

fn start_of_day(date: Date, tz: &TimeZone) -> Option<Timestamp> {
    // A day can start at 01:00 where midnight is skipped; jiff resolves that forward.
    date.to_zoned_datetime(tz.clone())
        .ok()
        .map(|z| z.timestamp())
}

/// Renders an instant as RFC 3339 with the Europe/Paris offset of that instant.
pub fn rfc3339(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::dates::parse_instant;

    fn paris() -> TimeZone {
        crate::test_support::paris()
    }

    fn due_of(rule: Rule, sampled: &str, policy: &Policy) -> String {
        let tz = paris();
        rfc3339(
            due(rule, parse_instant(sampled, &tz).unwrap(), policy, &tz),
            &tz,
        )
    }

    #[test]
    fn negative_is_72_absolute_hours_across_dst() {
        let p = Policy::default();
        assert_eq!(
            due_of(Rule::Negative, "29/10/2021 10:00", &p),
            "2021-11-01T09:00:00+01:00"
        );
        assert_eq!(
            due_of(Rule::Negative, "16/07/2021 17:55", &p),
            "2021-07-19T17:55:00+02:00"
        );
    }

    #[test]
    fn positive_is_start_of_day_six_months_later_clamped() {
        let p = Policy::default();
        assert_eq!(
            due_of(Rule::Positive, "31/08/2021 14:00", &p),
            "2022-02-28T00:00:00+01:00"
        );
        assert_eq!(
            due_of(Rule::Positive, "31/08/2023 14:00", &p),
            "2024-02-29T00:00:00+01:00"
        );
        assert_eq!(
            due_of(Rule::Positive, "15/01/2022 00:30", &p),
            "2022-07-15T00:00:00+02:00"
        );
        // Sampled late on 31 Dec, local date still 31 Dec.
        assert_eq!(
            due_of(Rule::Positive, "31/12/2021 23:30", &p),
            "2022-06-30T00:00:00+02:00"
        );
    }

    #[test]
    fn shorter_policies_apply_longer_ones_never_do() {
        let short = Policy {
            negative: Period::Fixed(SignedDuration::from_hours(48)),
            positive: Period::Months(3),
        };
        assert_eq!(
            due_of(Rule::Negative, "16/07/2021 17:55", &short),
            "2021-07-18T17:55:00+02:00"
        );
        assert_eq!(
            due_of(Rule::Positive, "31/08/2021 14:00", &short),
            "2021-11-30T00:00:00+01:00"
        );
        let long = Policy {
            negative: Period::Fixed(SignedDuration::from_hours(100)),
            positive: Period::Fixed(SignedDuration::from_hours(200 * 24)),
        };
        assert_eq!(
            due_of(Rule::Negative, "29/10/2021 10:00", &long),
            "2021-11-01T09:00:00+01:00"
        );
        assert_eq!(
            due_of(Rule::Positive, "31/08/2021 14:00", &long),
            "2022-02-28T00:00:00+01:00"
        );
    }

    #[test]
    fn fixed_positive_limit_never_outlasts_six_months() {
        // Over every sampling day of four years, 179 days ends no later than the legal rule.
        let tz = paris();
        let p = Policy {
            negative: Period::Fixed(NEGATIVE_MAX),
            positive: Period::Fixed(POSITIVE_MAX_FIXED),
        };
        let mut d = jiff::civil::date(2021, 1, 1);
        for _ in 0..(8 * 366) {
            let anchor = d
                .at(23, 59, 59, 0)
                .to_zoned_datetime(tz.clone())
                .unwrap()
                .timestamp();
            assert_eq!(
                due(Rule::Positive, anchor, &p, &tz),
                anchor + POSITIVE_MAX_FIXED
            );
            d = d.tomorrow().unwrap();
        }
    }
}
