//! The foundation's promise, proven with the real binary: every lead answered 202 reaches the CRM
//! exactly once, even when the daemon is SIGKILLed at random moments under concurrent load; and
//! the closed loop's: every won deal becomes exactly one conversion at each ad platform across
//! SIGKILLs while deal pages are recorded and conversions are in flight.

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
    // A kill cuts claims short, and a claim cut short counts as an attempt (a row that crashes
    // the daemon every time must end as a dead letter, not crash-loop it). Fifty kills a few
    // hundred ms apart under the tests' 50 ms backoff would spend a production-sized budget in
    // seconds, so the harness gives rows room: it tests loss and duplication, not the budget.
    let text = common::config_text(&sandbox.base_url(), &dir.path().join("tandem.db"), "", "")
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{addr}\""))
        .replace("max_attempts = 6", "max_attempts = 1000");
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
    // HubSpot takes 1,900 leads/s at most (190 calls of 100 per 10 s); the long run acknowledges
    // tens of thousands, so the drain gets a minute plus a second per thousand of them.
    let drain = Duration::from_secs(60 + acked.len() as u64 / 1000);
    common::wait_until(
        drain,
        &format!(
            "every one of {} acknowledged leads to reach HubSpot",
            acked.len()
        ),
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

/// The closed loop's promise, with the real binary: every won deal reaches each ad platform as
/// exactly one conversion, although the daemon is SIGKILLed while deal pages are being recorded and
/// conversions are in flight, and the platforms drop some answers after accepting the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_won_deal_is_written_back_exactly_once_across_sigkill() {
    use tandem_connectors::sandbox::{CrmFaults, SandboxDeal, start_crm, start_writeback};

    let crm = start_crm("hubspot").await.unwrap().unwrap();
    let deals = crm.deals().unwrap();
    let stages = deals.stages();
    let mut targets = Vec::new();
    for kind in ["google_ads", "meta_capi"] {
        targets.push((kind, start_writeback(kind).await.unwrap().unwrap()));
    }
    let dir = tempfile::tempdir().unwrap();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut text = format!(
        r#"
[daemon]
listen = "{addr}"
state = "sqlite:{state}"
stop_timeout = "5s"

[daemon.delivery]
backoff_base = "50ms"
backoff_max = "400ms"
linger = "20ms"
lease = "10s"
call_timeout = "5s"
max_attempts = 1000

[connectors.website]
kind = "webhook"

[connectors.crm]
{crm_toml}
{outcome_toml}

[flows.inbound]
from = ["website"]
to = "crm"
[flows.inbound.fields]
email = "{{{{ lead.email }}}}"

[attribution]
from = "crm"
to = ["google_ads", "meta_capi"]
[attribution.milestones]
won = ["{won}"]
"#,
        state = dir.path().join("tandem.db").display(),
        crm_toml = crm.connector_toml(),
        outcome_toml = deals.outcome_toml(),
        won = stages.won,
    );
    for (kind, t) in &targets {
        text.push_str(&format!("\n[connectors.{kind}]\n{}\n", t.connector_toml()));
    }
    let config = dir.path().join("tandem.toml");
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("tandem.log");

    // The people, delivered once without faults.
    let people: Vec<String> = (0..120)
        .map(|i| format!("buyer{i}@crash.example.com"))
        .collect();
    let daemon = TandemProcess::start(&config, addr, &log).await;
    let http = reqwest::Client::new();
    for p in &people {
        let r = http
            .post(format!("http://{addr}/hooks/website"))
            .json(&json!({"email": p, "utm_source": "google", "gclid": format!("gclid-{p}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    common::wait_until(Duration::from_secs(60), "every buyer in the CRM", || {
        let missing = people
            .iter()
            .filter(|p| crm.record_by_email(p).is_none())
            .count();
        async move { (missing == 0).then_some(()) }
    })
    .await;
    daemon.kill_hard();

    // Deals are won in waves; each wave's daemon is killed while it records and writes back.
    let mut won = Vec::new();
    let mut cut_short = 0u64;
    let mut kills = 0usize;
    let waves = cycles().max(3);
    for (wave, chunk) in people.chunks(people.len().div_ceil(waves)).enumerate() {
        for (_, t) in &targets {
            t.set_faults(CrmFaults {
                delay_ms: 40,
                drop_after_write_next: 3,
                server_error_rate: 0.05,
                seed: Some(wave as u64),
                ..Default::default()
            });
        }
        for p in chunk {
            won.push(deals.create_deal(SandboxDeal {
                stage: stages.won.clone(),
                amount: Some("100.00".into()),
                currency: Some("EUR".into()),
                contact_emails: vec![p.clone()],
                ..Default::default()
            }));
        }
        let daemon = TandemProcess::start(&config, addr, &log).await;
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(50..500))).await;
        daemon.kill_hard();
        kills += 1;
        // What the kill interrupted: write-backs queued or in flight (read from the state file).
        let state =
            tandem::store::sqlite::SqliteStore::open_read_only(&dir.path().join("tandem.db"))
                .unwrap();
        use tandem::store::Store;
        cut_short += state
            .status()
            .await
            .unwrap()
            .iter()
            .filter(|d| d.flow == "attribution")
            .map(|d| d.pending + d.in_flight)
            .sum::<u64>();
    }
    eprintln!(
        "crash test (write-back): {kills} SIGKILLs left {cut_short} write-backs queued or in flight (summed over the kills)"
    );

    for (_, t) in &targets {
        t.set_faults(CrmFaults::default());
    }
    let daemon = TandemProcess::start(&config, addr, &log).await;
    for (kind, t) in &targets {
        let missing = |t: &dyn tandem_connectors::sandbox::WritebackSandbox| -> Vec<String> {
            let got: BTreeSet<String> = t.received().into_iter().map(|r| r.key).collect();
            won.iter()
                .map(|d| format!("crm:{d}:won"))
                .filter(|k| !got.contains(k))
                .collect()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while !missing(t.as_ref()).is_empty() {
            if std::time::Instant::now() > deadline {
                let state = tandem::store::sqlite::SqliteStore::open_read_only(
                    &dir.path().join("tandem.db"),
                )
                .unwrap();
                use tandem::store::Store;
                panic!(
                    "{kind}: no conversion for {:?}\nqueue: {:?}\ndead: {:?}\npaused: {:?}",
                    missing(t.as_ref()),
                    state.status().await,
                    state.dead_letters(None, 20).await,
                    state.paused().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
        for r in t.received() {
            *per_key.entry(r.key).or_default() += 1;
        }
        let twice: Vec<_> = per_key.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "{kind}: counted twice: {twice:?}");
        let won_keys = per_key.keys().filter(|k| k.ends_with(":won")).count();
        assert_eq!(won_keys, won.len(), "{kind}: exactly the won deals");
        eprintln!(
            "crash test (write-back): {kind}: {} won deals, {} won conversions ({} with the implied qualified and opportunity) accepted once each, {} API calls",
            won.len(),
            won_keys,
            per_key.len(),
            t.stats().api_calls
        );
    }
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)).await, Some(0));
}
