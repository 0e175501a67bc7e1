//! The Google connector against its sandbox over loopback HTTP: payload shapes as Google
//! documents them, hashing against independently computed vectors, Google's dedup of a resend,
//! restatements/retractions, per-event and per-row failures, time windows, and the
//! classification of 429/5xx/401/403.

use std::time::Duration;

use serde_json::{Value, json};

use super::{
    GoogleAdsConfig, GoogleAdsWriteback,
    sandbox::{GoogleAdsSandbox, SandboxOptions},
};
use crate::{
    ConnectorContext,
    sandbox::CrmFaults,
    sink::{CallError, ItemResult},
    writeback::{
        ClickIds, Conversion, ConversionPerson, Milestone, WritebackAction, WritebackSink,
    },
};

const DAY: i64 = 86_400_000;
/// sha256("janedoe@gmail.com"): `Jane.Doe@Gmail.com` after Google's gmail rule.
const JANE_GMAIL_SHA256: &str = "d6117306485ed0e50afab3ac871e98f81699151f30281527d63ff5f233656c69";
/// sha256("+15555550100").
const PHONE_SHA256: &str = "0cbf019479241f66c9c60d39e69e06989f108bc47da5b938a87045a615cad4a4";
/// sha256("person@example.com") (VENDOR-NOTES §15).
const PERSON_SHA256: &str = "542d240129883c019e106e3b1b2d3f3cb3537c43c425364de8e951d5a3083345";

fn now() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn config(sandbox: &GoogleAdsSandbox, api: &str, extra: Value) -> GoogleAdsConfig {
    let o = sandbox.options();
    let mut j = json!({
        "api": api,
        "customer_id": o.customer_id,
        "client_id": o.client_id,
        "client_secret": o.client_secret,
        "refresh_token": o.refresh_token,
        "token_url": format!("{}/token", sandbox.base_url()),
        "base_url": sandbox.base_url(),
        "conversion_actions": {"qualified": "1001", "won": "1003"},
        "timeout": "2s",
    });
    if api == "google_ads" {
        j["developer_token"] = json!(o.developer_token);
    }
    if let (Some(target), Some(extra)) = (j.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            target.insert(k.clone(), v.clone());
        }
    }
    let c: GoogleAdsConfig = serde_json::from_value(j).expect("config parses");
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    c
}

fn client(config: &GoogleAdsConfig) -> GoogleAdsWriteback {
    GoogleAdsWriteback::new(config, ConnectorContext::in_memory("google")).expect("client builds")
}

fn conversion(key: &str, milestone: Milestone) -> Conversion {
    Conversion {
        delivery_id: 1,
        key: key.to_owned(),
        request_key: key.to_owned(),
        action: WritebackAction::Send,
        milestone,
        crm: "hubspot".into(),
        crm_kind: "hubspot".into(),
        deal_id: key.to_owned(),
        occurred_at_ms: now() - DAY,
        value_minor: Some(150_050),
        currency: Some("USD".into()),
        person: ConversionPerson {
            email: Some("person@example.com".into()),
            ..Default::default()
        },
        clicks: ClickIds::default(),
        attribution: Default::default(),
    }
}

fn adjusted(
    c: &Conversion,
    action: WritebackAction,
    n: u32,
    value_minor: Option<i64>,
) -> Conversion {
    let word = if action == WritebackAction::Restate {
        "restate"
    } else {
        "retract"
    };
    Conversion {
        action,
        request_key: format!("{}:{word}:{n}", c.key),
        occurred_at_ms: now() - 3_600_000 + i64::from(n) * 60_000,
        value_minor,
        ..c.clone()
    }
}

fn done(r: &ItemResult) -> bool {
    matches!(r, ItemResult::Done { .. })
}

fn permanent_text(r: &ItemResult) -> &str {
    match r {
        ItemResult::Permanent { message } => message,
        other => panic!("expected Permanent, got {other:?}"),
    }
}

