//! The sandbox's two endpoints: faults, the token, the dataset, then (for events) Meta's
//! validation of the whole request before anything in it is processed, dedup, and the answer.

use std::{collections::HashMap, time::Duration};

use axum::{
    Json,
    body::{Body, Bytes},
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use rand::Rng;
use serde_json::{Map, Value, json};

use crate::{
    meta_capi::{MAX_EVENTS, normalize::is_sha256_hex, valid_api_version},
    outcome::{currency_exponent, minor_units_text},
    sandbox::ReceivedWriteback,
};

use super::{ACCESS_TOKEN, DATASET_ID, MetaCapiState};

const DAY_SECS: i64 = 86_400;
const ACTION_SOURCES: &[&str] = &[
    "website",
    "app",
    "email",
    "phone_call",
    "chat",
    "physical_store",
    "system_generated",
    "business_messaging",
    "other",
];
/// Contact fields Meta takes only as SHA-256 hex.
const HASHED: &[&str] = &[
    "em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country",
];
/// Fields that match a person on their own (names, city… only sharpen a match).
const MATCH_KEYS: &[&str] = &[
    "em",
    "ph",
    "external_id",
    "fbc",
    "fbp",
    "lead_id",
    "subscription_id",
    "fb_login_id",
    "page_scoped_user_id",
    "ctwa_clid",
    "anon_id",
    "madid",
];
/// The order [`ReceivedWriteback::identifiers`] lists match keys in.
const IDENTIFIER_ORDER: &[&str] = &[
    "lead_id",
    "em",
    "ph",
    "fn",
    "ln",
    "country",
    "fbc",
    "fbp",
    "external_id",
];

fn graph_error(status: StatusCode, error: Value) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

/// Graph's answer to an invalid parameter: code 100 with the user-facing title and message.
fn invalid(subcode: i64, title: &str, msg: String, trace: String) -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        json!({
            "message": "Invalid parameter", "type": "OAuthException", "code": 100,
            "error_subcode": subcode, "is_transient": false,
            "error_user_title": title, "error_user_msg": msg, "fbtrace_id": trace
        }),
    )
}

enum Gate {
    Pass { drop_after: bool },
    Answer(Response),
}

/// Counts the call, then faults, the token and the path, in Graph's order.
async fn gate(
    state: &MetaCapiState,
    version: &str,
    dataset_id: &str,
    token: Option<String>,
    method: &str,
) -> Gate {
    let (fault, delay, trace, expired) = {
        let mut w = state.world();
        w.stats.api_calls += 1;
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
        (fault, f.delay_ms, w.trace(), w.tokens_expired)
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    match token.as_deref().map(str::trim) {
        None | Some("") => {
            return Gate::Answer(graph_error(
                StatusCode::BAD_REQUEST,
                json!({"message": "An access token is required to request this resource.",
                       "type": "OAuthException", "code": 104, "fbtrace_id": trace}),
            ));
        }
        Some(t) if t != ACCESS_TOKEN => {
            return Gate::Answer(graph_error(
                StatusCode::BAD_REQUEST,
                json!({"message": "Invalid OAuth access token - Cannot parse access token",
                       "type": "OAuthException", "code": 190, "fbtrace_id": trace}),
            ));
        }
        Some(_) if expired => {
            return Gate::Answer(graph_error(
                StatusCode::BAD_REQUEST,
                json!({"message": "Error validating access token: Session has expired.",
                       "type": "OAuthException", "code": 190, "error_subcode": 463,
                       "fbtrace_id": trace}),
            ));
        }
        Some(_) => {}
    }
    match fault {
        Some(429) => {
            state.world().stats.rate_limited += 1;
            let usage = r#"{"call_count":100,"total_cputime":12,"total_time":15}"#;
            return Gate::Answer(
                (
                    StatusCode::BAD_REQUEST,
                    [("x-app-usage", usage)],
                    Json(
                        json!({"error": {"message": "(#4) Application request limit reached",
                        "type": "OAuthException", "is_transient": true, "code": 4,
                        "fbtrace_id": trace}}),
                    ),
                )
                    .into_response(),
            );
        }
        Some(500) => {
            return Gate::Answer(graph_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"message": "An unexpected error has occurred. Please retry your request later.",
                       "type": "OAuthException", "is_transient": true, "code": 2,
                       "fbtrace_id": trace}),
            ));
        }
        Some(503) => {
            return Gate::Answer(
                (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response(),
            );
        }
        _ => {}
    }
    if !valid_api_version(version) {
        return Gate::Answer(graph_error(
            StatusCode::BAD_REQUEST,
            json!({"message": format!("Unknown path components: /{version}/{dataset_id}"),
                   "type": "OAuthException", "code": 2500, "fbtrace_id": trace}),
        ));
    }
    if dataset_id != DATASET_ID {
        return Gate::Answer(graph_error(
            StatusCode::BAD_REQUEST,
            json!({"message": format!("Unsupported {method} request. Object with ID '{dataset_id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api"),
                   "type": "GraphMethodException", "code": 100, "error_subcode": 33,
                   "fbtrace_id": trace}),
        ));
    }
    Gate::Pass {
        drop_after: fault == Some(0),
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        .then(|| token.trim().to_owned())
}

fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Why event `i` is refused (subcode, title, message), or `None` when Meta would take it.
fn check_event(i: usize, e: &Value, now: i64) -> Option<(i64, &'static str, String)> {
    let Some(e) = e.as_object() else {
        return Some((
            2804001,
            "Invalid Event",
            format!("Event {i} is not an object."),
        ));
    };
    if e.get("event_name")
        .and_then(Value::as_str)
        .is_none_or(|n| n.trim().is_empty())
    {
        return Some((
            2804002,
            "Missing Event Name",
            format!("Event {i} has no event_name."),
        ));
    }
    let Some(t) = e.get("event_time").and_then(Value::as_i64) else {
        return Some((
            2804002,
            "Invalid Event Time",
            format!("Event {i}: event_time must be a Unix timestamp in seconds."),
        ));
    };
    let source = e.get("action_source").and_then(Value::as_str).unwrap_or("");
    if !ACTION_SOURCES.contains(&source) {
        return Some((
            2804050,
            "Invalid Action Source",
            format!(
                "Event {i}: action_source must be one of {}.",
                ACTION_SOURCES.join(", ")
            ),
        ));
    }
    let max_days = if source == "physical_store" { 62 } else { 7 };
    if now - t > max_days * DAY_SECS {
        return Some((
            2804003,
            "Event Timestamp Too Old",
            format!(
                "The timestamp for event {i} is too far in the past. Events need to be sent from your server within {max_days} days of when they occurred. Enter a timestamp that has occurred within the last {max_days} days."
            ),
        ));
    }
    if source == "website"
        && (e.get("client_user_agent").is_none() || e.get("event_source_url").is_none())
    {
        return Some((
            2804019,
            "Missing Website Parameters",
            format!("Event {i}: website events need client_user_agent and event_source_url."),
        ));
    }
    let Some(user) = e.get("user_data").and_then(Value::as_object) else {
        return Some((
            2804016,
            "Missing User Data",
            format!("Event {i} has no user_data."),
        ));
    };
    for key in HASHED {
        let Some(v) = user.get(*key) else { continue };
        let values: Vec<&Value> = match v {
            Value::Array(vs) => vs.iter().collect(),
            other => vec![other],
        };
        if values
            .iter()
            .any(|v| v.as_str().is_none_or(|s| !is_sha256_hex(s)))
        {
            return Some((
                2804015,
                "Unhashed Customer Information",
                format!("Event {i}: user_data.{key} must be normalized and hashed with SHA-256."),
            ));
        }
    }
    if let Some(lead) = user.get("lead_id") {
        let ok = lead.as_u64().is_some()
            || lead
                .as_str()
                .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return Some((
                2804017,
                "Invalid Lead ID",
                format!("Event {i}: user_data.lead_id must be the lead's numeric id, not hashed."),
            ));
        }
    }
    if !MATCH_KEYS.iter().any(|k| user.contains_key(*k)) {
        return Some((
            2804016,
            "Missing Customer Information",
            format!("Event {i} has no customer information parameters Meta can match on."),
        ));
    }
    if let Some(custom) = e.get("custom_data").and_then(Value::as_object) {
        if custom.get("value").is_some_and(|v| !v.is_number()) {
            return Some((
                2804020,
                "Invalid Value",
                format!("Event {i}: custom_data.value must be a number."),
            ));
        }
        if let Some(c) = custom.get("currency")
            && c.as_str()
                .is_none_or(|c| c.len() != 3 || !c.bytes().all(|b| b.is_ascii_alphabetic()))
        {
            return Some((
                2804021,
                "Invalid Currency",
                format!("Event {i}: custom_data.currency must be an ISO 4217 code."),
            ));
        }
    }
    None
}

