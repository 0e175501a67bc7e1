//! `POST /v1/events:ingest` as Google documents it: the request is validated whole ("fast fail":
//! one bad event fails the request, every problem listed as a `google.rpc.BadRequest` field
//! violation with Google's `ErrorReason`), account access is checked per destination (403
//! `PERMISSION_DENIED`), then each event is applied by `transactionId` per conversion action:
//! new → a conversion; known with the same value → deduplicated; known with a new value → a
//! restatement. Events older than 90 days are accepted and dropped in processing.

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{
    SandboxState,
    state::{
        LoggedRequest, StoredConversion, World, dropped_connection, error_info, google_error,
        value_text,
    },
};
use crate::{
    google_ads::{
        identity::is_sha256_hex,
        wire::{Event, GOOGLE_ADS_ACCOUNT, IngestEventsRequest},
    },
    sandbox::ReceivedWriteback,
};

const DOMAIN: &str = "datamanager.googleapis.com";
const MAX_EVENTS: usize = 2000;
const MAX_DESTINATIONS: usize = 10;
const MAX_IDENTIFIERS: usize = 10;
const EVENT_SOURCES: &[&str] = &["WEB", "APP", "IN_STORE", "PHONE", "OTHER"];
const CONSENT_VALUES: &[&str] = &["CONSENT_GRANTED", "CONSENT_DENIED"];
const WINDOW_MS: i64 = 90 * 86_400_000;

fn violation(field: impl Into<String>, reason: &str, description: &str) -> Value {
    json!({"field": field.into(), "description": description, "reason": reason})
}

fn invalid_argument(violations: Vec<Value>, request_id: &str) -> Response {
    google_error(
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        "There was a problem with the request.",
        vec![
            error_info("INVALID_ARGUMENT", DOMAIN, request_id),
            json!({"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": request_id}),
            json!({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": violations}),
        ],
    )
}

fn permission_denied(field_path: &str, request_id: &str) -> Response {
    google_error(
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
        "The caller does not have permission",
        vec![
            json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "PERMISSION_DENIED",
            "domain": DOMAIN, "metadata": {"requestId": request_id, "field_path": field_path}}),
        ],
    )
}

fn parse_time(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

fn is_encoded_hash(value: &str, encoding: &str) -> Result<(), &'static str> {
    match encoding {
        "HEX" if !value.bytes().all(|b| b.is_ascii_hexdigit()) => Err("INVALID_HEX_ENCODING"),
        "HEX" if !is_sha256_hex(value) => Err("INVALID_SHA256_FORMAT"),
        "BASE64"
            if !(value.len() == 44
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))) =>
        {
            Err("INVALID_BASE64_ENCODING")
        }
        _ => Ok(()),
    }
}

