//! `status`, `dlq`, `replay` and `forget`: through the running daemon's admin API; `status` and `dlq list`
//! fall back to reading the state file read-only when the daemon is down.

use serde_json::{Value, json};

use super::{
    DlqCommand, Selection,
    admin_client::{AdminClient, AdminError},
};
use crate::{
    config::{Config, StateLocation},
    store::{DeadLetter, DestinationStatus, Store, sqlite::SqliteStore},
};

fn offline_store(config: &Config) -> anyhow::Result<SqliteStore> {
    let StateLocation::Sqlite(path) = &config.daemon.state;
    Ok(SqliteStore::open_read_only(path)?)
}

pub async fn status(config: &Config, as_json: bool) -> anyhow::Result<i32> {
    let client = AdminClient::new(config)?;
    let (value, source) = match client.get("/api/status").await {
        Ok(v) => (v, "daemon"),
        Err(AdminError::NotRunning(at)) => {
            let store = offline_store(config)?;
            let destinations = store.status().await?;
            let paused = store.paused().await?;
            eprintln!("(the daemon is not running at {at}; read from the state file)");
            let paused: Vec<Value> = paused
                .into_iter()
                .map(|(c, r)| json!({"connector": c, "reason": r}))
                .collect();
            (
                json!({ "destinations": destinations, "paused": paused }),
                "state file",
            )
        }
        Err(AdminError::Other(e)) => return Err(e),
    };
    if as_json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(0);
    }
    let destinations: Vec<DestinationStatus> =
        serde_json::from_value(value["destinations"].clone()).unwrap_or_default();
    print!("{}", render_status(&destinations));
    let paused = value["paused"].as_array().cloned().unwrap_or_default();
    for p in &paused {
        println!(
            "PAUSED {}: {}",
            p["connector"].as_str().unwrap_or("?"),
            p["reason"].as_str().unwrap_or("?")
        );
    }
    if destinations.is_empty() {
        println!("no deliveries yet ({source})");
    }
    Ok(if paused.is_empty() { 0 } else { 2 })
}

/// The status table, one row per flow and destination.
pub fn render_status(rows: &[DestinationStatus]) -> String {
    let mut out = format!(
        "{:<16} {:<16} {:>8} {:>9} {:>8} {:>6} {:>14}  {}\n",
        "FLOW",
        "DESTINATION",
        "PENDING",
        "IN FLIGHT",
        "DONE",
        "DEAD",
        "OLDEST PENDING",
        "LAST ERROR"
    );
    for d in rows {
        let age = d
            .oldest_pending_age_ms
            .map_or("-".to_string(), |ms| format!("{:.1}s", ms as f64 / 1000.0));
        let err: String = d
            .last_error
            .as_deref()
            .unwrap_or("-")
            .chars()
            .take(80)
            .collect();
        out.push_str(&format!(
            "{:<16} {:<16} {:>8} {:>9} {:>8} {:>6} {:>14}  {}\n",
            d.flow, d.destination, d.pending, d.in_flight, d.done, d.dead, age, err
        ));
    }
    out
}

pub async fn dlq(config: &Config, command: DlqCommand) -> anyhow::Result<i32> {
    let client = AdminClient::new(config)?;
    match command {
        DlqCommand::List {
            destination,
            limit,
            json,
        } => {
            let mut path = format!("/api/dlq?limit={limit}");
            if let Some(d) = &destination {
                path.push_str(&format!("&destination={d}"));
            }
            let letters: Vec<DeadLetter> = match client.get(&path).await {
                Ok(v) => serde_json::from_value(v["dead_letters"].clone())?,
                Err(AdminError::NotRunning(at)) => {
                    eprintln!("(the daemon is not running at {at}; read from the state file)");
                    offline_store(config)?
                        .dead_letters(destination, limit)
                        .await?
                }
                Err(AdminError::Other(e)) => return Err(e),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&letters)?);
            } else {
                println!(
                    "{:>8} {:<16} {:<16} {:>8}  {:<36}  ERROR",
                    "ID", "FLOW", "DESTINATION", "ATTEMPTS", "LEAD"
                );
                for l in &letters {
                    println!(
                        "{:>8} {:<16} {:<16} {:>8}  {:<36}  {}",
                        l.id, l.flow, l.destination, l.attempts, l.lead_id, l.error
                    );
                }
                println!("{} dead letter(s)", letters.len());
            }
            Ok(0)
        }
        DlqCommand::Retry(sel) => {
            let v = needs_daemon(client.post("/api/dlq/retry", &selection(sel)).await)?;
            println!("{} dead letter(s) queued again", v["retried"]);
            Ok(0)
        }
        DlqCommand::Drop(sel) => {
            let v = needs_daemon(client.post("/api/dlq/drop", &selection(sel)).await)?;
            println!("{} dead letter(s) dropped", v["dropped"]);
            Ok(0)
        }
    }
}

