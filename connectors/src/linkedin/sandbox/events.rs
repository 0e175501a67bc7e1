//! `POST /rest/conversionEvents` and `GET /rest/conversions/{id}`: each element judged as
//! LinkedIn does (a known Conversions API rule, a time within 90 days, a known `idType` with a
//! well-formed value, a well-formed `conversionValue`), accepted elements deduplicated on
//! (rule, `eventId`), one status per element in input order.

use std::time::Duration;

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use rand::Rng;
use serde_json::json;

use super::{
    SandboxOptions, Shared, World,
    gate::{dropped_connection, gate, header_text, linkedin_error},
};
use crate::{
    linkedin::wire::{
        BatchCreate, ConversionEvent, FIRST_PARTY_TRACKING, RULE_URN_PREFIX, SHA256_EMAIL,
    },
    sandbox::ReceivedWriteback,
};

const MAX_ELEMENTS: usize = 5000;
const WINDOW_MS: i64 = 90 * 86_400_000;
const ID_TYPES: &[&str] = &[
    SHA256_EMAIL,
    FIRST_PARTY_TRACKING,
    "ACXIOM_ID",
    "ORACLE_MOAT_ID",
];

/// One element's verdict: `Err((status, message))` when LinkedIn refuses it.
fn check_element(
    o: &SandboxOptions,
    e: &ConversionEvent,
    now_ms: i64,
) -> Result<(), (u16, String)> {
    let id = e
        .conversion
        .strip_prefix(RULE_URN_PREFIX)
        .and_then(|id| id.parse::<i64>().ok());
    let Some(id) = id else {
        return Err((
            400,
            format!(
                "/conversion: invalid value {:?}; expected urn:lla:llaPartnerConversion:<id>",
                e.conversion
            ),
        ));
    };
    let Some(rule) = o.rules.iter().find(|r| r.id == id) else {
        return Err((404, format!("Conversion rule {id} does not exist")));
    };
    if rule.conversion_method != "CONVERSIONS_API" {
        return Err((
            400,
            format!(
                "Conversion rule {id} does not accept Conversions API events (method {})",
                rule.conversion_method
            ),
        ));
    }
    if e.conversion_happened_at <= 0 || e.conversion_happened_at > now_ms + 60_000 {
        return Err((
            400,
            "/conversionHappenedAt: must be a past epoch time in milliseconds".to_owned(),
        ));
    }
    if now_ms - e.conversion_happened_at > WINDOW_MS {
        return Err((
            400,
            "/conversionHappenedAt: conversion events must have happened within the past 90 days"
                .to_owned(),
        ));
    }
    if e.user.user_ids.is_empty()
        && e.user
            .user_info
            .as_ref()
            .is_none_or(|i| i.first_name.is_none() || i.last_name.is_none())
    {
        return Err((
            400,
            "/user: at least one userId, or userInfo with firstName and lastName, is required"
                .to_owned(),
        ));
    }
    for (i, u) in e.user.user_ids.iter().enumerate() {
        if !ID_TYPES.contains(&u.id_type.as_str()) {
            return Err((
                400,
                format!("/user/userIds/{i}/idType: invalid value {:?}", u.id_type),
            ));
        }
        let hex = u.id_value.len() == 64
            && u.id_value
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if u.id_type == SHA256_EMAIL && !hex {
            return Err((
                400,
                format!(
                    "/user/userIds/{i}/idValue: SHA256_EMAIL must be a lowercase hex SHA-256 digest"
                ),
            ));
        }
        if u.id_value.trim().is_empty() {
            return Err((400, format!("/user/userIds/{i}/idValue: must not be empty")));
        }
    }
    if let Some(v) = &e.conversion_value {
        let code_ok =
            v.currency_code.len() == 3 && v.currency_code.bytes().all(|b| b.is_ascii_uppercase());
        let amount_ok = v
            .amount
            .parse::<f64>()
            .is_ok_and(|a| a.is_finite() && a >= 0.0);
        if !code_ok || !amount_ok {
            return Err((
                400,
                "/conversionValue: currencyCode must be ISO 4217 and amount a decimal string"
                    .to_owned(),
            ));
        }
    }
    Ok(())
}

