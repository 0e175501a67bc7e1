//! Intake and delivery throughput, measured in one run against baselines from the same run.
//!
//! `cargo bench --bench intake` (release build). Not a test: nothing here asserts a timing.
//! See bench/README.md for what each figure means; bench/RESULTS.md for recorded runs.
//!
//! (a) raw SQLite group commit: `SqliteStore::ingest` from many tasks, no HTTP.
//! (b) HTTP ceiling: the same axum/hyper/reqwest stack answering 202 without storing.
//! (c) durable intake: the real daemon, 202 after fsync, delivery to the HubSpot sandbox running.
//! (d) a 10,000-lead burst delivered to the HubSpot sandbox at its default 190 requests / 10 s.
//!
//! Environment knobs: `BENCH_SECONDS` (per timed phase, default 5), `BENCH_CLIENTS` (default 64),
//! `BENCH_BURST` (default 10000).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Bytes,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
mod common;

use common::{env_num, lead_body, ms, new_lead, print_machine};
use serde_json::{Value, json};
use tandem::{
    config::Config,
    daemon::Daemon,
    store::{
        Store,
        sqlite::{SqliteOptions, SqliteStore},
    },
};
use tandem_connectors::hubspot::sandbox::{HubspotSandbox, SandboxOptions};

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` would too. Accept and ignore flags.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}

struct Settings {
    seconds: Duration,
    clients: usize,
    burst: usize,
}

async fn run() -> anyhow::Result<()> {
    let s = Settings {
        seconds: Duration::from_secs(env_num("BENCH_SECONDS", 5)),
        clients: env_num("BENCH_CLIENTS", 64) as usize,
        burst: env_num("BENCH_BURST", 10_000) as usize,
    };
    print_machine();
    print_settings(&s);

    let raw = bench_raw_sqlite(&s).await?;
    println!(
        "(a) raw SQLite group commit ... {:.0} ingests/s, {:.1} leads per commit",
        raw.rate, raw.per_commit
    );
    let ceiling = bench_http_ceiling(&s).await?;
    println!("(b) HTTP ceiling (no store) ... {:.0} req/s", ceiling.rate);
    let held = bench_durable(&s, r#"rate_limit = "1/1h""#).await?;
    println!(
        "(c) durable intake .......... {:.0} leads/s (delivery held back)",
        held.load.rate
    );
    let durable = bench_durable(&s, "").await?;
    println!(
        "(c) durable intake .......... {:.0} leads/s (delivery running)",
        durable.load.rate
    );
    let burst = bench_burst(&s).await?;
    println!(
        "(d) burst .................... {} leads delivered in {:.2} s",
        burst.leads,
        burst.elapsed.as_secs_f64()
    );

    let floor = burst.floor();
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| (a) raw SQLite ingest, {} tasks | {:.0} leads/s |",
        s.clients, raw.rate
    );
    println!(
        "| (a) leads per commit (fsync) | {:.1} ({} commits) |",
        raw.per_commit, raw.commits
    );
    println!(
        "| (b) HTTP ceiling, {} clients, no store | {:.0} req/s (p50 {} / p99 {}) |",
        s.clients,
        ceiling.rate,
        ms(ceiling.p50),
        ms(ceiling.p99)
    );
    println!(
        "| (c) durable intake, {} clients, delivery held back | {:.0} leads/s (p50 {} / p99 {}) |",
        s.clients,
        held.load.rate,
        ms(held.load.p50),
        ms(held.load.p99)
    );
    println!(
        "| (c) durable intake, {} clients, delivery running | {:.0} leads/s |",
        s.clients, durable.load.rate
    );
    println!(
        "| (c) durable 202 latency | p50 {} / p99 {} / max {} |",
        ms(durable.load.p50),
        ms(durable.load.p99),
        ms(durable.load.max)
    );
    println!(
        "| (c) leads per commit (held / running; engine commits count too) | {:.1} / {:.1} |",
        held.per_commit, durable.per_commit
    );
    println!(
        "| (c) non-202 answers (held / running) | {} / {} |",
        held.load.errors, durable.load.errors
    );
    println!(
        "| (d) burst posted ({} leads) | {:.2} s ({:.0} leads/s) |",
        burst.leads,
        burst.posted.as_secs_f64(),
        burst.leads as f64 / burst.posted.as_secs_f64()
    );
    println!(
        "| (d) burst delivered (first POST → queue empty) | {:.2} s |",
        burst.elapsed.as_secs_f64()
    );
    println!(
        "| (d) upsert calls / 429s / contacts | {} / {} / {} |",
        burst.upsert_calls, burst.rate_limited, burst.contacts
    );
    println!(
        "| (d) floor: {} calls at 19/s | {:.2} s |",
        burst.ideal_calls(),
        floor.as_secs_f64()
    );
    println!();
    println!("| ratio | value |");
    println!("|---|---|");
    println!(
        "| durable (delivery held back) / raw SQLite | {:.2} |",
        held.load.rate / raw.rate
    );
    println!(
        "| durable (delivery held back) / HTTP ceiling | {:.2} |",
        held.load.rate / ceiling.rate
    );
    println!(
        "| durable (delivery running) / raw SQLite | {:.2} |",
        durable.load.rate / raw.rate
    );
    println!(
        "| durable (delivery running) / HTTP ceiling | {:.2} |",
        durable.load.rate / ceiling.rate
    );
    println!(
        "| burst elapsed / floor | {:.2} |",
        burst.elapsed.as_secs_f64() / floor.as_secs_f64()
    );
    println!(
        "| burst upsert calls / ideal ({}) | {:.2} |",
        burst.ideal_calls(),
        burst.upsert_calls as f64 / burst.ideal_calls() as f64
    );
    Ok(())
}

fn print_settings(s: &Settings) {
    println!(
        "settings: {} s per timed phase, {} concurrent clients, burst of {} leads",
        s.seconds.as_secs(),
        s.clients,
        s.burst
    );
}

// ---------------------------------------------------------------------------------------------
// Shared load generator: `clients` keep-alive clients POST distinct leads until the deadline.

struct Load {
    rate: f64,
    ok: u64,
    errors: u64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// POSTs to `url` from `clients` clients until `until` passes (or `total` leads were sent, when given).
async fn hammer(
    url: String,
    clients: usize,
    until: Option<Duration>,
    total: Option<u64>,
    first: u64,
) -> Load {
    let next = Arc::new(AtomicU64::new(first));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (url, next, stop) = (url.clone(), next.clone(), stop.clone());
        // One client per task: its own keep-alive connection, like independent form posts.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .expect("client");
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity(4096);
            let mut errors = 0u64;
            loop {
                if stop.load(Ordering::Relaxed) || until.is_some_and(|u| started.elapsed() >= u) {
                    break;
                }
                let n = next.fetch_add(1, Ordering::Relaxed);
                if total.is_some_and(|t| n >= first + t) {
                    break;
                }
                let t0 = Instant::now();
                match http.post(&url).json(&lead_body(n)).send().await {
                    Ok(r) if r.status() == StatusCode::ACCEPTED => {
                        let _ = r.bytes().await;
                        lat.push(t0.elapsed());
                    }
                    Ok(r) => {
                        let _ = r.bytes().await;
                        errors += 1;
                    }
                    Err(_) => errors += 1,
                }
            }
            (lat, errors)
        });
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    while let Some(r) = tasks.join_next().await {
        let (l, e) = r.expect("client task");
        lat.extend(l);
        errors += e;
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Load {
        rate: lat.len() as f64 / elapsed.as_secs_f64(),
        ok: lat.len() as u64,
        errors,
        p50: pct(0.50),
        p99: pct(0.99),
        max: lat.last().copied().unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------------------------
// (a) raw SQLite

struct Raw {
    rate: f64,
    commits: i64,
    per_commit: f64,
}

async fn bench_raw_sqlite(s: &Settings) -> anyhow::Result<Raw> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("raw.db");
    let store = Arc::new(
        tokio::task::spawn_blocking(move || SqliteStore::open(&path, SqliteOptions::default()))
            .await??,
    );
    let next = Arc::new(AtomicU64::new(0));
    let commits_before = store.commit_groups();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..s.clients {
        let (store, next, until) = (store.clone(), next.clone(), s.seconds);
        tasks.spawn(async move {
            let mut done = 0u64;
            while started.elapsed() < until {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if store.ingest(new_lead(n)).await.is_ok() {
                    done += 1;
                }
            }
            done
        });
    }
    let mut done = 0;
    while let Some(r) = tasks.join_next().await {
        done += r?;
    }
    let elapsed = started.elapsed();
    let commits = store.commit_groups() - commits_before;
    Ok(Raw {
        rate: done as f64 / elapsed.as_secs_f64(),
        commits,
        per_commit: done as f64 / commits.max(1) as f64,
    })
}

// ---------------------------------------------------------------------------------------------
// (b) HTTP ceiling

async fn accept_only(body: Bytes) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) => {
            let id = v
                .get("email")
                .and_then(Value::as_str)
                .map(|e| e.len())
                .unwrap_or(0);
            (StatusCode::ACCEPTED, Json(json!({"lead_id": format!("01900000-0000-7000-8000-{id:012x}"), "duplicate": false})))
                .into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn bench_http_ceiling(s: &Settings) -> anyhow::Result<Load> {
    let app = Router::new().route("/hooks/{connector}", post(accept_only));
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let load = hammer(
        format!("http://{addr}/hooks/website"),
        s.clients,
        Some(s.seconds),
        None,
        0,
    )
    .await;
    server.abort();
    Ok(load)
}

// ---------------------------------------------------------------------------------------------
// (c) durable intake and (d) burst: the real daemon against the HubSpot sandbox.

struct Stack {
    sandbox: HubspotSandbox,
    daemon: Daemon,
    _dir: tempfile::TempDir,
}

/// `hubspot_extra`: lines added to `[connectors.hubspot]`.
async fn start_stack(hubspot_extra: &str) -> anyhow::Result<Stack> {
    let sandbox =
        HubspotSandbox::start(([127, 0, 0, 1], 0).into(), SandboxOptions::default()).await?;
    let dir = tempfile::tempdir()?;
    let text = common::hubspot_config(
        "127.0.0.1:0",
        &dir.path().join("tandem.db"),
        &sandbox.base_url(),
        "",
        hubspot_extra,
    );
    let config = Config::from_str_at(&text, &dir.path().join("tandem.toml"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let daemon = Daemon::start(config).await?;
    Ok(Stack {
        sandbox,
        daemon,
        _dir: dir,
    })
}

struct Durable {
    load: Load,
    per_commit: f64,
}

/// `hubspot_extra` = `rate_limit = "1/1h"` holds delivery back (one call, then nothing), which
/// measures intake alone; empty lets delivery run at HubSpot's rate, as in production.
async fn bench_durable(s: &Settings, hubspot_extra: &str) -> anyhow::Result<Durable> {
    let stack = start_stack(hubspot_extra).await?;
    let url = format!("http://{}/hooks/website", stack.daemon.addr);
    let store = stack.daemon.store();
    let before = store.commit_groups();
    let load = hammer(url, s.clients, Some(s.seconds), None, 0).await;
    // Commits also include the engine's claims and settlements; this is leads per commit overall.
    let commits = store.commit_groups() - before;
    let per_commit = load.ok as f64 / commits.max(1) as f64;
    let stopping = Instant::now();
    stack.daemon.shutdown().await;
    stack.sandbox.shutdown().await;
    if stopping.elapsed() > Duration::from_secs(2) {
        println!(
            "    (shutdown took {:.1} s)",
            stopping.elapsed().as_secs_f64()
        );
    }
    Ok(Durable { load, per_commit })
}

struct Burst {
    leads: usize,
    posted: Duration,
    elapsed: Duration,
    upsert_calls: u64,
    rate_limited: u64,
    contacts: usize,
}

impl Burst {
    fn ideal_calls(&self) -> usize {
        self.leads.div_ceil(100)
    }
    /// HubSpot's 190 requests per 10 s, as a steady 19 calls/s.
    fn floor(&self) -> Duration {
        Duration::from_secs_f64(self.ideal_calls() as f64 / 19.0)
    }
}

async fn bench_burst(s: &Settings) -> anyhow::Result<Burst> {
    let stack = start_stack("").await?;
    let url = format!("http://{}/hooks/website", stack.daemon.addr);
    let started = Instant::now();
    // Distinct emails from a range no other phase used.
    let load = hammer(url, s.clients, None, Some(s.burst as u64), 50_000_000).await;
    let posted = started.elapsed();
    anyhow::ensure!(
        load.errors == 0,
        "{} burst submissions were not accepted",
        load.errors
    );
    let store = stack.daemon.store();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let st = store.status().await?;
        let idle = st.iter().all(|d| d.pending == 0 && d.in_flight == 0);
        if idle && stack.sandbox.stats().inputs_received as usize >= s.burst {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the burst did not drain within 120 s: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    let stats = stack.sandbox.stats();
    let contacts = stack.sandbox.contacts().len();
    stack.daemon.shutdown().await;
    stack.sandbox.shutdown().await;
    Ok(Burst {
        leads: s.burst,
        posted,
        elapsed,
        upsert_calls: stats.upsert_calls,
        rate_limited: stats.rate_limited,
        contacts,
    })
}
