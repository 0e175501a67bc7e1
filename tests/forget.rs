//! `tandem forget` end to end: leads for a person reach the HubSpot sandbox, the CLI forgets them
//! through the running daemon's admin API, HubSpot's GDPR delete removes the contact, and the
//! state file keeps nothing that names them: only anonymised attribution fields and an audit
//! entry with a salted hash.

mod common;

use std::time::Duration;

use common::{Harness, process::tandem};
use serde_json::{Value, json};
use tandem::store::Store;

const EMAIL: &str = "jane.forgetme@example.com";
const PHONE_DIGITS: &str = "4155552671";
const FIRST: &str = "Janeforgetme";
const LAST: &str = "Doeforgetme";
const CLICK_ID: &str = "GCLID-FORGET-42";

/// Every text or blob value of every table of the state file that contains `needle`.
fn occurrences(path: &std::path::Path, needle: &str) -> Vec<String> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut found = Vec::new();
    for t in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for (i, name) in names.iter().enumerate() {
                let text = match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                        String::from_utf8_lossy(b).to_lowercase()
                    }
                    _ => continue,
                };
                if text.contains(&needle.to_lowercase()) {
                    found.push(format!("{t}.{name}"));
                }
            }
        }
    }
    found
}

/// The harness's config with the daemon's real address, for the CLI.
fn cli_config(h: &Harness) -> String {
    let text = common::config_text(&h.sandbox.base_url(), &h.state_path(), "", "").replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"{}\"", h.daemon().addr),
    );
    let path = h.dir.path().join("cli.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

async fn cli(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tandem(&args).output().unwrap()
    })
    .await
    .unwrap()
}

