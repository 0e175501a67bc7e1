//! `GET /v3/contacts`, in Brevo's order: auth, rate window, injected faults, then the query.

// A refused request *is* the vendor's answer: handlers return it as the error, unboxed.
#![allow(clippy::result_large_err)]

use axum::{
    Json,
    body::{Body, Bytes},
    extract::{RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::brevo::{
    mapping::rfc3339,
    wire::{Contact, ContactsPage, H_LIMIT, H_REMAINING, H_RESET},
};

use super::{SandboxState, StoredContact, now_ms};

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

/// A response whose body fails after the status line: the client sees the connection die.
fn dropped_connection() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "brevo sandbox dropped the connection (fault injection)",
        ))
    });
    Response::new(Body::from_stream(failing))
}

struct Window {
    limit: u32,
    remaining: u32,
    reset_secs: u64,
}

fn add_window_headers(response: &mut Response, w: &Window) {
    let h = response.headers_mut();
    h.insert(H_LIMIT, HeaderValue::from(w.limit));
    h.insert(H_REMAINING, HeaderValue::from(w.remaining));
    h.insert(H_RESET, HeaderValue::from(w.reset_secs));
}

enum Gate {
    Refused(Response),
    Admitted(Window, Fault),
}

enum Fault {
    None,
    ServerError,
    Throttle,
    Drop,
}

fn gate(state: &SandboxState, headers: &HeaderMap) -> Gate {
    let options = state.options();
    let mut w = state.world();
    w.stats.requests += 1;
    let key = headers.get("api-key").and_then(|v| v.to_str().ok());
    if key != Some(options.api_key.as_str()) {
        w.stats.unauthorized += 1;
        return Gate::Refused(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Key not found",
        ));
    }
    let elapsed = w.window_start.elapsed();
    if elapsed >= options.rate_window {
        w.window_start = std::time::Instant::now();
        w.window_used = 0;
    }
    let left = options.rate_window.saturating_sub(w.window_start.elapsed());
    let reset_secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    let throttled = |reset_secs: u64| Window {
        limit: options.rate_limit,
        remaining: 0,
        reset_secs,
    };
    if w.window_used >= options.rate_limit {
        w.stats.rate_limited += 1;
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "The expected rate limit is exceeded.",
        );
        add_window_headers(&mut r, &throttled(reset_secs));
        return Gate::Refused(r);
    }
    w.window_used += 1;
    let window = Window {
        limit: options.rate_limit,
        remaining: options.rate_limit - w.window_used,
        reset_secs,
    };
    let fault = if w.faults.rate_limit_next > 0 {
        w.faults.rate_limit_next -= 1;
        Fault::Throttle
    } else if w.faults.server_error_next > 0 {
        w.faults.server_error_next -= 1;
        Fault::ServerError
    } else if w.faults.drop_after_write_next > 0 {
        w.faults.drop_after_write_next -= 1;
        Fault::Drop
    } else {
        let p = w.faults.server_error_rate.clamp(0.0, 1.0);
        let fail = p > 0.0 && {
            use rand::Rng;
            w.rng.random_bool(p)
        };
        if fail {
            Fault::ServerError
        } else {
            Fault::None
        }
    };
    Gate::Admitted(window, fault)
}

fn to_wire(c: &StoredContact) -> Contact {
    Contact {
        id: Value::from(c.id),
        email: Some(c.email.clone()),
        email_blacklisted: Some(c.email_blacklisted),
        sms_blacklisted: Some(false),
        created_at: rfc3339(c.created_ms),
        modified_at: rfc3339(c.modified_ms),
        list_ids: c.list_ids.iter().map(|id| Value::from(*id)).collect(),
        attributes: c.attributes.clone(),
    }
}

struct Query {
    limit: usize,
    offset: usize,
    ascending: bool,
    created_since: Option<i64>,
    modified_since: Option<i64>,
    list_ids: Vec<u64>,
}

fn bad(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_parameter", message)
}

