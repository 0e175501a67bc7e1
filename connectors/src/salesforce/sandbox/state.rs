//! The sandbox org's memory: records, live sessions and refresh tokens, the daily counter, query
//! cursors, faults and their dice. One mutex, never held across an await.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard},
    time::Instant,
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Map, Value};

use super::{CrmFaults, SandboxOptions, SandboxStats, SfRecord};

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
    pub records: BTreeMap<String, SfRecord>,
    next_id: u64,
    pub sessions: HashMap<String, Instant>,
    pub refresh_tokens: HashSet<String>,
    pub daily_used: u64,
    pub faults: CrmFaults,
    pub rng: StdRng,
    pub stats: SandboxStats,
    /// Query cursor → the rows still to hand out.
    pub cursors: HashMap<String, Vec<Map<String, Value>>>,
    next_cursor: u64,
}

fn rng_for(seed: Option<u64>) -> StdRng {
    match seed {
        Some(s) => StdRng::seed_from_u64(s),
        None => StdRng::from_os_rng(),
    }
}

pub(super) fn now() -> jiff::Timestamp {
    let ts = jiff::Timestamp::now();
    ts.round(jiff::Unit::Millisecond).unwrap_or(ts)
}

/// Salesforce's datetime format: `2013-05-20T20:49:32.000+0000`.
pub(super) fn sf_datetime(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S.%3f+0000").to_string()
}

impl SandboxState {
    pub fn new(options: SandboxOptions, base_url: String) -> Self {
        let world = World {
            records: BTreeMap::new(),
            next_id: 1,
            sessions: HashMap::new(),
            refresh_tokens: HashSet::from([options.refresh_token.clone()]),
            daily_used: options.daily_used,
            faults: CrmFaults::default(),
            rng: rng_for(options.seed),
            stats: SandboxStats::default(),
            cursors: HashMap::new(),
            next_cursor: 1,
        };
        SandboxState {
            inner: Arc::new(Inner {
                options,
                base_url,
                world: Mutex::new(world),
            }),
        }
    }

    pub(super) fn options(&self) -> &SandboxOptions {
        &self.inner.options
    }

    pub(super) fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// A poisoned lock only means a handler panicked; the data is still the best we have.
    pub(super) fn world(&self) -> MutexGuard<'_, World> {
        self.inner
            .world
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn records(&self) -> Vec<SfRecord> {
        self.world().records.values().cloned().collect()
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

    /// Every session issued so far becomes invalid (the next call answers INVALID_SESSION_ID).
    pub fn expire_tokens(&self) {
        self.world().sessions.clear();
    }

    /// The grant is revoked (user removed the app, or an admin revoked it): refreshes fail.
    pub fn revoke_refresh_tokens(&self) {
        let mut w = self.world();
        w.refresh_tokens.clear();
        w.sessions.clear();
    }

    /// Sets the daily counter, e.g. close to the limit.
    pub fn set_daily_used(&self, used: u64) {
        self.world().daily_used = used;
    }

    /// A record created in the UI (not through the API; no write counted). Returns its id.
    pub fn insert(&self, object: &str, fields: &[(&str, &str)]) -> String {
        let mut w = self.world();
        let fields = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let id = w.create(object, fields);
        if let Some(r) = w.records.get_mut(&id) {
            r.writes = 0;
        }
        id
    }

    /// Changes a field as a salesperson would in the UI (not counted as an API write).
    pub fn edit(&self, id: &str, field: &str, value: &str) {
        let mut w = self.world();
        if let Some(r) = w.records.get_mut(id) {
            if value.is_empty() {
                r.fields.remove(field);
            } else {
                r.fields.insert(field.to_owned(), value.to_owned());
            }
            r.modified_at = now();
        }
    }
}

impl World {
    pub fn roll(&mut self, probability: f64) -> bool {
        probability > 0.0 && self.rng.random_bool(probability.clamp(0.0, 1.0))
    }

    pub fn random_token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..len)
            .map(|_| ALPHABET[self.rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    }

    /// Stores a new record with an 18-character id of the object's key prefix.
    pub fn create(&mut self, object: &str, fields: BTreeMap<String, String>) -> String {
        let prefix = super::schema::key_prefix(object);
        let id = format!("{prefix}Dn00000{:05}AAA", self.next_id);
        self.next_id += 1;
        let ts = now();
        self.records.insert(
            id.clone(),
            SfRecord {
                id: id.clone(),
                object: object.to_owned(),
                fields,
                created_at: ts,
                modified_at: ts,
                writes: 1,
            },
        );
        id
    }

    pub fn update(&mut self, id: &str, fields: BTreeMap<String, String>) {
        if let Some(r) = self.records.get_mut(id) {
            for (k, v) in fields {
                if v.is_empty() {
                    r.fields.remove(&k);
                } else {
                    r.fields.insert(k, v);
                }
            }
            // Opportunity stamps are whole seconds, like the rest of the sales side.
            r.modified_at = if r.object == "Opportunity" {
                super::deals::stamp(None)
            } else {
                now()
            };
            r.writes += 1;
        }
    }

    /// Ids of `object` records whose `field` equals `value`, ignoring case (as SOQL and external
    /// ids compare text).
    pub fn find(&self, object: &str, field: &str, value: &str) -> Vec<String> {
        self.records
            .values()
            .filter(|r| r.object == object)
            .filter(|r| {
                r.fields
                    .get(field)
                    .is_some_and(|v| v.eq_ignore_ascii_case(value))
            })
            .map(|r| r.id.clone())
            .collect()
    }

    pub fn new_cursor(&mut self, rows: Vec<Map<String, Value>>) -> String {
        let id = format!("01gSB{:010}", self.next_cursor);
        self.next_cursor += 1;
        self.cursors.insert(id.clone(), rows);
        id
    }
}
