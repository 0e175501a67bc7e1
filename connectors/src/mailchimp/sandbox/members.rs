//! `GET /3.0/lists/{list_id}/members`: the connection limit, faults, auth, query checks,
//! filtering, sorting, paging, and the member JSON.

use std::{collections::HashMap, time::Duration};

use axum::{
    Json,
    body::{Body, Bytes},
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{API_KEY, LIST_ID, MAX_CONNECTIONS, MailchimpState, Member, OAUTH_TOKEN};

const ERRORS_DOC: &str = "https://mailchimp.com/developer/marketing/docs/errors/";

fn problem(
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

fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string()
}

fn member_json(m: &Member) -> Value {
    let pending = m.status == "pending";
    json!({
        "id": m.id,
        "email_address": m.email,
        "unique_email_id": &m.id[..10],
        "contact_id": format!("{}{}", &m.id[16..], &m.id[..16]),
        "full_name": m.first_name,
        "web_id": 100_000 + m.seq,
        "email_type": "html",
        "status": m.status,
        "consents_to_one_to_one_messaging": true,
        "merge_fields": {
            "FNAME": m.first_name, "LNAME": "", "PHONE": "", "BIRTHDAY": "",
            "ADDRESS": "", "UTM_SOURCE": "newsletter"
        },
        "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
        "ip_signup": "",
        "timestamp_signup": iso(m.signup_ms),
        "ip_opt": "",
        "timestamp_opt": if pending { String::new() } else { iso(m.signup_ms) },
        "member_rating": 2,
        "last_changed": iso(m.last_changed_ms),
        "language": "",
        "vip": false,
        "email_client": "",
        "location": {"latitude": 0, "longitude": 0, "gmtoff": 0, "dstoff": 0, "country_code": "", "timezone": ""},
        "source": "Hosted Signup Form",
        "tags_count": 1,
        "tags": [{"id": 501, "name": "signup-form"}],
        "list_id": LIST_ID,
        "_links": []
    })
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
struct Slot(MailchimpState);
impl Drop for Slot {
    fn drop(&mut self) {
        let mut w = self.0.world();
        w.in_flight = w.in_flight.saturating_sub(1);
    }
}

fn parse_time(v: Option<&String>) -> Result<Option<i64>, ()> {
    match v.map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse::<jiff::Timestamp>()
            .map(|t| Some(t.as_millisecond()))
            .map_err(|_| ()),
    }
}

pub async fn list(
    State(state): State<MailchimpState>,
    Path(list_id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (over_limit, fault, delay, instance) = {
        let mut w = state.world();
        w.stats.api_calls += 1;
        w.in_flight += 1;
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
    let _slot = Slot(state.clone());
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if over_limit || fault == Some(429) {
        state.world().stats.rate_limited += 1;
        return problem(
            429,
            "Too Many Requests",
            "You have exceeded the limit of 10 simultaneous connections.",
            instance,
            None,
        );
    }
    if !authorised(&headers) {
        return problem(
            401,
            "API Key Invalid",
            "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
            instance,
            None,
        );
    }
    match fault {
        Some(500) => {
            return problem(
                500,
                "Internal Server Error",
                "An unexpected internal error has occurred. Please contact Support for more information.",
                instance,
                None,
            );
        }
        Some(503) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "<html><body><h1>503 Service Unavailable</h1></body></html>",
            )
                .into_response();
        }
        _ => {}
    }
    if list_id != LIST_ID {
        return problem(
            404,
            "Resource Not Found",
            "The requested resource could not be found.",
            instance,
            None,
        );
    }
    let invalid = |field: &str, message: &str, instance: String| {
        problem(
            400,
            "Invalid Resource",
            "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
            instance,
            Some(json!([{"field": field, "message": message}])),
        )
    };
    let number = |k: &str, default: u64| match q.get(k) {
        None => Ok(default),
        Some(v) => v.trim().parse::<u64>().map_err(|_| ()),
    };
    let Ok(count) = number("count", 10) else {
        return invalid("count", "Must be an integer", instance);
    };
    if count > 1000 {
        return invalid("count", "Must be 1000 or fewer", instance);
    }
    let Ok(offset) = number("offset", 0) else {
        return invalid("offset", "Must be an integer", instance);
    };
    let Ok(since) = parse_time(q.get("since_last_changed")) else {
        return invalid("since_last_changed", "Must be an ISO 8601 date", instance);
    };
    let Ok(before) = parse_time(q.get("before_last_changed")) else {
        return invalid("before_last_changed", "Must be an ISO 8601 date", instance);
    };
    let sort_field = q.get("sort_field").map(String::as_str);
    if !matches!(
        sort_field,
        None | Some("timestamp_opt" | "timestamp_signup" | "last_changed")
    ) {
        return invalid(
            "sort_field",
            "Must be one of timestamp_opt, timestamp_signup, last_changed",
            instance,
        );
    }
    let desc = match q.get("sort_dir").map(String::as_str) {
        None | Some("ASC") => false,
        Some("DESC") => true,
        Some(_) => return invalid("sort_dir", "Must be ASC or DESC", instance),
    };
    let status = q.get("status").cloned();

    let (page, total) = {
        let w = state.world();
        let mut hits: Vec<&Member> = w
            .members
            .iter()
            .filter(|m| since.is_none_or(|s| m.last_changed_ms > s))
            .filter(|m| before.is_none_or(|b| m.last_changed_ms < b))
            .filter(|m| status.as_ref().is_none_or(|s| &m.status == s))
            .collect();
        match sort_field {
            Some("last_changed") => hits.sort_by_key(|m| (m.last_changed_ms, m.seq)),
            Some(_) => hits.sort_by_key(|m| (m.signup_ms, m.seq)),
            None => hits.sort_by_key(|m| m.id.clone()),
        }
        if desc {
            hits.reverse();
        }
        let total = hits.len();
        let page: Vec<Value> = hits
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(count).unwrap_or(usize::MAX))
            .map(member_json)
            .collect();
        (page, total)
    };
    let body = json!({"members": page, "list_id": LIST_ID, "total_items": total, "_links": []});
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    if fault == Some(0) {
        let half = bytes.len() / 2;
        let parts: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from(bytes[..half].to_vec())),
            Err(std::io::Error::other("connection dropped")),
        ];
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(futures_util::stream::iter(parts)),
        )
            .into_response();
    }
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}
