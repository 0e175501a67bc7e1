//! A burst of leads into every CRM sandbox through the real daemon, against the floor the
//! vendor's rate limit and batch limit allow, measured in the same run.
//!
//! `cargo bench --bench crm_burst` (release build). Not a test: nothing here asserts a timing.
//! See bench/README.md for what each figure means.
//!
//! For each CRM kind (`tandem_connectors::sandbox::CRM_KINDS`): start its sandbox
//! (`start_crm(kind)`), start the daemon (`Daemon::start`) with the connector table the sandbox
//! describes (`connector_toml()`) and the default `[daemon.delivery]` settings, post the burst of
//! distinct leads from 64 keep-alive clients, and wait until nothing is pending or in flight and
//! every lead is done. The floor comes from the connector itself, built from the same table:
//! `LeadSink::max_batch()` and `LeadSink::default_rate_limit()`.
//!
//! - batch APIs (HubSpot, Salesforce, Zoho): `ceil(N / batch)` write calls at the steady rate
//!   `requests / per` → floor = calls × per / requests.
//! - Pipedrive has no batch or upsert endpoint: each new person costs one exact-email search and
//!   one create (2 calls); searches have their own limit of 10 per 2 s, which dominates:
//!   floor = max(N / (10 / 2 s), 2N / general rate). So the Pipedrive burst is smaller (default
//!   300 leads, a 60 s floor) and its figures scale linearly to 10,000 (≈ 33 min at that limit).
//!
//! Knobs: `BENCH_BURST` (default 10000), `BENCH_PIPEDRIVE_LEADS` (default 300), `BENCH_KINDS`
//! (comma-separated subset of the CRM kinds), `BENCH_CLIENTS` (default 64).

mod common;

use std::time::{Duration, Instant};

use common::{closed_loop, env_num, print_load, print_machine};
use tandem::{config::Config, daemon::Daemon, store::Store};
use tandem_connectors::{
    ConnectorContext, ConnectorKind,
    pipedrive::limits::{SEARCH_PER_WINDOW, WINDOW},
    sandbox::{CRM_KINDS, CrmSandbox, start_crm},
};

fn config_text(sb: &dyn CrmSandbox, state: &std::path::Path) -> String {
    let f = sb.fields();
    format!(
        r#"
[daemon]
listen = "127.0.0.1:0"
state = "sqlite:{state}"
stop_timeout = "5s"

[connectors.website]
kind = "webhook"
default_region = "US"

[connectors.crm]
{connector}

[flows.inbound]
from = ["website"]
to = "crm"

[flows.inbound.fields]
{email} = "{{{{ lead.email }}}}"
{first} = "{{{{ lead.first_name }}}}"
{last} = "{{{{ lead.last_name }}}}"
{phone} = "{{{{ lead.phone }}}}"
{company} = "{{{{ lead.company }}}}"
"#,
        state = state.display(),
        connector = sb.connector_toml(),
        email = f.email,
        first = f.first_name,
        last = f.last_name,
        phone = f.phone,
        company = f.company,
    )
}

/// The connector's batch limit and default rate limit, from the sandbox's own connector table.
fn limits(sb: &dyn CrmSandbox) -> anyhow::Result<(usize, u32, Duration)> {
    let mut table: toml::Table = sb.connector_toml().parse()?;
    let kind = table
        .remove("kind")
        .and_then(|k| k.as_str().map(str::to_owned))
        .ok_or_else(|| anyhow::anyhow!("connector table without kind"))?;
    let connector = ConnectorKind::from_kind(&kind, toml::Value::Table(table))?;
    let sink = connector
        .lead_sink(ConnectorContext::in_memory("crm"))?
        .ok_or_else(|| anyhow::anyhow!("{kind} is not a CRM"))?;
    let rl = sink.default_rate_limit();
    Ok((sink.max_batch(), rl.requests, rl.per))
}

struct Burst {
    kind: &'static str,
    leads: u64,
    batch: usize,
    rate: String,
    posted: Duration,
    post_errors: u64,
    elapsed: Duration,
    calls: u64,
    rate_limited: u64,
    records: usize,
    done: u64,
    dead: u64,
    floor: Duration,
    floor_calls: u64,
    floor_note: &'static str,
}

