//! Pipedrive's limits: the per-plan burst limits in 2-second windows (per api_token or OAuth
//! access token), the search API's own 10 per 2 s, the daily budget, and the headers Pipedrive
//! answers with (`x-ratelimit-limit/-remaining/-reset`, `x-daily-requests-left`,
//! `x-daily-ratelimit-token-remaining`, `Retry-After`). [`Pacer`] keeps one client inside them.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::AuthMode;
use crate::sink::RateLimit;

pub const H_LIMIT: &str = "x-ratelimit-limit";
pub const H_REMAINING: &str = "x-ratelimit-remaining";
pub const H_RESET: &str = "x-ratelimit-reset";
/// Request-era fair-use header on POST/PUT/PATCH with an api_token.
pub const H_DAILY_REQUESTS_LEFT: &str = "x-daily-requests-left";
/// Token-era daily budget header (seen in the wild; see docs/crm/pipedrive.md).
pub const H_DAILY_TOKENS_LEFT: &str = "x-daily-ratelimit-token-remaining";

/// Pipedrive's burst window.
pub const WINDOW: Duration = Duration::from_secs(2);
/// The search API's own limit per window.
pub const SEARCH_PER_WINDOW: u32 = 10;

/// The Pipedrive plan of the account; it decides the burst limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// Also "lite" in the 2024 plan names.
    #[default]
    #[serde(alias = "lite")]
    Essential,
    #[serde(alias = "growth")]
    Advanced,
    #[serde(alias = "premium")]
    Professional,
    #[serde(alias = "ultimate", alias = "power")]
    Enterprise,
}

impl Plan {
    /// Documented requests per 2-second window for this plan and auth mode.
    pub fn rate_limit(self, mode: AuthMode) -> RateLimit {
        let api_token = match self {
            Plan::Essential => 20,
            Plan::Advanced => 40,
            Plan::Professional => 80,
            Plan::Enterprise => 120,
        };
        let requests = match mode {
            AuthMode::ApiToken => api_token,
            // OAuth apps get four times the api_token limit on every plan.
            AuthMode::OAuth => api_token * 4,
        };
        RateLimit {
            requests,
            per: WINDOW,
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            Plan::Essential => "Essential",
            Plan::Advanced => "Advanced",
            Plan::Professional => "Professional",
            Plan::Enterprise => "Enterprise",
        }
    }
}

/// Whether `wanted` can put more requests into one 2-second window than `allowed` permits.
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

/// `Retry-After` as delta-seconds or an HTTP-date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(raw).ok()?.timestamp();
    Some(Duration::try_from(when.duration_since(jiff::Timestamp::now())).unwrap_or(Duration::ZERO))
}

/// Seconds until the burst window resets, as Pipedrive reports it.
pub fn window_reset(headers: &HeaderMap) -> Option<Duration> {
    header_u64(headers, H_RESET).map(Duration::from_secs)
}

/// Whether the daily budget is spent (either header at 0).
pub fn daily_exhausted(headers: &HeaderMap) -> bool {
    header_u64(headers, H_DAILY_REQUESTS_LEFT) == Some(0)
        || header_u64(headers, H_DAILY_TOKENS_LEFT) == Some(0)
}

/// Time until the daily budget resets: midnight UTC (Pipedrive resets "at the start of the day").
pub fn until_daily_reset() -> Duration {
    let now = jiff::Timestamp::now();
    let secs_today = now.as_second().rem_euclid(86_400) as u64;
    Duration::from_secs(86_400 - secs_today).max(Duration::from_secs(1))
}

/// How long a throttled caller should wait: the daily reset when the budget is gone, else
/// `Retry-After`, else the window reset, else one window.
pub fn throttle_wait(headers: &HeaderMap) -> Duration {
    if daily_exhausted(headers) {
        return until_daily_reset();
    }
    retry_after(headers)
        .or_else(|| window_reset(headers))
        .map(|d| d.max(Duration::from_millis(100)))
        .unwrap_or(WINDOW)
}

/// After a successful call: whether the headers say to hold off, and for how long.
pub fn pause_after_success(headers: &HeaderMap) -> Option<Duration> {
    if daily_exhausted(headers) {
        return Some(until_daily_reset());
    }
    if header_u64(headers, H_REMAINING) == Some(0) {
        return Some(
            window_reset(headers)
                .unwrap_or(WINDOW)
                .max(Duration::from_millis(100)),
        );
    }
    None
}

/// Which budget a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    General,
    /// Searches also count against the search API's 10 per 2 s.
    Search,
}

