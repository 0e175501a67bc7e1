//! `tandem check --connect` for Google: one `validateOnly` request per configured conversion
//! action (Google validates credentials, account access, the conversion action and the payload,
//! and records nothing). The probe event carries only the hash of a reserved `.invalid` address:
//! no real person's data leaves the machine.

use std::collections::BTreeMap;

use crate::{
    sink::CallError,
    writeback::{Conversion, ConversionPerson, Milestone, WritebackAction},
};

use super::{
    Api, GoogleAdsWriteback,
    client::now_ms,
    data_manager, errors, legacy,
    prepare::{Prepared, prepare},
};

/// The probe's transaction id / order id.
pub const PROBE_KEY: &str = "tandem-verify";
const PROBE_EMAIL: &str = "verify@tandem.invalid";
/// Legacy row errors about the probe's made-up person, not about the configuration.
const PROBE_NOISE: &[&str] = &[
    "CLICK_NOT_FOUND",
    "UNPARSEABLE_GCLID",
    "EXPIRED_EVENT",
    "TOO_RECENT_EVENT",
    "CONVERSION_PRECEDES_EVENT",
];

fn probe(milestone: Milestone, now: i64) -> Conversion {
    Conversion {
        delivery_id: 0,
        key: PROBE_KEY.to_owned(),
        request_key: PROBE_KEY.to_owned(),
        action: WritebackAction::Send,
        milestone,
        crm: String::new(),
        crm_kind: String::new(),
        deal_id: String::new(),
        occurred_at_ms: now - 3_600_000,
        value_minor: None,
        currency: None,
        person: ConversionPerson {
            email: Some(PROBE_EMAIL.to_owned()),
            ..Default::default()
        },
        clicks: Default::default(),
        attribution: Default::default(),
    }
}

fn is_auth(e: &CallError) -> bool {
    matches!(e, CallError::Auth { .. })
}

fn credentials_hint(client: &GoogleAdsWriteback) -> String {
    match client.api {
        Api::DataManager => format!(
            "check client_id/client_secret/refresh_token (scope https://www.googleapis.com/auth/datamanager), that the Data Manager API is enabled in the Google Cloud project, and that the authorized Google user can reach account {}{}",
            client.customer_id,
            if client.login_customer_id.is_none() {
                " (through a manager account? set login_customer_id)"
            } else {
                ""
            }
        ),
        Api::GoogleAds => format!(
            "check client_id/client_secret/refresh_token (scope https://www.googleapis.com/auth/adwords), the developer token, and that the Google user can reach account {} (set login_customer_id when going through a manager)",
            client.customer_id
        ),
    }
}

async fn check(client: &GoogleAdsWriteback, p: &Prepared<'_>) -> Result<(), (bool, String)> {
    match client.api {
        Api::DataManager => {
            let body = data_manager::request(client, &p.action_id, std::slice::from_ref(p), true);
            let answer = client
                .post(&client.ingest_url(), &body)
                .await
                .map_err(|e| (is_auth(&e), e.to_string()))?;
            if answer.status.is_success() {
                return Ok(());
            }
            let e = errors::classify(
                errors::Api::DataManager,
                answer.status,
                &answer.headers,
                &answer.body,
            );
            Err((is_auth(&e), e.to_string()))
        }
        Api::GoogleAds => {
            let answer = legacy::upload_click_conversions(client, std::slice::from_ref(p), true)
                .await
                .map_err(|e| (is_auth(&e), e.to_string()))?;
            let problems: Vec<String> = answer
                .partial_failure_error
                .iter()
                .flat_map(|s| s.google_ads_errors())
                .filter(|e| !PROBE_NOISE.contains(&e.code().as_str()))
                .map(|e| format!("{}: {}", e.code(), e.message))
                .collect();
            if problems.is_empty() {
                Ok(())
            } else {
                Err((false, problems.join("; ")))
            }
        }
    }
}

pub(super) async fn verify(client: &GoogleAdsWriteback) -> Vec<String> {
    let now = now_ms();
    let mut by_action: BTreeMap<&str, Vec<Milestone>> = BTreeMap::new();
    for (m, id) in &client.actions {
        by_action.entry(id.as_str()).or_default().push(*m);
    }
    let mut problems = Vec::new();
    for (action_id, milestones) in by_action {
        let names: Vec<&str> = milestones.iter().map(|m| m.name()).collect();
        let conversion = probe(milestones[0], now);
        let p = match prepare(0, &conversion, &client.actions, now, true) {
            Ok(p) => p,
            Err(reason) => {
                problems.push(format!("conversion action {action_id}: {reason}"));
                continue;
            }
        };
        match check(client, &p).await {
            Ok(()) => {}
            Err((true, message)) => {
                // Credentials are account-wide: one line, not one per conversion action.
                problems.push(format!("{message}; {}", credentials_hint(client)));
                return problems;
            }
            Err((false, message)) => problems.push(format!(
                "conversion action {action_id} ({}): {message}; check the id under Goals > Conversions in Google Ads account {} (an \"Import\" action for clicks)",
                names.join(", "),
                client.customer_id
            )),
        }
    }
    problems
}
