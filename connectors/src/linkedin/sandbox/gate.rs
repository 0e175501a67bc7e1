//! What LinkedIn checks before it looks at a body, in its order: the bearer token, the
//! `LinkedIn-Version` (missing: 400 `VERSION_MISSING`; inactive: 426 `NONEXISTENT_VERSION`),
//! `X-Restli-Protocol-Version: 2.0.0`, the per-minute quota; then the injected faults. Every
//! request is logged first (without its `Authorization` header).

use std::time::{Duration, Instant};

use axum::{
    Json,
    body::{Body, Bytes},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use rand::Rng;
use serde_json::{Value, json};

use super::{LoggedRequest, Shared};

pub(super) fn linkedin_error(
    status: StatusCode,
    code: &str,
    service_code: Option<i64>,
    message: &str,
) -> Response {
    let mut body = json!({"status": status.as_u16(), "code": code, "message": message});
    if let Some(n) = service_code {
        body["serviceErrorCode"] = json!(n);
    }
    (status, Json(body)).into_response()
}

pub(super) fn dropped_connection() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "linkedin sandbox dropped the connection (fault injection)",
        ))
    });
    let mut r = Response::new(Body::from_stream(failing));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub(super) fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

/// Everything LinkedIn checks before looking at the body, and the injected faults.
pub(super) fn gate(
    shared: &Shared,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<u64, Box<Response>> {
    let o = &shared.options;
    let mut w = shared.world();
    w.stats.api_calls += 1;
    w.log.push(LoggedRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        headers: headers
            .iter()
            .filter(|(k, _)| *k != header::AUTHORIZATION)
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
    });
    let token = header_text(headers, "authorization").and_then(|v| v.strip_prefix("Bearer "));
    if token != Some(o.token.as_str()) {
        w.stats.unauthorized += 1;
        return Err(Box::new(linkedin_error(
            StatusCode::UNAUTHORIZED,
            "INVALID_ACCESS_TOKEN",
            Some(65600),
            "Invalid access token",
        )));
    }
    match header_text(headers, "linkedin-version") {
        None => {
            return Err(Box::new(linkedin_error(
                StatusCode::BAD_REQUEST,
                "VERSION_MISSING",
                None,
                "A version must be present. Please specify a version by adding the LinkedIn-Version header.",
            )));
        }
        Some(v)
            if v.len() != 6 || v < o.oldest_version.as_str() || v > o.newest_version.as_str() =>
        {
            return Err(Box::new(linkedin_error(
                StatusCode::from_u16(426).unwrap_or(StatusCode::BAD_REQUEST),
                "NONEXISTENT_VERSION",
                None,
                &format!("Requested version {v} is not active"),
            )));
        }
        _ => {}
    }
    if header_text(headers, "x-restli-protocol-version") != Some("2.0.0") {
        return Err(Box::new(linkedin_error(
            StatusCode::BAD_REQUEST,
            "ILLEGAL_ARGUMENT",
            Some(100),
            "This API requires the X-Restli-Protocol-Version: 2.0.0 header",
        )));
    }
    let now = Instant::now();
    while w
        .window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
    {
        w.window.pop_front();
    }
    if w.window.len() >= o.requests_per_minute as usize || w.faults.rate_limit_next > 0 {
        w.faults.rate_limit_next = w.faults.rate_limit_next.saturating_sub(1);
        w.stats.rate_limited += 1;
        return Err(Box::new(linkedin_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            Some(101),
            "Resource level throttle APPLICATION MINUTE limit for calls to this resource is reached.",
        )));
    }
    w.window.push_back(now);
    let rate = w.faults.server_error_rate;
    if w.faults.server_error_next > 0 || (rate > 0.0 && w.rng.random_bool(rate.clamp(0.0, 1.0))) {
        w.faults.server_error_next = w.faults.server_error_next.saturating_sub(1);
        w.stats.server_errors += 1;
        return Err(Box::new(linkedin_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_SERVER_ERROR",
            None,
            "Internal Server Error",
        )));
    }
    Ok(w.faults.delay_ms)
}
