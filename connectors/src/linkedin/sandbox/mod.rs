//! A faithful fake of LinkedIn's Conversions API (feature `sandbox`), for tests and the demo:
//!
//! - `POST /rest/conversionEvents`: `X-RestLi-Method: BATCH_CREATE` with `{"elements":[…]}`
//!   (≤ 5,000) answered 200 `{"elements":[{"status":201}|{"status":4xx,"error":{…}}]}` in input
//!   order; without the method header a single event answered 201. Each element is checked as
//!   LinkedIn does: a known Conversions API rule, `conversionHappenedAt` within the last 90 days,
//!   at least one user id of a known `idType` (`SHA256_EMAIL` must be 64 hex digits), a
//!   well-formed `conversionValue`. Events are deduplicated on (rule, `eventId`): the duplicate
//!   answers 201 and is not counted again. Unknown JSON fields fail the request.
//! - `GET /rest/conversions/{id}`: the rule (`conversionMethod`, `enabled`).
//!
//! Every request needs `Authorization: Bearer <token>` (else 401 `INVALID_ACCESS_TOKEN`), an
//! active `LinkedIn-Version` (missing: 400 `VERSION_MISSING`; inactive: 426
//! `NONEXISTENT_VERSION`) and `X-Restli-Protocol-Version: 2.0.0`, and counts against 600
//! requests a minute (then 429 `TOO_MANY_REQUESTS`). Faults come from [`CrmFaults`].

mod events;
mod gate;
pub mod writeback;

use std::{
    collections::{BTreeSet, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::Instant,
};

use axum::{
    Router,
    routing::{get, post},
};
use rand::{SeedableRng, rngs::StdRng};
use serde_json::Value;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub use crate::sandbox::{CrmFaults, ReceivedWriteback};

use super::wire::RULE_URN_PREFIX;
use events::{conversion_events, conversion_rule};

/// The access token the sandbox accepts.
pub const TOKEN: &str = "sandbox-linkedin-capi-token";
/// The sandbox ad account's Conversions API rules, per milestone.
pub const RULES: [(&str, i64); 4] = [
    ("qualified", 2001),
    ("opportunity", 2002),
    ("won", 2003),
    ("lost", 2004),
];

/// One conversion rule of the sandbox account.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: i64,
    pub name: String,
    pub conversion_method: String,
    pub enabled: bool,
}

/// How the sandbox behaves before any fault is set.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    pub token: String,
    pub rules: Vec<Rule>,
    /// Active `LinkedIn-Version`s, inclusive.
    pub oldest_version: String,
    pub newest_version: String,
    pub requests_per_minute: u32,
    pub seed: Option<u64>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            token: TOKEN.to_owned(),
            rules: RULES
                .iter()
                .map(|(m, id)| Rule {
                    id: *id,
                    name: format!("tandem {m}"),
                    conversion_method: "CONVERSIONS_API".to_owned(),
                    enabled: true,
                })
                .collect(),
            oldest_version: "202511".to_owned(),
            newest_version: "202612".to_owned(),
            requests_per_minute: 600,
            seed: None,
        }
    }
}

/// What the sandbox has seen, for assertions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SandboxStats {
    pub api_calls: u64,
    pub batch_calls: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub unauthorized: u64,
    pub drops: u64,
    /// Events LinkedIn deduplicated on (rule, eventId).
    pub deduplicated: u64,
}

/// One request as received (the `Authorization` header left out).
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: Value,
}

/// The sandbox's memory. One mutex, never held across an await.
pub(super) struct World {
    /// (rule, eventId) of every accepted event.
    pub seen: BTreeSet<(String, String)>,
    pub received: Vec<ReceivedWriteback>,
    pub log: Vec<LoggedRequest>,
    /// Request times of the last minute.
    pub window: VecDeque<Instant>,
    pub faults: CrmFaults,
    pub rng: StdRng,
    pub stats: SandboxStats,
}

#[derive(Clone)]
pub(super) struct Shared {
    pub options: Arc<SandboxOptions>,
    world: Arc<Mutex<World>>,
}

impl Shared {
    pub(super) fn world(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock can't leave the world half-written in a way that
        // matters to a fake; keep serving.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running sandbox on a loopback port. Dropping it stops the server.
pub struct LinkedinCapiSandbox {
    addr: SocketAddr,
    shared: Shared,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LinkedinCapiSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkedinCapiSandbox")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl LinkedinCapiSandbox {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    pub async fn start(options: SandboxOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let rng = match options.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        let shared = Shared {
            options: Arc::new(options),
            world: Arc::new(Mutex::new(World {
                seen: BTreeSet::new(),
                received: Vec::new(),
                log: Vec::new(),
                window: VecDeque::new(),
                faults: CrmFaults::default(),
                rng,
                stats: SandboxStats::default(),
            })),
        };
        let app = Router::new()
            .route("/rest/conversionEvents", post(conversion_events))
            .route("/rest/conversions/{id}", get(conversion_rule))
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "linkedin conversions sandbox stopped with an error");
            }
        });
        Ok(LinkedinCapiSandbox {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The `base_url` to configure (`…/rest`).
    pub fn base_url(&self) -> String {
        format!("http://{}/rest", self.addr)
    }

    pub fn options(&self) -> &SandboxOptions {
        &self.shared.options
    }

    /// `[connectors.NAME]` lines pointing here, every milestone mapped to a rule.
    pub fn connector_toml(&self) -> String {
        let rules = RULES
            .iter()
            .map(|(m, id)| format!("{m} = \"{RULE_URN_PREFIX}{id}\""))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "kind = \"linkedin\"\naccess_token = \"{}\"\nconversions = {{ {rules} }}\nbase_url = \"{}\"\ntimeout = \"2s\"\n",
            self.shared.options.token,
            self.base_url()
        )
    }

    pub fn received(&self) -> Vec<ReceivedWriteback> {
        self.shared.world().received.clone()
    }

    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.world().log.clone()
    }

    pub fn stats(&self) -> SandboxStats {
        self.shared.world().stats.clone()
    }

    pub fn set_faults(&self, faults: CrmFaults) {
        let mut w = self.shared.world();
        if let Some(seed) = faults.seed {
            w.rng = StdRng::seed_from_u64(seed);
        }
        w.faults = faults;
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

impl Drop for LinkedinCapiSandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
