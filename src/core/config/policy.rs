//! `[retention]` (the legal maxima are enforced here), its purge timings, and `[metrics]`.

use std::time::Duration;

use super::reader::{Reader, Section, Within};
use super::*;

pub(super) fn read_retention(r: &mut Reader, s: &mut Section) -> Option<Policy> {
    let legal = Policy::default();
    let negative = match r.string(s, "negative") {
        None if s.has("negative") => None,
        None => Some(legal.negative),
        Some(text) => match duration::parse(&text) {
            Ok(Period::Fixed(d)) if d.is_positive() && d <= NEGATIVE_MAX => Some(Period::Fixed(d)),
            Ok(Period::Fixed(d)) if !d.is_positive() => {
                r.error(s.key("negative"), "must be longer than zero");
                None
            }
            Ok(_) => {
                r.error(
                    s.key("negative"),
                    format!("{text:?} is longer than the legal maximum of 72h"),
                );
                None
            }
            Err(e) => {
                r.error(s.key("negative"), e.to_string());
                None
            }
        },
    };
    let positive = match r.string(s, "positive") {
        None if s.has("positive") => None,
        None => Some(legal.positive),
        Some(text) => match duration::parse(&text) {
            Ok(Period::Months(m)) if (1..=POSITIVE_MAX_MONTHS).contains(&m) => {
                Some(Period::Months(m))
            }
            Ok(Period::Fixed(d)) if d.is_positive() && d <= POSITIVE_MAX_FIXED => {
                Some(Period::Fixed(d))
            }
            Ok(Period::Months(0)) => {
                r.error(s.key("positive"), "must be longer than zero");
                None
            }
            Ok(Period::Fixed(d)) if !d.is_positive() => {
                r.error(s.key("positive"), "must be longer than zero");
                None
            }
            Ok(_) => {
                r.error(
                    s.key("positive"),
                    format!(
                        "{text:?} is longer than the legal maximum of 6 months \
                         as a fixed duration, 179d at most"
                    ),
                );
                None
            }
            Err(e) => {
                r.error(s.key("positive"), e.to_string());
                None
            }
        },
    };
    Some(Policy {
        negative: negative?,
        positive: positive?,
    })
}

pub(super) fn read_metrics(r: &mut Reader, s: &mut Section) -> Option<Metrics> {
    let file = if s.has("file") {
        Some(r.path(s, "file")?)
    } else {
        None
    };
    let interval = r.fixed_duration(
        s,
        "interval",
        Within {
            default: Duration::from_secs(15),
            min: Duration::from_secs(1),
            max: Duration::from_secs(3600),
            says: "must be between 1s and 1h",
        },
    );
    Some(Metrics {
        file,
        interval: interval?,
    })
}

pub(super) fn read_purge(r: &mut Reader, s: &mut Section) -> Option<PurgeSettings> {
    let check_interval = r.fixed_duration(
        s,
        "check_interval",
        Within {
            default: Duration::from_secs(60),
            min: Duration::from_secs(1),
            max: Duration::from_secs(3600),
            says: "must be between 1s and 1h",
        },
    );
    let max_clock_jump = r.fixed_duration(
        s,
        "max_clock_jump",
        Within {
            default: Duration::from_secs(7 * 86_400),
            min: Duration::from_secs(60),
            max: Duration::from_secs(90 * 86_400),
            says: "must be between 1m and 90d",
        },
    );
    Some(PurgeSettings {
        check_interval: check_interval?,
        max_clock_jump: max_clock_jump?,
    })
}
