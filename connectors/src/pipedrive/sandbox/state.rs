//! The sandbox's memory: persons, leads, deals, issued tokens, per-token windows, the daily
//! budget, faults and their dice. One mutex, never held across an await.

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;
use serde_json::Value;

use crate::{pipedrive::wire::ContactValue, sandbox::CrmFaults};

use super::{SandboxOptions, deal_state::StoredDeal};

/// One stored person.
#[derive(Debug, Clone, Serialize)]
pub struct StoredPerson {
    pub id: u64,
    pub name: String,
    pub emails: Vec<ContactValue>,
    pub phones: Vec<ContactValue>,
    pub org_id: Option<u64>,
    pub owner_id: Option<u64>,
    pub custom_fields: BTreeMap<String, Value>,
    pub add_time: jiff::Timestamp,
    pub update_time: jiff::Timestamp,
    /// Creates and updates through the API; 1 = created and never touched again.
    pub writes: u32,
    #[serde(skip)]
    pub written_at: Option<Instant>,
    /// Searches that ran since the last write (for search lag by count).
    #[serde(skip)]
    pub searches_since_write: u32,
}

/// A stored v1 lead.
#[derive(Debug, Clone, Serialize)]
pub struct StoredLead {
    pub id: String,
    pub title: String,
    pub person_id: u64,
    pub add_time: jiff::Timestamp,
}

/// What the sandbox saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SandboxStats {
    /// Every API request (not the token endpoint), refused or not.
    pub api_calls: u64,
    pub searches: u64,
    pub lists: u64,
    pub reads: u64,
    pub creates: u64,
    pub updates: u64,
    pub leads: u64,
    pub field_reads: u64,
    /// `GET /api/v2/deals` (lists and `ids` reads) and `GET /api/v2/deals/{id}`.
    pub deal_reads: u64,
    pub deal_updates: u64,
    pub deal_field_reads: u64,
    pub participant_reads: u64,
    /// `DELETE /api/v2/persons/{id}` calls, and how many of them deleted a person.
    pub person_delete_calls: u64,
    pub persons_deleted: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub unauthorized: u64,
    pub drops: u64,
    pub token_refreshes: u64,
}

#[derive(Clone)]
pub struct SandboxState {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for SandboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxState").finish_non_exhaustive()
    }
}

pub(super) struct Inner {
    pub options: SandboxOptions,
    pub base_url: String,
    world: Mutex<World>,
}

pub(super) struct World {
    pub persons: BTreeMap<u64, StoredPerson>,
    pub next_id: u64,
    pub leads: Vec<StoredLead>,
    pub deals: BTreeMap<u64, StoredDeal>,
    pub next_deal_id: u64,
    pub windows: HashMap<String, VecDeque<Instant>>,
    pub search_windows: HashMap<String, VecDeque<Instant>>,
    pub budget_used: u64,
    pub writes_today: u64,
    pub faults: CrmFaults,
    /// After this many more writes, the next write answers 429 (a throttle mid-call).
    pub throttle_after_writes: Option<u32>,
    pub rng: StdRng,
    pub stats: SandboxStats,
    /// Access token → when it stops working.
    pub access_tokens: HashMap<String, Instant>,
    pub refresh_tokens: HashSet<String>,
    pub issued: u64,
}

fn rng_for(seed: Option<u64>) -> StdRng {
    match seed {
        Some(s) => StdRng::seed_from_u64(s),
        None => StdRng::from_os_rng(),
    }
}

