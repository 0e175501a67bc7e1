//! Wiring and lifecycle: open the store, build the runtime from the config, serve HTTP, run the
//! engine; then live through signals. SIGTERM/SIGINT: intake answers 503, workers finish or release
//! what they hold, exit 0 within `daemon.stop_timeout`. SIGHUP: re-read and validate the config and
//! swap it in; on error keep the old one and say why. systemd hears READY=1 once the store and the
//! listener are up, RELOADING=1 around reloads, STOPPING=1 on the way out, and WATCHDOG=1 only
//! while the writer thread and the workers show signs of life.
//!
//! - [`runtime`]: everything built from one config.
//! - [`telemetry`]: logging and the metrics recorder.

pub mod runtime;
pub mod telemetry;

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    config::{Config, DeliveryConfig, StateLocation},
    engine::{Engine, EngineOptions, RetryPolicy, Wakers},
    intake::{self, AppState},
    store::{
        Store,
        sqlite::{SqliteOptions, SqliteStore},
    },
};
use runtime::Runtime;

/// A running daemon: HTTP server, engine and store. Tests drive it in-process; `tandem run`
/// drives it from signals.
pub struct Daemon {
    pub addr: SocketAddr,
    state: AppState,
    store: Arc<SqliteStore>,
    engine: std::sync::Mutex<Option<Engine>>,
    wakers: Arc<Wakers>,
    server_stop: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

fn engine_options(d: &DeliveryConfig) -> EngineOptions {
    EngineOptions {
        retry: RetryPolicy {
            max_attempts: d.max_attempts,
            max_age: d.max_age.0,
            base: d.backoff_base.0,
            cap: d.backoff_max.0,
        },
        lease: d.lease.0,
        linger: d.linger.0,
        concurrency: d.concurrency,
        call_timeout: d.call_timeout.0,
        probe_interval: d.probe_interval.0,
        ..EngineOptions::default()
    }
}

impl Daemon {
    /// Opens the store, binds the listener, starts the engine. Returns once the daemon is ready.
    pub async fn start(config: Config) -> anyhow::Result<Daemon> {
        let StateLocation::Sqlite(path) = &config.daemon.state;
        let options = SqliteOptions {
            max_pending_writes: config.daemon.limits.max_pending_writes,
        };
        let store = {
            let path = path.clone();
            let shown = path.display().to_string();
            tokio::task::spawn_blocking(move || SqliteStore::open(&path, options))
                .await?
                .with_context(|| format!("opening the state database {shown}"))?
        };
        let store = Arc::new(store);
        // This process holds the state lock, so any lease in the table belongs to a dead process.
        let released = store.release_all_leases().await?;
        if released > 0 {
            tracing::info!(released, "took back deliveries leased by a previous run");
        }
        for (connector, _) in store.paused().await? {
            // A fresh start is a fresh try; the first call re-pauses if access is still denied.
            store.set_paused(&connector, None).await?;
        }
        let listen = config.daemon.listen;
        let delivery = config.daemon.delivery.clone();
        let runtime = Arc::new(Runtime::build(config, store.clone())?);
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr()?;
        let wakers = Arc::new(Wakers::default());
        let dyn_store: Arc<dyn Store> = store.clone();
        let state = AppState::new(
            dyn_store.clone(),
            runtime.clone(),
            wakers.clone(),
            telemetry::metrics(),
        );
        let engine = start_engine(dyn_store, &runtime, &delivery, &wakers);
        let server_stop = CancellationToken::new();
        let app = intake::router(state.clone());
        let serve_options = intake::serve::ServeOptions::from(&runtime.config.daemon.limits);
        let server = tokio::spawn(intake::serve::serve(
            listener,
            app,
            serve_options,
            server_stop.clone(),
        ));
        tracing::info!(%addr, sources = runtime.sources.len(), destinations = runtime.sinks.len(), "tandem is ready");
        Ok(Daemon {
            addr,
            state,
            store,
            engine: std::sync::Mutex::new(Some(engine)),
            wakers,
            server_stop,
            server,
        })
    }

    pub fn store(&self) -> Arc<SqliteStore> {
        self.store.clone()
    }

