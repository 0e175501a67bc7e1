//! The profile collections, in Klaviyo's order: auth, revision, rate windows, injected faults,
//! then the JSON:API query.

// A refused request *is* the vendor's answer: handlers return it as the error, unboxed.
#![allow(clippy::result_large_err)]

use axum::{
    Json,
    body::{Body, Bytes},
    extract::{Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::klaviyo::wire::{H_LIMIT, H_REMAINING, H_RESET};

use super::{SandboxState, StoredProfile, now_ms};

fn errors(
    state: &SandboxState,
    status: StatusCode,
    code: &str,
    title: &str,
    detail: &str,
) -> Response {
    let id = {
        let mut w = state.world();
        w.error_seq += 1;
        format!("7c1e0c4b-0000-4000-8000-{:012}", w.error_seq)
    };
    let body = json!({"errors": [{
        "id": id, "status": status.as_u16(), "code": code, "title": title, "detail": detail,
        "source": {"pointer": "/data/"}
    }]});
    let mut r = (status, Json(body)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.api+json"),
    );
    r
}

/// A 400 naming the offending query parameter, as Klaviyo's `source.parameter` does.
fn invalid(state: &SandboxState, parameter: &str, detail: &str) -> Response {
    let id = {
        let mut w = state.world();
        w.error_seq += 1;
        format!("7c1e0c4b-0000-4000-8000-{:012}", w.error_seq)
    };
    let body = json!({"errors": [{
        "id": id, "status": 400, "code": "invalid", "title": "Invalid input.", "detail": detail,
        "source": {"parameter": parameter}
    }]});
    let mut r = (StatusCode::BAD_REQUEST, Json(body)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.api+json"),
    );
    r
}

fn dropped_connection() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "klaviyo sandbox dropped the connection (fault injection)",
        ))
    });
    Response::new(Body::from_stream(failing))
}

enum Fault {
    None,
    ServerError,
    Throttle,
    Drop,
}

struct Steady {
    limit: u32,
    remaining: u32,
    reset_secs: u64,
}

