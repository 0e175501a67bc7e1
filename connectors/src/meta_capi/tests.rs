//! The Conversions API sink against its sandbox over real loopback HTTP: the payload Meta's CRM
//! spec asks for, hashing against independently computed vectors, dedup of a resend after a
//! dropped answer, the 7-day rule (client and sandbox), whole-request refusals mapped to every
//! event sent, error classes, and verify.

use serde_json::{Value, json};

use crate::{
    ConnectorContext,
    sandbox::{CrmFaults, WritebackSandbox},
    sink::{CallError, ItemResult},
    writeback::{
        ClickIds, Conversion, ConversionPerson, Milestone, WritebackAction, WritebackSink,
    },
};

use super::{
    MetaCapiConfig, MetaCapiSink,
    sandbox::{ACCESS_TOKEN, DATASET_ID, MetaCapiSandbox, writeback},
};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
// Independently computed (sha256sum) hashes of the normalised identifiers used below.
const EM_JANE: &str = "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d"; // jane.doe@example.com
const PH_DE: &str = "8efb96404be52f6109b9db0f687274a81e9e3cc23fabd6f0da5d38baa3d2facd"; // 4915112345678
const FN_JANE: &str = "81f8f6dde88365f3928796ec7aa53f72820b06db8664f5fe76a7eb13e24546a2"; // jane
const LN_DOE: &str = "799ef92a11af918e3fb741df42934f3b568ed2d93ac1df74f1b8d41a27932a6f"; // doe
const CO_DE: &str = "959a45d44e6fcf58361ed004681556fe50129f2109e817dec098c00c9e5d2578"; // de

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

async fn sandbox() -> MetaCapiSandbox {
    MetaCapiSandbox::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("sandbox binds")
}

fn config(sb: &MetaCapiSandbox, extra: Value) -> MetaCapiConfig {
    let mut cfg = json!({
        "dataset_id": DATASET_ID, "access_token": ACCESS_TOKEN, "base_url": sb.base_url(),
        "timeout": "2s"
    });
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let cfg: MetaCapiConfig = serde_json::from_value(cfg).expect("config");
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    cfg
}

fn sink(sb: &MetaCapiSandbox, extra: Value) -> MetaCapiSink {
    MetaCapiSink::new(&config(sb, extra), ConnectorContext::in_memory("meta")).expect("builds")
}

fn conversion(deal: &str, milestone: Milestone, at_ms: i64) -> Conversion {
    let key = format!("crm:{deal}:{}", milestone.name());
    Conversion {
        delivery_id: 7,
        key: key.clone(),
        request_key: key,
        action: WritebackAction::Send,
        milestone,
        crm: "crm".into(),
        crm_kind: "hubspot".into(),
        deal_id: deal.into(),
        occurred_at_ms: at_ms,
        value_minor: Some(150_050),
        currency: Some("EUR".into()),
        person: ConversionPerson {
            email: Some("jane.doe@example.com".into()),
            phone: Some("+4915112345678".into()),
            first_name: Some("Jane".into()),
            last_name: Some("Doe".into()),
            country: Some("DE".into()),
            ..Default::default()
        },
        clicks: ClickIds {
            meta_lead_id: Some("1234567890123456".into()),
            fbc: Some("fb.1.1700000000000.IwAR2xyz".into()),
            ..Default::default()
        },
        attribution: Default::default(),
    }
}

fn done(key: &str) -> ItemResult {
    ItemResult::Done {
        remote_id: key.into(),
        created: true,
    }
}