async fn sandbox() -> GoogleAdsSandbox {
    GoogleAdsSandbox::start(SandboxOptions {
        seed: Some(7),
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

#[tokio::test]
async fn data_manager_sends_one_ingest_per_action_with_googles_field_spellings() {
    let sb = sandbox().await;
    let g = client(&config(&sb, "data_manager", json!({})));
    let mut won = conversion("hubspot:42:won", Milestone::Won);
    won.person = ConversionPerson {
        email: Some("Jane.Doe@Gmail.com".into()),
        phone: Some("+15555550100".into()),
        consent: Some(true),
        ..Default::default()
    };
    won.clicks = ClickIds {
        gclid: Some("Cj0KCQ-gclid".into()),
        gbraid: Some("braid".into()),
        google_click_at_ms: Some(now() - 3 * DAY),
        ..Default::default()
    };
    let qualified = conversion("hubspot:42:qualified", Milestone::Qualified);
    let out = g.send(&[won.clone(), qualified]).await.unwrap();
    assert!(out.items.iter().all(done), "{:?}", out.items);
    assert_eq!(
        out.items[0],
        ItemResult::Done {
            remote_id: "hubspot:42:won".into(),
            created: true
        }
    );
    let requests = sb.requests();
    assert_eq!(requests.len(), 2, "one events:ingest per conversion action");
    let bodies: Vec<&Value> = requests.iter().map(|r| &r.body).collect();
    let won_body = bodies
        .iter()
        .find(|b| b["destinations"][0]["productDestinationId"] == "1003")
        .expect("won request");
    assert_eq!(
        won_body["destinations"],
        json!([{"operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": "1234567890"},
            "productDestinationId": "1003"}])
    );
    assert_eq!(won_body["encoding"], "HEX");
    assert!(won_body.get("validateOnly").is_none());
    let event = &won_body["events"][0];
    assert_eq!(event["transactionId"], "hubspot:42:won");
    assert_eq!(event["eventSource"], "OTHER");
    assert_eq!(
        event["adIdentifiers"],
        json!({"gclid": "Cj0KCQ-gclid"}),
        "gclid only, never with a braid"
    );
    assert_eq!(
        event["userData"]["userIdentifiers"],
        json!([{"emailAddress": JANE_GMAIL_SHA256}, {"phoneNumber": PHONE_SHA256}])
    );
    assert_eq!(event["conversionValue"], json!(1500.5));
    assert_eq!(event["currency"], "USD");
    assert_eq!(
        event["consent"],
        json!({"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"})
    );
    let ts = event["eventTimestamp"].as_str().unwrap();
    assert!(
        ts.ends_with('Z') && ts.parse::<jiff::Timestamp>().is_ok(),
        "{ts}"
    );
    assert!(
        event.get("lastUpdatedTimestamp").is_none(),
        "a send is no adjustment"
    );
    let received = sb.received();
    assert_eq!(received.len(), 2);
    let r = received.iter().find(|r| r.name == "1003").unwrap();
    assert_eq!(r.key, "hubspot:42:won");
    assert_eq!(r.value.as_deref(), Some("1500.50"));
    assert_eq!(r.currency.as_deref(), Some("USD"));
    assert_eq!(r.adjustment, None);
    assert_eq!(r.identifiers, ["gclid", "hashed_email", "hashed_phone"]);
    let q = received.iter().find(|r| r.name == "1001").unwrap();
    assert_eq!(q.identifiers, ["hashed_email"]);
    let q_body = bodies
        .iter()
        .find(|b| b["destinations"][0]["productDestinationId"] == "1001")
        .unwrap();
    assert_eq!(
        q_body["events"][0]["userData"]["userIdentifiers"][0]["emailAddress"],
        PERSON_SHA256
    );
    assert!(q_body["events"][0].get("adIdentifiers").is_none());
}

#[tokio::test]
async fn a_resend_is_deduplicated_by_google_and_a_restatement_adjusts() {
    let sb = sandbox().await;
    let g = client(&config(&sb, "data_manager", json!({})));
    let won = conversion("hubspot:7:won", Milestone::Won);
    assert!(
        g.send(std::slice::from_ref(&won))
            .await
            .unwrap()
            .items
            .iter()
            .all(done)
    );
    // The daemon crashed before recording the result: the same conversion goes again.
    assert!(
        g.send(std::slice::from_ref(&won))
            .await
            .unwrap()
            .items
            .iter()
            .all(done)
    );
    assert_eq!(sb.received().len(), 1, "Google dedups on transactionId");
    assert_eq!(sb.stats().deduplicated, 1);
    let restate = adjusted(&won, WritebackAction::Restate, 1, Some(200_000));
    let out = g.send(std::slice::from_ref(&restate)).await.unwrap();
    assert_eq!(
        out.items[0],
        ItemResult::Done {
            remote_id: "hubspot:7:won".into(),
            created: false
        }
    );
    let last = sb.requests().pop().unwrap();
    let event = &last.body["events"][0];
    assert_eq!(
        event["transactionId"], "hubspot:7:won",
        "an adjustment names the original"
    );
    assert_eq!(event["conversionValue"], json!(2000.0));
    assert!(event["lastUpdatedTimestamp"].as_str().is_some());
    let received = sb.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].adjustment.as_deref(), Some("RESTATEMENT"));
    assert_eq!(received[1].value.as_deref(), Some("2000.00"));
    // Retraction: Data Manager has none; refused per item, nothing sent.
    assert!(!g.supports(WritebackAction::Retract) && g.supports(WritebackAction::Restate));
    let calls = sb.stats().ingest_calls;
    let retract = adjusted(&won, WritebackAction::Retract, 2, None);
    let out = g.send(&[retract]).await.unwrap();
    assert!(permanent_text(&out.items[0]).contains("can't retract"));
    assert_eq!(sb.stats().ingest_calls, calls);
}

