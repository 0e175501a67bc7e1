//! `tandem demo`: the whole lead path on one machine. Starts the built-in HubSpot sandbox, runs
//! the real daemon against it with config/demo.toml, posts sample leads to the real webhook
//! endpoint over HTTP (JSON and form bodies, a retried submission, a returning visitor, a broken
//! email), and shows every lead arrive in the CRM exactly once.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use anyhow::Context;
use serde_json::{Value, json};
use tandem_connectors::hubspot::sandbox::{HubspotSandbox, SandboxOptions};

use crate::{config::Config, daemon::Daemon, store::Store};

const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");
const FIRST: &[&str] = &[
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Leslie",
    "Margaret", "Tim",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Perlman",
    "Lamport",
    "Hamilton",
    "Berners-Lee",
];
const COMPANIES: &[&str] = &[
    "Analytical Engines",
    "Cobol Systems",
    "Bletchley Labs",
    "Structured Co",
    "Abstraction Inc",
    "TeX Works",
];
/// (utm_source, utm_medium, utm_campaign, click id parameter)
const CAMPAIGNS: &[(&str, &str, &str, &str)] = &[
    ("google", "cpc", "q4-brand-search", "gclid"),
    ("facebook", "paid_social", "q4-lookalike", "fbclid"),
    ("linkedin", "paid_social", "q4-cto-abm", "li_fat_id"),
    ("newsletter", "email", "november-digest", ""),
];

