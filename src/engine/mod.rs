//! The delivery engine: per destination, a few workers claim due outbox rows under a lease, fill a
//! batch (up to the connector's maximum, or what arrives within a short linger), wait on the
//! destination's rate limiter, call the connector and settle each row by its own result.
//!
//! - [`limits`]: GCRA quota math and vendor-imposed pauses.
//! - [`retry`]: backoff with full jitter and the retry budget.
//! - [`worker`]: the claim → call → settle loop and the error classes' consequences.
//! - `sources`, `outcomes`: the polled sides (leads from marketing platforms, deals from the CRM).

pub mod limits;
mod outcomes;
pub mod retry;
mod sources;
mod worker;

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use tandem_connectors::{LeadSink, RateLimit, writeback::WritebackSink};
use tokio::{sync::Notify, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::store::{Store, sqlite::now_ms};

pub use outcomes::{outcome_cursor, outcome_waker};
pub use retry::RetryPolicy;

/// How deliveries are worked, for every destination.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub retry: RetryPolicy,
    pub lease: Duration,
    pub linger: Duration,
    pub concurrency: usize,
    /// How long one vendor call may take before it counts as a transient failure.
    pub call_timeout: Duration,
    /// How often a paused (401/403) destination tries one delivery to see whether access is back.
    pub probe_interval: Duration,
    /// How often idle workers look for deliveries that came due (retries) without being woken.
    pub idle_poll: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            retry: RetryPolicy {
                max_attempts: 12,
                max_age: Duration::from_secs(3 * 86_400),
                base: Duration::from_secs(1),
                cap: Duration::from_secs(600),
            },
            lease: Duration::from_secs(120),
            linger: Duration::from_millis(50),
            concurrency: 4,
            call_timeout: Duration::from_secs(60),
            probe_interval: Duration::from_secs(60),
            idle_poll: Duration::from_millis(500),
        }
    }
}

/// What a destination connector does: receive leads (a CRM), write-backs (an ad or email
/// platform, or the CRM's deals), or both, under one rate limit.
#[derive(Clone)]
pub struct Sinks {
    pub lead: Option<Arc<dyn LeadSink>>,
    pub writeback: Option<Arc<dyn WritebackSink>>,
    pub limit: RateLimit,
}

impl Sinks {
    /// The most rows one claim takes: the larger batch of the two sides (each call is cut to
    /// its own side's limit).
    fn max_claim(&self) -> usize {
        let lead = self.lead.as_ref().map_or(0, |s| s.max_batch());
        let writeback = self.writeback.as_ref().map_or(0, |s| s.max_batch());
        lead.max(writeback).max(1)
    }

    /// Whether a forget's deletion can be carried out here.
    pub fn supports_forget(&self) -> bool {
        self.lead.as_ref().is_some_and(|s| s.supports_forget())
            || self.writeback.as_ref().is_some_and(|s| s.supports_forget())
    }
}

/// One destination connector as the engine sees it.
pub struct Destination {
    pub name: String,
    sinks: Sinks,
    limiter: limits::DestinationLimiter,
    wake: Arc<Notify>,
    /// Why the destination is paused (401/403), if it is.
    paused: Mutex<Option<String>>,
    /// Unix ms of a worker's last loop turn, for the watchdog.
    heartbeat: AtomicI64,
}

impl Destination {
    pub fn paused_reason(&self) -> Option<String> {
        self.paused.lock().ok().and_then(|p| p.clone())
    }

    fn set_paused(&self, reason: Option<String>) {
        if let Ok(mut p) = self.paused.lock() {
            *p = reason;
        }
    }
}

/// One wake-up signal per destination, shared by intake (which rings it after a commit) and the
/// workers (which wait on it when idle). It outlives engine restarts on reload.
#[derive(Default)]
pub struct Wakers(Mutex<BTreeMap<String, Arc<Notify>>>);

impl Wakers {
    pub fn get(&self, destination: &str) -> Arc<Notify> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(destination.to_owned()).or_default().clone()
    }

    /// New work for `destination` was just committed.
    pub fn wake(&self, destination: &str) {
        self.get(destination).notify_waiters();
    }
}

