//! The Pipedrive connector against its sandbox over real loopback HTTP: persons created and
//! updated by email without duplicates (search lag and lost answers included), conflict rules,
//! per-record failures, throttling, server errors, OAuth expiry and dead grants, verify, leads,
//! the exact request shapes, and the API calls 1,000 new leads cost.
#![cfg(feature = "sandbox")]

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde_json::{Value, json};
use tandem_connectors::{
    CallError, ConnectorContext, ItemResult, LeadSink, OnConflict, SinkRecord,
    context::MemoryState,
    pipedrive::{
        PipedriveClient, PipedriveConfig,
        sandbox::{COMPANY_FIELD_KEY, CrmFaults, PipedriveSandbox, SandboxOptions},
    },
};

const LEAD_SOURCE: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";

fn options() -> SandboxOptions {
    SandboxOptions {
        seed: Some(7),
        ..Default::default()
    }
}

async fn sandbox(options: SandboxOptions) -> PipedriveSandbox {
    PipedriveSandbox::start("127.0.0.1:0".parse().unwrap(), options)
        .await
        .expect("sandbox binds")
}

fn config(sb: &PipedriveSandbox, extra: Value) -> PipedriveConfig {
    let o = sb.state().options();
    let mut cfg = json!({"api_token": o.api_token, "base_url": sb.base_url(), "timeout": "2s", "plan": "enterprise"});
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let cfg: PipedriveConfig = serde_json::from_value(cfg).expect("config");
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    cfg
}

fn client_with(sb: &PipedriveSandbox, extra: Value, ctx: ConnectorContext) -> PipedriveClient {
    PipedriveClient::new(&config(sb, extra), ctx).expect("client")
}

fn client(sb: &PipedriveSandbox) -> PipedriveClient {
    client_with(sb, json!({}), ConnectorContext::in_memory("pipedrive"))
}

fn oauth_client(sb: &PipedriveSandbox, ctx: ConnectorContext) -> PipedriveClient {
    let o = sb.state().options();
    // base_url points nowhere: every API call must go to the token's api_domain.
    let oauth: PipedriveConfig = serde_json::from_value(json!({
        "client_id": o.client_id, "client_secret": o.client_secret, "refresh_token": o.refresh_token,
        "token_url": sb.token_url(), "base_url": "https://api.pipedrive.invalid", "timeout": "2s"
    }))
    .unwrap();
    assert!(oauth.validate().is_empty(), "{:?}", oauth.validate());
    PipedriveClient::new(&oauth, ctx).expect("client")
}

fn rec(delivery_id: i64, props: &[(&str, &str)]) -> SinkRecord {
    SinkRecord {
        delivery_id,
        properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        conflict: Default::default(),
        remote_id: None,
    }
}

fn lead(n: i64) -> SinkRecord {
    rec(
        n,
        &[
            ("email", &format!("lead{n}@example.com")),
            ("first_name", "Lead"),
            ("last_name", &format!("No{n}")),
        ],
    )
}

fn done(item: &ItemResult) -> (String, bool) {
    match item {
        ItemResult::Done { remote_id, created } => (remote_id.clone(), *created),
        other => panic!("expected Done, got {other:?}"),
    }
}

#[tokio::test]
async fn create_then_update_of_the_same_email_is_one_person() {
    let sb = sandbox(options()).await;
    let c = client(&sb);
    let out = c.upsert_people(&[lead(1)]).await.unwrap();
    let (id, created) = done(&out.items[0]);
    assert!(created);
    // Seconds later the search can't see the person yet; the recent list can.
    let mut again = lead(2);
    again
        .properties
        .insert("email".into(), "LEAD1@example.com".into());
    again
        .properties
        .insert("last_name".into(), "Renamed".into());
    let out = c.upsert_people(&[again]).await.unwrap();
    assert_eq!(done(&out.items[0]), (id.clone(), false));
    let persons = sb.state().persons();
    assert_eq!(persons.len(), 1);
    assert_eq!(persons[0].name, "Lead Renamed");
    assert_eq!(persons[0].writes, 2);
    // Once indexed, the search finds it and the recent list is not read.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let lists = sb.state().stats().lists;
    let out = c.upsert_people(&[lead(1)]).await.unwrap();
    assert_eq!(done(&out.items[0]), (id, false));
    assert_eq!(sb.state().stats().lists, lists);
    assert_eq!(sb.state().persons().len(), 1);
}

