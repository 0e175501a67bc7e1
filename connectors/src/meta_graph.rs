//! Meta's Graph API answers that are not what was asked for, shared by the Lead Ads fetcher and the
//! Conversions API: the error envelope (`{"error":{message,type,code,error_subcode,
//! error_user_title,error_user_msg,fbtrace_id,is_transient}}`), the usage headers
//! (`X-App-Usage`, `X-Business-Use-Case-Usage`) and how each becomes a [`CallError`]. Graph puts
//! the verdict in `code`, not in the HTTP status (most errors, throttling included, arrive as
//! 400), so codes are read first and the status is the fallback ([`CallError::from_status`]).

use std::time::Duration;

use reqwest::{StatusCode, header::HeaderMap};
use serde::Deserialize;
use serde_json::Value;

use crate::sink::CallError;

/// Wait after a throttle that says nothing about when access returns: Graph's windows are
/// rolling hours, so a few minutes lets usage decay without burning the retry budget.
pub const DEFAULT_THROTTLE_WAIT: Duration = Duration::from_secs(300);
const BODY_EXCERPT: usize = 200;

/// Graph's error object.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct GraphError {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub code: Option<i64>,
    pub error_subcode: Option<i64>,
    pub error_user_title: Option<String>,
    pub error_user_msg: Option<String>,
    pub fbtrace_id: Option<String>,
    pub is_transient: Option<bool>,
}

#[derive(Deserialize)]
struct Envelope {
    error: GraphError,
}

/// The error object of a body, if it has Graph's error shape.
pub fn parse_error(body: &[u8]) -> Option<GraphError> {
    serde_json::from_slice::<Envelope>(body)
        .ok()
        .map(|e| e.error)
}

/// Throttling: 4 (app), 17 (user), 32 (page), 613 (custom), 80000–80014 (Business Use Case).
pub fn is_throttle_code(code: i64) -> bool {
    matches!(code, 4 | 17 | 32 | 613) || (80_000..=80_014).contains(&code)
}

/// The token is invalid, expired or missing (190, 102, 104): 401. It lacks a permission
/// (10, 200–299): 403.
fn auth_status(code: i64) -> Option<u16> {
    match code {
        102 | 104 | 190 => Some(401),
        10 | 200..=299 => Some(403),
        _ => None,
    }
}

/// Error 100 about `appsecret_proof` ("Require App Secret" is on, or the secret is not this
/// app's): a credentials problem, not a bad request.
fn is_proof_error(e: &GraphError) -> bool {
    e.code == Some(100) && e.message.contains("appsecret_proof")
}

/// The highest percentage any usage header reports (`call_count`, `total_cputime`,
/// `total_time`), 0 when none is present.
pub fn usage_percent(headers: &HeaderMap) -> u64 {
    let header_json = |name: &str| -> Option<Value> {
        serde_json::from_str(headers.get(name)?.to_str().ok()?).ok()
    };
    let mut max = 0;
    let mut take = |v: &Value| {
        for key in ["call_count", "total_cputime", "total_time"] {
            if let Some(p) = v.get(key).and_then(Value::as_u64) {
                max = max.max(p);
            }
        }
    };
    if let Some(app) = header_json("x-app-usage") {
        take(&app);
    }
    if let Some(Value::Object(buc)) = header_json("x-business-use-case-usage") {
        for entry in buc.values().filter_map(Value::as_array).flatten() {
            take(entry);
        }
    }
    max
}

