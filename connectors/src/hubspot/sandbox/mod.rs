//! A faithful fake of HubSpot's contacts API (feature `sandbox`), for tests and `tandem demo`:
//! same paths (v3 and the `2026-03` date-versioned prefix), bodies, 100-input batch limit, error
//! bodies, rolling 10-second rate limit with HubSpot's headers and 429 body, cursor paging and
//! 207 partial failures, plus fault injection for every failure the real API can produce.
//! `POST …/contacts/gdpr-delete` permanently deletes one contact (204; 404 for an unknown one).
//! Also the contact properties list (`GET /crm/v3/properties/contacts`) and the OAuth token
//! endpoint (`POST /oauth/v1/token`, refresh grant) with expiring access tokens.
//!
//! The deal side: `POST …/deals/search` (the CRM search with its own 4/s limit, 200 per page,
//! 10,000 results at most), `POST …/deals/batch/update` (100 inputs, 207 partial failures),
//! `GET /crm/v3/properties/deals[/{name}]`, `POST /crm/v4/associations/{from}/{to}/batch/read`
//! (1,000 inputs, per-object paging, 207 `NO_ASSOCIATIONS_FOUND`), deals created and moved by a
//! simulated salesperson ([`salesperson`]) and signed deal webhooks ([`notify`]).
//!
//! HTTP endpoints besides HubSpot's own (unauthenticated, for tests and the demo):
//! - `GET /__sandbox/contacts`: every stored contact as JSON ([`Contact`]).
//! - `GET /__sandbox/deals`: every deal with its properties and contact ids ([`Deal`]).
//! - `GET /__sandbox/stats`: request counters ([`SandboxStats`]).
//! - `GET /__sandbox/faults`, `POST /__sandbox/faults`: read or replace the [`Faults`] (JSON).
//!
//! Rate limiting counts every authenticated `/crm/…` request against a rolling window per token,
//! as HubSpot does; requests refused with 401 or 429 don't count.

mod associations;
pub mod conformance;
mod contacts;
pub mod deal_properties;
pub mod deal_store;
mod deals;
mod errors;
mod gate;
mod inspect;
pub mod notify;
mod oauth;
pub mod properties;
pub mod salesperson;
pub mod spec;
mod state;

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use axum::{
    Router,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub use deal_store::Deal;
pub use notify::Signing;
pub use salesperson::NewDeal;
pub use state::SandboxState;

/// The contact properties every HubSpot portal has (a subset of the standard ones).
pub const STANDARD_PROPERTIES: &[&str] = &[
    "email",
    "firstname",
    "lastname",
    "phone",
    "mobilephone",
    "company",
    "jobtitle",
    "country",
    "city",
    "state",
    "zip",
    "address",
    "website",
    "lifecyclestage",
    "hs_lead_status",
    "industry",
    "salutation",
    "fax",
    "message",
    "numemployees",
    "annualrevenue",
    "hs_language",
    "hs_persona",
    "hubspot_owner_id",
];

/// How the sandbox behaves before any fault is set.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The private app's token, accepted as Bearer beside OAuth access tokens.
    pub token: String,
    /// The OAuth app's client id and secret, checked by `POST /oauth/v1/token`.
    pub client_id: String,
    pub client_secret: String,
    /// The refresh token the portal's install handed out.
    pub refresh_token: String,
    /// `expires_in` of access tokens: HubSpot's are 30 minutes.
    pub access_token_lifetime: Duration,
    /// Hand out a new refresh token on every refresh and retire the used one. HubSpot keeps the
    /// same refresh token; this exists to test rotation.
    pub rotate_refresh_tokens: bool,
    /// Requests per rolling window, per token.
    pub rate_limit: u32,
    /// HubSpot's window is 10 s; tests shorten it.
    pub rate_window: Duration,
    pub daily_limit: u64,
    /// Send `Retry-After` on 429s (HubSpot's habit here is unconfirmed; clients must cope without).
    pub retry_after_header: bool,
    /// Property names beyond [`STANDARD_PROPERTIES`] that the portal knows (custom properties).
    pub custom_properties: Vec<String>,
    /// Custom properties with "unique values" set, usable as `idProperty`.
    pub unique_properties: Vec<String>,
    /// Seed for the fault dice and correlation ids; `None` = random.
    pub seed: Option<u64>,
    /// The first contact id handed out; HubSpot's are large numbers, never reused.
    pub first_id: u64,
    /// The first deal id handed out.
    pub first_deal_id: u64,
    /// Custom (text) deal properties the portal has; by default tandem's three deal fields.
    pub deal_properties: Vec<String>,
    /// CRM search requests per second, per token (HubSpot: 4).
    pub search_rate_limit: u32,
    /// The deepest a search can page: HubSpot stops at 10,000 results.
    pub search_result_cap: usize,
    /// Associations per object in one batch-read answer before `paging.next`.
    pub association_page_size: usize,
    /// The portal id in webhook events.
    pub portal_id: u64,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            token: "sandbox-token".to_owned(),
            client_id: "sandbox-client-id".to_owned(),
            client_secret: "sandbox-client-secret".to_owned(),
            refresh_token: "sandbox-refresh-token".to_owned(),
            access_token_lifetime: Duration::from_secs(1800),
            rotate_refresh_tokens: false,
            rate_limit: 190,
            rate_window: Duration::from_secs(10),
            daily_limit: 1_000_000,
            retry_after_header: true,
            custom_properties: Vec::new(),
            unique_properties: Vec::new(),
            seed: None,
            first_id: 1001,
            first_deal_id: 30_001,
            deal_properties: crate::hubspot::DealFields::default()
                .named()
                .iter()
                .map(|(_, name)| (*name).to_owned())
                .collect(),
            search_rate_limit: 4,
            search_result_cap: 10_000,
            association_page_size: 500,
            portal_id: 62515,
        }
    }
}