/// What [`ReceivedWriteback`] says about an accepted event.
fn received(e: &Map<String, Value>) -> ReceivedWriteback {
    let custom = e.get("custom_data").and_then(Value::as_object);
    let currency = custom
        .and_then(|c| c.get("currency"))
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase);
    let value = custom.and_then(|c| c.get("value")).and_then(|v| {
        let f = v.as_f64()?;
        Some(match &currency {
            Some(cur) => {
                let scale = 10f64.powi(currency_exponent(cur) as i32);
                minor_units_text((f * scale).round() as i64, cur)
            }
            None => v.to_string(),
        })
    });
    let user = e.get("user_data").and_then(Value::as_object);
    ReceivedWriteback {
        key: e
            .get("event_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        name: e
            .get("event_name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        value,
        currency,
        adjustment: None,
        identifiers: IDENTIFIER_ORDER
            .iter()
            .filter(|k| user.is_some_and(|u| u.contains_key(**k)))
            .map(|k| (*k).to_owned())
            .collect(),
    }
}

pub async fn post_events(
    State(state): State<MetaCapiState>,
    Path((version, dataset_id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    let token = q
        .get("access_token")
        .cloned()
        .or_else(|| {
            parsed
                .as_ref()
                .and_then(|b| b.get("access_token"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .or_else(|| bearer(&headers));
    let drop_after = match gate(&state, &version, &dataset_id, token, "post").await {
        Gate::Pass { drop_after } => drop_after,
        Gate::Answer(r) => return r,
    };
    let trace = state.world().trace();
    let Some(body) = parsed.filter(Value::is_object) else {
        return invalid(
            2804001,
            "Invalid Request Body",
            "The request body must be a JSON object with a data array.".to_owned(),
            trace,
        );
    };
    state.world().requests.push(body.clone());
    // `data` may come as an array or as the JSON text of one (the form-field style).
    let data = match body.get("data") {
        Some(Value::Array(a)) => a.clone(),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Array(a)) => a,
            _ => {
                return invalid(
                    2804001,
                    "Invalid Data Parameter",
                    "The data parameter must be an array of events.".to_owned(),
                    trace,
                );
            }
        },
        _ => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                json!({"message": "(#100) The parameter data is required", "type": "OAuthException",
                       "code": 100, "fbtrace_id": trace}),
            );
        }
    };
    if data.is_empty() || data.len() > MAX_EVENTS {
        return invalid(
            2804001,
            "Invalid Number Of Events",
            format!(
                "A request carries 1 to {MAX_EVENTS} events; this one had {}.",
                data.len()
            ),
            trace,
        );
    }
    let now = now_secs();
    // One invalid event fails the request, and nothing in it is processed.
    if let Some((sub, title, msg)) = data
        .iter()
        .enumerate()
        .find_map(|(i, e)| check_event(i, e, now))
    {
        return invalid(sub, title, msg, trace);
    }
    {
        let mut w = state.world();
        let p = w.faults.item_failure_rate;
        if w.roll(p) {
            let i = w.rng.random_range(0..data.len());
            return invalid(
                2804022,
                "Invalid Event",
                format!("Event {i} could not be processed; no event in this request was."),
                trace,
            );
        }
        for e in &data {
            let Some(obj) = e.as_object() else { continue };
            let id = obj
                .get("event_id")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let name = obj
                .get("event_name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            // Meta dedups on event_id + event_name; events without an id are all kept.
            if let Some(id) = id
                && !w.seen.insert((id, name))
            {
                continue;
            }
            let r = received(obj);
            w.received.push(r);
            w.accepted.push(e.clone());
        }
    }
    let answer = json!({"events_received": data.len(), "messages": [], "fbtrace_id": trace});
    let bytes = serde_json::to_vec(&answer).unwrap_or_default();
    if drop_after {
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

pub async fn get_dataset(
    State(state): State<MetaCapiState>,
    Path((version, dataset_id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let token = q.get("access_token").cloned().or_else(|| bearer(&headers));
    if let Gate::Answer(r) = gate(&state, &version, &dataset_id, token, "get").await {
        return r;
    }
    let fields = q.get("fields").map(String::as_str).unwrap_or("id,name");
    let mut out = Map::new();
    for f in fields.split(',').map(str::trim) {
        match f {
            "id" => out.insert("id".into(), Value::from(DATASET_ID)),
            "name" => out.insert("name".into(), Value::from("tandem sandbox dataset")),
            "is_consolidated_container" => out.insert(f.into(), Value::from(true)),
            _ => None,
        };
    }
    out.entry("id").or_insert(Value::from(DATASET_ID));
    Json(Value::Object(out)).into_response()
}
