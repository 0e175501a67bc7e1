//! The LinkedIn connector against its sandbox over loopback HTTP: LinkedIn's headers and event
//! shape, the hashed email against an independently computed vector, dedup of a resend on
//! `eventId`, per-element statuses mapped to their items, the 90-day window, and the
//! classification of 429/5xx/401/426.

use std::time::Duration;

use serde_json::json;

use super::{
    LinkedinConfig, LinkedinConversions,
    sandbox::{LinkedinCapiSandbox, Rule, SandboxOptions},
};
use crate::{
    sandbox::CrmFaults,
    sink::{CallError, ItemResult},
    writeback::{
        ClickIds, Conversion, ConversionPerson, Milestone, WritebackAction, WritebackSink,
    },
};

const DAY: i64 = 86_400_000;
/// printf %s 'person@example.com' | sha256sum
const PERSON_SHA256: &str = "542d240129883c019e106e3b1b2d3f3cb3537c43c425364de8e951d5a3083345";

fn now() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn config(sandbox: &LinkedinCapiSandbox, extra: serde_json::Value) -> LinkedinConfig {
    let mut j = json!({
        "access_token": sandbox.options().token,
        "conversions": {"qualified": "2001", "won": "urn:lla:llaPartnerConversion:2003"},
        "base_url": sandbox.base_url(),
        "timeout": "2s",
    });
    if let (Some(target), Some(extra)) = (j.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            target.insert(k.clone(), v.clone());
        }
    }
    let c: LinkedinConfig = serde_json::from_value(j).expect("config parses");
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    c
}