/// Failures to inject. Probabilities are 0..=1 and rolled per request (per input for
/// `item_failure_rate`); `script` is consumed one upsert call at a time before any dice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Chance of answering a `/crm/…` request with `error_status` before doing anything.
    pub error_rate: f64,
    /// 500, 502, 503 (default), 504, 521, 522 or 523.
    pub error_status: Option<u16>,
    /// Chance of a 429 although the window has room.
    pub rate_limit_rate: f64,
    /// Added to every `/crm/…` request, in milliseconds.
    pub delay_ms: u64,
    /// Chance that a write is applied and then the connection is dropped without a response.
    pub drop_rate: f64,
    /// Chance, per input, that an upsert input fails with a VALIDATION_ERROR (→ 207).
    pub item_failure_rate: f64,
    /// Deterministic answers for the next write calls (contact upserts, deal updates), in order.
    pub script: Vec<ScriptStep>,
    /// Deterministic answers for the next CRM searches (`status` only), in order.
    pub search_script: Vec<ScriptStep>,
    /// Reseed the dice when these faults are set, for reproducible runs.
    pub seed: Option<u64>,
}

/// "The next `times` write calls answer `status`" (or apply the write and drop the connection).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptStep {
    #[serde(default = "one")]
    pub times: u32,
    /// 200 = behave normally; anything else is answered with HubSpot's body for that status
    /// and the write is not applied.
    #[serde(default = "ok")]
    pub status: u16,
    /// Apply the write, then drop the connection (the status is ignored).
    #[serde(default)]
    pub drop: bool,
    /// `Retry-After` seconds for a scripted 429/5xx.
    #[serde(default)]
    pub retry_after: Option<u64>,
}

fn one() -> u32 {
    1
}
fn ok() -> u16 {
    200
}

impl ScriptStep {
    pub fn status(status: u16, times: u32) -> Self {
        ScriptStep {
            times,
            status,
            drop: false,
            retry_after: None,
        }
    }

    pub fn drop_after_write(times: u32) -> Self {
        ScriptStep {
            times,
            status: 200,
            drop: true,
            retry_after: None,
        }
    }
}

impl Faults {
    /// Probabilities outside 0..=1 are a caller's mistake, not a coin to flip.
    pub fn check(&self) -> Result<(), String> {
        for (name, p) in [
            ("error_rate", self.error_rate),
            ("rate_limit_rate", self.rate_limit_rate),
            ("drop_rate", self.drop_rate),
            ("item_failure_rate", self.item_failure_rate),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} must be between 0 and 1, got {p}"));
            }
        }
        Ok(())
    }
}

/// One stored contact.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contact {
    pub id: String,
    pub properties: BTreeMap<String, String>,
    pub created_at: jiff::Timestamp,
    pub updated_at: jiff::Timestamp,
    /// Creates and updates applied to this contact; 1 = created and never touched again.
    pub writes: u32,
}

/// What the sandbox has seen, for assertions.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SandboxStats {
    /// Every `/crm/…` request, refused or not.
    pub requests: u64,
    pub upsert_calls: u64,
    pub inputs_received: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub unauthorized: u64,
    pub drops: u64,
    /// Inputs per upsert call, in arrival order.
    pub batch_sizes: Vec<usize>,
    /// `POST …/batch/read` calls (the connector's read before a write with conflict rules).
    pub read_calls: u64,
    /// `GET /crm/v3/properties/contacts` calls.
    pub properties_calls: u64,
    /// Successful `POST /oauth/v1/token` refreshes, and refused token requests.
    pub token_refreshes: u64,
    pub token_refused: u64,
    /// `POST …/contacts/gdpr-delete` calls, and how many of them deleted a contact.
    pub gdpr_delete_calls: u64,
    pub gdpr_deleted: u64,
    /// `POST …/deals/search` calls, and how many were refused by the search's own limit.
    pub search_calls: u64,
    pub search_rate_limited: u64,
    /// `POST …/deals/batch/update` calls and their inputs.
    pub deal_update_calls: u64,
    pub deal_inputs_received: u64,
    /// `POST /crm/v4/associations/…/batch/read` calls.
    pub association_read_calls: u64,
    /// `GET /crm/v3/properties/deals[/{name}]` calls.
    pub deal_property_calls: u64,
}

