//! HubSpot's error bodies as the sandbox sends them: the spec's `Error` shape for whole-call
//! failures, `StandardError` for 207 items, and the 429 body seen in the wild (VENDOR-NOTES §1.5).

use std::collections::BTreeMap;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use rand::Rng;

use crate::hubspot::wire::{ErrorBody, ErrorDetail, StandardError};

/// A v4-shaped UUID; the spec types `correlationId` as `uuid`.
pub fn correlation_id(rng: &mut impl Rng) -> String {
    let n: u128 = rng.random();
    let n = (n & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

pub fn body(message: impl Into<String>, category: &str, correlation_id: String) -> ErrorBody {
    ErrorBody {
        status: "error".to_owned(),
        message: message.into(),
        correlation_id,
        category: Some(category.to_owned()),
        ..Default::default()
    }
}

pub fn respond(status: StatusCode, body: ErrorBody) -> Response {
    (status, Json(body)).into_response()
}

pub fn validation(message: impl Into<String>, details: Vec<ErrorDetail>, cid: String) -> Response {
    let mut b = body(message, "VALIDATION_ERROR", cid);
    b.errors = details;
    respond(StatusCode::BAD_REQUEST, b)
}

pub fn unauthorized(cid: String) -> Response {
    respond(
        StatusCode::UNAUTHORIZED,
        body(
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            "INVALID_AUTHENTICATION",
            cid,
        ),
    )
}

/// HubSpot's answer to an OAuth access token past its `expires_in`.
pub fn expired(at: jiff::Timestamp, ago_secs: i64, cid: String) -> Response {
    let mut b = body(
        format!("The OAuth token used to make this call expired {ago_secs} second(s) ago."),
        "EXPIRED_AUTHENTICATION",
        cid,
    );
    b.context = BTreeMap::from([("expire time".to_owned(), vec![at.to_string()])]);
    respond(StatusCode::UNAUTHORIZED, b)
}

/// The token endpoint's refusal: `{"status":"BAD_REFRESH_TOKEN","message":…}` and its siblings
/// (`BAD_CLIENT_ID`, `BAD_CLIENT_SECRET`, `BAD_GRANT_TYPE`), always HTTP 400.
pub fn oauth_error(status: &str, message: &str, cid: String) -> Response {
    let b = serde_json::json!({
        "status": status,
        "message": message,
        "correlationId": cid,
        "requestId": cid,
    });
    (StatusCode::BAD_REQUEST, Json(b)).into_response()
}

/// HubSpot's throttle answer. `policy` is `TEN_SECONDLY_ROLLING` or `DAILY`.
pub fn rate_limited(policy: &str, retry_after: Option<u64>, cid: String) -> Response {
    let limit = match policy {
        "DAILY" => "daily",
        "SECONDLY" => "secondly",
        _ => "ten_secondly_rolling",
    };
    let b = ErrorBody {
        status: "error".to_owned(),
        message: format!("You have reached your {limit} limit."),
        correlation_id: cid,
        error_type: Some("RATE_LIMIT".to_owned()),
        policy_name: Some(policy.to_owned()),
        group_name: Some("privateapp-sandbox".to_owned()),
        ..Default::default()
    };
    let mut response = respond(StatusCode::TOO_MANY_REQUESTS, b);
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// The 5xx family HubSpot documents (502/504 processing timeouts, 503 unavailable, 521–523
/// origin errors), with a HubSpot-style JSON body.
pub fn server_error(status: u16, cid: String) -> Response {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.is_server_error())
        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let (message, category) = match status.as_u16() {
        500 => ("internal error", "INTERNAL_ERROR"),
        502 | 504 => (
            "The request took too long to process; pause a few seconds and retry.",
            "TIMEOUT",
        ),
        _ => (
            "HubSpot is temporarily unavailable. Please try again later.",
            "SERVICE_UNAVAILABLE",
        ),
    };
    respond(status, body(message, category, cid))
}

/// Any status a fault script asks for, with the body HubSpot would send for it.
pub fn for_status(status: u16, retry_after: Option<u64>, cid: String) -> Response {
    match status {
        401 => unauthorized(cid),
        429 => rate_limited("TEN_SECONDLY_ROLLING", retry_after, cid),
        s if s >= 500 => {
            let mut r = server_error(s, cid);
            if let Some(secs) = retry_after {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            r
        }
        403 => respond(
            StatusCode::FORBIDDEN,
            body(
                "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
                "MISSING_SCOPES",
                cid,
            ),
        ),
        409 => respond(StatusCode::CONFLICT, body("Conflict", "CONFLICT", cid)),
        s => {
            let status = StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_REQUEST);
            respond(
                status,
                body(
                    "Invalid input (sandbox scripted error)",
                    "VALIDATION_ERROR",
                    cid,
                ),
            )
        }
    }
}

pub fn not_found(cid: String) -> Response {
    respond(
        StatusCode::NOT_FOUND,
        body("resource not found", "OBJECT_NOT_FOUND", cid),
    )
}

/// One failed input of a 207, traceable by `objectWriteTraceId` like HubSpot's.
pub fn item_error(
    category: &str,
    message: impl Into<String>,
    trace_id: Option<&str>,
    id: &str,
) -> StandardError {
    let mut context = BTreeMap::new();
    if let Some(t) = trace_id {
        context.insert("objectWriteTraceId".to_owned(), vec![t.to_owned()]);
    }
    context.insert("ids".to_owned(), vec![id.to_owned()]);
    let message = message.into();
    StandardError {
        status: "error".to_owned(),
        category: category.to_owned(),
        message: message.clone(),
        context,
        errors: vec![ErrorDetail {
            message,
            ..Default::default()
        }],
        links: BTreeMap::new(),
        id: None,
        sub_category: None,
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn correlation_ids_look_like_uuids() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let id = correlation_id(&mut rng);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "{id}");
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{id}");
    }
}
