//! The deal side against the sandbox over loopback HTTP: outcomes polled by cursor
//! ([`outcomes`]), attribution written onto deals ([`writeback`]), signed deal webhooks
//! ([`webhook`]) and the new endpoints checked against HubSpot's published OpenAPI specs
//! ([`spec`]). Shared setup lives here.

mod outcomes;
mod spec;
mod webhook;
mod writeback;

use serde_json::{Value, json};

use crate::{
    ConnectorContext,
    outcome::{Outcome, OutcomeSource},
};

use super::{
    HubspotConfig,
    outcomes::HubspotOutcomes,
    sandbox::{HubspotSandbox, NewDeal, SandboxOptions},
};

pub const TOKEN: &str = "sandbox-token";

pub fn options() -> SandboxOptions {
    SandboxOptions {
        seed: Some(7),
        // Tests poll back to back; the search's own 4/s is tested on its own.
        search_rate_limit: 1000,
        rate_limit: 10_000,
        ..SandboxOptions::default()
    }
}

pub async fn sandbox(options: SandboxOptions) -> HubspotSandbox {
    HubspotSandbox::start(([127, 0, 0, 1], 0).into(), options)
        .await
        .expect("sandbox starts")
}

pub fn config(sb: &HubspotSandbox, extra: Value) -> HubspotConfig {
    let mut cfg = json!({"token": TOKEN, "base_url": sb.base_url(), "timeout": "5s"});
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let cfg: HubspotConfig = serde_json::from_value(cfg).expect("config");
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    cfg
}

pub fn source(sb: &HubspotSandbox, extra: Value) -> HubspotOutcomes {
    HubspotOutcomes::new(&config(sb, extra), ConnectorContext::in_memory("hubspot"))
        .expect("builds")
}

/// Creates contacts through the API (as tandem's lead deliveries do); their ids in order.
pub async fn contacts(sb: &HubspotSandbox, emails: &[&str]) -> Vec<String> {
    let inputs: Vec<Value> = emails
        .iter()
        .map(|e| json!({"idProperty": "email", "id": e, "properties": {"firstname": "Pat"}}))
        .collect();
    let r = reqwest::Client::new()
        .post(format!(
            "{}/crm/v3/objects/contacts/batch/upsert",
            sb.base_url()
        ))
        .bearer_auth(TOKEN)
        .json(&json!({ "inputs": inputs }))
        .send()
        .await
        .expect("upsert");
    assert_eq!(r.status(), 200);
    emails
        .iter()
        .map(|e| sb.contact_by_email(e).expect("created").id)
        .collect()
}

pub fn deal(stage: &str, amount: Option<&str>, emails: &[&str], at_ms: Option<i64>) -> NewDeal {
    NewDeal {
        name: String::new(),
        pipeline: None,
        stage: stage.to_owned(),
        amount: amount.map(str::to_owned),
        currency: None,
        contact_emails: emails.iter().map(|e| (*e).to_owned()).collect(),
        at_ms,
    }
}

pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Polls until nothing more waits: every outcome (in order), the cursor, and the pages read.
pub async fn drain(src: &HubspotOutcomes, cursor: Option<String>) -> (Vec<Outcome>, String, usize) {
    let mut cursor = cursor;
    let mut all = Vec::new();
    for pages in 1..=500 {
        let page = src
            .poll_outcomes(cursor.as_deref())
            .await
            .expect("poll succeeds");
        all.extend(page.outcomes);
        cursor = Some(page.next_cursor);
        if !page.more {
            return (all, cursor.unwrap_or_default(), pages);
        }
    }
    panic!("the poll never caught up");
}

/// Asserts `value` matches the spec's schema `name` (strict: requests; lenient: answers).
pub fn assert_schema(spec: &Value, name: &str, value: &Value, strict: bool) {
    let problems = crate::hubspot::sandbox::spec::schema_problems(spec, name, value, strict);
    assert!(
        problems.is_empty(),
        "{value} does not match {name}: {problems:#?}"
    );
}