#[tokio::test]
async fn one_refused_event_becomes_its_items_permanent_and_the_rest_is_resent() {
    let sb = sandbox().await;
    let g = client(&config(&sb, "data_manager", json!({})));
    let a = conversion("crm:a:won", Milestone::Won);
    let mut b = conversion("crm:b:won", Milestone::Won);
    b.currency = Some("dollars".into());
    let c = conversion("crm:c:won", Milestone::Won);
    let out = g.send(&[a, b, c]).await.unwrap();
    assert!(
        done(&out.items[0]) && done(&out.items[2]),
        "{:?}",
        out.items
    );
    let why = permanent_text(&out.items[1]);
    assert!(
        why.contains("INVALID_CURRENCY_CODE") && why.contains("events[1].currency"),
        "Google's own words reach the item: {why}"
    );
    assert_eq!(
        sb.stats().ingest_calls,
        2,
        "refused whole, then resent without the bad event"
    );
    let keys: Vec<String> = sb.received().into_iter().map(|r| r.key).collect();
    assert_eq!(keys, ["crm:a:won", "crm:c:won"]);
}

#[tokio::test]
async fn an_unknown_conversion_action_fails_only_its_own_items() {
    let sb = sandbox().await;
    let g = client(&config(
        &sb,
        "data_manager",
        json!({"conversion_actions": {"qualified": "1001", "won": "5555"}}),
    ));
    let out = g
        .send(&[
            conversion("crm:u:won", Milestone::Won),
            conversion("crm:u:qualified", Milestone::Qualified),
        ])
        .await
        .unwrap();
    let why = permanent_text(&out.items[0]);
    assert!(
        why.contains("INVALID_CONVERSION_ACTION_ID")
            && why.contains("destinations[0].product_destination_id"),
        "{why}"
    );
    assert!(done(&out.items[1]), "{:?}", out.items);
    let mut restate = adjusted(
        &conversion("crm:u:qualified", Milestone::Qualified),
        WritebackAction::Restate,
        1,
        None,
    );
    restate.value_minor = None;
    let out = g.send(&[restate]).await.unwrap();
    assert!(permanent_text(&out.items[0]).contains("needs the deal's new amount"));
}

