//! Zoho CRM's limits: no requests-per-second window but a cap on concurrent calls per edition
//! (Free 5, Standard 10, Professional 15, Enterprise 20, Ultimate 25; upserts of more than 10
//! records share a sub-concurrency cap of 10) and API credits per rolling 24 hours (an upsert
//! costs 1 credit per 10 records, a COQL read of up to 200 rows 1). Throttling is a 429
//! `TOO_MANY_REQUESTS`; this module reads what the answer says about waiting.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::Deserialize;

use crate::sink::RateLimit;

/// Header names tandem honours on a 429 or after a success (the sandbox sends them on credit
/// exhaustion; Zoho's own use of them is unconfirmed, so every one is optional).
pub const H_LIMIT: &str = "x-ratelimit-limit";
pub const H_REMAINING: &str = "x-ratelimit-remaining";
/// When the spent credits free up: Unix milliseconds (or seconds, or a delta in seconds).
pub const H_RESET: &str = "x-ratelimit-reset";

/// Wait after a 429 that names no time: a concurrency 429 clears as soon as a call finishes.
pub const DEFAULT_THROTTLE_WAIT: Duration = Duration::from_secs(5);

/// The Zoho CRM edition of the account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Edition {
    Free,
    Standard,
    #[default]
    Professional,
    Enterprise,
    Ultimate,
}

impl Edition {
    /// Documented concurrent API calls per org and app.
    pub fn concurrency(self) -> u32 {
        match self {
            Edition::Free => 5,
            Edition::Standard => 10,
            Edition::Professional => 15,
            Edition::Enterprise => 20,
            Edition::Ultimate => 25,
        }
    }

    /// The most tandem may be told to send: one call per concurrency slot per second (a Zoho
    /// call takes well over 100 ms, so this already exceeds what the cap lets through).
    pub fn max_rate_limit(self) -> RateLimit {
        RateLimit {
            requests: self.concurrency(),
            per: Duration::from_secs(1),
        }
    }

    /// The default pace: within the upsert sub-concurrency cap of 10 and the edition's cap.
    pub fn default_rate_limit(self) -> RateLimit {
        RateLimit {
            requests: self.concurrency().min(10),
            per: Duration::from_secs(1),
        }
    }

    /// Documented ceiling of API credits per rolling 24 h (None = unlimited); the floor is
    /// 50,000 + per-licence credits, see docs/crm/zoho.md.
    pub fn max_daily_credits(self) -> Option<u64> {
        match self {
            Edition::Free => Some(5_000),
            Edition::Standard => Some(100_000),
            Edition::Professional => Some(3_000_000),
            Edition::Enterprise => Some(5_000_000),
            Edition::Ultimate => None,
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            Edition::Free => "Free",
            Edition::Standard => "Standard",
            Edition::Professional => "Professional",
            Edition::Enterprise => "Enterprise",
            Edition::Ultimate => "Ultimate",
        }
    }
}

/// Credits one upsert of `records` costs (1 per 10 records, at least 1).
pub fn upsert_credits(records: usize) -> u64 {
    (records.div_ceil(10)).max(1) as u64
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// `X-RATELIMIT-RESET` as a wait: Unix ms, Unix s, or a delta in seconds.
fn reset_wait(headers: &HeaderMap) -> Option<Duration> {
    let raw = header_u64(headers, H_RESET)?;
    let now_ms = jiff::Timestamp::now().as_millisecond().max(0) as u64;
    Some(if raw > 100_000_000_000 {
        Duration::from_millis(raw.saturating_sub(now_ms))
    } else if raw > 1_000_000_000 {
        Duration::from_millis((raw * 1000).saturating_sub(now_ms))
    } else {
        Duration::from_secs(raw)
    })
}

/// How long a throttled caller should wait: `Retry-After`, else `X-RATELIMIT-RESET`, else 5 s.
pub fn throttle_wait(headers: &HeaderMap) -> Duration {
    crate::hubspot::limits::retry_after(headers)
        .or_else(|| reset_wait(headers))
        .unwrap_or(DEFAULT_THROTTLE_WAIT)
}

/// After a success: the headers say the credits are spent, so hold off until they free up.
pub fn pause_after_success(headers: &HeaderMap) -> Option<Duration> {
    (header_u64(headers, H_REMAINING) == Some(0)).then(|| throttle_wait(headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn editions_match_the_documented_concurrency() {
        let caps: Vec<u32> = [
            Edition::Free,
            Edition::Standard,
            Edition::Professional,
            Edition::Enterprise,
            Edition::Ultimate,
        ]
        .iter()
        .map(|e| e.concurrency())
        .collect();
        assert_eq!(caps, [5, 10, 15, 20, 25]);
        assert_eq!(Edition::Free.default_rate_limit().requests, 5);
        assert_eq!(Edition::Ultimate.default_rate_limit().requests, 10);
        assert_eq!(upsert_credits(100), 10);
        assert_eq!(upsert_credits(1), 1);
        assert_eq!(upsert_credits(11), 2);
    }

    #[test]
    fn throttle_wait_prefers_retry_after_then_reset_then_five_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(throttle_wait(&h), DEFAULT_THROTTLE_WAIT);
        h.insert(H_RESET, HeaderValue::from_static("42"));
        assert_eq!(throttle_wait(&h), Duration::from_secs(42));
        let later = jiff::Timestamp::now().as_millisecond() + 60_000;
        h.insert(H_RESET, HeaderValue::from(later));
        let w = throttle_wait(&h);
        assert!(
            w > Duration::from_secs(58) && w <= Duration::from_secs(60),
            "{w:?}"
        );
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(throttle_wait(&h), Duration::from_secs(3));
        assert_eq!(pause_after_success(&h), None);
        h.insert(H_REMAINING, HeaderValue::from_static("0"));
        assert_eq!(pause_after_success(&h), Some(Duration::from_secs(3)));
    }
}
