//! Pipedrive's error envelope as the sandbox sends it: `{success:false, error, error_info, data:
//! null, additional_data: null}` (plus `errorCode` on auth and throttle answers, `code` on
//! validation failures).

use axum::{
    Json,
    body::{Body, Bytes},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::pipedrive::wire::ErrorBody;

pub const ERROR_INFO: &str =
    "Please check developers.pipedrive.com for more information about Pipedrive API.";

pub fn respond(
    status: StatusCode,
    error: impl Into<String>,
    code: Option<&str>,
    with_error_code: bool,
) -> Response {
    let body = ErrorBody {
        success: false,
        error: error.into(),
        code: code.map(str::to_owned),
        error_code: with_error_code.then_some(status.as_u16()),
        error_info: Some(ERROR_INFO.to_owned()),
        data: None,
        additional_data: None,
    };
    (status, Json(body)).into_response()
}

pub fn validation(message: impl Into<String>) -> Response {
    respond(
        StatusCode::BAD_REQUEST,
        format!("Validation failed: {}", message.into()),
        Some("ERR_SCHEMA_VALIDATION_FAILED"),
        false,
    )
}

pub fn unauthorized() -> Response {
    respond(StatusCode::UNAUTHORIZED, "unauthorized access", None, true)
}

pub fn not_found(what: &str) -> Response {
    respond(
        StatusCode::NOT_FOUND,
        format!("{what} not found"),
        None,
        false,
    )
}

pub fn rate_limited(retry_after_secs: u64, daily: bool) -> Response {
    let message = if daily {
        "Daily token budget exceeded"
    } else {
        "Request over limit"
    };
    let mut r = respond(StatusCode::TOO_MANY_REQUESTS, message, None, true);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    r
}

pub fn server_error(status: u16) -> Response {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    respond(status, "Internal server error", None, false)
}

/// A response whose body fails after the status line: the client sees the connection die.
pub fn dropped_connection() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "pipedrive sandbox dropped the connection (fault injection)",
        ))
    });
    let mut r = Response::new(Body::from_stream(failing));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