#[tokio::test]
async fn request_bodies_match_pipedrives_documented_shapes() {
    let sb = sandbox(options()).await;
    let c = client(&sb);
    let r = rec(
        1,
        &[
            ("email", "ada@example.com"),
            ("first_name", "Ada"),
            ("last_name", "Lovelace"),
            ("phone", "+44 20 7946 0000"),
            ("owner_id", "12"),
            (LEAD_SOURCE, "webinar"),
        ],
    );
    c.upsert_people(&[r]).await.unwrap();
    let p = sb.state().person_by_email("ada@example.com").unwrap();
    assert_eq!(p.name, "Ada Lovelace");
    assert_eq!(
        serde_json::to_value(&p.emails).unwrap(),
        json!([{"value": "ada@example.com", "primary": true, "label": "work"}])
    );
    assert_eq!(
        serde_json::to_value(&p.phones).unwrap(),
        json!([{"value": "+44 20 7946 0000", "primary": true, "label": "work"}])
    );
    assert_eq!(p.owner_id, Some(12));
    assert_eq!(p.custom_fields[LEAD_SOURCE], json!("webinar"));
    // The sandbox refuses unknown body keys and unknown custom fields like Pipedrive's schema check.
    let http = reqwest::Client::new();
    let o = sb.state().options();
    let bad = http
        .post(format!("{}/api/v2/persons", sb.base_url()))
        .header("x-api-token", &o.api_token)
        .json(&json!({"name": "X", "first_name": "X"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["success"], json!(false));
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("Validation failed"),
        "{body}"
    );
    assert!(body["error_info"].is_string());
    // Envelope and rate-limit headers on a read.
    let r = http
        .get(format!("{}/api/v2/persons?limit=1", sb.base_url()))
        .header("x-api-token", &o.api_token)
        .send()
        .await
        .unwrap();
    for h in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "x-daily-ratelimit-token-remaining",
    ] {
        assert!(r.headers().contains_key(h), "{h}");
    }
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["success"], json!(true));
    assert!(body["additional_data"].get("next_cursor").is_some());
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_found_again_not_duplicated() {
    // The search never catches up during this test: only the recent list can find the person.
    let sb = sandbox(SandboxOptions {
        search_lag: Duration::from_secs(600),
        ..options()
    })
    .await;
    let state = Arc::new(MemoryState::default());
    let ctx = ConnectorContext {
        name: "pd".into(),
        state: state.clone(),
    };
    let c = client_with(&sb, json!({}), ctx);
    sb.state().set_faults(CrmFaults {
        drop_after_write_next: 1,
        ..Default::default()
    });
    let err = c.upsert_people(&[lead(1)]).await.unwrap_err();
    assert!(matches!(err, CallError::Transient { .. }), "{err:?}");
    assert_eq!(
        sb.state().persons().len(),
        1,
        "the write was applied before the drop"
    );
    let out = c.upsert_people(&[lead(1)]).await.unwrap();
    let (id, created) = done(&out.items[0]);
    assert!(!created);
    let persons = sb.state().persons();
    assert_eq!(persons.len(), 1, "no duplicate");
    assert_eq!(persons[0].id.to_string(), id);
    assert_eq!(sb.state().stats().drops, 1);
    // A successful create records the id at once.
    let out = c.upsert_people(&[lead(2)]).await.unwrap();
    let (id2, _) = done(&out.items[0]);
    assert_eq!(state.remote_ids.lock().unwrap().get(&2), Some(&id2));
}

