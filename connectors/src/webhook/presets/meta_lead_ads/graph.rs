//! Graph API answers that are not a lead: the `{"error":{…}}` body every Graph API shares, the
//! usage headers (`X-App-Usage`, `X-Business-Use-Case-Usage`), and how each becomes a
//! [`CallError`] the engine can act on.

use std::time::Duration;

use reqwest::{StatusCode, header::HeaderMap};
use serde::Deserialize;
use serde_json::Value;

use crate::sink::CallError;

/// Wait after a throttling answer that says nothing about when access returns. Graph's
/// platform and Business Use Case windows are rolling hours; a few minutes lets usage decay
/// without burning the retry budget on calls that count against the window again.
pub const DEFAULT_THROTTLE_WAIT: Duration = Duration::from_secs(300);
/// Enough of a non-JSON body to recognise it, not enough to flood a log.
const BODY_EXCERPT: usize = 200;

/// Graph's error object.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GraphError {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub code: Option<i64>,
    pub error_subcode: Option<i64>,
    pub fbtrace_id: Option<String>,
    pub is_transient: Option<bool>,
}

#[derive(Deserialize)]
struct Envelope {
    error: GraphError,
}

/// The error object of a body, if it is Graph's error shape.
pub fn parse_error(body: &[u8]) -> Option<GraphError> {
    serde_json::from_slice::<Envelope>(body)
        .ok()
        .map(|e| e.error)
}

/// Throttling codes: 4 (app), 17 (user), 32 (page), 613 (custom), 80000–80014 (Business Use
/// Case, 80005 = lead generation).
pub fn is_throttle_code(code: i64) -> bool {
    matches!(code, 4 | 17 | 32 | 613) || (80_000..=80_014).contains(&code)
}

/// Codes that mean the token is bad or missing (190 invalid/expired, 102 session, 104 none) or
/// lacks a permission (10, 200–299): pause the connector until someone fixes the credentials.
fn is_auth_code(code: i64) -> bool {
    matches!(code, 102 | 104 | 190 | 10) || (200..=299).contains(&code)
}

/// Error 100 about `appsecret_proof` ("Require App Secret" is on, or the secret is not this
/// app's): a credentials problem, not a bad lead.
fn is_proof_error(e: &GraphError) -> bool {
    e.code == Some(100) && e.message.contains("appsecret_proof")
}

/// The longest wait the usage headers ask for: `estimated_time_to_regain_access` (minutes) of
/// any Business Use Case entry, or `Retry-After` (seconds). `None` when nothing says.
pub fn wait_from_headers(headers: &HeaderMap) -> Option<Duration> {
    let header_json = |name: &str| -> Option<Value> {
        serde_json::from_str(headers.get(name)?.to_str().ok()?).ok()
    };
    let mut wait: Option<Duration> = None;
    let mut longer = |d: Duration| {
        if wait.is_none_or(|w| d > w) {
            wait = Some(d);
        }
    };
    if let Some(Value::Object(buc)) = header_json("x-business-use-case-usage") {
        for entries in buc.values() {
            let Value::Array(entries) = entries else {
                continue;
            };
            for entry in entries {
                let minutes = entry
                    .get("estimated_time_to_regain_access")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                if minutes > 0 {
                    longer(Duration::from_secs(minutes.saturating_mul(60).min(86_400)));
                }
            }
        }
    }
    if let Some(secs) = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        longer(Duration::from_secs(secs.min(86_400)));
    }
    wait
}

/// The highest percentage any usage header reports (`call_count`, `total_cputime`,
/// `total_time`), 0 when none is present.
pub fn usage_percent(headers: &HeaderMap) -> u64 {
    let mut max = 0;
    let mut take = |v: &Value| {
        for key in ["call_count", "total_cputime", "total_time"] {
            if let Some(p) = v.get(key).and_then(Value::as_u64) {
                max = max.max(p);
            }
        }
    };
    let header_json = |name: &str| -> Option<Value> {
        serde_json::from_str(headers.get(name)?.to_str().ok()?).ok()
    };
    if let Some(app) = header_json("x-app-usage") {
        take(&app);
    }
    if let Some(Value::Object(buc)) = header_json("x-business-use-case-usage") {
        for entries in buc.values() {
            if let Value::Array(entries) = entries {
                entries.iter().for_each(&mut take);
            }
        }
    }
    max
}

