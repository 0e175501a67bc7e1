//! The fault soak: the real binary under concurrent webhook load while the HubSpot sandbox throws
//! a mix of every fault it has (5xx, 429, latency, connections dropped after the write, per-item
//! validation failures). Afterwards every acknowledged lead is either a contact or a dead letter
//! carrying HubSpot's message, no email has two contacts, and the daemon's memory stayed flat.
//!
//! 8 s in CI; `TANDEM_SOAK_SECS=600 cargo test --release --test soak -- --nocapture` for the long
//! run (bench/CRASH-AND-SOAK.md).

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::process::{TandemProcess, free_port};
use serde_json::{Value, json};
use tandem_connectors::hubspot::sandbox::{Faults, HubspotSandbox, SandboxOptions};

fn soak_secs() -> u64 {
    std::env::var("TANDEM_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|s| *s > 0)
        .unwrap_or(8)
}

const CLIENTS: usize = 8;
/// Pause between one client's submissions: ~8 × 100/s offered at most, a steady load rather
/// than a flood, so a long run measures memory under load and not a growing backlog.
const PACE: Duration = Duration::from_millis(10);
/// HubSpot's message for the sandbox's injected per-item failures.
const VENDOR_MESSAGE: &str = "Property values were not valid";
/// Memory bound: median RSS of the last third ≤ 1.5 × median of the first third + 10 MiB.
/// The slack covers allocator arenas and SQLite's page cache filling up after start; a leak of
/// a few hundred bytes per lead exceeds it within a few minutes.
const RSS_FACTOR: f64 = 1.5;
const RSS_SLACK_KB: u64 = 10 * 1024;

fn mixed_faults(error_status: u16, seed: Option<u64>) -> Faults {
    Faults {
        error_rate: 0.1,
        error_status: Some(error_status),
        rate_limit_rate: 0.05,
        delay_ms: 20,
        drop_rate: 0.03,
        item_failure_rate: 0.02,
        seed,
        ..Default::default()
    }
}

/// A `kB` figure of `/proc/<pid>/status`: `VmRSS` (asserted on), `RssAnon` (heap: printed, so a
/// rise can be told apart from SQLite's shared-memory WAL index and mapped files).
fn proc_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

async fn admin_get(http: &reqwest::Client, url: String) -> Value {
    http.get(url)
        .bearer_auth("admin-secret")
        .send()
        .await
        .expect("admin API")
        .error_for_status()
        .expect("admin API status")
        .json()
        .await
        .expect("admin API JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_mixed_faults_every_acknowledged_lead_is_delivered_or_dead_lettered_and_memory_stays_flat()
 {
    let secs = soak_secs();
    let sandbox = HubspotSandbox::start(
        ([127, 0, 0, 1], 0).into(),
        SandboxOptions {
            seed: Some(6),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    sandbox.set_faults(mixed_faults(503, Some(6))).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let config = dir.path().join("tandem.toml");
    let text = common::config_text(&sandbox.base_url(), &dir.path().join("tandem.db"), "", "")
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{addr}\""));
    // Transient faults must not exhaust the retry budget: only HubSpot's validation errors
    // (permanent) may dead-letter.
    let text = common::set_key(&text, "daemon.delivery", "max_attempts", "40");
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("tandem.log");
    let daemon = TandemProcess::start(&config, addr, &log).await;
    let pid = daemon.child.id();

    let started = Instant::now();
    let stop = tokio_util::sync::CancellationToken::new();
    // email → lead id, for every 202.
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let refused: Arc<Mutex<BTreeMap<u16, usize>>> = Arc::default();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (acked, refused, stop) = (acked.clone(), refused.clone(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let mut n = 0usize;
                while !stop.is_cancelled() {
                    let email = format!("k{c}-n{n}@soak.example.com");
                    n += 1;
                    let r = http
                        .post(format!("http://{addr}/hooks/website"))
                        .json(&json!({"email": email, "first_name": format!("Soak {n}"),
                            "phone": "+1 415 555 2671", "utm_source": "soak"}))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 202 => {
                            let v: Value = r.json().await.unwrap_or_default();
                            let id = v["lead_id"].as_str().unwrap_or_default().to_owned();
                            acked.lock().unwrap().insert(email, id);
                        }
                        Ok(r) => {
                            *refused
                                .lock()
                                .unwrap()
                                .entry(r.status().as_u16())
                                .or_default() += 1
                        }
                        Err(e) => panic!("intake dropped a request under load: {e}"),
                    }
                    tokio::time::sleep(PACE).await;
                }
                n
            })
        })
        .collect();
    // 502 and 503 by turns, one second each (seed unchanged: the dice keep rolling).
    let flipper = {
        let (sandbox_state, stop) = (sandbox.state().clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = 0u64;
            while !stop.is_cancelled() {
                tokio::time::sleep(Duration::from_secs(1)).await;
                tick += 1;
                let status = if tick.is_multiple_of(2) { 503 } else { 502 };
                sandbox_state
                    .set_faults(mixed_faults(status, None))
                    .unwrap();
            }
        })
    };
    // RSS once a second while the load runs.
    let mut rss: Vec<u64> = Vec::new();
    let mut anon: Vec<u64> = Vec::new();
    let deadline = started + Duration::from_secs(secs);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss.push(proc_kb(pid, "VmRSS").expect("the daemon is alive"));
        anon.push(proc_kb(pid, "RssAnon").unwrap_or(0));
    }
    stop.cancel();
    let mut sent = 0usize;
    for c in clients {
        sent += c.await.unwrap();
    }
    flipper.await.unwrap();
    let load_secs = started.elapsed().as_secs_f64();

    // Faults off; everything acknowledged must now settle.
    sandbox.set_faults(Faults::default()).unwrap();
    let http = reqwest::Client::new();
    let drain_started = Instant::now();
    let status = common::wait_until(
        Duration::from_secs(120.max(secs)),
        "the queue to drain after the soak",
        || {
            let http = http.clone();
            async move {
                let s = admin_get(&http, format!("http://{addr}/api/status")).await;
                let all_done = s["destinations"].as_array().is_some_and(|d| {
                    d.iter()
                        .all(|d| d["pending"] == json!(0) && d["in_flight"] == json!(0))
                });
                all_done.then_some(s)
            }
        },
    )
    .await;
    let drain_secs = drain_started.elapsed().as_secs_f64();
    let dlq = admin_get(&http, format!("http://{addr}/api/dlq?limit=10000")).await;
    let dead: BTreeMap<String, String> = dlq["dead_letters"]
        .as_array()
        .expect("dead letters")
        .iter()
        .map(|d| {
            (
                d["lead_id"].as_str().unwrap_or_default().to_owned(),
                d["error"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let figure = |k: &str| -> u64 {
        status["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d[k].as_u64().unwrap_or(0))
            .sum()
    };
    let (done, dead_count) = (figure("done"), figure("dead"));

    let acked = acked.lock().unwrap().clone();
    let refused = refused.lock().unwrap().clone();
    let mut delivered = 0usize;
    let mut dead_lettered = 0usize;
    let mut lost = Vec::new();
    for (email, id) in &acked {
        let contact = sandbox.contact_by_email(email).is_some();
        let letter = dead.get(id);
        if let Some(error) = letter {
            dead_lettered += 1;
            assert!(
                error.contains(VENDOR_MESSAGE),
                "lead {id} was dead-lettered without HubSpot's message: {error:?}"
            );
        }
        if contact {
            delivered += 1;
        }
        if !contact && letter.is_none() {
            lost.push(email.clone());
        }
    }
    let mut per_email: BTreeMap<String, usize> = BTreeMap::new();
    for c in sandbox.contacts() {
        *per_email
            .entry(c.properties.get("email").cloned().unwrap_or_default())
            .or_default() += 1;
    }
    let duplicated: BTreeSet<_> = per_email.iter().filter(|(_, n)| **n > 1).collect();
    let third = (rss.len() / 3).max(1);
    let (first, last) = (median(&rss[..third]), median(&rss[rss.len() - third..]));
    let (anon_first, anon_last) = (median(&anon[..third]), median(&anon[anon.len() - third..]));
    let stats = sandbox.stats();
    eprintln!(
        "soak: {load_secs:.1} s of load + {drain_secs:.1} s drain, {CLIENTS} clients; {sent} posted, \
         {} acknowledged, refused {refused:?}; {delivered} delivered, {dead_lettered} dead-lettered \
         (status: done {done}, dead {dead_count}), {} contacts; sandbox: {} upsert calls with {} \
         inputs, {} 5xx, {} 429, {} dropped connections; RSS median first third {first} kB, last \
         third {last} kB (bound {} kB), of which heap (RssAnon) {anon_first} → {anon_last} kB; \
         samples kB {rss:?}",
        acked.len(),
        per_email.len(),
        stats.upsert_calls,
        stats.inputs_received,
        stats.server_errors,
        stats.rate_limited,
        stats.drops,
        (first as f64 * RSS_FACTOR) as u64 + RSS_SLACK_KB,
    );

    assert!(
        acked.len() >= 50 * secs as usize,
        "the load was too light to prove anything: {} acknowledged in {secs} s",
        acked.len()
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged leads neither delivered nor dead-lettered, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(duplicated.is_empty(), "duplicate contacts: {duplicated:?}");
    assert!(
        done + dead_count >= acked.len() as u64 && per_email.len() <= sent,
        "outbox done {done} + dead {dead_count} vs {} acknowledged; {} contacts vs {sent} sent",
        acked.len(),
        per_email.len()
    );
    assert!(
        last as f64 <= first as f64 * RSS_FACTOR + RSS_SLACK_KB as f64,
        "RSS grew from {first} kB to {last} kB (median of first and last third): {rss:?}"
    );

    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)).await, Some(0));
}