async fn burst(kind: &'static str, leads: u64, clients: usize) -> anyhow::Result<Burst> {
    let sb = start_crm(kind)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{kind} has no sandbox"))?;
    let (batch, requests, per) = limits(sb.as_ref())?;
    let steady = f64::from(requests) / per.as_secs_f64();
    let (floor_calls, floor, floor_note) = if kind == "pipedrive" {
        let searches = leads as f64 / (f64::from(SEARCH_PER_WINDOW) / WINDOW.as_secs_f64());
        let general = 2.0 * leads as f64 / steady;
        (
            2 * leads,
            Duration::from_secs_f64(searches.max(general)),
            "no batch endpoint: 1 email search + 1 create per new person; searches 10 / 2 s",
        )
    } else {
        let calls = leads.div_ceil(batch as u64);
        (
            calls,
            Duration::from_secs_f64(calls as f64 / steady),
            "ceil(N / batch) write calls at the steady rate",
        )
    };

    let dir = tempfile::tempdir()?;
    let text = config_text(sb.as_ref(), &dir.path().join("tandem.db"));
    let config = Config::from_str_at(&text, &dir.path().join("tandem.toml"))
        .map_err(|e| anyhow::anyhow!("{kind}: {e}"))?;
    let daemon = Daemon::start(config).await?;
    let before = sb.stats();
    let url = format!("http://{}/hooks/website", daemon.addr);

    let started = Instant::now();
    let post = closed_loop(&url, clients, 70_000_000, leads, None).await;
    let posted = started.elapsed();
    let store = daemon.store();
    let deadline = started + floor * 5 + Duration::from_secs(60);
    let (done, dead) = loop {
        let st = store.status().await?;
        let done: u64 = st.iter().map(|d| d.done).sum();
        let dead: u64 = st.iter().map(|d| d.dead).sum();
        if st.iter().all(|d| d.pending == 0 && d.in_flight == 0) && done + dead >= post.ok {
            break (done, dead);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{kind}: the burst did not drain in time: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let elapsed = started.elapsed();
    let after = sb.stats();
    let records = sb.records().len();
    daemon.shutdown().await;
    Ok(Burst {
        kind,
        leads,
        batch,
        rate: format!("{requests}/{}s", per.as_secs_f64()),
        posted,
        post_errors: post.errors,
        elapsed,
        calls: after.api_calls - before.api_calls,
        rate_limited: after.rate_limited - before.rate_limited,
        records,
        done,
        dead,
        floor,
        floor_calls,
        floor_note,
    })
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let n = env_num("BENCH_BURST", 10_000);
    let n_pipedrive = env_num("BENCH_PIPEDRIVE_LEADS", 300);
    let clients = env_num("BENCH_CLIENTS", 64) as usize;
    let kinds: Vec<&'static str> = match std::env::var("BENCH_KINDS") {
        Ok(v) => CRM_KINDS
            .iter()
            .copied()
            .filter(|k| v.split(',').any(|w| w.trim() == *k))
            .collect(),
        Err(_) => CRM_KINDS.to_vec(),
    };
    print_machine();
    println!(
        "settings: burst of {n} leads ({n_pipedrive} for pipedrive) from {clients} clients; default [daemon.delivery]"
    );
    let mut results = Vec::new();
    for kind in kinds {
        let leads = if kind == "pipedrive" { n_pipedrive } else { n };
        let b = rt.block_on(burst(kind, leads, clients))?;
        println!(
            "{:<10} {} leads posted in {:.2} s ({} refused), delivered in {:.2} s; {} API calls, {} × 429, {} records, outbox done {} / dead {}",
            b.kind,
            b.leads,
            b.posted.as_secs_f64(),
            b.post_errors,
            b.elapsed.as_secs_f64(),
            b.calls,
            b.rate_limited,
            b.records,
            b.done,
            b.dead
        );
        results.push(b);
    }

    print_load("at end");
    println!();
    println!(
        "| CRM | leads | batch limit | default rate limit | posted | delivered (first POST → queue empty) | floor | elapsed / floor | API calls | 429s | records | dead |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for b in &results {
        println!(
            "| {} | {} | {} | {} | {:.2} s | {:.2} s | {:.2} s | {:.2} | {} | {} | {} | {} |",
            b.kind,
            b.leads,
            b.batch,
            b.rate,
            b.posted.as_secs_f64(),
            b.elapsed.as_secs_f64(),
            b.floor.as_secs_f64(),
            b.elapsed.as_secs_f64() / b.floor.as_secs_f64(),
            b.calls,
            b.rate_limited,
            b.records,
            b.dead
        );
    }
    println!();
    println!(
        "| CRM | API calls per 1,000 leads | floor per 1,000 | calls / floor | how the floor is counted |"
    );
    println!("|---|---|---|---|---|");
    for b in &results {
        let per_k = b.calls as f64 * 1000.0 / b.leads as f64;
        let floor_k = b.floor_calls as f64 * 1000.0 / b.leads as f64;
        println!(
            "| {} | {:.1} | {:.1} | {:.2} | {} |",
            b.kind,
            per_k,
            floor_k,
            per_k / floor_k,
            b.floor_note
        );
    }
    for b in &results {
        if b.kind == "pipedrive" && b.leads < 10_000 {
            let scale = 10_000.0 / b.leads as f64;
            println!(
                "\npipedrive scaled to 10,000 leads (linear, the search limit is steady): ≈ {:.0} s delivered (floor {:.0} s), ≈ {:.0} API calls",
                b.elapsed.as_secs_f64() * scale,
                b.floor.as_secs_f64() * scale,
                b.calls as f64 * scale
            );
        }
    }
    Ok(())
}