/// Records an accepted event unless it is a duplicate; false for a duplicate.
fn record(w: &mut World, e: &ConversionEvent) -> bool {
    if let Some(event_id) = &e.event_id
        && !w.seen.insert((e.conversion.clone(), event_id.clone()))
    {
        w.stats.deduplicated += 1;
        return false;
    }
    w.received.push(ReceivedWriteback {
        key: e.event_id.clone().unwrap_or_default(),
        name: e.conversion.clone(),
        value: e.conversion_value.as_ref().map(|v| v.amount.clone()),
        currency: e.conversion_value.as_ref().map(|v| v.currency_code.clone()),
        adjustment: None,
        identifiers: e.user.user_ids.iter().map(|u| u.id_type.clone()).collect(),
    });
    true
}

pub(super) async fn conversion_events(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delay = match gate(&shared, "POST", "/rest/conversionEvents", &headers, &body) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let batch = header_text(&headers, "x-restli-method")
        .is_some_and(|m| m.eq_ignore_ascii_case("BATCH_CREATE"));
    let elements = if batch {
        match serde_json::from_slice::<BatchCreate>(&body) {
            Ok(b) => b.elements,
            Err(e) => {
                return linkedin_error(
                    StatusCode::BAD_REQUEST,
                    "ILLEGAL_ARGUMENT",
                    Some(100),
                    &format!("Invalid request body: {e}"),
                );
            }
        }
    } else {
        match serde_json::from_slice::<ConversionEvent>(&body) {
            Ok(e) => vec![e],
            Err(e) => {
                return linkedin_error(
                    StatusCode::BAD_REQUEST,
                    "ILLEGAL_ARGUMENT",
                    Some(100),
                    &format!("Invalid request body: {e}"),
                );
            }
        }
    };
    if elements.is_empty() || elements.len() > MAX_ELEMENTS {
        return linkedin_error(
            StatusCode::BAD_REQUEST,
            "ILLEGAL_ARGUMENT",
            Some(100),
            &format!(
                "A batch must carry between 1 and {MAX_ELEMENTS} elements, not {}",
                elements.len()
            ),
        );
    }
    let now = jiff::Timestamp::now().as_millisecond();
    let mut w = shared.world();
    w.stats.batch_calls += 1;
    let failure_rate = w.faults.item_failure_rate;
    let mut statuses = Vec::with_capacity(elements.len());
    for e in &elements {
        let mut verdict = check_element(&shared.options, e, now);
        if verdict.is_ok() && failure_rate > 0.0 && w.rng.random_bool(failure_rate.clamp(0.0, 1.0))
        {
            verdict = Err((
                400,
                "/user: the event could not be processed (sandbox fault injection)".to_owned(),
            ));
        }
        statuses.push(match verdict {
            Ok(()) => {
                record(&mut w, e);
                json!({"status": 201})
            }
            Err((status, message)) => json!({"status": status, "error": {"status": status, "code": "INVALID_REQUEST", "message": message}}),
        });
    }
    if w.faults.drop_after_write_next > 0 {
        w.faults.drop_after_write_next -= 1;
        w.stats.drops += 1;
        return dropped_connection();
    }
    if !batch {
        let status = statuses[0]["status"].as_u64().unwrap_or(500) as u16;
        if status == 201 {
            return StatusCode::CREATED.into_response();
        }
        let message = statuses[0]["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        return linkedin_error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            "INVALID_REQUEST",
            None,
            &message,
        );
    }
    Json(json!({ "elements": statuses })).into_response()
}

pub(super) async fn conversion_rule(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(
        &shared,
        "GET",
        &format!("/rest/conversions/{id}"),
        &headers,
        b"",
    ) {
        return *r;
    }
    let rule = id
        .parse::<i64>()
        .ok()
        .and_then(|id| shared.options.rules.iter().find(|r| r.id == id));
    match rule {
        Some(r) => Json(
            json!({"id": r.id, "name": r.name, "conversionMethod": r.conversion_method,
            "enabled": r.enabled, "type": "PURCHASE", "attributionType": "LAST_TOUCH_BY_CAMPAIGN",
            "postClickAttributionWindowSize": 30, "viewThroughAttributionWindowSize": 7}),
        )
        .into_response(),
        None => linkedin_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            None,
            &format!("Conversion {id} not found"),
        ),
    }
}
