//! A faithful fake of the Pipedrive endpoints tandem uses (feature `sandbox`), for tests and
//! `tandem demo`: v2 persons (create, patch, get, delete, list with `ids`/sorting/cursor paging,
//! exact search that lags behind writes), v1 leads and person fields, v2 deals (list by
//! `updated_since` with cursor paging, get, patch of custom fields) with a default pipeline and
//! a salesperson to move them, v1 deal fields and deal participants, the deal webhook (v2 body,
//! HTTP Basic auth, see `conformance`), the OAuth token endpoint (HTTP Basic client auth,
//! expiring access tokens, optional refresh-token rotation, `api_domain`), the
//! `{success, data, additional_data}` and `{success:false, error, error_info}` envelopes, 401/403/
//! 404/429 shapes, `x-ratelimit-*` headers over a real 2-second window (plus the search API's own
//! 10 per 2 s), a daily token budget, and fault injection through [`CrmFaults`].
//!
//! Besides Pipedrive's own paths: `GET /__sandbox/persons`, `GET /__sandbox/deals`,
//! `GET /__sandbox/stats` (no auth).

pub mod conformance;
mod deal_state;
mod deals;
mod errors;
mod forget;
mod gate;
mod oauth;
mod persons;
mod state;

use std::{net::SocketAddr, time::Duration};

use axum::{
    Router,
    routing::{get, post},
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub use deal_state::{PIPELINE_ID, STAGES, StoredDeal};
pub use state::{SandboxState, SandboxStats, StoredPerson};

pub use crate::sandbox::CrmFaults;

/// The custom person field the conformance suite maps "company" to (a 40-hex key like Pipedrive's).
pub const COMPANY_FIELD_KEY: &str = "5d1e0c7a9b3f4e2d8c6a1b0f9e8d7c6b5a4f3e2d";
/// The custom deal fields tandem writes attribution into (pre-created, like a user would).
pub const FIRST_TOUCH_FIELD_KEY: &str = "9c1f3a5e7b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a";
pub const LAST_TOUCH_FIELD_KEY: &str = "3e5a7c9b1d2f4e6a8b0c2d4e6f8a1b3c5d7e9f0b";
pub const ATTRIBUTION_FIELD_KEY: &str = "7b9d1f3a5c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d";
/// A custom deal field of an option type, which text can't be written to.
pub const DEAL_TYPE_FIELD_KEY: &str = "e4c6a8b0d2f1e3c5a7b9d0f2e4c6a8b1d3f5e7a9";

/// How the sandbox behaves before any fault is set.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The only `x-api-token` accepted.
    pub api_token: String,
    pub client_id: String,
    pub client_secret: String,
    /// The refresh token the first refresh must present.
    pub refresh_token: String,
    /// Hand out a new refresh token on every refresh (the old one stops working).
    pub rotate_refresh_tokens: bool,
    /// `expires_in` of access tokens (Pipedrive: about an hour).
    pub access_token_lifetime: Duration,
    /// Requests per window, per token.
    pub rate_limit: u32,
    /// Pipedrive's window is 2 s.
    pub rate_window: Duration,
    /// Searches per window, per token.
    pub search_rate_limit: u32,
    /// Daily token budget of the company (costs per request: see `gate`).
    pub daily_budget: u64,
    /// A written person becomes searchable this long after the write…
    pub search_lag: Duration,
    /// …and after this many searches have missed it.
    pub search_lag_searches: u32,
    /// Custom person fields: (key, name, field_type).
    pub custom_fields: Vec<(String, String, String)>,
    /// Custom deal fields: (key, name, field_type).
    pub deal_custom_fields: Vec<(String, String, String)>,
    /// The company's default currency (deals created without one).
    pub company_currency: String,
    /// The deal webhook's `http_auth_user` / `http_auth_password`.
    pub webhook_user: String,
    pub webhook_password: String,
    pub seed: Option<u64>,
    /// The first person id handed out.
    pub first_id: u64,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            api_token: "sandbox-api-token".to_owned(),
            client_id: "sandbox-client".to_owned(),
            client_secret: "sandbox-secret".to_owned(),
            refresh_token: "sandbox-refresh-0".to_owned(),
            rotate_refresh_tokens: false,
            access_token_lifetime: Duration::from_secs(3599),
            rate_limit: 80,
            rate_window: Duration::from_secs(2),
            search_rate_limit: 10,
            daily_budget: 10_000_000,
            search_lag: Duration::from_millis(1500),
            search_lag_searches: 0,
            custom_fields: vec![
                (
                    COMPANY_FIELD_KEY.to_owned(),
                    "Company".to_owned(),
                    "varchar".to_owned(),
                ),
                (
                    "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678".to_owned(),
                    "Lead source".to_owned(),
                    "varchar".to_owned(),
                ),
                (
                    "f0e1d2c3b4a5968778695a4b3c2d1e0f12345678".to_owned(),
                    "Segment".to_owned(),
                    "enum".to_owned(),
                ),
            ],
            deal_custom_fields: vec![
                (
                    FIRST_TOUCH_FIELD_KEY.to_owned(),
                    "tandem first touch".to_owned(),
                    "varchar".to_owned(),
                ),
                (
                    LAST_TOUCH_FIELD_KEY.to_owned(),
                    "tandem last touch".to_owned(),
                    "varchar".to_owned(),
                ),
                (
                    ATTRIBUTION_FIELD_KEY.to_owned(),
                    "tandem attribution".to_owned(),
                    "text".to_owned(),
                ),
                (
                    DEAL_TYPE_FIELD_KEY.to_owned(),
                    "Deal type".to_owned(),
                    "enum".to_owned(),
                ),
            ],
            company_currency: "USD".to_owned(),
            webhook_user: "tandem-hook".to_owned(),
            webhook_password: "sandbox-webhook-password".to_owned(),
            seed: None,
            first_id: 1,
        }
    }
}

