//! Shared by the benches in this folder (`intake`, `latency`, `rss`, `crm_burst`): the machine
//! line, the daemon config, the lead bodies and what intake stores for them, the answer-only HTTP ceiling server, an open-loop load generator, percentiles
//! and `/proc` RSS readings. Not a bench itself: cargo only discovers `benches/*.rs` and
//! `benches/*/main.rs`.
#![allow(dead_code)]

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Bytes,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};
use tandem::store::{LeadDelivery, NewLead, PersonKey};

pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// One line naming the machine: CPUs, model, memory, kernel, where state files go.
pub fn print_machine() {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "machine: {cpus} CPUs, {model}, {:.1} GiB RAM, Linux {}; state files under {}",
        mem_kib as f64 / 1024.0 / 1024.0,
        kernel.trim(),
        std::env::temp_dir().display()
    );
    print_load("at start");
}

/// The 1/5/15-minute load averages: anything else running on the machine skews the figures.
pub fn print_load(when: &str) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let avg: Vec<&str> = load.split_whitespace().take(3).collect();
    println!("load average {when}: {}", avg.join(" "));
}

/// A realistic form submission; `n` makes the email (and so the person) distinct.
pub fn lead_body(n: u64) -> Value {
    json!({
        "email": format!("lead{n}@example.com"),
        "first_name": "Ada",
        "last_name": format!("Lovelace{n}"),
        "phone": format!("+1 415 555 {:04}", n % 10_000),
        "company": "Analytical Engines Ltd",
        "utm_source": "google",
        "utm_medium": "cpc",
        "utm_campaign": "autumn-launch",
        "gclid": format!("Cj0KCQiA{n:016x}"),
        "landing_page": "https://example.com/pricing?plan=pro",
    })
}

/// The daemon config every HubSpot bench runs: a generic webhook source into the HubSpot
/// sandbox at `hubspot_url`. `daemon_extra` adds `[daemon]` lines (e.g. an admin token);
/// `hubspot_extra` adds `[connectors.hubspot]` lines (e.g. a rate limit that holds delivery back).
pub fn hubspot_config(
    listen: &str,
    state: &std::path::Path,
    hubspot_url: &str,
    daemon_extra: &str,
    hubspot_extra: &str,
) -> String {
    format!(
        r#"
[daemon]
listen = "{listen}"
state = "sqlite:{state}"
stop_timeout = "5s"
{daemon_extra}

[daemon.limits]
max_pending_writes = 100000

[connectors.website]
kind = "webhook"
default_region = "US"

[connectors.hubspot]
kind = "hubspot"
token = "sandbox-token"
base_url = "{hubspot_url}"
{hubspot_extra}

[flows.inbound]
from = ["website"]
to = "hubspot"

[flows.inbound.fields]
email = "{{{{ lead.email }}}}"
firstname = "{{{{ lead.first_name }}}}"
lastname = "{{{{ lead.last_name }}}}"
phone = "{{{{ lead.phone }}}}"
company = "{{{{ lead.company }}}}"
lifecyclestage = "lead"
"#,
        state = state.display()
    )
}

/// What intake commits for `lead_body(n)` with the bench config: the canonical lead, the raw
/// body, one delivery to `hubspot` with its rendered payload.
pub fn new_lead(n: u64) -> NewLead {
    let body = lead_body(n);
    let email = format!("lead{n}@example.com");
    let phone = format!("+1415555{:04}", n % 10_000);
    let lead_json = json!({
        "email": email,
        "phone": phone,
        "first_name": "Ada",
        "last_name": format!("Lovelace{n}"),
        "company": "Analytical Engines Ltd",
        "custom": {},
        "touchpoint": {
            "source": "website",
            "utm_source": "google", "utm_medium": "cpc", "utm_campaign": "autumn-launch",
            "gclid": format!("Cj0KCQiA{n:016x}"),
            "landing_page": "https://example.com/pricing?plan=pro",
            "captured_at": "2026-11-20T10:00:00Z",
        },
    });
    let payload = json!({"email": email, "firstname": "Ada", "lastname": format!("Lovelace{n}"),
        "phone": phone, "company": "Analytical Engines Ltd", "lifecyclestage": "lead"});
    NewLead {
        id: format!("01900000-0000-7000-8000-{n:012x}"),
        source: "website".into(),
        received_at_ms: jiff::Timestamp::now().as_millisecond(),
        lead_json: lead_json.to_string(),
        raw_body: serde_json::to_vec(&body).unwrap_or_default(),
        content_type: Some("application/json".into()),
        person: PersonKey {
            email: Some(email),
            ..Default::default()
        },
        idempotency_key: None,
        deliveries: vec![LeadDelivery {
            flow: "inbound".into(),
            destination: "hubspot".into(),
            payload: payload.to_string(),
        }],
    }
}

// ---------------------------------------------------------------------------------------------
// The HTTP ceiling: the same axum/hyper stack answering 202 without storing (as benches/intake.rs).

async fn accept_only(body: Bytes) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) => {
            let id = v
                .get("email")
                .and_then(Value::as_str)
                .map(|e| e.len())
                .unwrap_or(0);
            (
                StatusCode::ACCEPTED,
                Json(
                    json!({"lead_id": format!("01900000-0000-7000-8000-{id:012x}"), "duplicate": false}),
                ),
            )
                .into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// Starts the answer-only server on the current runtime; returns its address and task.
pub async fn start_ceiling() -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = Router::new().route("/hooks/{connector}", post(accept_only));
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, server))
}

