//! The attribution and quality reports over a large store: `BENCH_DEALS` deals (default 100,000)
//! and `BENCH_TOUCHES` touchpoints (default 1,000,000 leads), each figure against a baseline
//! measured in the same run.
//!
//! `cargo bench --bench attribution`. Not a test: nothing here asserts a figure.
//!
//! The state file is built through the public `Store` API (leads through `ingest`, deals through
//! `record_outcomes`, as the daemon would have written them). Then:
//! 1. **Baseline**: a bare scan of the `leads` table reading every row's JSON (the least any
//!    report that reads leads from the store can cost).
//! 2. **Load**: `Store::attribution_inputs` (every deal, its people, every lead read as a
//!    touchpoint): ratio to the baseline.
//! 3. **Compute**: each model's `attribution_report` and the `quality_report` over the loaded
//!    inputs, in memory: ratio to the baseline.
//!
//! Knobs: `BENCH_DEALS`, `BENCH_TOUCHES`, `BENCH_STATE` (reuse a state file built earlier).

mod common;

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use common::{env_num, ms, print_machine};
use tandem::{
    attribution::{Dimension, Model, ModelParams},
    outcomes::{
        milestones::Reached,
        report::{ReportPeriod, attribution_report, quality_report},
    },
    store::{
        DealRecord, LeadDelivery, NewLead, OutcomeBatch, PersonKey, Store,
        sqlite::{SqliteOptions, SqliteStore},
    },
};
use tandem_connectors::{
    outcome::{DealContact, DealState, Outcome},
    writeback::Milestone,
};

const SOURCES: &[(&str, &str)] = &[
    ("google", "cpc"),
    ("facebook", "paid_social"),
    ("linkedin", "paid_social"),
    ("newsletter", "email"),
    ("bing", "cpc"),
];
const DAY: i64 = 86_400_000;
const START: i64 = 1_767_225_600_000; // 2026-01-01

fn lead(n: u64, people: u64) -> NewLead {
    let person = n % people;
    let (source, medium) = SOURCES[(n as usize / 7) % SOURCES.len()];
    // Touchpoints fall in the 70 days before the deals' closes (days 250-310), so the 90-day
    // lookback keeps most of them.
    let captured = START + 180 * DAY + (n as i64 * 7_919_000) % (70 * DAY);
    let at = jiff::Timestamp::from_millisecond(captured)
        .map(|t| t.to_string())
        .unwrap_or_default();
    NewLead {
        id: format!("L{n:08}"),
        source: "website".into(),
        received_at_ms: captured,
        lead_json: format!(
            r#"{{"email":"p{person}@bench.example.com","first_name":"P","touchpoint":{{"source":"website","utm_source":"{source}","utm_medium":"{medium}","utm_campaign":"c{}","gclid":"g{n}","captured_at":"{at}"}}}}"#,
            n % 40
        ),
        raw_body: Vec::new(),
        content_type: None,
        person: PersonKey {
            email: Some(format!("p{person}@bench.example.com")),
            ..Default::default()
        },
        idempotency_key: None,
        deliveries: Vec::<LeadDelivery>::new(),
    }
}

