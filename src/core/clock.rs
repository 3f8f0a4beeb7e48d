//! Clock safety for the purger (issue: a wrong wall clock must not purge early). Between two
//! passes of one process, the wall clock must advance like the monotonic clock; across a
//! restart, like nothing at all is known, it must not be behind the last recorded pass nor
//! too far ahead of it. A step backwards, or forwards by more than `max_jump`, holds every
//! purge until an operator confirms the clock.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// Backward corrections smaller than this are ordinary NTP adjustments.
pub const BACKWARD_TOLERANCE: SignedDuration = SignedDuration::from_mins(5);

/// The previous pass, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastPass {
    pub wall: Timestamp,
    /// The process's monotonic clock at that pass, when it was this process.
    pub mono: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Fine,
    /// The wall clock went back by this much.
    Backward(SignedDuration),
    /// The wall clock went forward by this much more than time passed (or than allowed).
    Jump(SignedDuration),
}

impl Verdict {
    pub fn describe(self) -> String {
        match self {
            Verdict::Fine => "the clock is consistent".into(),
            Verdict::Backward(d) => format!(
                "the wall clock went back by {}s since the last purge pass",
                d.as_secs()
            ),
            Verdict::Jump(d) => format!(
                "the wall clock jumped forward by {}s more than the time that passed",
                d.as_secs()
            ),
        }
    }
}

pub fn check(
    last: Option<LastPass>,
    now_wall: Timestamp,
    now_mono: Duration,
    max_jump: SignedDuration,
) -> Verdict {
    let Some(last) = last else {
        return Verdict::Fine;
    };
    let wall_delta = now_wall.duration_since(last.wall);
    let expected = match last.mono {
        Some(mono) => SignedDuration::try_from(now_mono.saturating_sub(mono)).unwrap_or_default(),
        // Across a restart nothing says how long the service was stopped.
        None => SignedDuration::ZERO,
    };
    let skew = wall_delta - expected;
    if wall_delta < -BACKWARD_TOLERANCE || skew < -BACKWARD_TOLERANCE {
        Verdict::Backward(-(skew.min(wall_delta)))
    } else if skew > max_jump {
        Verdict::Jump(skew)
    } else {
        Verdict::Fine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const WEEK: SignedDuration = SignedDuration::from_hours(7 * 24);

    #[test]
    fn same_process() {
        let last = Some(LastPass {
            wall: t("2021-11-01T10:00:00Z"),
            mono: Some(Duration::from_secs(1000)),
        });
        let mono = Duration::from_secs(1060);
        assert_eq!(
            check(last, t("2021-11-01T10:01:00Z"), mono, WEEK),
            Verdict::Fine
        );
        // A few seconds of NTP correction are fine.
        assert_eq!(
            check(last, t("2021-11-01T10:00:50Z"), mono, WEEK),
            Verdict::Fine
        );
        assert!(matches!(
            check(last, t("2021-11-01T09:00:00Z"), mono, WEEK),
            Verdict::Backward(_)
        ));
        assert!(matches!(
            check(last, t("2021-11-09T10:01:00Z"), mono, WEEK),
            Verdict::Jump(_)
        ));
        // Forward within the allowed jump.
        assert_eq!(
            check(last, t("2021-11-03T10:01:00Z"), mono, WEEK),
            Verdict::Fine
        );
    }

    #[test]
    fn across_a_restart() {
        let last = Some(LastPass {
            wall: t("2021-11-01T10:00:00Z"),
            mono: None,
        });
        let mono = Duration::from_secs(3);
        assert_eq!(
            check(last, t("2021-11-02T10:00:00Z"), mono, WEEK),
            Verdict::Fine
        );
        assert_eq!(
            check(last, t("2021-10-31T10:00:00Z"), mono, WEEK),
            Verdict::Backward(SignedDuration::from_hours(24))
        );
        assert!(matches!(
            check(last, t("2021-12-01T10:00:00Z"), mono, WEEK),
            Verdict::Jump(_)
        ));
        assert_eq!(
            check(None, t("2000-01-01T00:00:00Z"), mono, WEEK),
            Verdict::Fine
        );
    }
}
