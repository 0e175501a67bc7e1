//! A faithful fake of the Salesforce REST endpoints tandem uses (feature `sandbox`):
//! - `POST /services/oauth2/token` (refresh-token grant; no `expires_in`; optional rotation);
//! - `GET /services/data/vXX.X/query?q=…` (the SOQL subset `SELECT … FROM … WHERE F IN (…) [OR …]`)
//!   and `GET …/query/{cursor}` pages;
//! - `POST` / `PATCH /services/data/vXX.X/composite/sobjects` (create / update by Id, ≤200);
//! - `PATCH …/composite/sobjects/{Object}/{ExternalIdField}` (upsert, ≤200, results in order);
//! - `DELETE …/composite/sobjects?ids=…&allOrNone=…` (delete, ≤200, results in order);
//! - `GET …/sobjects/{Object}/describe`;
//! - Opportunity and OpportunityContactRole for the deal side ([`deals`] plays salesperson),
//!   with the SOQL of [`soql`]: relationship fields, child subqueries, date literals, ORDER BY.
//!
//! Every API answer carries `Sforce-Limit-Info: api-usage=USED/MAX`; a spent daily budget answers
//! 403 `REQUEST_LIMIT_EXCEEDED`; a dead or expired session answers 401 `INVALID_SESSION_ID`; error
//! bodies are Salesforce's JSON arrays, per-record errors use `statusCode`. Faults come from
//! [`CrmFaults`]; `rate_limit_next` answers what Salesforce answers under load: 403
//! `REQUEST_LIMIT_EXCEEDED` "ConcurrentRequests (Concurrent API Requests) Limit exceeded.".
//!
//! Not Salesforce's: `GET /__sandbox/records` and `GET /__sandbox/stats` (no auth), for the demo.

mod collections;
pub mod conformance;
pub mod deals;
mod errors;
mod gate;
mod query;
mod schema;
mod soql;
mod state;
mod token;

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use axum::{
    Json, Router,
    extract::State,
    routing::{get, patch, post},
};
use serde::Serialize;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub use crate::sandbox::CrmFaults;
pub use deals::{NewDeal, STAGES};
pub use state::SandboxState;

/// How the sandbox org behaves before any fault is set.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The connected app's consumer key and secret.
    pub client_id: String,
    pub client_secret: String,
    /// The refresh token the org has granted (more are valid after rotations).
    pub refresh_token: String,
    /// Rotate refresh tokens on every refresh (off by default, as in Salesforce).
    pub rotate_refresh_tokens: bool,
    /// Sessions expire this long after they were issued (`None` = only by `expire_tokens`).
    pub session_timeout: Option<Duration>,
    /// The org's rolling 24-hour API request allowance, and how much of it is already used.
    pub daily_limit: u64,
    pub daily_used: u64,
    /// A custom text field marked External ID on Lead and Contact (`None` = no such field).
    pub external_id_field: Option<String>,
    /// Lead/Contact duplicate rule: creating a record whose Email another one has is blocked.
    pub duplicate_rule: bool,
    /// Rows per SOQL page (Salesforce: up to 2,000).
    pub query_page_size: usize,
    /// Multiple currencies enabled: Opportunity has `CurrencyIsoCode`.
    pub multi_currency: bool,
    /// The org's (corporate) currency, given to Opportunities without one.
    pub currency: String,
    pub seed: Option<u64>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            client_id: "3MVG9sandbox.consumer.key".to_owned(),
            client_secret: "sandbox-consumer-secret".to_owned(),
            refresh_token: "5Aep861sandbox.refresh.token".to_owned(),
            rotate_refresh_tokens: false,
            session_timeout: None,
            daily_limit: 100_000,
            daily_used: 0,
            external_id_field: Some("Tandem_Email__c".to_owned()),
            duplicate_rule: false,
            query_page_size: 2000,
            multi_currency: false,
            currency: "USD".to_owned(),
            seed: None,
        }
    }
}

/// One stored record (Lead or Contact).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SfRecord {
    pub id: String,
    pub object: String,
    /// API name → value (absent = null).
    pub fields: BTreeMap<String, String>,
    pub created_at: jiff::Timestamp,
    pub modified_at: jiff::Timestamp,
    /// Creates and updates through the API; 1 = created and never touched again.
    pub writes: u32,
}

/// One API request as received, for request-shape assertions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub body: Option<serde_json::Value>,
}

/// What the sandbox has seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SandboxStats {
    /// Every `/services/data/…` request, refused or not.
    pub api_calls: u64,
    /// Access tokens granted on the token endpoint.
    pub token_refreshes: u64,
    /// Refresh attempts refused (bad grant or client).
    pub token_refusals: u64,
    /// 403 `REQUEST_LIMIT_EXCEEDED` answers (daily budget or injected concurrency limit).
    pub rate_limited: u64,
    pub unauthorized: u64,
    pub server_errors: u64,
    pub drops: u64,
    pub queries: u64,
    pub writes: u64,
    /// Records deleted through `DELETE /composite/sobjects`.
    pub deleted: u64,
    /// Records per collection write, in arrival order.
    pub batch_sizes: Vec<usize>,
    pub log: Vec<LoggedRequest>,
}

async fn inspect_records(State(state): State<SandboxState>) -> Json<Vec<SfRecord>> {
    Json(state.records())
}

async fn inspect_stats(State(state): State<SandboxState>) -> Json<SandboxStats> {
    Json(state.stats())
}

/// The whole fake as an axum router.
pub fn router(state: SandboxState) -> Router {
    let data = Router::new()
        .route("/services/data/{version}/query", get(query::run))
        .route("/services/data/{version}/query/{cursor}", get(query::more))
        .route(
            "/services/data/{version}/composite/sobjects",
            post(collections::create)
                .patch(collections::update)
                .delete(collections::delete),
        )
        .route(
            "/services/data/{version}/composite/sobjects/{object}/{field}",
            patch(collections::upsert),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/describe",
            get(schema::describe),
        )
        .fallback(errors::not_found_handler)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gate::gate,
        ));
    Router::new()
        .merge(data)
        .route("/services/oauth2/token", post(token::token))
        .route("/__sandbox/records", get(inspect_records))
        .route("/__sandbox/stats", get(inspect_stats))
        .with_state(state)
}

/// A running sandbox on a loopback port. Dropping it stops the server.
#[derive(Debug)]
pub struct SalesforceSandbox {
    addr: SocketAddr,
    state: SandboxState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SalesforceSandbox {
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
                tracing::warn!(error = %e, "salesforce sandbox stopped with an error");
            }
        });
        Ok(SalesforceSandbox {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The org's instance URL (also the login URL: the token endpoint lives here too).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> &SandboxState {
        &self.state
    }

    pub fn records(&self) -> Vec<SfRecord> {
        self.state.records()
    }

    pub fn stats(&self) -> SandboxStats {
        self.state.stats()
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

impl Drop for SalesforceSandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
