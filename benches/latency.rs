//! Intake latency at fixed offered rates, open loop, against the no-store HTTP ceiling at the
//! same rates in the same run.
//!
//! `cargo bench --bench latency` (release build). Not a test: nothing here asserts a timing.
//! See bench/README.md for what each figure means.
//!
//! For each offered rate (default 500, 2,000 and 5,000 leads/s) a scheduler sends one POST every
//! 1/rate s whatever the answers (open loop; at most 512 outstanding), first to the answer-only
//! ceiling server, then to a fresh real daemon (`Daemon::start`, 202 after the group commit's
//! fsync) delivering to the HubSpot sandbox. Latency runs from each request's *scheduled* send
//! time to its 202, so a stall is charged to every request it delays (no coordinated omission).
//! The servers run on their own 2-worker runtime, the load generator on another single-worker
//! runtime; both share the machine's CPUs.
//!
//! Knobs: `BENCH_RATES` (comma-separated leads/s, default `500,2000,5000`), `BENCH_SECONDS`
//! (measured seconds per rate and server, default 8; one more second of warm-up is discarded).

mod common;

use std::time::Duration;

use common::{OpenLoop, env_num, ms, open_loop, print_load, print_machine, start_ceiling};
use tandem::{config::Config, daemon::Daemon};
use tandem_connectors::hubspot::sandbox::{HubspotSandbox, SandboxOptions};

const MAX_IN_FLIGHT: usize = 512;
const WARMUP: Duration = Duration::from_secs(1);

struct Row {
    rate: f64,
    ceiling: OpenLoop,
    durable: OpenLoop,
}

fn main() -> anyhow::Result<()> {
    let rates: Vec<f64> = std::env::var("BENCH_RATES")
        .ok()
        .map(|v| v.split(',').filter_map(|r| r.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![500.0, 2_000.0, 5_000.0]);
    let measure = Duration::from_secs(env_num("BENCH_SECONDS", 8));
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("server")
        .enable_all()
        .build()?;
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("loadgen")
        .enable_all()
        .build()?;
    print_machine();
    println!(
        "settings: open loop, {} s measured (+{} s warm-up) per rate and server, at most {MAX_IN_FLIGHT} requests outstanding",
        measure.as_secs(),
        WARMUP.as_secs()
    );

    let (ceiling_addr, ceiling_task) = servers.block_on(start_ceiling())?;
    let mut rows = Vec::new();
    for (k, &rate) in rates.iter().enumerate() {
        // Distinct leads in every phase (the ceiling doesn't care; the daemon would dedup).
        let first = 10_000_000 * (k as u64 + 1);
        let ceiling = clients.block_on(open_loop(
            &format!("http://{ceiling_addr}/hooks/website"),
            rate,
            WARMUP,
            measure,
            first,
            MAX_IN_FLIGHT,
        ));
        print_phase("ceiling", &ceiling);

        let dir = tempfile::tempdir()?;
        let (sandbox, daemon) = servers.block_on(async {
            let sandbox =
                HubspotSandbox::start(([127, 0, 0, 1], 0).into(), SandboxOptions::default())
                    .await?;
            let text = common::hubspot_config(
                "127.0.0.1:0",
                &dir.path().join("tandem.db"),
                &sandbox.base_url(),
                "",
                "",
            );
            let config = Config::from_str_at(&text, &dir.path().join("tandem.toml"))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let daemon = Daemon::start(config).await?;
            anyhow::Ok((sandbox, daemon))
        })?;
        let durable = clients.block_on(open_loop(
            &format!("http://{}/hooks/website", daemon.addr),
            rate,
            WARMUP,
            measure,
            first + 5_000_000,
            MAX_IN_FLIGHT,
        ));
        print_phase("durable", &durable);
        servers.block_on(async {
            daemon.shutdown().await;
            sandbox.shutdown().await;
        });
        rows.push(Row {
            rate,
            ceiling,
            durable,
        });
    }
    ceiling_task.abort();
    print_load("at end");

    println!();
    println!(
        "| offered leads/s | server | achieved 202/s | p50 | p99 | max | non-202 | max send lag |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        for (name, l) in [
            ("HTTP ceiling (no store)", &r.ceiling),
            ("durable (daemon, HubSpot delivery running)", &r.durable),
        ] {
            println!(
                "| {:.0} | {name} | {:.0} | {} | {} | {} | {} | {} |",
                r.rate,
                l.achieved,
                ms(l.lat.p50),
                ms(l.lat.p99),
                ms(l.lat.max),
                l.errors,
                ms(l.max_send_lag)
            );
        }
    }
    println!();
    println!("| offered leads/s | p50 durable / p50 ceiling | p99 durable / p99 ceiling |");
    println!("|---|---|---|");
    for r in &rows {
        println!(
            "| {:.0} | {:.1} | {:.1} |",
            r.rate,
            ratio(r.durable.lat.p50, r.ceiling.lat.p50),
            ratio(r.durable.lat.p99, r.ceiling.lat.p99)
        );
    }
    Ok(())
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

fn print_phase(name: &str, l: &OpenLoop) {
    println!(
        "{:>5.0} leads/s offered, {name:<7}: {} sent, {} × 202, {} other; p50 {} / p99 {} / max {}",
        l.offered,
        l.sent,
        l.ok,
        l.errors,
        ms(l.lat.p50),
        ms(l.lat.p99),
        ms(l.lat.max)
    );
}
