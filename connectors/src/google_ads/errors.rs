//! Google's error envelope in the engine's terms. Both APIs answer with the standard
//! `{"error":{"code","message","status","details"}}`; the details name the offending fields
//! (Data Manager `google.rpc.BadRequest`) or carry a `GoogleAdsFailure` (Google Ads API), and a
//! throttle may say how long to wait (`RetryInfo` / `quotaErrorDetails.retryDelay`).

use std::time::Duration;

use reqwest::{StatusCode, header::HeaderMap};

use crate::sink::CallError;

use super::wire::ErrorEnvelope;

/// A 429 that names no delay: both APIs' quotas are per minute.
pub const DEFAULT_THROTTLE_WAIT: Duration = Duration::from_secs(60);
/// Enough of an unexpected (non-JSON) error body to recognise it, not enough to flood a log.
const BODY_EXCERPT: usize = 200;

/// Which API answered, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    DataManager,
    GoogleAds,
}

impl Api {
    pub fn label(self) -> &'static str {
        match self {
            Api::DataManager => "Google Data Manager",
            Api::GoogleAds => "Google Ads API",
        }
    }
}

pub fn parse(body: &[u8]) -> Option<ErrorEnvelope> {
    serde_json::from_slice::<ErrorEnvelope>(body)
        .ok()
        .filter(|e| e.error.code != 0 || !e.error.message.is_empty())
}

/// Google's own words for a failed call: status, message and the first specifics (field
/// violations or Google Ads error codes), or an excerpt of a non-Google body.
pub fn describe(api: Api, status: StatusCode, body: &[u8]) -> String {
    let Some(env) = parse(body) else {
        let text = String::from_utf8_lossy(body);
        let excerpt: String = text.trim().chars().take(BODY_EXCERPT).collect();
        return if excerpt.is_empty() {
            format!("{} answered {status} with an empty body", api.label())
        } else {
            format!("{} answered {status}: {excerpt}", api.label())
        };
    };
    let e = &env.error;
    let mut text = format!("{} {}", api.label(), status.as_u16());
    if let Some(s) = e.status.as_deref().filter(|s| !s.is_empty()) {
        text.push(' ');
        text.push_str(s);
    }
    if !e.message.is_empty() {
        text.push_str(": ");
        text.push_str(e.message.trim());
    }
    let mut specifics: Vec<String> = e
        .field_violations()
        .iter()
        .map(|v| match v.reason.as_deref() {
            Some(r) => format!("{}: {r}: {}", v.field, v.description),
            None => format!("{}: {}", v.field, v.description),
        })
        .collect();
    specifics.extend(
        e.google_ads_errors()
            .iter()
            .map(|g| format!("{}: {}", g.code(), g.message)),
    );
    if !specifics.is_empty() {
        specifics.truncate(3);
        text.push_str(" (");
        text.push_str(&specifics.join("; "));
        text.push(')');
    }
    if text.contains("CUSTOMER_NOT_ALLOWLISTED_FOR_THIS_FEATURE") {
        text.push_str(
            " — this developer token may not upload offline conversions through the Google Ads API any more; use api = \"data_manager\"",
        );
    }
    text
}

fn retry_after_header(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A non-success answer in the engine's terms. No documented exception to the common reading:
/// 429 `RESOURCE_EXHAUSTED` waits, 401/403 pause, 5xx retries, other 4xx are verdicts.
pub fn classify(api: Api, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> CallError {
    let message = describe(api, status, body);
    let named = retry_after_header(headers).or_else(|| parse(body)?.error.retry_delay());
    CallError::from_status(
        status.as_u16(),
        message,
        named.unwrap_or(DEFAULT_THROTTLE_WAIT),
        named,
    )
}

/// `events[3].ad_identifiers` → `Some(3)`.
pub fn event_index(field: &str) -> Option<usize> {
    let rest = field.strip_prefix("events[")?;
    let (n, _) = rest.split_once(']')?;
    n.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_what_the_engine_should_do() {
        let h = HeaderMap::new();
        let unauth = br#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#;
        assert_eq!(
            classify(Api::DataManager, StatusCode::UNAUTHORIZED, &h, unauth),
            CallError::Auth {
                status: 401,
                message: "Google Data Manager 401 UNAUTHENTICATED: Request had invalid authentication credentials.".into()
            }
        );
        let quota = br#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.ads.googleads.v26.errors.GoogleAdsFailure","errors":[{"errorCode":{"quotaError":"RESOURCE_TEMPORARILY_EXHAUSTED"},"message":"Too many requests. Retry in 30 seconds.","details":{"quotaErrorDetails":{"rateScope":"DEVELOPER","retryDelay":"30s"}}}]}]}}"#;
        match classify(Api::GoogleAds, StatusCode::TOO_MANY_REQUESTS, &h, quota) {
            CallError::RateLimited {
                retry_after,
                message,
            } => {
                assert_eq!(retry_after, Duration::from_secs(30));
                assert!(
                    message.contains("RESOURCE_TEMPORARILY_EXHAUSTED"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(Api::DataManager, StatusCode::TOO_MANY_REQUESTS, &h, b""),
            CallError::RateLimited {
                message: "Google Data Manager answered 429 Too Many Requests with an empty body"
                    .into(),
                retry_after: DEFAULT_THROTTLE_WAIT,
            }
        );
        assert!(matches!(
            classify(
                Api::DataManager,
                StatusCode::SERVICE_UNAVAILABLE,
                &h,
                b"<html>"
            ),
            CallError::Transient { .. }
        ));
        let not_allowed = br#"{"error":{"code":403,"message":"The caller does not have permission","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.ads.googleads.v26.errors.GoogleAdsFailure","errors":[{"errorCode":{"authorizationError":"CUSTOMER_NOT_ALLOWLISTED_FOR_THIS_FEATURE"},"message":"Customer is not allowlisted for accessing this feature."}]}]}}"#;
        match classify(Api::GoogleAds, StatusCode::FORBIDDEN, &h, not_allowed) {
            CallError::Auth { status, message } => {
                assert_eq!(status, 403);
                assert!(message.contains("use api = \"data_manager\""), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn event_indexes_come_from_field_paths() {
        assert_eq!(event_index("events[12].event_timestamp"), Some(12));
        assert_eq!(event_index("events[0]"), Some(0));
        assert_eq!(event_index("destinations[0].product_destination_id"), None);
    }
}
