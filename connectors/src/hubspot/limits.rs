//! HubSpot's rate limits: the documented per-tier limits for private apps (VENDOR-NOTES §1.5) and
//! the `X-HubSpot-RateLimit-*` / `Retry-After` headers it answers with. The engine owns pacing; this
//! module only tells it what HubSpot said.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;

use crate::sink::RateLimit;

/// The header names HubSpot uses; the sandbox sends exactly these.
pub const H_DAILY: &str = "x-hubspot-ratelimit-daily";
pub const H_DAILY_REMAINING: &str = "x-hubspot-ratelimit-daily-remaining";
pub const H_INTERVAL_MS: &str = "x-hubspot-ratelimit-interval-milliseconds";
pub const H_MAX: &str = "x-hubspot-ratelimit-max";
pub const H_REMAINING: &str = "x-hubspot-ratelimit-remaining";
pub const H_SECONDLY: &str = "x-hubspot-ratelimit-secondly";
pub const H_SECONDLY_REMAINING: &str = "x-hubspot-ratelimit-secondly-remaining";

/// HubSpot's window when its headers don't say otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// OAuth apps: 110 requests per 10 s per installed account, whatever the tier (VENDOR-NOTES §1.5
/// marks the exact value unconfirmed; see docs/crm/hubspot.md). OAuth calls have no daily cap.
pub const OAUTH_APP_LIMIT: RateLimit = RateLimit {
    requests: 110,
    per: DEFAULT_INTERVAL,
};

/// The HubSpot subscription of the account the private app belongs to. Limits are per account,
/// so the tier (not the app) decides how fast tandem may call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Free,
    Starter,
    #[default]
    Professional,
    Enterprise,
    /// The "API limit increase" add-on on top of any paid tier.
    ApiAddOn,
}

impl Tier {
    /// The documented burst limit for private apps on this tier.
    pub fn rate_limit(self) -> RateLimit {
        let requests = match self {
            Tier::Free | Tier::Starter => 100,
            Tier::Professional | Tier::Enterprise => 190,
            Tier::ApiAddOn => 250,
        };
        RateLimit {
            requests,
            per: DEFAULT_INTERVAL,
        }
    }

    /// The documented daily cap (the add-on adds 1M per pack to the base tier; one pack assumed
    /// on top of Enterprise's, the least it can be).
    pub fn daily_limit(self) -> u64 {
        match self {
            Tier::Free | Tier::Starter => 250_000,
            Tier::Professional => 650_000,
            Tier::Enterprise => 1_000_000,
            Tier::ApiAddOn => 2_000_000,
        }
    }

    /// The name HubSpot's pricing pages use, for messages.
    pub fn display_name(self) -> &'static str {
        match self {
            Tier::Free => "Free",
            Tier::Starter => "Starter",
            Tier::Professional => "Professional",
            Tier::Enterprise => "Enterprise",
            Tier::ApiAddOn => "API limit increase",
        }
    }
}

/// Whether `wanted` can put more requests into one HubSpot window than `allowed` permits. A long
/// period can still burst its whole budget inside one window, and a short one repeats within it.
pub fn exceeds(wanted: RateLimit, allowed: RateLimit) -> bool {
    let window = allowed.per.as_millis().max(1);
    let per = wanted.per.as_millis().max(1);
    let in_one_window = if per >= window {
        u128::from(wanted.requests)
    } else {
        u128::from(wanted.requests) * window.div_ceil(per)
    };
    in_one_window > u128::from(allowed.requests)
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// `Retry-After` as delta-seconds or an HTTP-date; a date in the past means "now".
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(raw).ok()?.timestamp();
    let wait = when.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// The window length HubSpot reports, or its documented 10 s.
pub fn interval(headers: &HeaderMap) -> Duration {
    header_u64(headers, H_INTERVAL_MS)
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_INTERVAL)
}

/// How long a throttled caller should wait: HubSpot's `Retry-After` when sent (it is not
/// documented to be), else the rest of the rolling window, which is at most one interval.
pub fn throttle_wait(headers: &HeaderMap) -> Duration {
    retry_after(headers).unwrap_or_else(|| interval(headers))
}

/// After a successful call: whether the headers say the next call would be throttled, and for
/// how long to hold off so the engine doesn't earn a 429.
pub fn pause_after_success(headers: &HeaderMap) -> Option<Duration> {
    if header_u64(headers, H_REMAINING) == Some(0) {
        return Some(interval(headers));
    }
    if header_u64(headers, H_SECONDLY_REMAINING) == Some(0) {
        return Some(Duration::from_secs(1));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn tiers_match_the_documented_private_app_limits() {
        assert_eq!(Tier::Free.rate_limit().requests, 100);
        assert_eq!(Tier::Starter.rate_limit().requests, 100);
        assert_eq!(Tier::Professional.rate_limit().requests, 190);
        assert_eq!(Tier::Enterprise.rate_limit().requests, 190);
        assert_eq!(Tier::ApiAddOn.rate_limit().requests, 250);
        assert_eq!(Tier::default(), Tier::Professional);
    }

    #[test]
    fn exceeds_accounts_for_bursts_and_short_periods() {
        let pro = Tier::Professional.rate_limit();
        let rl = |s: &str| s.parse::<RateLimit>().unwrap();
        assert!(!exceeds(rl("190/10s"), pro));
        assert!(!exceeds(rl("19/1s"), pro));
        assert!(exceeds(rl("20/1s"), pro));
        assert!(exceeds(rl("200/10s"), pro));
        // Same average rate, but the whole 200 may land inside one 10 s window.
        assert!(exceeds(rl("200/20s"), pro));
        assert!(!exceeds(rl("150/1m"), pro));
    }

    #[test]
    fn throttle_wait_prefers_retry_after_then_interval_then_ten_seconds() {
        let h = headers(&[("retry-after", "3"), (H_INTERVAL_MS, "10000")]);
        assert_eq!(throttle_wait(&h), Duration::from_secs(3));
        let h = headers(&[(H_INTERVAL_MS, "2500")]);
        assert_eq!(throttle_wait(&h), Duration::from_millis(2500));
        assert_eq!(throttle_wait(&HeaderMap::new()), Duration::from_secs(10));
        let h = headers(&[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert_eq!(throttle_wait(&h), Duration::ZERO);
    }

    #[test]
    fn pause_when_the_window_or_second_is_spent() {
        let h = headers(&[(H_REMAINING, "0"), (H_INTERVAL_MS, "10000")]);
        assert_eq!(pause_after_success(&h), Some(Duration::from_secs(10)));
        let h = headers(&[(H_REMAINING, "5"), (H_SECONDLY_REMAINING, "0")]);
        assert_eq!(pause_after_success(&h), Some(Duration::from_secs(1)));
        let h = headers(&[(H_REMAINING, "5")]);
        assert_eq!(pause_after_success(&h), None);
    }
}
