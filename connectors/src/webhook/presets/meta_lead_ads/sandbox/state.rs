//! The sandbox's world: stored leads, the token switch, the rolling call window, injected
//! faults and counters, behind one lock.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::Instant,
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;

use super::{MetaSandboxOptions, SandboxLead};
use crate::sandbox::CrmFaults;

/// What the sandbox has seen, for assertions.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MetaStats {
    /// Every Graph request, refused or not.
    pub requests: u64,
    /// Leads answered with 200.
    pub leads_served: u64,
    /// Unknown lead ids (error 100/33).
    pub not_found: u64,
    /// Refused for the token (missing, wrong, expired) or the appsecret_proof.
    pub unauthorized: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub drops: u64,
    /// `appsecret_proof` values that matched.
    pub proofs_ok: u64,
}

pub(super) struct World {
    pub leads: BTreeMap<String, SandboxLead>,
    pub stats: MetaStats,
    pub faults: CrmFaults,
    pub token_expired: bool,
    pub calls: VecDeque<Instant>,
    pub rng: StdRng,
    pub next_id: u64,
}

impl World {
    pub fn roll(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    pub fn fbtrace_id(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_";
        (0..11)
            .map(|_| char::from(ALPHABET[self.rng.random_range(0..ALPHABET.len())]))
            .collect()
    }

    /// Calls in the rolling window after dropping the expired ones.
    pub fn window_calls(&mut self, options: &MetaSandboxOptions) -> usize {
        let now = Instant::now();
        while self
            .calls
            .front()
            .is_some_and(|t| now.duration_since(*t) >= options.rate_window)
        {
            self.calls.pop_front();
        }
        self.calls.len()
    }

    /// Minutes until the oldest call leaves the window (at least 1 when the window is full).
    pub fn regain_minutes(&self, options: &MetaSandboxOptions) -> u64 {
        let Some(oldest) = self.calls.front() else {
            return 0;
        };
        let left = options
            .rate_window
            .saturating_sub(Instant::now().duration_since(*oldest));
        left.as_secs().div_ceil(60).max(1)
    }

    /// Usage of the window, in percent.
    pub fn usage_percent(&mut self, options: &MetaSandboxOptions) -> u64 {
        let calls = self.window_calls(options) as u64;
        (calls * 100)
            .checked_div(u64::from(options.rate_limit.max(1)))
            .unwrap_or(100)
            .min(100)
    }
}

/// Shared state of one running sandbox.
#[derive(Clone)]
pub struct SandboxState {
    options: Arc<MetaSandboxOptions>,
    world: Arc<Mutex<World>>,
}

impl SandboxState {
    pub(super) fn new(options: MetaSandboxOptions) -> Self {
        let rng = match options.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        SandboxState {
            world: Arc::new(Mutex::new(World {
                leads: BTreeMap::new(),
                stats: MetaStats::default(),
                faults: CrmFaults::default(),
                token_expired: false,
                calls: VecDeque::new(),
                rng,
                next_id: options.first_lead_id,
            })),
            options: Arc::new(options),
        }
    }

    pub fn options(&self) -> &MetaSandboxOptions {
        &self.options
    }

    /// The world, even if a handler panicked while holding it (the data stays usable).
    pub(super) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stats(&self) -> MetaStats {
        self.world().stats.clone()
    }

    pub fn set_faults(&self, faults: CrmFaults) {
        let mut w = self.world();
        if let Some(seed) = faults.seed {
            w.rng = StdRng::seed_from_u64(seed);
        }
        w.faults = faults;
    }

    pub fn set_token_expired(&self, expired: bool) {
        self.world().token_expired = expired;
    }

    pub fn next_lead_id(&self) -> String {
        let mut w = self.world();
        let id = w.next_id;
        w.next_id += 1;
        id.to_string()
    }

    pub fn add_lead(&self, lead: SandboxLead) -> String {
        let id = lead.id.clone();
        self.world().leads.insert(id.clone(), lead);
        id
    }

    pub fn remove_lead(&self, id: &str) -> bool {
        self.world().leads.remove(id).is_some()
    }

    pub fn lead(&self, id: &str) -> Option<SandboxLead> {
        self.world().leads.get(id).cloned()
    }
}