// ---------------------------------------------------------------------------------------------
// Percentiles.

#[derive(Debug, Clone, Copy, Default)]
pub struct Pct {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

pub fn percentiles(mut lat: Vec<Duration>) -> Pct {
    lat.sort_unstable();
    let at = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Pct {
        n: lat.len(),
        p50: at(0.50),
        p99: at(0.99),
        max: lat.last().copied().unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------------------------
// Open-loop load: send on a fixed schedule whatever the answers, latency from the scheduled time.

pub struct OpenLoop {
    pub offered: f64,
    /// Sends whose scheduled time fell in the measured window.
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    /// 202s per second of the measured window.
    pub achieved: f64,
    /// From each request's *scheduled* send time to its 202 (no coordinated omission: a slow
    /// answer that delays later sends is charged to them too).
    pub lat: Pct,
    /// The latest any send left after its scheduled time (load generator lag).
    pub max_send_lag: Duration,
}

/// POSTs lead `first + i` at `start + i / rate` for `warmup + measure`; only sends scheduled
/// after the warm-up count. At most `max_in_flight` requests are outstanding (the daemon's
/// default `max_connections` is 1024); when the cap is reached the next send waits, and that
/// wait is part of its latency.
pub async fn open_loop(
    url: &str,
    rate: f64,
    warmup: Duration,
    measure: Duration,
    first: u64,
    max_in_flight: usize,
) -> OpenLoop {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(max_in_flight)
        .build()
        .expect("client");
    let gate = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    let total = ((warmup + measure).as_secs_f64() * rate) as u64;
    let warm_n = (warmup.as_secs_f64() * rate) as u64;
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = tokio::task::JoinSet::new();
    let mut max_send_lag = Duration::ZERO;
    let mut done = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + period.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let permit = gate.clone().acquire_owned().await.expect("semaphore");
        let lag = due.elapsed();
        if i >= warm_n {
            max_send_lag = max_send_lag.max(lag);
        }
        let (http, url) = (http.clone(), url.to_owned());
        tasks.spawn(async move {
            let _permit = permit;
            let ok = match http.post(&url).json(&lead_body(first + i)).send().await {
                Ok(r) => {
                    let accepted = r.status() == StatusCode::ACCEPTED;
                    let _ = r.bytes().await;
                    accepted
                }
                Err(_) => false,
            };
            (i, ok, due.elapsed())
        });
        // Reap finished requests as we go, so the set stays small.
        while let Some(r) = tasks.try_join_next() {
            done.push(r.expect("request task"));
        }
    }
    while let Some(r) = tasks.join_next().await {
        done.push(r.expect("request task"));
    }
    let mut lat = Vec::new();
    let (mut sent, mut errors) = (0, 0);
    for (i, ok, d) in done {
        if i < warm_n {
            continue;
        }
        sent += 1;
        if ok {
            lat.push(d);
        } else {
            errors += 1;
        }
    }
    let ok = lat.len() as u64;
    OpenLoop {
        offered: rate,
        sent,
        ok,
        errors,
        achieved: ok as f64 / measure.as_secs_f64(),
        lat: percentiles(lat),
        max_send_lag,
    }
}

// ---------------------------------------------------------------------------------------------
// RSS of another process, from /proc/PID/status.

#[derive(Debug, Clone, Copy, Default)]
pub struct Rss {
    /// VmRSS, KiB.
    pub rss: u64,
    /// RssAnon (heap and other anonymous memory), KiB.
    pub anon: u64,
}

pub fn rss_of(pid: u32) -> Option<Rss> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some(Rss {
        rss: field("VmRSS:")?,
        anon: field("RssAnon:").unwrap_or(0),
    })
}

pub fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Closed-loop load: `clients` keep-alive clients POST distinct leads as fast as answers come.

pub struct ClosedLoop {
    pub ok: u64,
    pub errors: u64,
    pub elapsed: Duration,
}

/// POSTs leads `first..first + total` from `clients` clients, each on its own keep-alive
/// connection; stops early when `until` passes (if given). Returns what was acknowledged.
pub async fn closed_loop(
    url: &str,
    clients: usize,
    first: u64,
    total: u64,
    until: Option<Duration>,
) -> ClosedLoop {
    let next = Arc::new(std::sync::atomic::AtomicU64::new(first));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (url, next) = (url.to_owned(), next.clone());
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .expect("client");
        tasks.spawn(async move {
            let (mut ok, mut errors) = (0u64, 0u64);
            loop {
                if until.is_some_and(|u| started.elapsed() >= u) {
                    break;
                }
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= first + total {
                    break;
                }
                match http.post(&url).json(&lead_body(n)).send().await {
                    Ok(r) if r.status() == StatusCode::ACCEPTED => {
                        let _ = r.bytes().await;
                        ok += 1;
                    }
                    Ok(r) => {
                        let _ = r.bytes().await;
                        errors += 1;
                    }
                    Err(_) => errors += 1,
                }
            }
            (ok, errors)
        });
    }
    let (mut ok, mut errors) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        let (o, e) = r.expect("client task");
        ok += o;
        errors += e;
    }
    ClosedLoop {
        ok,
        errors,
        elapsed: started.elapsed(),
    }
}
