//! Resident memory of the real `tandem` binary: idle, under load, and holding 1,000,000 queued
//! leads, each against the idle RSS measured in the same run.
//!
//! `cargo bench --bench rss` (release build; cargo builds `tandem` with the same profile and
//! this bench runs that executable, `CARGO_BIN_EXE_tandem`). Not a test: nothing here asserts
//! a figure. See bench/README.md for what each figure means.
//!
//! RSS is `VmRSS` from `/proc/PID/status` (`RssAnon`, the heap and other anonymous memory, is
//! printed beside it to tell the heap from SQLite's mapped pages).
//!
//! 1. **Idle and steady load**: `tandem run` delivering to the HubSpot sandbox (in this process).
//!    Idle: the median of 12 samples 3 s after /readyz. Load: open loop at `BENCH_LOAD_RATE`
//!    (default 1,000 leads/s, under HubSpot's 1,900 leads/s so the queue stays short) for
//!    `BENCH_LOAD_SECONDS` (default 15), sampled every 250 ms.
//! 2. **1M queued**: a second `tandem run` whose HubSpot connector is held back
//!    (`rate_limit = "1/1h"`: one call, then nothing for an hour), so everything stays queued.
//!    64 clients post distinct leads as fast as it answers for 5 s (RSS sampled: the saturating
//!    load figure); from that rate the time to post the rest is projected. If the projection is
//!    within `BENCH_QUEUED_HTTP_MAX_SECS` (default 180), the rest is posted over HTTP; otherwise
//!    the daemon is stopped, the rest is inserted through `SqliteStore::ingest` into the same
//!    state file (what intake would have committed: lead, raw body, one rendered delivery) and
//!    the daemon is started again. `BENCH_QUEUED_VIA=http|store` forces either way. RSS is then
//!    read from the process holding the queue, and from a fresh process started over it.
//!
//! Knobs: `BENCH_QUEUED` (default 1000000), `BENCH_LOAD_RATE`, `BENCH_LOAD_SECONDS`,
//! `BENCH_QUEUED_VIA`, `BENCH_QUEUED_HTTP_MAX_SECS`.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use common::{
    Rss, closed_loop, env_num, median, mib, ms, open_loop, print_load, print_machine, rss_of,
};
use serde_json::Value;
use tandem::store::{
    Store,
    sqlite::{SqliteOptions, SqliteStore},
};
use tandem_connectors::hubspot::sandbox::{HubspotSandbox, SandboxOptions};

const ADMIN: &str = "bench-admin";

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `[daemon]` line: the CLI's status calls need the admin API.
fn admin_line() -> String {
    format!("admin_token = \"{ADMIN}\"")
}

/// A `tandem run` child process.
struct Tandem {
    child: Child,
    addr: String,
    started_in: Duration,
}

