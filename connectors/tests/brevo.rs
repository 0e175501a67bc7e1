//! The Brevo polled source against its sandbox over real loopback HTTP: the first poll from
//! `start_from`, incremental polls, equal stamps across a page boundary, late arrivals, cursor
//! replays after a crash, paging with `more`, every error class, the mapping of a realistic
//! contact, and arbitrary answers that must never panic.
#![cfg(feature = "sandbox")]

use std::{collections::BTreeSet, time::Duration};

use serde_json::{Map, Value, json};
use tandem_connectors::{
    CallError, Connector,
    brevo::{
        BrevoConfig, BrevoSource,
        sandbox::{BrevoSandbox, CrmFaults, SandboxOptions},
    },
    source::{PollPage, PolledSource, SourceLead},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MINUTE: i64 = 60_000;

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

async fn sandbox() -> BrevoSandbox {
    BrevoSandbox::start(
        "127.0.0.1:0".parse().unwrap(),
        SandboxOptions {
            rate_limit: 1000,
            seed: Some(3),
            ..Default::default()
        },
    )
    .await
    .expect("sandbox binds")
}

fn config(base_url: &str, key: &str, extra: Value) -> BrevoConfig {
    let mut c = json!({"api_key": key, "base_url": base_url, "timeout": "2s"});
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let c: BrevoConfig = serde_json::from_value(c).expect("config");
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    c
}

fn source(sb: &BrevoSandbox, extra: Value) -> BrevoSource {
    let key = sb.state().options().api_key.clone();
    BrevoSource::new(&config(&sb.base_url(), &key, extra)).expect("source")
}

fn add(sb: &BrevoSandbox, email: &str, at_ms: Option<i64>) -> String {
    let mut a = Map::new();
    a.insert("FIRSTNAME".into(), Value::from("Jo"));
    sb.state().add_contact(email, a, vec![], at_ms).to_string()
}

fn ids(leads: &[SourceLead]) -> Vec<String> {
    leads.iter().filter_map(|l| l.event_id.clone()).collect()
}

/// Polls until no more pages wait; returns every lead and the last cursor.
async fn drain(src: &BrevoSource, mut cursor: Option<String>) -> (Vec<SourceLead>, String, u32) {
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
    let old = add(
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
    let src = source(&sb, json!({}));
    let (leads, _, _) = drain(&src, None).await;
    assert_eq!(ids(&leads), [recent, fresh]);
    assert!(!ids(&leads).contains(&old));
    let short = source(&sb, json!({"start_from": "1d"}));
    let (leads, _, _) = drain(&short, None).await;
    assert_eq!(leads.len(), 1);
}

#[tokio::test]
async fn incremental_polls_deliver_new_contacts_and_only_overlap_again() {
    let sb = sandbox().await;
    let src = source(&sb, json!({"overlap": "1m"}));
    let a = add(&sb, "a@example.com", Some(now_ms() - 10 * MINUTE));
    let b = add(&sb, "b@example.com", Some(now_ms() - 5 * MINUTE));
    let (first, cursor, _) = drain(&src, None).await;
    assert_eq!(ids(&first), [a.clone(), b.clone()]);
    // Nothing new: the newest contact is inside the overlap and comes again (same event id).
    let (again, cursor2, _) = drain(&src, Some(cursor.clone())).await;
    assert_eq!(ids(&again), std::slice::from_ref(&b));
    assert_eq!(cursor2, cursor, "no new stamp, no new cursor");
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
    // More with the very same stamp after the pass ended: still delivered.
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
    // Written two minutes ago, visible only now (Brevo's stamp is older than the newest seen).
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
    // Crash after fetching p2 but before committing it: the daemon polls from p1's cursor again.
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
async fn a_contact_deleted_between_pages_does_not_make_the_next_page_skip_one() {
    let sb = sandbox().await;
    let src = source(&sb, json!({"page_size": 10}));
    let all: Vec<String> = (0..15)
        .map(|i| {
            add(
                &sb,
                &format!("d{i}@example.com"),
                Some(now_ms() - (30 - i) * MINUTE),
            )
        })
        .collect();
    let p1 = src.poll(None).await.unwrap();
    assert!(p1.more);
    sb.state().delete(all[0].parse().unwrap());
    let (rest, _, _) = drain(&src, Some(p1.next_cursor)).await;
    let got: BTreeSet<String> = [p1.leads, rest]
        .concat()
        .iter()
        .filter_map(|l| l.event_id.clone())
        .collect();
    for id in &all[1..] {
        assert!(got.contains(id), "{id} skipped");
    }
}

#[tokio::test]
async fn list_and_modified_filters_reach_brevo() {
    let sb = sandbox().await;
    let mut a = Map::new();
    a.insert("FIRSTNAME".into(), Value::from("Li"));
    let in_list =
        sb.state()
            .add_contact("l@example.com", a.clone(), vec![7], Some(now_ms() - MINUTE));
    sb.state()
        .add_contact("n@example.com", a, vec![8], Some(now_ms() - MINUTE));
    let src = source(&sb, json!({"list_ids": [7, 9]}));
    let (leads, _, _) = drain(&src, None).await;
    assert_eq!(ids(&leads), [in_list.to_string()]);

    let updates = source(&sb, json!({"leads_from": "updated"}));
    let (before, cursor, _) = drain(&updates, None).await;
    assert_eq!(before.len(), 2);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(sb.state().edit(in_list, "PLAN", Value::from("pro")));
    let (after, _, _) = drain(&updates, Some(cursor)).await;
    let edited: Vec<&SourceLead> = after
        .iter()
        .filter(|l| l.fields.contains_key("PLAN"))
        .collect();
    assert_eq!(edited.len(), 1);
    let id = edited[0].event_id.clone().unwrap();
    assert!(id.starts_with(&format!("{in_list}@")), "{id}");
    assert!(!ids(&before).contains(&id), "an update is a new event");
}

#[tokio::test]
async fn a_realistic_contact_maps_onto_canonical_fields() {
    let sb = sandbox().await;
    let attributes = json!({"FIRSTNAME": "Jane", "LASTNAME": "Doe", "SMS": "+33612345678",
        "COMPANY": "Acme SAS", "JOB_TITLE": "Head of Ops", "COUNTRY": "FR",
        "UTM_CAMPAIGN": "spring", "FBCLID": "IwAR0abc", "NEWSLETTER_TOPIC": "pricing"});
    let at = now_ms() - 3 * MINUTE;
    let id = sb.state().add_contact(
        "Jane.Doe@Example.com",
        attributes.as_object().cloned().unwrap(),
        vec![3],
        Some(at),
    );
    let (leads, _, _) = drain(&source(&sb, json!({})), None).await;
    let lead = &leads[0];
    assert_eq!(lead.event_id, Some(id.to_string()));
    assert!(!lead.is_test);
    let expected_at = jiff::Timestamp::from_millisecond(at).unwrap();
    let got_at: jiff::Timestamp = lead.captured_at.as_deref().unwrap().parse().unwrap();
    assert_eq!(got_at, expected_at);
    let f = &lead.fields;
    for (k, v) in [
        ("email", "Jane.Doe@Example.com"),
        ("first_name", "Jane"),
        ("last_name", "Doe"),
        ("phone", "+33612345678"),
        ("company", "Acme SAS"),
        ("job_title", "Head of Ops"),
        ("country", "FR"),
        ("utm_campaign", "spring"),
        ("fbclid", "IwAR0abc"),
        ("NEWSLETTER_TOPIC", "pricing"),
    ] {
        assert_eq!(f.get(k), Some(&Value::from(v)), "{k}");
    }
    assert_eq!(f["listIds"], json!([3]));
}

#[tokio::test]
async fn every_error_class_is_classified() {
    let sb = sandbox().await;
    add(&sb, "e@example.com", None);
    let wrong = BrevoSource::new(&config(&sb.base_url(), "xkeysib-wrong", json!({}))).unwrap();
    match wrong.poll(None).await {
        Err(CallError::Auth {
            status: 401,
            message,
        }) => {
            assert!(message.contains("unauthorized: Key not found"), "{message}");
            assert!(!message.contains("xkeysib"));
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
        Err(CallError::RateLimited { retry_after, .. }) => {
            assert!(retry_after <= Duration::from_secs(1))
        }
        other => panic!("{other:?}"),
    }
    match src.poll(None).await {
        Err(CallError::Transient { message, .. }) => assert!(message.contains("500"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        src.poll(None).await,
        Err(CallError::Transient { .. })
    ));
    assert_eq!(src.poll(None).await.unwrap().leads.len(), 1);

    sb.state().set_faults(CrmFaults {
        delay_ms: 400,
        ..Default::default()
    });
    let impatient = BrevoSource::new(&config(
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

    let validation = canned(
        "400 Bad Request",
        "",
        br#"{"code":"invalid_parameter","message":"createdSince is not valid"}"#.to_vec(),
    )
    .await;
    match BrevoSource::new(&config(&validation, "k", json!({})))
        .unwrap()
        .poll(None)
        .await
    {
        Err(CallError::Permanent { message }) => assert_eq!(
            message,
            "Brevo 400 invalid_parameter: createdSince is not valid"
        ),
        other => panic!("{other:?}"),
    }
    let forbidden = canned(
        "403 Forbidden",
        "",
        br#"{"code":"permission_denied","message":"unrecognised IP address"}"#.to_vec(),
    )
    .await;
    assert!(matches!(
        BrevoSource::new(&config(&forbidden, "k", json!({})))
            .unwrap()
            .poll(None)
            .await,
        Err(CallError::Auth { status: 403, .. })
    ));
    let throttled = canned(
        "429 Too Many Requests",
        "x-sib-ratelimit-reset: 42\r\n",
        Vec::new(),
    )
    .await;
    match BrevoSource::new(&config(&throttled, "k", json!({})))
        .unwrap()
        .poll(None)
        .await
    {
        Err(CallError::RateLimited { retry_after, .. }) => {
            assert_eq!(retry_after, Duration::from_secs(42))
        }
        other => panic!("{other:?}"),
    }
    let closed = BrevoSource::new(&config("http://127.0.0.1:9", "k", json!({}))).unwrap();
    assert!(matches!(
        closed.poll(None).await,
        Err(CallError::Transient { .. })
    ));
}

#[tokio::test]
async fn the_sandbox_window_throttles_with_brevo_headers() {
    let sb = BrevoSandbox::start(
        "127.0.0.1:0".parse().unwrap(),
        SandboxOptions {
            rate_limit: 2,
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
            assert!(retry_after <= Duration::from_secs(1))
        }
        other => panic!("{other:?}"),
    }
    let s = sb.stats();
    assert_eq!((s.requests, s.rate_limited), (3, 1));
    let raw = reqwest::Client::new()
        .get(format!("{}/v3/contacts?limit=1001", sb.base_url()))
        .header("api-key", &sb.state().options().api_key)
        .send()
        .await
        .unwrap();
    assert!(raw.headers().contains_key("x-sib-ratelimit-limit"));
}

#[tokio::test]
async fn arbitrary_answers_never_panic() {
    let bodies: Vec<Vec<u8>> = vec![
        b"not json".to_vec(),
        b"{\"contacts\": 5}".to_vec(),
        b"{\"contacts\": [1, \"x\", null, {\"id\": {}}]}".to_vec(),
        b"{\"contacts\": [{\"id\": 1, \"createdAt\": \"yesterday\", \"attributes\": []}], \"count\": \"many\"}".to_vec(),
        vec![0xff; 64],
        b"{\"contacts\": [{\"id\": 2, \"createdAt\": \"2024-01-01T00:00:00Z\"}], \"count\": 1}".to_vec(),
    ];
    for (i, body) in bodies.into_iter().enumerate() {
        let url = canned("200 OK", "", body).await;
        let src = BrevoSource::new(&config(&url, "k", json!({}))).unwrap();
        match src.poll(None).await {
            Ok(page) => assert!(i >= 2, "{i}: {page:?}"),
            Err(CallError::Transient { .. }) => {}
            Err(other) => panic!("{i}: {other:?}"),
        }
        let _ = src
            .poll(Some(
                "{\"v\":1,\"since_ms\":-99999999999999999,\"offset\":18446744073709551615}",
            ))
            .await;
        let _ = src.poll(Some("\u{0}garbage")).await;
    }
}

#[tokio::test]
async fn the_suite_view_counts_calls_and_builds_from_its_toml() {
    let sb = tandem_connectors::sandbox::start_source("brevo")
        .await
        .unwrap()
        .expect("brevo has a sandbox");
    assert_eq!(sb.kind(), "brevo");
    let mut table = Map::new();
    for line in sb.connector_toml().lines() {
        let (k, v) = line.split_once(" = ").expect("key = value");
        table.insert(k.to_owned(), Value::from(v.trim_matches('"')));
    }
    assert_eq!(table.remove("kind"), Some(Value::from("brevo")));
    let config: BrevoConfig = serde_json::from_value(Value::Object(table)).unwrap();
    assert!(config.validate().is_empty());
    assert_eq!(config.poll_interval.0, Duration::from_millis(200));
    let src = config
        .polled_source(tandem_connectors::ConnectorContext::in_memory("brevo"))
        .unwrap()
        .unwrap();
    let id = sb.add_lead("suite@example.com", "Su", None);
    let page = src.poll(None).await.unwrap();
    assert_eq!(page.leads[0].event_id.as_deref(), Some(id.as_str()));
    assert_eq!(page.leads[0].fields["first_name"], "Su");
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