pub async fn run(once: bool, leads: usize, listen: &str) -> anyhow::Result<i32> {
    crate::daemon::telemetry::init_logging(crate::config::LogFormat::Text);
    let sandbox = HubspotSandbox::start(([127, 0, 0, 1], 0).into(), SandboxOptions::default())
        .await
        .context("starting the HubSpot sandbox")?;
    let dir = tempfile_dir()?;
    let text = DEMO_CONFIG
        .replace("@LISTEN@", listen)
        .replace("@STATE@", &dir.join("tandem.db").display().to_string())
        .replace("@HUBSPOT_BASE_URL@", &sandbox.base_url())
        .replace("@HUBSPOT_TOKEN@", &SandboxOptions::default().token);
    let config =
        Config::from_str_at(&text, &dir.join("demo.toml")).map_err(|e| anyhow::anyhow!("{e}"))?;
    let daemon = Daemon::start(config).await?;
    let hook = format!("http://{}/hooks/website", daemon.addr);
    println!("tandem demo");
    println!("  HubSpot sandbox  {}", sandbox.base_url());
    println!(
        "  tandem           http://{}   (webhook: POST {hook})",
        daemon.addr
    );
    println!("  state            {}\n", dir.display());

    let started = Instant::now();
    let http = reqwest::Client::new();
    let mut expected = BTreeSet::new();
    for i in 0..leads.max(1) {
        let lead = sample_lead(i);
        let email = lead["email"].as_str().unwrap_or_default().to_owned();
        let req = if i % 4 == 3 {
            // Some forms post urlencoded bodies.
            let pairs: Vec<(String, String)> = lead
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            http.post(&hook).form(&pairs)
        } else {
            http.post(&hook).json(&lead)
        };
        let resp = req
            .header("Idempotency-Key", format!("demo-{i}"))
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or_default();
        println!("  POST lead {i:>2} {email:<52} -> {status} {body}");
        if status.is_success() {
            expected.insert(email);
        }
    }
    // A sender retrying after a timeout: same Idempotency-Key, nothing stored twice.
    let retry = http
        .post(&hook)
        .json(&sample_lead(0))
        .header("Idempotency-Key", "demo-0")
        .send()
        .await?;
    println!(
        "  POST lead  0 again (same Idempotency-Key)            -> {} {}",
        retry.status(),
        retry.text().await?
    );
    // A returning visitor: same person, new phone; one contact, updated.
    let back = json!({"email": "ada.lovelace@analytical-engines.example.com", "phone": "+44 20 7946 0958", "utm_source": "newsletter", "utm_medium": "email"});
    let r = http.post(&hook).json(&back).send().await?;
    println!(
        "  POST returning visitor (same email, new phone)        -> {} {}",
        r.status(),
        r.text().await?
    );
    // A broken form: refused with the field named, nothing stored.
    let bad = http
        .post(&hook)
        .json(&json!({"email": "not-an-address", "first_name": "Broken"}))
        .send()
        .await?;
    println!(
        "  POST broken email                                     -> {} {}",
        bad.status(),
        bad.text().await?
    );

    println!("\nwaiting for every accepted lead to reach HubSpot…");
    let store = daemon.store();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = store.status().await?;
        let open: u64 = status.iter().map(|d| d.pending + d.in_flight).sum();
        let arrived = expected
            .iter()
            .filter(|e| sandbox.contact_by_email(e).is_some())
            .count();
        if open == 0 && arrived == expected.len() {
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "only {arrived} of {} leads arrived within 60 s",
                expected.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    let contacts = sandbox.contacts();
    println!("\nHubSpot sandbox contacts ({}):", contacts.len());
    println!(
        "  {:<12} {:<52} {:<10} {:<12} {:<18} {:>6}",
        "ID", "EMAIL", "FIRSTNAME", "LIFECYCLE", "PHONE", "WRITES"
    );
    for c in &contacts {
        let p = |k: &str| c.properties.get(k).cloned().unwrap_or_default();
        println!(
            "  {:<12} {:<52} {:<10} {:<12} {:<18} {:>6}",
            c.id,
            p("email"),
            p("firstname"),
            p("lifecyclestage"),
            p("phone"),
            c.writes
        );
    }
    let stats = sandbox.stats();
    println!(
        "\n{} leads accepted, {} contacts in HubSpot, {} upsert calls (batch sizes {:?}), {} x 429, in {:.2?}",
        expected.len() + 1,
        contacts.len(),
        stats.upsert_calls,
        stats.batch_sizes,
        stats.rate_limited,
        elapsed
    );
    print!("\n{}", super::ops::render_status(&store.status().await?));
    let duplicates = contacts.len() != expected.len();
    if duplicates {
        eprintln!("MISMATCH: expected {} contacts", expected.len());
    }
    if once {
        daemon.shutdown().await;
        sandbox.shutdown().await;
        return Ok(if duplicates { 1 } else { 0 });
    }
    println!("\nstill serving; try:");
    println!(
        "  curl -s -XPOST {hook} -H 'content-type: application/json' -d '{{\"email\":\"you@example.com\"}}'"
    );
    println!("  curl -s http://{}/metrics | grep tandem_", daemon.addr);
    println!("  curl -s {}/__sandbox/contacts", sandbox.base_url());
    println!("Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    daemon.shutdown().await;
    Ok(0)
}

fn sample_lead(i: usize) -> Value {
    let first = FIRST[i % FIRST.len()];
    let last = LAST[(i / FIRST.len() + i) % LAST.len()];
    let company = COMPANIES[i % COMPANIES.len()];
    let (source, medium, campaign, click) = CAMPAIGNS[i % CAMPAIGNS.len()];
    let domain = company.to_lowercase().replace(' ', "-");
    let suffix = if i < FIRST.len() {
        String::new()
    } else {
        format!("{}", i / FIRST.len())
    };
    let mut landing = format!(
        "https://www.example.com/demo?utm_source={source}&utm_medium={medium}&utm_campaign={campaign}"
    );
    if !click.is_empty() {
        landing.push_str(&format!("&{click}=demo-click-{i}"));
    }
    json!({
        "email": format!("{}.{}{suffix}@{domain}.example.com", first.to_lowercase(), last.to_lowercase()),
        "first_name": first,
        "last_name": last,
        "company": company,
        "job_title": if i.is_multiple_of(2) { "CTO" } else { "Head of Engineering" },
        "phone": format!("+1 415 555 {:04}", 100 + i),
        "country": "US",
        "landing_url": landing,
        "consent": "marketing",
        "team_size": format!("{}", 5 + i * 3),
    })
}

/// A fresh directory for the demo's state, kept after exit so it can be inspected.
fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("tandem-demo-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
