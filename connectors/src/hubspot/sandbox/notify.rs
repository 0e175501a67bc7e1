//! HubSpot calling an app's webhook target about a deal: a JSON array of one
//! `deal.propertyChange` event, signed the way HubSpot signs it: `X-HubSpot-Signature-v3`
//! (base64 HMAC-SHA256 of method + URL + body + timestamp, keyed with the app's client secret)
//! and `X-HubSpot-Request-Timestamp` (ms), plus the legacy v1 `X-HubSpot-Signature`.

use serde_json::json;

use crate::hubspot::deal_webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_v1, sign_v3};

use super::SandboxState;

/// How a notification is signed (tests forge and replay with these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signing {
    /// With the app's client secret, stamped now.
    Genuine,
    /// With another secret.
    Forged(String),
    /// With the right secret, stamped this many ms in the past.
    Stale(i64),
}

/// The event body HubSpot would post about `deal_id`.
pub fn deal_event_body(state: &SandboxState, deal_id: &str, occurred_at_ms: i64) -> String {
    let stage = state
        .deal(deal_id)
        .and_then(|d| d.properties.get("dealstage").cloned())
        .unwrap_or_default();
    let object_id: serde_json::Value = deal_id
        .parse::<u64>()
        .map_or_else(|_| json!(deal_id), |n| json!(n));
    json!([{
        "eventId": occurred_at_ms.rem_euclid(1_000_000_007),
        "subscriptionId": 12345,
        "portalId": state.options().portal_id,
        "appId": 54321,
        "occurredAt": occurred_at_ms,
        "subscriptionType": "deal.propertyChange",
        "attemptNumber": 0,
        "objectId": object_id,
        "propertyName": "dealstage",
        "propertyValue": stage,
        "changeSource": "CRM",
        "sourceId": "userId:1"
    }])
    .to_string()
}

/// POSTs the deal event to `hook_url`; the HTTP status it answered, or `None` when the call
/// failed on the wire.
pub async fn notify(
    state: &SandboxState,
    hook_url: &str,
    deal_id: &str,
    signing: Signing,
) -> Option<u16> {
    let now = jiff::Timestamp::now().as_millisecond();
    let (secret, at) = match &signing {
        Signing::Genuine => (state.options().client_secret.clone(), now),
        Signing::Forged(secret) => (secret.clone(), now),
        Signing::Stale(ago) => (state.options().client_secret.clone(), now - ago),
    };
    let body = deal_event_body(state, deal_id, at);
    let timestamp = at.to_string();
    let v3 = sign_v3(
        secret.as_bytes(),
        "POST",
        hook_url,
        body.as_bytes(),
        &timestamp,
    );
    let v1 = sign_v1(secret.as_bytes(), body.as_bytes());
    let answer = reqwest::Client::new()
        .post(hook_url)
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, v3)
        .header(TIMESTAMP_HEADER, timestamp)
        .header("x-hubspot-signature", v1)
        .header("x-hubspot-signature-version", "v1")
        .body(body)
        .send()
        .await
        .ok()?;
    Some(answer.status().as_u16())
}