fn client(sandbox: &LinkedinCapiSandbox, extra: serde_json::Value) -> LinkedinConversions {
    LinkedinConversions::new(&config(sandbox, extra)).expect("client builds")
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
        value_minor: Some(150_000),
        currency: Some("EUR".into()),
        person: ConversionPerson {
            email: Some("person@example.com".into()),
            ..Default::default()
        },
        clicks: ClickIds::default(),
        attribution: Default::default(),
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

async fn sandbox() -> LinkedinCapiSandbox {
    LinkedinCapiSandbox::start(SandboxOptions {
        seed: Some(3),
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

#[tokio::test]
async fn one_batch_create_with_linkedins_headers_and_event_shape() {
    let sb = sandbox().await;
    let li = client(&sb, json!({}));
    let mut won = conversion("hubspot:42:won", Milestone::Won);
    won.clicks.li_fat_id = Some("df5gf5-gh6t7-ph4j7h".into());
    let mut qualified = conversion("hubspot:42:qualified", Milestone::Qualified);
    qualified.currency = None;
    let out = li.send(&[won.clone(), qualified]).await.unwrap();
    assert_eq!(
        out.items,
        [
            ItemResult::Done {
                remote_id: "hubspot:42:won".into(),
                created: true
            },
            ItemResult::Done {
                remote_id: "hubspot:42:qualified".into(),
                created: true
            },
        ]
    );
    let requests = sb.requests();
    assert_eq!(requests.len(), 1, "one BATCH_CREATE for the batch");
    let r = &requests[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/rest/conversionEvents")
    );
    assert_eq!(
        r.headers.get("linkedin-version").map(String::as_str),
        Some("202611")
    );
    assert_eq!(
        r.headers
            .get("x-restli-protocol-version")
            .map(String::as_str),
        Some("2.0.0")
    );
    assert_eq!(
        r.headers.get("x-restli-method").map(String::as_str),
        Some("BATCH_CREATE")
    );
    assert!(
        r.headers
            .get("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    assert_eq!(
        r.body,
        json!({"elements": [
            {"conversion": "urn:lla:llaPartnerConversion:2003", "conversionHappenedAt": won.occurred_at_ms,
             "conversionValue": {"currencyCode": "EUR", "amount": "1500.00"}, "eventId": "hubspot:42:won",
             "user": {"userIds": [{"idType": "SHA256_EMAIL", "idValue": PERSON_SHA256},
                {"idType": "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID", "idValue": "df5gf5-gh6t7-ph4j7h"}]}},
            {"conversion": "urn:lla:llaPartnerConversion:2001", "conversionHappenedAt": r.body["elements"][1]["conversionHappenedAt"],
             "eventId": "hubspot:42:qualified",
             "user": {"userIds": [{"idType": "SHA256_EMAIL", "idValue": PERSON_SHA256}]}}
        ]})
    );
    let received = sb.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].key, "hubspot:42:won");
    assert_eq!(received[0].name, "urn:lla:llaPartnerConversion:2003");
    assert_eq!(received[0].value.as_deref(), Some("1500.00"));
    assert_eq!(received[0].currency.as_deref(), Some("EUR"));
    assert_eq!(
        received[0].identifiers,
        ["SHA256_EMAIL", "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID"]
    );
    assert_eq!(received[1].value, None);
}

#[tokio::test]
async fn a_resend_is_deduplicated_on_event_id() {
    let sb = sandbox().await;
    let li = client(&sb, json!({}));
    let batch = [conversion("crm:1:won", Milestone::Won)];
    assert!(li.send(&batch).await.unwrap().items.iter().all(done));
    sb.set_faults(CrmFaults {
        drop_after_write_next: 1,
        ..Default::default()
    });
    // The answer is lost after LinkedIn took the event: the engine retries.
    assert!(matches!(
        li.send(&batch).await,
        Err(CallError::Transient { .. })
    ));
    assert!(li.send(&batch).await.unwrap().items.iter().all(done));
    assert_eq!(sb.received().len(), 1);
    assert_eq!(sb.stats().deduplicated, 2);
}

#[tokio::test]
async fn per_element_statuses_reach_their_items() {
    let mut options = SandboxOptions {
        seed: Some(3),
        ..Default::default()
    };
    options.rules.push(Rule {
        id: 3001,
        name: "site signups".into(),
        conversion_method: "INSIGHT_TAG_URL_MATCH_RULES".into(),
        enabled: true,
    });
    let sb = LinkedinCapiSandbox::start(options).await.unwrap();
    let li = client(
        &sb,
        json!({"conversions": {"won": "2003", "opportunity": "9999", "lost": "3001"}}),
    );
    let out = li
        .send(&[
            conversion("crm:2:opportunity", Milestone::Opportunity),
            conversion("crm:2:won", Milestone::Won),
            conversion("crm:2:lost", Milestone::Lost),
        ])
        .await
        .unwrap();
    let missing = permanent_text(&out.items[0]);
    assert!(
        missing.contains("LinkedIn 404") && missing.contains("Conversion rule 9999 does not exist"),
        "{missing}"
    );
    assert!(done(&out.items[1]));
    assert!(permanent_text(&out.items[2]).contains("does not accept Conversions API events"));
    let keys: Vec<String> = sb.received().into_iter().map(|r| r.key).collect();
    assert_eq!(keys, ["crm:2:won"]);
}

#[tokio::test]
async fn what_linkedin_cannot_take_is_refused_without_a_call() {
    let sb = sandbox().await;
    let li = client(&sb, json!({}));
    let mut stale = conversion("crm:3:won", Milestone::Won);
    stale.occurred_at_ms = now() - 95 * DAY;
    let mut anonymous = conversion("crm:4:won", Milestone::Won);
    anonymous.person = ConversionPerson::default();
    anonymous.clicks.gclid = Some("google-only".into());
    let mut declined = conversion("crm:5:won", Milestone::Won);
    declined.person.consent = Some(false);
    let mut restate = conversion("crm:6:won", Milestone::Won);
    restate.action = WritebackAction::Restate;
    let unmapped = conversion("crm:7:lost", Milestone::Lost);
    let out = li
        .send(&[stale, anonymous, declined, restate, unmapped])
        .await
        .unwrap();
    assert!(permanent_text(&out.items[0]).contains("95 days ago"));
    assert!(permanent_text(&out.items[1]).contains("nothing LinkedIn can match"));
    assert!(permanent_text(&out.items[2]).contains("declined consent"));
    assert!(permanent_text(&out.items[3]).contains("can't restate or retract"));
    assert!(permanent_text(&out.items[4]).contains("no LinkedIn conversion rule"));
    assert_eq!(sb.stats().api_calls, 0);
}

#[tokio::test]
async fn throttles_outages_and_credentials_are_classified() {
    let sb = sandbox().await;
    let li = client(&sb, json!({}));
    let batch = [conversion("crm:8:won", Milestone::Won)];
    sb.set_faults(CrmFaults {
        rate_limit_next: 1,
        ..Default::default()
    });
    match li.send(&batch).await {
        Err(CallError::RateLimited {
            message,
            retry_after,
        }) => {
            assert_eq!(retry_after, Duration::from_secs(60));
            assert!(message.contains("TOO_MANY_REQUESTS (101)"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    sb.set_faults(CrmFaults {
        server_error_next: 1,
        ..Default::default()
    });
    assert!(matches!(
        li.send(&batch).await,
        Err(CallError::Transient { .. })
    ));
    sb.set_faults(CrmFaults::default());
    let wrong = client(&sb, json!({"access_token": "expired"}));
    match wrong.send(&batch).await {
        Err(CallError::Auth {
            status: 401,
            message,
        }) => assert!(message.contains("INVALID_ACCESS_TOKEN"), "{message}"),
        other => panic!("{other:?}"),
    }
    let sunset = client(&sb, json!({"linkedin_version": "202401"}));
    match sunset.send(&batch).await {
        Err(CallError::Permanent { message }) => {
            assert!(
                message.contains("426") && message.contains("NONEXISTENT_VERSION"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(sb.received().is_empty());
    assert!(li.send(&batch).await.unwrap().items.iter().all(done));
}

#[tokio::test]
async fn the_sandbox_refuses_malformed_events_like_linkedin() {
    let sb = sandbox().await;
    let http = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        http.post(format!("{}/conversionEvents", sb.base_url()))
            .bearer_auth(&sb.options().token)
            .header("LinkedIn-Version", "202611")
            .header("X-Restli-Protocol-Version", "2.0.0")
            .header("X-RestLi-Method", "BATCH_CREATE")
            .json(&body)
            .send()
    };
    let at = now() - DAY;
    let r = post(json!({"elements": [
        {"conversion": "urn:lla:llaPartnerConversion:2003", "conversionHappenedAt": at, "eventId": "a",
         "user": {"userIds": [{"idType": "SHA256_EMAIL", "idValue": "person@example.com"}]}},
        {"conversion": "urn:lla:llaPartnerConversion:2003", "conversionHappenedAt": at, "eventId": "b",
         "user": {"userIds": []}},
        {"conversion": "urn:lla:llaPartnerConversion:2003", "conversionHappenedAt": at, "eventId": "c",
         "conversionValue": {"currencyCode": "usd", "amount": "12"},
         "user": {"userIds": [{"idType": "SHA256_EMAIL", "idValue": PERSON_SHA256}]}}
    ]})).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let statuses: Vec<u64> = body["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [400, 400, 400]);
    assert!(
        body["elements"][0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SHA256_EMAIL")
    );
    let r = post(json!({"elements": [{"conversion": "x", "extra": 1}]}))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "unknown fields fail the request");
    let r = http
        .post(format!("{}/conversionEvents", sb.base_url()))
        .bearer_auth(&sb.options().token)
        .header("X-Restli-Protocol-Version", "2.0.0")
        .json(&json!({"elements": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "VERSION_MISSING"
    );
    assert!(sb.received().is_empty());
}

#[tokio::test]
async fn verify_reads_each_rule_and_names_the_fix() {
    let mut options = SandboxOptions::default();
    options.rules[0].enabled = false;
    options.rules.push(Rule {
        id: 3001,
        name: "tag".into(),
        conversion_method: "INSIGHT_TAG_URL_MATCH_RULES".into(),
        enabled: true,
    });
    let sb = LinkedinCapiSandbox::start(options).await.unwrap();
    let li = client(
        &sb,
        json!({"conversions": {"qualified": "2001", "won": "2003", "lost": "3001", "opportunity": "9999"}}),
    );
    let problems = li.verify().await;
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("2001") && p.contains("disabled")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("3001") && p.contains("INSIGHT_TAG_URL_MATCH_RULES")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("9999") && p.contains("does not exist")),
        "{problems:?}"
    );
    assert!(
        sb.requests().iter().all(|r| r.method == "GET"),
        "verify writes nothing"
    );
    let wrong = client(&sb, json!({"access_token": "expired"}));
    let problems = wrong.verify().await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("INVALID_ACCESS_TOKEN") && problems[0].contains("rw_conversions"),
        "{problems:?}"
    );
}

#[tokio::test]
async fn the_closed_loop_handle_points_at_the_sandbox() {
    let wb = super::sandbox::writeback::start().await.unwrap();
    assert_eq!(wb.kind(), "linkedin");
    let toml = wb.connector_toml();
    for line in [
        "kind = \"linkedin\"",
        "base_url = \"http://127.0.0.1:",
        "won = \"urn:lla:llaPartnerConversion:2003\"",
        "lost = \"urn:lla:llaPartnerConversion:2004\"",
    ] {
        assert!(toml.contains(line), "{line} in {toml}");
    }
    assert!(wb.received().is_empty());
}
