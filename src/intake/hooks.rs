//! `POST /hooks/{connector}`: the webhook contract. Checks run cheapest-first and before anything
//! is stored: known connector, accepting, size (413), signature over the raw bytes (401), media
//! type (415), body and fields (400). A 202 is sent only after the lead and its deliveries are
//! committed and fsync'd; a repeated `Idempotency-Key` answers with the first lead's id.

use std::time::Instant;

use axum::{
    Json,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use secrecy::ExposeSecret;
use serde_json::json;
use tandem_connectors::webhook::{self, SIGNATURE_HEADER};

use super::{AppState, lead::build_lead, reply};
use crate::{
    identity,
    store::{NewLead, StoreError, sqlite::now_ms},
};

const IDEMPOTENCY_HEADER: &str = "idempotency-key";
const MAX_IDEMPOTENCY_KEY: usize = 255;

pub async fn receive(
    State(state): State<AppState>,
    Path(connector): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let response = match accept(&state, &connector, &headers, body).await {
        Ok(r) => r,
        Err((reason, r)) => {
            metrics::counter!("tandem_leads_rejected_total", "connector" => label(&state, &connector), "reason" => reason)
                .increment(1);
            r
        }
    };
    metrics::histogram!("tandem_intake_seconds").record(started.elapsed().as_secs_f64());
    response
}

/// The connector label for metrics: only configured names, so random paths can't explode cardinality.
fn label(state: &AppState, connector: &str) -> String {
    if state.runtime().sources.contains_key(connector) {
        connector.to_owned()
    } else {
        "unknown".into()
    }
}

type Rejection = (&'static str, Response);

async fn accept(
    state: &AppState,
    connector: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Rejection> {
    let rt = state.runtime();
    let Some(source) = rt.sources.get(connector) else {
        return Err((
            "unknown_connector",
            reply::error(
                StatusCode::NOT_FOUND,
                "unknown_connector",
                "no webhook connector by that name",
            ),
        ));
    };
    if !state.accepting() {
        return Err((
            "shutting_down",
            reply::unavailable("tandem is shutting down; retry shortly", 5),
        ));
    }
    let limit = rt.config.daemon.limits.max_body_bytes;
    let too_large = || {
        (
            "too_large",
            reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the body exceeds {limit} bytes"),
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) if is_length_limit(&e) => return Err(too_large()),
        Err(_) => {
            return Err((
                "unreadable",
                reply::error(
                    StatusCode::BAD_REQUEST,
                    "unreadable_body",
                    "the body could not be read completely",
                ),
            ));
        }
    };
    if let Some(secret) = &source.webhook.secret {
        let given = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
        if let Err(e) =
            webhook::verify_hex_signature(secret.expose_secret().as_bytes(), &bytes, given)
        {
            return Err((
                "bad_signature",
                reply::error(StatusCode::UNAUTHORIZED, "bad_signature", e.to_string()),
            ));
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let submission = webhook::parse_body(content_type, &bytes).map_err(|e| {
        if e.is_media_type() {
            (
                "unsupported_media_type",
                reply::error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    e.to_string(),
                ),
            )
        } else {
            (
                "malformed",
                reply::error(StatusCode::BAD_REQUEST, "malformed_body", e.to_string()),
            )
        }
    })?;
    let idempotency_key = match headers.get(IDEMPOTENCY_HEADER) {
        None => None,
        Some(v) => match v.to_str() {
            Ok(k) if !k.trim().is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY => {
                Some(k.trim().to_owned())
            }
            _ => {
                let msg = format!(
                    "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
                );
                return Err((
                    "bad_idempotency_key",
                    reply::error(StatusCode::BAD_REQUEST, "invalid_header", msg),
                ));
            }
        },
    };

    let received_at_ms = now_ms();
    let captured_at = jiff::Timestamp::from_millisecond(received_at_ms)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let lead = build_lead(
        connector,
        &source.templates,
        source.webhook.default_region.as_deref(),
        submission,
        captured_at,
    )
    .map_err(|e| ("invalid_field", reply::field_error(&e.field, e.reason)))?;
    let lead_id = uuid::Uuid::now_v7().to_string();
    let deliveries = rt.deliveries_for(source, &lead_id, &lead).map_err(|e| {
        (
            "invalid_field",
            reply::field_error(
                &e.field,
                format!("a flow's field mapping failed: {}", e.message),
            ),
        )
    })?;
    let person = identity::person_key(lead.email.as_deref(), lead.phone.as_deref(), None)
        .ok_or_else(|| {
            (
                "invalid_field",
                reply::field_error("email", "a lead needs an email address or a phone number"),
            )
        })?;
    let destinations: Vec<String> = deliveries.iter().map(|d| d.destination.clone()).collect();
    let new = NewLead {
        id: lead_id,
        source: connector.to_owned(),
        received_at_ms,
        lead_json: serde_json::to_string(&lead).unwrap_or_default(),
        raw_body: bytes.to_vec(),
        content_type: content_type.map(str::to_owned),
        person,
        idempotency_key,
        deliveries,
    };
    match state.0.store.ingest(new).await {
        Ok(ingested) => {
            if !ingested.duplicate {
                for d in &destinations {
                    state.0.wakers.wake(d);
                }
            }
            let outcome = if ingested.duplicate {
                "duplicate"
            } else {
                "stored"
            };
            metrics::counter!("tandem_leads_received_total", "connector" => connector.to_owned(), "outcome" => outcome)
                .increment(1);
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({"lead_id": ingested.lead_id, "duplicate": ingested.duplicate})),
            )
                .into_response())
        }
        Err(StoreError::Busy) => Err((
            "overloaded",
            reply::unavailable(
                "too many submissions are waiting to be stored; retry shortly",
                1,
            ),
        )),
        Err(e) => {
            tracing::error!(connector, error = %e, "could not store a lead; answering 503");
            Err((
                "store_unavailable",
                reply::unavailable("the lead could not be stored durably; retry shortly", 5),
            ))
        }
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// `GET /hooks/{connector}`: the verification handshake of platforms that have one. The generic
/// preset has none.
pub async fn handshake(State(state): State<AppState>, Path(connector): Path<String>) -> Response {
    if !state.runtime().sources.contains_key(&connector) {
        return reply::error(
            StatusCode::NOT_FOUND,
            "unknown_connector",
            "no webhook connector by that name",
        );
    }
    let mut r = reply::error(
        StatusCode::METHOD_NOT_ALLOWED,
        "no_handshake",
        "this connector's preset has no verification handshake; POST submissions here",
    );
    r.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
    r
}