/// Every field violation of event `i`.
fn check_event(i: usize, e: &Event, encoding: Option<&str>, out: &mut Vec<Value>) {
    let f = |name: &str| format!("events[{i}].{name}");
    if e.transaction_id
        .as_deref()
        .is_none_or(|t| t.trim().is_empty())
    {
        out.push(violation(
            f("transaction_id"),
            "REQUIRED_FIELD_MISSING",
            "Required field is missing.",
        ));
    }
    match e.event_timestamp.as_deref() {
        None => out.push(violation(
            f("event_timestamp"),
            "REQUIRED_FIELD_MISSING",
            "Required field is missing.",
        )),
        Some(t) if parse_time(t).is_none() => out.push(violation(
            f("event_timestamp"),
            "INVALID_FORMAT",
            "Invalid timestamp: must be RFC 3339, e.g. \"2014-10-02T15:01:23Z\".",
        )),
        _ => {}
    }
    if e.last_updated_timestamp
        .as_deref()
        .is_some_and(|t| parse_time(t).is_none())
    {
        out.push(violation(
            f("last_updated_timestamp"),
            "INVALID_FORMAT",
            "Invalid timestamp: must be RFC 3339.",
        ));
    }
    match e.event_source.as_deref() {
        None => out.push(violation(
            f("event_source"),
            "REQUIRED_FIELD_MISSING",
            "An event source is required for offline conversions.",
        )),
        Some(s) if !EVENT_SOURCES.contains(&s) => out.push(violation(
            f("event_source"),
            "INVALID_ENUM_VALUE",
            "Enum value cannot be used.",
        )),
        _ => {}
    }
    let clicks = e.ad_identifiers.as_ref().map_or(0, |a| {
        [&a.gclid, &a.gbraid, &a.wbraid]
            .iter()
            .filter(|v| v.as_deref().is_some_and(|s| !s.is_empty()))
            .count()
    });
    if clicks > 1 {
        out.push(violation(
            f("ad_identifiers"),
            "INVALID_EVENT",
            "Only one of gclid, gbraid and wbraid can be set.",
        ));
    }
    let identifiers = e
        .user_data
        .as_ref()
        .map_or(&[][..], |u| &u.user_identifiers[..]);
    if identifiers.len() > MAX_IDENTIFIERS {
        out.push(violation(
            f("user_data.user_identifiers"),
            "TOO_MANY_USER_IDENTIFIERS",
            "Maximum number of user identifiers allowed per event is 10.",
        ));
    }
    for (j, id) in identifiers.iter().enumerate() {
        let field = format!("events[{i}].user_data.user_identifiers[{j}]");
        let value = match (&id.email_address, &id.phone_number) {
            (Some(v), None) | (None, Some(v)) => v,
            _ => {
                out.push(violation(
                    field,
                    "INVALID_FORMAT",
                    "Exactly one identifier must be set.",
                ));
                continue;
            }
        };
        if let Some(enc) = encoding
            && let Err(reason) = is_encoded_hash(value, enc)
        {
            let description = match reason {
                "INVALID_HEX_ENCODING" => "The HEX encoded value is malformed.",
                "INVALID_BASE64_ENCODING" => "The base64 encoded value is malformed.",
                _ => "The SHA256 encoded value is malformed.",
            };
            out.push(violation(field, reason, description));
        }
    }
    if clicks == 0 && identifiers.is_empty() {
        out.push(violation(
            format!("events[{i}]"),
            "INVALID_EVENT",
            "The event has no identifier: set ad_identifiers or user_data.",
        ));
    }
    if let Some(c) = e.currency.as_deref()
        && !(c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
    {
        out.push(violation(
            f("currency"),
            "INVALID_CURRENCY_CODE",
            "The currency code is not supported.",
        ));
    }
    if e.conversion_value
        .is_some_and(|v| !v.is_finite() || v < 0.0)
    {
        out.push(violation(
            f("conversion_value"),
            "INVALID_NUMBER_FORMAT",
            "The number format is invalid.",
        ));
    }
    if let Some(consent) = &e.consent {
        for v in [&consent.ad_user_data, &consent.ad_personalization]
            .into_iter()
            .flatten()
        {
            if !CONSENT_VALUES.contains(&v.as_str()) {
                out.push(violation(
                    f("consent"),
                    "INVALID_ENUM_VALUE",
                    "Enum value cannot be used.",
                ));
            }
        }
    }
}

fn identifier_names(e: &Event) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(a) = &e.ad_identifiers {
        for (name, v) in [
            ("gclid", &a.gclid),
            ("gbraid", &a.gbraid),
            ("wbraid", &a.wbraid),
        ] {
            if v.as_deref().is_some_and(|s| !s.is_empty()) {
                names.push(name.to_owned());
            }
        }
    }
    for id in e.user_data.iter().flat_map(|u| &u.user_identifiers) {
        if id.email_address.is_some() {
            names.push("hashed_email".to_owned());
        }
        if id.phone_number.is_some() {
            names.push("hashed_phone".to_owned());
        }
    }
    names
}

/// Applies one valid event of `action_id`: Google's dedup and adjustment by transaction id.
fn apply(w: &mut World, action_id: &str, e: &Event, now_ms: i64) {
    let key = e.transaction_id.clone().unwrap_or_default();
    let at_ms = e
        .event_timestamp
        .as_deref()
        .and_then(parse_time)
        .unwrap_or(now_ms);
    if now_ms - at_ms > WINDOW_MS {
        w.stats.dropped_stale += 1;
        return;
    }
    let currency = e.currency.clone();
    let received = |adjustment: Option<&str>| ReceivedWriteback {
        key: key.clone(),
        name: action_id.to_owned(),
        value: e
            .conversion_value
            .map(|v| value_text(v, currency.as_deref())),
        currency: currency.clone(),
        adjustment: adjustment.map(str::to_owned),
        identifiers: identifier_names(e),
    };
    let id = (action_id.to_owned(), key.clone());
    match w.conversions.get_mut(&id) {
        Some(stored) if stored.value == e.conversion_value && stored.currency == currency => {
            w.stats.deduplicated += 1;
        }
        Some(stored) => {
            stored.value = e.conversion_value;
            stored.currency = currency.clone();
            let r = received(Some("RESTATEMENT"));
            w.received.push(r);
        }
        None => {
            w.conversions.insert(
                id,
                StoredConversion {
                    action_id: action_id.to_owned(),
                    key: key.clone(),
                    at_ms,
                    value: e.conversion_value,
                    currency: currency.clone(),
                    retracted: false,
                    restatements: Default::default(),
                },
            );
            let r = received(None);
            w.received.push(r);
        }
    }
}

