//! The deal webhook end to end: the sandbox POSTs Pipedrive's v2 `change` event with HTTP Basic
//! auth to a loopback receiver that verifies it with the connector's own [`OutcomeWebhook`];
//! forged and stale deliveries are refused. Also the whole closed loop through the registry:
//! persons delivered by tandem, deals made by a salesperson, outcomes polled with those ids.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use serde_json::json;
use tokio::net::TcpListener;

use crate::{
    Connector, ConnectorContext, ItemResult, SinkRecord,
    outcome::{DealState, OutcomeWebhook},
    sandbox::{SandboxDeal, start_crm},
    source::{PresetError, PresetRequest},
};

use super::{config, conversion, sandbox};
use crate::{
    pipedrive::{
        PipedriveConfig,
        sandbox::{ATTRIBUTION_FIELD_KEY, FIRST_TOUCH_FIELD_KEY},
    },
    writeback::WritebackAction,
};

/// A stand-in for tandem's `/hooks/NAME`: verify, then answer as the daemon would.
async fn receive(
    State(hook): State<Arc<Box<dyn OutcomeWebhook>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let headers: BTreeMap<String, String> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_owned())))
        .collect();
    let req = PresetRequest {
        method: "POST",
        url: "http://127.0.0.1/hooks/pd",
        headers: &headers,
        body: &body,
        now_ms: jiff::Timestamp::now().as_millisecond(),
    };
    match hook.verify(&req) {
        Ok(n) => (StatusCode::OK, n.to_string()),
        Err(PresetError::Unauthorized(m)) => (StatusCode::UNAUTHORIZED, m),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn receiver(hook: Box<dyn OutcomeWebhook>) -> String {
    let app = Router::new()
        .route("/hooks/pd", post(receive))
        .with_state(Arc::new(hook));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/hooks/pd")
}

/// The closed-loop suite's connector: `connector_toml()` + `outcome_toml()` as the config.
fn conformance_config(sb: &dyn crate::sandbox::CrmSandbox) -> PipedriveConfig {
    let mut table = serde_json::Map::new();
    let text = format!(
        "{}{}",
        sb.connector_toml(),
        sb.deals().map(|d| d.outcome_toml()).unwrap_or_default()
    );
    for line in text.lines() {
        let (k, v) = line.split_once(" = ").expect("key = value");
        let value = if let Some(inline) = v.strip_prefix("{ ").and_then(|v| v.strip_suffix(" }")) {
            let mut m = serde_json::Map::new();
            for pair in inline.split(", ") {
                let (ik, iv) = pair.split_once(" = ").expect("inline pair");
                m.insert(ik.into(), json!(iv.trim_matches('"')));
            }
            json!(m)
        } else {
            json!(v.trim_matches('"'))
        };
        if k != "kind" {
            table.insert(k.into(), value);
        }
    }
    let cfg: PipedriveConfig =
        serde_json::from_value(json!(table)).expect("the sandbox's lines are a valid config");
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    cfg
}

#[tokio::test]
async fn the_webhook_is_authenticated_like_pipedrives_good_forged_and_stale() {
    let sb = start_crm("pipedrive")
        .await
        .expect("start")
        .expect("a pipedrive sandbox");
    let deals = sb.deals().expect("the deal side");
    let cfg = conformance_config(sb.as_ref());
    let source = cfg
        .outcome_source(ConnectorContext::in_memory("pd"))
        .expect("build")
        .expect("an outcome source");
    let hook = source.outcome_webhook().expect("the webhook is configured");
    let url = receiver(hook).await;
    assert_eq!(deals.notify(&url, "1").await, Some(200));

    let http = reqwest::Client::new();
    let now = jiff::Timestamp::now().as_second();
    let body = |ts: i64| json!({"meta": {"action": "change", "entity": "deal", "entity_id": "1", "version": "2.0", "timestamp": ts}, "data": {"id": 1}, "previous": null});
    let send = |user: &'static str, password: &'static str, ts: i64| {
        http.post(&url)
            .basic_auth(user, Some(password))
            .json(&body(ts))
            .send()
    };
    let o = crate::pipedrive::sandbox::SandboxOptions::default();
    assert_eq!(o.webhook_user, "tandem-hook");
    assert_eq!(
        send("tandem-hook", "sandbox-webhook-password", now)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        send("tandem-hook", "guessed", now).await.unwrap().status(),
        401
    );
    assert_eq!(
        send("someone", "sandbox-webhook-password", now)
            .await
            .unwrap()
            .status(),
        401
    );
    let stale = send("tandem-hook", "sandbox-webhook-password", now - 3600)
        .await
        .unwrap();
    assert_eq!(stale.status(), 401);
    assert!(stale.text().await.unwrap().contains("stale"));
    let unsigned = http.post(&url).json(&body(now)).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    // A person event is authentic but announces no deal: 0 (answer 200, don't poll).
    let person = http
        .post(&url)
        .basic_auth("tandem-hook", Some("sandbox-webhook-password"))
        .json(&json!({"meta": {"action": "change", "entity": "person", "timestamp": now}}))
        .send()
        .await
        .unwrap();
    assert_eq!(person.text().await.unwrap(), "0");

    // Without webhook credentials there is no webhook (anyone could make tandem poll).
    let local = sandbox().await;
    let plain = config(&local, json!({}));
    let source = plain
        .outcome_source(ConnectorContext::in_memory("pd"))
        .unwrap()
        .unwrap();
    assert!(source.outcome_webhook().is_none());
}

#[tokio::test]
async fn the_closed_loop_reads_deals_by_the_ids_tandem_delivered() {
    let sb = start_crm("pipedrive")
        .await
        .expect("start")
        .expect("a pipedrive sandbox");
    let cfg = conformance_config(sb.as_ref());
    let ctx = ConnectorContext::in_memory("pd");
    assert!(cfg.is_writeback());
    let sink = cfg.lead_sink(ctx.clone()).unwrap().unwrap();
    let rec = |id: i64, email: &str| SinkRecord {
        delivery_id: id,
        properties: BTreeMap::from([
            ("email".into(), email.into()),
            ("name".into(), "Lead".into()),
        ]),
        conflict: Default::default(),
        remote_id: None,
    };
    let out = sink
        .upsert_people(&[rec(1, "ana@example.com"), rec(2, "ben@example.com")])
        .await
        .unwrap();
    let remote: Vec<String> = out
        .items
        .iter()
        .map(|i| match i {
            ItemResult::Done { remote_id, .. } => remote_id.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    let deals = sb.deals().unwrap();
    let stages = deals.stages();
    let id = deals.create_deal(SandboxDeal {
        stage: stages.qualified.clone(),
        amount: Some("2500.00".into()),
        contact_emails: vec!["ana@example.com".into(), "ben@example.com".into()],
        ..Default::default()
    });
    deals.move_deal(&id, &stages.won, None, None);
    let source = cfg.outcome_source(ctx.clone()).unwrap().unwrap();
    let page = source.poll_outcomes(None).await.expect("poll over OAuth");
    let o = page
        .outcomes
        .iter()
        .find(|o| o.deal_id == id)
        .expect("the deal");
    assert_eq!(
        (o.state, o.stage.as_str(), o.amount_minor),
        (DealState::Won, "won", Some(250_000))
    );
    let people: Vec<&str> = o.contacts.iter().map(|c| c.remote_id.as_str()).collect();
    assert_eq!(
        people,
        remote.iter().map(String::as_str).collect::<Vec<_>>()
    );
    // The write-back through the registry lands where deal_fields() shows it.
    let wb = cfg.writeback_sink(ctx).unwrap().unwrap();
    assert!(wb.verify().await.is_empty(), "{:?}", wb.verify().await);
    let sent = wb
        .send(&[conversion(&id, WritebackAction::Send, &[("google", 1.0)])])
        .await
        .unwrap();
    assert_eq!(
        sent.items,
        [ItemResult::Done {
            remote_id: id.clone(),
            created: false
        }]
    );
    let fields = deals.deal_fields(&id);
    assert_eq!(fields.get("status").map(String::as_str), Some("won"));
    assert_eq!(
        fields.get("stage_id").map(String::as_str),
        Some("1"),
        "won keeps the stage"
    );
    assert_eq!(
        fields.get(FIRST_TOUCH_FIELD_KEY).map(String::as_str),
        Some("google / cpc / spring")
    );
    assert_eq!(
        fields.get(ATTRIBUTION_FIELD_KEY).map(String::as_str),
        Some("linear: 100% google / cpc / spring")
    );
}