async fn build(path: &std::path::Path, deals: u64, touches: u64) -> anyhow::Result<()> {
    let store = Arc::new(SqliteStore::open(path, SqliteOptions::default())?);
    // Every deal has one person; people without a deal are leads that went nowhere.
    let people = (touches / 4).max(deals);
    let started = Instant::now();
    let mut next = 0u64;
    while next < touches {
        let chunk: Vec<_> = (next..(next + 2_000).min(touches))
            .map(|n| {
                let s = store.clone();
                tokio::spawn(async move { s.ingest(lead(n, people)).await })
            })
            .collect();
        for c in chunk {
            c.await??;
        }
        next += 2_000;
    }
    println!(
        "  built {touches} leads of {people} people in {}",
        ms(started.elapsed())
    );
    let started = Instant::now();
    for first in (0..deals).step_by(1_000) {
        let batch = (first..(first + 1_000).min(deals))
            .map(|d| {
                let won = d % 3 != 2;
                let state = if won { DealState::Won } else { DealState::Lost };
                let closed = START + 250 * DAY + (d as i64 % 60) * DAY;
                let milestone = if won { Milestone::Won } else { Milestone::Lost };
                DealRecord {
                    outcome: Outcome {
                        deal_id: format!("D{d}"),
                        pipeline: None,
                        stage: if won { "closedwon" } else { "closedlost" }.into(),
                        state,
                        amount_minor: Some(100_000 + (d as i64 % 97) * 1_001),
                        currency: Some(if d % 5 == 0 { "USD" } else { "EUR" }.into()),
                        created_at_ms: closed - 20 * DAY,
                        closed_at_ms: Some(closed),
                        modified_at_ms: closed,
                        contacts: vec![DealContact::default()],
                    },
                    milestone,
                    reached: Reached::from([(milestone, closed)]),
                    // People ids start at 1 in insertion order.
                    person_ids: vec![(d % people) as i64 + 1],
                    writebacks: vec![],
                }
            })
            .collect();
        store
            .record_outcomes(OutcomeBatch {
                crm: "crm".into(),
                deals: batch,
                cursor: None,
            })
            .await?;
    }
    println!("  built {deals} deals in {}", ms(started.elapsed()));
    Ok(())
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let v = f();
    (v, started.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let deals = env_num("BENCH_DEALS", 100_000);
    let touches = env_num("BENCH_TOUCHES", 1_000_000);
    print_machine();
    println!("attribution report: {deals} deals, {touches} touchpoints");
    let dir = tempfile::tempdir()?;
    let path = match std::env::var_os("BENCH_STATE") {
        Some(p) if PathBuf::from(&p).exists() => PathBuf::from(p),
        other => {
            let p = other.map_or_else(|| dir.path().join("bench.db"), PathBuf::from);
            build(&p, deals, touches).await?;
            p
        }
    };
    let store = SqliteStore::open_read_only(&path)?;

    // 1. Baseline: read every lead's JSON, nothing else.
    let raw_path = path.clone();
    let (bytes, scan) = tokio::task::spawn_blocking(move || -> anyhow::Result<(u64, Duration)> {
        let conn = rusqlite::Connection::open_with_flags(
            &raw_path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let started = Instant::now();
        let mut stmt = conn.prepare("SELECT lead_json FROM leads")?;
        let mut rows = stmt.query([])?;
        let mut bytes = 0u64;
        while let Some(r) = rows.next()? {
            bytes += r.get_ref(0)?.as_str()?.len() as u64;
        }
        Ok((bytes, started.elapsed()))
    })
    .await??;
    println!(
        "  baseline: scan of {touches} lead rows ({} MiB of JSON): {}",
        bytes / (1 << 20),
        ms(scan)
    );
    let ratio = |d: Duration| d.as_secs_f64() / scan.as_secs_f64().max(1e-9);

    // 2. Load.
    let started = Instant::now();
    let inputs = store.attribution_inputs().await?;
    let load = started.elapsed();
    let touch_count: usize = inputs.touches.values().map(Vec::len).sum();
    println!(
        "  load (attribution_inputs: {} deals, {touch_count} touchpoints): {} = {:.2}x the scan",
        inputs.deals.len(),
        ms(load),
        ratio(load)
    );

    // 3. Compute, in memory.
    let period = ReportPeriod::default();
    let params = ModelParams::default();
    let lookback = Duration::from_secs(90 * 86_400);
    for model in Model::ALL {
        let (report, took) = time(|| {
            attribution_report(
                &inputs,
                model,
                &params,
                lookback,
                &period,
                Dimension::Campaign,
                START + 400 * DAY,
            )
        });
        println!(
            "  {:<15} {:>4} rows: {} = {:.2}x the scan; with the load {:.2}x",
            model.name(),
            report.rows.len(),
            ms(took),
            ratio(took),
            ratio(took + load)
        );
    }
    let (quality, took) = time(|| quality_report(&inputs, &period, Dimension::Campaign));
    println!(
        "  quality         {:>4} rows: {} = {:.2}x the scan; with the load {:.2}x",
        quality.rows.len(),
        ms(took),
        ratio(took),
        ratio(took + load)
    );
    Ok(())
}