fn parse_query(raw: Option<&str>) -> Result<Query, Response> {
    let url = reqwest::Url::parse(&format!("http://sandbox/?{}", raw.unwrap_or_default()))
        .map_err(|_| bad("Invalid query string"))?;
    let mut q = Query {
        limit: 50,
        offset: 0,
        ascending: false,
        created_since: None,
        modified_since: None,
        list_ids: Vec::new(),
    };
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "limit" => {
                q.limit = value.parse().map_err(|_| bad("limit should be a number"))?;
                if q.limit > 1000 {
                    return Err(error(
                        StatusCode::BAD_REQUEST,
                        "out_of_range",
                        "limit should be less than or equal to 1000",
                    ));
                }
            }
            "offset" => {
                q.offset = value
                    .parse()
                    .map_err(|_| bad("offset should be a number"))?;
            }
            "sort" => {
                q.ascending = match value.as_ref() {
                    "asc" => true,
                    "desc" => false,
                    _ => return Err(bad("sort should be either asc or desc")),
                }
            }
            "createdSince" | "modifiedSince" => {
                let ts: jiff::Timestamp = value.parse().map_err(|_| {
                    bad(&format!(
                        "{key} should be a date-time with a timezone (YYYY-MM-DDTHH:mm:ss.SSSZ)"
                    ))
                })?;
                if key == "createdSince" {
                    q.created_since = Some(ts.as_millisecond());
                } else {
                    q.modified_since = Some(ts.as_millisecond());
                }
            }
            "listIds" => {
                for part in value.split(',') {
                    q.list_ids.push(
                        part.trim()
                            .parse()
                            .map_err(|_| bad("listIds should be a list of numbers"))?,
                    );
                }
            }
            _ => {}
        }
    }
    Ok(q)
}

pub async fn list(
    State(state): State<SandboxState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let (window, fault) = match gate(&state, &headers) {
        Gate::Refused(r) => return r,
        Gate::Admitted(w, f) => (w, f),
    };
    let delay = state.world().faults.delay_ms;
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let mut response = match fault {
        Fault::Throttle => {
            state.world().stats.rate_limited += 1;
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "The expected rate limit is exceeded.",
            );
            add_window_headers(
                &mut r,
                &Window {
                    remaining: 0,
                    reset_secs: 1,
                    ..window
                },
            );
            return r;
        }
        Fault::ServerError => {
            state.world().stats.server_errors += 1;
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Internal server error",
            )
        }
        Fault::Drop | Fault::None => match parse_query(raw.as_deref()) {
            Err(r) => r,
            Ok(q) => {
                let page = select(&state, &q);
                if matches!(fault, Fault::Drop) {
                    state.world().stats.drops += 1;
                    return dropped_connection();
                }
                state.world().stats.contacts_served += page.contacts.len() as u64;
                Json(page).into_response()
            }
        },
    };
    add_window_headers(&mut response, &window);
    response
}

fn select(state: &SandboxState, q: &Query) -> ContactsPage {
    let now = now_ms();
    let w = state.world();
    let mut matching: Vec<&StoredContact> = w
        .contacts
        .iter()
        .filter(|c| c.visible_from_ms <= now)
        .filter(|c| q.created_since.is_none_or(|s| c.created_ms > s))
        .filter(|c| q.modified_since.is_none_or(|s| c.modified_ms > s))
        .filter(|c| q.list_ids.is_empty() || c.list_ids.iter().any(|l| q.list_ids.contains(l)))
        .collect();
    matching.sort_by_key(|c| (c.created_ms, c.id));
    if !q.ascending {
        matching.reverse();
    }
    let count = matching.len() as u64;
    let contacts = matching
        .into_iter()
        .skip(q.offset)
        .take(q.limit)
        .map(to_wire)
        .collect();
    ContactsPage {
        contacts,
        count: Some(count),
    }
}

pub async fn stats(State(state): State<SandboxState>) -> Response {
    Json(state.stats()).into_response()
}
