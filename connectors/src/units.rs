//! Human-friendly config values shared by every connector: durations ("250ms", "10s", "90d") and
//! rate limits ("190/10s"). Both parse from TOML strings and refuse anything ambiguous.

use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Deserializer};

use crate::sink::RateLimit;

/// A duration written as a whole number and a unit: `ms`, `s`, `m`, `h` or `d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits.parse().map_err(|_| {
            format!(
                "{s:?} is not a duration; write e.g. \"500ms\", \"10s\", \"5m\", \"2h\", \"90d\""
            )
        })?;
        let secs = |mult: u64| n.checked_mul(mult).map(Duration::from_secs);
        let d = match unit.trim() {
            "ms" => Some(Duration::from_millis(n)),
            "s" => secs(1),
            "m" => secs(60),
            "h" => secs(3600),
            "d" => secs(86_400),
            other => {
                return Err(format!(
                    "unknown duration unit {other:?} in {s:?}; use ms, s, m, h or d"
                ));
            }
        };
        d.map(HumanDuration)
            .ok_or_else(|| format!("duration {s:?} is too large"))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        match ms {
            _ if ms.is_multiple_of(86_400_000) && ms > 0 => write!(f, "{}d", ms / 86_400_000),
            _ if ms.is_multiple_of(3_600_000) && ms > 0 => write!(f, "{}h", ms / 3_600_000),
            _ if ms.is_multiple_of(60_000) && ms > 0 => write!(f, "{}m", ms / 60_000),
            _ if ms.is_multiple_of(1000) => write!(f, "{}s", ms / 1000),
            _ => write!(f, "{ms}ms"),
        }
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for RateLimit {
    type Err = String;

    /// `"190/10s"` = 190 requests per 10 seconds; `"5/s"` = 5 per second.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hint = || {
            format!(
                "{s:?} is not a rate limit; write \"REQUESTS/PERIOD\", e.g. \"190/10s\" or \"5/s\""
            )
        };
        let (n, per) = s.trim().split_once('/').ok_or_else(hint)?;
        let requests: u32 = n.trim().parse().map_err(|_| hint())?;
        let per = per.trim();
        let per = if per.starts_with(|c: char| c.is_ascii_digit()) {
            per.parse::<HumanDuration>()?.0
        } else {
            format!("1{per}").parse::<HumanDuration>()?.0
        };
        if requests == 0 || per.is_zero() {
            return Err(format!(
                "rate limit {s:?} must allow at least one request per non-zero period"
            ));
        }
        Ok(RateLimit { requests, per })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.requests, HumanDuration(self.per))
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_every_unit_and_refuse_the_rest() {
        assert_eq!(
            "250ms".parse::<HumanDuration>().unwrap().0,
            Duration::from_millis(250)
        );
        assert_eq!(
            "10s".parse::<HumanDuration>().unwrap().0,
            Duration::from_secs(10)
        );
        assert_eq!(
            "90d".parse::<HumanDuration>().unwrap().0,
            Duration::from_secs(90 * 86_400)
        );
        assert!("10".parse::<HumanDuration>().is_err());
        assert!("ten seconds".parse::<HumanDuration>().is_err());
        assert!(
            "5w".parse::<HumanDuration>()
                .unwrap_err()
                .contains("unknown duration unit")
        );
        assert_eq!(HumanDuration(Duration::from_secs(7200)).to_string(), "2h");
    }

    #[test]
    fn rate_limits_parse_like_vendors_write_them() {
        let r: RateLimit = "190/10s".parse().unwrap();
        assert_eq!((r.requests, r.per), (190, Duration::from_secs(10)));
        let r: RateLimit = "5/s".parse().unwrap();
        assert_eq!((r.requests, r.per), (5, Duration::from_secs(1)));
        assert!("0/10s".parse::<RateLimit>().is_err());
        assert!("190".parse::<RateLimit>().is_err());
        assert_eq!(r.to_string(), "5/1s");
    }
}
