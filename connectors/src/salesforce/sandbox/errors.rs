//! Salesforce's error answers: a JSON array of `{message, errorCode[, fields]}` with the status
//! Salesforce uses for each code.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};

use crate::salesforce::wire::ApiError;

pub fn respond(status: StatusCode, errors: Vec<ApiError>) -> Response {
    (status, Json(errors)).into_response()
}

pub fn one(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    respond(status, vec![ApiError::new(code, message)])
}

pub fn invalid_session() -> Response {
    one(
        StatusCode::UNAUTHORIZED,
        "INVALID_SESSION_ID",
        "Session expired or invalid",
    )
}

pub fn daily_limit() -> Response {
    one(
        StatusCode::FORBIDDEN,
        "REQUEST_LIMIT_EXCEEDED",
        "TotalRequests Limit exceeded.",
    )
}

pub fn concurrent_limit() -> Response {
    one(
        StatusCode::FORBIDDEN,
        "REQUEST_LIMIT_EXCEEDED",
        "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
    )
}

pub fn unavailable() -> Response {
    one(
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVER_UNAVAILABLE",
        "Server temporarily unavailable, please try again later",
    )
}

pub fn not_found() -> Response {
    one(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

pub async fn not_found_handler() -> Response {
    not_found()
}

pub fn bad_request(code: &str, message: impl Into<String>) -> Response {
    one(StatusCode::BAD_REQUEST, code, message)
}

pub fn json_parse(detail: impl std::fmt::Display) -> Response {
    bad_request(
        "JSON_PARSER_ERROR",
        format!("Unexpected character: {detail}"),
    )
}