fn describe(e: &GraphError) -> String {
    let mut s = format!("Graph API error {}", e.code.unwrap_or_default());
    if let Some(sub) = e.error_subcode {
        s.push_str(&format!("/{sub}"));
    }
    if !e.kind.is_empty() {
        s.push_str(&format!(" ({})", e.kind));
    }
    let message: String = e.message.chars().take(500).collect();
    s.push_str(&format!(": {message}"));
    if let Some(trace) = &e.fbtrace_id {
        let trace: String = trace.chars().take(64).collect();
        s.push_str(&format!(" [fbtrace_id {trace}]"));
    }
    s
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(BODY_EXCERPT).collect();
    if text.chars().count() > BODY_EXCERPT {
        s.push('…');
    }
    s
}

/// Classifies a non-success Graph answer.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> CallError {
    let throttled = |message: String| CallError::RateLimited {
        message,
        retry_after: wait_from_headers(headers).unwrap_or(DEFAULT_THROTTLE_WAIT),
    };
    match parse_error(body) {
        Some(e) => {
            let code = e.code.unwrap_or_default();
            let message = describe(&e);
            if is_throttle_code(code) || status == StatusCode::TOO_MANY_REQUESTS {
                throttled(message)
            } else if is_auth_code(code) || is_proof_error(&e) {
                let status = match status.as_u16() {
                    401 | 403 => status.as_u16(),
                    // Graph answers most OAuth errors with 400; the engine wants 401/403.
                    _ if matches!(code, 102 | 104 | 190) => 401,
                    _ => 403,
                };
                CallError::Auth { status, message }
            } else if status.is_server_error()
                || e.is_transient == Some(true)
                || matches!(code, 1 | 2)
            {
                CallError::Transient {
                    message,
                    retry_after: wait_from_headers(headers),
                }
            } else {
                CallError::Permanent { message }
            }
        }
        None => {
            let message = format!("Graph API answered {status}: {}", excerpt(body));
            match status.as_u16() {
                429 => throttled(message),
                401 | 403 => CallError::Auth {
                    status: status.as_u16(),
                    message,
                },
                // Request timeout, "too early": about the moment, not the request.
                408 | 425 => CallError::Transient {
                    message,
                    retry_after: None,
                },
                s if s >= 500 => CallError::Transient {
                    message,
                    retry_after: wait_from_headers(headers),
                },
                _ => CallError::Permanent { message },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn err(code: i64) -> Vec<u8> {
        format!(r#"{{"error":{{"message":"m","type":"OAuthException","code":{code},"fbtrace_id":"T"}}}}"#)
            .into_bytes()
    }

    #[test]
    fn codes_map_to_the_engine_classes() {
        let h = HeaderMap::new();
        let bad = StatusCode::BAD_REQUEST;
        assert!(matches!(
            classify(bad, &h, &err(190)),
            CallError::Auth { status: 401, .. }
        ));
        assert!(matches!(
            classify(bad, &h, &err(200)),
            CallError::Auth { status: 403, .. }
        ));
        for code in [4, 17, 32, 613, 80_000, 80_005, 80_014] {
            assert!(matches!(
                classify(bad, &h, &err(code)),
                CallError::RateLimited { retry_after, .. } if retry_after == DEFAULT_THROTTLE_WAIT
            ));
        }
        assert!(matches!(
            classify(bad, &h, &err(100)),
            CallError::Permanent { .. }
        ));
        assert!(matches!(
            classify(StatusCode::INTERNAL_SERVER_ERROR, &h, &err(1)),
            CallError::Transient { .. }
        ));
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, &h, b"<html>"),
            CallError::Transient { .. }
        ));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, &h, b""),
            CallError::RateLimited { .. }
        ));
    }

    #[test]
    fn usage_headers_give_the_wait() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-business-use-case-usage",
            HeaderValue::from_static(
                r#"{"123":[{"type":"pages","call_count":100,"total_cputime":4,"total_time":9,"estimated_time_to_regain_access":7}]}"#,
            ),
        );
        h.insert(
            "x-app-usage",
            HeaderValue::from_static(r#"{"call_count":12,"total_cputime":3,"total_time":5}"#),
        );
        assert_eq!(wait_from_headers(&h), Some(Duration::from_secs(420)));
        assert_eq!(usage_percent(&h), 100);
        match classify(StatusCode::BAD_REQUEST, &h, &err(80_005)) {
            CallError::RateLimited {
                retry_after,
                message,
            } => {
                assert_eq!(retry_after, Duration::from_secs(420));
                assert!(message.contains("80005") && message.contains("fbtrace_id T"));
            }
            other => panic!("{other:?}"),
        }
    }
}