    /// Swaps in a new, already validated config: intake sees it at once; the engine's workers
    /// finish their current call and restart with the new connectors.
    pub async fn reload(&self, config: Config) -> anyhow::Result<()> {
        let old = self.state.runtime();
        if config.daemon.listen != old.config.daemon.listen
            || config.daemon.state != old.config.daemon.state
        {
            tracing::warn!("daemon.listen and daemon.state take effect only after a restart");
        }
        let delivery = config.daemon.delivery.clone();
        let runtime = Arc::new(Runtime::build(config, self.store.clone())?);
        self.state.swap_runtime(runtime.clone());
        let previous = self.engine.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(engine) = previous {
            engine.stop().await;
        }
        for (connector, _) in self.store.paused().await? {
            self.store.set_paused(&connector, None).await?;
        }
        let engine = start_engine(self.store.clone(), &runtime, &delivery, &self.wakers);
        *self.engine.lock().unwrap_or_else(|p| p.into_inner()) = Some(engine);
        Ok(())
    }

    /// Whether the writer and the workers have shown life recently enough to pet the watchdog.
    pub fn healthy(&self) -> bool {
        let writer_ok = self
            .store
            .writer_silence()
            .is_some_and(|s| s < Duration::from_secs(10));
        let engine_ok = self
            .engine
            .lock()
            .map(|e| {
                e.as_ref()
                    .is_none_or(|e| e.longest_silence() < Duration::from_secs(120))
            })
            .unwrap_or(false);
        writer_ok && engine_ok
    }

    /// Stops intake (503 from now on), then the engine (calls in flight finish and are recorded;
    /// claimed but unsent rows are released), then the HTTP server. Bounded by `stop_timeout`:
    /// past it, whatever is still leased is reclaimed at the next start.
    pub async fn shutdown(self) {
        let timeout = self.state.runtime().config.daemon.stop_timeout.0;
        self.state.stop_accepting();
        let engine = self.engine.lock().unwrap_or_else(|p| p.into_inner()).take();
        let drain = async {
            if let Some(engine) = engine {
                engine.stop().await;
            }
            self.server_stop.cancel();
            let _ = self.server.await;
        };
        if tokio::time::timeout(timeout, drain).await.is_err() {
            tracing::warn!(
                ?timeout,
                "stop timeout reached; leased deliveries will be retried at the next start"
            );
        }
        // Dropping the last store handle lets the writer commit what is queued and exit.
    }
}

/// `tandem run`: start, tell systemd, then react to signals until told to stop.
pub async fn run(config_path: &Path) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let config = Config::load(config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    telemetry::init_logging(config.daemon.log_format);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let daemon = Daemon::start(config).await?;
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("serving"),
    ]);
    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    let mut pet = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(&daemon, config_path).await,
            _ = pet.tick(), if watchdog.is_some() => {
                if daemon.healthy() {
                    notify(&[sd_notify::NotifyState::Watchdog]);
                } else {
                    tracing::error!("writer or workers silent; withholding the watchdog ping");
                }
            }
        }
    }
    tracing::info!("stopping: intake closed, finishing in-flight deliveries");
    notify(&[sd_notify::NotifyState::Stopping]);
    daemon.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn reload(daemon: &Daemon, config_path: &Path) {
    let mut states = vec![sd_notify::NotifyState::Reloading];
    if let Ok(now) = sd_notify::NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    notify(&states);
    match Config::load(config_path) {
        Ok(config) => match daemon.reload(config).await {
            Ok(()) => tracing::info!(path = %config_path.display(), "configuration reloaded"),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "reload failed; still running on the previous configuration")
            }
        },
        Err(errors) => {
            tracing::error!(
                "reload refused; still running on the previous configuration:\n{errors}"
            );
        }
    }
    notify(&[sd_notify::NotifyState::Ready]);
}

fn notify(states: &[sd_notify::NotifyState]) {
    // Outside systemd NOTIFY_SOCKET is unset and this is a no-op.
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// Delivery workers for every destination, then the polled sides: lead sources and the CRM's
/// deal outcomes.
fn start_engine(
    store: Arc<dyn crate::store::Store>,
    runtime: &Arc<Runtime>,
    delivery: &crate::config::DeliveryConfig,
    wakers: &Arc<Wakers>,
) -> Engine {
    let mut engine = Engine::start(
        store.clone(),
        runtime.sinks.clone(),
        engine_options(delivery),
        wakers,
        CancellationToken::new(),
    );
    engine.start_sources(
        store.clone(),
        runtime.clone(),
        engine_options(delivery),
        wakers.clone(),
    );
    engine.start_outcomes(store, runtime, engine_options(delivery), wakers.clone());
    engine
}
