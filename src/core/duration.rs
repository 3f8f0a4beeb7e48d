//! Human durations as written in the configuration: `60s`, `5m`, `72h`, `3d`, `2w`,
//! `6 months` (also `1h30m`, and the French `j`/`jours`/`mois`). Calendar months are kept apart
//! from fixed durations because a month has no fixed length (SPEC §4).

use jiff::SignedDuration;

/// A retention period or an interval as written: a fixed length, or calendar months (named
/// apart from `jiff::Span`, which mixes both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// An absolute duration.
    Fixed(SignedDuration),
    /// Calendar months in Europe/Paris, clamped at month end.
    Months(u32),
}

/// Why a duration cannot be read, with what was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?}: {problem}")]
pub struct DurationError {
    pub input: String,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("empty duration")]
    Empty,
    #[error("expected a number, e.g. \"72h\" or \"6 months\"")]
    NoNumber,
    #[error("too large")]
    TooLarge,
    #[error("months cannot be combined with other units")]
    MixedMonths,
    #[error("missing unit ({UNITS})")]
    NoUnit,
    #[error("unknown unit {0:?} ({UNITS})")]
    UnknownUnit(String),
    #[error("must be longer than zero")]
    NotPositive,
    #[error("give a fixed duration, not months")]
    Months,
}

/// The units a duration may use, for error messages.
pub const UNITS: &str = "the units are s, m or min, h, d or jours, w or semaines, and months or \
     mois, e.g. \"90s\", \"1h30m\", \"3d\", \"6 months\"";

/// Parses a duration. Months cannot be mixed with other units.
pub fn parse(input: &str) -> Result<Period, DurationError> {
    let err = |problem| DurationError {
        input: input.to_string(),
        problem,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err(Problem::Empty));
    }
    let mut fixed = SignedDuration::ZERO;
    let mut months: Option<u32> = None;
    let mut saw_fixed = false;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(err(Problem::NoNumber));
        }
        let n: i64 = rest[..digits].parse().map_err(|_| err(Problem::TooLarge))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].to_lowercase();
        rest = rest[unit_len..].trim_start();
        let seconds_per = match unit.as_str() {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hrs" | "hour" | "hours" | "heure" | "heures" => 3600,
            "d" | "day" | "days" | "j" | "jour" | "jours" => 86_400,
            "w" | "week" | "weeks" | "semaine" | "semaines" => 7 * 86_400,
            "month" | "months" | "mois" => {
                if months.is_some() || saw_fixed {
                    return Err(err(Problem::MixedMonths));
                }
                months = Some(u32::try_from(n).map_err(|_| err(Problem::TooLarge))?);
                continue;
            }
            "" => return Err(err(Problem::NoUnit)),
            other => return Err(err(Problem::UnknownUnit(other.to_string()))),
        };
        if months.is_some() {
            return Err(err(Problem::MixedMonths));
        }
        saw_fixed = true;
        let add = n
            .checked_mul(seconds_per)
            .map(SignedDuration::from_secs)
            .ok_or_else(|| err(Problem::TooLarge))?;
        fixed = fixed
            .checked_add(add)
            .ok_or_else(|| err(Problem::TooLarge))?;
    }
    Ok(match months {
        Some(m) => Period::Months(m),
        None => Period::Fixed(fixed),
    })
}

/// Parses a duration that must be a fixed, strictly positive length (intervals, timeouts).
pub fn parse_fixed(input: &str) -> Result<std::time::Duration, DurationError> {
    let err = |problem| DurationError {
        input: input.to_string(),
        problem,
    };
    match parse(input)? {
        Period::Fixed(d) if d.is_positive() => d.try_into().map_err(|_| err(Problem::TooLarge)),
        Period::Fixed(_) => Err(err(Problem::NotPositive)),
        Period::Months(_) => Err(err(Problem::Months)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: i64) -> Period {
        Period::Fixed(SignedDuration::from_secs(n))
    }

    #[test]
    fn units() {
        assert_eq!(parse("60s"), Ok(secs(60)));
        assert_eq!(parse("5m"), Ok(secs(300)));
        assert_eq!(parse("72h"), Ok(secs(72 * 3600)));
        assert_eq!(parse("72 hours"), Ok(secs(72 * 3600)));
        assert_eq!(parse("3d"), Ok(secs(3 * 86_400)));
        assert_eq!(parse("3 jours"), Ok(secs(3 * 86_400)));
        assert_eq!(parse("1h30m"), Ok(secs(5400)));
        assert_eq!(parse("6 months"), Ok(Period::Months(6)));
        assert_eq!(parse("6 mois"), Ok(Period::Months(6)));
        assert_eq!(parse("1 month"), Ok(Period::Months(1)));
    }

    #[test]
    fn errors() {
        assert!(parse("").is_err());
        assert!(parse("72").is_err());
        assert!(parse("h").is_err());
        assert!(parse("3 fortnights").is_err());
        assert!(parse("6 months 2d").is_err());
        assert!(parse("99999999999999999999s").is_err());
        assert!(parse_fixed("0s").is_err());
        assert!(parse_fixed("1 month").is_err());
        assert_eq!(parse_fixed("60s"), Ok(std::time::Duration::from_secs(60)));
    }
}
