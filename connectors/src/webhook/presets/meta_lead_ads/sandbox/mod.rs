//! A faithful fake of the Graph API's lead endpoint (feature `sandbox`), for tests and the demo:
//! `GET /{version}/{leadgen-id}?fields=…` with Graph's response shape (`created_time` as
//! `2024-06-01T12:00:00+0000`, `field_data[{name, values[]}]`, ad ids as strings, only the
//! requested fields), Graph's error bodies (`{"error":{message,type,code,error_subcode,
//! fbtrace_id}}`: 104 no token, 190 bad token, 190/463 expired, 100/33 unknown lead, 100 unknown
//! field or bad `appsecret_proof`, 80005/4 throttled, 2 transient), `X-App-Usage` and
//! `X-Business-Use-Case-Usage` on every authenticated answer, a rolling call window, and fault
//! injection through [`CrmFaults`] (`rate_limit_next`, `server_error_next`,
//! `server_error_rate`, `drop_after_write_next` = drop the connection instead of answering,
//! `delay_ms`, `seed`; `item_failure_rate` has no meaning for a single read and is ignored).
//!
//! It also plays Meta's webhook side for tests: [`MetaSandbox::notification_body`] builds the
//! Page notification for stored leads and [`MetaSandbox::sign`] its `X-Hub-Signature-256`.

mod graph_api;
mod state;

use std::{net::SocketAddr, time::Duration};

use async_trait::async_trait;
use axum::{Router, routing::get};
use serde_json::json;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub use state::{MetaStats, SandboxState};

use crate::sandbox::{CrmFaults, CrmStats, SourceSandbox};

/// How the sandbox behaves before any fault is set.
#[derive(Debug, Clone)]
pub struct MetaSandboxOptions {
    /// The Page access token the Graph endpoint accepts.
    pub access_token: String,
    /// The app secret: signs notifications and checks `appsecret_proof`.
    pub app_secret: String,
    /// The verify token for the subscription handshake (see [`MetaSandbox::handshake_query`]).
    pub verify_token: String,
    /// The Page the leads belong to.
    pub page_id: String,
    /// The version segment of [`MetaSandbox::base_url`]; any `/vN.0/` is served.
    pub api_version: String,
    /// Refuse calls without `appsecret_proof` (the app setting "Require App Secret").
    pub require_appsecret_proof: bool,
    /// Calls per rolling window before Graph throttles.
    pub rate_limit: u32,
    pub rate_window: Duration,
    /// `estimated_time_to_regain_access` (minutes) sent with a forced throttle.
    pub regain_access_minutes: u64,
    /// The code of throttling answers: 80005 (lead retrieval BUC, default) or 4 (app).
    pub throttle_code: i64,
    /// Seed for fbtrace ids and the fault dice; `None` = random.
    pub seed: Option<u64>,
    /// The first id [`MetaSandbox::next_lead_id`] hands out.
    pub first_lead_id: u64,
}

impl Default for MetaSandboxOptions {
    fn default() -> Self {
        MetaSandboxOptions {
            access_token: "sandbox-page-access-token".to_owned(),
            app_secret: "sandbox-app-secret".to_owned(),
            verify_token: "sandbox-verify-token".to_owned(),
            page_id: "100000000000001".to_owned(),
            api_version: "v21.0".to_owned(),
            require_appsecret_proof: false,
            rate_limit: 4800,
            rate_window: Duration::from_secs(3600),
            regain_access_minutes: 1,
            throttle_code: 80_005,
            seed: None,
            first_lead_id: 400_000_000_000_001,
        }
    }
}

/// One lead as the sandbox stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxLead {
    pub id: String,
    pub form_id: String,
    /// `None`: the sandbox's page.
    pub page_id: Option<String>,
    pub ad_id: Option<String>,
    pub adset_id: Option<String>,
    pub campaign_id: Option<String>,
    pub ad_name: Option<String>,
    pub adset_name: Option<String>,
    pub campaign_name: Option<String>,
    /// `(question key, values)`, in form order.
    pub field_data: Vec<(String, Vec<String>)>,
    /// Unix seconds.
    pub created_time: i64,
    pub is_organic: bool,
    /// `fb` or `ig`.
    pub platform: String,
}

impl SandboxLead {
    /// An organic lead on `form_id`, created now, with no answers yet.
    pub fn new(id: impl Into<String>, form_id: impl Into<String>) -> Self {
        SandboxLead {
            id: id.into(),
            form_id: form_id.into(),
            page_id: None,
            ad_id: None,
            adset_id: None,
            campaign_id: None,
            ad_name: None,
            adset_name: None,
            campaign_name: None,
            field_data: Vec::new(),
            created_time: jiff::Timestamp::now().as_second(),
            is_organic: true,
            platform: "fb".to_owned(),
        }
    }

    /// One answer.
    pub fn field(mut self, name: &str, value: &str) -> Self {
        self.field_data
            .push((name.to_owned(), vec![value.to_owned()]));
        self
    }

    /// A multiple-choice answer.
    pub fn values(mut self, name: &str, values: &[&str]) -> Self {
        self.field_data.push((
            name.to_owned(),
            values.iter().map(|v| (*v).to_owned()).collect(),
        ));
        self
    }

    /// The ad that surfaced the form: no longer organic.
    pub fn ad(mut self, ad_id: &str, adset_id: &str, campaign_id: &str) -> Self {
        self.ad_id = Some(ad_id.to_owned());
        self.adset_id = Some(adset_id.to_owned());
        self.campaign_id = Some(campaign_id.to_owned());
        self.is_organic = false;
        self
    }

    pub fn names(mut self, ad: &str, adset: &str, campaign: &str) -> Self {
        self.ad_name = Some(ad.to_owned());
        self.adset_name = Some(adset.to_owned());
        self.campaign_name = Some(campaign.to_owned());
        self
    }

