//! The demo's marketing side: realistic leads from several campaigns (with their click ids in
//! the landing URL) posted to the real webhook endpoint over HTTP.

use std::collections::BTreeSet;

use serde_json::{Value, json};

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
pub const CAMPAIGNS: &[(&str, &str, &str, &str)] = &[
    ("google", "cpc", "q4-brand-search", "gclid"),
    ("facebook", "paid_social", "q4-lookalike", "fbclid"),
    ("linkedin", "paid_social", "q4-cto-abm", "li_fat_id"),
    ("newsletter", "email", "november-digest", ""),
];

/// The `i`-th sample lead: a person, a company and one of the campaigns.
pub fn sample_lead(i: usize) -> Value {
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

/// The email of the `i`-th sample lead.
pub fn email_of(i: usize) -> String {
    sample_lead(i)["email"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Posts `n` sample leads (some as form bodies), a retried submission, a returning visitor and a
/// broken email; prints each answer. Returns the emails that were accepted.
pub async fn post_all(hook: &str, n: usize) -> anyhow::Result<BTreeSet<String>> {
    let http = reqwest::Client::new();
    let mut accepted = BTreeSet::new();
    for i in 0..n {
        let lead = sample_lead(i);
        let email = email_of(i);
        let req = if i % 4 == 3 {
            // Some forms post urlencoded bodies.
            let pairs: Vec<(String, String)> = lead
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            http.post(hook).form(&pairs)
        } else {
            http.post(hook).json(&lead)
        };
        let resp = req
            .header("Idempotency-Key", format!("demo-{i}"))
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or_default();
        println!("  POST lead {i:>2} {email:<52} -> {status} {body}");
        if status.is_success() {
            accepted.insert(email);
        }
    }
    // A sender retrying after a timeout: same Idempotency-Key, nothing stored twice.
    let retry = http
        .post(hook)
        .json(&sample_lead(0))
        .header("Idempotency-Key", "demo-0")
        .send()
        .await?;
    println!(
        "  POST lead  0 again (same Idempotency-Key)                  -> {} {}",
        retry.status(),
        retry.text().await?
    );
    // A returning visitor from the newsletter: same person, a second touchpoint, one contact.
    let back = json!({"email": email_of(0), "phone": "+44 20 7946 0958", "utm_source": "newsletter", "utm_medium": "email"});
    let r = http.post(hook).json(&back).send().await?;
    println!(
        "  POST returning visitor (newsletter, same email)            -> {} {}",
        r.status(),
        r.text().await?
    );
    // A broken form: refused with the field named, nothing stored.
    let bad = http
        .post(hook)
        .json(&json!({"email": "not-an-address", "first_name": "Broken"}))
        .send()
        .await?;
    println!(
        "  POST broken email                                          -> {} {}",
        bad.status(),
        bad.text().await?
    );
    Ok(accepted)
}
