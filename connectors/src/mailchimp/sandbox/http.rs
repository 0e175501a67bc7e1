//! What every sandbox endpoint does before its own work, in Mailchimp's order: count the call,
//! take one of the 10 connection slots (429 beyond), inject faults, check the credentials; and
//! Mailchimp's RFC 7807 error bodies.

use std::time::Duration;

use axum::{
    Json,
    body::{Body, Bytes},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{API_KEY, MAX_CONNECTIONS, MailchimpState, OAUTH_TOKEN};

const ERRORS_DOC: &str = "https://mailchimp.com/developer/marketing/docs/errors/";

/// An RFC 7807-style error body with Mailchimp's fields.
pub fn problem(
    status: u16,
    title: &str,
    detail: &str,
    instance: String,
    errors: Option<Value>,
) -> Response {
    let mut body = json!({"type": ERRORS_DOC, "title": title, "status": status, "detail": detail, "instance": instance});
    if let Some(e) = errors {
        body["errors"] = e;
    }
    let s = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        s,
        [(header::CONTENT_TYPE, "application/problem+json")],
        Json(body),
    )
        .into_response()
}

/// 400 "Invalid Resource" with one field error.
pub fn invalid(field: &str, message: &str, instance: String) -> Response {
    problem(
        400,
        "Invalid Resource",
        "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
        instance,
        Some(json!([{"field": field, "message": message}])),
    )
}

/// 404 "Resource Not Found".
pub fn not_found(instance: String) -> Response {
    problem(
        404,
        "Resource Not Found",
        "The requested resource could not be found.",
        instance,
        None,
    )
}

/// Decodes standard base64 (for HTTP Basic); `None` on anything else.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let s = s.trim().trim_end_matches('=');
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

fn authorised(headers: &HeaderMap) -> bool {
    let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, rest)) = v.split_once(' ') else {
        return false;
    };
    if scheme.eq_ignore_ascii_case("bearer") {
        return rest.trim() == OAUTH_TOKEN;
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    base64_decode(rest)
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(_, key)| key == API_KEY))
        .unwrap_or(false)
}

/// Releases a connection slot however the handler ends.
pub struct Slot(MailchimpState);

impl Drop for Slot {
    fn drop(&mut self) {
        let mut w = self.0.world();
        w.in_flight = w.in_flight.saturating_sub(1);
    }
}

/// A call that got past the gate; it holds its connection slot until dropped.
pub struct Admitted {
    pub _slot: Slot,
    pub instance: String,
    /// Apply the change, then drop the connection instead of answering.
    pub drop_after: bool,
}

/// The common start of every endpoint: `Err` is the answer already.
pub async fn enter(state: &MailchimpState, headers: &HeaderMap) -> Result<Admitted, Response> {
    let (over_limit, fault, delay, instance) = {
        let mut w = state.world();
        if let Some((at, _)) = &w.pending_faults
            && w.stats.api_calls >= *at
            && let Some((_, f)) = w.pending_faults.take()
        {
            w.faults = f;
        }
        w.stats.api_calls += 1;
        w.in_flight += 1;
        w.peak_in_flight = w.peak_in_flight.max(w.in_flight);
        let over = w.in_flight > MAX_CONNECTIONS;
        let f = w.faults.clone();
        let fault = if w.faults.rate_limit_next > 0 {
            w.faults.rate_limit_next -= 1;
            Some(429)
        } else if w.faults.server_error_next > 0 {
            w.faults.server_error_next -= 1;
            Some(500)
        } else if w.roll(f.server_error_rate) {
            Some(503)
        } else if w.faults.drop_after_write_next > 0 {
            w.faults.drop_after_write_next -= 1;
            Some(0)
        } else {
            None
        };
        let instance = w.instance();
        (over, fault, f.delay_ms, instance)
    };
    let slot = Slot(state.clone());
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if over_limit || fault == Some(429) {
        state.world().stats.rate_limited += 1;
        return Err(problem(
            429,
            "Too Many Requests",
            "You have exceeded the limit of 10 simultaneous connections.",
            instance,
            None,
        ));
    }
    if !authorised(headers) {
        return Err(problem(
            401,
            "API Key Invalid",
            "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
            instance,
            None,
        ));
    }
    match fault {
        Some(500) => Err(problem(
            500,
            "Internal Server Error",
            "An unexpected internal error has occurred. Please contact Support for more information.",
            instance,
            None,
        )),
        Some(503) => Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "<html><body><h1>503 Service Unavailable</h1></body></html>",
        )
            .into_response()),
        _ => Ok(Admitted {
            _slot: slot,
            instance,
            drop_after: fault == Some(0),
        }),
    }
}

/// A 200 whose body breaks off half-way: the change was made, the answer is lost.
pub fn dropped(bytes: Vec<u8>) -> Response {
    let half = bytes.len() / 2;
    let parts: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from(bytes[..half].to_vec())),
        Err(std::io::Error::other("connection dropped")),
    ];
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(futures_util::stream::iter(parts)),
    )
        .into_response()
}

/// A JSON answer, or its dropped form.
pub fn json_answer(body: &Value, drop_after: bool) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    if drop_after {
        return dropped(bytes);
    }
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}