#[tokio::test]
async fn unmatchable_stale_and_future_conversions_are_refused_without_a_call() {
    let sb = sandbox().await;
    let g = client(&config(&sb, "data_manager", json!({})));
    let mut anonymous = conversion("crm:1:won", Milestone::Won);
    anonymous.person = ConversionPerson::default();
    anonymous.clicks = ClickIds {
        gclid: Some("old-click".into()),
        google_click_at_ms: Some(now() - 120 * DAY),
        ..Default::default()
    };
    let mut stale = conversion("crm:2:won", Milestone::Won);
    stale.occurred_at_ms = now() - 91 * DAY;
    let mut future = conversion("crm:3:won", Milestone::Won);
    future.occurred_at_ms = now() + DAY;
    let mut unmapped = conversion("crm:4:lost", Milestone::Lost);
    unmapped.clicks.gclid = Some("g".into());
    assert!(!g.accepts(Milestone::Lost));
    let out = g.send(&[anonymous, stale, future, unmapped]).await.unwrap();
    assert!(permanent_text(&out.items[0]).contains("nothing Google can match"));
    assert!(permanent_text(&out.items[1]).contains("91 days ago"));
    assert!(permanent_text(&out.items[2]).contains("future"));
    assert!(permanent_text(&out.items[3]).contains("no Google conversion action"));
    assert_eq!(sb.stats().api_calls, 0, "nothing was sent");
}

