//! A faithful fake of Google's conversion endpoints (feature `sandbox`), for tests and the demo:
//!
//! - `POST /token`: Google's OAuth refresh grant (form body), `expires_in: 3599`, no rotation;
//!   `400 invalid_grant` for a dead refresh token, `401 invalid_client` for a wrong client.
//! - `POST /v1/events:ingest` (Data Manager): validates like Google — fast fail, every problem a
//!   `google.rpc.BadRequest` field violation (`events[1].ad_identifiers`, …) with Google's
//!   `ErrorReason`; unknown JSON fields refused; permission on the operating/login account;
//!   dedup and adjustment by `transactionId` per conversion action; events older than 90 days
//!   accepted but dropped in processing; `validateOnly` records nothing.
//! - `POST /{version}/customers/{id}:uploadClickConversions` and
//!   `:uploadConversionAdjustments` (Google Ads API): `developer-token` and `login-customer-id`
//!   headers, `partialFailure` required, per-row errors in `partialFailureError` located by
//!   `fieldPathElements`, `ORDER_ID_ALREADY_IN_USE` for a resend, retractions and restatements
//!   by `orderId`; optionally `CUSTOMER_NOT_ALLOWLISTED_FOR_THIS_FEATURE`.
//!
//! Every API call needs a live `Authorization: Bearer` token (else 401 `UNAUTHENTICATED`), counts
//! against 300 requests per minute (then 429 `RESOURCE_EXHAUSTED`), and goes through the
//! [`CrmFaults`] (429, 5xx, delay, drop after write, a refused event/row).

mod gate;
mod ingest;
mod oauth;
mod rows;
mod state;
mod upload;
pub mod writeback;

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use axum::{Router, routing::post};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub use crate::sandbox::{CrmFaults, ReceivedWriteback};
pub use state::{LoggedRequest, SandboxState, SandboxStats, StoredConversion};

/// The conversion actions the sandbox account has, per milestone.
pub const ACTIONS: [(&str, &str); 4] = [
    ("qualified", "1001"),
    ("opportunity", "1002"),
    ("won", "1003"),
    ("lost", "1004"),
];

/// How the sandbox behaves before any fault is set.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    pub developer_token: String,
    /// The Google Ads account the user can reach.
    pub customer_id: String,
    /// The manager account the user must go through (`None`: direct access).
    pub login_customer_id: Option<String>,
    /// Conversion action ids of the account.
    pub conversion_actions: Vec<String>,
    /// Whether the developer token may still upload through the Google Ads API.
    pub legacy_allowlisted: bool,
    pub token_lifetime: Duration,
    /// Per-minute request quota (Data Manager: 300 per project).
    pub requests_per_minute: u32,
    /// Seed for the fault dice; `None` = random.
    pub seed: Option<u64>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            client_id: "sandbox-client.apps.googleusercontent.com".to_owned(),
            client_secret: "sandbox-google-secret".to_owned(),
            refresh_token: "1//sandbox-refresh-token".to_owned(),
            developer_token: "sandbox-developer-token".to_owned(),
            customer_id: "1234567890".to_owned(),
            login_customer_id: None,
            conversion_actions: ACTIONS.iter().map(|(_, id)| (*id).to_owned()).collect(),
            legacy_allowlisted: true,
            token_lifetime: Duration::from_secs(3599),
            requests_per_minute: 300,
            seed: None,
        }
    }
}

/// The whole fake as an axum router.
pub fn router(state: SandboxState) -> Router {
    let api = Router::new()
        .route("/v1/events:ingest", post(ingest::handle))
        .route("/{version}/customers/{target}", post(upload::handle))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gate::gate,
        ));
    Router::new()
        .merge(api)
        .route("/token", post(oauth::token))
        .with_state(state)
}

/// A running sandbox on a loopback port. Dropping it stops the server.
#[derive(Debug)]
pub struct GoogleAdsSandbox {
    addr: SocketAddr,
    state: SandboxState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl GoogleAdsSandbox {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    pub async fn start(options: SandboxOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let state = SandboxState::new(options);
        let app = router(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "google sandbox stopped with an error");
            }
        });
        Ok(GoogleAdsSandbox {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn options(&self) -> &SandboxOptions {
        self.state.options()
    }

    /// `[connectors.NAME]` lines for `api` (`"data_manager"` or `"google_ads"`), every
    /// milestone mapped to the sandbox's conversion actions.
    pub fn toml_for(&self, api: &str) -> String {
        let o = self.options();
        let base = self.base_url();
        let actions = ACTIONS
            .iter()
            .map(|(m, id)| format!("{m} = \"{id}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let mut toml = format!(
            "kind = \"google_ads\"\napi = \"{api}\"\ncustomer_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nrefresh_token = \"{}\"\ntoken_url = \"{base}/token\"\nbase_url = \"{base}\"\nconversion_actions = {{ {actions} }}\ntimeout = \"2s\"\n",
            o.customer_id, o.client_id, o.client_secret, o.refresh_token
        );
        if let Some(login) = &o.login_customer_id {
            toml.push_str(&format!("login_customer_id = \"{login}\"\n"));
        }
        if api == "google_ads" {
            toml.push_str(&format!("developer_token = \"{}\"\n", o.developer_token));
        }
        toml
    }

    /// Everything accepted so far, in arrival order (after Google's dedup).
    pub fn received(&self) -> Vec<ReceivedWriteback> {
        self.state.world().received.clone()
    }

    /// The conversions Google holds, by (conversion action, key).
    pub fn conversions(&self) -> BTreeMap<(String, String), StoredConversion> {
        self.state.world().conversions.clone()
    }

    /// The API requests received, oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state.world().log.clone()
    }

    pub fn stats(&self) -> SandboxStats {
        self.state.world().stats.clone()
    }

    pub fn set_faults(&self, faults: CrmFaults) {
        let mut w = self.state.world();
        if let Some(seed) = faults.seed {
            w.rng = rand::SeedableRng::seed_from_u64(seed);
        }
        w.faults = faults;
    }

    /// Invalidates every access token issued so far.
    pub fn expire_tokens(&self) {
        self.state.world().tokens.clear();
    }

    /// The user revoked tandem's grant: the refresh token is dead.
    pub fn revoke_refresh_token(&self) {
        let mut w = self.state.world();
        w.refresh_token_live = false;
        w.tokens.clear();
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

impl Drop for GoogleAdsSandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