impl SandboxState {
    pub fn new(options: SandboxOptions, base_url: String) -> Self {
        let world = World {
            persons: BTreeMap::new(),
            next_id: options.first_id,
            leads: Vec::new(),
            deals: BTreeMap::new(),
            next_deal_id: 1,
            windows: HashMap::new(),
            search_windows: HashMap::new(),
            budget_used: 0,
            writes_today: 0,
            faults: CrmFaults::default(),
            throttle_after_writes: None,
            rng: rng_for(options.seed),
            stats: SandboxStats::default(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashSet::from([options.refresh_token.clone()]),
            issued: 0,
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

    pub(super) fn world(&self) -> MutexGuard<'_, World> {
        self.inner.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn persons(&self) -> Vec<StoredPerson> {
        self.world().persons.values().cloned().collect()
    }

    pub fn person_by_email(&self, email: &str) -> Option<StoredPerson> {
        self.world()
            .persons
            .values()
            .find(|p| {
                p.emails
                    .iter()
                    .any(|e| e.value.eq_ignore_ascii_case(email.trim()))
            })
            .cloned()
    }

    pub fn leads(&self) -> Vec<StoredLead> {
        self.world().leads.clone()
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

    /// Lets `writes` more write calls through, then answers the next one with a 429, as when
    /// another app spends the window in the middle of a call.
    pub fn throttle_after_writes(&self, writes: u32) {
        self.world().throttle_after_writes = Some(writes);
    }

    /// Every access token issued so far stops working.
    pub fn expire_tokens(&self) {
        self.world().access_tokens.clear();
    }

    /// The app was uninstalled: every refresh token is dead.
    pub fn revoke_grant(&self) {
        let mut w = self.world();
        w.refresh_tokens.clear();
        w.access_tokens.clear();
    }

    /// Deletes a person (as a merge or a salesperson would).
    pub fn delete_person(&self, id: u64) {
        self.world().persons.remove(&id);
    }

    /// A salesperson edits a person in the UI: no API write counted, update time bumped.
    pub fn edit(&self, email: &str, field: &str, value: &str) {
        let mut w = self.world();
        let Some(p) = w.persons.values_mut().find(|p| {
            p.emails
                .iter()
                .any(|e| e.value.eq_ignore_ascii_case(email.trim()))
        }) else {
            return;
        };
        match field {
            "name" => p.name = value.to_owned(),
            "first_name" => {
                let last = p
                    .name
                    .split_once(' ')
                    .map(|(_, l)| l.to_owned())
                    .unwrap_or_default();
                p.name = format!("{value} {last}").trim().to_owned();
            }
            "last_name" => {
                let first = p
                    .name
                    .split_once(' ')
                    .map_or(p.name.clone(), |(f, _)| f.to_owned());
                p.name = format!("{first} {value}").trim().to_owned();
            }
            "email" => p.emails = vec![ContactValue::primary(value)],
            "phone" => {
                p.phones = if value.is_empty() {
                    vec![]
                } else {
                    vec![ContactValue::primary(value)]
                }
            }
            "org_id" => p.org_id = value.parse().ok(),
            "owner_id" => p.owner_id = value.parse().ok(),
            key => {
                if value.is_empty() {
                    p.custom_fields.insert(key.to_owned(), Value::Null);
                } else {
                    p.custom_fields
                        .insert(key.to_owned(), Value::String(value.to_owned()));
                }
            }
        }
        p.update_time = now();
    }
}

pub(super) fn now() -> jiff::Timestamp {
    let ts = jiff::Timestamp::now();
    ts.round(jiff::Unit::Second).unwrap_or(ts)
}

impl World {
    pub fn roll(&mut self, probability: f64) -> bool {
        probability > 0.0 && self.rng.random_bool(probability.clamp(0.0, 1.0))
    }

    pub fn new_token(&mut self, prefix: &str) -> String {
        self.issued += 1;
        let n: u64 = self.rng.random();
        format!("{prefix}{}:{n:016x}", self.issued)
    }

    pub fn uuid(&mut self) -> String {
        let n: u128 = self.rng.random();
        let h = format!("{:032x}", (n & !(0xf << 76)) | (0x4 << 76));
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    /// Whether search can see `p` yet.
    pub fn searchable(p: &StoredPerson, options: &SandboxOptions) -> bool {
        p.written_at
            .is_none_or(|t| t.elapsed() >= options.search_lag)
            && p.searches_since_write >= options.search_lag_searches
    }
}

/// A sliding log of request times: admit if fewer than `limit` in `window`, else the wait.
pub(super) fn admit(
    q: &mut VecDeque<Instant>,
    limit: u32,
    window: Duration,
) -> Result<u32, Duration> {
    let now = Instant::now();
    while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
        q.pop_front();
    }
    if q.len() >= limit as usize {
        let oldest = q.front().copied().unwrap_or(now);
        return Err(window.saturating_sub(now.duration_since(oldest)));
    }
    q.push_back(now);
    Ok(limit.saturating_sub(q.len() as u32))
}
