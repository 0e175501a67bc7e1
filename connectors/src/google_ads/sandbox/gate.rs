//! What happens to every API request before a handler sees it, in Google's order: counted, the
//! bearer token, the per-minute quota, then the injected faults (delay, 429, 5xx) in the shape
//! of the API the path belongs to (Data Manager: `ErrorInfo`; Google Ads API: a
//! `GoogleAdsFailure` with `quotaError` / `internalError`).

use std::time::Duration;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::Next,
    response::Response,
};
use serde_json::json;

use super::{
    SandboxState,
    state::{error_info, google_ads_failure, google_error},
};

const DOMAIN: &str = "datamanager.googleapis.com";

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The Google Ads API version of a legacy path (`/v26/customers/…` → `v26`).
fn legacy_version(path: &str) -> Option<&str> {
    let first = path.trim_start_matches('/').split('/').next()?;
    (first != "v1" || !path.contains("events:")).then_some(first)
}

fn unauthenticated(request_id: &str) -> Response {
    google_error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        vec![error_info(
            "ACCESS_TOKEN_TYPE_UNSUPPORTED",
            "googleapis.com",
            request_id,
        )],
    )
}

fn throttled(version: Option<&str>, request_id: &str) -> Response {
    match version {
        None => google_error(
            StatusCode::TOO_MANY_REQUESTS,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Ingestion requests' and limit 'Ingestion requests per minute per project' of service 'datamanager.googleapis.com'.",
            vec![error_info(
                "RATE_LIMIT_EXCEEDED",
                "googleapis.com",
                request_id,
            )],
        ),
        Some(v) => google_error(
            StatusCode::TOO_MANY_REQUESTS,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted (e.g. check quota).",
            vec![google_ads_failure(
                v,
                vec![
                    json!({"errorCode": {"quotaError": "RESOURCE_TEMPORARILY_EXHAUSTED"},
                    "message": "Too many requests. Retry in 30 seconds.",
                    "details": {"quotaErrorDetails": {"rateScope": "DEVELOPER", "rateName": "Number of operations for basic access", "retryDelay": "30s"}}}),
                ],
                request_id,
            )],
        ),
    }
}

fn server_error(version: Option<&str>, request_id: &str) -> Response {
    match version {
        None => google_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "The service is currently unavailable.",
            vec![error_info("INTERNAL_ERROR", DOMAIN, request_id)],
        ),
        Some(v) => google_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "Internal error encountered.",
            vec![google_ads_failure(
                v,
                vec![json!({"errorCode": {"internalError": "INTERNAL_ERROR"},
                    "message": "An internal error has occurred."})],
                request_id,
            )],
        ),
    }
}

pub async fn gate(State(state): State<SandboxState>, request: Request, next: Next) -> Response {
    let options = state.options().clone();
    let path = request.uri().path().to_owned();
    let version = legacy_version(&path).map(str::to_owned);
    let token = bearer(request.headers()).map(str::to_owned);
    let delay_ms = {
        let mut w = state.world();
        w.stats.api_calls += 1;
        let request_id = w.request_id();
        if !token.as_deref().is_some_and(|t| w.token_is_live(t)) {
            w.stats.unauthorized += 1;
            return unauthenticated(&request_id);
        }
        if !w.take_quota(options.requests_per_minute) || w.faults.rate_limit_next > 0 {
            w.faults.rate_limit_next = w.faults.rate_limit_next.saturating_sub(1);
            w.stats.rate_limited += 1;
            return throttled(version.as_deref(), &request_id);
        }
        let rate = w.faults.server_error_rate;
        if w.faults.server_error_next > 0 || w.roll(rate) {
            w.faults.server_error_next = w.faults.server_error_next.saturating_sub(1);
            w.stats.server_errors += 1;
            return server_error(version.as_deref(), &request_id);
        }
        w.faults.delay_ms
    };
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    next.run(request).await
}
