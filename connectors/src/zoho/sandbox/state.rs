//! The sandbox's memory: records per module, live access tokens, the rolling credit window,
//! in-flight calls, fault settings and their dice. One mutex, never held across an await.

use std::{
    collections::{BTreeMap, HashSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use axum::{
    Json,
    http::{HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;

use super::{CrmFaults, SandboxOptions, SandboxStats, ZohoRecord};

/// Zoho's credit window.
pub const CREDIT_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Live access tokens per refresh token before the oldest is deleted.
pub const MAX_LIVE_TOKENS: usize = 30;

/// Shared handle to the sandbox; cheap to clone.
#[derive(Clone)]
pub struct SandboxState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SandboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxState").finish_non_exhaustive()
    }
}

struct Inner {
    options: SandboxOptions,
    base_url: String,
    world: Mutex<World>,
}

pub(super) struct World {
    /// module → id → record.
    pub records: BTreeMap<String, BTreeMap<u64, ZohoRecord>>,
    pub next_id: u64,
    /// Live access tokens with their expiry, oldest first.
    pub tokens: VecDeque<(String, Instant)>,
    pub refresh_tokens: HashSet<String>,
    /// Credits spent, with when; older than the window are forgotten.
    pub credits: VecDeque<(Instant, u64)>,
    pub in_flight: u32,
    pub faults: CrmFaults,
    pub rng: StdRng,
    pub stats: SandboxStats,
}

fn rng_for(seed: Option<u64>) -> StdRng {
    match seed {
        Some(s) => StdRng::seed_from_u64(s),
        None => StdRng::from_os_rng(),
    }
}

/// Zoho's status body as a response.
pub(super) fn zoho_error(
    status: StatusCode,
    code: &str,
    message: &str,
    details: serde_json::Value,
) -> Response {
    let body = json!({"code": code, "details": details, "message": message, "status": "error"});
    (status, Json(body)).into_response()
}

pub(super) fn now() -> jiff::Timestamp {
    let ts = jiff::Timestamp::now();
    ts.round(jiff::Unit::Second).unwrap_or(ts)
}

/// Zoho writes times with the org's offset, e.g. `2026-03-01T10:00:00+05:30`; UTC here.
pub(super) fn zoho_time(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

impl SandboxState {
    pub fn new(options: SandboxOptions, base_url: String) -> Self {
        let world = World {
            records: BTreeMap::new(),
            next_id: options.first_id,
            tokens: VecDeque::new(),
            refresh_tokens: HashSet::from([options.refresh_token.clone()]),
            credits: VecDeque::new(),
            in_flight: 0,
            faults: CrmFaults::default(),
            rng: rng_for(options.seed),
            stats: SandboxStats::default(),
        };
        SandboxState {
            inner: Arc::new(Inner {
                options,
                base_url,
                world: Mutex::new(world),
            }),
        }
    }

    pub fn options(&self) -> &SandboxOptions {
        &self.inner.options
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// A poisoned lock only means a handler panicked; the data is still the best we have.
    pub(super) fn world(&self) -> MutexGuard<'_, World> {
        self.inner
            .world
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn records(&self, module: &str) -> Vec<ZohoRecord> {
        self.world()
            .records
            .get(module)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn record_by_email(&self, module: &str, email: &str) -> Option<ZohoRecord> {
        let email = email.trim();
        self.records(module).into_iter().find(|r| {
            r.fields
                .get("Email")
                .is_some_and(|e| e.trim().eq_ignore_ascii_case(email))
        })
    }

    pub fn stats(&self) -> SandboxStats {
        self.world().stats.clone()
    }

    pub fn set_faults(&self, faults: CrmFaults) {
        let mut w = self.world();
        if let Some(seed) = faults.seed {
            w.rng = StdRng::seed_from_u64(seed);
        }
        w.faults = faults;
    }

    pub fn expire_tokens(&self) {
        self.world().tokens.clear();
    }

    pub fn revoke_refresh_token(&self) {
        let mut w = self.world();
        w.refresh_tokens.clear();
        w.tokens.clear();
    }

    /// A salesperson edits a record in Zoho's UI: the value changes and Modified_Time moves,
    /// but it is not an API write. Returns false when no record has that email.
    pub fn edit(&self, module: &str, email: &str, field: &str, value: &str) -> bool {
        let mut w = self.world();
        let Some(records) = w.records.get_mut(module) else {
            return false;
        };
        let Some(r) = records.values_mut().find(|r| {
            r.fields
                .get("Email")
                .is_some_and(|e| e.eq_ignore_ascii_case(email.trim()))
        }) else {
            return false;
        };
        if value.is_empty() {
            r.fields.remove(field);
        } else {
            r.fields.insert(field.to_owned(), value.to_owned());
        }
        r.modified_time = now();
        true
    }
}

impl World {
    pub fn roll(&mut self, probability: f64) -> bool {
        probability > 0.0 && self.rng.random_bool(probability.clamp(0.0, 1.0))
    }

    pub fn token_is_live(&self, token: &str) -> bool {
        let now = Instant::now();
        self.tokens.iter().any(|(t, exp)| t == token && *exp > now)
    }

    pub fn issue_token(&mut self, lifetime: Duration) -> String {
        let token = format!(
            "1000.{:032x}.{:032x}",
            self.rng.random::<u128>(),
            self.rng.random::<u128>()
        );
        self.tokens
            .push_back((token.clone(), Instant::now() + lifetime));
        while self.tokens.len() > MAX_LIVE_TOKENS {
            self.tokens.pop_front();
        }
        token
    }

    /// Credits spent in the last 24 hours, and when the oldest of them frees up.
    pub fn credits_in_window(&mut self) -> (u64, Option<Instant>) {
        let now = Instant::now();
        while self
            .credits
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= CREDIT_WINDOW)
        {
            self.credits.pop_front();
        }
        let used = self.credits.iter().map(|(_, c)| c).sum();
        (used, self.credits.front().map(|(t, _)| *t + CREDIT_WINDOW))
    }

    pub fn charge(&mut self, credits: u64) {
        self.credits.push_back((Instant::now(), credits));
        self.stats.credits_used += credits;
    }

    pub fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }
}

/// The rate-limit headers of a credits-spent 429.
pub(super) fn credit_headers(response: &mut Response, limit: u64, reset_at: Option<Instant>) {
    let wait = reset_at
        .map(|t| t.saturating_duration_since(Instant::now()))
        .unwrap_or(CREDIT_WINDOW);
    let reset_ms = jiff::Timestamp::now().as_millisecond() + wait.as_millis() as i64;
    let h = response.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(0u64));
    h.insert("x-ratelimit-reset", HeaderValue::from(reset_ms));
}