/// Keeps one client's requests inside the burst window (a sliding log of send times) and obeys
/// "remaining: 0" from the headers by holding the next request until the window resets. Pacing,
/// not retrying: nothing is ever sent twice because of it.
#[derive(Debug)]
pub struct Pacer {
    limit: RateLimit,
    inner: Mutex<PacerState>,
}

#[derive(Debug, Default)]
struct PacerState {
    sent: VecDeque<Instant>,
    searches: VecDeque<Instant>,
    hold_until: Option<Instant>,
}

/// Added to every window: the vendor counts a request when it arrives, a little after it left.
const SLACK: Duration = Duration::from_millis(100);

fn purge(q: &mut VecDeque<Instant>, per: Duration, now: Instant) {
    while q.front().is_some_and(|t| now.duration_since(*t) >= per) {
        q.pop_front();
    }
}

impl Pacer {
    pub fn new(limit: RateLimit) -> Self {
        Pacer {
            limit,
            inner: Mutex::new(PacerState::default()),
        }
    }

    /// Waits until a request in `lane` may go out, and counts it.
    pub async fn acquire(&self, lane: Lane) {
        loop {
            let wait = {
                let mut s = self.inner.lock().await;
                let now = Instant::now();
                let per = self.limit.per + SLACK;
                purge(&mut s.sent, per, now);
                purge(&mut s.searches, WINDOW + SLACK, now);
                let mut wait = Duration::ZERO;
                if let Some(h) = s.hold_until {
                    if h > now {
                        wait = h - now;
                    } else {
                        s.hold_until = None;
                    }
                }
                if s.sent.len() >= self.limit.requests as usize
                    && let Some(first) = s.sent.front()
                {
                    wait = wait.max(per.saturating_sub(now.duration_since(*first)));
                }
                if lane == Lane::Search
                    && s.searches.len() >= SEARCH_PER_WINDOW as usize
                    && let Some(first) = s.searches.front()
                {
                    wait = wait.max((WINDOW + SLACK).saturating_sub(now.duration_since(*first)));
                }
                if wait.is_zero() {
                    s.sent.push_back(now);
                    if lane == Lane::Search {
                        s.searches.push_back(now);
                    }
                    return;
                }
                wait
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// The vendor said its window is spent: hold every request for `d`.
    pub async fn hold(&self, d: Duration) {
        let mut s = self.inner.lock().await;
        let until = Instant::now() + d;
        s.hold_until = Some(s.hold_until.map_or(until, |h| h.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn plans_match_the_documented_burst_limits() {
        assert_eq!(
            Plan::Essential.rate_limit(AuthMode::ApiToken).to_string(),
            "20/2s"
        );
        assert_eq!(
            Plan::Enterprise.rate_limit(AuthMode::ApiToken).requests,
            120
        );
        assert_eq!(Plan::Advanced.rate_limit(AuthMode::OAuth).requests, 160);
        assert_eq!(Plan::Enterprise.rate_limit(AuthMode::OAuth).requests, 480);
        let rl = |s: &str| s.parse::<RateLimit>().unwrap();
        assert!(!exceeds(rl("10/1s"), rl("20/2s")));
        assert!(exceeds(rl("11/1s"), rl("20/2s")));
        assert!(!exceeds(rl("20/10s"), rl("20/2s")));
    }

    #[test]
    fn waits_come_from_the_headers() {
        assert_eq!(
            throttle_wait(&headers(&[("retry-after", "3"), (H_RESET, "1")])),
            Duration::from_secs(3)
        );
        assert_eq!(
            throttle_wait(&headers(&[(H_RESET, "2")])),
            Duration::from_secs(2)
        );
        assert_eq!(throttle_wait(&HeaderMap::new()), WINDOW);
        assert!(throttle_wait(&headers(&[(H_DAILY_TOKENS_LEFT, "0")])) > Duration::from_secs(0));
        assert_eq!(
            pause_after_success(&headers(&[(H_REMAINING, "0"), (H_RESET, "1")])),
            Some(Duration::from_secs(1))
        );
        assert_eq!(pause_after_success(&headers(&[(H_REMAINING, "4")])), None);
        assert!(pause_after_success(&headers(&[(H_DAILY_REQUESTS_LEFT, "0")])).is_some());
        assert!(until_daily_reset() <= Duration::from_secs(86_400));
    }

    #[tokio::test]
    async fn the_pacer_never_exceeds_the_window() {
        let p = Pacer::new(RateLimit {
            requests: 3,
            per: Duration::from_millis(200),
        });
        let start = Instant::now();
        for _ in 0..7 {
            p.acquire(Lane::General).await;
        }
        // 3 + 3 + 1: the seventh waits for two full windows.
        assert!(
            start.elapsed() >= Duration::from_millis(400),
            "{:?}",
            start.elapsed()
        );
    }
}
