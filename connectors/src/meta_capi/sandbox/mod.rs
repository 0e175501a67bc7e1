//! A faithful fake of Meta's Conversions API (feature `sandbox`), for tests and the demo:
//! `POST /{version}/{dataset_id}/events` (`access_token` in the query, the JSON body or a Bearer
//! header; `{"data":[…]}` with `data` as an array or as JSON text; `test_event_code`) answering
//! `{"events_received":N,"messages":[],"fbtrace_id":"…"}`, and `GET /{version}/{dataset_id}`.
//!
//! Meta's rules, enforced the way Meta does: at most 1,000 events; a request with any event
//! older than 7 days (62 for `physical_store`) fails as a whole and nothing in it is processed;
//! every event needs `event_name`, `event_time` (Unix seconds), a known `action_source` and
//! customer information to match on; contact fields (`em`, `ph`, `fn`, `ln`, …) must be SHA-256
//! hex, `lead_id` a number; dedup on `event_id` + `event_name` (a duplicate is counted in
//! `events_received` and silently dropped). Errors use Graph's envelope: 104 no token, 190 bad
//! token, 190/463 expired token, 100/33 unknown dataset, 100 with `error_user_title` /
//! `error_user_msg` for an invalid event (2804003 = too old), 4 throttled (`X-App-Usage`),
//! 2 transient. Faults through [`CrmFaults`]: `rate_limit_next`, `server_error_next`,
//! `server_error_rate`, `drop_after_write_next` (processed, then the connection drops),
//! `delay_ms`, and `item_failure_rate` (one event refused, which fails the whole request, as
//! at Meta).

mod events;
pub mod writeback;

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
};

use axum::{
    Router,
    routing::{get, post},
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::Value;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::sandbox::{CrmFaults, CrmStats, ReceivedWriteback};

/// The access token the sandbox accepts.
pub const ACCESS_TOKEN: &str = "sandbox-meta-capi-token";
/// The sandbox's one dataset.
pub const DATASET_ID: &str = "1234567890123456";

#[derive(Debug)]
pub(crate) struct World {
    pub received: Vec<ReceivedWriteback>,
    /// Every accepted event as posted (after dedup).
    pub accepted: Vec<Value>,
    /// Every request body that reached validation, accepted or not.
    pub requests: Vec<Value>,
    pub seen: HashSet<(String, String)>,
    pub faults: CrmFaults,
    pub stats: CrmStats,
    pub rng: StdRng,
    pub tokens_expired: bool,
}

impl World {
    pub fn roll(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    /// An `fbtrace_id`-looking token.
    pub fn trace(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
        (0..11)
            .map(|_| char::from(ALPHABET[self.rng.random_range(0..ALPHABET.len())]))
            .collect()
    }
}

/// Shared sandbox state.
#[derive(Clone)]
pub struct MetaCapiState(Arc<Mutex<World>>);

impl MetaCapiState {
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub fn router(state: MetaCapiState) -> Router {
    Router::new()
        .route("/{version}/{dataset_id}/events", post(events::post_events))
        .route("/{version}/{dataset_id}", get(events::get_dataset))
        .with_state(state)
}

/// A running Conversions API sandbox on a loopback port. Dropping it stops the server.
pub struct MetaCapiSandbox {
    addr: SocketAddr,
    state: MetaCapiState,
    _stop: oneshot::Sender<()>,
    _task: JoinHandle<()>,
}

impl MetaCapiSandbox {
    pub async fn start(listen: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = MetaCapiState(Arc::new(Mutex::new(World {
            received: Vec::new(),
            accepted: Vec::new(),
            requests: Vec::new(),
            seen: HashSet::new(),
            faults: CrmFaults::default(),
            stats: CrmStats::default(),
            rng: StdRng::seed_from_u64(9),
            tokens_expired: false,
        })));
        let app = router(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "meta capi sandbox stopped with an error");
            }
        });
        Ok(MetaCapiSandbox {
            addr,
            state,
            _stop: stop,
            _task: task,
        })
    }

    /// What to put in a connector's `base_url` (the version is part of each path).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Body lines of a `[connectors.NAME]` table pointing here, every milestone configured.
    pub fn connector_toml(&self) -> String {
        format!(
            "kind = \"meta_capi\"\ndataset_id = \"{DATASET_ID}\"\naccess_token = \"{ACCESS_TOKEN}\"\nbase_url = \"{}\"\nevent_names = {{ qualified = \"Marketing Qualified Lead\", opportunity = \"Sales Opportunity\", won = \"Converted\", lost = \"Lost\" }}\ntimeout = \"5s\"\n",
            self.base_url()
        )
    }

    /// Every event accepted so far, after Meta's dedup, in arrival order.
    pub fn received(&self) -> Vec<ReceivedWriteback> {
        self.state.world().received.clone()
    }

    /// The accepted events exactly as posted.
    pub fn accepted_events(&self) -> Vec<Value> {
        self.state.world().accepted.clone()
    }

    /// Every request body that reached validation (accepted or refused), in arrival order.
    pub fn requests(&self) -> Vec<Value> {
        self.state.world().requests.clone()
    }

    pub fn set_faults(&self, faults: CrmFaults) {
        let mut w = self.state.world();
        if let Some(seed) = faults.seed {
            w.rng = StdRng::seed_from_u64(seed);
        }
        w.faults = faults;
    }

    pub fn stats(&self) -> CrmStats {
        self.state.world().stats.clone()
    }

    /// The access token expires, as a user token does after its 60 days.
    pub fn expire_tokens(&self) {
        self.state.world().tokens_expired = true;
    }
}
