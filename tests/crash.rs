//! The foundation's promise, proven with the real binary: every lead answered 202 reaches the CRM
//! exactly once, even when the daemon is SIGKILLed at random moments under concurrent load.

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use common::process::{TandemProcess, free_port};
use rand::Rng;
use serde_json::json;
use tandem_connectors::hubspot::sandbox::{Faults, HubspotSandbox, SandboxOptions};

/// SIGKILLs per run: 3 in CI; `TANDEM_CRASH_CYCLES=50` for the long run (bench/CRASH-AND-SOAK.md).
fn cycles() -> usize {
    std::env::var("TANDEM_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}
const CLIENTS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_lead_lands_exactly_once_across_sigkill() {
    let sandbox = HubspotSandbox::start(([127, 0, 0, 1], 0).into(), SandboxOptions::default())
        .await
        .unwrap();
    // Slow the vendor a little so kills land while batches are in flight, and drop some
    // connections after the write: the vendor has the contact but tandem never hears back.
    sandbox
        .set_faults(Faults {
            delay_ms: 15,
            drop_rate: 0.05,
            seed: Some(11),
            ..Default::default()
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let config = dir.path().join("tandem.toml");
    let text = common::config_text(&sandbox.base_url(), &dir.path().join("tandem.db"), "", "")
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{addr}\""));
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("tandem.log");

    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let mut sent = 0usize;
    for cycle in 0..cycles() {
        let daemon = TandemProcess::start(&config, addr, &log).await;
        let stop = tokio_util::sync::CancellationToken::new();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (acked, stop) = (acked.clone(), stop.clone());
                tokio::spawn(async move {
                    let http = reqwest::Client::builder()
                        .timeout(Duration::from_secs(5))
                        .build()
                        .unwrap();
                    let mut n = 0usize;
                    while !stop.is_cancelled() {
                        let email = format!("c{cycle}-k{c}-n{n}@crash.example.com");
                        n += 1;
                        let r = http
                            .post(format!("http://{addr}/hooks/website"))
                            .json(&json!({"email": email, "first_name": format!("n{n}")}))
                            .send()
                            .await;
                        if r.is_ok_and(|r| r.status() == 202) {
                            acked.lock().unwrap().insert(email);
                        }
                    }
                    n
                })
            })
            .collect();
        let kill_after = Duration::from_millis(rand::rng().random_range(300..900));
        tokio::time::sleep(kill_after).await;
        daemon.kill_hard();
        stop.cancel();
        for c in clients {
            sent += c.await.unwrap();
        }
    }

    // Last start: no load, no faults; everything acknowledged must now drain.
    sandbox.set_faults(Faults::default()).unwrap();
    let daemon = TandemProcess::start(&config, addr, &log).await;
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 100,
        "the load was too light to prove anything: {} acked",
        acked.len()
    );
    common::wait_until(
        Duration::from_secs(60),
        "every acknowledged lead to reach HubSpot",
        || {
            let missing = acked
                .iter()
                .filter(|e| sandbox.contact_by_email(e).is_none())
                .count();
            async move { (missing == 0).then_some(()) }
        },
    )
    .await;

    let mut per_email: BTreeMap<String, usize> = BTreeMap::new();
    for c in sandbox.contacts() {
        *per_email
            .entry(c.properties.get("email").cloned().unwrap_or_default())
            .or_default() += 1;
    }
    let duplicated: Vec<_> = per_email.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "duplicate contacts: {duplicated:?}");
    // Leads committed but whose 202 was cut off by the kill may arrive too; nothing else may.
    assert!(
        per_email.len() >= acked.len() && per_email.len() <= sent,
        "{} contacts, {} acked, {} sent",
        per_email.len(),
        acked.len(),
        sent
    );
    let stats = sandbox.stats();
    eprintln!(
        "crash test: {} SIGKILLs, {sent} posted, {} acknowledged, {} contacts, {} upsert calls, {} dropped connections",
        cycles(),
        acked.len(),
        per_email.len(),
        stats.upsert_calls,
        stats.drops
    );
    let code = {
        daemon.signal("TERM");
        daemon.wait_exit(Duration::from_secs(20)).await
    };
    assert_eq!(code, Some(0));
}