#[tokio::test]
async fn search_lag_by_count_is_modelled_and_known_ids_skip_the_search() {
    let sb = sandbox(SandboxOptions {
        search_lag: Duration::ZERO,
        search_lag_searches: 2,
        ..options()
    })
    .await;
    let c = client(&sb);
    let (id, _) = done(&c.upsert_people(&[lead(1)]).await.unwrap().items[0]);
    let http = reqwest::Client::new();
    let url = format!(
        "{}/api/v2/persons/search?term=lead1%40example.com&fields=email&exact_match=true",
        sb.base_url()
    );
    let mut seen = Vec::new();
    for _ in 0..3 {
        let body: Value = http
            .get(&url)
            .header("x-api-token", &sb.state().options().api_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen.push(body["data"]["items"].as_array().unwrap().len());
    }
    assert_eq!(seen, [0, 0, 1]);
    assert_eq!(
        http.get(&url)
            .header("x-api-token", &sb.state().options().api_token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // With the stored id: no search at all.
    let searches = sb.state().stats().searches;
    let mut known = lead(1);
    known.remote_id = Some(id.clone());
    known.properties.remove("email");
    assert_eq!(
        done(&c.upsert_people(&[known]).await.unwrap().items[0]),
        (id.clone(), false)
    );
    assert_eq!(sb.state().stats().searches, searches);
    // A stored id whose person was deleted (merged): found by email, else created again.
    sb.state().delete_person(id.parse().unwrap());
    let mut stale = lead(1);
    stale.remote_id = Some(id.clone());
    let (new_id, created) = done(&c.upsert_people(&[stale]).await.unwrap().items[0]);
    assert!(created);
    assert_ne!(new_id, id);
    assert_eq!(sb.state().persons().len(), 1);
}

#[tokio::test]
async fn conflict_rules_keep_what_sales_typed_and_never_only_writes_on_create() {
    let sb = sandbox(options()).await;
    let c = client(&sb);
    let mut first = rec(
        1,
        &[
            ("email", "kim@example.com"),
            ("first_name", "Kim"),
            ("phone", "+1 555 0100"),
            (COMPANY_FIELD_KEY, "Acme"),
        ],
    );
    first
        .conflict
        .insert(COMPANY_FIELD_KEY.into(), OnConflict::Never);
    c.upsert_people(&[first]).await.unwrap();
    let p = sb.state().person_by_email("kim@example.com").unwrap();
    assert_eq!(
        p.custom_fields[COMPANY_FIELD_KEY],
        json!("Acme"),
        "never still writes on create"
    );
    // Sales edits the phone and clears the lead source.
    sb.state().edit("kim@example.com", "phone", "+1 555 0199");
    sb.state().edit("kim@example.com", LEAD_SOURCE, "");
    let mut second = rec(
        2,
        &[
            ("email", "kim@example.com"),
            ("phone", "+1 555 0100"),
            (LEAD_SOURCE, "ads"),
            (COMPANY_FIELD_KEY, "Other Inc"),
            ("first_name", "Kimberly"),
        ],
    );
    second.conflict = BTreeMap::from([
        ("phone".into(), OnConflict::FillEmpty),
        (LEAD_SOURCE.into(), OnConflict::FillEmpty),
        (COMPANY_FIELD_KEY.into(), OnConflict::Never),
    ]);
    let reads = sb.state().stats().reads;
    let out = c.upsert_people(&[second]).await.unwrap();
    assert!(!done(&out.items[0]).1);
    let p = sb.state().person_by_email("kim@example.com").unwrap();
    assert_eq!(
        p.phones[0].value, "+1 555 0199",
        "fill_empty kept the salesperson's phone"
    );
    assert_eq!(p.phones.len(), 1);
    assert_eq!(
        p.custom_fields[LEAD_SOURCE],
        json!("ads"),
        "fill_empty filled the empty field"
    );
    assert_eq!(
        p.custom_fields[COMPANY_FIELD_KEY],
        json!("Acme"),
        "never kept the value"
    );
    assert_eq!(p.name, "Kimberly", "overwrite wrote");
    assert!(
        sb.state().stats().reads <= reads + 1,
        "at most one batch read"
    );
}

#[tokio::test]
async fn one_bad_record_is_permanent_with_pipedrives_message_and_the_rest_go_through() {
    let sb = sandbox(options()).await;
    let c = client(&sb);
    let batch = [
        lead(1),
        rec(2, &[("email", "not-an-email"), ("name", "Bad")]),
        lead(3),
        rec(4, &[("name", "No Email")]),
    ];
    let out = c.upsert_people(&batch).await.unwrap();
    assert_eq!(out.items.len(), 4);
    assert!(done(&out.items[0]).1);
    match &out.items[1] {
        ItemResult::Permanent { message } => {
            assert_eq!(
                message,
                "Pipedrive 400: Validation failed: emails/0/value: Invalid email address"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(done(&out.items[2]).1);
    assert!(
        matches!(&out.items[3], ItemResult::Permanent { message } if message.contains("no email"))
    );
    assert_eq!(sb.state().persons().len(), 2);
    // Injected refusals use the same shape.
    sb.state().set_faults(CrmFaults {
        item_failure_rate: 1.0,
        seed: Some(1),
        ..Default::default()
    });
    let out = c.upsert_people(&[lead(5)]).await.unwrap();
    assert!(
        matches!(&out.items[0], ItemResult::Permanent { message } if message.starts_with("Pipedrive 400: Validation failed"))
    );
}

#[tokio::test]
async fn throttling_is_rate_limited_with_the_vendors_wait_and_headers_pause_the_engine() {
    let sb = sandbox(options()).await;
    let c = client(&sb);
    sb.state().set_faults(CrmFaults {
        rate_limit_next: 1,
        ..Default::default()
    });
    match c.upsert_people(&[lead(1)]).await.unwrap_err() {
        CallError::RateLimited {
            message,
            retry_after,
        } => {
            assert_eq!(message, "Pipedrive 429: Request over limit");
            assert_eq!(retry_after, Duration::from_secs(2));
        }
        other => panic!("{other:?}"),
    }
    // A real window of 3 per 2 s: the call that spends it says so, and the next one waits
    // (paced by the headers) instead of earning a 429.
    let sb = sandbox(SandboxOptions {
        rate_limit: 3,
        ..options()
    })
    .await;
    let c = client(&sb);
    let out = c.upsert_people(&[lead(1)]).await.unwrap();
    assert!(
        out.pause_for.is_some_and(|d| d <= Duration::from_secs(2)),
        "{:?}",
        out.pause_for
    );
    let out = c.upsert_people(&[lead(2)]).await.unwrap();
    assert!(done(&out.items[0]).1);
    assert_eq!(sb.state().stats().rate_limited, 0);
}

#[tokio::test]
async fn server_errors_and_timeouts_are_transient() {
    let sb = sandbox(options()).await;
    let c = client(&sb);
    sb.state().set_faults(CrmFaults {
        server_error_next: 1,
        ..Default::default()
    });
    let err = c.upsert_people(&[lead(1)]).await.unwrap_err();
    assert!(
        matches!(&err, CallError::Transient { message, .. } if message.contains("Pipedrive 500")),
        "{err:?}"
    );
    assert!(sb.state().persons().is_empty());
    sb.state().set_faults(CrmFaults {
        delay_ms: 2500,
        ..Default::default()
    });
    let err = c.upsert_people(&[lead(1)]).await.unwrap_err();
    assert!(
        matches!(&err, CallError::Transient { message, .. } if message.contains("did not answer within 2s")),
        "{err:?}"
    );
    sb.state().set_faults(CrmFaults::default());
    assert!(done(&c.upsert_people(&[lead(1)]).await.unwrap().items[0]).1);
}

#[tokio::test]
async fn bad_credentials_and_dead_grants_are_auth_errors() {
    let sb = sandbox(options()).await;
    let c = client_with(
        &sb,
        json!({"api_token": "wrong"}),
        ConnectorContext::in_memory("pd"),
    );
    match c.upsert_people(&[lead(1)]).await.unwrap_err() {
        CallError::Auth { status, message } => {
            assert_eq!(status, 401);
            assert_eq!(message, "Pipedrive 401: unauthorized access");
        }
        other => panic!("{other:?}"),
    }
    let c = oauth_client(&sb, ConnectorContext::in_memory("pd"));
    assert!(done(&c.upsert_people(&[lead(1)]).await.unwrap().items[0]).1);
    sb.state().revoke_grant();
    match c.upsert_people(&[lead(2)]).await.unwrap_err() {
        CallError::Auth {
            status: 401,
            message,
        } => assert!(message.starts_with("reconnect needed"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_for_concurrent_calls() {
    let sb = sandbox(SandboxOptions {
        rotate_refresh_tokens: true,
        ..options()
    })
    .await;
    let state = Arc::new(MemoryState::default());
    let c = Arc::new(oauth_client(
        &sb,
        ConnectorContext {
            name: "pd".into(),
            state: state.clone(),
        },
    ));
    assert!(done(&c.upsert_people(&[lead(1)]).await.unwrap().items[0]).1);
    assert_eq!(sb.state().stats().token_refreshes, 1);
    let rotated = state.token.lock().unwrap().clone().unwrap();
    assert_ne!(
        rotated.refresh_token.as_deref(),
        Some(sb.state().options().refresh_token.as_str()),
        "rotated token persisted"
    );
    assert_eq!(rotated.extra.get("api_domain"), Some(&sb.base_url()));
    sb.state().expire_tokens();
    let calls = (2..7).map(|n| {
        let c = c.clone();
        tokio::spawn(async move { c.upsert_people(&[lead(n)]).await })
    });
    for call in calls {
        let out = call
            .await
            .unwrap()
            .expect("batch succeeds after the refresh");
        assert!(done(&out.items[0]).1);
    }
    assert_eq!(
        sb.state().stats().token_refreshes,
        2,
        "one refresh for five concurrent calls"
    );
    assert_eq!(sb.state().persons().len(), 6);
}

#[tokio::test]
async fn verify_flags_misspelt_fields_with_a_hint_and_accepts_good_ones() {
    let sb = sandbox(options()).await;
    let c = client(&sb);
    let good: Vec<String> = [
        "email",
        "first_name",
        "last_name",
        "phone",
        "org_id",
        "owner_id",
        "name",
        LEAD_SOURCE,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(c.verify(&good).await, Vec::<String>::new());
    let problems = c
        .verify(&[
            "emial".to_string(),
            "Lead source".to_string(),
            "f0e1d2c3b4a5968778695a4b3c2d1e0f12345678".to_string(),
            "add_time".to_string(),
        ])
        .await;
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert!(
        problems[0].contains("did you mean \"email\""),
        "{}",
        problems[0]
    );
    assert!(
        problems[1].contains(&format!("map its key instead: \"{LEAD_SOURCE}\"")),
        "{}",
        problems[1]
    );
    assert!(problems[2].contains("option id"), "{}", problems[2]);
    assert!(problems[3].contains("cannot be written"), "{}", problems[3]);
    let bad = client_with(
        &sb,
        json!({"api_token": "nope"}),
        ConnectorContext::in_memory("pd"),
    );
    let p = bad.verify(&good).await;
    assert!(
        p.len() == 1 && p[0].contains("refused the credentials"),
        "{p:?}"
    );
}

#[tokio::test]
async fn create_lead_opens_one_lead_per_delivery_even_when_retried() {
    let sb = sandbox(options()).await;
    let c = client_with(
        &sb,
        json!({"create_lead": true, "lead_title": "{name} (web form)"}),
        ConnectorContext::in_memory("pd"),
    );
    let (id, _) = done(&c.upsert_people(&[lead(1)]).await.unwrap().items[0]);
    let leads = sb.state().leads();
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0].title, "Lead No1 (web form)");
    assert_eq!(leads[0].person_id.to_string(), id);
    assert_eq!(leads[0].id.len(), 36, "lead ids are UUIDs");
    // The same delivery again (its answer was lost): the person is updated, no second lead.
    c.upsert_people(&[lead(1)]).await.unwrap();
    assert_eq!(sb.state().leads().len(), 1);
}

/// Requests for 40 new leads (two full calls of 20), extrapolated ×25 for the docs: the cost
/// per full call is fixed, so the figure per 1,000 is exact. (40, not 1,000: the client paces
/// searches at Pipedrive's 10 per 2 s.)
#[tokio::test]
async fn api_calls_per_new_lead_are_measured() {
    let sb = sandbox(SandboxOptions {
        rate_limit: 10_000,
        search_rate_limit: 10_000,
        ..options()
    })
    .await;
    let c = client(&sb);
    let leads: Vec<SinkRecord> = (1..=40).map(lead).collect();
    for chunk in leads.chunks(c.max_batch()) {
        let out = c.upsert_people(chunk).await.unwrap();
        assert!(out.items.iter().all(|i| done(i).1));
    }
    let plain = sb.state().stats().api_calls;
    // With conflict rules on every record: still no read for new persons.
    let sb2 = sandbox(SandboxOptions {
        rate_limit: 10_000,
        search_rate_limit: 10_000,
        ..options()
    })
    .await;
    let c2 = client(&sb2);
    let ruled: Vec<SinkRecord> = (1..=40)
        .map(|n| {
            let mut r = lead(n);
            r.conflict
                .insert("first_name".into(), OnConflict::FillEmpty);
            r.conflict.insert("last_name".into(), OnConflict::Never);
            r
        })
        .collect();
    for chunk in ruled.chunks(c2.max_batch()) {
        c2.upsert_people(chunk).await.unwrap();
    }
    let with_rules = sb2.state().stats().api_calls;
    println!(
        "API calls per 1,000 new leads: {} (conflict rules on: {})",
        plain * 25,
        with_rules * 25
    );
    assert_eq!(
        plain,
        40 + 2 + 40,
        "one search per lead, one recent list per call, one create per lead"
    );
    assert_eq!(with_rules, plain);
}
