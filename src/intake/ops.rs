//! Liveness, readiness and Prometheus metrics.

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

use super::{AppState, reply};

/// The process is up and serving HTTP.
pub async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// Ready = accepting submissions and the store takes a write right now.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if !state.accepting() {
        return reply::unavailable("shutting down", 5);
    }
    match state.0.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => reply::unavailable(format!("the store is not writable: {e}"), 5),
    }
}

/// Prometheus text format. Queue figures are read from the store at scrape time, so they are
/// exact rather than sampled.
pub async fn metrics(State(state): State<AppState>) -> Response {
    if let Ok(status) = state.0.store.status().await {
        for d in status {
            let labels = [
                ("destination", d.destination.clone()),
                ("flow", d.flow.clone()),
            ];
            metrics::gauge!("tandem_queue_pending", &labels).set(d.pending as f64);
            metrics::gauge!("tandem_queue_in_flight", &labels).set(d.in_flight as f64);
            metrics::gauge!("tandem_queue_dead", &labels).set(d.dead as f64);
            metrics::gauge!("tandem_queue_oldest_pending_age_seconds", &labels)
                .set(d.oldest_pending_age_ms.unwrap_or(0) as f64 / 1000.0);
        }
    }
    state.0.metrics.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.0.metrics.render(),
    )
        .into_response()
}