    pub fn created(mut self, unix_seconds: i64) -> Self {
        self.created_time = unix_seconds;
        self
    }

    pub fn platform(mut self, platform: &str) -> Self {
        self.platform = platform.to_owned();
        self
    }
}

/// The whole fake as an axum router, for embedding in another server.
pub fn router(state: SandboxState) -> Router {
    Router::new()
        .route("/{version}/{id}", get(graph_api::lead_versioned))
        .route("/{id}", get(graph_api::lead_unversioned))
        .with_state(state)
}

/// A running sandbox on a loopback port. Dropping it stops the server.
#[derive(Debug)]
pub struct MetaSandbox {
    addr: SocketAddr,
    state: SandboxState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SandboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxState").finish_non_exhaustive()
    }
}

impl MetaSandbox {
    /// Bind `listen` (port 0 picks a free port) and serve on the current tokio runtime.
    pub async fn start(listen: SocketAddr, options: MetaSandboxOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = SandboxState::new(options);
        let app = router(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "meta sandbox stopped with an error");
            }
        });
        Ok(MetaSandbox {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What to put in the connector's `api_base_url` (with the version segment).
    pub fn base_url(&self) -> String {
        format!("http://{}/{}", self.addr, self.state.options().api_version)
    }

    pub fn options(&self) -> &MetaSandboxOptions {
        self.state.options()
    }

    pub fn state(&self) -> &SandboxState {
        &self.state
    }

    /// A fresh Graph-looking lead id.
    pub fn next_lead_id(&self) -> String {
        self.state.next_lead_id()
    }

    /// Stores a lead (as a person submitting the form); returns its leadgen id.
    pub fn add_lead(&self, lead: SandboxLead) -> String {
        self.state.add_lead(lead)
    }

    /// Deletes a lead (Meta deletes leads after 90 days, or on a data deletion request).
    pub fn remove_lead(&self, id: &str) -> bool {
        self.state.remove_lead(id)
    }

    pub fn lead(&self, id: &str) -> Option<SandboxLead> {
        self.state.lead(id)
    }

    pub fn stats(&self) -> MetaStats {
        self.state.stats()
    }

    pub fn set_faults(&self, faults: CrmFaults) {
        self.state.set_faults(faults)
    }

    /// From now on the access token answers 190/463 "Session has expired".
    pub fn expire_token(&self) {
        self.state.set_token_expired(true)
    }

    /// A new token was pasted in: the same token works again.
    pub fn restore_token(&self) {
        self.state.set_token_expired(false)
    }

    /// The Page webhook body Meta would POST for these leads: one entry per page, one `leadgen`
    /// change per lead. Unknown ids get a change with only `leadgen_id` and the sandbox's page.
    pub fn notification_body(&self, leadgen_ids: &[&str]) -> Vec<u8> {
        let options = self.state.options();
        let now = jiff::Timestamp::now().as_second();
        let mut entries: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
        for id in leadgen_ids {
            let lead = self.state.lead(id);
            let page = lead
                .as_ref()
                .and_then(|l| l.page_id.clone())
                .unwrap_or_else(|| options.page_id.clone());
            let mut value = json!({ "leadgen_id": id, "page_id": page });
            if let Some(l) = &lead {
                value["form_id"] = l.form_id.clone().into();
                value["created_time"] = l.created_time.into();
                if let Some(ad) = &l.ad_id {
                    value["ad_id"] = ad.clone().into();
                }
                if let Some(adset) = &l.adset_id {
                    value["adgroup_id"] = adset.clone().into();
                }
            }
            let change = json!({ "field": "leadgen", "value": value });
            match entries.iter_mut().find(|(p, _)| *p == page) {
                Some((_, changes)) => changes.push(change),
                None => entries.push((page, vec![change])),
            }
        }
        let entry: Vec<_> = entries
            .into_iter()
            .map(|(page, changes)| json!({ "id": page, "time": now, "changes": changes }))
            .collect();
        json!({ "object": "page", "entry": entry })
            .to_string()
            .into_bytes()
    }

    /// `sha256=<hex HMAC-SHA256(app secret, body)>`, the `X-Hub-Signature-256` value.
    pub fn sign(&self, body: &[u8]) -> String {
        super::sign(self.state.options().app_secret.as_bytes(), body)
    }

    /// The query string of Meta's subscription handshake with the right verify token.
    pub fn handshake_query(&self, challenge: &str) -> String {
        format!(
            "hub.mode=subscribe&hub.challenge={challenge}&hub.verify_token={}",
            self.state.options().verify_token
        )
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

#[async_trait]
impl SourceSandbox for MetaSandbox {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn connector_toml(&self) -> String {
        let o = self.state.options();
        format!(
            "kind = \"webhook\"\npreset = \"meta_lead_ads\"\nsecret = {:?}\nverify_token = {:?}\naccess_token = {:?}\napi_base_url = {:?}\n",
            o.app_secret,
            o.verify_token,
            o.access_token,
            self.base_url()
        )
    }

    fn add_lead(&self, email: &str, first_name: &str, at_ms: Option<i64>) -> String {
        let id = self.state.next_lead_id();
        let mut lead = SandboxLead::new(id, "500000000000001")
            .field("email", email)
            .field("first_name", first_name);
        if let Some(ms) = at_ms {
            lead = lead.created(ms.div_euclid(1000));
        }
        self.state.add_lead(lead)
    }

    fn set_faults(&self, faults: CrmFaults) {
        self.state.set_faults(faults)
    }

    fn stats(&self) -> CrmStats {
        let s = self.state.stats();
        CrmStats {
            api_calls: s.requests,
            rate_limited: s.rate_limited,
            token_refreshes: 0,
        }
    }
}