/// The running engine. Dropping it does not stop it: call [`Engine::stop`].
pub struct Engine {
    destinations: BTreeMap<String, Arc<Destination>>,
    tasks: JoinSet<()>,
    cancel: CancellationToken,
}

impl Engine {
    /// Starts `options.concurrency` workers for every destination. `rate_limits` overrides the
    /// connectors' defaults (by destination name).
    pub fn start(
        store: Arc<dyn Store>,
        sinks: BTreeMap<String, Sinks>,
        options: EngineOptions,
        wakers: &Wakers,
        cancel: CancellationToken,
    ) -> Engine {
        let mut tasks = JoinSet::new();
        let mut destinations = BTreeMap::new();
        for (name, sinks) in sinks {
            let dest = Arc::new(Destination {
                name: name.clone(),
                limiter: limits::DestinationLimiter::new(sinks.limit),
                sinks,
                wake: wakers.get(&name),
                paused: Mutex::new(None),
                heartbeat: AtomicI64::new(now_ms()),
            });
            metrics::gauge!("tandem_connector_paused", "connector" => name.clone()).set(0.0);
            for i in 0..options.concurrency.max(1) {
                let owner = format!(
                    "{}/{}/{i}/{}",
                    std::process::id(),
                    name,
                    uuid::Uuid::now_v7().simple()
                );
                tasks.spawn(worker::run(
                    dest.clone(),
                    store.clone(),
                    options.clone(),
                    owner,
                    cancel.clone(),
                ));
            }
            destinations.insert(name, dest);
        }
        Engine {
            destinations,
            tasks,
            cancel,
        }
    }

    /// Starts the marketing side's work: a fetch worker for every source whose notifications
    /// carry only ids, and a poll loop for every polled source. Stopped with the engine.
    pub fn start_sources(
        &mut self,
        store: Arc<dyn Store>,
        runtime: Arc<crate::daemon::runtime::Runtime>,
        options: EngineOptions,
        wakers: Arc<Wakers>,
    ) {
        for (name, source) in &runtime.sources {
            if let Some(fetcher) = &source.fetcher {
                self.tasks.spawn(sources::fetch_worker(
                    name.clone(),
                    fetcher.clone(),
                    runtime.clone(),
                    store.clone(),
                    wakers.clone(),
                    options.clone(),
                    self.cancel.clone(),
                ));
            }
            if let Some(poller) = &source.poller {
                self.tasks.spawn(sources::poll_loop(
                    name.clone(),
                    poller.clone(),
                    runtime.clone(),
                    store.clone(),
                    wakers.clone(),
                    options.clone(),
                    self.cancel.clone(),
                ));
            }
        }
    }

    /// Starts the deal side: the outcome poll loop of `[attribution] from`, when configured.
    pub fn start_outcomes(
        &mut self,
        store: Arc<dyn Store>,
        runtime: &crate::daemon::runtime::Runtime,
        options: EngineOptions,
        wakers: Arc<Wakers>,
    ) {
        if let Some(side) = &runtime.outcomes {
            self.tasks.spawn(outcomes::outcome_loop(
                side.source.clone(),
                side.plan.clone(),
                store,
                wakers,
                options,
                self.cancel.clone(),
            ));
        }
    }

    /// Destinations paused for an auth failure, and why.
    pub fn paused(&self) -> Vec<(String, String)> {
        self.destinations
            .values()
            .filter_map(|d| d.paused_reason().map(|r| (d.name.clone(), r)))
            .collect()
    }

    /// The longest any destination's workers have gone without a loop turn.
    pub fn longest_silence(&self) -> Duration {
        let now = now_ms();
        let worst = self
            .destinations
            .values()
            .map(|d| now - d.heartbeat.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        Duration::from_millis(worst.max(0) as u64)
    }

    /// Asks every worker to stop: calls in progress finish and are settled, claimed rows not yet
    /// sent are released. Returns when all workers have exited.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}
