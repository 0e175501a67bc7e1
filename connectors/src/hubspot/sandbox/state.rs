//! The sandbox's memory: contacts with their email index, the per-token rolling window, the daily
//! counter, OAuth access and refresh tokens, the fault settings and their dice. One mutex, never
//! held across an await.

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use rand::{SeedableRng, rngs::StdRng};

use super::{
    Contact, Faults, SandboxOptions, SandboxStats, ScriptStep, deal_store::DealBook, errors,
};

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

pub(super) struct Inner {
    pub options: SandboxOptions,
    world: Mutex<World>,
}

pub(super) struct World {
    pub contacts: BTreeMap<u64, Contact>,
    pub by_email: HashMap<String, u64>,
    pub next_id: u64,
    windows: HashMap<String, VecDeque<Instant>>,
    pub daily_used: u64,
    pub faults: Faults,
    script: VecDeque<ScriptStep>,
    pub rng: StdRng,
    pub stats: SandboxStats,
    /// OAuth access token → when it stops working.
    pub access_tokens: HashMap<String, jiff::Timestamp>,
    /// Refresh tokens that may be exchanged.
    pub refresh_tokens: HashSet<String>,
    pub tokens_issued: u64,
    pub deals: DealBook,
    search_script: VecDeque<ScriptStep>,
    /// Per token: the CRM search's own one-second window.
    search_windows: HashMap<String, VecDeque<Instant>>,
}

/// Who a request's Bearer token belongs to.
pub(super) enum Caller {
    /// The private app: its own window and the daily cap.
    PrivateApp,
    /// An OAuth access token: the app's window in this account, no daily cap.
    OAuth,
    /// A known OAuth token past its expiry, with how long ago it expired.
    Expired {
        at: jiff::Timestamp,
        ago_secs: i64,
    },
    Unknown,
}

/// The rate-limit state after admitting a request, for the response headers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    pub max: u32,
    pub remaining: u32,
    pub daily: u64,
    pub daily_remaining: u64,
    pub interval: Duration,
    /// Private apps have a daily cap and its headers; OAuth calls have neither.
    pub has_daily: bool,
}

/// Why a request was throttled, and when it may come back.
pub(super) struct Throttled {
    pub policy: &'static str,
    pub retry_after_secs: u64,
    /// HubSpot sends its rate-limit headers on 429s too.
    pub budget: Budget,
}

fn rng_for(seed: Option<u64>) -> StdRng {
    match seed {
        Some(s) => StdRng::seed_from_u64(s),
        None => StdRng::from_os_rng(),
    }
}

impl SandboxState {
    pub fn new(options: SandboxOptions) -> Self {
        let world = World {
            contacts: BTreeMap::new(),
            by_email: HashMap::new(),
            next_id: options.first_id,
            windows: HashMap::new(),
            daily_used: 0,
            faults: Faults::default(),
            script: VecDeque::new(),
            rng: rng_for(options.seed),
            stats: SandboxStats::default(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashSet::from([options.refresh_token.clone()]),
            tokens_issued: 0,
            deals: DealBook::new(options.first_deal_id),
            search_script: VecDeque::new(),
            search_windows: HashMap::new(),
        };
        SandboxState {
            inner: Arc::new(Inner {
                options,
                world: Mutex::new(world),
            }),
        }
    }

    pub fn options(&self) -> &SandboxOptions {
        &self.inner.options
    }

    /// A poisoned lock only means a handler panicked; the data is still the best we have.
    pub(super) fn world(&self) -> MutexGuard<'_, World> {
        self.inner
            .world
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn contacts(&self) -> Vec<Contact> {
        self.world().contacts.values().cloned().collect()
    }

    pub fn contact_by_email(&self, email: &str) -> Option<Contact> {
        let w = self.world();
        let id = w.by_email.get(&email.trim().to_lowercase())?;
        w.contacts.get(id).cloned()
    }

    pub fn stats(&self) -> SandboxStats {
        self.world().stats.clone()
    }

    pub fn faults(&self) -> Faults {
        let w = self.world();
        let mut f = w.faults.clone();
        f.script = w.script.iter().cloned().collect();
        f.search_script = w.search_script.iter().cloned().collect();
        f
    }

    /// Ends the life of every OAuth access token issued so far, as their expiry would.
    pub fn expire_tokens(&self) {
        let mut w = self.world();
        let past = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1);
        for expiry in w.access_tokens.values_mut() {
            *expiry = past;
        }
    }

    /// A salesperson edits `property` of the contact with `email` in HubSpot's UI: the value
    /// changes (empty clears it) and `lastmodifieddate` moves, but it isn't a tandem write.
    /// Returns false when there is no such contact.
    pub fn edit(&self, email: &str, property: &str, value: &str) -> bool {
        let mut w = self.world();
        let Some(&n) = w.by_email.get(&email.trim().to_lowercase()) else {
            return false;
        };
        let at = jiff::Timestamp::now();
        let Some(c) = w.contacts.get_mut(&n) else {
            return false;
        };
        if value.is_empty() {
            c.properties.remove(property);
        } else {
            c.properties.insert(property.to_owned(), value.to_owned());
        }
        c.properties
            .insert("lastmodifieddate".to_owned(), at.to_string());
        c.updated_at = at;
        true
    }

