//! JSON error answers: every refusal says what was wrong in a body a sender can read.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

/// `{"error": code, "message": ...}` (+ `"field"` when one field is to blame).
pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "error": code, "message": message.into() })),
    )
        .into_response()
}

pub fn field_error(field: &str, message: impl Into<String>) -> Response {
    let body = json!({ "error": "invalid_field", "field": field, "message": message.into() });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// 503 with `Retry-After`, for overload and shutdown.
pub fn unavailable(message: impl Into<String>, retry_after_secs: u32) -> Response {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    r
}

pub async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}