/// The whole fake as an axum router.
pub fn router(state: SandboxState) -> Router {
    let api = Router::new()
        .route("/api/v2/persons", get(persons::list).post(persons::create))
        .route("/api/v2/persons/search", get(persons::search))
        .route(
            "/api/v2/persons/{id}",
            get(persons::get_one)
                .patch(persons::patch)
                .delete(forget::delete_person),
        )
        .route(
            "/api/v1/leads",
            get(persons::list_leads).post(persons::create_lead),
        )
        .route(
            "/v1/leads",
            get(persons::list_leads).post(persons::create_lead),
        )
        .route("/api/v1/personFields", get(persons::person_fields))
        .route("/v1/personFields", get(persons::person_fields))
        .route("/api/v2/deals", get(deals::list))
        .route(
            "/api/v2/deals/{id}",
            get(deals::get_one).patch(deals::patch),
        )
        .route("/api/v1/dealFields", get(deals::deal_fields))
        .route("/v1/dealFields", get(deals::deal_fields))
        .route("/api/v1/deals/{id}/participants", get(deals::participants))
        .route("/v1/deals/{id}/participants", get(deals::participants))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gate::gate,
        ));
    Router::new()
        .merge(api)
        .route("/oauth/token", post(oauth::token))
        .route("/__sandbox/persons", get(persons::inspect_persons))
        .route("/__sandbox/deals", get(deals::inspect))
        .route("/__sandbox/stats", get(persons::inspect_stats))
        .with_state(state)
}

/// A running sandbox on a loopback port. Dropping it stops the server.
#[derive(Debug)]
pub struct PipedriveSandbox {
    addr: SocketAddr,
    state: SandboxState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl PipedriveSandbox {
    /// Bind `listen` (port 0 picks a free port) and serve on the current tokio runtime.
    pub async fn start(listen: SocketAddr, options: SandboxOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = SandboxState::new(options, format!("http://{addr}"));
        let app = router(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "pipedrive sandbox stopped with an error");
            }
        });
        Ok(PipedriveSandbox {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What to put in a connector's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token_url(&self) -> String {
        format!("http://{}/oauth/token", self.addr)
    }

    pub fn state(&self) -> &SandboxState {
        &self.state
    }

    /// Stop accepting, let in-flight requests finish, and wait for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for PipedriveSandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
