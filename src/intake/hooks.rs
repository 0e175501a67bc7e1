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
use std::collections::BTreeMap;

use serde_json::json;
use tandem_connectors::source::{Handshake, PresetError, PresetOutput, PresetRequest};

use super::{
    AppState,
    admit::{Raw, admit},
    reply,
};
use crate::store::{StoreError, sqlite::now_ms};

const IDEMPOTENCY_HEADER: &str = "idempotency-key";
const MAX_IDEMPOTENCY_KEY: usize = 255;

pub async fn receive(
    State(state): State<AppState>,
    Path(connector): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let response = match accept(&state, &connector, &uri, &headers, body).await {
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
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Rejection> {
    let rt = state.runtime();
    let source = rt.sources.get(connector).filter(|s| s.preset.is_some());
    // The CRM of `[attribution] from` may take its deal-change webhook here too.
    let deal_hook = rt
        .outcomes
        .as_ref()
        .filter(|o| o.plan.crm == connector)
        .and_then(|o| o.webhook.as_deref());
    if source.is_none() && deal_hook.is_none() {
        return Err((
            "unknown_connector",
            reply::error(
                StatusCode::NOT_FOUND,
                "unknown_connector",
                "no webhook connector by that name",
            ),
        ));
    }
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
    let headers_map: BTreeMap<String, String> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_owned())))
        .collect();
    let host = headers_map
        .get("host")
        .map(String::as_str)
        .unwrap_or("localhost");
    let url = format!(
        "http://{host}{}",
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let received_at_ms = now_ms();
    let req = PresetRequest {
        method: "POST",
        url: &url,
        headers: &headers_map,
        body: &bytes,
        now_ms: received_at_ms,
    };
    let (Some(source), Some(preset)) = (source, source.and_then(|s| s.preset.as_ref())) else {
        return deal_events(state, connector, deal_hook, &req);
    };
    preset.verify(&req).map_err(preset_rejection)?;
    let output = preset.parse(&req).map_err(preset_rejection)?;
    let sender_key = match headers.get(IDEMPOTENCY_HEADER) {
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
    let content_type = headers_map.get("content-type").cloned();
    let leads = match output {
        PresetOutput::Nothing => {
            return Ok((StatusCode::OK, Json(json!({"ignored": true}))).into_response());
        }
        PresetOutput::Fetch(requests) => {
            // Only ids: store them durably, answer now, fetch as engine work with retries.
            let queued: Vec<(String, String)> = requests
                .iter()
                .map(|r| {
                    (
                        r.event_id.clone(),
                        serde_json::to_string(r).unwrap_or_default(),
                    )
                })
                .collect();
            return match state.0.store.enqueue_fetches(connector, queued).await {
                Ok(n) => {
                    state.0.wakers.wake(&fetch_waker(connector));
                    Ok((
                        StatusCode::OK,
                        Json(json!({"queued": n, "announced": requests.len()})),
                    )
                        .into_response())
                }
                Err(e) => Err(store_rejection(connector, e)),
            };
        }
        PresetOutput::Leads(leads) => leads,
    };
    let single = leads.len() == 1;
    let mut answers = Vec::with_capacity(leads.len());
    for lead in leads {
        let raw = Raw {
            body: bytes.to_vec(),
            content_type: content_type.clone(),
        };
        // One sender key can only name one lead.
        let key = if single { sender_key.clone() } else { None };
        let new = admit(&rt, connector, source, lead, Some(raw), key, received_at_ms)
            .map_err(|e| ("invalid_field", reply::field_error(&e.field, e.reason)))?;
        let destinations: Vec<String> = new
            .deliveries
            .iter()
            .map(|d| d.destination.clone())
            .collect();
        let ingested = state
            .0
            .store
            .ingest(new)
            .await
            .map_err(|e| store_rejection(connector, e))?;
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
        answers.push(json!({"lead_id": ingested.lead_id, "duplicate": ingested.duplicate}));
    }
    let body = match answers.as_slice() {
        [one] => one.clone(),
        many => json!({ "leads": many }),
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// The waker name of a source's fetch workers.
/// A CRM's deal webhook: authenticated, then a wake-up for the outcome poll (which stays the one
/// source of truth, so nothing is stored here and a lost notification only costs latency).
#[allow(clippy::result_large_err)] // the same `Rejection` as every other intake path
fn deal_events(
    state: &AppState,
    connector: &str,
    hook: Option<&dyn tandem_connectors::outcome::OutcomeWebhook>,
    req: &PresetRequest<'_>,
) -> Result<Response, Rejection> {
    let Some(hook) = hook else {
        return Err((
            "unknown_connector",
            reply::error(
                StatusCode::NOT_FOUND,
                "unknown_connector",
                "no webhook connector by that name",
            ),
        ));
    };
    let events = hook.verify(req).map_err(preset_rejection)?;
    if events > 0 {
        // notify_one keeps a permit, so a notification that lands mid-poll still triggers one more.
        state
            .0
            .wakers
            .get(&crate::engine::outcome_waker(connector))
            .notify_one();
    }
    metrics::counter!("tandem_deal_webhooks_total", "crm" => connector.to_owned()).increment(1);
    Ok((StatusCode::OK, Json(json!({ "deal_events": events }))).into_response())
}

pub fn fetch_waker(connector: &str) -> String {
    format!("fetch:{connector}")
}

fn preset_rejection(e: PresetError) -> Rejection {
    match e {
        PresetError::Unauthorized(m) => (
            "bad_signature",
            reply::error(StatusCode::UNAUTHORIZED, "bad_signature", m),
        ),
        // The body as a whole (not JSON, not an object…) or one named field.
        PresetError::Malformed { field, reason } if field == "body" => (
            "malformed",
            reply::error(StatusCode::BAD_REQUEST, "malformed_body", reason),
        ),
        PresetError::Malformed { field, reason } => {
            ("malformed", reply::field_error(&field, reason))
        }
        PresetError::UnsupportedMediaType(m) => (
            "unsupported_media_type",
            reply::error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                m,
            ),
        ),
    }
}

fn store_rejection(connector: &str, e: StoreError) -> Rejection {
    match e {
        StoreError::Busy => (
            "overloaded",
            reply::unavailable(
                "too many submissions are waiting to be stored; retry shortly",
                1,
            ),
        ),
        e => {
            tracing::error!(connector, error = %e, "could not store a lead; answering 503");
            (
                "store_unavailable",
                reply::unavailable("the lead could not be stored durably; retry shortly", 5),
            )
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

/// `GET /hooks/{connector}`: the platform's verification handshake (Meta echoes `hub.challenge`
/// when `hub.verify_token` matches); 405 for presets that have none.
pub async fn handshake(
    State(state): State<AppState>,
    Path(connector): Path<String>,
    uri: axum::http::Uri,
) -> Response {
    let rt = state.runtime();
    let Some(preset) = rt.sources.get(&connector).and_then(|s| s.preset.as_ref()) else {
        return reply::error(
            StatusCode::NOT_FOUND,
            "unknown_connector",
            "no webhook connector by that name",
        );
    };
    match preset.handshake(uri.query().unwrap_or("")) {
        Some(Handshake::Accept(challenge)) => (StatusCode::OK, challenge).into_response(),
        Some(Handshake::Refuse(reason)) => {
            reply::error(StatusCode::FORBIDDEN, "handshake_refused", reason)
        }
        None => {
            let mut r = reply::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "no_handshake",
                "this connector's preset has no verification handshake; POST submissions here",
            );
            r.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
            r
        }
    }
}