#[tokio::test]
async fn a_batch_is_posted_exactly_as_meta_s_crm_spec_asks() {
    let sb = sandbox().await;
    let s = sink(&sb, json!({"test_event_code": "TEST12345"}));
    let at = now_ms() - 2 * HOUR;
    let mut opp = conversion("42", Milestone::Opportunity, at);
    opp.value_minor = None;
    opp.person = ConversionPerson {
        email: Some("jane.doe@example.com".into()),
        ..Default::default()
    };
    opp.clicks = ClickIds {
        meta_lead_id: Some("444444444".into()),
        ..Default::default()
    };
    let won = conversion("43", Milestone::Won, at + HOUR);
    let out = s.send(&[opp, won]).await.expect("sent");
    assert_eq!(out.items, [done("crm:42:opportunity"), done("crm:43:won")]);

    let requests = sb.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0],
        json!({
            "data": [
                {
                    "event_name": "Sales Opportunity",
                    "event_time": at / 1000,
                    "action_source": "system_generated",
                    "event_id": "crm:42:opportunity",
                    "user_data": {"lead_id": 444_444_444u64, "em": [EM_JANE]},
                    "custom_data": {"event_source": "crm", "lead_event_source": "HubSpot"}
                },
                {
                    "event_name": "Converted",
                    "event_time": (at + HOUR) / 1000,
                    "action_source": "system_generated",
                    "event_id": "crm:43:won",
                    "user_data": {
                        "lead_id": 1_234_567_890_123_456u64, "em": [EM_JANE], "ph": [PH_DE],
                        "fn": [FN_JANE], "ln": [LN_DOE], "country": [CO_DE],
                        "fbc": "fb.1.1700000000000.IwAR2xyz"
                    },
                    "custom_data": {
                        "event_source": "crm", "lead_event_source": "HubSpot",
                        "value": 1500.5, "currency": "EUR"
                    }
                }
            ],
            "test_event_code": "TEST12345"
        })
    );
    let got = sb.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].key, "crm:43:won");
    assert_eq!(got[1].name, "Converted");
    assert_eq!(got[1].value.as_deref(), Some("1500.50"));
    assert_eq!(got[1].currency.as_deref(), Some("EUR"));
    assert_eq!(got[1].adjustment, None);
    assert_eq!(
        got[1].identifiers,
        ["lead_id", "em", "ph", "fn", "ln", "country", "fbc"]
    );
}

#[tokio::test]
async fn a_resend_after_a_dropped_answer_is_deduplicated_by_meta() {
    let sb = sandbox().await;
    let s = sink(&sb, json!({}));
    let batch = [conversion("42", Milestone::Won, now_ms() - HOUR)];
    sb.set_faults(CrmFaults {
        drop_after_write_next: 1,
        ..Default::default()
    });
    let err = s.send(&batch).await.expect_err("the answer was lost");
    assert!(matches!(err, CallError::Transient { .. }), "{err:?}");
    assert_eq!(
        sb.received().len(),
        1,
        "Meta processed the events before the drop"
    );
    let out = s.send(&batch).await.expect("resent");
    assert_eq!(out.items, [done("crm:42:won")]);
    assert_eq!(
        sb.received().len(),
        1,
        "event_id + event_name deduplicated the resend"
    );
    assert_eq!(sb.requests().len(), 2);
    // The same deal's other milestone is another event.
    let out = s
        .send(&[conversion(
            "42",
            Milestone::Opportunity,
            now_ms() - 2 * HOUR,
        )])
        .await
        .expect("sent");
    assert_eq!(out.items, [done("crm:42:opportunity")]);
    assert_eq!(sb.received().len(), 2);
}

