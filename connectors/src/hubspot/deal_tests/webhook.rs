//! Deal webhooks over HTTP: the sandbox posts signed `deal.propertyChange` events to a hook
//! that hands the raw request to the connector's [`OutcomeWebhook`] the way the daemon's intake
//! does (URL rebuilt from the Host header, lowercased headers, raw body).

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
};
use serde_json::json;

use super::*;
use crate::{
    hubspot::sandbox::Signing,
    outcome::OutcomeWebhook,
    source::{PresetError, PresetRequest},
};

type Hook = Arc<Box<dyn OutcomeWebhook>>;

async fn hook(
    State(hook): State<Hook>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let headers: BTreeMap<String, String> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_owned())))
        .collect();
    let host = headers.get("host").cloned().unwrap_or_default();
    let url = format!(
        "http://{host}{}",
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let req = PresetRequest {
        method: "POST",
        url: &url,
        headers: &headers,
        body: &body,
        now_ms: now_ms(),
    };
    match hook.verify(&req) {
        Ok(n) => (StatusCode::OK, n.to_string()),
        Err(PresetError::Unauthorized(m)) => (StatusCode::UNAUTHORIZED, m),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// A loopback hook for `src`'s webhook; its URL.
async fn serve(src: &HubspotOutcomes) -> String {
    let webhook: Hook = Arc::new(src.outcome_webhook().expect("webhook_secret turns it on"));
    let app = axum::Router::new()
        .route("/hooks/hubspot", axum::routing::post(hook))
        .with_state(webhook);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    format!("http://{addr}/hooks/hubspot")
}

#[tokio::test]
async fn genuine_forged_and_stale_notifications() {
    let sb = sandbox(options()).await;
    let d = sb.create_deal(deal("qualifiedtobuy", None, &[], None));
    let secret = sb.state().options().client_secret.clone();
    let src = source(&sb, json!({ "webhook_secret": secret }));
    let url = serve(&src).await;
    assert_eq!(sb.notify(&url, &d, Signing::Genuine).await, Some(200));
    assert_eq!(
        sb.notify(&url, &d, Signing::Forged("not-the-client-secret".into()))
            .await,
        Some(401)
    );
    assert_eq!(
        sb.notify(&url, &d, Signing::Stale(6 * 60 * 1000)).await,
        Some(401)
    );
    assert_eq!(
        sb.notify(&url, &d, Signing::Stale(60 * 1000)).await,
        Some(200),
        "inside 5 minutes"
    );
    // No signature at all.
    let unsigned = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    sb.shutdown().await;
}

#[tokio::test]
async fn a_signed_event_counts_as_one_deal_event() {
    let sb = sandbox(options()).await;
    let d = sb.create_deal(deal("closedwon", None, &[], None));
    let src = source(
        &sb,
        json!({ "webhook_secret": sb.state().options().client_secret }),
    );
    let webhook = src.outcome_webhook().unwrap();
    let now = now_ms();
    let body = crate::hubspot::sandbox::notify::deal_event_body(sb.state(), &d, now);
    let url = "https://tandem.example.com/hooks/hubspot";
    let ts = now.to_string();
    let sig = crate::hubspot::deal_webhook::sign_v3(
        sb.state().options().client_secret.as_bytes(),
        "POST",
        url,
        body.as_bytes(),
        &ts,
    );
    let headers = BTreeMap::from([
        ("x-hubspot-signature-v3".to_owned(), sig),
        ("x-hubspot-request-timestamp".to_owned(), ts),
    ]);
    let req = PresetRequest {
        method: "POST",
        url,
        headers: &headers,
        body: body.as_bytes(),
        now_ms: now,
    };
    assert_eq!(webhook.verify(&req), Ok(1));
    let event: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event[0]["subscriptionType"], "deal.propertyChange");
    assert_eq!(event[0]["propertyValue"], "closedwon");
    assert_eq!(event[0]["objectId"].to_string(), d);
    // Without webhook_secret there is no deal webhook: polling only.
    assert!(source(&sb, json!({})).outcome_webhook().is_none());
    sb.shutdown().await;
}

#[tokio::test]
async fn the_deal_sandbox_trait_plays_salesperson_and_notifies() {
    let crm = crate::hubspot::sandbox::conformance::start().await.unwrap();
    let deals = crm.deals().expect("hubspot has a deal side");
    assert_eq!(deals.stages().won, "closedwon");
    assert_eq!(deals.stages().qualified, "qualifiedtobuy");
    let toml = deals.outcome_toml();
    assert!(toml.contains("outcome_poll_interval = \"200ms\""), "{toml}");
    let table: toml_like::Table = toml_like::parse(&format!("{}{toml}", crm.connector_toml()));
    let cfg: HubspotConfig = serde_json::from_value(serde_json::Value::Object(table)).unwrap();
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    let id = deals.create_deal(crate::sandbox::SandboxDeal {
        stage: deals.stages().qualified,
        amount: Some("10".into()),
        ..Default::default()
    });
    deals.move_deal(&id, &deals.stages().won, Some("12.50"), None);
    let fields = deals.deal_fields(&id);
    assert_eq!(fields["dealstage"], "closedwon");
    assert_eq!(fields["amount"], "12.50");
    assert_eq!(fields["hs_is_closed_won"], "true");
    let src = HubspotOutcomes::new(&cfg, ConnectorContext::in_memory("hubspot")).unwrap();
    let url = serve(&src).await;
    assert_eq!(deals.notify(&url, &id).await, Some(200));
}

/// Just enough of TOML for the sandbox's `key = "value"` lines (the crate has no toml parser).
mod toml_like {
    pub type Table = serde_json::Map<String, serde_json::Value>;

    pub fn parse(text: &str) -> Table {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| {
                let v = v.trim().trim_matches('"').to_owned();
                (k.trim().to_owned(), serde_json::Value::String(v))
            })
            .filter(|(k, _)| k != "kind")
            .collect()
    }
}
