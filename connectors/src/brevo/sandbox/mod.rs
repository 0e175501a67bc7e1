//! A faithful fake of Brevo's contacts read API (feature `sandbox`), for tests and the demo:
//! `GET /v3/contacts` with the `api-key` header, `limit` (≤ 1000, default 50) / `offset` paging,
//! `sort` (by creation date, default `desc`), `createdSince` / `modifiedSince` (strictly after,
//! RFC 3339 with a zone), `listIds`; `{"contacts":[…],"count":N}` answers; Brevo's
//! `{"code","message"}` error bodies; a fixed per-second window with the `x-sib-ratelimit-*`
//! headers on every answer and 429s when it is spent; faults from [`CrmFaults`].
//!
//! Late arrivals: a contact added with a past stamp is invisible until it is added, then listed
//! with its past `createdAt`, as a delayed write in Brevo would be.
//!
//! Sandbox-only endpoint (unauthenticated): `GET /__sandbox/stats` ([`SandboxStats`]).

mod contacts;
pub mod source;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use axum::{Router, routing::get};
use rand::{SeedableRng, rngs::StdRng};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub use crate::sandbox::CrmFaults;

/// How the sandbox behaves before any fault is set.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The API key the account accepts.
    pub api_key: String,
    /// Requests per window (Brevo's contacts family: 10 per second).
    pub rate_limit: u32,
    pub rate_window: Duration,
    /// The first contact id handed out.
    pub first_id: u64,
    pub seed: Option<u64>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            api_key: "xkeysib-sandbox-key".to_owned(),
            rate_limit: 10,
            rate_window: Duration::from_secs(1),
            first_id: 1,
            seed: None,
        }
    }
}

/// One stored contact.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredContact {
    pub id: u64,
    pub email: String,
    pub attributes: Map<String, Value>,
    pub list_ids: Vec<u64>,
    pub email_blacklisted: bool,
    pub created_ms: i64,
    pub modified_ms: i64,
    /// Not listed before this moment (unix ms): a late-arriving write.
    pub visible_from_ms: i64,
}

/// What the sandbox has seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SandboxStats {
    /// Every `/v3/…` request, refused or not.
    pub requests: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub unauthorized: u64,
    pub drops: u64,
    /// Contacts listed in successful answers.
    pub contacts_served: u64,
}

pub(crate) struct World {
    pub contacts: Vec<StoredContact>,
    pub next_id: u64,
    pub faults: CrmFaults,
    pub stats: SandboxStats,
    pub window_start: Instant,
    pub window_used: u32,
    pub rng: StdRng,
}

/// The sandbox's shared state.
#[derive(Clone)]
pub struct SandboxState {
    options: Arc<SandboxOptions>,
    world: Arc<Mutex<World>>,
}

pub(crate) fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl SandboxState {
    pub fn new(options: SandboxOptions) -> Self {
        let rng = match options.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        let world = World {
            contacts: Vec::new(),
            next_id: options.first_id,
            faults: CrmFaults::default(),
            stats: SandboxStats::default(),
            window_start: Instant::now(),
            window_used: 0,
            rng,
        };
        SandboxState {
            options: Arc::new(options),
            world: Arc::new(Mutex::new(world)),
        }
    }

    pub fn options(&self) -> &SandboxOptions {
        &self.options
    }

    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        // A panicked holder can't leave the plain data inconsistent; keep serving.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a contact as Brevo would on a form signup; `created_ms` in the past models a late
    /// write (listed only from now on). Returns its id.
    pub fn add_contact(
        &self,
        email: &str,
        attributes: Map<String, Value>,
        list_ids: Vec<u64>,
        created_ms: Option<i64>,
    ) -> u64 {
        let now = now_ms();
        let mut w = self.world();
        let id = w.next_id;
        w.next_id += 1;
        let created = created_ms.unwrap_or(now);
        w.contacts.push(StoredContact {
            id,
            email: email.to_owned(),
            attributes,
            list_ids,
            email_blacklisted: false,
            created_ms: created,
            modified_ms: created,
            visible_from_ms: now,
        });
        id
    }

    /// An edit in Brevo's UI: sets an attribute and bumps `modifiedAt` to now.
    pub fn edit(&self, id: u64, attribute: &str, value: Value) -> bool {
        let now = now_ms();
        let mut w = self.world();
        match w.contacts.iter_mut().find(|c| c.id == id) {
            Some(c) => {
                c.attributes.insert(attribute.to_owned(), value);
                c.modified_ms = now.max(c.modified_ms + 1);
                true
            }
            None => false,
        }
    }

    /// Removes a contact (Brevo's delete), shifting later offsets.
    pub fn delete(&self, id: u64) -> bool {
        let mut w = self.world();
        let before = w.contacts.len();
        w.contacts.retain(|c| c.id != id);
        w.contacts.len() != before
    }

    pub fn contacts(&self) -> Vec<StoredContact> {
        self.world().contacts.clone()
    }

    pub fn set_faults(&self, faults: CrmFaults) {
        let mut w = self.world();
        if let Some(seed) = faults.seed {
            w.rng = StdRng::seed_from_u64(seed);
        }
        w.faults = faults;
    }

    pub fn stats(&self) -> SandboxStats {
        self.world().stats.clone()
    }
}

/// The fake as an axum router.
pub fn router(state: SandboxState) -> Router {
    Router::new()
        .route("/v3/contacts", get(contacts::list))
        .route("/__sandbox/stats", get(contacts::stats))
        .with_state(state)
}

/// A running sandbox on a loopback port. Dropping it stops the server.
pub struct BrevoSandbox {
    addr: SocketAddr,
    state: SandboxState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl BrevoSandbox {
    /// Bind `listen` (port 0 picks a free port) and serve on the current tokio runtime.
    pub async fn start(listen: SocketAddr, options: SandboxOptions) -> std::io::Result<Self> {
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
                tracing::warn!(error = %e, "brevo sandbox stopped with an error");
            }
        });
        Ok(BrevoSandbox {
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

impl Drop for BrevoSandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
