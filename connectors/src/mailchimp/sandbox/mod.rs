//! A faithful fake of Mailchimp's audience members API (feature `sandbox`), for tests and the
//! demo: `GET /3.0/lists/{list_id}/members` with `since_last_changed`/`before_last_changed`
//! (exclusive, whole seconds), `status`, `sort_field`/`sort_dir`, `count` (≤ 1000) and `offset`,
//! `total_items`, member ids that are the MD5 of the lowercased email, HTTP Basic
//! (`anystring:KEY`) or Bearer auth, RFC 7807 error bodies, the 10-simultaneous-connections rule
//! (429 without `Retry-After`), and faults.
//!
//! The write side ([`write`]): `PUT …/members/{hash}` (upsert: `status_if_new` on create,
//! `merge_fields`, required merge fields unless `skip_merge_validation=true`, permanently deleted
//! emails refused with "Forgotten Email Not Subscribed"), `GET …/members/{hash}`,
//! `POST …/members/{hash}/tags` (→ 204; a tag already in the asked state is a no-op),
//! `POST …/members/{hash}/actions/delete-permanent` (→ 204, 404 when gone),
//! `GET /3.0/lists/{list_id}` and `GET …/merge-fields`. Faults apply to every endpoint;
//! `item_failure_rate` refuses a member upsert with Mailchimp's merge-field error.
//!
//! Filtering is on each member's own `last_changed`; a member added with a past timestamp models
//! a late-arriving write (stamped in the past, visible from now on). A profile update moves
//! `last_changed` to now and keeps the member's id.

mod http;
pub mod md5;
mod members;
pub mod source;
mod write;
pub mod writeback;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
};

use axum::{
    Router,
    routing::{get, post},
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::sandbox::{CrmFaults, CrmStats, ReceivedWriteback};

/// The API key the sandbox accepts (its suffix is the data centre).
pub const API_KEY: &str = "0123456789abcdef0123456789abcdef-us1";
/// The OAuth access token the sandbox accepts.
pub const OAUTH_TOKEN: &str = "sandbox-mailchimp-oauth-token";
/// The sandbox's one audience.
pub const LIST_ID: &str = "a1b2c3d4e5";
/// Mailchimp's limit on simultaneous connections per user.
pub const MAX_CONNECTIONS: u32 = 10;

/// One audience member as the sandbox holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub status: String,
    /// Active tags, in the order they were added.
    pub tags: Vec<String>,
    pub signup_ms: i64,
    /// Mailchimp's timestamps have whole seconds.
    pub last_changed_ms: i64,
    pub seq: u64,
}

/// One write call that got past auth and faults, as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteCall {
    pub method: String,
    /// The path after `/3.0`, e.g. `/lists/a1b2c3d4e5/members/0cba…/tags`.
    pub path: String,
    /// The raw query string (`skip_merge_validation=true`), empty when none.
    pub query: String,
    /// The JSON body (`null` when none).
    pub body: serde_json::Value,
}

#[derive(Debug)]
pub(crate) struct World {
    pub members: Vec<Member>,
    /// Tag changes that changed something, in arrival order.
    pub received: Vec<ReceivedWriteback>,
    pub writes: Vec<WriteCall>,
    /// Subscriber hashes deleted permanently (Mailchimp refuses to re-import them).
    pub forgotten: Vec<String>,
    /// Merge fields the audience requires (besides what the sandbox always has).
    pub required_merge_fields: Vec<String>,
    /// Faults that replace the current ones once `api_calls` reaches the count.
    pub pending_faults: Option<(u64, CrmFaults)>,
    /// The most connections open at once so far.
    pub peak_in_flight: u32,
    pub faults: CrmFaults,
    pub stats: CrmStats,
    pub rng: StdRng,
    pub seq: u64,
    pub in_flight: u32,
}

impl World {
    pub fn roll(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    pub fn instance(&mut self) -> String {
        let n: u128 = self.rng.random();
        let h = format!("{n:032x}");
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

/// Shared sandbox state.
#[derive(Clone)]
pub struct MailchimpState(Arc<Mutex<World>>);

impl MailchimpState {
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub fn router(state: MailchimpState) -> Router {
    Router::new()
        .route("/3.0/lists/{list_id}", get(write::get_list))
        .route(
            "/3.0/lists/{list_id}/merge-fields",
            get(write::merge_fields),
        )
        .route("/3.0/lists/{list_id}/members", get(members::list))
        .route(
            "/3.0/lists/{list_id}/members/{hash}",
            get(write::get_member).put(write::upsert_member),
        )
        .route(
            "/3.0/lists/{list_id}/members/{hash}/tags",
            post(write::tags),
        )
        .route(
            "/3.0/lists/{list_id}/members/{hash}/actions/delete-permanent",
            post(write::delete_permanent),
        )
        .with_state(state)
}

fn whole_seconds(ms: i64) -> i64 {
    ms.div_euclid(1000) * 1000
}

/// A running Mailchimp sandbox on a loopback port. Dropping it stops the server.
pub struct MailchimpSandbox {
    addr: SocketAddr,
    state: MailchimpState,
    _stop: oneshot::Sender<()>,
    _task: JoinHandle<()>,
}

impl MailchimpSandbox {
    pub async fn start(listen: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = MailchimpState(Arc::new(Mutex::new(World {
            members: Vec::new(),
            received: Vec::new(),
            writes: Vec::new(),
            forgotten: Vec::new(),
            required_merge_fields: Vec::new(),
            pending_faults: None,
            peak_in_flight: 0,
            faults: CrmFaults::default(),
            stats: CrmStats::default(),
            rng: StdRng::seed_from_u64(11),
            seq: 0,
            in_flight: 0,
        })));
        let app = router(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "mailchimp sandbox stopped with an error");
            }
        });
        Ok(MailchimpSandbox {
            addr,
            state,
            _stop: stop,
            _task: task,
        })
    }

    /// What to put in a connector's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/3.0", self.addr)
    }

