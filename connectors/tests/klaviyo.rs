//! The Klaviyo polled source against its sandbox over real loopback HTTP: the first poll from
//! `start_from`, incremental polls, equal stamps across a page boundary, late arrivals, cursor
//! replays after a crash, `links.next` paging with `more`, list members, every error class, the
//! mapping of a realistic profile, and arbitrary answers that must never panic.
#![cfg(feature = "sandbox")]

use std::{collections::BTreeSet, time::Duration};

use serde_json::{Map, Value, json};
use tandem_connectors::{
    CallError, Connector,
    klaviyo::{
        KlaviyoConfig, KlaviyoSource,
        sandbox::{CrmFaults, KlaviyoSandbox, SandboxOptions},
    },
    source::{PollPage, PolledSource, SourceLead},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MINUTE: i64 = 60_000;
const LIST: &str = "SbxL1s";

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

async fn sandbox() -> KlaviyoSandbox {
    KlaviyoSandbox::start(
        "127.0.0.1:0".parse().unwrap(),
        SandboxOptions {
            burst: 1000,
            steady: 10_000,
            seed: Some(5),
            ..Default::default()
        },
    )
    .await
    .expect("sandbox binds")
}

fn config(base_url: &str, key: &str, extra: Value) -> KlaviyoConfig {
    let mut c = json!({"api_key": key, "base_url": base_url, "timeout": "2s"});
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let c: KlaviyoConfig = serde_json::from_value(c).expect("config");
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    c
}

fn source(sb: &KlaviyoSandbox, extra: Value) -> KlaviyoSource {
    let key = sb.state().options().api_key.clone();
    KlaviyoSource::new(&config(&sb.base_url(), &key, extra)).expect("source")
}

fn add(sb: &KlaviyoSandbox, email: &str, at_ms: Option<i64>) -> String {
    let mut a = Map::new();
    a.insert("email".into(), Value::from(email));
    a.insert("first_name".into(), Value::from("Jo"));
    sb.state().add_profile(a, Some(LIST), at_ms)
}

fn ids(leads: &[SourceLead]) -> Vec<String> {
    leads.iter().filter_map(|l| l.event_id.clone()).collect()
}

async fn drain(src: &KlaviyoSource, mut cursor: Option<String>) -> (Vec<SourceLead>, String, u32) {
    let mut leads = Vec::new();
    let mut pages = 0;
    loop {
        let page: PollPage = src.poll(cursor.as_deref()).await.expect("poll");
        pages += 1;
        leads.extend(page.leads);
        cursor = Some(page.next_cursor.clone());
        if !page.more {
            return (leads, page.next_cursor, pages);
        }
        assert!(pages < 1000, "paging never ends");
    }
}

#[tokio::test]
async fn first_poll_reaches_back_to_start_from_only() {
    let sb = sandbox().await;
    add(
        &sb,
        "old@example.com",
        Some(now_ms() - 8 * 24 * 60 * MINUTE),
    );
    let recent = add(
        &sb,
        "recent@example.com",
        Some(now_ms() - 2 * 24 * 60 * MINUTE),
    );
    let fresh = add(&sb, "fresh@example.com", None);
    let (leads, _, _) = drain(&source(&sb, json!({})), None).await;
    assert_eq!(ids(&leads), [recent, fresh.clone()]);
    let (leads, _, _) = drain(&source(&sb, json!({"start_from": "1d"})), None).await;
    assert_eq!(ids(&leads), [fresh]);
}

#[tokio::test]
async fn incremental_polls_deliver_new_profiles_and_only_overlap_again() {
    let sb = sandbox().await;
    let src = source(&sb, json!({"overlap": "1m"}));
    let a = add(&sb, "a@example.com", Some(now_ms() - 10 * MINUTE));
    let b = add(&sb, "b@example.com", Some(now_ms() - 5 * MINUTE));
    let (first, cursor, _) = drain(&src, None).await;
    assert_eq!(ids(&first), [a.clone(), b.clone()]);
    let (again, cursor2, _) = drain(&src, Some(cursor.clone())).await;
    assert_eq!(ids(&again), std::slice::from_ref(&b));
    assert_eq!(cursor2, cursor);
    let c = add(&sb, "c@example.com", None);
    let (next, _, _) = drain(&src, Some(cursor)).await;
    assert_eq!(ids(&next), [b, c]);
    assert!(!ids(&next).contains(&a));
}

#[tokio::test]
async fn equal_stamps_across_a_page_boundary_are_all_delivered() {
    let sb = sandbox().await;
    let src = source(&sb, json!({"page_size": 2}));
    let at = now_ms() - MINUTE;
    let first: Vec<String> = (0..5)
        .map(|i| add(&sb, &format!("same{i}@example.com"), Some(at)))
        .collect();
    let (leads, cursor, pages) = drain(&src, None).await;
    assert_eq!(pages, 3);
    assert_eq!(ids(&leads), first);
    let later: Vec<String> = (5..7)
        .map(|i| add(&sb, &format!("same{i}@example.com"), Some(at)))
        .collect();
    let (leads, _, _) = drain(&src, Some(cursor)).await;
    let got: BTreeSet<String> = ids(&leads).into_iter().collect();
    for id in later {
        assert!(got.contains(&id), "{id} skipped");
    }
}

#[tokio::test]
async fn a_late_arrival_within_the_overlap_is_delivered() {
    let sb = sandbox().await;
    let src = source(&sb, json!({}));
    add(&sb, "now@example.com", None);
    let (_, cursor, _) = drain(&src, None).await;
    let late = add(&sb, "late@example.com", Some(now_ms() - 2 * MINUTE));
    let (leads, _, _) = drain(&src, Some(cursor)).await;
    assert!(ids(&leads).contains(&late));
}

#[tokio::test]
async fn a_replayed_cursor_yields_the_same_leads_and_a_resumed_pass_loses_nothing() {
    let sb = sandbox().await;
    let src = source(&sb, json!({"page_size": 3}));
    let all: Vec<String> = (0..8)
        .map(|i| {
            add(
                &sb,
                &format!("p{i}@example.com"),
                Some(now_ms() - (20 - i) * MINUTE),
            )
        })
        .collect();
    let p1 = src.poll(None).await.unwrap();
    assert!(p1.more);
    let p2 = src.poll(Some(&p1.next_cursor)).await.unwrap();
    let replay = src.poll(Some(&p1.next_cursor)).await.unwrap();
    assert_eq!(ids(&replay.leads), ids(&p2.leads));
    assert_eq!(replay.next_cursor, p2.next_cursor);
    let (rest, _, _) = drain(&src, Some(replay.next_cursor)).await;
    let got: BTreeSet<String> = [p1.leads, p2.leads, rest]
        .concat()
        .iter()
        .filter_map(|l| l.event_id.clone())
        .collect();
    assert_eq!(got, all.into_iter().collect());
}

#[tokio::test]
async fn a_refused_page_cursor_restarts_the_pass_instead_of_stalling() {
    let sb = sandbox().await;
    let src = source(&sb, json!({"page_size": 1}));
    let a = add(&sb, "a@example.com", Some(now_ms() - MINUTE));
    let b = add(&sb, "b@example.com", None);
    let p1 = src.poll(None).await.unwrap();
    assert!(p1.more);
    let mut stale: Value = serde_json::from_str(&p1.next_cursor).unwrap();
    stale["page"] = Value::from("expired-cursor");
    let restarted = src.poll(Some(&stale.to_string())).await.unwrap();
    assert!(restarted.more && restarted.leads.is_empty());
    let (leads, _, _) = drain(&src, Some(restarted.next_cursor)).await;
    assert_eq!(ids(&leads), [a, b]);
}

#[tokio::test]
async fn list_members_and_updates() {
    let sb = sandbox().await;
    let mut attrs = Map::new();
    attrs.insert("email".into(), Value::from("nolist@example.com"));
    let outside = sb.state().add_profile(attrs, None, Some(now_ms() - MINUTE));
    let member = add(&sb, "member@example.com", Some(now_ms() - MINUTE));
    let (leads, _, _) = drain(&source(&sb, json!({"list_id": LIST})), None).await;
    assert_eq!(ids(&leads), std::slice::from_ref(&member));
    let unknown = source(&sb, json!({"list_id": "Nope12"}));
    match unknown.poll(None).await {
        Err(CallError::Permanent { message }) => {
            assert!(message.contains("404 not_found"), "{message}")
        }
        other => panic!("{other:?}"),
    }

    let updates = source(&sb, json!({"leads_from": "updated"}));
    let (before, cursor, _) = drain(&updates, None).await;
    assert_eq!(before.len(), 2);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(
        sb.state()
            .set_property(&outside, "Plan", Value::from("pro"))
    );
    let (after, _, _) = drain(&updates, Some(cursor)).await;
    let edited: Vec<&SourceLead> = after
        .iter()
        .filter(|l| l.fields.contains_key("Plan"))
        .collect();
    assert_eq!(edited.len(), 1);
    let id = edited[0].event_id.clone().unwrap();
    assert!(id.starts_with(&format!("{outside}@")), "{id}");
    assert!(!ids(&before).contains(&id));
}

#[tokio::test]
async fn a_realistic_profile_maps_onto_canonical_fields() {
    let sb = sandbox().await;
    let attrs = json!({"email": "sarah.mason@example.com", "phone_number": "+15005550006",
        "first_name": "Sarah", "last_name": "Mason", "organization": "Example Corp",
        "title": "Regional Manager", "external_id": "crm-9", "locale": "en-US",
        "location": {"city": "Boston", "country": "United States", "region": "MA", "zip": "02110"},
        "properties": {"utm_medium": "cpc", "gclid": "EAIaIQ", "Favorite Color": "blue"}});
    let at = now_ms() - 3 * MINUTE;
    let id = sb
        .state()
        .add_profile(attrs.as_object().cloned().unwrap(), None, Some(at));
    let (leads, _, _) = drain(&source(&sb, json!({})), None).await;
    let lead = &leads[0];
    assert_eq!(lead.event_id.as_deref(), Some(id.as_str()));
    let got_at: jiff::Timestamp = lead.captured_at.as_deref().unwrap().parse().unwrap();
    assert_eq!(got_at, jiff::Timestamp::from_millisecond(at).unwrap());
    for (k, v) in [
        ("email", "sarah.mason@example.com"),
        ("phone", "+15005550006"),
        ("first_name", "Sarah"),
        ("last_name", "Mason"),
        ("company", "Example Corp"),
        ("job_title", "Regional Manager"),
        ("country", "United States"),
        ("utm_medium", "cpc"),
        ("gclid", "EAIaIQ"),
        ("Favorite Color", "blue"),
        ("city", "Boston"),
        ("external_id", "crm-9"),
    ] {
        assert_eq!(lead.fields.get(k), Some(&Value::from(v)), "{k}");
    }
}

#[tokio::test]
async fn every_error_class_is_classified() {
    let sb = sandbox().await;
    add(&sb, "e@example.com", None);
    let wrong = KlaviyoSource::new(&config(&sb.base_url(), "pk_wrong", json!({}))).unwrap();
    match wrong.poll(None).await {
        Err(CallError::Auth {
            status: 401,
            message,
        }) => {
            assert!(message.contains("not_authenticated"), "{message}");
            assert!(!message.contains("pk_wrong"));
        }
        other => panic!("{other:?}"),
    }
    let src = source(&sb, json!({}));
    sb.state().set_faults(CrmFaults {
        rate_limit_next: 1,
        server_error_next: 1,
        drop_after_write_next: 1,
        ..Default::default()
    });
    match src.poll(None).await {
        Err(CallError::RateLimited {
            retry_after,
            message,
        }) => {
            assert_eq!(retry_after, Duration::from_secs(1));
            assert!(message.contains("throttled"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        src.poll(None).await,
        Err(CallError::Transient { .. })
    ));
    assert!(matches!(
        src.poll(None).await,
        Err(CallError::Transient { .. })
    ));
    assert_eq!(src.poll(None).await.unwrap().leads.len(), 1);

    sb.state().set_faults(CrmFaults {
        delay_ms: 400,
        ..Default::default()
    });
    let impatient = KlaviyoSource::new(&config(
        &sb.base_url(),
        &sb.state().options().api_key,
        json!({"timeout": "100ms"}),
    ))
    .unwrap();
    match impatient.poll(None).await {
        Err(CallError::Transient { message, .. }) => {
            assert!(message.contains("did not answer within 100ms"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    sb.state().set_faults(CrmFaults::default());

    // Klaviyo requires the revision header; the connector always sends it.
    let raw = reqwest::Client::new()
        .get(format!("{}/api/profiles", sb.base_url()))
        .header(
            "authorization",
            format!("Klaviyo-API-Key {}", sb.state().options().api_key),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400, "revision is required");
    let body: Value = raw.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["detail"],
        "Missing required header 'revision'."
    );

    let validation = canned(
        "400 Bad Request",
        "",
        br#"{"errors":[{"id":"x","status":400,"code":"invalid","title":"Invalid input.","detail":"'creatd' is not a valid field for the resource 'profile'.","source":{"parameter":"filter"}}]}"#.to_vec(),
    )
    .await;
    match KlaviyoSource::new(&config(&validation, "pk_k", json!({})))
        .unwrap()
        .poll(None)
        .await
    {
        Err(CallError::Permanent { message }) => assert_eq!(
            message,
            "Klaviyo 400 invalid: 'creatd' is not a valid field for the resource 'profile'."
        ),
        other => panic!("{other:?}"),
    }
    let forbidden = canned(
        "403 Forbidden",
        "",
        br#"{"errors":[{"status":403,"code":"permission_denied","title":"You do not have permission to perform this action.","detail":"This API key is missing required scopes."}]}"#.to_vec(),
    )
    .await;
    assert!(matches!(
        KlaviyoSource::new(&config(&forbidden, "pk_k", json!({})))
            .unwrap()
            .poll(None)
            .await,
        Err(CallError::Auth { status: 403, .. })
    ));
    let throttled = canned("429 Too Many Requests", "Retry-After: 17\r\n", Vec::new()).await;
    match KlaviyoSource::new(&config(&throttled, "pk_k", json!({})))
        .unwrap()
        .poll(None)
        .await
    {
        Err(CallError::RateLimited { retry_after, .. }) => {
            assert_eq!(retry_after, Duration::from_secs(17))
        }
        other => panic!("{other:?}"),
    }
    let closed = KlaviyoSource::new(&config("http://127.0.0.1:9", "pk_k", json!({}))).unwrap();
    assert!(matches!(
        closed.poll(None).await,
        Err(CallError::Transient { .. })
    ));
}

#[tokio::test]
async fn the_sandbox_windows_throttle_with_retry_after() {
    let sb = KlaviyoSandbox::start(
        "127.0.0.1:0".parse().unwrap(),
        SandboxOptions {
            burst: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let src = source(&sb, json!({}));
    src.poll(None).await.unwrap();
    src.poll(None).await.unwrap();
    match src.poll(None).await {
        Err(CallError::RateLimited { retry_after, .. }) => {
            assert_eq!(retry_after, Duration::from_secs(1))
        }
        other => panic!("{other:?}"),
    }
    let s = sb.stats();
    assert_eq!((s.requests, s.rate_limited), (3, 1));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let raw = reqwest::Client::new()
        .get(format!("{}/api/profiles?page[size]=101", sb.base_url()))
        .header(
            "authorization",
            format!("Klaviyo-API-Key {}", sb.state().options().api_key),
        )
        .header("revision", "2026-01-15")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert_eq!(raw.headers()["ratelimit-limit"], "700");
}

#[tokio::test]
async fn arbitrary_answers_never_panic() {
    let bodies: Vec<Vec<u8>> = vec![
        b"not json".to_vec(),
        b"{\"data\": 5}".to_vec(),
        b"{\"data\": [1, \"x\", null, {\"id\": {}}], \"links\": {\"next\": 7}}".to_vec(),
        b"{\"data\": [{\"type\":\"profile\",\"id\":\"A\",\"attributes\":{\"created\":\"yesterday\",\"location\":5,\"properties\":[]}}], \"links\": {}}".to_vec(),
        vec![0xff; 64],
        b"{\"data\": [{\"type\":\"profile\",\"id\":\"B\",\"attributes\":{\"created\":\"2024-01-01T00:00:00+00:00\"}}], \"links\": {\"next\": \"http://x/?page%5Bcursor%5D=same\"}}".to_vec(),
    ];
    for (i, body) in bodies.into_iter().enumerate() {
        let url = canned("200 OK", "", body).await;
        let src = KlaviyoSource::new(&config(&url, "pk_k", json!({}))).unwrap();
        match src.poll(None).await {
            Ok(page) => assert!(i >= 3, "{i}: {page:?}"),
            Err(CallError::Transient { .. }) => {}
            Err(other) => panic!("{i}: {other:?}"),
        }
        // A page pointing at itself ends the pass instead of looping.
        let _ = src
            .poll(Some(r#"{"v":1,"since_ms":0,"page":"same"}"#))
            .await
            .map(|p| assert!(!p.more || i != 5));
        let _ = src
            .poll(Some(r#"{"v":1,"since_ms":-9223372036854775808}"#))
            .await;
        let _ = src.poll(Some("\u{0}garbage")).await;
    }
}

#[tokio::test]
async fn the_suite_view_counts_calls_and_builds_from_its_toml() {
    let sb = tandem_connectors::sandbox::start_source("klaviyo")
        .await
        .unwrap()
        .expect("klaviyo has a sandbox");
    assert_eq!(sb.kind(), "klaviyo");
    let mut table = Map::new();
    for line in sb.connector_toml().lines() {
        let (k, v) = line.split_once(" = ").expect("key = value");
        table.insert(k.to_owned(), Value::from(v.trim_matches('"')));
    }
    assert_eq!(table.remove("kind"), Some(Value::from("klaviyo")));
    let config: KlaviyoConfig = serde_json::from_value(Value::Object(table)).unwrap();
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    assert_eq!(config.poll_interval.0, Duration::from_millis(200));
    let src = config
        .polled_source(tandem_connectors::ConnectorContext::in_memory("klaviyo"))
        .unwrap()
        .unwrap();
    let id = sb.add_lead("suite@example.com", "Su", None);
    let page = src.poll(None).await.unwrap();
    assert_eq!(page.leads[0].event_id.as_deref(), Some(id.as_str()));
    assert_eq!(page.leads[0].fields["first_name"], "Su");
    assert_eq!(page.leads[0].fields["email"], "suite@example.com");
    assert_eq!(sb.stats().api_calls, 1);
    sb.set_faults(tandem_connectors::sandbox::CrmFaults {
        server_error_next: 1,
        ..Default::default()
    });
    assert!(src.poll(None).await.is_err());
    assert_eq!(sb.stats().api_calls, 2);
}

/// A server that answers every request with the same status, headers and body.
async fn canned(status: &'static str, headers: &'static str, body: Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = socket.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
            });
        }
    });
    format!("http://{addr}")
}