/// The whole fake as an axum router, for embedding in another server.
pub fn router(state: SandboxState) -> Router {
    let contacts = Router::new()
        .route("/", get(contacts::list))
        .route("/batch/upsert", post(contacts::upsert))
        .route("/batch/create", post(contacts::create))
        .route("/batch/read", post(contacts::read))
        .route("/gdpr-delete", post(contacts::gdpr_delete))
        .route("/{id}", get(contacts::get_one));
    let deals = Router::new()
        .route("/search", post(deals::search))
        .route("/batch/update", post(deals::batch_update))
        .route("/{id}", get(deals::get_one));
    let api = Router::new()
        .nest("/crm/v3/objects/contacts", contacts.clone())
        .nest("/crm/objects/2026-03/contacts", contacts)
        .nest("/crm/v3/objects/deals", deals.clone())
        .nest("/crm/v3/objects/0-3", deals.clone())
        .nest("/crm/objects/2026-03/deals", deals)
        .route("/crm/v3/properties/contacts", get(properties::list))
        .route("/crm/properties/2026-03/contacts", get(properties::list))
        .route("/crm/v3/properties/deals", get(deal_properties::list))
        .route("/crm/properties/2026-03/deals", get(deal_properties::list))
        .route("/crm/v3/properties/deals/{name}", get(deal_properties::one))
        .route(
            "/crm/properties/2026-03/deals/{name}",
            get(deal_properties::one),
        )
        .route(
            "/crm/v4/associations/{from}/{to}/batch/read",
            post(associations::batch_read),
        )
        .route(
            "/crm/associations/2026-03/{from}/{to}/batch/read",
            post(associations::batch_read),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gate::gate,
        ));
    Router::new()
        .merge(api)
        .route("/oauth/v1/token", post(oauth::token))
        .route("/__sandbox/contacts", get(inspect::contacts))
        .route("/__sandbox/deals", get(inspect::deals))
        .route("/__sandbox/stats", get(inspect::stats))
        .route(
            "/__sandbox/faults",
            get(inspect::get_faults).post(inspect::set_faults),
        )
        .with_state(state)
}

/// A running sandbox on a loopback port. Dropping it stops the server.
#[derive(Debug)]
pub struct HubspotSandbox {
    addr: SocketAddr,
    state: SandboxState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl HubspotSandbox {
    /// Bind `listen` (port 0 picks a free port) and serve on the current tokio runtime.
    pub async fn start(listen: SocketAddr, options: SandboxOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = SandboxState::new(options);
        let app = router(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                // A dropped handle counts as a stop request too.
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "hubspot sandbox stopped with an error");
            }
        });
        Ok(HubspotSandbox {
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

    pub fn state(&self) -> &SandboxState {
        &self.state
    }

    pub fn contacts(&self) -> Vec<Contact> {
        self.state.contacts()
    }

    pub fn contact_by_email(&self, email: &str) -> Option<Contact> {
        self.state.contact_by_email(email)
    }

    pub fn stats(&self) -> SandboxStats {
        self.state.stats()
    }

    pub fn set_faults(&self, faults: Faults) -> Result<(), String> {
        self.state.set_faults(faults)
    }

    /// Ends every OAuth access token issued so far.
    pub fn expire_tokens(&self) {
        self.state.expire_tokens()
    }

    /// A salesperson's edit in HubSpot's UI (not a tandem write); false if no such contact.
    pub fn edit(&self, email: &str, property: &str, value: &str) -> bool {
        self.state.edit(email, property, value)
    }

    /// A salesperson creates a deal; returns its id.
    pub fn create_deal(&self, deal: NewDeal) -> String {
        self.state.create_deal(deal)
    }

    /// A salesperson moves a deal (see [`SandboxState::move_deal`]).
    pub fn move_deal(
        &self,
        deal_id: &str,
        stage: &str,
        amount: Option<&str>,
        at_ms: Option<i64>,
    ) -> bool {
        self.state.move_deal(deal_id, stage, amount, at_ms)
    }

    pub fn deal(&self, deal_id: &str) -> Option<Deal> {
        self.state.deal(deal_id)
    }

    pub fn deals(&self) -> Vec<Deal> {
        self.state.deals()
    }

    /// HubSpot posts a `deal.propertyChange` webhook about `deal_id` to `hook_url`.
    pub async fn notify(&self, hook_url: &str, deal_id: &str, signing: Signing) -> Option<u16> {
        notify::notify(&self.state, hook_url, deal_id, signing).await
    }

    /// What to put in a connector's `token_url`.
    pub fn token_url(&self) -> String {
        format!("http://{}/oauth/v1/token", self.addr)
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