#[tokio::test]
async fn stale_and_unmatchable_conversions_are_refused_alone_and_never_sent() {
    let sb = sandbox().await;
    let s = sink(&sb, json!({}));
    let now = now_ms();
    let fresh = conversion("1", Milestone::Qualified, now - DAY);
    let stale = conversion("2", Milestone::Qualified, now - 8 * DAY);
    let mut nobody = conversion("3", Milestone::Qualified, now - DAY);
    nobody.person = ConversionPerson {
        first_name: Some("Jane".into()),
        ..Default::default()
    };
    nobody.clicks = ClickIds::default();
    let edge = conversion("4", Milestone::Qualified, now - 7 * DAY + 2 * HOUR);
    let out = s
        .send(&[fresh, stale, nobody, edge])
        .await
        .expect("the stale event didn't sink the batch");
    assert_eq!(out.items[0], done("crm:1:qualified"));
    assert!(
        matches!(&out.items[1], ItemResult::Permanent { message } if message.contains("more than 7 days ago")),
        "{:?}",
        out.items[1]
    );
    assert!(
        matches!(&out.items[2], ItemResult::Permanent { message } if message.contains("nothing Meta can match")),
        "{:?}",
        out.items[2]
    );
    assert_eq!(out.items[3], done("crm:4:qualified"));
    let ids: Vec<Value> = sb.requests()[0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].clone())
        .collect();
    assert_eq!(ids, [json!("crm:1:qualified"), json!("crm:4:qualified")]);
    // No personal data in a refusal.
    for item in &out.items {
        if let ItemResult::Permanent { message } = item {
            assert!(
                !message.contains("jane") && !message.contains("Jane"),
                "{message}"
            );
        }
    }
    // A batch of nothing but refusals makes no request.
    let out = s
        .send(&[conversion("5", Milestone::Won, now - 30 * DAY)])
        .await
        .expect("answered");
    assert!(matches!(out.items[0], ItemResult::Permanent { .. }));
    assert_eq!(sb.requests().len(), 1);
}