async fn api_forget(h: &Harness, identifier: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = h
        .http
        .post(h.url("/api/forget"))
        .json(&json!({ "identifier": identifier }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn forget_deletes_the_contact_erases_the_person_and_keeps_attribution() {
    let h = Harness::start().await;
    let first = h
        .http
        .post(h.url("/hooks/website"))
        .header("Idempotency-Key", "form-evt-forget-1")
        .json(&json!({
            "email": "Jane.ForgetMe@Example.com", "phone": "+1 415 555 2671",
            "first_name": FIRST, "last_name": LAST, "company": "Forgetco",
            "utm_source": "google", "utm_campaign": "spring-sale", "form": "demo-request",
            "gclid": CLICK_ID, "notes": format!("call {FIRST} {LAST}"),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 202);
    let (status, _) = h
        .post_lead(json!({"email": EMAIL, "first_name": FIRST, "utm_campaign": "retarget"}))
        .await;
    assert_eq!(status, 202);
    let (status, _) = h
        .post_lead(json!({"email": "keep.me@example.com", "first_name": "Keeper"}))
        .await;
    assert_eq!(status, 202);
    h.drain(Duration::from_secs(20)).await;
    assert!(h.sandbox.contact_by_email(EMAIL).is_some());

    // The admin API needs the token before it reads anything.
    assert_eq!(api_forget(&h, EMAIL, None).await.0, 401);
    assert_eq!(
        api_forget(&h, "not an identifier", Some("admin-secret"))
            .await
            .0,
        400
    );

    let config = cli_config(&h);
    let out = cli(vec![
        "forget".into(),
        EMAIL.to_uppercase(),
        "--config".into(),
        config.clone(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("forgotten: 2 lead(s) anonymised")
            && stdout.contains("hubspot: deletion queued"),
        "{stdout}"
    );
    assert!(
        !stdout.to_lowercase().contains(EMAIL),
        "the answer never repeats the identifier"
    );

    common::wait_until(Duration::from_secs(20), "HubSpot's GDPR delete", || async {
        h.sandbox.contact_by_email(EMAIL).is_none().then_some(())
    })
    .await;
    h.drain(Duration::from_secs(20)).await;
    let stats = h.sandbox.stats();
    assert_eq!((stats.gdpr_delete_calls, stats.gdpr_deleted), (1, 1));
    assert!(h.sandbox.contact_by_email("keep.me@example.com").is_some());

    let store = h.daemon().store();
    let audit = common::wait_until(Duration::from_secs(10), "the audit to finish", || async {
        let a = store.forget_audits(10).await.unwrap();
        (a.len() == 1 && a[0].status == "done").then(|| a[0].clone())
    })
    .await;
    assert_eq!(audit.connectors[0].connector, "hubspot");
    assert!(audit.identifier_hash.len() == 64 && !audit.identifier_hash.contains('@'));
    assert!(
        store
            .remote_id(audit.person_id, "hubspot")
            .await
            .unwrap()
            .is_none()
    );

    // Nothing in the state file names Jane any more; the other person is untouched.
    let path = h.state_path();
    for needle in [
        EMAIL,
        PHONE_DIGITS,
        FIRST,
        LAST,
        CLICK_ID,
        "Forgetco",
        "form-evt-forget-1",
    ] {
        assert_eq!(
            occurrences(&path, needle),
            Vec::<String>::new(),
            "{needle} survived"
        );
    }
    assert!(!occurrences(&path, "keep.me@example.com").is_empty());
    // What attribution needs survives, anonymised.
    let leads = store.leads_since(vec!["website".into()], 0).await.unwrap();
    let janes: Vec<tandem_connectors::Lead> = leads
        .iter()
        .filter(|l| l.person_id == audit.person_id)
        .map(|l| serde_json::from_str(&l.lead_json).unwrap())
        .collect();
    assert_eq!(janes.len(), 2);
    let t = &janes[0].touchpoint;
    assert_eq!(
        (
            t.source.as_str(),
            t.utm_campaign.as_deref(),
            t.form.as_deref()
        ),
        ("website", Some("spring-sale"), Some("demo-request"))
    );
    assert!(!t.captured_at.is_empty() && t.gclid.is_none());
    assert_eq!(
        janes[1].touchpoint.utm_campaign.as_deref(),
        Some("retarget")
    );

    // Asked again: recognised by the hash, nothing else happens.
    let out = cli(vec![
        "forget".into(),
        EMAIL.into(),
        "--config".into(),
        config.clone(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("already forgotten"));
    let (status, body) = api_forget(&h, EMAIL, Some("admin-secret")).await;
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("already_forgotten"))
    );
    assert_eq!(body["audit"]["id"], json!(audit.id));
    assert_eq!(h.sandbox.stats().gdpr_delete_calls, 1);

    // A replay never sends a forgotten person's leads again.
    let r: Value = h
        .http
        .post(h.url("/api/replay"))
        .bearer_auth("admin-secret")
        .json(&json!({"flow": "inbound", "since": "1h"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (r["forgotten"].clone(), r["enqueued"].clone()),
        (json!(2), json!(1)),
        "{r}"
    );
    h.drain(Duration::from_secs(20)).await;
    assert_eq!(h.sandbox.contacts().len(), 1, "only keep.me remains");

    // Nobody by that phone: exit 1 with a reason.
    let out = cli(vec![
        "forget".into(),
        "+1 202 555 0143".into(),
        "--config".into(),
        config,
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no person with that email or phone"));
}

#[tokio::test]
async fn forget_is_refused_while_the_daemon_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::process::free_port();
    let text = common::config_text("http://127.0.0.1:9", &dir.path().join("tandem.db"), "", "")
        .replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        );
    let config = dir.path().join("tandem.toml");
    std::fs::write(&config, text).unwrap();
    let out = cli(vec![
        "forget".into(),
        EMAIL.into(),
        "--config".into(),
        config.to_str().unwrap().into(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not running"), "{stderr}");
    assert!(
        !dir.path().join("tandem.db").exists(),
        "the CLI never writes the state file"
    );
}
