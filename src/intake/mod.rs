//! The HTTP face of the daemon (axum): `POST|GET /hooks/{connector}` for form webhooks,
//! `/healthz`, `/readyz`, `/metrics`, and the bearer-protected admin API under `/api/`.
//!
//! - [`hooks`]: the webhook contract (202 only after the durable commit).
//! - [`lead`]: submission → canonical lead.
//! - [`ops`]: health, readiness, Prometheus metrics.
//! - [`admin`]: status, dead letters, replay, forget.
//! - [`serve`]: the accept loop, with header timeout, connection cap and graceful shutdown.

mod admin;
pub mod admit;
mod hooks;
pub use hooks::fetch_waker;
pub mod lead;
mod ops;
mod reply;
pub mod serve;

use std::sync::{
    Arc, RwLock,
    atomic::{AtomicBool, Ordering},
};

use axum::{
    Router,
    routing::{get, post},
};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::{daemon::runtime::Runtime, engine::Wakers, store::Store};

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

pub struct Shared {
    pub store: Arc<dyn Store>,
    runtime: RwLock<Arc<Runtime>>,
    pub wakers: Arc<Wakers>,
    /// False once shutdown began: intake answers 503 so senders retry elsewhere or later.
    accepting: AtomicBool,
    pub metrics: PrometheusHandle,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        runtime: Arc<Runtime>,
        wakers: Arc<Wakers>,
        metrics: PrometheusHandle,
    ) -> Self {
        AppState(Arc::new(Shared {
            store,
            runtime: RwLock::new(runtime),
            wakers,
            accepting: AtomicBool::new(true),
            metrics,
        }))
    }

    pub fn runtime(&self) -> Arc<Runtime> {
        self.0
            .runtime
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn swap_runtime(&self, runtime: Arc<Runtime>) {
        *self.0.runtime.write().unwrap_or_else(|p| p.into_inner()) = runtime;
    }

    pub fn stop_accepting(&self) {
        self.0.accepting.store(false, Ordering::SeqCst);
    }

    pub fn accepting(&self) -> bool {
        self.0.accepting.load(Ordering::SeqCst)
    }
}

/// The admin API. The bearer check is a route layer, so it runs before any body is parsed: an
/// unauthenticated caller learns nothing, not even whether its JSON was well-formed.
fn admin_routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/status", get(admin::status))
        .route("/api/dlq", get(admin::dead_letters))
        .route("/api/dlq/retry", post(admin::retry))
        .route("/api/dlq/drop", post(admin::drop))
        .route("/api/replay", post(admin::replay))
        .route("/api/verify", post(admin::verify))
        .route("/api/forget", post(admin::forget))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            admin::require_token,
        ))
}

pub fn router(state: AppState) -> Router {
    let timeout = state.runtime().config.daemon.limits.request_timeout.0;
    Router::new()
        .route(
            "/hooks/{connector}",
            post(hooks::receive).get(hooks::handshake),
        )
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .merge(admin_routes(state.clone()))
        .fallback(reply::not_found)
        // Slow or stuck clients must not pin connections: the whole request has a deadline.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .with_state(state)
}