fn ceil_secs(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn throttled(state: &SandboxState, wait_secs: u64) -> Response {
    let mut r = errors(
        state,
        StatusCode::TOO_MANY_REQUESTS,
        "throttled",
        "Request was throttled.",
        &format!(
            "Request was throttled. Expected available in {wait_secs} second{}.",
            if wait_secs == 1 { "" } else { "s" }
        ),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(wait_secs));
    r
}

fn gate(state: &SandboxState, headers: &HeaderMap) -> Result<(Steady, Fault), Response> {
    let o = state.options().clone();
    let expected = format!("Klaviyo-API-Key {}", o.api_key);
    let auth_ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == expected);
    {
        let mut w = state.world();
        w.stats.requests += 1;
        if !auth_ok {
            w.stats.unauthorized += 1;
        }
    }
    if !auth_ok {
        return Err(errors(
            state,
            StatusCode::UNAUTHORIZED,
            "not_authenticated",
            "Authentication credentials were not provided.",
            "Missing or invalid private key.",
        ));
    }
    let revision = headers.get("revision").and_then(|v| v.to_str().ok());
    match revision {
        None => {
            return Err(errors(
                state,
                StatusCode::BAD_REQUEST,
                "invalid",
                "Invalid input.",
                "Missing required header 'revision'.",
            ));
        }
        Some(r)
            if r.trim_end_matches(".pre")
                .parse::<jiff::civil::Date>()
                .is_err() =>
        {
            return Err(errors(
                state,
                StatusCode::BAD_REQUEST,
                "invalid",
                "Invalid input.",
                &format!("Invalid revision '{r}'."),
            ));
        }
        Some(_) => {}
    }
    let mut guard = state.world();
    let w = &mut *guard;
    for (win, size) in [
        (&mut w.burst, o.burst_window),
        (&mut w.steady, o.steady_window),
    ] {
        if win.start.elapsed() >= size {
            win.start = std::time::Instant::now();
            win.used = 0;
        }
    }
    let burst_wait = ceil_secs(o.burst_window.saturating_sub(w.burst.start.elapsed())).max(1);
    let steady_wait = ceil_secs(o.steady_window.saturating_sub(w.steady.start.elapsed())).max(1);
    if w.burst.used >= o.burst || w.steady.used >= o.steady {
        w.stats.rate_limited += 1;
        let wait = if w.steady.used >= o.steady {
            steady_wait
        } else {
            burst_wait
        };
        drop(guard);
        return Err(throttled(state, wait));
    }
    w.burst.used += 1;
    w.steady.used += 1;
    let steady = Steady {
        limit: o.steady,
        remaining: o.steady - w.steady.used,
        reset_secs: steady_wait,
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
    Ok((steady, fault))
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Gt,
    Lt,
    Ge,
    Le,
}

struct Query {
    conditions: Vec<(String, Op, i64)>,
    sort: Option<(String, bool)>,
    size: usize,
    after: Option<(i64, String)>,
}

fn parse_filter(raw: &str, allowed: &[&str]) -> Result<Vec<(String, Op, i64)>, String> {
    let mut out = Vec::new();
    let mut rest = raw.trim();
    while !rest.is_empty() {
        let open = rest
            .find('(')
            .ok_or("Invalid filter: expected an operator")?;
        let close = rest
            .find(')')
            .ok_or("Invalid filter: unclosed parenthesis")?;
        if close < open {
            return Err("Invalid filter".into());
        }
        let op = match rest[..open].trim() {
            "greater-than" => Op::Gt,
            "less-than" => Op::Lt,
            "greater-or-equal" => Op::Ge,
            "less-or-equal" => Op::Le,
            other => {
                return Err(format!(
                    "'{other}' is not a valid operator for this endpoint."
                ));
            }
        };
        let (field, value) = rest[open + 1..close]
            .split_once(',')
            .ok_or("Invalid filter: expected (field,value)")?;
        let field = field.trim();
        if !allowed.contains(&field) {
            return Err(format!(
                "'{field}' is not a valid field for the resource 'profile'."
            ));
        }
        let ts: jiff::Timestamp = value
            .trim()
            .trim_matches('"')
            .parse()
            .map_err(|_| format!("'{}' is not a valid datetime.", value.trim()))?;
        out.push((field.to_owned(), op, ts.as_millisecond()));
        rest = rest[close + 1..].trim_start_matches(',').trim();
    }
    Ok(out)
}

fn encode_cursor(key: i64, id: &str) -> String {
    hex::encode(format!("{key}:{id}"))
}

fn decode_cursor(raw: &str) -> Option<(i64, String)> {
    let text = String::from_utf8(hex::decode(raw).ok()?).ok()?;
    let (key, id) = text.split_once(':')?;
    Some((key.parse().ok()?, id.to_owned()))
}

fn parse_query(raw: Option<&str>, list: bool) -> Result<Query, (&'static str, String)> {
    let url = reqwest::Url::parse(&format!("http://sandbox/?{}", raw.unwrap_or_default()))
        .map_err(|_| ("query", "Invalid query string.".to_owned()))?;
    let allowed: &[&str] = if list {
        &["joined_group_at"]
    } else {
        &["created", "updated"]
    };
    let mut q = Query {
        conditions: Vec::new(),
        sort: None,
        size: 20,
        after: None,
    };
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "filter" => q.conditions = parse_filter(&v, allowed).map_err(|e| ("filter", e))?,
            "sort" => {
                let (field, asc) = match v.strip_prefix('-') {
                    Some(f) => (f, false),
                    None => (v.as_ref(), true),
                };
                let sortable =
                    allowed.contains(&field) || (!list && matches!(field, "id" | "email"));
                if !sortable {
                    return Err(("sort", format!("'{v}' is not a valid sort field.")));
                }
                q.sort = Some((field.to_owned(), asc));
            }
            "page[size]" => {
                q.size = v.parse().ok().filter(|n| (1..=100).contains(n)).ok_or((
                    "page[size]",
                    "Page size must be an integer between 1 and 100.".to_owned(),
                ))?;
            }
            "page[cursor]" => {
                q.after = Some(
                    decode_cursor(&v).ok_or(("page[cursor]", "Invalid page cursor.".to_owned()))?,
                );
            }
            other if other.starts_with("fields[") || other.starts_with("additional-fields[") => {}
            other => {
                return Err((
                    "query",
                    format!("'{other}' is not a valid query parameter."),
                ));
            }
        }
    }
    Ok(q)
}

