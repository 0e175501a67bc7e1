//! The admin API (`/api/…`), used by `tandem status`, `dlq` and `replay` while the daemon runs, so
//! the state file is only ever written by the daemon itself. Every call needs
//! `Authorization: Bearer <daemon.admin_token>`, compared in constant time; without a configured
//! token the API is off.

use axum::{
    Json,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::{AppState, reply};
use crate::{
    daemon::runtime::render_delivery,
    store::{ForgetIdentifier, ForgetOutcome, ForgetTarget, NewDelivery, sqlite::now_ms},
};

/// Route layer for `/api/…`: the bearer token, compared in constant time, or a refusal.
pub async fn require_token(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match refuse(&state, request.headers()) {
        Some(refusal) => refusal,
        None => next.run(request).await,
    }
}

/// `None` when the caller may proceed, else the refusal to send.
fn refuse(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let rt = state.runtime();
    let Some(token) = rt.config.daemon.admin_token.as_ref() else {
        return Some(reply::error(
            StatusCode::NOT_FOUND,
            "admin_disabled",
            "the admin API is off: set daemon.admin_token",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = token.expose_secret().as_bytes();
    if bool::from(given.as_bytes().ct_eq(expected)) && !expected.is_empty() {
        None
    } else {
        let mut r = reply::error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        Some(r)
    }
}

fn internal(e: impl std::fmt::Display) -> Response {
    reply::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_error",
        e.to_string(),
    )
}

pub async fn status(State(state): State<AppState>) -> Response {
    let store = &state.0.store;
    match (store.status().await, store.paused().await) {
        (Ok(destinations), Ok(paused)) => Json(json!({
            "version": env!("CARGO_PKG_VERSION"),
            "accepting": state.accepting(),
            "destinations": destinations,
            "paused": paused.into_iter().map(|(c, r)| json!({"connector": c, "reason": r})).collect::<Vec<_>>(),
        }))
        .into_response(),
        (Err(e), _) | (_, Err(e)) => internal(e),
    }
}

#[derive(Deserialize)]
pub struct DlqQuery {
    destination: Option<String>,
    limit: Option<usize>,
}

pub async fn dead_letters(State(state): State<AppState>, Query(q): Query<DlqQuery>) -> Response {
    match state
        .0
        .store
        .dead_letters(q.destination, q.limit.unwrap_or(100).min(10_000))
        .await
    {
        Ok(list) => Json(json!({ "dead_letters": list })).into_response(),
        Err(e) => internal(e),
    }
}

/// `{"ids": [1, 2]}` or `{"all": true}`: refusing an empty body keeps "retry everything" deliberate.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    ids: Option<Vec<i64>>,
    #[serde(default)]
    all: bool,
}

impl Selection {
    /// `Ok(None)` = all; `Err` = neither or both were given.
    fn ids(self) -> Result<Option<Vec<i64>>, ()> {
        match (self.ids, self.all) {
            (Some(ids), false) => Ok(Some(ids)),
            (None, true) => Ok(None),
            _ => Err(()),
        }
    }
}

fn bad_selection() -> Response {
    reply::error(
        StatusCode::BAD_REQUEST,
        "bad_selection",
        "send either {\"ids\": [...]} or {\"all\": true}",
    )
}

pub async fn retry(State(state): State<AppState>, Json(sel): Json<Selection>) -> Response {
    let Ok(ids) = sel.ids() else {
        return bad_selection();
    };
    match state.0.store.retry_dead(ids).await {
        Ok(n) => {
            for d in state.runtime().sinks.keys() {
                state.0.wakers.wake(d);
            }
            Json(json!({ "retried": n })).into_response()
        }
        Err(e) => internal(e),
    }
}

pub async fn drop(State(state): State<AppState>, Json(sel): Json<Selection>) -> Response {
    let Ok(ids) = sel.ids() else {
        return bad_selection();
    };
    match state.0.store.drop_dead(ids).await {
        Ok(n) => Json(json!({ "dropped": n })).into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    flow: String,
    /// RFC 3339 instant, or a duration back from now ("24h", "7d").
    since: String,
}

/// Re-sends every lead a flow's sources received since a point in time, mapped with the flow's
/// current fields. Upserts are idempotent, so a replay updates; it never duplicates a contact.
pub async fn replay(State(state): State<AppState>, Json(req): Json<ReplayRequest>) -> Response {
    let rt = state.runtime();
    let Some(flow) = rt.flows.get(&req.flow).cloned() else {
        let known = rt.flows.keys().cloned().collect::<Vec<_>>().join(", ");
        return reply::error(
            StatusCode::NOT_FOUND,
            "unknown_flow",
            format!("no flow named {:?}; flows: {known}", req.flow),
        );
    };
    let since_ms = match parse_since(&req.since) {
        Ok(ms) => ms,
        Err(m) => return reply::error(StatusCode::BAD_REQUEST, "bad_since", m),
    };
    let leads = match state.0.store.leads_since(flow.from.clone(), since_ms).await {
        Ok(l) => l,
        Err(e) => return internal(e),
    };
    let mut deliveries = Vec::with_capacity(leads.len());
    let mut failed = 0usize;
    let mut forgotten = 0usize;
    for l in leads {
        let lead: serde_json::Value = serde_json::from_str(&l.lead_json).unwrap_or_default();
        // A forgotten person's leads keep only attribution fields: never send them again.
        if lead.get("forgotten") == Some(&serde_json::Value::Bool(true)) {
            forgotten += 1;
            continue;
        }
        match render_delivery(&flow, &json!({ "lead": lead, "lead_id": l.id })) {
            Ok(d) => deliveries.push(NewDelivery {
                lead_id: l.id,
                person_id: l.person_id,
                flow: d.flow,
                destination: d.destination,
                payload: d.payload,
            }),
            Err(_) => failed += 1,
        }
    }
    match state.0.store.enqueue(deliveries).await {
        Ok(n) => {
            state.0.wakers.wake(&flow.to);
            Json(json!({ "enqueued": n, "unmappable": failed, "forgotten": forgotten }))
                .into_response()
        }
        Err(e) => internal(e),
    }
}

pub fn parse_since(s: &str) -> Result<i64, String> {
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    match s.parse::<tandem_connectors::units::HumanDuration>() {
        Ok(d) => Ok(now_ms() - d.0.as_millis() as i64),
        Err(_) => Err(format!(
            "{s:?} is neither an RFC 3339 time (2026-11-01T00:00:00Z) nor a duration (24h, 7d)"
        )),
    }
}

/// `tandem check --connect` while the daemon runs: the daemon owns the OAuth tokens, so the
/// check uses (and, if it must refresh, persists) the same ones.
pub async fn verify(State(state): State<AppState>) -> Response {
    let problems = state.runtime().verify_connections().await;
    let list: Vec<_> = problems
        .into_iter()
        .map(|(connector, problem)| json!({"connector": connector, "problem": problem}))
        .collect();
    Json(json!({ "problems": list })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgetRequest {
    /// An email address, or a phone number with its country code.
    identifier: String,
}

/// The identifier as people are stored: an email normalised, else a phone in E.164.
fn forget_identifier(raw: &str) -> Result<ForgetIdentifier, &'static str> {
    if raw.contains('@') {
        crate::identity::normalize_email(raw)
            .map(ForgetIdentifier::Email)
            .map_err(|_| "the identifier is not a valid email address")
    } else {
        crate::identity::normalize_phone(raw, None)
            .map(ForgetIdentifier::Phone)
            .map_err(|_| {
                "the identifier is neither an email address nor a phone number with its country code (+14155550100)"
            })
    }
}

/// `tandem forget`: erase a person's personal data from the store and queue the deletion at
/// every CRM that knows them. Answers never repeat the identifier.
pub async fn forget(State(state): State<AppState>, Json(req): Json<ForgetRequest>) -> Response {
    let identifier = match forget_identifier(&req.identifier) {
        Ok(i) => i,
        Err(m) => return reply::error(StatusCode::BAD_REQUEST, "bad_identifier", m),
    };
    let rt = state.runtime();
    let targets: Vec<ForgetTarget> = rt
        .sinks
        .iter()
        .map(|(name, sinks)| ForgetTarget {
            destination: name.clone(),
            supports_deletion: sinks.supports_forget(),
        })
        .collect();
    match state.0.store.forget(identifier, targets).await {
        Ok(ForgetOutcome::NotFound) => reply::error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no person with that email or phone is stored, and it was never forgotten here; nothing changed",
        ),
        Ok(outcome) => {
            if let ForgetOutcome::Forgotten { audit, .. } = &outcome {
                tracing::info!(
                    audit_id = audit.id,
                    person_id = audit.person_id,
                    "person forgotten"
                );
                for f in audit.connectors.iter().filter(|f| f.delivery_id.is_some()) {
                    state.0.wakers.wake(&f.connector);
                }
            }
            Json(outcome).into_response()
        }
        Err(e) => internal(e),
    }
}