/// The longest wait the usage headers ask for (`estimated_time_to_regain_access`, minutes, in
/// `X-Business-Use-Case-Usage`) or `Retry-After` (seconds).
pub fn wait_from_headers(headers: &HeaderMap) -> Option<Duration> {
    let mut wait: Option<Duration> = None;
    let mut longer = |d: Duration| {
        if wait.is_none_or(|w| d > w) {
            wait = Some(d);
        }
    };
    let buc = headers
        .get("x-business-use-case-usage")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| serde_json::from_str::<Value>(s).ok());
    if let Some(Value::Object(buc)) = buc {
        for entry in buc.values().filter_map(Value::as_array).flatten() {
            let minutes = entry
                .get("estimated_time_to_regain_access")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if minutes > 0 {
                longer(Duration::from_secs(minutes.saturating_mul(60).min(86_400)));
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

fn clip(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if s.chars().count() > n {
        out.push('…');
    }
    out
}

/// `Meta Graph error 100/2804003 (OAuthException): Invalid parameter — Event Timestamp Too Old:
/// The timestamp … [fbtrace_id …]`: Meta's own words, with the user-facing explanation when Graph
/// gives one.
pub fn describe(e: &GraphError) -> String {
    let mut s = format!("Meta Graph error {}", e.code.unwrap_or_default());
    if let Some(sub) = e.error_subcode {
        s.push_str(&format!("/{sub}"));
    }
    if !e.kind.is_empty() {
        s.push_str(&format!(" ({})", clip(&e.kind, 64)));
    }
    s.push_str(&format!(": {}", clip(e.message.trim(), 500)));
    let title = e.error_user_title.as_deref().map(str::trim).unwrap_or("");
    let msg = e.error_user_msg.as_deref().map(str::trim).unwrap_or("");
    match (title.is_empty(), msg.is_empty()) {
        (true, true) => {}
        (false, true) => s.push_str(&format!(" — {}", clip(title, 200))),
        (true, false) => s.push_str(&format!(" — {}", clip(msg, 500))),
        (false, false) => s.push_str(&format!(" — {}: {}", clip(title, 200), clip(msg, 500))),
    }
    if let Some(trace) = &e.fbtrace_id {
        s.push_str(&format!(" [fbtrace_id {}]", clip(trace, 64)));
    }
    s
}

/// Classifies a non-success Graph answer.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> CallError {
    let hinted = wait_from_headers(headers);
    let throttle_wait = hinted.unwrap_or(DEFAULT_THROTTLE_WAIT);
    let Some(e) = parse_error(body) else {
        let text = String::from_utf8_lossy(body);
        let excerpt = clip(text.trim(), BODY_EXCERPT);
        let message = if excerpt.is_empty() {
            format!("Meta answered {status} with an empty body")
        } else {
            format!("Meta answered {status}: {excerpt}")
        };
        return CallError::from_status(status.as_u16(), message, throttle_wait, hinted);
    };
    let code = e.code.unwrap_or_default();
    let message = describe(&e);
    if is_throttle_code(code) {
        return CallError::RateLimited {
            message,
            retry_after: throttle_wait,
        };
    }
    if let Some(auth) = auth_status(code).or(is_proof_error(&e).then_some(403)) {
        let status = match status.as_u16() {
            s @ (401 | 403) => s,
            _ => auth,
        };
        return CallError::Auth { status, message };
    }
    // 1 "unknown error" and 2 "service temporarily unavailable" are about the moment.
    if e.is_transient == Some(true) || matches!(code, 1 | 2) {
        return CallError::Transient {
            message,
            retry_after: hinted,
        };
    }
    CallError::from_status(status.as_u16(), message, throttle_wait, hinted)
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
        for code in [4, 17, 32, 613, 80_004, 80_014] {
            assert!(matches!(
                classify(bad, &h, &err(code)),
                CallError::RateLimited { retry_after, .. } if retry_after == DEFAULT_THROTTLE_WAIT
            ));
        }
        assert!(matches!(
            classify(StatusCode::INTERNAL_SERVER_ERROR, &h, &err(2)),
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
        // "Require App Secret" is on and the proof is wrong: credentials, not the request.
        let proof = br#"{"error":{"message":"Invalid appsecret_proof provided in the API argument","type":"GraphMethodException","code":100}}"#;
        assert!(matches!(
            classify(bad, &h, proof),
            CallError::Auth { status: 403, .. }
        ));
        assert!(matches!(
            classify(bad, &h, &err(100)),
            CallError::Permanent { .. }
        ));
        let stale = br#"{"error":{"message":"Invalid parameter","type":"OAuthException","code":100,"error_subcode":2804003,"error_user_title":"Event Timestamp Too Old","error_user_msg":"The timestamp for this event is too far in the past.","fbtrace_id":"AbC"}}"#;
        assert_eq!(
            classify(bad, &h, stale),
            CallError::Permanent {
                message: "Meta Graph error 100/2804003 (OAuthException): Invalid parameter — Event Timestamp Too Old: The timestamp for this event is too far in the past. [fbtrace_id AbC]".into()
            }
        );
    }

    #[test]
    fn usage_headers_give_the_wait() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-business-use-case-usage",
            HeaderValue::from_static(
                r#"{"123":[{"type":"ads_management","call_count":100,"total_cputime":4,"total_time":9,"estimated_time_to_regain_access":3}]}"#,
            ),
        );
        h.insert(
            "x-app-usage",
            HeaderValue::from_static(r#"{"call_count":12,"total_cputime":3,"total_time":5}"#),
        );
        assert_eq!(wait_from_headers(&h), Some(Duration::from_secs(180)));
        assert_eq!(usage_percent(&h), 100);
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, &h, &err(80_004)),
            CallError::RateLimited { retry_after, .. } if retry_after == Duration::from_secs(180)
        ));
    }
}