pub async fn handle(
    State(state): State<SandboxState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let options = state.options().clone();
    let mut w = state.world();
    w.stats.ingest_calls += 1;
    let request_id = w.request_id();
    w.log(LoggedRequest {
        path: "/v1/events:ingest".to_owned(),
        headers: headers
            .iter()
            .filter(|(k, _)| *k != axum::http::header::AUTHORIZATION)
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let request: IngestEventsRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return google_error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                &format!("Invalid JSON payload received. {e}"),
                vec![error_info("INVALID_ARGUMENT", DOMAIN, &request_id)],
            );
        }
    };
    let mut violations = Vec::new();
    if request.destinations.is_empty() {
        violations.push(violation(
            "destinations",
            "REQUIRED_FIELD_MISSING",
            "Required field is missing.",
        ));
    }
    if request.destinations.len() > MAX_DESTINATIONS {
        violations.push(violation(
            "destinations",
            "TOO_MANY_DESTINATIONS",
            "Maximum number of destinations allowed per request is 10.",
        ));
    }
    for (i, d) in request.destinations.iter().enumerate() {
        let Some(op) = &d.operating_account else {
            violations.push(violation(
                format!("destinations[{i}].operating_account"),
                "REQUIRED_FIELD_MISSING",
                "Required field is missing.",
            ));
            continue;
        };
        if op.account_type != GOOGLE_ADS_ACCOUNT {
            violations.push(violation(
                format!("destinations[{i}].operating_account.account_type"),
                "INVALID_DESTINATION",
                "This Destination is not valid.",
            ));
        } else if op.account_id.len() != 10 || !op.account_id.bytes().all(|b| b.is_ascii_digit()) {
            violations.push(violation(
                format!("destinations[{i}].operating_account.account_id"),
                "INVALID_FORMAT",
                "Format is invalid.",
            ));
        } else if op.account_id != options.customer_id
            || d.login_account.as_ref().map(|l| &l.account_id) != options.login_customer_id.as_ref()
        {
            return permission_denied(&format!("destinations[{i}]"), &request_id);
        }
        if d.product_destination_id.is_empty() {
            violations.push(violation(
                format!("destinations[{i}].product_destination_id"),
                "REQUIRED_FIELD_MISSING",
                "Required field is missing.",
            ));
        } else if !options
            .conversion_actions
            .contains(&d.product_destination_id)
        {
            violations.push(violation(
                format!("destinations[{i}].product_destination_id"),
                "INVALID_CONVERSION_ACTION_ID",
                "The conversion action ID is invalid.",
            ));
        }
    }
    if request.events.is_empty() {
        violations.push(violation(
            "events",
            "REQUIRED_FIELD_MISSING",
            "Required field is missing.",
        ));
    }
    if request.events.len() > MAX_EVENTS {
        violations.push(violation(
            "events",
            "TOO_MANY_EVENTS",
            "Maximum number of events allowed per request is 2000.",
        ));
    }
    let needs_encoding = request.events.iter().any(|e| e.user_data.is_some());
    match request.encoding.as_deref() {
        None if needs_encoding => violations.push(violation(
            "encoding",
            "REQUIRED_FIELD_MISSING",
            "Encoding is required for user data.",
        )),
        Some(enc) if !matches!(enc, "HEX" | "BASE64") => violations.push(violation(
            "encoding",
            "INVALID_ENUM_VALUE",
            "Enum value cannot be used.",
        )),
        _ => {}
    }
    for (i, e) in request.events.iter().enumerate() {
        check_event(i, e, request.encoding.as_deref(), &mut violations);
    }
    if violations.is_empty() && !request.events.is_empty() {
        let p = w.faults.item_failure_rate;
        if w.roll(p) {
            let i = rand::Rng::random_range(&mut w.rng, 0..request.events.len());
            violations.push(violation(
                format!("events[{i}]"),
                "INVALID_EVENT",
                "This event is not valid. (sandbox fault injection)",
            ));
        }
    }
    if !violations.is_empty() {
        return invalid_argument(violations, &request_id);
    }
    if request.validate_only {
        return Json(json!({})).into_response();
    }
    let now = jiff::Timestamp::now().as_millisecond();
    for d in &request.destinations {
        for e in &request.events {
            apply(&mut w, &d.product_destination_id, e, now);
        }
    }
    if w.take_drop() {
        return dropped_connection();
    }
    Json(json!({ "requestId": request_id })).into_response()
}