    pub fn set_faults(&self, faults: Faults) -> Result<(), String> {
        faults.check()?;
        let mut w = self.world();
        if let Some(seed) = faults.seed {
            w.rng = StdRng::seed_from_u64(seed);
        }
        w.script = faults
            .script
            .iter()
            .filter(|s| s.times > 0)
            .cloned()
            .collect();
        w.search_script = faults
            .search_script
            .iter()
            .filter(|s| s.times > 0)
            .cloned()
            .collect();
        w.faults = faults;
        Ok(())
    }
}

impl World {
    pub fn correlation_id(&mut self) -> String {
        errors::correlation_id(&mut self.rng)
    }

    pub fn roll(&mut self, probability: f64) -> bool {
        use rand::Rng;
        probability > 0.0 && self.rng.random_bool(probability.clamp(0.0, 1.0))
    }

    /// Who holds `token`.
    pub fn caller(&self, token: &str, options: &SandboxOptions) -> Caller {
        if token == options.token {
            return Caller::PrivateApp;
        }
        match self.access_tokens.get(token) {
            None => Caller::Unknown,
            Some(expiry) => {
                let now = jiff::Timestamp::now();
                if *expiry > now {
                    Caller::OAuth
                } else {
                    Caller::Expired {
                        at: *expiry,
                        ago_secs: now.duration_since(*expiry).as_secs(),
                    }
                }
            }
        }
    }

    /// A fresh access token (and, when rotating, a fresh refresh token replacing `used`).
    pub fn issue_tokens(&mut self, used: &str, options: &SandboxOptions) -> (String, String) {
        use rand::Rng;
        self.tokens_issued += 1;
        let n = self.tokens_issued;
        let salt: u32 = self.rng.random();
        let access = format!("sandbox-oauth-{n}-{salt:08x}");
        let lifetime = jiff::SignedDuration::try_from(options.access_token_lifetime)
            .unwrap_or(jiff::SignedDuration::from_secs(1800));
        self.access_tokens
            .insert(access.clone(), jiff::Timestamp::now() + lifetime);
        let refresh = if options.rotate_refresh_tokens {
            self.refresh_tokens.remove(used);
            let fresh = format!("sandbox-refresh-{n}-{salt:08x}");
            self.refresh_tokens.insert(fresh.clone());
            fresh
        } else {
            used.to_owned()
        };
        (access, refresh)
    }

    /// The next scripted answer for a write call (contact upsert, deal update), if any is left.
    pub fn next_script_step(&mut self) -> Option<ScriptStep> {
        next_step(&mut self.script)
    }

    /// The next scripted answer for a CRM search, if any is left.
    pub fn next_search_step(&mut self) -> Option<ScriptStep> {
        next_step(&mut self.search_script)
    }

    /// Count a search against the token's one-second search window, or say how long to wait.
    pub fn admit_search(&mut self, token: &str, options: &SandboxOptions) -> Result<(), u64> {
        let now = Instant::now();
        let window = Duration::from_secs(1);
        let queue = self.search_windows.entry(token.to_owned()).or_default();
        while queue
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            queue.pop_front();
        }
        if queue.len() >= options.search_rate_limit as usize {
            return Err(1);
        }
        queue.push_back(now);
        Ok(())
    }

    /// Count a request against the token's rolling window and the daily cap, or refuse it.
    pub fn admit(
        &mut self,
        token: &str,
        daily: bool,
        options: &SandboxOptions,
    ) -> Result<Budget, Throttled> {
        let now = Instant::now();
        let window = options.rate_window;
        let queue = self.windows.entry(token.to_owned()).or_default();
        while queue
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            queue.pop_front();
        }
        let spent = |remaining| Budget {
            max: options.rate_limit,
            remaining,
            daily: options.daily_limit,
            daily_remaining: options.daily_limit.saturating_sub(self.daily_used),
            interval: window,
            has_daily: daily,
        };
        if daily && self.daily_used >= options.daily_limit {
            return Err(Throttled {
                policy: "DAILY",
                retry_after_secs: 3600,
                budget: spent(0),
            });
        }
        if queue.len() >= options.rate_limit as usize {
            let oldest = queue.front().copied().unwrap_or(now);
            let wait = window.saturating_sub(now.duration_since(oldest));
            return Err(Throttled {
                policy: "TEN_SECONDLY_ROLLING",
                retry_after_secs: wait.as_millis().div_ceil(1000).max(1) as u64,
                budget: spent(0),
            });
        }
        queue.push_back(now);
        if daily {
            self.daily_used += 1;
        }
        Ok(Budget {
            max: options.rate_limit,
            remaining: options
                .rate_limit
                .saturating_sub(u32::try_from(queue.len()).unwrap_or(u32::MAX)),
            daily: options.daily_limit,
            daily_remaining: options.daily_limit.saturating_sub(self.daily_used),
            interval: window,
            has_daily: daily,
        })
    }

    /// Seconds until the token's window has room again (for forced 429s).
    pub fn window_wait_secs(&self, token: &str, options: &SandboxOptions) -> u64 {
        let now = Instant::now();
        self.windows
            .get(token)
            .and_then(|q| q.front())
            .map(|t| options.rate_window.saturating_sub(now.duration_since(*t)))
            .unwrap_or(options.rate_window)
            .as_millis()
            .div_ceil(1000)
            .max(1) as u64
    }
}

fn next_step(script: &mut VecDeque<ScriptStep>) -> Option<ScriptStep> {
    let step = script.front_mut()?;
    step.times = step.times.saturating_sub(1);
    let answer = step.clone();
    if step.times == 0 {
        script.pop_front();
    }
    Some(answer)
}