    /// Someone joins the audience at `at_ms` (now if `None`) with `status`; returns the member
    /// id. An existing member is updated instead (same id), as Mailchimp's upsert does.
    pub fn subscribe(
        &self,
        email: &str,
        first_name: &str,
        at_ms: Option<i64>,
        status: &str,
    ) -> String {
        let at = whole_seconds(at_ms.unwrap_or_else(|| jiff::Timestamp::now().as_millisecond()));
        let id = md5::subscriber_hash(email);
        let mut w = self.state.world();
        w.seq += 1;
        let seq = w.seq;
        if let Some(m) = w.members.iter_mut().find(|m| m.id == id) {
            m.first_name = first_name.to_owned();
            m.status = status.to_owned();
            m.last_changed_ms = at;
            m.seq = seq;
        } else {
            w.members.push(Member {
                id: id.clone(),
                email: email.trim().to_owned(),
                first_name: first_name.to_owned(),
                last_name: String::new(),
                status: status.to_owned(),
                tags: vec!["signup-form".to_owned()],
                signup_ms: at,
                last_changed_ms: at,
                seq,
            });
        }
        id
    }

    /// A profile edit (merge field change) now: `last_changed` moves, the id stays.
    pub fn update_profile(&self, email: &str, first_name: &str) -> bool {
        let id = md5::subscriber_hash(email);
        let now = whole_seconds(jiff::Timestamp::now().as_millisecond());
        let mut w = self.state.world();
        w.seq += 1;
        let seq = w.seq;
        match w.members.iter_mut().find(|m| m.id == id) {
            Some(m) => {
                m.first_name = first_name.to_owned();
                m.last_changed_ms = now;
                m.seq = seq;
                true
            }
            None => false,
        }
    }

    pub fn members(&self) -> Vec<Member> {
        self.state.world().members.clone()
    }

    /// The member whose email is `email` (any case).
    pub fn member(&self, email: &str) -> Option<Member> {
        let id = md5::subscriber_hash(email);
        self.state
            .world()
            .members
            .iter()
            .find(|m| m.id == id)
            .cloned()
    }

    /// Tag changes that changed something, in arrival order (key `"{hash}:{tag}"`, adjustment
    /// `Some("inactive")` for a removed tag).
    pub fn received(&self) -> Vec<ReceivedWriteback> {
        self.state.world().received.clone()
    }

    /// Every write call that got past auth and faults, in arrival order.
    pub fn writes(&self) -> Vec<WriteCall> {
        self.state.world().writes.clone()
    }

    /// Subscriber hashes deleted permanently.
    pub fn forgotten(&self) -> Vec<String> {
        self.state.world().forgotten.clone()
    }

    /// The audience now requires merge field `tag` (e.g. `PHONE`) on new members.
    pub fn require_merge_field(&self, tag: &str) {
        self.state
            .world()
            .required_merge_fields
            .push(tag.to_owned());
    }

    /// Body lines of a `[connectors.NAME]` table for the write-back, every milestone tagged.
    pub fn writeback_toml(&self) -> String {
        format!(
            "kind = \"mailchimp\"\napi_key = \"{API_KEY}\"\nlist_id = \"{LIST_ID}\"\nbase_url = \"{}\"\nwriteback_tags = {{ qualified = \"sql\", opportunity = \"opportunity\", won = \"deal-won\", lost = \"deal-lost\" }}\ncustomer_tag = \"customer\"\ntimeout = \"5s\"\n",
            self.base_url()
        )
    }

    pub fn set_faults(&self, faults: CrmFaults) {
        let mut w = self.state.world();
        if let Some(seed) = faults.seed {
            w.rng = StdRng::seed_from_u64(seed);
        }
        w.faults = faults;
    }

    /// `faults` take effect after `calls` more API calls (to fail a batch part-way through).
    pub fn set_faults_after(&self, calls: u64, faults: CrmFaults) {
        let mut w = self.state.world();
        let at = w.stats.api_calls + calls;
        w.pending_faults = Some((at, faults));
    }

    /// The most connections that were open at once.
    pub fn peak_connections(&self) -> u32 {
        self.state.world().peak_in_flight
    }

    pub fn stats(&self) -> CrmStats {
        self.state.world().stats.clone()
    }
}