async fn raw_post(sb: &MetaCapiSandbox, body: Value) -> (u16, Value) {
    let url = format!(
        "{}/v24.0/{DATASET_ID}/events?access_token={ACCESS_TOKEN}",
        sb.base_url()
    );
    let r = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("answered");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

fn raw_event(id: &str, age_ms: i64) -> Value {
    json!({
        "event_name": "Converted", "event_time": (now_ms() - age_ms) / 1000,
        "action_source": "system_generated", "event_id": id,
        "user_data": {"lead_id": 1_234_567_890_123_456u64}
    })
}

#[tokio::test]
async fn the_sandbox_fails_a_whole_request_with_one_stale_event_as_meta_does() {
    let sb = sandbox().await;
    let (status, body) = raw_post(
        &sb,
        json!({"data": [raw_event("a", HOUR), raw_event("b", 7 * DAY + 60_000)]}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 100);
    assert_eq!(body["error"]["error_subcode"], 2804003);
    assert_eq!(body["error"]["error_user_title"], "Event Timestamp Too Old");
    assert!(
        sb.received().is_empty(),
        "nothing in the request was processed"
    );
    // Just inside the window, and `data` as JSON text, is fine.
    let data = serde_json::to_string(&json!([raw_event("c", 7 * DAY - 60_000)])).unwrap();
    let (status, body) = raw_post(&sb, json!({ "data": data })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events_received"], 1);
    // Unhashed contact data, a hashed lead id, and no match key are refused.
    let mut e = raw_event("d", HOUR);
    e["user_data"] = json!({"em": ["jane.doe@example.com"]});
    let (status, body) = raw_post(&sb, json!({ "data": [e] })).await;
    assert_eq!(
        (status, body["error"]["error_subcode"].clone()),
        (400, json!(2804015))
    );
    let mut e = raw_event("e", HOUR);
    e["user_data"] = json!({"lead_id": EM_JANE});
    let (status, _) = raw_post(&sb, json!({ "data": [e] })).await;
    assert_eq!(status, 400);
    let mut e = raw_event("f", HOUR);
    e["user_data"] = json!({"fn": [FN_JANE]});
    let (status, body) = raw_post(&sb, json!({ "data": [e] })).await;
    assert_eq!(
        (status, body["error"]["error_subcode"].clone()),
        (400, json!(2804016))
    );
    // 1,000 events at most.
    let many: Vec<Value> = (0..1001)
        .map(|i| raw_event(&format!("m{i}"), HOUR))
        .collect();
    let (status, _) = raw_post(&sb, json!({ "data": many })).await;
    assert_eq!(status, 400);
    assert_eq!(sb.received().len(), 1);
}

#[tokio::test]
async fn a_request_meta_refuses_refuses_every_event_sent_with_meta_s_words() {
    let sb = sandbox().await;
    let s = sink(&sb, json!({}));
    sb.set_faults(CrmFaults {
        item_failure_rate: 1.0,
        seed: Some(3),
        ..Default::default()
    });
    let now = now_ms();
    let out = s
        .send(&[
            conversion("1", Milestone::Won, now - HOUR),
            conversion("2", Milestone::Won, now - 9 * DAY),
            conversion("3", Milestone::Won, now - HOUR),
        ])
        .await
        .expect("answered per item");
    for i in [0, 2] {
        assert!(
            matches!(&out.items[i], ItemResult::Permanent { message }
                if message.starts_with("Meta Graph error 100/2804022 (OAuthException): Invalid parameter — Invalid Event:")
                    && message.contains("fbtrace_id")),
            "{:?}",
            out.items[i]
        );
    }
    assert!(
        matches!(&out.items[1], ItemResult::Permanent { message } if message.contains("7 days")),
        "{:?}",
        out.items[1]
    );
    assert!(sb.received().is_empty());
}

#[tokio::test]
async fn throttles_outages_and_bad_tokens_are_classified() {
    let sb = sandbox().await;
    let s = sink(&sb, json!({}));
    let batch = [conversion("1", Milestone::Won, now_ms() - HOUR)];

    sb.set_faults(CrmFaults {
        rate_limit_next: 1,
        ..Default::default()
    });
    match s.send(&batch).await {
        Err(CallError::RateLimited {
            message,
            retry_after,
        }) => {
            assert!(message.contains("Meta Graph error 4"), "{message}");
            assert_eq!(retry_after, crate::meta_graph::DEFAULT_THROTTLE_WAIT);
        }
        other => panic!("{other:?}"),
    }
    sb.set_faults(CrmFaults {
        server_error_next: 1,
        ..Default::default()
    });
    assert!(matches!(
        s.send(&batch).await,
        Err(CallError::Transient { .. })
    ));
    sb.set_faults(CrmFaults {
        server_error_rate: 1.0,
        ..Default::default()
    });
    assert!(matches!(
        s.send(&batch).await,
        Err(CallError::Transient { .. })
    ));
    sb.set_faults(CrmFaults::default());
    assert_eq!(
        s.send(&batch).await.expect("sent").items,
        [done("crm:1:won")]
    );
    assert_eq!(sb.stats().rate_limited, 1);

    let wrong = sink(&sb, json!({"access_token": "not-the-token"}));
    match wrong.send(&batch).await {
        Err(CallError::Auth {
            status: 401,
            message,
        }) => {
            assert!(
                message.contains("190") && !message.contains("not-the-token"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    sb.expire_tokens();
    match s.send(&batch).await {
        Err(CallError::Auth {
            status: 401,
            message,
        }) => assert!(message.contains("190/463")),
        other => panic!("{other:?}"),
    }

    // An unknown dataset is Meta's verdict on the request: every event is refused.
    let sb = sandbox().await;
    let s = sink(&sb, json!({"dataset_id": "999"}));
    let out = s.send(&batch).await.expect("answered per item");
    assert!(
        matches!(&out.items[0], ItemResult::Permanent { message } if message.contains("100/33") && message.contains("'999'")),
        "{:?}",
        out.items[0]
    );
    // Nothing listens: transient, and the token is not in the message.
    drop(sb);
    let dead = MetaCapiSink::new(
        &serde_json::from_value::<MetaCapiConfig>(json!({
            "dataset_id": DATASET_ID, "access_token": ACCESS_TOKEN,
            "base_url": "http://127.0.0.1:9", "timeout": "2s"
        }))
        .unwrap(),
        ConnectorContext::in_memory("meta"),
    )
    .unwrap();
    match dead.send(&batch).await {
        Err(CallError::Transient { message, .. }) => assert!(!message.contains(ACCESS_TOKEN)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn verify_checks_the_token_and_the_dataset_without_writing() {
    let sb = sandbox().await;
    assert_eq!(sink(&sb, json!({})).verify().await, Vec::<String>::new());
    let lines = sink(&sb, json!({"access_token": "nope"})).verify().await;
    assert!(
        lines.len() == 1 && lines[0].contains("refused the access token"),
        "{lines:?}"
    );
    let lines = sink(&sb, json!({"dataset_id": "555"})).verify().await;
    assert!(
        lines.len() == 1 && lines[0].contains("dataset 555 can't be used"),
        "{lines:?}"
    );
    assert!(sb.requests().is_empty() && sb.received().is_empty());
}

#[tokio::test]
async fn only_sends_of_configured_milestones_are_taken() {
    let sb = sandbox().await;
    let s = sink(&sb, json!({}));
    assert_eq!(s.max_batch(), 1000);
    assert!(s.accepts(Milestone::Won) && s.accepts(Milestone::Qualified));
    assert!(!s.accepts(Milestone::Lost));
    assert!(s.supports(WritebackAction::Send));
    assert!(!s.supports(WritebackAction::Retract) && !s.supports(WritebackAction::Restate));
    assert!(!s.supports_forget());
    let mut retract = conversion("1", Milestone::Won, now_ms() - HOUR);
    retract.action = WritebackAction::Retract;
    retract.request_key = "crm:1:won:retract:1".into();
    let out = s.send(&[retract]).await.expect("answered");
    assert!(
        matches!(&out.items[0], ItemResult::Permanent { message } if message.contains("retract"))
    );
    assert!(sb.requests().is_empty());

    let with_lost = sink(&sb, json!({"event_names": {"lost": "Disqualified"}}));
    assert!(with_lost.accepts(Milestone::Lost));
    let out = with_lost
        .send(&[conversion("1", Milestone::Lost, now_ms() - HOUR)])
        .await
        .expect("sent");
    assert_eq!(out.items, [done("crm:1:lost")]);
    assert_eq!(sb.received()[0].name, "Disqualified");
}

#[tokio::test]
async fn a_batch_over_meta_s_limit_is_split_into_requests_in_order() {
    let sb = sandbox().await;
    let s = sink(&sb, json!({}));
    let at = now_ms() - HOUR;
    let batch: Vec<Conversion> = (0..1001)
        .map(|i| conversion(&i.to_string(), Milestone::Won, at))
        .collect();
    let out = s.send(&batch).await.expect("sent");
    assert_eq!(out.items.len(), 1001);
    assert!(
        out.items
            .iter()
            .all(|r| matches!(r, ItemResult::Done { .. }))
    );
    let sizes: Vec<usize> = sb
        .requests()
        .iter()
        .map(|r| r["data"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(sizes, [1000, 1]);
    assert_eq!(sb.requests()[1]["data"][0]["event_id"], "crm:1000:won");
    assert_eq!(sb.received().len(), 1001);
}

#[tokio::test]
async fn the_closed_loop_suite_s_view_of_the_sandbox() {
    let wb: Box<dyn WritebackSandbox> = writeback::start().await.expect("starts");
    assert_eq!(wb.kind(), "meta_capi");
    let toml = wb.connector_toml();
    assert!(toml.starts_with("kind = \"meta_capi\"\n"), "{toml}");
    assert!(toml.contains("lost = \"Lost\""), "{toml}");
    let base = toml
        .lines()
        .find_map(|l| l.strip_prefix("base_url = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("base_url line")
        .to_owned();
    let cfg: MetaCapiConfig = serde_json::from_value(json!({
        "dataset_id": DATASET_ID, "access_token": ACCESS_TOKEN, "base_url": base,
        "event_names": {"lost": "Lost"}
    }))
    .unwrap();
    let s = MetaCapiSink::new(&cfg, ConnectorContext::in_memory("meta")).unwrap();
    s.send(&[conversion("9", Milestone::Lost, now_ms() - HOUR)])
        .await
        .expect("sent");
    let got = wb.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].key.as_str(), got[0].name.as_str()),
        ("crm:9:lost", "Lost")
    );
    assert_eq!(wb.stats().api_calls, 1);
}
