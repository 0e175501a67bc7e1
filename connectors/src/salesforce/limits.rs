//! Salesforce's limits as its answers state them. There is no per-second limit and no 429 on the
//! REST API: every call spends the org's rolling 24-hour budget, which every response reports in
//! `Sforce-Limit-Info: api-usage=USED/MAX`. When the budget is spent Salesforce answers 403
//! `REQUEST_LIMIT_EXCEEDED` ("TotalRequests Limit exceeded."); the same code with a
//! "ConcurrentRequests" message means too many long-running requests at once. Both are limits,
//! never auth failures.

use std::time::Duration;

use reqwest::header::HeaderMap;

use crate::sink::CallError;

use super::wire::ApiError;

/// The header every REST answer carries.
pub const LIMIT_INFO: &str = "sforce-limit-info";
pub const REQUEST_LIMIT_EXCEEDED: &str = "REQUEST_LIMIT_EXCEEDED";
/// How long to wait after a concurrency refusal. It clears as soon as one of the org's
/// long-running requests ends and Salesforce sends no hint of when; the engine holds the whole
/// destination and spends no attempt, so a short wait costs at most one refused call per period.
pub const CONCURRENT_WAIT: Duration = Duration::from_secs(3);

/// `(used, max)` from `api-usage=USED/MAX` (other parts such as `api-bursts=` are ignored).
pub fn api_usage(headers: &HeaderMap) -> Option<(u64, u64)> {
    let value = headers.get(LIMIT_INFO)?.to_str().ok()?;
    value.split([';', ',']).find_map(|part| {
        let (name, usage) = part.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("api-usage") {
            return None;
        }
        let (used, max) = usage.trim().split_once('/')?;
        Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
    })
}

/// After a successful call: pause when less than `reserve_percent` of the day's budget is left,
/// so other integrations on the org (and people using the UI) keep theirs.
pub fn pause_after_success(
    headers: &HeaderMap,
    reserve_percent: f64,
    pause: Duration,
) -> Option<Duration> {
    let (used, max) = api_usage(headers)?;
    if max == 0 {
        return None;
    }
    let remaining = max.saturating_sub(used) as f64;
    (remaining < max as f64 * reserve_percent / 100.0 || used >= max).then_some(pause)
}

/// A 403 that is a limit: daily budget spent (wait `pause`) or too many concurrent requests
/// (wait [`CONCURRENT_WAIT`]). `None` for every other 403.
pub fn limit_refusal(
    errors: &[ApiError],
    headers: &HeaderMap,
    pause: Duration,
    message: &str,
) -> Option<CallError> {
    let refusal = errors
        .iter()
        .find(|e| e.error_code == REQUEST_LIMIT_EXCEEDED)?;
    let budget_spent = api_usage(headers).is_some_and(|(used, max)| used >= max);
    let concurrent = refusal.message.to_ascii_lowercase().contains("concurrent");
    let retry_after = if concurrent && !budget_spent {
        CONCURRENT_WAIT
    } else {
        pause
    };
    Some(CallError::RateLimited {
        message: message.to_owned(),
        retry_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(LIMIT_INFO, v.parse().unwrap());
        h
    }

    #[test]
    fn usage_is_read_from_either_form_of_the_header() {
        assert_eq!(api_usage(&headers("api-usage=18/5000")), Some((18, 5000)));
        assert_eq!(
            api_usage(&headers("api-usage=10018/100000; api-bursts=1/750")),
            Some((10018, 100000))
        );
        assert_eq!(
            api_usage(&headers("per-app-api-usage=1/10(appName=x)")),
            None
        );
        assert_eq!(api_usage(&HeaderMap::new()), None);
    }

    #[test]
    fn the_reserve_decides_the_pause() {
        let p = Duration::from_secs(900);
        assert_eq!(
            pause_after_success(&headers("api-usage=97000/100000"), 2.0, p),
            None
        );
        assert_eq!(
            pause_after_success(&headers("api-usage=98001/100000"), 2.0, p),
            Some(p)
        );
        assert_eq!(
            pause_after_success(&headers("api-usage=100000/100000"), 0.0, p),
            Some(p)
        );
    }

    #[test]
    fn limit_refusals_are_rate_limits_with_the_right_wait() {
        let p = Duration::from_secs(900);
        let total = [ApiError::new(
            REQUEST_LIMIT_EXCEEDED,
            "TotalRequests Limit exceeded.",
        )];
        let concurrent = [ApiError::new(
            REQUEST_LIMIT_EXCEEDED,
            "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
        )];
        let h = headers("api-usage=50/100");
        let wait = |e: Option<CallError>| match e {
            Some(CallError::RateLimited { retry_after, .. }) => retry_after,
            other => panic!("{other:?}"),
        };
        assert_eq!(wait(limit_refusal(&total, &h, p, "m")), p);
        assert_eq!(
            wait(limit_refusal(&concurrent, &h, p, "m")),
            CONCURRENT_WAIT
        );
        assert_eq!(
            wait(limit_refusal(
                &concurrent,
                &headers("api-usage=100/100"),
                p,
                "m"
            )),
            p
        );
        assert!(limit_refusal(&[ApiError::new("INSUFFICIENT_ACCESS", "no")], &h, p, "m").is_none());
    }
}