#[tokio::test]
async fn throttles_outages_and_credentials_are_classified() {
    let sb = sandbox().await;
    let g = client(&config(&sb, "data_manager", json!({})));
    let batch = [conversion("crm:9:won", Milestone::Won)];
    sb.set_faults(CrmFaults {
        rate_limit_next: 1,
        ..Default::default()
    });
    match g.send(&batch).await {
        Err(CallError::RateLimited {
            message,
            retry_after,
        }) => {
            assert!(message.contains("429 RESOURCE_EXHAUSTED"), "{message}");
            assert_eq!(retry_after, Duration::from_secs(60));
        }
        other => panic!("{other:?}"),
    }
    sb.set_faults(CrmFaults {
        server_error_next: 1,
        ..Default::default()
    });
    assert!(matches!(
        g.send(&batch).await,
        Err(CallError::Transient { .. })
    ));
    // An expired access token: one refresh, then the call goes through.
    sb.set_faults(CrmFaults::default());
    sb.expire_tokens();
    assert!(g.send(&batch).await.unwrap().items.iter().all(done));
    assert_eq!(sb.stats().token_refreshes, 2);
    // The user revoked tandem: reconnect needed, loudly.
    sb.revoke_refresh_token();
    match g.send(&batch).await {
        Err(CallError::Auth { message, .. }) => {
            assert!(message.contains("reconnect needed"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // An account the user can't reach: 403, pause.
    let sb = sandbox().await;
    let elsewhere = client(&config(
        &sb,
        "data_manager",
        json!({"customer_id": "5555555555"}),
    ));
    match elsewhere.send(&batch).await {
        Err(CallError::Auth {
            status: 403,
            message,
        }) => {
            assert!(message.contains("PERMISSION_DENIED"), "{message}")
        }
        res => panic!("{res:?}"),
    }
}

#[tokio::test]
async fn a_dropped_answer_is_resent_and_counted_once() {
    let sb = sandbox().await;
    let g = client(&config(&sb, "data_manager", json!({})));
    let batch = [conversion("crm:5:won", Milestone::Won)];
    sb.set_faults(CrmFaults {
        drop_after_write_next: 1,
        ..Default::default()
    });
    assert!(matches!(
        g.send(&batch).await,
        Err(CallError::Transient { .. })
    ));
    assert!(g.send(&batch).await.unwrap().items.iter().all(done));
    assert_eq!(sb.received().len(), 1);
}

#[tokio::test]
async fn a_later_request_failing_keeps_the_earlier_results() {
    let sb = GoogleAdsSandbox::start(SandboxOptions {
        requests_per_minute: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    let g = client(&config(&sb, "data_manager", json!({})));
    let out = g
        .send(&[
            conversion("crm:6:qualified", Milestone::Qualified),
            conversion("crm:6:won", Milestone::Won),
        ])
        .await
        .unwrap();
    assert!(done(&out.items[0]), "{:?}", out.items);
    assert!(
        matches!(&out.items[1], ItemResult::Transient { message } if message.contains("RESOURCE_EXHAUSTED"))
    );
    assert_eq!(out.pause_for, Some(Duration::from_secs(60)));
}

#[tokio::test]
async fn a_manager_account_goes_in_the_destination() {
    let sb = GoogleAdsSandbox::start(SandboxOptions {
        login_customer_id: Some("9876543210".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let batch = [conversion("crm:8:won", Milestone::Won)];
    let direct = client(&config(&sb, "data_manager", json!({})));
    assert!(matches!(
        direct.send(&batch).await,
        Err(CallError::Auth { status: 403, .. })
    ));
    let managed = client(&config(
        &sb,
        "data_manager",
        json!({"login_customer_id": "9876543210"}),
    ));
    assert!(managed.send(&batch).await.unwrap().items.iter().all(done));
    let body = sb.requests().pop().unwrap().body;
    assert_eq!(
        body["destinations"][0]["loginAccount"],
        json!({"accountType": "GOOGLE_ADS", "accountId": "9876543210"})
    );
}

#[tokio::test]
async fn verify_validates_only_and_names_what_to_fix() {
    let sb = sandbox().await;
    let g = client(&config(
        &sb,
        "data_manager",
        json!({"conversion_actions": {"won": "1003", "qualified": "5555"}}),
    ));
    let problems = g.verify().await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("conversion action 5555 (qualified)")
            && problems[0].contains("INVALID_CONVERSION_ACTION_ID"),
        "{problems:?}"
    );
    assert!(sb.received().is_empty(), "validateOnly records nothing");
    assert!(
        sb.requests()
            .iter()
            .all(|r| r.body["validateOnly"] == json!(true))
    );
    let mut bad = config(&sb, "data_manager", json!({}));
    bad.client_secret = "wrong".to_owned().into();
    let problems = client(&bad).verify().await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("reconnect needed") && problems[0].contains("client_id"),
        "{problems:?}"
    );
    let legacy = client(&config(
        &sb,
        "google_ads",
        json!({"conversion_actions": {"won": "1003", "lost": "7777"}}),
    ));
    let problems = legacy.verify().await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("NO_CONVERSION_ACTION_FOUND"),
        "{problems:?}"
    );
    assert!(sb.received().is_empty());
}

#[tokio::test]
async fn legacy_uploads_map_partial_failures_to_their_rows() {
    let sb = sandbox().await;
    let g = client(&config(
        &sb,
        "google_ads",
        json!({"conversion_actions": {"qualified": "1001", "won": "1003", "opportunity": "8888"}}),
    ));
    let mut won = conversion("crm:1:won", Milestone::Won);
    won.clicks = ClickIds {
        wbraid: Some("wb".into()),
        gbraid: Some("gb".into()),
        ..Default::default()
    };
    won.person.consent = Some(false);
    let unknown_action = conversion("crm:1:opportunity", Milestone::Opportunity);
    let qualified = conversion("crm:1:qualified", Milestone::Qualified);
    let out = g.send(&[won, unknown_action, qualified]).await.unwrap();
    assert!(
        done(&out.items[0]) && done(&out.items[2]),
        "{:?}",
        out.items
    );
    let why = permanent_text(&out.items[1]);
    assert!(why.contains("NO_CONVERSION_ACTION_FOUND"), "{why}");
    let request = sb.requests().pop().unwrap();
    assert_eq!(
        request.path,
        "/v26/customers/1234567890:uploadClickConversions"
    );
    assert_eq!(
        request.headers.get("developer-token").map(String::as_str),
        Some("sandbox-developer-token")
    );
    assert!(!request.headers.contains_key("login-customer-id"));
    assert_eq!(request.body["partialFailure"], json!(true));
    let row = &request.body["conversions"][0];
    assert_eq!(
        row["conversionAction"],
        "customers/1234567890/conversionActions/1003"
    );
    assert_eq!(row["orderId"], "crm:1:won");
    assert_eq!(row["gbraid"], "gb", "gbraid before wbraid, never both");
    assert!(row.get("wbraid").is_none() && row.get("gclid").is_none());
    assert_eq!(
        row["userIdentifiers"],
        json!([{"hashedEmail": PERSON_SHA256, "userIdentifierSource": "FIRST_PARTY"}])
    );
    assert_eq!(row["consent"], json!({"adUserData": "DENIED"}));
    assert_eq!(row["conversionValue"], json!(1500.5));
    assert_eq!(row["currencyCode"], "USD");
    let t = row["conversionDateTime"].as_str().unwrap();
    assert!(
        t.len() == 25 && t.ends_with("+00:00") && &t[10..11] == " ",
        "{t}"
    );
}

#[tokio::test]
async fn legacy_resends_are_done_and_adjustments_restate_then_retract() {
    let sb = sandbox().await;
    let g = client(&config(&sb, "google_ads", json!({})));
    assert!(g.supports(WritebackAction::Retract));
    let won = conversion("crm:2:won", Milestone::Won);
    assert!(
        g.send(std::slice::from_ref(&won))
            .await
            .unwrap()
            .items
            .iter()
            .all(done)
    );
    let again = g.send(std::slice::from_ref(&won)).await.unwrap();
    assert_eq!(
        again.items[0],
        ItemResult::Done {
            remote_id: "crm:2:won".into(),
            created: false
        },
        "ORDER_ID_ALREADY_IN_USE means the first upload landed"
    );
    let restate = adjusted(&won, WritebackAction::Restate, 1, Some(99_900));
    for _ in 0..2 {
        let out = g.send(std::slice::from_ref(&restate)).await.unwrap();
        assert!(out.items.iter().all(done), "{:?}", out.items);
    }
    let request = sb.requests().pop().unwrap();
    assert_eq!(
        request.path,
        "/v26/customers/1234567890:uploadConversionAdjustments"
    );
    let row = &request.body["conversionAdjustments"][0];
    assert_eq!(row["adjustmentType"], "RESTATEMENT");
    assert_eq!(row["orderId"], "crm:2:won");
    assert_eq!(
        row["restatementValue"],
        json!({"adjustedValue": 999.0, "currencyCode": "USD"})
    );
    let retract = adjusted(&won, WritebackAction::Retract, 2, None);
    for _ in 0..2 {
        let out = g.send(std::slice::from_ref(&retract)).await.unwrap();
        assert!(out.items.iter().all(done), "{:?}", out.items);
    }
    let row = &sb.requests().pop().unwrap().body["conversionAdjustments"][0];
    assert_eq!(row["adjustmentType"], "RETRACTION");
    assert!(row.get("restatementValue").is_none());
    let kinds: Vec<Option<String>> = sb.received().into_iter().map(|r| r.adjustment).collect();
    assert_eq!(
        kinds,
        [None, Some("RESTATEMENT".into()), Some("RETRACTION".into())]
    );
    assert_eq!(sb.received()[1].value.as_deref(), Some("999.00"));
}

#[tokio::test]
async fn legacy_throttles_and_allowlisting_are_classified() {
    let sb = GoogleAdsSandbox::start(SandboxOptions {
        legacy_allowlisted: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let g = client(&config(&sb, "google_ads", json!({})));
    let batch = [conversion("crm:3:won", Milestone::Won)];
    match g.send(&batch).await {
        Err(CallError::Auth {
            status: 403,
            message,
        }) => {
            assert!(
                message.contains("CUSTOMER_NOT_ALLOWLISTED_FOR_THIS_FEATURE"),
                "{message}"
            );
            assert!(message.contains("use api = \"data_manager\""), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let sb = sandbox().await;
    let g = client(&config(&sb, "google_ads", json!({})));
    sb.set_faults(CrmFaults {
        rate_limit_next: 1,
        ..Default::default()
    });
    match g.send(&batch).await {
        Err(CallError::RateLimited { retry_after, .. }) => {
            assert_eq!(retry_after, Duration::from_secs(30))
        }
        other => panic!("{other:?}"),
    }
    sb.set_faults(CrmFaults {
        server_error_next: 1,
        ..Default::default()
    });
    assert!(matches!(
        g.send(&batch).await,
        Err(CallError::Transient { .. })
    ));
    let mut wrong = config(&sb, "google_ads", json!({}));
    wrong.developer_token = Some("nope".to_owned().into());
    let refreshes = sb.stats().token_refreshes;
    match client(&wrong).send(&batch).await {
        Err(CallError::Auth {
            status: 401,
            message,
        }) => assert!(message.contains("DEVELOPER_TOKEN_INVALID"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        sb.stats().token_refreshes,
        refreshes + 1,
        "a developer-token 401 is not worth a second refresh"
    );
}

#[tokio::test]
async fn the_sandbox_refuses_what_google_refuses() {
    let sb = sandbox().await;
    let g = client(&config(&sb, "data_manager", json!({})));
    // A token, straight from the sandbox's token endpoint, for raw requests.
    g.send(&[conversion("crm:0:won", Milestone::Won)])
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/token", sb.base_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", &sb.options().client_id),
            ("client_secret", &sb.options().client_secret),
            ("refresh_token", &sb.options().refresh_token),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = token["access_token"].as_str().unwrap().to_owned();
    let ingest = |body: Value| {
        let http = http.clone();
        let url = format!("{}/v1/events:ingest", sb.base_url());
        let bearer = bearer.clone();
        async move {
            let r = http
                .post(url)
                .bearer_auth(bearer)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let dest = json!([{"operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": "1234567890"}, "productDestinationId": "1003"}]);
    let (status, body) = ingest(json!({"events": [{"transactionId": "x"}]})).await;
    assert_eq!(status, 400);
    let fields: Vec<String> = body["error"]["details"][2]["fieldViolations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            format!(
                "{}={}",
                v["field"].as_str().unwrap(),
                v["reason"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        fields.contains(&"destinations=REQUIRED_FIELD_MISSING".to_owned()),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"events[0].event_timestamp=REQUIRED_FIELD_MISSING".to_owned()),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"events[0].event_source=REQUIRED_FIELD_MISSING".to_owned()),
        "{fields:?}"
    );
    let (status, body) = ingest(json!({"destinations": dest, "encoding": "HEX", "events": [{
        "transactionId": "t", "eventTimestamp": "2026-11-01 10:00:00", "eventSource": "OTHER",
        "adIdentifiers": {"gclid": "g", "wbraid": "w"},
        "userData": {"userIdentifiers": [{"emailAddress": "jane@example.com"}]}}]}))
    .await;
    assert_eq!(status, 400);
    let text = body.to_string();
    for expected in [
        "events[0].event_timestamp",
        "INVALID_FORMAT",
        "events[0].ad_identifiers",
        "INVALID_EVENT",
        "events[0].user_data.user_identifiers[0]",
        "INVALID_HEX_ENCODING",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    let (status, body) = ingest(json!({"destinations": dest, "events": [{"transactionId": "t", "eventTimestamp": "2026-11-01T10:00:00Z",
        "eventSource": "OTHER", "gclid": "top-level"}]})).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Invalid JSON payload"),
        "{body}"
    );
    let before = sb.received().len();
    let r = http
        .post(format!("{}/v1/events:ingest", sb.base_url()))
        .bearer_auth("ya29.forged")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(sb.received().len(), before);
}

#[tokio::test]
async fn the_closed_loop_handle_points_at_the_sandbox() {
    let wb = super::sandbox::writeback::start().await.unwrap();
    assert_eq!(wb.kind(), "google_ads");
    let toml = wb.connector_toml();
    for line in [
        "kind = \"google_ads\"",
        "api = \"data_manager\"",
        "base_url = \"http://127.0.0.1:",
        "token_url = \"http://127.0.0.1:",
        "won = \"1003\"",
        "lost = \"1004\"",
    ] {
        assert!(toml.contains(line), "{line} in {toml}");
    }
    assert!(wb.received().is_empty());
    assert_eq!(wb.stats().api_calls, 0);
    let legacy = super::sandbox::writeback::start_legacy().await.unwrap();
    let toml = legacy.connector_toml();
    for line in [
        "api = \"google_ads\"",
        "developer_token = \"sandbox-developer-token\"",
    ] {
        assert!(toml.contains(line), "{line} in {toml}");
    }
}
