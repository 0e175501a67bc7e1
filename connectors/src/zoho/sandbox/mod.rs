//! A faithful fake of the Zoho CRM endpoints tandem uses (feature `sandbox`), plus Zoho
//! Accounts' token endpoint, for tests and `tandem demo`:
//!
//! - `POST /oauth/v2/token?grant_type=refresh_token&client_id=…&client_secret=…&refresh_token=…`:
//!   parameters in the query string, 1-hour access tokens (`expires_in: 3600`), `api_domain` =
//!   this sandbox, no refresh-token rotation, at most 30 live access tokens per refresh token,
//!   and every refusal a 200 with `{"error":"invalid_code"}` (or `invalid_client`).
//! - `POST /crm/v8/{Leads|Contacts}/upsert`: duplicate check on `duplicate_check_fields` (default
//!   Email, case-insensitive), ≤ 100 records, per-record `data[]` answers (SUCCESS insert/update,
//!   INVALID_DATA, MANDATORY_NOT_FOUND) with 200 / 207 / 400.
//! - `POST /crm/v8/coql`: the COQL subset tandem sends (see [`coql`]).
//! - `GET /crm/v8/settings/fields?module=…`: the fields metadata.
//! - `PUT /crm/v8/{module}`: update by id (≤ 100, per-record answers, 200 / 207 / 400).
//! - `DELETE /crm/v8/{module}?ids=…`: delete by id (≤ 100, per-record answers).
//! - The Deals module (default stages, `Contact_Name` lookup, tandem's attribution fields,
//!   `Currency` with `multi_currency`); [`deals`] plays salesperson in it.
//!
//! Every route answers under `/crm/v7/` as well as `/crm/v8/` (the two share their shapes).
//!
//! Every `/crm/…` request needs `Authorization: Zoho-oauthtoken <live token>` (else 401
//! `INVALID_TOKEN` / `AUTHENTICATION_FAILURE`), is refused with 429 `TOO_MANY_REQUESTS` beyond
//! the concurrency cap or once the rolling-24-hour credits are spent (then with
//! `X-RATELIMIT-LIMIT/-REMAINING/-RESET`), and costs credits as Zoho documents (upsert 1 per 10
//! records, COQL 1 per 200 rows of LIMIT, metadata 1). Faults come from [`CrmFaults`].
//! `GET /__sandbox/records` lists every record (unauthenticated, for the demo).

mod accounts;
pub mod conformance;
pub mod coql;
pub mod deals;
mod fields;
mod gate;
mod records;
mod state;
mod update;

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use axum::{
    Router,
    routing::{get, post},
};
use serde::Serialize;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub use crate::sandbox::CrmFaults;
pub use state::SandboxState;

/// How the sandbox behaves before any fault is set.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    pub client_id: String,
    pub client_secret: String,
    /// The refresh token Zoho Accounts accepts.
    pub refresh_token: String,
    /// Access-token lifetime (Zoho: one hour).
    pub token_lifetime: Duration,
    /// API credits per rolling 24 hours.
    pub daily_credits: u64,
    /// Concurrent `/crm/…` calls admitted (the upsert sub-concurrency cap is 10).
    pub concurrency: u32,
    /// Seed for the fault dice; `None` = random.
    pub seed: Option<u64>,
    /// The first record id handed out (Zoho ids are 19-digit numbers).
    pub first_id: u64,
    /// Multiple currencies enabled: Deals have a `Currency` field.
    pub multi_currency: bool,
    /// The org's home currency, given to Deals without one.
    pub currency: String,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            client_id: "1000.SANDBOXCLIENTID".to_owned(),
            client_secret: "sandbox-client-secret".to_owned(),
            refresh_token: "1000.sandbox-refresh.token".to_owned(),
            token_lifetime: Duration::from_secs(3600),
            daily_credits: 50_000,
            concurrency: 10,
            seed: None,
            first_id: 5_725_767_000_000_524_001,
            multi_currency: false,
            currency: "USD".to_owned(),
        }
    }
}

/// One stored record of a module.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZohoRecord {
    pub id: String,
    pub module: String,
    pub fields: BTreeMap<String, String>,
    pub created_time: jiff::Timestamp,
    pub modified_time: jiff::Timestamp,
    /// Creates and updates applied by API writes; 1 = created and never touched again.
    pub writes: u32,
}

/// What the sandbox has seen, for assertions.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SandboxStats {
    /// Every `/crm/…` request, refused or not (token requests are not API calls).
    pub api_calls: u64,
    pub upsert_calls: u64,
    /// `PUT /crm/v8/{module}` calls.
    pub update_calls: u64,
    /// `DELETE /crm/v8/{module}` calls, and the records they deleted.
    pub delete_calls: u64,
    pub deleted: u64,
    pub coql_calls: u64,
    pub fields_calls: u64,
    /// Successful token refreshes.
    pub token_refreshes: u64,
    /// Refused token requests (dead grant, wrong client).
    pub token_refusals: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub unauthorized: u64,
    pub drops: u64,
    pub credits_used: u64,
    /// Records per upsert call, in arrival order.
    pub batch_sizes: Vec<usize>,
    /// The COQL queries received, in order.
    pub queries: Vec<String>,
}

/// The whole fake as an axum router.
pub fn router(state: SandboxState) -> Router {
    let mut api = Router::new();
    for v in ["v7", "v8"] {
        api = api
            .route(&format!("/crm/{v}/coql"), post(coql::handle))
            .route(&format!("/crm/{v}/settings/fields"), get(fields::handle))
            .route(
                &format!("/crm/{v}/{{module}}/upsert"),
                post(records::upsert),
            )
            .route(
                &format!("/crm/{v}/{{module}}"),
                axum::routing::put(update::update).delete(update::delete),
            );
    }
    let api = api.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        gate::gate,
    ));
    Router::new()
        .merge(api)
        .route("/oauth/v2/token", post(accounts::token))
        .route("/__sandbox/records", get(records::inspect))
        .with_state(state)
}

/// A running sandbox on a loopback port. Dropping it stops the server.
#[derive(Debug)]
pub struct ZohoSandbox {
    addr: SocketAddr,
    state: SandboxState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ZohoSandbox {
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
                tracing::warn!(error = %e, "zoho sandbox stopped with an error");
            }
        });
        Ok(ZohoSandbox {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API domain (and Accounts host) to point a connector at.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> &SandboxState {
        &self.state
    }

    pub fn options(&self) -> &SandboxOptions {
        self.state.options()
    }

    /// Records of `module` ("Leads" or "Contacts").
    pub fn records(&self, module: &str) -> Vec<ZohoRecord> {
        self.state.records(module)
    }

    pub fn record_by_email(&self, module: &str, email: &str) -> Option<ZohoRecord> {
        self.state.record_by_email(module, email)
    }

    pub fn stats(&self) -> SandboxStats {
        self.state.stats()
    }

    pub fn set_faults(&self, faults: CrmFaults) {
        self.state.set_faults(faults)
    }

    /// Invalidates every access token issued so far.
    pub fn expire_tokens(&self) {
        self.state.expire_tokens()
    }

    /// The user revoked tandem's grant: the refresh token is dead.
    pub fn revoke_refresh_token(&self) {
        self.state.revoke_refresh_token()
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

impl Drop for ZohoSandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
