//! A faithful fake of Klaviyo's profile read API (feature `sandbox`), for tests and the demo:
//! `GET /api/profiles` and `GET /api/lists/{id}/profiles` with `Authorization: Klaviyo-API-Key`,
//! the required `revision` header, JSON:API `filter` (`greater-than` / `less-than` /
//! `greater-or-equal` / `less-or-equal` on `created`, `updated`, or `joined_group_at` for list
//! members), `sort`, `page[size]` (1..=100, default 20) and opaque `page[cursor]`s in
//! `links.next`; JSON:API `errors` bodies; burst (per second) and steady (per minute) fixed
//! windows with `RateLimit-*` headers on every admitted answer and 429 + `Retry-After` when one
//! is spent; faults from [`CrmFaults`].
//!
//! Late arrivals: a profile added with a past stamp is invisible until it is added, then listed
//! with its past `created`.

mod profiles;
pub mod source;

use std::{
    collections::BTreeMap,
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

#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The private key the account accepts.
    pub api_key: String,
    /// The list `add_lead` signs people up to.
    pub list_id: String,
    /// Per-second burst and per-minute steady limits (Get Profiles: 75/s, 700/m).
    pub burst: u32,
    pub burst_window: Duration,
    pub steady: u32,
    pub steady_window: Duration,
    pub seed: Option<u64>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            api_key: "pk_sandbox_0123456789abcdef".to_owned(),
            list_id: "SbxL1s".to_owned(),
            burst: 75,
            burst_window: Duration::from_secs(1),
            steady: 700,
            steady_window: Duration::from_secs(60),
            seed: None,
        }
    }
}

/// One stored profile.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredProfile {
    pub id: String,
    /// Everything but `created` / `updated` (email, names, location, properties…).
    pub attributes: Map<String, Value>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub visible_from_ms: i64,
    /// List id → when the profile joined it.
    pub lists: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SandboxStats {
    /// Every `/api/…` request, refused or not.
    pub requests: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub unauthorized: u64,
    pub drops: u64,
    pub profiles_served: u64,
}

pub(crate) struct Window {
    pub start: Instant,
    pub used: u32,
}

pub(crate) struct World {
    pub profiles: Vec<StoredProfile>,
    pub next_id: u64,
    pub faults: CrmFaults,
    pub stats: SandboxStats,
    pub burst: Window,
    pub steady: Window,
    pub rng: StdRng,
    pub error_seq: u64,
}

#[derive(Clone)]
pub struct SandboxState {
    options: Arc<SandboxOptions>,
    base_url: Arc<str>,
    world: Arc<Mutex<World>>,
}

pub(crate) fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl SandboxState {
    pub fn new(options: SandboxOptions, base_url: &str) -> Self {
        let rng = match options.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        let now = Instant::now();
        let world = World {
            profiles: Vec::new(),
            next_id: 1,
            faults: CrmFaults::default(),
            stats: SandboxStats::default(),
            burst: Window {
                start: now,
                used: 0,
            },
            steady: Window {
                start: now,
                used: 0,
            },
            rng,
            error_seq: 0,
        };
        SandboxState {
            options: Arc::new(options),
            base_url: Arc::from(base_url.trim_end_matches('/')),
            world: Arc::new(Mutex::new(world)),
        }
    }

    pub fn options(&self) -> &SandboxOptions {
        &self.options
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a profile (and, with `list`, its joining that list at the same moment); a past
    /// `created_ms` models a late write, listed only from now on. Returns its id.
    pub fn add_profile(
        &self,
        attributes: Map<String, Value>,
        list: Option<&str>,
        created_ms: Option<i64>,
    ) -> String {
        let now = now_ms();
        let mut w = self.world();
        // Klaviyo ids are 26-character ULIDs; these sort by creation like them.
        let id = format!("01HSBX{:020}", w.next_id);
        w.next_id += 1;
        let created = created_ms.unwrap_or(now);
        let mut lists = BTreeMap::new();
        if let Some(l) = list {
            lists.insert(l.to_owned(), created);
        }
        w.profiles.push(StoredProfile {
            id: id.clone(),
            attributes,
            created_ms: created,
            updated_ms: created,
            visible_from_ms: now,
            lists,
        });
        id
    }

    /// An update through Klaviyo's UI or API: sets a custom property, bumps `updated`.
    pub fn set_property(&self, id: &str, name: &str, value: Value) -> bool {
        let now = now_ms();
        let mut w = self.world();
        let Some(p) = w.profiles.iter_mut().find(|p| p.id == id) else {
            return false;
        };
        let props = p
            .attributes
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = props {
            m.insert(name.to_owned(), value);
        }
        p.updated_ms = now.max(p.updated_ms + 1);
        true
    }

    pub fn profiles(&self) -> Vec<StoredProfile> {
        self.world().profiles.clone()
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

pub fn router(state: SandboxState) -> Router {
    Router::new()
        .route("/api/profiles", get(profiles::all))
        .route("/api/profiles/", get(profiles::all))
        .route("/api/lists/{id}/profiles", get(profiles::of_list))
        .route("/api/lists/{id}/profiles/", get(profiles::of_list))
        .with_state(state)
}

/// A running sandbox on a loopback port. Dropping it stops the server.
pub struct KlaviyoSandbox {
    addr: SocketAddr,
    state: SandboxState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl KlaviyoSandbox {
    pub async fn start(listen: SocketAddr, options: SandboxOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = SandboxState::new(options, &format!("http://{addr}"));
        let app = router(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "klaviyo sandbox stopped with an error");
            }
        });
        Ok(KlaviyoSandbox {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> &SandboxState {
        &self.state
    }

    pub fn stats(&self) -> SandboxStats {
        self.state.stats()
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for KlaviyoSandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