impl Tandem {
    async fn start(config: &Path, addr: &str, log: &Path) -> anyhow::Result<Tandem> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let t0 = Instant::now();
        let child = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(["run", "--config"])
            .arg(config)
            .env_remove("TANDEM_CONFIG")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let mut t = Tandem {
            child,
            addr: addr.to_owned(),
            started_in: Duration::ZERO,
        };
        let http = reqwest::Client::new();
        loop {
            if http
                .get(format!("http://{addr}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                break;
            }
            if let Some(status) = t.child.try_wait()? {
                anyhow::bail!("tandem exited before it was ready: {status}");
            }
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(120),
                "tandem not ready after 120 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        t.started_in = t0.elapsed();
        Ok(t)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn rss(&self) -> Rss {
        rss_of(self.pid()).unwrap_or_default()
    }

    /// Median of `n` samples `every` apart.
    async fn settled_rss(&self, n: usize, every: Duration) -> Rss {
        let mut rss = Vec::new();
        let mut anon = Vec::new();
        for _ in 0..n {
            let r = self.rss();
            rss.push(r.rss);
            anon.push(r.anon);
            tokio::time::sleep(every).await;
        }
        Rss {
            rss: median(rss),
            anon: median(anon),
        }
    }

    /// Queued (pending + in flight) deliveries, from the admin API.
    async fn queued(&self) -> anyhow::Result<u64> {
        let v: Value = reqwest::Client::new()
            .get(format!("http://{}/api/status", self.addr))
            .bearer_auth(ADMIN)
            .timeout(Duration::from_secs(60))
            .send()
            .await?
            .json()
            .await?;
        Ok(v["destinations"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|d| {
                        d["pending"].as_u64().unwrap_or(0) + d["in_flight"].as_u64().unwrap_or(0)
                    })
                    .sum()
            })
            .unwrap_or(0))
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 30 s).
    async fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        let t0 = Instant::now();
        while self.child.try_wait()?.is_none() {
            if t0.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                anyhow::bail!("tandem ignored SIGTERM for 30 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

impl Drop for Tandem {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Samples a process's RSS every 250 ms until told to stop; returns the samples (KiB).
fn sampler(pid: u32) -> (Arc<AtomicBool>, tokio::task::JoinHandle<Vec<Rss>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let task = tokio::spawn(async move {
        let mut v = Vec::new();
        while !s.load(Ordering::Relaxed) {
            if let Some(r) = rss_of(pid) {
                v.push(r);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        v
    });
    (stop, task)
}

/// Inserts leads `first..first + count` through the store API from 64 tasks.
async fn ingest_direct(state: PathBuf, first: u64, count: u64) -> anyhow::Result<Duration> {
    let store = Arc::new(
        tokio::task::spawn_blocking(move || SqliteStore::open(&state, SqliteOptions::default()))
            .await??,
    );
    let next = Arc::new(AtomicU64::new(first));
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (store, next) = (store.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= first + count {
                    return anyhow::Ok(());
                }
                store.ingest(common::new_lead(n)).await?;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let took = t0.elapsed();
    drop(store);
    Ok(took)
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}

struct Figures {
    idle: Rss,
    start_ms: Duration,
    load_rate: f64,
    load_secs: u64,
    load_median: u64,
    load_max: u64,
    load_anon_median: u64,
    load_p99: Duration,
    load_errors: u64,
    after_load: Rss,
    held_idle: Rss,
    sat_rate: f64,
    sat_max: u64,
    queued: u64,
    queued_target: u64,
    method: String,
    enqueue_secs: f64,
    enqueue_max: u64,
    holding: Rss,
    holding_count: u64,
    fresh: Rss,
    fresh_count: u64,
    fresh_start: Duration,
    db_bytes: u64,
}

async fn run() -> anyhow::Result<()> {
    print_machine();
    let queued_target = env_num("BENCH_QUEUED", 1_000_000);
    let load_rate = env_num("BENCH_LOAD_RATE", 1_000) as f64;
    let load_secs = env_num("BENCH_LOAD_SECONDS", 15);
    let http_max = Duration::from_secs(env_num("BENCH_QUEUED_HTTP_MAX_SECS", 180));
    let via = std::env::var("BENCH_QUEUED_VIA").unwrap_or_else(|_| "auto".into());
    println!(
        "settings: binary {}; steady load {load_rate:.0} leads/s for {load_secs} s; {queued_target} queued leads (via {via}, HTTP if projected ≤ {} s)",
        env!("CARGO_BIN_EXE_tandem"),
        http_max.as_secs()
    );

    // ---- 1. idle and steady load, delivery running to the HubSpot sandbox.
    let sandbox =
        HubspotSandbox::start(([127, 0, 0, 1], 0).into(), SandboxOptions::default()).await?;
    let dir = tempfile::tempdir()?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    let config = dir.path().join("running.toml");
    std::fs::write(
        &config,
        common::hubspot_config(
            &addr,
            &dir.path().join("running.db"),
            &sandbox.base_url(),
            &admin_line(),
            "",
        ),
    )?;
    let t = Tandem::start(&config, &addr, &dir.path().join("running.log")).await?;
    let start_ms = t.started_in;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = t.settled_rss(12, Duration::from_millis(250)).await;
    println!(
        "idle ........................ RSS {} (anon {}), ready {} after spawn",
        mib(idle.rss),
        mib(idle.anon),
        ms(start_ms)
    );
    let (stop, samples) = sampler(t.pid());
    let load = open_loop(
        &format!("http://{addr}/hooks/website"),
        load_rate,
        Duration::ZERO,
        Duration::from_secs(load_secs),
        0,
        512,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let samples = samples.await?;
    let load_median = median(samples.iter().map(|r| r.rss).collect());
    let load_anon_median = median(samples.iter().map(|r| r.anon).collect());
    let load_max = samples.iter().map(|r| r.rss).max().unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_load = t.settled_rss(8, Duration::from_millis(250)).await;
    println!(
        "steady load ................. {:.0} leads/s offered, {:.0} × 202/s, p99 {}; RSS median {} (anon {}), max {}; 3 s after: {}",
        load_rate,
        load.achieved,
        ms(load.lat.p99),
        mib(load_median),
        mib(load_anon_median),
        mib(load_max),
        mib(after_load.rss)
    );
    t.stop().await?;

    // ---- 2. 1M queued, delivery held back.
    let addr = format!("127.0.0.1:{}", free_port()?);
    let state = dir.path().join("queued.db");
    let config = dir.path().join("queued.toml");
    let log = dir.path().join("queued.log");
    std::fs::write(
        &config,
        common::hubspot_config(
            &addr,
            &state,
            &sandbox.base_url(),
            &admin_line(),
            r#"rate_limit = "1/1h""#,
        ),
    )?;
    let t = Tandem::start(&config, &addr, &log).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held_idle = t.settled_rss(8, Duration::from_millis(250)).await;
    let url = format!("http://{addr}/hooks/website");
    let (stop, samples) = sampler(t.pid());
    let enqueue_t0 = Instant::now();
    let sat = closed_loop(&url, 64, 0, queued_target, Some(Duration::from_secs(5))).await;
    let sat_rate = sat.ok as f64 / sat.elapsed.as_secs_f64();
    let sat_max = samples_max(&stop, samples).await?;
    let rest = queued_target.saturating_sub(sat.ok + sat.errors);
    let projected = Duration::from_secs_f64(rest as f64 / sat_rate.max(1.0));
    println!(
        "saturating load ............. 64 clients, {sat_rate:.0} leads/s ({} refused); RSS max {}; {rest} more leads projected to take {:.0} s over HTTP",
        sat.errors,
        mib(sat_max),
        projected.as_secs_f64()
    );
    let use_http = match via.as_str() {
        "http" => true,
        "store" => false,
        _ => projected <= http_max,
    };
    let first_rest = sat.ok + sat.errors;
    let (t, method, enqueue_max) = if use_http {
        let (stop, samples) = sampler(t.pid());
        let more = closed_loop(&url, 64, first_rest, rest, None).await;
        let max = samples_max(&stop, samples).await?;
        println!(
            "enqueue over HTTP ........... {} more leads in {:.1} s ({:.0}/s, {} refused); RSS max {}",
            more.ok,
            more.elapsed.as_secs_f64(),
            more.ok as f64 / more.elapsed.as_secs_f64(),
            more.errors,
            mib(max)
        );
        (
            t,
            format!(
                "all over HTTP (POST /hooks/website, 64 clients; projected {:.0} s after the first 5 s)",
                projected.as_secs_f64()
            ),
            max.max(sat_max),
        )
    } else {
        t.stop().await?;
        let took = ingest_direct(state.clone(), first_rest, rest).await?;
        println!(
            "enqueue via SqliteStore ..... {rest} leads in {:.1} s ({:.0}/s), daemon stopped meanwhile",
            took.as_secs_f64(),
            rest as f64 / took.as_secs_f64()
        );
        let t = Tandem::start(&config, &addr, &log).await?;
        (
            t,
            format!(
                "{} over HTTP, then {rest} through SqliteStore::ingest into the state file with the daemon stopped (HTTP projected {:.0} s > {} s), daemon restarted over it",
                sat.ok,
                projected.as_secs_f64(),
                http_max.as_secs()
            ),
            sat_max,
        )
    };
    let enqueue_secs = enqueue_t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let holding = t.settled_rss(12, Duration::from_millis(250)).await;
    let holding_count = t.queued().await?;
    println!(
        "holding the queue ........... {holding_count} queued; RSS {} (anon {})",
        mib(holding.rss),
        mib(holding.anon)
    );
    t.stop().await?;
    let t = Tandem::start(&config, &addr, &log).await?;
    let fresh_start = t.started_in;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fresh = t.settled_rss(12, Duration::from_millis(250)).await;
    let fresh_count = t.queued().await?;
    println!(
        "fresh process over the queue  {fresh_count} queued; RSS {} (anon {}), ready {} after spawn",
        mib(fresh.rss),
        mib(fresh.anon),
        ms(fresh_start)
    );
    t.stop().await?;
    sandbox.shutdown().await;
    let db_bytes = ["", "-wal", "-shm"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", state.display())).ok())
        .map(|m| m.len())
        .sum();

    report(&Figures {
        idle,
        start_ms,
        load_rate,
        load_secs,
        load_median,
        load_max,
        load_anon_median,
        load_p99: load.lat.p99,
        load_errors: load.errors,
        after_load,
        held_idle,
        sat_rate,
        sat_max,
        queued: holding_count,
        queued_target,
        method,
        enqueue_secs,
        enqueue_max,
        holding,
        holding_count,
        fresh,
        fresh_count,
        fresh_start,
        db_bytes,
    });
    Ok(())
}

async fn samples_max(
    stop: &AtomicBool,
    samples: tokio::task::JoinHandle<Vec<Rss>>,
) -> anyhow::Result<u64> {
    stop.store(true, Ordering::Relaxed);
    Ok(samples.await?.iter().map(|r| r.rss).max().unwrap_or(0))
}

fn report(f: &Figures) {
    print_load("at end");
    let x = |kib: u64| kib as f64 / f.idle.rss.max(1) as f64;
    println!();
    println!("| figure | RSS | RssAnon | × idle |");
    println!("|---|---|---|---|");
    println!(
        "| idle (delivery running, nothing to do), ready {} after spawn | {} | {} | 1.00 |",
        ms(f.start_ms),
        mib(f.idle.rss),
        mib(f.idle.anon)
    );
    println!(
        "| steady load: {:.0} leads/s open loop for {} s, delivery to HubSpot running (p99 202 {}, {} non-202) — median | {} | {} | {:.2} |",
        f.load_rate,
        f.load_secs,
        ms(f.load_p99),
        f.load_errors,
        mib(f.load_median),
        mib(f.load_anon_median),
        x(f.load_median)
    );
    println!(
        "| steady load — max sample | {} | | {:.2} |",
        mib(f.load_max),
        x(f.load_max)
    );
    println!(
        "| 3 s after the steady load | {} | {} | {:.2} |",
        mib(f.after_load.rss),
        mib(f.after_load.anon),
        x(f.after_load.rss)
    );
    println!(
        "| idle, delivery held back (second daemon) | {} | {} | {:.2} |",
        mib(f.held_idle.rss),
        mib(f.held_idle.anon),
        x(f.held_idle.rss)
    );
    println!(
        "| saturating load: 64 clients, {:.0} leads/s, delivery held back — max | {} | | {:.2} |",
        f.sat_rate,
        mib(f.sat_max),
        x(f.sat_max)
    );
    println!(
        "| while enqueueing {} leads ({:.0} s) — max | {} | | {:.2} |",
        f.queued_target,
        f.enqueue_secs,
        mib(f.enqueue_max),
        x(f.enqueue_max)
    );
    println!(
        "| holding {} queued, same process, 5 s after the last POST | {} | {} | {:.2} |",
        f.holding_count,
        mib(f.holding.rss),
        mib(f.holding.anon),
        x(f.holding.rss)
    );
    println!(
        "| holding {} queued, fresh process (ready {} after spawn) | {} | {} | {:.2} |",
        f.fresh_count,
        ms(f.fresh_start),
        mib(f.fresh.rss),
        mib(f.fresh.anon),
        x(f.fresh.rss)
    );
    println!();
    println!(
        "queued leads: {} of {} targeted; how: {}; state file {:.2} GB",
        f.queued,
        f.queued_target,
        f.method,
        f.db_bytes as f64 / 1e9
    );
}