pub async fn replay(config: &Config, flow: &str, since: &str) -> anyhow::Result<i32> {
    let client = AdminClient::new(config)?;
    let v = needs_daemon(
        client
            .post("/api/replay", &json!({"flow": flow, "since": since}))
            .await,
    )?;
    println!(
        "{} lead(s) queued again for flow {flow} ({} could not be mapped)",
        v["enqueued"], v["unmappable"]
    );
    Ok(0)
}

/// `tandem forget`: exit 0 when the person was forgotten now or before, 1 when nobody matches.
pub async fn forget(config: &Config, identifier: &str) -> anyhow::Result<i32> {
    let client = AdminClient::new(config)?;
    let (status, v) = needs_daemon(
        client
            .post_answer("/api/forget", &json!({ "identifier": identifier }))
            .await,
    )?;
    let message = v["message"].as_str().unwrap_or("no message");
    match (status, v["result"].as_str()) {
        (200, Some("forgotten")) => {
            let audit = &v["audit"];
            println!(
                "forgotten: {} lead(s) anonymised (attribution fields kept), {} queued delivery(ies) cancelled; audit entry #{}",
                v["leads"], v["cancelled_deliveries"], audit["id"]
            );
            let connectors = audit["connectors"].as_array().cloned().unwrap_or_default();
            if connectors.is_empty() {
                println!("no CRM knows this person: nothing to delete elsewhere");
            }
            for c in &connectors {
                let name = c["connector"].as_str().unwrap_or("?");
                match c["status"].as_str() {
                    Some("queued") => println!(
                        "{name}: deletion queued (delivery {}); `tandem status` shows it under flow \"forget\"",
                        c["delivery_id"]
                    ),
                    Some("unsupported") => println!(
                        "{name}: this connector can't delete records yet: delete the person there by hand, then `tandem dlq drop {}`",
                        c["delivery_id"]
                    ),
                    _ => {
                        println!("{name}: no longer in the config: delete the person there by hand")
                    }
                }
            }
            Ok(0)
        }
        (200, Some("already_forgotten")) => {
            let audit = &v["audit"];
            let when = audit["requested_at_ms"]
                .as_i64()
                .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
                .map_or_else(|| "?".to_owned(), |t| t.to_string());
            println!(
                "already forgotten at {when} (audit entry #{}, deletions {}); nothing stored matches it now",
                audit["id"],
                audit["status"].as_str().unwrap_or("?")
            );
            Ok(0)
        }
        (404, _) => {
            eprintln!("tandem: {message}");
            Ok(1)
        }
        _ => Err(anyhow::anyhow!("the daemon answered {status}: {message}")),
    }
}

fn selection(sel: Selection) -> Value {
    if sel.all {
        json!({"all": true})
    } else {
        json!({"ids": sel.ids})
    }
}

/// State changes go through the daemon only: the state file belongs to it.
fn needs_daemon<T>(r: Result<T, AdminError>) -> anyhow::Result<T> {
    r.map_err(|e| match e {
        AdminError::NotRunning(at) => anyhow::anyhow!(
            "the daemon is not running at {at}; changes go through the running daemon (start it: systemctl start tandem)"
        ),
        AdminError::Other(e) => e,
    })
}

/// `check --connect`: through the running daemon (it owns the OAuth tokens), else in-process
/// with the state file opened by this command (the daemon is down, so nobody else holds it).
pub async fn check_connect(config: Config) -> anyhow::Result<i32> {
    let client = AdminClient::new(&config)?;
    let problems: Vec<(String, String)> = match client.post("/api/verify", &json!({})).await {
        Ok(v) => v["problems"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let s = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
                (s("connector"), s("problem"))
            })
            .collect(),
        Err(AdminError::NotRunning(_)) => {
            let StateLocation::Sqlite(path) = &config.daemon.state;
            let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(SqliteStore::open(
                path,
                crate::store::sqlite::SqliteOptions::default(),
            )?);
            crate::daemon::runtime::Runtime::build(config, store)?
                .verify_connections()
                .await
        }
        Err(AdminError::Other(e)) => return Err(e),
    };
    for (connector, problem) in &problems {
        println!("{connector}: {problem}");
    }
    if problems.is_empty() {
        println!("connections OK: every CRM accepted the credentials and knows every mapped field");
        Ok(0)
    } else {
        Ok(1)
    }
}