fn stamp(ms: i64) -> Value {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| Value::from(t.strftime("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string()))
        .unwrap_or(Value::Null)
}

fn key_of(p: &StoredProfile, field: &str, list: Option<&str>) -> i64 {
    match field {
        "updated" => p.updated_ms,
        "joined_group_at" => list
            .and_then(|l| p.lists.get(l).copied())
            .unwrap_or(p.created_ms),
        _ => p.created_ms,
    }
}

fn serve(state: &SandboxState, raw: Option<&str>, list: Option<&str>) -> Result<Value, Response> {
    let q = parse_query(raw, list.is_some()).map_err(|(p, e)| invalid(state, p, &e))?;
    let now = now_ms();
    let sort_field = q
        .sort
        .as_ref()
        .map(|s| s.0.as_str())
        .unwrap_or(if list.is_some() {
            "joined_group_at"
        } else {
            "id"
        });
    let asc = q.sort.as_ref().is_none_or(|s| s.1);
    let w = state.world();
    let mut rows: Vec<(i64, &StoredProfile)> = w
        .profiles
        .iter()
        .filter(|p| p.visible_from_ms <= now)
        .filter(|p| list.is_none_or(|l| p.lists.contains_key(l)))
        .filter(|p| {
            q.conditions.iter().all(|(field, op, at)| {
                let v = key_of(p, field, list);
                match op {
                    Op::Gt => v > *at,
                    Op::Lt => v < *at,
                    Op::Ge => v >= *at,
                    Op::Le => v <= *at,
                }
            })
        })
        .map(|p| {
            let key = match sort_field {
                "id" | "email" => 0,
                f => key_of(p, f, list),
            };
            (key, p)
        })
        .collect();
    rows.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
    if !asc {
        rows.reverse();
    }
    if let Some((key, id)) = &q.after {
        rows.retain(|(k, p)| {
            let pos = (*k, &p.id);
            if asc {
                pos > (*key, id)
            } else {
                pos < (*key, id)
            }
        });
    }
    let more = rows.len() > q.size;
    rows.truncate(q.size);
    let base = state.base_url();
    let data: Vec<Value> = rows
        .iter()
        .map(|(_, p)| {
            let mut attributes = p.attributes.clone();
            attributes.insert("created".into(), stamp(p.created_ms));
            attributes.insert("updated".into(), stamp(p.updated_ms));
            if let Some(joined) = list.and_then(|l| p.lists.get(l)) {
                attributes.insert("joined_group_at".into(), stamp(*joined));
            }
            json!({"type": "profile", "id": p.id, "attributes": attributes,
                "relationships": {}, "links": {"self": format!("{base}/api/profiles/{}/", p.id)}})
        })
        .collect();
    let path = match list {
        Some(l) => format!("{base}/api/lists/{l}/profiles/"),
        None => format!("{base}/api/profiles/"),
    };
    let next = match rows.last() {
        Some((k, p)) if more => {
            let mut url =
                reqwest::Url::parse(&path).map_err(|_| invalid(state, "query", "bad base"))?;
            {
                let mut pairs = url.query_pairs_mut();
                if let Ok(orig) =
                    reqwest::Url::parse(&format!("http://s/?{}", raw.unwrap_or_default()))
                {
                    for (k2, v2) in orig.query_pairs() {
                        if k2 != "page[cursor]" {
                            pairs.append_pair(&k2, &v2);
                        }
                    }
                }
                pairs.append_pair("page[cursor]", &encode_cursor(*k, &p.id));
            }
            Value::from(url.to_string())
        }
        _ => Value::Null,
    };
    drop(w);
    state.world().stats.profiles_served += data.len() as u64;
    Ok(json!({"data": data, "links": {"self": path, "next": next, "prev": Value::Null}}))
}

async fn answer(
    state: SandboxState,
    headers: HeaderMap,
    raw: Option<String>,
    list: Option<String>,
) -> Response {
    let (steady, fault) = match gate(&state, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let delay = state.world().faults.delay_ms;
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let mut response = match fault {
        Fault::Throttle => {
            state.world().stats.rate_limited += 1;
            return throttled(&state, 1);
        }
        Fault::ServerError => {
            state.world().stats.server_errors += 1;
            errors(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "error",
                "A server error occurred.",
                "Service temporarily unavailable.",
            )
        }
        Fault::Drop | Fault::None => {
            if let Some(l) = &list
                && !state
                    .world()
                    .profiles
                    .iter()
                    .any(|p| p.lists.contains_key(l))
                && l != &state.options().list_id
            {
                errors(
                    &state,
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "Not found.",
                    &format!("A list with id {l} does not exist."),
                )
            } else {
                match serve(&state, raw.as_deref(), list.as_deref()) {
                    Err(r) => r,
                    Ok(body) => {
                        if matches!(fault, Fault::Drop) {
                            state.world().stats.drops += 1;
                            return dropped_connection();
                        }
                        let mut r = Json(body).into_response();
                        r.headers_mut().insert(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/vnd.api+json"),
                        );
                        r
                    }
                }
            }
        }
    };
    let h = response.headers_mut();
    h.insert(H_LIMIT, HeaderValue::from(steady.limit));
    h.insert(H_REMAINING, HeaderValue::from(steady.remaining));
    h.insert(H_RESET, HeaderValue::from(steady.reset_secs));
    response
}

pub async fn all(
    State(state): State<SandboxState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    answer(state, headers, raw, None).await
}

pub async fn of_list(
    State(state): State<SandboxState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    answer(state, headers, raw, Some(id)).await
}
